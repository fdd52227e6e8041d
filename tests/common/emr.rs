//! EMR state through the API (straight to the emulator, never through a fault proxy), and the
//! test emulator's state changes (tests/python/moto_emr_server.py), for the tests that run
//! `emrship provision | submit | status`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;

use aws_sdk_emr::types::ClusterState;
use emrship::cli::SpecArgs;
use emrship::render::artifacts::Digest256;
use serde_json::{json, Value};

/// The cluster states `emrship` counts as active.
pub const ACTIVE: &[&str] = &["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"];

/// The tag holding a cluster's run key (`<job>/<date>`).
pub const RUN_KEY_TAG: &str = "emrship:run-key";

pub fn block<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(output)
    );
}

/// Active clusters carrying the run key tag.
pub fn active_for_run_key(emr: &aws_sdk_emr::Client, run_key: &str) -> Vec<String> {
    active_for_run_keys(emr, &[run_key])
}

/// Active clusters whose run key tag is one of `run_keys`, in the order EMR lists them.
pub fn active_for_run_keys(emr: &aws_sdk_emr::Client, run_keys: &[&str]) -> Vec<String> {
    block(async {
        let listed = emr
            .list_clusters()
            .set_cluster_states(Some(
                ACTIVE.iter().map(|s| ClusterState::from(*s)).collect(),
            ))
            .send()
            .await
            .unwrap();
        let mut ids = Vec::new();
        for cluster in listed.clusters() {
            let id = cluster.id().unwrap();
            let described = emr.describe_cluster().cluster_id(id).send().await.unwrap();
            if described.cluster().unwrap().tags().iter().any(|t| {
                t.key() == Some(RUN_KEY_TAG) && run_keys.iter().any(|k| t.value() == Some(*k))
            }) {
                ids.push(id.to_string());
            }
        }
        ids
    })
}

/// Every cluster, whatever its state.
pub fn all_clusters(emr: &aws_sdk_emr::Client) -> usize {
    block(async { emr.list_clusters().send().await.unwrap().clusters().len() })
}

pub fn cluster_state(emr: &aws_sdk_emr::Client, id: &str) -> String {
    block(async {
        emr.describe_cluster()
            .cluster_id(id)
            .send()
            .await
            .unwrap()
            .cluster()
            .unwrap()
            .status()
            .unwrap()
            .state()
            .unwrap()
            .as_str()
            .to_string()
    })
}

/// One step as listed: (id, name, state, args).
pub type StepRow = (String, String, String, Vec<String>);

/// Every step of the cluster, oldest first.
pub fn steps(emr: &aws_sdk_emr::Client, cluster_id: &str) -> Vec<StepRow> {
    block(async {
        let listed = emr
            .list_steps()
            .cluster_id(cluster_id)
            .send()
            .await
            .unwrap();
        let mut steps: Vec<_> = listed
            .steps()
            .iter()
            .map(|s| {
                (
                    s.id().unwrap().to_string(),
                    s.name().unwrap().to_string(),
                    s.status().unwrap().state().unwrap().as_str().to_string(),
                    s.config().unwrap().args().to_vec(),
                )
            })
            .collect();
        steps.reverse();
        steps
    })
}

/// Moves a step (or the cluster) through `states`, one every 400 ms, in the emulator listening
/// on `moto_port` (moto_emr_server.py's `/_emrship/emr-transitions`).
pub fn transitions(
    moto_port: u16,
    cluster_id: &str,
    step_id: Option<&str>,
    states: &[&str],
    reason: &str,
) {
    let body = json!({
        "cluster_id": cluster_id,
        "step_id": step_id,
        "states": states,
        "interval_ms": 400,
        "reason": reason,
    })
    .to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", moto_port)).unwrap();
    write!(
        stream,
        "POST /_emrship/emr-transitions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.lines().next().unwrap_or("").contains(" 200 "),
        "{response}"
    );
}

/// Drops empty `Properties` / `Configurations` members, which the API may or may not echo.
pub fn without_empty(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| {
                    !(v.as_array().is_some_and(|a| a.is_empty())
                        || v.as_object().is_some_and(|o| o.is_empty()))
                })
                .map(|(k, v)| (k.clone(), without_empty(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty).collect()),
        other => other.clone(),
    }
}

pub fn configuration_json(c: &aws_sdk_emr::types::Configuration) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("Classification".into(), json!(c.classification().unwrap()));
    if let Some(properties) = c.properties() {
        out.insert("Properties".into(), json!(properties));
    }
    out.insert(
        "Configurations".into(),
        Value::Array(c.configurations().iter().map(configuration_json).collect()),
    );
    without_empty(&Value::Object(out))
}

/// Asserts that cluster `id` is what `request` (a plan's `run_job_flow` JSON) asked for: name,
/// release, roles, configurations, tags, instance groups, bootstrap actions and steps, as the
/// API shows them.
pub fn assert_cluster_is_request(emr: &aws_sdk_emr::Client, id: &str, request: &Value) {
    block(async {
        let described = emr.describe_cluster().cluster_id(id).send().await.unwrap();
        let cluster = described.cluster().unwrap();
        assert_eq!(cluster.name(), request["Name"].as_str());
        assert_eq!(cluster.release_label(), request["ReleaseLabel"].as_str());
        assert_eq!(cluster.log_uri(), request["LogUri"].as_str());
        assert_eq!(cluster.service_role(), request["ServiceRole"].as_str());
        assert_eq!(
            cluster
                .ec2_instance_attributes()
                .unwrap()
                .iam_instance_profile(),
            request["JobFlowRole"].as_str()
        );
        let configurations: Vec<Value> = cluster
            .configurations()
            .iter()
            .map(configuration_json)
            .collect();
        assert_eq!(
            Value::Array(configurations),
            without_empty(&request["Configurations"])
        );
        let mut tags: Vec<(String, String)> = cluster
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
            .collect();
        tags.sort();
        let mut want: Vec<(String, String)> = request["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["Key"].as_str().unwrap().into(),
                    t["Value"].as_str().unwrap().into(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(tags, want);

        let groups = emr
            .list_instance_groups()
            .cluster_id(id)
            .send()
            .await
            .unwrap();
        let mut groups: Vec<Value> = groups
            .instance_groups()
            .iter()
            .map(|g| {
                json!({
                    "Name": g.name(),
                    "Market": g.market().map(|m| m.as_str()),
                    "InstanceRole": g.instance_group_type().map(|t| t.as_str()),
                    "InstanceType": g.instance_type(),
                    "InstanceCount": g.requested_instance_count(),
                })
            })
            .collect();
        let mut want_groups: Vec<Value> = request["Instances"]["InstanceGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                json!({
                    "Name": g["Name"], "Market": g["Market"], "InstanceRole": g["InstanceRole"],
                    "InstanceType": g["InstanceType"], "InstanceCount": g["InstanceCount"],
                })
            })
            .collect();
        let key = |v: &Value| v["InstanceRole"].to_string();
        groups.sort_by_key(key);
        want_groups.sort_by_key(key);
        assert_eq!(groups, want_groups);

        let actions = emr
            .list_bootstrap_actions()
            .cluster_id(id)
            .send()
            .await
            .unwrap();
        let actions: Vec<Value> = actions
            .bootstrap_actions()
            .iter()
            .map(|a| {
                json!({
                    "Name": a.name(),
                    "ScriptBootstrapAction": { "Path": a.script_path(), "Args": a.args() },
                })
            })
            .collect();
        assert_eq!(Value::Array(actions), request["BootstrapActions"]);
    });

    let steps = steps(emr, id);
    let want_steps = request["Steps"].as_array().unwrap();
    assert_eq!(steps.len(), want_steps.len());
    for ((_, name, _, args), want) in steps.iter().zip(want_steps) {
        assert_eq!(json!(name), want["Name"]);
        assert_eq!(json!(args), want["HadoopJarStep"]["Args"]);
    }
}

/// Uploads what `emrship deploy` would for `spec` on `date`: bundle, rendered scripts, job
/// files, at the plan's keys (`bundle` is the built bundle's bytes).
pub fn deploy(moto: &super::moto::Moto, spec: &Path, date: &str, bundle: &[u8]) {
    let args = SpecArgs {
        spec: spec.to_path_buf(),
        layers: Default::default(),
        date: Some(date.parse().unwrap()),
    };
    let loaded = emrship::cli::plan::load_plan_with_bundle(
        &args,
        Some(Digest256::of(bundle)),
        emrship::cli::Printer::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    block(async {
        let s3 = moto.s3().await;
        let mut buckets = std::collections::BTreeSet::new();
        for upload in &loaded.plan.uploads {
            let uri = &upload.s3_uri;
            if buckets.insert(uri.bucket.clone()) {
                let _ = s3.create_bucket().bucket(&uri.bucket).send().await;
            }
            let bytes = match upload.source.strip_prefix("rendered:") {
                Some(name) => loaded
                    .plan
                    .rendered_files
                    .iter()
                    .find(|f| f.name == name)
                    .unwrap()
                    .text
                    .clone()
                    .into_bytes(),
                None if upload.source.ends_with("bundle.zip") => bundle.to_vec(),
                None => std::fs::read(&upload.source).unwrap(),
            };
            assert_eq!(Some(bytes.len() as u64), upload.bytes, "{}", upload.source);
            s3.put_object()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .body(bytes.into())
                .send()
                .await
                .unwrap();
        }
    });
}

/// The match-rate example spec, which the EMR command tests run.
pub const MATCH_RATE_SPEC: &str = "job-specs/match-rate.yaml";

pub fn match_rate_spec_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(MATCH_RATE_SPEC)
}

/// One emulator (tests/python/moto_emr_server.py: moto plus EMR state changes on request) and
/// one working folder holding a built bundle where `emrship plan` looks for it (as `deploy`
/// leaves it at target/emrship/<name>/bundle.zip), with clients for asserting on the state.
pub struct MatchRateProject {
    pub moto: super::moto::Moto,
    pub dir: tempfile::TempDir,
    pub bundle: Vec<u8>,
    pub emr: aws_sdk_emr::Client,
    pub iam: aws_sdk_iam::Client,
}

impl MatchRateProject {
    pub fn new() -> MatchRateProject {
        let moto = super::moto::Moto::start_script("moto_emr_server.py");
        let dir = tempfile::tempdir().unwrap();
        let bundle_dir = dir.path().join("target/emrship/match-rate");
        std::fs::create_dir_all(&bundle_dir).unwrap();
        // Any bytes do: provision and launch only need the bundle's digest and the object in S3.
        let bundle: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(bundle_dir.join("bundle.zip"), &bundle).unwrap();
        let config = block(moto.sdk_config());
        MatchRateProject {
            emr: aws_sdk_emr::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            moto,
            dir,
            bundle,
        }
    }

    /// The real `emrship` binary, pointed at the emulator, run from the working folder.
    pub fn command(&self) -> std::process::Command {
        let mut command = self.moto.command(env!("CARGO_BIN_EXE_emrship"));
        command.current_dir(self.dir.path());
        command
    }

    pub fn emrship(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    pub fn spec(&self) -> String {
        match_rate_spec_path().display().to_string()
    }

    /// `emrship plan --date D --format json` from the working folder (so with the bundle).
    pub fn plan_json(&self, date: &str) -> Value {
        let output = self.emrship(&["plan", &self.spec(), "--date", date, "--format", "json"]);
        assert_exit(&output, 0);
        stdout_json(&output)
    }

    /// Uploads what `emrship deploy` would for `date`: bundle, rendered scripts, job files.
    pub fn deploy(&self, date: &str) {
        deploy(&self.moto, &match_rate_spec_path(), date, &self.bundle);
    }
}
