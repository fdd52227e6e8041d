//! Every example plan is accepted by the EMR service model: `plan --format json` from the real
//! binary goes through botocore's own validator and serializer (tests/python/validate_emr.py).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::EXAMPLES;

fn plan_json(spec: &str, overlays: &[&str]) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_emrship"));
    command
        .current_dir(root)
        .args(["plan", spec, "--date", "2026-11-20", "--format", "json"]);
    for overlay in overlays {
        command.args(["-f", overlay]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "emrship plan {spec} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn validate(python: &Path, json: &[u8], extra: &[&str]) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(root.join("tests/python/validate_emr.py"))
        .args(extra)
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(json).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn every_example_plan_is_accepted_by_the_emr_service_model() {
    let python = common::moto::test_python();
    for (case, spec, overlays) in EXAMPLES {
        let output = validate(&python, &plan_json(spec, overlays), &[]);
        assert!(
            output.status.success(),
            "{case}: botocore rejects the plan:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "ok: RunJobFlow, AddJobFlowSteps"
        );
    }
}

#[test]
fn the_validator_rejects_what_the_service_model_rejects() {
    // Guards the guard: a plan with a misspelt member must fail validation.
    let python = common::moto::test_python();
    let json = plan_json("job-specs/match-rate.yaml", &[]);
    let mut plan: serde_json::Value = serde_json::from_slice(&json).unwrap();
    plan["run_job_flow"]["Instances"]["InstanceGroups"][0]["InstanceTyp"] = "m5.xlarge".into();
    let output = validate(&python, &serde_json::to_vec(&plan).unwrap(), &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("InstanceTyp"));
}

/// `schedule --dry-run --format json` for an example, from the repository (no AWS call).
fn schedule_requests_json(spec: &str, overlays: &[&str]) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("bootstrap");
    std::fs::write(&binary, b"#!/bin/sh\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_emrship"));
    command.current_dir(dir.path()).args([
        "schedule",
        root.join(spec).to_str().unwrap(),
        "--dry-run",
        "--lambda-binary",
        binary.to_str().unwrap(),
        "--format",
        "json",
    ]);
    for overlay in overlays {
        command.args(["-f", root.join(overlay).to_str().unwrap()]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "emrship schedule --dry-run {spec} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn validate_schedule(python: &Path, json: &[u8]) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(root.join("tests/python/validate_schedule.py"))
        .arg("--stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(json).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn every_schedule_request_is_accepted_by_its_service_model() {
    let python = common::moto::test_python();
    let mut checked = 0;
    for (case, spec, overlays) in EXAMPLES {
        if common::plan_example(spec, overlays).schedule.is_none() {
            continue;
        }
        checked += 1;
        let json = schedule_requests_json(spec, overlays);
        let output = validate_schedule(&python, &json);
        assert!(
            output.status.success(),
            "{case}: botocore rejects a schedule request:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Guards the guard: a misspelt member is caught.
        let mut requests: serde_json::Value = serde_json::from_slice(&json).unwrap();
        requests["put_rule"]["ScheduleExpresion"] = "cron(0 6 * * ? *)".into();
        let output = validate_schedule(&python, &serde_json::to_vec(&requests).unwrap());
        assert!(!output.status.success(), "{case}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("ScheduleExpresion"));
    }
    assert!(checked >= 2);
}
