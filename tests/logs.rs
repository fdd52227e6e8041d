//! `emrship logs` against moto's server mode: a real cluster record (RunJobFlow) with a LogUri and
//! a step (AddJobFlowSteps), S3 seeded with gzipped step, container and bootstrap logs (the
//! texts under tests/fixtures/logs/), and the real binary reading them back.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex, Weak};

use aws_sdk_emr::types::{
    HadoopJarStepConfig, InstanceGroupConfig, InstanceRoleType, JobFlowInstancesConfig, StepConfig,
};
use common::moto::Moto;
use serde_json::Value;

/// One emulator shared by the tests that run at the same time (each uses its own bucket and
/// cluster); it stops when the last of them drops it.
fn moto() -> Arc<Moto> {
    static SHARED: Mutex<Weak<Moto>> = Mutex::new(Weak::new());
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(moto) = shared.upgrade() {
        return moto;
    }
    let moto = Arc::new(Moto::start());
    *shared = Arc::downgrade(&moto);
    moto
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// The step args `emrship plan` renders for the match-rate job: native work, 4 GiB heap,
/// 20 GiB overhead, 5 cores.
fn match_rate_step_args() -> Vec<String> {
    [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        "--master",
        "yarn",
        "--name",
        "match-rate 2024-11-20",
        "--archives",
        "s3://example-ads-data/emrship/match-rate/bundles/9d1c6f0a.zip#bundle",
        "--num-executors",
        "3",
        "--executor-cores",
        "5",
        "--executor-memory",
        "4096m",
        "--conf",
        "spark.executor.memoryOverhead=20480m",
        "--conf",
        "spark.executorEnv.EMRSHIP_JOB_BIN=./bundle/emrship-job",
        "--conf",
        "spark.yarn.appMasterEnv.EMRSHIP_JOB_BIN=./bundle/emrship-job",
        "s3://example-ads-data/emrship/match-rate/scripts/655485/driver.py",
        "match-rate",
        "--date",
        "2024-11-20",
    ]
    .map(String::from)
    .to_vec()
}

const APP_PREFIX: &str = "s3://example-ads-data/emrship/sessions";

/// The step `emrship plan` renders for a PySpark application: its modules zipped for
/// `--py-files`, its config file with `--files`, its dependencies as an archive on both
/// PYTHONPATHs. `executor_pythonpath: false` leaves the executors' PYTHONPATH out, as a
/// hand-edited step might.
fn pyspark_step_args(executor_pythonpath: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        "--master",
        "yarn",
        "--name",
        "sessions 2024-11-20",
    ]
    .map(String::from)
    .to_vec();
    let mut option = |flag: &str, value: String| {
        args.push(flag.to_string());
        args.push(value);
    };
    option(
        "--py-files",
        format!("{APP_PREFIX}/modules-5e1f0c2a9b7d.zip"),
    );
    option("--files", format!("{APP_PREFIX}/files/3c9a/app.ini"));
    option(
        "--archives",
        format!("{APP_PREFIX}/deps-8f3e2a1b4c5d.zip#emrship_deps"),
    );
    option(
        "--conf",
        "spark.yarn.appMasterEnv.PYTHONPATH=./emrship_deps".into(),
    );
    if executor_pythonpath {
        option(
            "--conf",
            "spark.executorEnv.PYTHONPATH=./emrship_deps".into(),
        );
    }
    option(
        "--conf",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON=/usr/bin/python3.9".into(),
    );
    option(
        "--conf",
        "spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3.9".into(),
    );
    args.push(format!("{APP_PREFIX}/main-77aa.py"));
    args.extend(["--date".to_string(), "2024-11-20".to_string()]);
    args
}

/// The step `emrship plan` renders for a JVM application.
fn jvm_step_args() -> Vec<String> {
    [
        "spark-submit".to_string(),
        "--deploy-mode".into(),
        "cluster".into(),
        "--master".into(),
        "yarn".into(),
        "--class".into(),
        "com.example.sessions.Main".into(),
        "--jars".into(),
        format!("{APP_PREFIX}/jars/commons-csv-1.10.0-77c2.jar"),
        format!("{APP_PREFIX}/sessions-app-3e4f.jar"),
        "--date".into(),
        "2024-11-20".into(),
    ]
    .to_vec()
}

struct Cluster {
    moto: Arc<Moto>,
    bucket: String,
    id: String,
    steps: Vec<String>,
}

const APP: &str = "application_1732168000000_0001";
const DRIVER: &str = "container_1732168000000_0001_01_000001";
const EXECUTOR: &str = "container_1732168000000_0001_01_000002";

impl Cluster {
    /// A bucket and a cluster logging to it (as `s3n://`, the way EMR reports it) with `steps`
    /// match-rate steps, oldest first.
    async fn start(bucket: &str, release: &str, steps: usize) -> Cluster {
        Cluster::start_with_step(bucket, release, steps, match_rate_step_args()).await
    }

    /// The same with steps of these spark-submit args.
    async fn start_with_step(
        bucket: &str,
        release: &str,
        steps: usize,
        step_args: Vec<String>,
    ) -> Cluster {
        Cluster::start_on(moto(), bucket, release, steps, step_args).await
    }

    /// The same on a given emulator.
    async fn start_on(
        moto: Arc<Moto>,
        bucket: &str,
        release: &str,
        steps: usize,
        step_args: Vec<String>,
    ) -> Cluster {
        let config = moto.sdk_config().await;
        moto.s3()
            .await
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let emr = aws_sdk_emr::Client::new(&config);
        let group = |role: InstanceRoleType, count: i32| {
            InstanceGroupConfig::builder()
                .instance_role(role)
                .instance_type("m5.2xlarge")
                .instance_count(count)
                .build()
        };
        let cluster = emr
            .run_job_flow()
            .name("match-rate")
            .release_label(release)
            .log_uri(format!("s3n://{bucket}/emr-logs/"))
            .service_role("emrship-match-rate-service")
            .job_flow_role("emrship-match-rate-ec2")
            .instances(
                JobFlowInstancesConfig::builder()
                    .instance_groups(group(InstanceRoleType::Master, 1))
                    .instance_groups(group(InstanceRoleType::Core, 2))
                    .keep_job_flow_alive_when_no_steps(true)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let id = cluster.job_flow_id().unwrap().to_string();
        let mut step_ids = Vec::new();
        for n in 0..steps {
            let added = emr
                .add_job_flow_steps()
                .job_flow_id(&id)
                .steps(
                    StepConfig::builder()
                        .name(format!("match-rate match-rate 2024-11-2{n}"))
                        .action_on_failure(aws_sdk_emr::types::ActionOnFailure::Continue)
                        .hadoop_jar_step(
                            HadoopJarStepConfig::builder()
                                .jar("command-runner.jar")
                                .set_args(Some(step_args.clone()))
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
            step_ids.extend(added.step_ids().iter().cloned());
        }
        Cluster {
            moto,
            bucket: bucket.to_string(),
            id,
            steps: step_ids,
        }
    }

    /// Puts `text`, gzipped, at `<LogUri>/<cluster>/<name>.gz`.
    async fn put_log(&self, name: &str, text: &str) {
        self.moto
            .s3()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(format!("emr-logs/{}/{name}.gz", self.id))
            .body(gzip(text).into())
            .send()
            .await
            .unwrap();
    }

    /// The step's own logs, as a failed cluster-mode spark-submit leaves them.
    async fn put_failed_step_logs(&self, step: &str) {
        self.put_step_logs(step, "step-stderr-cluster-mode-failed.log")
            .await;
    }

    /// The step's stderr from `stderr_fixture`, and its controller log.
    async fn put_step_logs(&self, step: &str, stderr_fixture: &str) {
        self.put_log(&format!("steps/{step}/stderr"), &fixture(stderr_fixture))
            .await;
        self.put_log(
            &format!("steps/{step}/controller"),
            &fixture("step-controller.log"),
        )
        .await;
    }

    fn logs(&self, extra: &[&str]) -> Output {
        self.moto
            .command(env!("CARGO_BIN_EXE_emrship"))
            .arg("logs")
            .arg(&self.id)
            .args(extra)
            .output()
            .expect("run emrship logs")
    }

    fn logs_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        let output = self.logs(&args);
        assert!(output.status.success(), "{}", describe(&output));
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&output)))
    }
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn log_names(document: &Value) -> Vec<String> {
    document["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn memory_kill_names_the_overhead_to_raise_and_by_how_much() {
    let cluster = Cluster::start("logs-memory", "emr-7.5.0", 1).await;
    let step = &cluster.steps[0];
    cluster.put_failed_step_logs(step).await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("memory-driver-stderr.log"),
        )
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{EXECUTOR}/stderr"),
            &fixture("executor-stderr-quiet.log"),
        )
        .await;
    // Another application's containers: not this step's, so not fetched.
    cluster
        .put_log(
            "containers/application_1732168000000_0009/container_1732168000000_0009_01_000001/stderr",
            "24/11/21 05:00:00 ERROR another job: java.lang.OutOfMemoryError: Java heap space\n",
        )
        .await;

    let output = cluster.logs(&["--lines", "5"]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "Probable cause: YARN killed a Spark executor container for exceeding its physical memory limit (30.1 GiB used of 24.0 GiB)"
        ),
        "{text}"
    );
    // 30.1 GiB × 1.25 = 38529 MiB, minus the 4096m heap, rounded up to 512 MiB.
    assert!(
        text.contains(
            "raise spark.executor.memoryOverhead from 20480m (20 GiB) to at least 34816m (34 GiB)"
        ),
        "{text}"
    );
    assert!(text.contains("spark.executor.cores from 5 to 3"), "{text}");
    assert!(
        text.contains(&format!("==> containers/{APP}/{DRIVER}/stderr.gz")),
        "{text}"
    );
    // The driver's traceback after the lost executors is listed, not lost.
    assert!(
        text.contains("Also seen:\n  - the Spark driver raised py4j.protocol.Py4JJavaError"),
        "{text}"
    );

    let document = cluster.logs_json(&["--lines", "5"]);
    assert_eq!(document["cluster"], cluster.id.as_str());
    assert_eq!(document["step"], step.as_str());
    assert_eq!(document["diagnosis"]["kind"], "container_memory");
    let evidence = &document["diagnosis"]["evidence"][0];
    assert_eq!(
        evidence["log"],
        format!("containers/{APP}/{DRIVER}/stderr.gz").as_str()
    );
    assert_eq!(evidence["line"], 22);
    assert!(evidence["text"]
        .as_str()
        .unwrap()
        .contains("30.1 GB of 24 GB physical memory used"));
    let names = log_names(&document);
    assert_eq!(
        names,
        vec![
            format!("steps/{step}/stderr.gz"),
            format!("steps/{step}/controller.gz"),
            format!("containers/{APP}/{DRIVER}/stderr.gz"),
            format!("containers/{APP}/{EXECUTOR}/stderr.gz"),
        ]
    );
    // --lines bounds every tail.
    let tail = document["logs"][0]["tail"].as_str().unwrap();
    assert_eq!(tail.lines().count(), 5);
    assert!(tail.ends_with("Command exiting with ret '1'"));
    assert_eq!(
        document["logs"][0]["uri"],
        format!(
            "s3://logs-memory/emr-logs/{}/steps/{step}/stderr.gz",
            cluster.id
        )
        .as_str()
    );
}

#[tokio::test]
async fn glibc_mismatch_names_both_versions_and_the_target_to_build() {
    let cluster = Cluster::start("logs-glibc", "emr-6.15.0", 1).await;
    let step = &cluster.steps[0];
    cluster.put_failed_step_logs(step).await;
    cluster
        .put_log(
            &format!("containers/{APP}/{EXECUTOR}/stderr"),
            &fixture("glibc-executor-stderr.log"),
        )
        .await;
    let document = cluster.logs_json(&[]);
    let diagnosis = &document["diagnosis"];
    assert_eq!(diagnosis["kind"], "binary_does_not_fit");
    assert_eq!(
        diagnosis["cause"],
        "the shipped emrship-job needs glibc 2.36 but emr-6.15.0 nodes run Amazon Linux 2 with glibc 2.26: the binary does not fit the node"
    );
    // m5.2xlarge nodes are x86_64: one target, with the glibc suffix of Amazon Linux 2.
    let advice = diagnosis["advice"][0].as_str().unwrap();
    assert!(
        advice.contains("--target x86_64-unknown-linux-gnu.2.26`"),
        "{advice}"
    );
    assert!(!advice.contains("aarch64"), "{advice}");
    assert_eq!(diagnosis["evidence"].as_array().unwrap().len(), 5);
    assert_eq!(diagnosis["evidence"][0]["line"], 7);
}

#[tokio::test]
async fn s3_access_denied_names_the_missing_action_and_resource() {
    let cluster = Cluster::start("logs-access", "emr-7.5.0", 1).await;
    let step = &cluster.steps[0];
    cluster.put_failed_step_logs(step).await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("access-driver-stderr.log"),
        )
        .await;
    let output = cluster.logs(&[]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "Probable cause: S3 denied access (403): the role lacks s3:ListBucket on arn:aws:s3:::example-ads-logs"
        ),
        "{text}"
    );
    assert!(
        text.contains("grant s3:ListBucket on arn:aws:s3:::example-ads-logs (with an s3:prefix condition for the listed prefix) to the role emrship-match-rate-ec2"),
        "{text}"
    );
}

#[tokio::test]
async fn bootstrap_failure_explains_a_step_without_logs() {
    let cluster = Cluster::start("logs-bootstrap", "emr-7.5.0", 1).await;
    // The cluster failed while bootstrapping: only the node's bootstrap-action logs exist.
    cluster
        .put_log(
            "node/i-0a1b2c3d4e5f60718/bootstrap-actions/1/stderr",
            &fixture("bootstrap-stderr.log"),
        )
        .await;
    cluster
        .put_log("node/i-0a1b2c3d4e5f60718/bootstrap-actions/1/stdout", "")
        .await;
    let output = cluster.logs(&[]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Probable cause: bootstrap action 1 failed on i-0a1b2c3d4e5f60718, so the cluster never ran the step: S3 denied access (403): the role lacks s3:GetObject on arn:aws:s3:::example-ads-data/emrship/match-rate/bundles/9d1c6f0a.zip"),
        "{text}"
    );
    assert!(
        text.contains("node/i-0a1b2c3d4e5f60718/bootstrap-actions/1/stderr.gz line 15: emrship bootstrap (match-rate): cannot download"),
        "{text}"
    );
    // The step's own logs are missing, and the command says so.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("are not on S3 yet"), "{stderr}");
}

#[tokio::test]
async fn rust_panic_from_the_chosen_step() {
    // Two steps; the older one is asked for explicitly.
    let cluster = Cluster::start("logs-panic", "emr-7.5.0", 2).await;
    let older = &cluster.steps[0];
    cluster.put_failed_step_logs(older).await;
    cluster
        .put_log(
            &format!("containers/{APP}/{EXECUTOR}/stderr"),
            &fixture("panic-executor-stderr.log"),
        )
        .await;
    let document = cluster.logs_json(&["--step", older]);
    assert_eq!(document["step"], older.as_str());
    let diagnosis = &document["diagnosis"];
    assert_eq!(diagnosis["kind"], "rust_panic");
    assert_eq!(
        diagnosis["cause"],
        "emrship-job panicked in thread 'main' at src/job/kernels/match_rate.rs:214:38: called `Option::unwrap()` on a `None` value"
    );
    assert_eq!(diagnosis["evidence"][0]["line"], 5);
    assert!(diagnosis["also"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().contains("map exited with 101")));
}

#[tokio::test]
async fn job_error_line_with_its_cause_and_help() {
    let cluster = Cluster::start("logs-job-error", "emr-7.5.0", 1).await;
    let step = &cluster.steps[0];
    cluster.put_failed_step_logs(step).await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("job-error-driver-stderr.log"),
        )
        .await;
    let output = cluster.logs(&[]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Probable cause: emrship-job stopped with an error: cannot connect to postgres://emrship@ads-db.internal:5432/ads"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "containers/{APP}/{DRIVER}/stderr.gz line 6:   help: check the database's security group"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn python_traceback_from_the_driver() {
    let cluster = Cluster::start("logs-traceback", "emr-7.5.0", 1).await;
    let step = &cluster.steps[0];
    cluster.put_failed_step_logs(step).await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("traceback-driver-stderr.log"),
        )
        .await;
    let document = cluster.logs_json(&[]);
    let diagnosis = &document["diagnosis"];
    assert_eq!(diagnosis["kind"], "python_traceback");
    assert_eq!(
        diagnosis["cause"],
        "the Spark driver raised ValueError: invalid literal for int() with base 10: 'auto' in main (driver.py:47)"
    );
    let lines: Vec<u64> = diagnosis["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![4, 7, 8, 9]);
}

#[tokio::test]
async fn logs_not_there_yet_say_when_to_look_again() {
    let cluster = Cluster::start("logs-not-yet", "emr-7.5.0", 1).await;
    let output = cluster.logs(&[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let step = &cluster.steps[0];
    assert!(
        stderr.contains(&format!(
            "the logs of step {step} (RUNNING) are not on S3 yet"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("look again after "), "{stderr}");

    let output = cluster.logs(&["--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["logs"].as_array().unwrap().len(), 0);
    assert!(document["not_yet"]["look_again_after"].is_string());
    assert!(document["diagnosis"].is_null());
}

#[tokio::test]
async fn unknown_cluster_or_step_is_one_clear_error() {
    let cluster = Cluster::start("logs-unknown", "emr-7.5.0", 1).await;
    let output = cluster
        .moto
        .command(env!("CARGO_BIN_EXE_emrship"))
        .args(["logs", "j-NOSUCHCLUSTER1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cluster j-NOSUCHCLUSTER1 not found"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(output.stdout.is_empty());

    let output = cluster.logs(&["--step", "s-NOSUCHSTEP0001"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "error: step s-NOSUCHSTEP0001 not found on cluster {}",
            cluster.id
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn huge_logs_are_read_to_their_tail() {
    let cluster = Cluster::start("logs-huge", "emr-7.5.0", 1).await;
    let step = &cluster.steps[0];
    // ~5.5 MiB of chatter (well over the 4 MiB kept per log), then the failure at the very end.
    let mut text = String::new();
    for n in 0..40_000 {
        text.push_str(&format!(
            "24/11/21 06:{:02}:{:02} INFO BlockManagerInfo: Added broadcast_{n}_piece0 in memory on ip-10-0-1-23.ec2.internal:39457 (size: 12.1 KiB, free: 2.1 GiB)\n",
            (n / 60) % 60,
            n % 60
        ));
    }
    text.push_str(&fixture("traceback-driver-stderr.log"));
    cluster
        .put_log(&format!("steps/{step}/stderr"), &text)
        .await;
    let document = cluster.logs_json(&["--lines", "3"]);
    assert_eq!(document["logs"][0]["truncated"], true);
    let diagnosis = &document["diagnosis"];
    assert_eq!(diagnosis["kind"], "python_traceback");
    assert_eq!(diagnosis["evidence"][0]["tail_only"], true);
    assert!(document["logs"][0]["tail"]
        .as_str()
        .unwrap()
        .ends_with("Shutdown hook called"));
}

fn diagnosis_lines(diagnosis: &Value) -> Vec<(String, u64)> {
    diagnosis["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["log"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn advice(diagnosis: &Value) -> Vec<String> {
    diagnosis["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pyspark_module_missing_on_the_executors_points_at_their_pythonpath() {
    let cluster =
        Cluster::start_with_step("logs-app-module", "emr-7.5.0", 1, pyspark_step_args(false)).await;
    let step = &cluster.steps[0];
    cluster
        .put_step_logs(step, "pyspark-step-stderr-cluster-mode-failed.log")
        .await;
    for (container, file, name) in [
        (DRIVER, "stderr", "module-driver-stderr.log"),
        (DRIVER, "stdout", "module-driver-stdout.log"),
        (EXECUTOR, "stderr", "module-executor-stderr.log"),
    ] {
        cluster
            .put_log(
                &format!("containers/{APP}/{container}/{file}"),
                &fixture(name),
            )
            .await;
    }
    let output = cluster.logs(&[]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Probable cause: the application's Python found no module named 'shapely' on the executors only (the driver imported it)"),
        "{text}"
    );
    // Quoted from the executor's own log, not from the copies relayed into the driver's.
    assert!(
        text.contains(&format!(
            "containers/{APP}/{EXECUTOR}/stderr.gz line 20: ModuleNotFoundError: No module named 'shapely'"
        )),
        "{text}"
    );
    assert!(
        text.contains("the dependencies archive deps-8f3e2a1b4c5d.zip (#emrship_deps) reaches the driver but not the executors' Python: spark.executorEnv.PYTHONPATH is not set; it must include ./emrship_deps"),
        "{text}"
    );
    // That is the fix, whatever the archive holds: no advice to add the package.
    assert!(!text.contains("add it to job.pyspark.modules"), "{text}");
    // The generic "driver raised" reading of the same exception is not repeated.
    assert!(
        !text.contains("the Spark driver raised ModuleNotFoundError"),
        "{text}"
    );

    // With the executors' PYTHONPATH set, the archive simply lacks the package.
    let cluster =
        Cluster::start_with_step("logs-app-module-2", "emr-7.5.0", 1, pyspark_step_args(true))
            .await;
    let step = &cluster.steps[0];
    cluster
        .put_step_logs(step, "pyspark-step-stderr-cluster-mode-failed.log")
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{EXECUTOR}/stderr"),
            &fixture("module-executor-stderr.log"),
        )
        .await;
    let document = cluster.logs_json(&[]);
    assert_eq!(
        advice(&document["diagnosis"]),
        vec![
            "the modules zip modules-5e1f0c2a9b7d.zip was shipped with --py-files (its contents are not in the logs): is 'shapely' listed under job.pyspark.modules or in the requirements?".to_string(),
            "the driver imported shapely but the executors did not, although both have ./emrship_deps on their Python path: a module the driver finds through its own sys.path changes, or one installed on only some nodes, does not reach the executors; ship it with the job".to_string(),
            "add it to job.pyspark.modules if 'shapely' is your own code, or to the requirements if it is a package (`shapely`), then prove the fix with `emrship run <spec> --local` (the same step arguments and zips under real Spark), then `emrship deploy` and submit again".to_string(),
        ]
    );
}

#[tokio::test]
async fn numpy_built_for_a_newer_glibc_names_the_package_and_both_versions() {
    let cluster =
        Cluster::start_with_step("logs-app-native", "emr-7.5.0", 1, pyspark_step_args(true)).await;
    let step = &cluster.steps[0];
    cluster
        .put_step_logs(step, "pyspark-step-stderr-cluster-mode-failed.log")
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("native-driver-stderr.log"),
        )
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stdout"),
            &fixture("native-driver-stdout.log"),
        )
        .await;
    let document = cluster.logs_json(&[]);
    let diagnosis = &document["diagnosis"];
    assert_eq!(diagnosis["kind"], "native_module_does_not_fit");
    assert_eq!(
        diagnosis["cause"],
        "numpy 1.26.4 has a compiled module built for a newer Linux: it needs glibc 2.38 but emr-7.5.0 nodes run Amazon Linux 2023 with glibc 2.34"
    );
    let stdout_log = format!("containers/{APP}/{DRIVER}/stdout.gz");
    // The loader's error, then numpy's own account of it (which Python, which numpy).
    assert_eq!(
        diagnosis_lines(diagnosis),
        vec![
            (stdout_log.clone(), 8),
            (stdout_log.clone(), 27),
            (stdout_log.clone(), 37),
            (stdout_log.clone(), 38),
            (stdout_log.clone(), 43),
        ]
    );
    // m5.2xlarge nodes: x86_64; emr-7.5.0: Amazon Linux 2023, and the step's Python 3.9.
    assert_eq!(
        advice(diagnosis)[0],
        "pin a version of numpy that has a wheel the nodes support: manylinux_2_34 or older (Amazon Linux 2023, glibc 2.34), x86_64, cp39"
    );
    assert!(advice(diagnosis)[1].starts_with("`emrship deploy` checks every wheel's glibc tag"));
    // Not mistaken for emrship's own binary.
    assert!(!document.to_string().contains("emrship-job needs glibc"));
}

#[tokio::test]
async fn config_file_silently_skipped_says_where_files_land() {
    let cluster =
        Cluster::start_with_step("logs-app-config", "emr-7.5.0", 1, pyspark_step_args(true)).await;
    let step = &cluster.steps[0];
    cluster
        .put_step_logs(step, "pyspark-step-stderr-cluster-mode-failed.log")
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("config-driver-stderr.log"),
        )
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stdout"),
            &fixture("config-driver-stdout.log"),
        )
        .await;
    let output = cluster.logs(&[]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Probable cause: the application's configuration has no section 'data_source' (raised by the driver in load_settings (settings.py:11)): configparser.read() skips a file it cannot open without an error"),
        "{text}"
    );
    assert!(
        text.contains("each --files entry is linked there under its base name (or #alias)"),
        "{text}"
    );
    assert!(
        text.contains("the application reads './data/app.ini' (main-77aa.py:14): nothing is shipped under the name data: a path with a directory needs that directory shipped as an archive under that alias: list it in job.pyspark.files (`files: [data]` → `--archives …#data`), so that ./data/app.ini exists in every container; the step shipped --files app.ini and --archives deps-8f3e2a1b4c5d.zip#emrship_deps; app.ini itself is shipped with --files (s3://example-ads-data/emrship/sessions/files/3c9a/app.ini), but by base name: it is ./app.ini, not ./data/app.ini"),
        "{text}"
    );
    let stdout_log = format!("containers/{APP}/{DRIVER}/stdout.gz");
    assert!(
        text.contains(&format!("{stdout_log} line 7:   File ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{stdout_log} line 11: KeyError: 'data_source'")),
        "{text}"
    );
}

#[tokio::test]
async fn jvm_app_compiled_for_a_newer_java_names_both_versions() {
    let cluster = Cluster::start_with_step("logs-app-java", "emr-7.5.0", 1, jvm_step_args()).await;
    let step = &cluster.steps[0];
    cluster
        .put_step_logs(step, "jvm-step-stderr-cluster-mode-failed.log")
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("jvm-class-version-driver-stderr.log"),
        )
        .await;
    let document = cluster.logs_json(&[]);
    let diagnosis = &document["diagnosis"];
    assert_eq!(diagnosis["kind"], "java_version_mismatch");
    assert_eq!(
        diagnosis["cause"],
        "com.example.sessions.Main was compiled for Java 21 (class file version 65) but the JVM of emr-7.5.0 runs Java 17 (class file version 61)"
    );
    assert_eq!(
        diagnosis_lines(diagnosis),
        vec![(format!("containers/{APP}/{DRIVER}/stderr.gz"), 5)]
    );
    assert!(
        advice(diagnosis)[0].starts_with("compile the application jar (sessions-app-3e4f.jar) for Java 17: `javac --release 17`, Maven `<maven.compiler.release>17</maven.compiler.release>`"),
        "{:?}",
        advice(diagnosis)
    );
}

#[tokio::test]
async fn jvm_dependency_class_missing_names_the_jars_shipped() {
    let cluster = Cluster::start_with_step("logs-app-class", "emr-7.5.0", 1, jvm_step_args()).await;
    let step = &cluster.steps[0];
    cluster
        .put_step_logs(step, "jvm-step-stderr-cluster-mode-failed.log")
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("jvm-missing-class-driver-stderr.log"),
        )
        .await;
    let output = cluster.logs(&[]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    assert!(
        text.contains("Probable cause: the class org.yaml.snakeyaml.LoaderOptions is on no jar of the application's classpath: a dependency jar is missing from --jars"),
        "{text}"
    );
    // The exception, and the application's own frame that needed the class.
    assert!(
        text.contains(&format!(
            "containers/{APP}/{DRIVER}/stderr.gz line 13: \tat com.example.sessions.Settings$.load(Settings.scala:18)"
        )),
        "{text}"
    );
    assert!(
        text.contains("the step shipped --jars commons-csv-1.10.0-77c2.jar: add the jar that holds org.yaml.snakeyaml.LoaderOptions to `job.jar.jars`"),
        "{text}"
    );
}

#[tokio::test]
async fn python_interpreter_the_nodes_lack() {
    let mut args = pyspark_step_args(true);
    for arg in args.iter_mut() {
        *arg = arg.replace("python3.9", "python3.11");
    }
    let cluster = Cluster::start_with_step("logs-app-python", "emr-6.15.0", 1, args).await;
    let step = &cluster.steps[0];
    cluster
        .put_step_logs(step, "pyspark-step-stderr-cluster-mode-failed.log")
        .await;
    cluster
        .put_log(
            &format!("containers/{APP}/{DRIVER}/stderr"),
            &fixture("interpreter-driver-stderr.log"),
        )
        .await;
    let document = cluster.logs_json(&[]);
    let diagnosis = &document["diagnosis"];
    assert_eq!(diagnosis["kind"], "python_interpreter_missing");
    assert_eq!(
        diagnosis["cause"],
        "the Python interpreter /usr/bin/python3.11 the step names does not exist on the nodes (the driver could not start it)"
    );
    assert_eq!(
        advice(diagnosis)[0],
        "/usr/bin/python3.11 is Python 3.11: emr-6.15.0 nodes have Python 3.7; choose a release whose nodes have Python 3.11 (emr-7.1.0 or later) or set the spec's `python:` to a version the nodes have, then `emrship plan` and submit again"
    );
}

#[tokio::test]
async fn follow_prints_each_new_line_once_until_the_step_ends() {
    // Its own emulator with EMR state changes, to end the step while it is followed.
    let moto = Arc::new(Moto::start_script("moto_emr_server.py"));
    let cluster =
        Cluster::start_on(moto, "logs-follow", "emr-7.5.0", 1, match_rate_step_args()).await;
    let step = cluster.steps[0].clone();
    let refused = cluster.logs(&["--step", &step, "--follow", "--format", "json"]);
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));

    cluster
        .put_log(&format!("steps/{step}/stderr"), "first line\npartial")
        .await;
    let child = cluster
        .moto
        .command(env!("CARGO_BIN_EXE_emrship"))
        .args([
            "logs",
            &cluster.id,
            "--step",
            &step,
            "--follow",
            "--poll",
            "200ms",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // EMR rewrites the whole object as the step writes more.
    cluster
        .put_log(
            &format!("steps/{step}/stderr"),
            "first line\npartial line\nsecond line\n",
        )
        .await;
    cluster
        .put_log(&format!("steps/{step}/stdout"), "out 1\n")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    common::emr::transitions(
        cluster.moto.port,
        &cluster.id,
        Some(&step),
        &["COMPLETED"],
        "",
    );
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "==> steps/{step}/stderr.gz <==\nfirst line\npartial line\nsecond line\n\
             ==> steps/{step}/stdout.gz <==\nout 1\n"
        )
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("about every 5 minutes"), "{stderr}");
    assert!(
        stderr.contains(&format!("step {step} ended COMPLETED")),
        "{stderr}"
    );
}
