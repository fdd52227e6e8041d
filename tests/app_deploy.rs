//! A user's PySpark application through `deploy`, `provision` and `submit` against moto (server
//! mode, with the EMR state hook), as a user runs them: the real binary, the standard endpoint
//! override, state asserted through the AWS APIs. The dependencies are built by real pip for the
//! nodes (CPython 3.9, manylinux, x86_64) and checked before anything is uploaded.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::emr::{assert_cluster_is_request, assert_exit, block, stderr, stdout_json};
use common::moto::{test_python, Moto};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BUCKET: &str = "emrship-app-test";
const DATE: &str = "2026-11-20";

/// The example application copied into a folder of its own, with a spec pointing at the test
/// bucket; every command runs in that folder (so its target/emrship/ lands there).
struct AppProject {
    moto: Moto,
    dir: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl AppProject {
    fn new(requirements: &str) -> AppProject {
        let moto = Moto::start_script("moto_emr_server.py");
        let dir = tempfile::tempdir().unwrap();
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        copy_tree(&repo.join("examples/pyspark-app"), &dir.path().join("app"));
        std::fs::write(dir.path().join("app/requirements.txt"), requirements).unwrap();
        // A bootstrap script of the user's own, given as a local path (uploaded like the rest).
        std::fs::create_dir_all(dir.path().join("bootstrap")).unwrap();
        std::fs::write(
            dir.path().join("bootstrap/tools.sh"),
            "#!/bin/bash\nset -euo pipefail\necho tools \"$@\"\n",
        )
        .unwrap();
        let spec = std::fs::read_to_string(repo.join("job-specs/pyspark-app.yaml"))
            .unwrap()
            .replace("project: ../examples/pyspark-app", "project: app")
            .replace("example-analytics", BUCKET)
            .replace(
                "  tags: { team: analytics }\n",
                "  tags: { team: analytics }\n  bootstrap:\n    - name: tools\n      path: bootstrap/tools.sh\n      args: [--fast]\n",
            );
        std::fs::write(dir.path().join("spec.yaml"), spec).unwrap();
        AppProject { moto, dir }
    }

    fn emrship(&self, args: &[&str]) -> Output {
        let mut command = self.moto.command(env!("CARGO_BIN_EXE_emrship"));
        command
            .current_dir(self.dir.path())
            .env("EMRSHIP_PYTHON", test_python())
            .args(args);
        command.output().unwrap()
    }

    fn deploy(&self) -> Output {
        self.emrship(&["deploy", "spec.yaml", "--date", DATE, "--format", "json"])
    }

    fn plan(&self) -> Value {
        let output = self.emrship(&["plan", "spec.yaml", "--date", DATE, "--format", "json"]);
        assert_exit(&output, 0);
        stdout_json(&output)
    }

    async fn keys(&self) -> Vec<String> {
        let s3 = self.moto.s3().await;
        let listed = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .collect();
        keys.sort();
        keys
    }
}

/// The key of a deploy report entry's object in the test bucket.
fn key_of(entry: &Value) -> String {
    entry["s3_uri"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap()
        .to_string()
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    object.body.collect().await.unwrap().to_vec()
}

const REQUIREMENTS: &str = "numpy==1.26.4\nsix==1.16.0\n";

fn deploy_report(output: &Output) -> Vec<Value> {
    assert_exit(output, 0);
    stdout_json(output).as_array().unwrap().clone()
}

#[test]
fn deploy_ships_every_piece_content_addressed_and_provision_and_submit_send_the_plans_steps() {
    let project = AppProject::new(REQUIREMENTS);
    block(async {
        let s3 = project.moto.s3().await;
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    });

    let first = deploy_report(&project.deploy());
    let kinds: Vec<&str> = first.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "app_entry",
            "app_modules",
            "app_file",
            "app_dependencies",
            "node_check",
            "user_bootstrap"
        ]
    );
    block(async {
        let s3 = project.moto.s3().await;
        for e in &first {
            assert_eq!(e["uploaded"], true, "{e}");
            let sha = e["sha256"].as_str().unwrap();
            let key = key_of(e);
            assert!(key.contains(sha), "the key {key} names its sha256 {sha}");
            let bytes = get(&s3, &key).await;
            assert_eq!(hex::encode(Sha256::digest(&bytes)), sha, "{key}");
        }
        // The dependency archive holds numpy built for the nodes: CPython 3.9, x86_64.
        let deps = first
            .iter()
            .find(|e| e["kind"] == "app_dependencies")
            .unwrap();
        let bytes = get(&s3, &key_of(deps)).await;
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("numpy/") && n.contains(".cpython-39-x86_64-linux-gnu.so")),
            "no CPython 3.9 x86_64 numpy module in the archive"
        );
    });

    // The plan now knows the archive's digest (deploy recorded it): nothing is pending.
    let plan = project.plan();
    assert!(!plan["uploads"].as_array().unwrap().is_empty());
    assert!(
        plan["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["pending"] == false),
        "{}",
        plan["uploads"]
    );
    let step_args = plan["add_job_flow_steps"]["Steps"][0]["HadoopJarStep"]["Args"].clone();
    let args: Vec<&str> = step_args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let archives = args[args.iter().position(|a| *a == "--archives").unwrap() + 1];
    assert!(
        archives.contains(&format!(
            "/deps/{}/emrship_deps.zip#emrship_deps",
            first[3]["sha256"].as_str().unwrap()
        )),
        "{archives}"
    );

    // The local bootstrap script runs from its content-addressed key, with its arguments.
    let tools = first
        .iter()
        .find(|e| e["kind"] == "user_bootstrap")
        .unwrap();
    let actions = plan["run_job_flow"]["BootstrapActions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "the node check and the spec's own");
    assert_eq!(actions[1]["Name"], "tools");
    assert_eq!(actions[1]["ScriptBootstrapAction"]["Path"], tools["s3_uri"]);
    assert_eq!(
        actions[1]["ScriptBootstrapAction"]["Args"],
        json!(["--fast"])
    );
    assert!(tools["s3_uri"].as_str().unwrap().contains("/scripts/"));

    // A second deploy sends nothing.
    let keys_before = block(project.keys());
    let second = deploy_report(&project.deploy());
    assert_eq!(second.len(), first.len(), "{second:?}");
    assert!(
        second.iter().all(|e| e["status"] == "unchanged"),
        "{second:?}"
    );
    assert_eq!(block(project.keys()), keys_before);

    // One changed config file: a new key for it, nothing else uploaded.
    std::fs::write(
        project.dir.path().join("app/conf/app.ini"),
        std::fs::read_to_string(project.dir.path().join("app/conf/app.ini"))
            .unwrap()
            .replace("seed = 20261120", "seed = 7"),
    )
    .unwrap();
    let third = deploy_report(&project.deploy());
    let uploaded: Vec<&str> = third
        .iter()
        .filter(|e| e["uploaded"] == true)
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(uploaded, ["app_file"]);

    // provision launches exactly the plan's request; submit adds exactly the plan's step.
    let plan = project.plan();
    let output = project.emrship(&[
        "provision",
        "spec.yaml",
        "--date",
        DATE,
        "--create-roles",
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let cluster_id = stdout_json(&output)["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    let config = block(project.moto.sdk_config());
    let emr = aws_sdk_emr::Client::new(&config);
    assert_cluster_is_request(&emr, &cluster_id, &plan["run_job_flow"]);
    let output = project.emrship(&[
        "submit",
        "spec.yaml",
        "--date",
        DATE,
        "--cluster-id",
        &cluster_id,
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let steps = common::emr::steps(&emr, &cluster_id);
    assert_eq!(steps.len(), 2, "the launch step and the submitted one");
    let want = &plan["add_job_flow_steps"]["Steps"][0];
    assert_eq!(json!(steps[1].1), want["Name"]);
    assert_eq!(json!(steps[1].3), want["HadoopJarStep"]["Args"]);
}

#[test]
fn a_requirement_without_a_wheel_for_the_nodes_stops_deploy_before_any_upload() {
    // docopt 0.6.2 is published as a source distribution only.
    let project = AppProject::new("docopt==0.6.2\n");
    block(async {
        let s3 = project.moto.s3().await;
        s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    });
    let output = project.deploy();
    assert_exit(&output, 2);
    let text = stderr(&output);
    assert!(text.contains("nothing was run or uploaded"), "{text}");
    assert!(
        text.contains("`docopt` has no wheel for CPython 3.9 manylinux (glibc ≤ 2.34) x86_64"),
        "{text}"
    );
    assert!(block(project.keys()).is_empty());
}
