//! `emrship provision | submit | status | terminate | down` against moto's server mode.
//!
//! Each test starts its own emulator (tests/python/moto_emr_server.py: moto's server plus EMR
//! state changes on request, which moto itself lacks), runs the real `emrship` binary with the
//! standard endpoint override, and asserts on the resulting AWS state through the API.
//!
//! `deploy` is another command's work; [`Env::deploy`] puts exactly what it uploads (the
//! bundle, the rendered bootstrap script and driver, the job files) at the plan's keys, so
//! provision finds a deployed run.
#![cfg(feature = "aws")]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::emr::{assert_exit, block, stderr, stdout_json, MatchRateProject};
use common::fault_proxy::{Fate, FaultMix, FaultProxy};
use emrship::aws::iam::parse_document;

const DATE: &str = "2026-11-20";

type Env = MatchRateProject;

impl Env {
    fn provision(&self, date: &str, extra: &[&str]) -> Output {
        let spec = self.spec();
        let mut args = vec![
            "provision",
            spec.as_str(),
            "--date",
            date,
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        self.emrship(&args)
    }

    fn provisioned(&self, date: &str) -> String {
        let output = self.provision(date, &[]);
        assert_exit(&output, 0);
        stdout_json(&output)["cluster_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Active clusters carrying the run key tag, through the API.
    fn active_for_run_key(&self, run_key: &str) -> Vec<String> {
        common::emr::active_for_run_key(&self.emr, run_key)
    }

    fn all_clusters(&self) -> usize {
        common::emr::all_clusters(&self.emr)
    }

    fn cluster_state(&self, id: &str) -> String {
        common::emr::cluster_state(&self.emr, id)
    }

    /// (id, name, state, args) of every step, oldest first.
    fn steps(&self, cluster_id: &str) -> Vec<common::emr::StepRow> {
        common::emr::steps(&self.emr, cluster_id)
    }

    /// Moves a step (or the cluster) through `states`, one every 400 ms, in moto.
    fn transitions(&self, cluster_id: &str, step_id: Option<&str>, states: &[&str], reason: &str) {
        common::emr::transitions(self.moto.port, cluster_id, step_id, states, reason);
    }
}

#[test]
fn provision_launches_exactly_the_plan_and_reuses_the_cluster_of_the_same_run_key() {
    let env = Env::new();
    env.deploy(DATE);
    let plan = env.plan_json(DATE);
    let request = &plan["run_job_flow"];

    let first = env.provision(DATE, &[]);
    assert_exit(&first, 0);
    let first = stdout_json(&first);
    assert_eq!(first["reused"], json!(false));
    let id = first["cluster_id"].as_str().unwrap().to_string();

    common::emr::assert_cluster_is_request(&env.emr, &id, request);

    // The same run key again: the cluster is reused, not doubled.
    let second = env.provision(DATE, &[]);
    assert_exit(&second, 0);
    let second = stdout_json(&second);
    assert_eq!(second["cluster_id"], json!(id));
    assert_eq!(second["reused"], json!(true));
    assert_eq!(
        env.active_for_run_key("match-rate/2026-11-20"),
        [id.as_str()]
    );

    // --no-reuse refuses instead.
    let refused = env.provision(DATE, &["--no-reuse"]);
    assert_exit(&refused, 1);
    assert!(stderr(&refused).contains(&id), "{}", stderr(&refused));
    assert_eq!(env.all_clusters(), 1);
}

#[test]
fn two_provisions_at_once_leave_one_active_cluster() {
    let env = Env::new();
    env.deploy(DATE);
    let spec = env.spec();
    let args = [
        "provision",
        spec.as_str(),
        "--date",
        DATE,
        "--format",
        "json",
    ];
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.command()
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        assert_exit(output, 0);
    }
    let ids: Vec<Value> = outputs
        .iter()
        .map(|o| stdout_json(o)["cluster_id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1], "both report the one surviving cluster");
    assert_eq!(
        env.active_for_run_key("match-rate/2026-11-20"),
        [ids[0].as_str().unwrap()]
    );
}

#[test]
fn create_roles_twice_leaves_one_role_each_with_the_plans_documents() {
    let env = Env::new();
    env.deploy(DATE);
    let plan = env.plan_json(DATE);
    for _ in 0..2 {
        let output = env.provision(DATE, &["--create-roles"]);
        assert_exit(&output, 0);
    }
    let roles = plan["iam"].as_object().unwrap();
    block(async {
        let listed = env.iam.list_roles().send().await.unwrap();
        for (name, documents) in roles {
            let count = listed
                .roles()
                .iter()
                .filter(|r| r.role_name() == name)
                .count();
            assert_eq!(count, 1, "role {name}");
            let role = env.iam.get_role().role_name(name).send().await.unwrap();
            let trust = role.role().unwrap().assume_role_policy_document().unwrap();
            assert_eq!(
                parse_document(trust).as_ref(),
                Some(&documents["trust_policy"])
            );
            for (policy, document) in documents["inline_policies"].as_object().unwrap() {
                let got = env
                    .iam
                    .get_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    parse_document(got.policy_document()).as_ref(),
                    Some(document),
                    "{name}/{policy}"
                );
            }
            let inline = env
                .iam
                .list_role_policies()
                .role_name(name)
                .send()
                .await
                .unwrap();
            assert_eq!(
                inline.policy_names().len(),
                documents["inline_policies"].as_object().unwrap().len()
            );
            let attached = env
                .iam
                .list_attached_role_policies()
                .role_name(name)
                .send()
                .await
                .unwrap();
            let arns: Vec<Value> = attached
                .attached_policies()
                .iter()
                .map(|p| json!(p.policy_arn()))
                .collect();
            assert_eq!(Value::Array(arns), documents["managed_policy_arns"]);
        }
        let profiles = env.iam.list_instance_profiles().send().await.unwrap();
        let profile_name = roles
            .values()
            .find_map(|r| r["instance_profile"].as_str())
            .unwrap();
        let matching: Vec<_> = profiles
            .instance_profiles()
            .iter()
            .filter(|p| p.instance_profile_name() == profile_name)
            .collect();
        assert_eq!(matching.len(), 1);
        let in_profile: Vec<&str> = matching[0].roles().iter().map(|r| r.role_name()).collect();
        assert_eq!(in_profile, [profile_name]);
    });
    assert_eq!(env.all_clusters(), 1);
}

#[test]
fn submit_adds_the_plans_steps_with_discrete_args() {
    let env = Env::new();
    env.deploy(DATE);
    let plan = env.plan_json(DATE);
    let id = env.provisioned(DATE);
    let spec = env.spec();

    let output = env.emrship(&[
        "submit",
        &spec,
        "--date",
        DATE,
        "--cluster-id",
        &id,
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let step_ids = stdout_json(&output)["step_ids"].clone();
    let want = &plan["add_job_flow_steps"]["Steps"][0];
    let steps = env.steps(&id);
    assert_eq!(steps.len(), 2, "the launch step and the submitted one");
    let (new_id, name, _, args) = &steps[1];
    assert_eq!(step_ids, json!([new_id]));
    assert_eq!(json!(name), want["Name"]);
    assert_eq!(json!(args), want["HadoopJarStep"]["Args"]);
    assert!(args.len() > 3, "arguments stay discrete: {args:?}");

    // By name: the cluster's name is the plan's.
    let name = plan["run_job_flow"]["Name"].as_str().unwrap();
    let output = env.emrship(&[
        "submit",
        &spec,
        "--date",
        DATE,
        "--cluster-name",
        name,
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    assert_eq!(env.steps(&id).len(), 3);

    let output = env.emrship(&["submit", &spec, "--date", DATE, "--cluster-name", "nope"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains(&id),
        "lists the active clusters: {}",
        stderr(&output)
    );
    assert_eq!(env.steps(&id).len(), 3);
}

#[test]
fn provision_wait_follows_the_launch_step_to_completed() {
    let env = Env::new();
    env.deploy(DATE);
    let spec = env.spec();
    let child = env
        .command()
        .args([
            "provision",
            &spec,
            "--date",
            DATE,
            "--wait",
            "--poll",
            "100ms",
            "--timeout",
            "60s",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the cluster exists, move its step on as EMR would.
    let started = Instant::now();
    let id = loop {
        if let Some(id) = env.active_for_run_key("match-rate/2026-11-20").pop() {
            break id;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no cluster");
        std::thread::sleep(Duration::from_millis(100));
    };
    let step = env.steps(&id).remove(0).0;
    env.transitions(&id, None, &["RUNNING"], "");
    env.transitions(&id, Some(&step), &["RUNNING", "COMPLETED"], "");
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 0);
    let result = stdout_json(&output);
    assert_eq!(result["outcome"], json!("completed"));
    assert_eq!(env.steps(&id)[0].2, "COMPLETED");
    assert!(
        stderr(&output).contains("RUNNING → COMPLETED"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn status_wait_follows_a_step_to_completed_failed_or_the_timeout() {
    let env = Env::new();
    env.deploy(DATE);
    let id = env.provisioned(DATE);
    let spec = env.spec();
    let submit = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let output = env.emrship(&["submit", &spec, "--date", DATE, "--cluster-id", &id]);
                assert_exit(&output, 0);
                String::from_utf8(output.stdout).unwrap().trim().to_string()
            })
            .collect()
    };
    let ids = submit(2);
    let status = |step: &str, timeout: &str| {
        env.emrship(&[
            "status",
            &id,
            "--step",
            step,
            "--wait",
            "--poll",
            "100ms",
            "--timeout",
            timeout,
            "--format",
            "json",
        ])
    };

    // PENDING → RUNNING → COMPLETED: exit 0.
    env.transitions(&id, Some(&ids[0]), &["RUNNING", "COMPLETED"], "");
    let output = status(&ids[0], "60s");
    assert_exit(&output, 0);
    let err = stderr(&output);
    assert!(err.contains("PENDING → RUNNING"), "{err}");
    assert!(err.contains("RUNNING → COMPLETED"), "{err}");
    assert_eq!(stdout_json(&output)["outcome"], json!("completed"));

    // A failed step: exit 4, named with EMR's reason.
    env.transitions(
        &id,
        Some(&ids[1]),
        &["RUNNING", "FAILED"],
        "Step failed with exitCode 1",
    );
    let output = status(&ids[1], "60s");
    assert_exit(&output, 4);
    let result = stdout_json(&output);
    assert_eq!(result["outcome"], json!("failed"));
    assert_eq!(result["failed_steps"], json!([ids[1]]));
    assert!(
        stderr(&output).contains("exitCode 1"),
        "{}",
        stderr(&output)
    );

    // The launch step stays RUNNING: the timeout ends the wait with exit 3, fast.
    let launch = env.steps(&id).remove(0).0;
    let started = Instant::now();
    let output = status(&launch, "1s");
    assert_exit(&output, 3);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(stdout_json(&output)["outcome"], json!("timeout"));

    // Without --wait: a snapshot of every step.
    let output = env.emrship(&["status", &id, "--format", "json"]);
    assert_exit(&output, 0);
    let snapshot = stdout_json(&output);
    let states: Vec<&str> = snapshot["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 3);
    assert!(
        states.contains(&"COMPLETED") && states.contains(&"FAILED"),
        "{states:?}"
    );
}

#[test]
fn status_shows_how_long_each_step_has_run() {
    let env = Env::new();
    env.deploy(DATE);
    let id = env.provisioned(DATE);
    let spec = env.spec();
    let output = env.emrship(&["submit", &spec, "--date", DATE, "--cluster-id", &id]);
    assert_exit(&output, 0);
    let submitted = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let reaches = |state: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while env
            .steps(&id)
            .iter()
            .any(|s| s.0 == submitted && s.2 != state)
        {
            assert!(Instant::now() < deadline, "the step never reached {state}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // RUNNING, then COMPLETED at least 1.2 s later.
    env.transitions(&id, Some(&submitted), &["RUNNING"], "");
    reaches("RUNNING");
    std::thread::sleep(Duration::from_millis(1200));
    env.transitions(&id, Some(&submitted), &["COMPLETED"], "");
    reaches("COMPLETED");

    let output = env.emrship(&["status", &id, "--format", "json"]);
    assert_exit(&output, 0);
    let snapshot = stdout_json(&output);
    let steps = snapshot["steps"].as_array().unwrap();
    let seconds = |field: &Value| {
        chrono::DateTime::parse_from_rfc3339(field.as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    let done = steps.iter().find(|s| s["id"] == json!(submitted)).unwrap();
    let ran = done["run_seconds"].as_i64().unwrap();
    assert_eq!(ran, seconds(&done["ended"]) - seconds(&done["started"]));
    assert!((1..=3).contains(&ran), "{done}");
    // The launch step still runs: its time counts up to now, with no end.
    let running = steps
        .iter()
        .find(|s| s["state"] == json!("RUNNING"))
        .unwrap();
    assert!(running["ended"].is_null());
    assert!(running["run_seconds"].as_u64().is_some(), "{running}");

    let output = env.emrship(&["status", &id]);
    assert_exit(&output, 0);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains(&format!("COMPLETED, ran {ran}s")), "{text}");
    assert!(text.contains("RUNNING, running for "), "{text}");
}

#[test]
fn terminate_and_down_end_the_clusters() {
    let env = Env::new();
    env.deploy(DATE);
    env.deploy("2026-11-21");
    let id = env.provisioned(DATE);
    let other = env.provisioned("2026-11-21");
    assert_ne!(id, other);

    let dry = env.emrship(&["terminate", &id, "--dry-run"]);
    assert_exit(&dry, 0);
    assert_eq!(env.cluster_state(&id), "WAITING");

    let output = env.emrship(&["terminate", &id, "--format", "json"]);
    assert_exit(&output, 0);
    assert!(["TERMINATING", "TERMINATED"].contains(&env.cluster_state(&id).as_str()));
    assert!(["WAITING", "RUNNING"].contains(&env.cluster_state(&other).as_str()));

    let spec = env.spec();
    let output = env.emrship(&["down", &spec, "--date", "2026-11-21", "--format", "json"]);
    assert_exit(&output, 0);
    assert_eq!(stdout_json(&output)["terminated"], json!([other]));
    assert!(["TERMINATING", "TERMINATED"].contains(&env.cluster_state(&other).as_str()));

    // Nothing left for the run key: say so, succeed.
    let output = env.emrship(&["down", &spec, "--date", "2026-11-21", "--format", "json"]);
    assert_exit(&output, 0);
    assert_eq!(stdout_json(&output)["terminated"], json!([]));
}

#[test]
fn unknown_cluster_ids_are_one_clear_error() {
    let env = Env::new();
    env.deploy(DATE);
    let spec = env.spec();
    for args in [
        vec!["status", "j-NOSUCHCLUSTER"],
        vec!["status", "j-NOSUCHCLUSTER", "--wait", "--timeout", "5s"],
        vec!["terminate", "j-NOSUCHCLUSTER"],
        vec![
            "submit",
            &spec,
            "--date",
            DATE,
            "--cluster-id",
            "j-NOSUCHCLUSTER",
        ],
    ] {
        let output = env.emrship(&args);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains("no cluster j-NOSUCHCLUSTER in region us-east-1"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one error: {err}");
    }
}

#[test]
fn without_credentials_nothing_is_created() {
    let env = Env::new();
    env.deploy(DATE);
    let spec = env.spec();
    let output = env
        .command()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["provision", &spec, "--date", DATE, "--create-roles"])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no AWS credentials"),
        "{}",
        stderr(&output)
    );
    assert_eq!(env.all_clusters(), 0);
    let roles = block(async { env.iam.list_roles().send().await.unwrap() });
    assert!(roles.roles().is_empty());
}

#[test]
fn provision_refuses_a_run_that_is_not_deployed() {
    let env = Env::new();
    let spec = env.spec();

    // Bundle built but nothing in S3 (the bucket does not even exist).
    let output = env.provision(DATE, &[]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("is missing"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("emrship deploy"),
        "{}",
        stderr(&output)
    );

    // No bundle built at all: the plan's bundle is pending.
    std::fs::remove_file(env.dir.path().join("target/emrship/match-rate/bundle.zip")).unwrap();
    let output = env.emrship(&["provision", &spec, "--date", DATE]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("pending-build"),
        "{}",
        stderr(&output)
    );
    assert_eq!(env.all_clusters(), 0);
}

#[test]
fn dry_run_prints_the_request_and_calls_nothing() {
    let env = Env::new();
    env.deploy(DATE);
    let plan = env.plan_json(DATE);
    let output = env.provision(DATE, &["--dry-run", "--create-roles"]);
    assert_exit(&output, 0);
    let would = stdout_json(&output);
    assert_eq!(would["run_job_flow"], plan["run_job_flow"]);
    assert_eq!(would["iam"], plan["iam"]);
    assert_eq!(env.all_clusters(), 0);
    let roles = block(async { env.iam.list_roles().send().await.unwrap() });
    assert!(roles.roles().is_empty());
}

#[test]
fn a_spec_error_exits_2_before_any_call() {
    let env = Env::new();
    let bad = env.dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: broken\nrelease: emr-7.5.0\n").unwrap();
    let output = env.emrship(&["provision", bad.to_str().unwrap(), "--date", DATE]);
    assert_exit(&output, 2);
    assert_eq!(env.all_clusters(), 0);
}

#[test]
fn provision_and_submit_survive_throttling_503s_and_dropped_connections() {
    let env = Env::new();
    env.deploy(DATE);
    let proxy = FaultProxy::start(
        env.moto.port,
        FaultMix {
            throttle: 8,
            unavailable: 6,
            drop_before: 6,
            drop_after: 6,
        },
        4,
    );
    let spec = env.spec();
    let through_proxy = |args: &[&str]| {
        env.command()
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .args(args)
            .output()
            .unwrap()
    };
    let output = through_proxy(&[
        "provision",
        &spec,
        "--date",
        DATE,
        "--create-roles",
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let id = stdout_json(&output)["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.active_for_run_key("match-rate/2026-11-20"),
        [id.as_str()],
        "one active cluster for the run key"
    );
    // Provision again through the faults: still the same one cluster.
    let output = through_proxy(&["provision", &spec, "--date", DATE, "--format", "json"]);
    assert_exit(&output, 0);
    assert_eq!(stdout_json(&output)["cluster_id"], json!(id));
    assert_eq!(
        env.active_for_run_key("match-rate/2026-11-20"),
        [id.as_str()]
    );

    let output = through_proxy(&[
        "submit",
        &spec,
        "--date",
        DATE,
        "--cluster-id",
        &id,
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let submitted = stdout_json(&output)["step_ids"].clone();
    let steps = env.steps(&id);
    assert!(
        steps.iter().any(|s| json!([s.0]) == submitted),
        "{steps:?} / {submitted}"
    );
    for fate in [
        Fate::Throttled,
        Fate::Unavailable,
        Fate::DroppedBefore,
        Fate::DroppedAfter,
    ] {
        assert!(proxy.count(fate) > 0, "the proxy injected {fate:?}");
    }
}
