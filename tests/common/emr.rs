//! EMR state through the API (straight to the emulator, never through a fault proxy), and the
//! test emulator's state changes (tests/python/moto_emr_server.py), for the tests that run
//! `emrship provision | submit | status`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;

use aws_sdk_emr::types::ClusterState;
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
            if described
                .cluster()
                .unwrap()
                .tags()
                .iter()
                .any(|t| t.key() == Some(RUN_KEY_TAG) && t.value() == Some(run_key))
            {
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
