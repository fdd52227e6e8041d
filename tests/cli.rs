//! The built binary, as a user runs it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn emrship(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emrship"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn plan_json_is_the_library_plan_byte_for_byte() {
    let output = emrship(&[
        "plan",
        "job-specs/match-rate.yaml",
        "--date",
        "2026-11-20",
        "--format",
        "json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected =
        serde_json::to_string_pretty(&common::plan_example("job-specs/match-rate.yaml", &[]))
            .unwrap()
            + "\n";
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}

#[test]
fn plan_text_goes_to_stdout() {
    let output = emrship(&["plan", "job-specs/match-rate.yaml", "--date", "2026-11-20"]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("Plan for match-rate on 2026-11-20"));
    assert!(stdout.contains("spark-submit --deploy-mode cluster --master yarn"));
}

#[test]
fn overlays_and_set_apply_in_order() {
    let output = emrship(&[
        "plan",
        "job-specs/match-rate.yaml",
        "-f",
        "job-specs/envs/prod.yaml",
        "--set",
        "cluster.core.count=12",
        "--set",
        "spark.conf.spark.speculation=false",
        "--date",
        "2026-11-20",
        "--format",
        "json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let core = &plan["run_job_flow"]["Instances"]["InstanceGroups"][1];
    assert_eq!(
        core["InstanceType"], "r5.4xlarge",
        "the prod overlay wins over the spec"
    );
    assert_eq!(core["InstanceCount"], 12, "--set wins over the overlay");
    let defaults = &plan["run_job_flow"]["Configurations"][1]["Properties"];
    assert_eq!(defaults["spark.speculation"], "false");
}

#[test]
fn a_bad_spec_exits_2_with_every_error_on_stderr_and_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("job-specs/match-rate.yaml"),
    )
    .unwrap()
    .replace("release: emr-7.5.0", "release: emr-7.50.0")
    .replace("instance_type: r5.2xlarge", "instance_typ: r5.2xlarge");
    std::fs::write(&spec, text).unwrap();
    let output = emrship(&["plan", spec.to_str().unwrap(), "--date", "2026-11-20"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("unknown EMR release label `emr-7.50.0`"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.yaml:9:"), "{stderr}");
    assert!(stderr.contains("did you mean `instance_type`?"), "{stderr}");
    assert!(stderr.contains("nothing was sent or uploaded"), "{stderr}");
}

#[test]
fn size_prints_the_arithmetic() {
    let output = emrship(&["size", "--instance-type", "r5.4xlarge", "--count", "10"]);
    assert!(output.status.success());
    insta::assert_snapshot!(String::from_utf8(output.stdout).unwrap());
    let output = emrship(&[
        "size",
        "--instance-type",
        "r5.4xlarge",
        "--count",
        "10",
        "--native",
        "--format",
        "json",
    ]);
    let sizing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        sizing["executor_memory_overhead_mib"].as_u64() > sizing["executor_memory_mib"].as_u64()
    );
}

/// Issue 12: on every example spec's cluster (with its overlays, and with the hand-pinned
/// streaming spec switched to `executors: auto`), the default sizing keeps at least 80% of the
/// worker vCPUs and 85% of their YARN memory in executors, and the plan shows it.
#[test]
fn every_example_plan_shows_the_utilization_of_the_default_sizing() {
    let examples: &[&[&str]] = &[
        &["job-specs/match-rate.yaml"],
        &["job-specs/match-rate.yaml", "-f", "job-specs/envs/dev.yaml"],
        &[
            "job-specs/match-rate.yaml",
            "-f",
            "job-specs/envs/prod.yaml",
        ],
        &["job-specs/pageview-rollup.yaml"],
        &[
            "job-specs/streaming-events.yaml",
            "--set",
            "spark.executors=auto",
        ],
    ];
    for example in examples {
        let mut args = vec!["plan", "--date", "2026-11-20"];
        args.extend_from_slice(example);
        let text = emrship(&args);
        assert!(
            text.status.success(),
            "{example:?}: {}",
            String::from_utf8_lossy(&text.stderr)
        );
        let text = String::from_utf8(text.stdout).unwrap();
        assert!(
            text.contains("utilization: executors hold "),
            "{example:?}: {text}"
        );
        args.extend_from_slice(&["--format", "json"]);
        let output = emrship(&args);
        let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let utilization = &plan["sizing"]["utilization"];
        let vcpu = utilization["vcpu_percent"].as_f64().unwrap();
        let memory = utilization["memory_percent"].as_f64().unwrap();
        assert!(vcpu >= 80.0, "{example:?}: {utilization}");
        assert!(memory >= 85.0, "{example:?}: {utilization}");
        assert_eq!(utilization["driver_vcpu"], 1, "{example:?}: {utilization}");
        assert_eq!(plan["sizing"]["task_cpus"], 1, "{example:?}");
    }
}

#[test]
fn size_rejects_an_unknown_type_with_a_suggestion() {
    let output = emrship(&["size", "--instance-type", "r5.4xlarg"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Did you mean `r5.4xlarge`?"));
}

/// Runs `emrship args` with a stdout whose reader is already gone (as `| head` leaves it once it
/// has its lines): the first write meets a closed pipe.
fn emrship_into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_emrship"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    for args in [
        &["size", "--list"][..],
        &["size", "--instance-type", "r5.4xlarge", "--count", "10"],
        &["plan", "job-specs/match-rate.yaml", "--date", "2026-11-20"],
        &[
            "plan",
            "job-specs/match-rate.yaml",
            "--date",
            "2026-11-20",
            "--format",
            "json",
        ],
    ] {
        let output = emrship_into_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn a_reader_that_stops_after_one_line_ends_the_command_quietly() {
    use std::io::BufRead as _;
    for args in [
        &["size", "--list"][..],
        &["plan", "job-specs/match-rate.yaml", "--date", "2026-11-20"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_emrship"))
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.trim().is_empty(), "{args:?}");
        // The reader is dropped here, as `head -1` exits after its line.
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn errors_have_one_shape_with_help_lines() {
    let output = emrship(&["size", "--instance-type", "r5.4xlarg"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "error: unknown instance type `r5.4xlarg`",
            "help: Did you mean `r5.4xlarge`?",
            "help: `emrship size --list` shows the known types",
        ],
        "{stderr}"
    );
}
