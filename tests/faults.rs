//! `emrship deploy`, `provision` and `submit` through a loopback proxy that throttles, answers
//! 503, and drops connections before and after moto acted (tests/common/fault_proxy.rs), with
//! the resulting state asserted straight against moto: one cluster per run key, the step there,
//! every artifact intact at its content-addressed key, no multipart upload left open.
//!
//! Also: an upload that fails for good is aborted (nothing orphaned, nothing half-written), and
//! a step that fails under `submit --wait` is explained from its logs before exit 4.
#![cfg(feature = "aws")]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use common::elf::binaries;
use common::emr::{active_for_run_key, assert_exit, block, stderr, stdout_json, transitions};
use common::fault_proxy::{Fate, FaultMix, FaultProxy, Rule};
use common::moto::Moto;
use common::project::{match_rate_spec, set_mode};

const BUCKET: &str = "emrship-faults";
const NAME: &str = "faults";
const DATE: &str = "2026-11-20";
const RUN_KEY: &str = "faults/2026-11-20";

/// 28 % of requests faulted, every kind.
const REALISTIC: FaultMix = FaultMix {
    throttle: 8,
    unavailable: 7,
    drop_before: 6,
    drop_after: 7,
};

/// 9 MiB that deflate cannot shrink, so the bundle goes up as a multipart upload (> 8 MiB).
fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A spec in its own folder with one job file (`job_file_bytes` long) and a test job binary;
/// commands run in that folder, against moto through `endpoint`.
struct Project {
    moto: Moto,
    dir: tempfile::TempDir,
    s3: aws_sdk_s3::Client,
    emr: aws_sdk_emr::Client,
}

impl Project {
    fn new(job_file: &[u8]) -> Project {
        let moto = Moto::start_script("moto_emr_server.py");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("spec.yaml"),
            match_rate_spec(NAME, "emr-6.15.0", BUCKET, "job.bin"),
        )
        .unwrap();
        std::fs::write(dir.path().join("job.bin"), job_file).unwrap();
        set_mode(&dir.path().join("job.bin"), 0o644);
        std::fs::copy(
            &binaries().x86_64_glibc_2_26,
            dir.path().join("emrship-job"),
        )
        .unwrap();
        set_mode(&dir.path().join("emrship-job"), 0o755);
        let config = block(moto.sdk_config());
        let s3 = block(moto.s3());
        block(s3.create_bucket().bucket(BUCKET).send()).unwrap();
        Project {
            emr: aws_sdk_emr::Client::new(&config),
            moto,
            dir,
            s3,
        }
    }

    /// `emrship <args>` in the project folder, calling AWS at `endpoint`.
    fn command(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut command = self.moto.command(env!("CARGO_BIN_EXE_emrship"));
        command
            .current_dir(self.dir.path())
            .env("AWS_ENDPOINT_URL", endpoint)
            .args(args);
        command
    }

    fn run(&self, endpoint: &str, args: &[&str]) -> Output {
        self.command(endpoint, args).output().unwrap()
    }

    fn deploy(&self, endpoint: &str) -> Output {
        self.run(
            endpoint,
            &[
                "deploy",
                "spec.yaml",
                "--date",
                DATE,
                "--format",
                "json",
                "--binary",
                "emrship-job",
            ],
        )
    }

    fn provision(&self, endpoint: &str) -> Output {
        self.run(
            endpoint,
            &[
                "provision",
                "spec.yaml",
                "--date",
                DATE,
                "--create-roles",
                "--format",
                "json",
            ],
        )
    }

    /// Deploys and provisions straight to moto (no faults); the new cluster's id.
    fn deployed_and_provisioned(&self) -> String {
        let direct = self.moto.endpoint.clone();
        deploy_report(&self.deploy(&direct));
        let output = self.provision(&direct);
        assert_exit(&output, 0);
        cluster_id_of(&output)
    }

    fn submit_args<'a>(&self, cluster_id: &'a str) -> Vec<&'a str> {
        vec![
            "submit",
            "spec.yaml",
            "--date",
            DATE,
            "--cluster-id",
            cluster_id,
            "--format",
            "json",
        ]
    }

    fn key_of(uri: &str) -> String {
        uri.strip_prefix(&format!("s3://{BUCKET}/"))
            .unwrap_or_else(|| panic!("{uri} is not in {BUCKET}"))
            .to_string()
    }

    /// Every object key in the bucket, straight from moto.
    fn object_keys(&self) -> Vec<String> {
        block(async {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let listed = self
                    .s3
                    .list_objects_v2()
                    .bucket(BUCKET)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .unwrap();
                keys.extend(
                    listed
                        .contents()
                        .iter()
                        .map(|o| o.key().unwrap().to_string()),
                );
                token = listed.next_continuation_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            keys.sort();
            keys
        })
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        block(async {
            let object = self.s3.get_object().bucket(BUCKET).key(key).send().await;
            match object {
                Ok(object) => Some(object.body.collect().await.unwrap().to_vec()),
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => None,
                Err(e) => panic!("GetObject {key}: {e:?}"),
            }
        })
    }

    /// Multipart uploads still open in the bucket: (key, upload id).
    fn open_multipart_uploads(&self) -> Vec<(String, String)> {
        block(async {
            let listed = self
                .s3
                .list_multipart_uploads()
                .bucket(BUCKET)
                .send()
                .await
                .unwrap();
            listed
                .uploads()
                .iter()
                .map(|u| {
                    (
                        u.key().unwrap_or_default().to_string(),
                        u.upload_id().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    }

    /// Puts `text`, gzipped, at `<LogUri>/<cluster>/<name>.gz`.
    fn put_log(&self, cluster_id: &str, name: &str, text: &str) {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        let gz = encoder.finish().unwrap();
        block(
            self.s3
                .put_object()
                .bucket(BUCKET)
                .key(format!("logs/{cluster_id}/{name}.gz"))
                .body(gz.into())
                .send(),
        )
        .unwrap();
    }
}

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Deploy's JSON report (one entry per artifact), after checking it succeeded.
fn deploy_report(output: &Output) -> Vec<Value> {
    assert_exit(output, 0);
    stdout_json(output).as_array().unwrap().clone()
}

/// Checks that every reported artifact sits at its content-addressed key with its bytes, that
/// nothing else was written, and that no multipart upload is left open.
fn assert_artifacts_intact(project: &Project, report: &[Value]) {
    let mut want_keys = Vec::new();
    for entry in report {
        let key = Project::key_of(entry["s3_uri"].as_str().unwrap());
        let sha = entry["sha256"].as_str().unwrap();
        assert!(key.contains(sha), "the key {key} names its sha256 {sha}");
        let bytes = project
            .get(&key)
            .unwrap_or_else(|| panic!("nothing at {key}"));
        assert_eq!(sha256_hex(&bytes), sha, "{key}");
        assert_eq!(
            bytes.len() as u64,
            entry["bytes"].as_u64().unwrap(),
            "{key}"
        );
        want_keys.push(key);
    }
    want_keys.sort();
    assert_eq!(project.object_keys(), want_keys, "no stray objects");
    assert_eq!(
        project.open_multipart_uploads(),
        Vec::<(String, String)>::new(),
        "no multipart upload left open"
    );
}

/// deploy → provision → submit through the realistic fault mix under `seed`.
fn survive_faults(seed: u64) {
    let project = Project::new(&incompressible(9 * 1024 * 1024, seed));
    let proxy = FaultProxy::start(project.moto.port, REALISTIC, seed);

    let started = Instant::now();
    let output = project.deploy(&proxy.endpoint);
    let report = deploy_report(&output);
    let bundle = report.iter().find(|e| e["kind"] == "bundle").unwrap();
    assert!(
        bundle["parts"].as_u64().unwrap() >= 2,
        "the bundle went up in parts: {bundle}"
    );
    assert_artifacts_intact(&project, &report);

    let output = project.provision(&proxy.endpoint);
    assert_exit(&output, 0);
    let cluster_id = cluster_id_of(&output);
    assert_eq!(
        active_for_run_key(&project.emr, RUN_KEY),
        [cluster_id.as_str()],
        "exactly one active cluster for the run key"
    );
    let launch_steps = common::emr::steps(&project.emr, &cluster_id).len();

    let output = project.run(&proxy.endpoint, &project.submit_args(&cluster_id));
    assert_exit(&output, 0);
    let submitted: Vec<String> = stdout_json(&output)["step_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    let steps = common::emr::steps(&project.emr, &cluster_id);
    assert!(
        steps.iter().any(|s| s.0 == submitted[0]),
        "{steps:?} / {submitted:?}"
    );
    assert_eq!(
        steps.len(),
        launch_steps + 1,
        "the submitted step, once: {steps:?}"
    );
    assert_eq!(
        active_for_run_key(&project.emr, RUN_KEY),
        [cluster_id.as_str()]
    );
    // Nothing the later commands did disturbed the artifacts.
    assert_artifacts_intact(&project, &report);

    let seen = proxy.seen();
    for fate in [
        Fate::Throttled,
        Fate::Unavailable,
        Fate::DroppedBefore,
        Fate::DroppedAfter,
    ] {
        assert!(
            proxy.count(fate) > 0,
            "seed {seed}: the proxy injected no {fate:?} in {} requests",
            seen.len()
        );
    }
    let faulted = seen.iter().filter(|s| s.fate != Fate::Forwarded).count();
    eprintln!(
        "seed {seed}: {} requests, {faulted} faulted, {:.1} s",
        seen.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn deploy_provision_submit_survive_faults_seed_1() {
    survive_faults(1);
}

#[test]
fn deploy_provision_submit_survive_faults_seed_2() {
    survive_faults(2);
}

#[test]
fn deploy_provision_submit_survive_faults_seed_3() {
    survive_faults(3);
}

/// The `cluster_id` of a `provision --format json` run.
fn cluster_id_of(output: &Output) -> String {
    stdout_json(output)["cluster_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// At least one request matching `matches` was given `fate` by the proxy.
fn assert_hit(
    proxy: &FaultProxy,
    what: &str,
    fate: Fate,
    matches: fn(&common::fault_proxy::Seen) -> bool,
) {
    let hits = proxy
        .seen()
        .iter()
        .filter(|s| matches(s) && s.fate == fate)
        .count();
    assert!(hits > 0, "the proxy gave no {what} the fate {fate:?}");
}

/// Deploys a multipart-sized bundle while the proxy drops the answer to the first request
/// matching `matches` after moto acted on it, so the client retries; the deploy must still land
/// every artifact intact with nothing left open.
fn deploy_losing_the_first_answer_to(
    seed: u64,
    what: &str,
    matches: fn(&common::fault_proxy::Seen) -> bool,
) {
    let project = Project::new(&incompressible(9 * 1024 * 1024, seed));
    let proxy = FaultProxy::start_with_rules(
        project.moto.port,
        FaultMix::NONE,
        0,
        vec![Rule::first(1, Fate::DroppedAfter, matches)],
    );
    let report = deploy_report(&project.deploy(&proxy.endpoint));
    assert_hit(&proxy, what, Fate::DroppedAfter, matches);
    assert_artifacts_intact(&project, &report);
}

#[test]
fn a_lost_create_multipart_answer_leaves_no_orphaned_upload() {
    // moto starts the upload; the client never hears its id and retries.
    deploy_losing_the_first_answer_to(11, "CreateMultipartUpload", |s| s.is_create_multipart());
}

#[test]
fn a_lost_complete_multipart_answer_still_deploys() {
    // moto completes the object; the client never hears it and retries the completion.
    deploy_losing_the_first_answer_to(12, "CompleteMultipartUpload", |s| s.is_complete_multipart());
}

#[test]
fn an_upload_that_fails_for_good_is_aborted_and_leaves_nothing() {
    let project = Project::new(&incompressible(9 * 1024 * 1024, 13));
    let proxy = FaultProxy::start_with_rules(
        project.moto.port,
        FaultMix::NONE,
        0,
        vec![Rule::always(Fate::Refused, |s| s.is_upload_part())],
    );
    let output = project.deploy(&proxy.endpoint);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("uploading part"), "{err}");
    assert!(err.contains("s3:PutObject"), "names the permission: {err}");
    assert!(err.contains("aborted"), "{err}");
    assert!(output.stdout.is_empty(), "no report of a failed deploy");
    assert_hit(&proxy, "UploadPart", Fate::Refused, |s| s.is_upload_part());
    // The proxy saw the abort go through.
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.method == "DELETE" && s.has_query("uploadId") && s.fate == Fate::Forwarded),
        "AbortMultipartUpload was sent"
    );
    assert_eq!(
        project.open_multipart_uploads(),
        Vec::<(String, String)>::new()
    );
    let bundles: Vec<String> = project
        .object_keys()
        .into_iter()
        .filter(|k| k.contains("/bundles/"))
        .collect();
    assert_eq!(bundles, Vec::<String>::new(), "no bundle object");

    // The plan names the key the bundle would have had: nothing there.
    let plan = project.run(
        &project.moto.endpoint,
        &["plan", "spec.yaml", "--date", DATE, "--format", "json"],
    );
    assert_exit(&plan, 0);
    let bundle_uri = stdout_json(&plan)["uploads"][0]["s3_uri"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(bundle_uri.contains("/bundles/"), "{bundle_uri}");
    assert_eq!(project.get(&Project::key_of(&bundle_uri)), None);
}

const APP: &str = "application_1732168000000_0001";
const DRIVER: &str = "container_1732168000000_0001_01_000001";
const EXECUTOR: &str = "container_1732168000000_0001_01_000002";

#[test]
fn a_step_failing_under_submit_wait_is_diagnosed_from_its_logs_and_exits_4() {
    let project = Project::new(b"threshold = 0.5\n");
    let cluster_id = project.deployed_and_provisioned();
    let before: Vec<String> = common::emr::steps(&project.emr, &cluster_id)
        .into_iter()
        .map(|s| s.0)
        .collect();

    let mut args = project.submit_args(&cluster_id);
    args.extend(["--wait", "--poll", "100ms", "--timeout", "60s"]);
    let child = project
        .command(&project.moto.endpoint, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the step exists, leave its logs where EMR would and fail it.
    let started = Instant::now();
    let step = loop {
        let steps = common::emr::steps(&project.emr, &cluster_id);
        if let Some(new) = steps.into_iter().find(|s| !before.contains(&s.0)) {
            break new.0;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no step added");
        std::thread::sleep(Duration::from_millis(100));
    };
    project.put_log(
        &cluster_id,
        &format!("steps/{step}/stderr"),
        &fixture("step-stderr-cluster-mode-failed.log"),
    );
    project.put_log(
        &cluster_id,
        &format!("steps/{step}/controller"),
        &fixture("step-controller.log"),
    );
    project.put_log(
        &cluster_id,
        &format!("containers/{APP}/{DRIVER}/stderr"),
        &fixture("memory-driver-stderr.log"),
    );
    project.put_log(
        &cluster_id,
        &format!("containers/{APP}/{EXECUTOR}/stderr"),
        &fixture("executor-stderr-quiet.log"),
    );
    transitions(
        project.moto.port,
        &cluster_id,
        Some(&step),
        &["RUNNING", "FAILED"],
        "Step failed with exitCode 1",
    );
    let output = child.wait_with_output().unwrap();
    assert_exit(&output, 4);
    let result = stdout_json(&output);
    assert_eq!(result["outcome"], "failed");
    assert_eq!(result["failed_steps"], serde_json::json!([step]));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("Step {step} on {cluster_id} failed.")),
        "{err}"
    );
    assert!(
        err.contains(
            "YARN killed a Spark executor container for exceeding its physical memory limit (30.1 GiB used of 24.0 GiB)"
        ),
        "{err}"
    );
    assert!(
        err.contains("raise spark.executor.memoryOverhead"),
        "the advice: {err}"
    );
    assert!(
        err.contains(&format!("emrship logs {cluster_id} --step {step}")),
        "{err}"
    );
    assert_eq!(
        common::emr::steps(&project.emr, &cluster_id)
            .iter()
            .find(|s| s.0 == step)
            .unwrap()
            .2,
        "FAILED"
    );
}

/// AddJobFlowSteps has no idempotency token: were the SDK to retry an attempt whose answer was
/// lost, EMR would hold the step twice and the job would run twice. `submit` sends it without
/// SDK retries and reconciles with ListSteps before sending again.
#[test]
fn a_lost_add_job_flow_steps_answer_adds_the_step_once() {
    let project = Project::new(b"threshold = 0.5\n");
    let cluster_id = project.deployed_and_provisioned();
    let launch_steps = common::emr::steps(&project.emr, &cluster_id).len();
    // EMR adds the step; the client never hears it and the SDK sends AddJobFlowSteps again.
    let proxy = FaultProxy::start_with_rules(
        project.moto.port,
        FaultMix::NONE,
        0,
        vec![Rule::first(1, Fate::DroppedAfter, |s| {
            s.operation == "ElasticMapReduce.AddJobFlowSteps"
        })],
    );
    let output = project.run(&proxy.endpoint, &project.submit_args(&cluster_id));
    assert_exit(&output, 0);
    assert_hit(&proxy, "AddJobFlowSteps", Fate::DroppedAfter, |s| {
        s.operation == "ElasticMapReduce.AddJobFlowSteps"
    });
    let steps = common::emr::steps(&project.emr, &cluster_id);
    assert_eq!(
        steps.len(),
        launch_steps + 1,
        "the submitted step, once: {steps:?}"
    );
}
