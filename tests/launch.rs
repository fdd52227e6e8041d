//! The daily launch against moto's server mode (tests/python/moto_emr_server.py, which adds
//! EMR state changes on request): the scheduler Lambda's handler called in-process, `emrship
//! run <spec> --date D` and `emrship backfill`, all behind the run-key guard.
#![cfg(feature = "aws")]

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::emr::{
    assert_exit, block, match_rate_spec_path, stderr, stdout_json, MatchRateProject,
};
use emrship::render::artifacts::{Digest256, PlanInputs};
use emrship::schedule::handler::{handle, HandlerContext};
use emrship::schedule::PlanTemplate;
use emrship::spec::{self, LayerText, RunContext};

const PLAN_OBJECT: &str = "s3://example-ads-data/emrship/match-rate/schedule/plan.json";

type Env = MatchRateProject;

impl Env {
    /// Stores the plan template `emrship schedule` would: the spec as the CLI reads it (named
    /// by the same path) and the bundle's digest.
    fn store_template(&self) {
        let base = LayerText {
            name: self.spec(),
            text: std::fs::read_to_string(match_rate_spec_path()).unwrap(),
        };
        let date = common::run_date();
        let (job, _) = spec::load_and_resolve(&base, &[], &[], RunContext { date })
            .unwrap_or_else(|d| panic!("{}", d.render()));
        let inputs = PlanInputs {
            bundle: Some(Digest256::of(&self.bundle)),
            job_files: Vec::new(),
            app: None,
            bootstrap_scripts: Vec::new(),
        };
        let template = PlanTemplate::from_layers(&base, &[], &[], &inputs, &job);
        self.put(PLAN_OBJECT, template.to_json().into_bytes());
    }

    fn put(&self, uri: &str, bytes: Vec<u8>) {
        let uri = emrship::spec::s3::S3Uri::parse(uri).unwrap();
        block(async {
            let s3 = self.moto.s3().await;
            let _ = s3.create_bucket().bucket(&uri.bucket).send().await;
            s3.put_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .body(bytes.into())
                .send()
                .await
                .unwrap();
        });
    }

    fn context(&self, plan_object: &str) -> HandlerContext {
        HandlerContext {
            sdk: block(self.moto.sdk_config()),
            plan_object: plan_object.to_string(),
            path_style: true,
        }
    }

    fn active_for_run_key(&self, run_key: &str) -> Vec<String> {
        common::emr::active_for_run_key(&self.emr, run_key)
    }

    fn active_for_run_keys(&self, run_keys: &[String]) -> Vec<String> {
        let run_keys: Vec<&str> = run_keys.iter().map(String::as_str).collect();
        common::emr::active_for_run_keys(&self.emr, &run_keys)
    }

    fn all_clusters(&self) -> usize {
        common::emr::all_clusters(&self.emr)
    }

    /// Moves the cluster's launch step to COMPLETED and the cluster to TERMINATED (or the
    /// step to FAILED and the cluster to TERMINATED_WITH_ERRORS), and waits until EMR shows it.
    fn finish(&self, cluster_id: &str, succeed: bool) {
        let steps = common::emr::steps(&self.emr, cluster_id);
        let (step_end, cluster_end) = if succeed {
            ("COMPLETED", "TERMINATED")
        } else {
            ("FAILED", "TERMINATED_WITH_ERRORS")
        };
        for (step_id, ..) in &steps {
            common::emr::transitions(self.moto.port, cluster_id, Some(step_id), &[step_end], "");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while common::emr::steps(&self.emr, cluster_id)
            .iter()
            .any(|s| s.2 != step_end)
        {
            assert!(
                Instant::now() < deadline,
                "steps of {cluster_id} did not end"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        common::emr::transitions(self.moto.port, cluster_id, None, &[cluster_end], "");
        while common::emr::cluster_state(&self.emr, cluster_id) != cluster_end {
            assert!(Instant::now() < deadline, "{cluster_id} did not end");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// EventBridge's scheduled event for the rule `emrship schedule` creates.
fn scheduled_event(time: &str) -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time,
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/emrship-match-rate"],
        "detail": {}
    })
}

/// Calls the handler in-process, collecting its decision lines.
async fn call(context: &HandlerContext, event: &Value) -> (Result<Value, String>, Vec<Value>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let log = move |line: Value| sink.lock().unwrap().push(line);
    let result = handle(event, context, &log).await;
    let lines = lines.lock().unwrap().clone();
    (result, lines)
}

/// Cluster ids and versions vary from run to run; the rest of a decision line must not.
fn redacted(lines: &[Value]) -> Value {
    let mut text = serde_json::to_string(lines).unwrap();
    let ids = regex_lite::Regex::new(r"j-[0-9A-Z]{6,}").unwrap();
    text = ids.replace_all(&text, "j-<id>").into_owned();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    for line in value.as_array_mut().unwrap() {
        for key in ["written_by", "read_by"] {
            if line.get(key).is_some() {
                line[key] = json!("<version>");
            }
        }
    }
    value
}

#[test]
fn the_scheduled_handler_launches_the_days_plan_once_even_twice_or_concurrently() {
    let env = Env::new();
    env.store_template();
    let context = env.context(PLAN_OBJECT);

    // 06:00 UTC on the 21st, `date: yesterday` in UTC → the 20th.
    let event = scheduled_event("2026-11-21T06:00:00Z");
    let (first, lines) = block(call(&context, &event));
    let first = first.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first["decision"], "launched");
    assert_eq!(first["date"], "2026-11-20");
    assert_eq!(first["run_key"], "match-rate/2026-11-20");
    let id = first["cluster_id"].as_str().unwrap().to_string();
    insta::assert_json_snapshot!("scheduled_launch_decisions", redacted(&lines));

    // Exactly the request `emrship plan --date 2026-11-20` renders.
    let plan = env.plan_json("2026-11-20");
    common::emr::assert_cluster_is_request(&env.emr, &id, &plan["run_job_flow"]);

    // Called again (EventBridge delivers at least once): nothing new.
    let (again, lines) = block(call(&context, &event));
    let again = again.unwrap();
    assert_eq!(again["decision"], "already-active");
    assert_eq!(again["cluster_id"], json!(id));
    insta::assert_json_snapshot!("scheduled_again_decisions", redacted(&lines));
    assert_eq!(env.all_clusters(), 1);

    // Two invocations at once for another day (a manual event): one cluster stays.
    let event = json!({"date": "2026-11-18"});
    let (a, b) = block(async {
        let (a, b) = tokio::join!(call(&context, &event), call(&context, &event));
        (a.0.unwrap(), b.0.unwrap())
    });
    assert_eq!(a["cluster_id"], b["cluster_id"], "{a} / {b}");
    let decisions = [
        a["decision"].as_str().unwrap(),
        b["decision"].as_str().unwrap(),
    ];
    assert!(decisions.contains(&"launched"), "{decisions:?}");
    assert_eq!(
        env.active_for_run_key("match-rate/2026-11-18"),
        [a["cluster_id"].as_str().unwrap()]
    );
    let plan = env.plan_json("2026-11-18");
    common::emr::assert_cluster_is_request(
        &env.emr,
        a["cluster_id"].as_str().unwrap(),
        &plan["run_job_flow"],
    );

    // A completed day is not launched again; a failed one is, naming the failed attempt.
    env.finish(&id, true);
    let (done, _) = block(call(&context, &json!({"date": "2026-11-20"})));
    let done = done.unwrap();
    assert_eq!(done["decision"], "already-completed");
    assert_eq!(done["cluster_id"], json!(id));
    let failed = a["cluster_id"].as_str().unwrap();
    env.finish(failed, false);
    let (rerun, lines) = block(call(&context, &json!({"date": "2026-11-18"})));
    let rerun = rerun.unwrap();
    assert_eq!(rerun["decision"], "launched");
    assert_ne!(rerun["cluster_id"], json!(failed));
    let guard = lines.iter().find(|l| l["decision"] == "guard").unwrap();
    // The duplicate the concurrent launch terminated ended without completing too.
    assert!(
        guard["previous_attempts"]
            .as_array()
            .unwrap()
            .contains(&json!(failed)),
        "{guard}"
    );
}

#[test]
fn a_plan_object_that_cannot_be_read_is_one_clear_error_and_no_cluster() {
    let env = Env::new();
    env.put(
        PLAN_OBJECT,
        b"{\"format\": \"emrship-plan-template\", \"vers".to_vec(),
    );
    let missing = "s3://example-ads-data/emrship/match-rate/schedule/missing.json";
    let event = scheduled_event("2026-11-21T06:00:00Z");
    for (uri, needle) in [
        (missing, "NoSuchKey"),
        (PLAN_OBJECT, "not valid JSON"),
        ("s3://no-such-bucket-here/plan.json", "NoSuchBucket"),
    ] {
        let (result, lines) = block(call(&env.context(uri), &event));
        let error = result.unwrap_err();
        assert!(error.contains(uri), "{error}");
        assert!(error.contains(needle), "{needle}: {error}");
        assert_eq!(lines, [json!({"decision": "error", "error": error})]);
    }
    let (result, _) = block(call(&env.context(PLAN_OBJECT), &json!({"when": "now"})));
    assert!(result.unwrap_err().contains("neither `date` nor `time`"));
    assert_eq!(env.all_clusters(), 0);
}

#[test]
fn run_date_launches_one_day_and_backfill_the_days_without_a_cluster() {
    let env = Env::new();
    env.deploy("2026-11-10");
    let spec = env.spec();

    // `run --date`: one day, then skipped.
    let run = |date: &str| env.emrship(&["run", &spec, "--date", date, "--format", "json"]);
    let output = run("2026-11-11");
    assert_exit(&output, 0);
    let first = stdout_json(&output);
    assert_eq!(first["outcome"], "launched");
    let day_11 = first["cluster_id"].as_str().unwrap().to_string();
    common::emr::assert_cluster_is_request(
        &env.emr,
        &day_11,
        &env.plan_json("2026-11-11")["run_job_flow"],
    );
    let output = run("2026-11-11");
    assert_exit(&output, 0);
    let again = stdout_json(&output);
    assert_eq!(again["outcome"], "already-active");
    assert_eq!(again["cluster_id"], json!(day_11));

    // Two days of the range already ran to completion; a third failed.
    env.finish(&day_11, true);
    let day_14 = stdout_json(&run("2026-11-14"))["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.finish(&day_14, true);
    let day_12 = stdout_json(&run("2026-11-12"))["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.finish(&day_12, false);
    assert_eq!(env.all_clusters(), 3);

    // Backfill the 10th to the 16th, two at a time; this test plays EMR and ends a cluster
    // whenever two of the backfill's are active, watching that never more than two are.
    let mut child = env
        .command()
        .args([
            "backfill",
            &spec,
            "--from",
            "2026-11-10",
            "--to",
            "2026-11-16",
            "--max-parallel",
            "2",
            "--poll",
            "100ms",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let days: Vec<String> = (10..=16)
        .map(|d| format!("match-rate/2026-11-{d}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut most_active = 0;
    let mut ended = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "backfill did not finish");
        let active = env.active_for_run_keys(&days);
        most_active = most_active.max(active.len());
        assert!(
            active.len() <= 2,
            "more than --max-parallel active: {active:?}"
        );
        if active.len() == 2 {
            env.finish(&active[0], true);
            ended += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 0);
    let report = stdout_json(&output);
    assert_eq!(report["launched"], 5, "{report}");
    assert_eq!(report["already_completed"], 2, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let outcomes: Vec<(String, String)> = report["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                d["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("10", "launched"),
        ("11", "already-completed"),
        ("12", "launched"),
        ("13", "launched"),
        ("14", "already-completed"),
        ("15", "launched"),
        ("16", "launched"),
    ]
    .iter()
    .map(|(d, o)| (format!("2026-11-{d}"), o.to_string()))
    .collect();
    assert_eq!(outcomes, want);
    assert_eq!(report["days"][2]["previous_attempts"], json!([day_12]));
    assert_eq!(most_active, 2);
    assert!(
        ended >= 3,
        "the backfill had to wait for slots ({ended} ended)"
    );
    assert_eq!(env.all_clusters(), 3 + 5);
}

#[test]
fn backfill_dry_run_calls_nothing_and_a_bad_range_is_refused() {
    let env = Env::new();
    let spec = env.spec();
    let output = env.emrship(&[
        "backfill",
        &spec,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
        "--dry-run",
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let report = stdout_json(&output);
    let days = report["days"].as_array().unwrap();
    assert_eq!(days.len(), 3);
    assert_eq!(days[0]["run_key"], "match-rate/2026-11-01");
    assert_eq!(
        days[2]["run_job_flow"],
        env.plan_json("2026-11-03")["run_job_flow"]
    );
    assert_eq!(env.all_clusters(), 0);

    let output = env.emrship(&[
        "backfill",
        &spec,
        "--from",
        "2026-11-03",
        "--to",
        "2026-11-01",
    ]);
    // A wrong argument: exit 2, as for a spec error (nothing was sent).
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("error: --from 2026-11-03 is after --to 2026-11-01"),
        "{}",
        stderr(&output)
    );
}
