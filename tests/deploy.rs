//! `emrship deploy` against moto's S3 (server mode), run as a user runs it: the real binary,
//! the standard endpoint override, state asserted through the S3 API.
//!
//! The job binaries are small C programs compiled here with Zig (`python -m ziglang cc` from the
//! project's test environment) for the targets that matter: x86_64 and aarch64 against glibc
//! 2.26 (what emrship builds for), and x86_64 needing glibc 2.38 (too new for any EMR release).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::elf::binaries;
use common::emr::{block, stderr};
use common::moto::Moto;
use common::project::{match_rate_spec, set_mode};
use serde_json::Value;
use sha2::{Digest, Sha256};

const BUCKET: &str = "emrship-deploy-test";

/// A spec in its own folder, with one job file and a copy of a test binary beside it. Deploy
/// runs in that folder, so its local bundle (target/emrship/<name>/bundle.zip) lands there too.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(release: &str, binary: &Path) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("spec.yaml"),
            match_rate_spec("deploy-test", release, BUCKET, "job.conf"),
        )
        .unwrap();
        std::fs::write(dir.path().join("job.conf"), "threshold = 0.5\n").unwrap();
        set_mode(&dir.path().join("job.conf"), 0o644);
        std::fs::copy(binary, dir.path().join("emrship-job")).unwrap();
        set_mode(&dir.path().join("emrship-job"), 0o755);
        Project { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn deploy(&self, moto: &Moto, extra: &[&str]) -> Output {
        let mut command = moto.command(env!("CARGO_BIN_EXE_emrship"));
        command
            .current_dir(self.dir.path())
            .args([
                "deploy",
                "spec.yaml",
                "--date",
                "2026-11-20",
                "--format",
                "json",
            ])
            .args(["--binary", "emrship-job"])
            .args(extra);
        command.output().unwrap()
    }

    fn local_bundle(&self) -> PathBuf {
        self.path("target/emrship/deploy-test/bundle.zip")
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deploy's JSON report, after checking it succeeded.
fn report(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "deploy failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Value>(&output.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "deploy's stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
        .as_array()
        .unwrap()
        .clone()
}

fn entry<'a>(report: &'a [Value], kind: &str) -> &'a Value {
    report
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {report:?}"))
}

fn key_of(uri: &str) -> String {
    uri.strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("{uri} is not in {BUCKET}"))
        .to_string()
}

async fn create_bucket(s3: &aws_sdk_s3::Client) {
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
}

/// Every object in the bucket: key → (size, last modified, etag).
async fn objects(s3: &aws_sdk_s3::Client) -> Vec<(String, i64, String, String)> {
    let listed = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let mut objects: Vec<_> = listed
        .contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap().to_string(),
                o.size().unwrap(),
                o.last_modified().unwrap().to_string(),
                o.e_tag().unwrap_or_default().to_string(),
            )
        })
        .collect();
    objects.sort();
    objects
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

#[test]
fn deploy_puts_every_artifact_at_its_content_addressed_key_and_a_second_deploy_sends_nothing() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    block(async {
        let s3 = moto.s3().await;
        create_bucket(&s3).await;

        let first = report(&project.deploy(&moto, &[]));
        let kinds: Vec<&str> = first.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["bundle", "bootstrap_script", "spark_driver", "job_file"]
        );
        for e in &first {
            assert_eq!(e["uploaded"], true, "{e}");
            let key = key_of(e["s3_uri"].as_str().unwrap());
            let sha = e["sha256"].as_str().unwrap();
            assert!(key.contains(sha), "the key {key} names its sha256 {sha}");
            let bytes = get(&s3, &key).await;
            assert_eq!(sha256_hex(&bytes), sha, "{key}");
            assert_eq!(bytes.len() as u64, e["bytes"].as_u64().unwrap(), "{key}");
            // S3 checked and kept the SHA256 checksum sent with the upload.
            let head = s3
                .head_object()
                .bucket(BUCKET)
                .key(&key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            assert_eq!(
                head.checksum_sha256(),
                Some(emrship::render::artifacts::base64(&hex::decode(sha).unwrap()).as_str()),
                "{key}"
            );
        }

        // The bundle in S3 is the one written locally, with the binary executable inside.
        let bundle = entry(&first, "bundle");
        let bundle_key = key_of(bundle["s3_uri"].as_str().unwrap());
        assert!(bundle_key.starts_with("emrship/deploy-test/bundles/"));
        let zip_bytes = get(&s3, &bundle_key).await;
        assert_eq!(std::fs::read(project.local_bundle()).unwrap(), zip_bytes);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
        let mut names = Vec::new();
        for i in 0..zip.len() {
            let mut file = zip.by_index(i).unwrap();
            let name = file.name().unwrap().into_owned();
            let mode = file.unix_mode().unwrap() & 0o7777;
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            match name.as_str() {
                "emrship-job" => {
                    assert_eq!(mode, 0o755);
                    assert_eq!(content, std::fs::read(project.path("emrship-job")).unwrap());
                }
                "files/job.conf" => assert_eq!(content, b"threshold = 0.5\n"),
                "spec.yaml" => {
                    let text = String::from_utf8(content).unwrap();
                    assert!(
                        text.contains("dt={{date}}/"),
                        "run variables unfilled: {text}"
                    );
                }
                _ => {}
            }
            names.push(name);
        }
        assert_eq!(
            names,
            ["driver.py", "emrship-job", "files/job.conf", "spec.yaml"]
        );

        // The bootstrap script uploaded checks exactly this bundle.
        let bootstrap = get(
            &s3,
            &key_of(
                entry(&first, "bootstrap_script")["s3_uri"]
                    .as_str()
                    .unwrap(),
            ),
        )
        .await;
        let bootstrap = String::from_utf8(bootstrap).unwrap();
        assert!(bootstrap.contains(&format!(
            "BUNDLE_SHA256={}",
            bundle["sha256"].as_str().unwrap()
        )));
        assert!(bootstrap.contains(bundle["s3_uri"].as_str().unwrap()));

        // `emrship plan` afterwards shows the built bundle instead of `pending-build`.
        let plan = Command::new(env!("CARGO_BIN_EXE_emrship"))
            .current_dir(project.dir.path())
            .args([
                "plan",
                "spec.yaml",
                "--date",
                "2026-11-20",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(plan.status.success(), "{}", stderr(&plan));
        let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert_eq!(plan["uploads"][0]["sha256"], bundle["sha256"]);
        assert_eq!(plan["uploads"][0]["pending"], false);

        let before = objects(&s3).await;
        assert_eq!(before.len(), 4);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = report(&project.deploy(&moto, &[]));
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a["s3_uri"], b["s3_uri"]);
            assert_eq!(b["uploaded"], false, "{b}");
            assert_eq!(b["status"], "unchanged", "{b}");
        }
        // Nothing was rewritten: same objects, same LastModified.
        assert_eq!(objects(&s3).await, before);
    });
}

#[test]
fn changing_one_job_file_or_one_mode_uploads_a_new_bundle_key() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    block(async {
        let s3 = moto.s3().await;
        create_bucket(&s3).await;
        let first = report(&project.deploy(&moto, &[]));
        let bundle_uri = |r: &[Value]| entry(r, "bundle")["s3_uri"].as_str().unwrap().to_string();
        let file_uri = |r: &[Value]| entry(r, "job_file")["s3_uri"].as_str().unwrap().to_string();

        std::fs::write(project.path("job.conf"), "threshold = 0.6\n").unwrap();
        let content_changed = report(&project.deploy(&moto, &[]));
        assert_ne!(bundle_uri(&content_changed), bundle_uri(&first));
        assert_ne!(file_uri(&content_changed), file_uri(&first));
        assert_eq!(entry(&content_changed, "bundle")["uploaded"], true);
        assert_eq!(entry(&content_changed, "job_file")["uploaded"], true);
        // The driver does not depend on the bundle: unchanged.
        assert_eq!(entry(&content_changed, "spark_driver")["uploaded"], false);

        set_mode(&project.path("job.conf"), 0o600);
        let mode_changed = report(&project.deploy(&moto, &[]));
        assert_ne!(bundle_uri(&mode_changed), bundle_uri(&content_changed));
        assert_eq!(entry(&mode_changed, "bundle")["uploaded"], true);
        // The job file's own key is its content: the same bytes are not sent again.
        assert_eq!(file_uri(&mode_changed), file_uri(&content_changed));
        assert_eq!(entry(&mode_changed, "job_file")["uploaded"], false);

        set_mode(&project.path("emrship-job"), 0o775);
        let binary_mode_changed = report(&project.deploy(&moto, &[]));
        assert_ne!(bundle_uri(&binary_mode_changed), bundle_uri(&mode_changed));

        // Every bundle stays at its key (earlier plans still point at theirs).
        let keys: Vec<String> = objects(&s3).await.into_iter().map(|o| o.0).collect();
        for uri in [
            &first,
            &content_changed,
            &mode_changed,
            &binary_mode_changed,
        ]
        .map(|r| bundle_uri(r))
        {
            assert!(keys.contains(&key_of(&uri)), "{uri} missing from {keys:?}");
        }
    });
}

#[test]
fn a_bundle_over_8_mib_goes_up_in_parts_and_lands_intact() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    // 9 MiB that deflate cannot shrink: a job file of pseudo-random bytes.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..9 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(project.path("job.conf"), &big).unwrap();
    block(async {
        let s3 = moto.s3().await;
        create_bucket(&s3).await;
        let first = report(&project.deploy(&moto, &[]));
        let bundle = entry(&first, "bundle");
        assert!(bundle["bytes"].as_u64().unwrap() > emrship::aws::s3::MULTIPART_THRESHOLD);
        assert_eq!(bundle["parts"], 2, "{bundle}");
        let key = key_of(bundle["s3_uri"].as_str().unwrap());
        let bytes = get(&s3, &key).await;
        assert_eq!(sha256_hex(&bytes), bundle["sha256"].as_str().unwrap());
        assert_eq!(bytes, std::fs::read(project.local_bundle()).unwrap());
        // S3 marks a multipart object's ETag with its part count.
        let listed = objects(&s3).await;
        let etag = &listed.iter().find(|o| o.0 == key).unwrap().3;
        assert!(etag.trim_matches('"').ends_with("-2"), "ETag {etag}");
        let file = entry(&first, "job_file");
        assert_eq!(file["parts"], 2);
        assert_eq!(
            get(&s3, &key_of(file["s3_uri"].as_str().unwrap())).await,
            big
        );
        // No upload left open.
        let open = s3
            .list_multipart_uploads()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert!(open.uploads().is_empty(), "{:?}", open.uploads());

        // Unchanged: found by HEAD, nothing sent.
        let second = report(&project.deploy(&moto, &[]));
        assert_eq!(second.len(), first.len(), "{second:?}");
        assert!(second.iter().all(|e| e["uploaded"] == false), "{second:?}");
    });
}

#[test]
fn a_missing_bucket_is_one_clear_error_and_nothing_is_uploaded() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    let output = project.deploy(&moto, &[]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("the bucket `{BUCKET}`")) && message.contains("does not exist"),
        "{message}"
    );
    assert!(
        message.contains(&format!("aws s3 mb s3://{BUCKET}")),
        "{message}"
    );
    assert_eq!(message.matches("error:").count(), 1, "{message}");
    assert!(output.stdout.is_empty());
    block(async {
        let s3 = moto.s3().await;
        let buckets = s3.list_buckets().send().await.unwrap();
        assert!(
            buckets.buckets().is_empty(),
            "deploy must not create buckets"
        );
    });
}

#[test]
fn no_credentials_is_one_clear_error_and_nothing_is_uploaded() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    // The bucket exists before the deploy, so an upload made anyway would show below.
    block(async { create_bucket(&moto.s3().await).await });
    let output = moto
        .command(env!("CARGO_BIN_EXE_emrship"))
        .current_dir(project.dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .args(["deploy", "spec.yaml", "--binary", "emrship-job"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("no AWS credentials found"), "{message}");
    assert!(message.contains("configure credentials"), "{message}");
    assert_eq!(message.matches("error:").count(), 1, "{message}");
    // Checked before the build: no bundle was made either.
    assert!(!project.local_bundle().exists());
    block(async {
        let s3 = moto.s3().await;
        assert!(objects(&s3).await.is_empty());
    });
}

/// Deploys `binary` for `release` into an existing, empty bucket; expects a refusal.
fn refused(binary: &Path, release: &str) -> String {
    let moto = Moto::start();
    let project = Project::new(release, binary);
    block(async {
        let s3 = moto.s3().await;
        create_bucket(&s3).await;
        let output = project.deploy(&moto, &[]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(output.stdout.is_empty());
        assert!(objects(&s3).await.is_empty(), "nothing may be uploaded");
        assert!(!project.local_bundle().exists(), "no bundle may be built");
        let message = stderr(&output);
        assert_eq!(message.matches("error:").count(), 1, "{message}");
        message
    })
}

#[test]
fn a_binary_for_the_wrong_architecture_is_refused_before_anything_is_uploaded() {
    let message = refused(&binaries().aarch64_glibc_2_26, "emr-6.15.0");
    assert!(message.contains("built for aarch64 (arm64)"), "{message}");
    assert!(message.contains("(m5.xlarge) are x86_64"), "{message}");
    assert!(
        message.contains("--target x86_64-unknown-linux-gnu.2.26"),
        "{message}"
    );
}

#[test]
fn a_binary_needing_a_newer_glibc_than_the_release_is_refused() {
    let message = refused(&binaries().x86_64_glibc_2_38, "emr-7.5.0");
    assert!(
        message.contains("needs glibc 2.38 (GLIBC_2.38 for strlcpy)"),
        "{message}"
    );
    assert!(
        message.contains("emr-7.5.0 nodes run Amazon Linux 2023 with glibc 2.34"),
        "{message}"
    );
    assert!(
        message.contains("--target x86_64-unknown-linux-gnu.2.26"),
        "{message}"
    );
}

#[test]
fn a_file_that_is_not_an_elf_binary_is_refused() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    std::fs::write(
        project.path("emrship-job"),
        "#!/bin/sh\necho not a binary\n",
    )
    .unwrap();
    let output = project.deploy(&moto, &["--dry-run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not an ELF executable"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_spec_error_exits_2_before_anything_is_built_or_uploaded() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    block(async {
        let s3 = moto.s3().await;
        create_bucket(&s3).await;
        let output = project.deploy(&moto, &["--set", "cluster.core.count=two"]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains("cluster.core.count"));
        assert!(objects(&s3).await.is_empty());
        assert!(!project.local_bundle().exists());
    });
}

#[test]
fn dry_run_builds_and_checks_but_uploads_nothing_and_needs_no_credentials() {
    let moto = Moto::start();
    let project = Project::new("emr-6.15.0", &binaries().x86_64_glibc_2_26);
    block(async {
        let s3 = moto.s3().await;
        create_bucket(&s3).await;
        let output = moto
            .command(env!("CARGO_BIN_EXE_emrship"))
            .current_dir(project.dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .args([
                "deploy",
                "spec.yaml",
                "--binary",
                "emrship-job",
                "--dry-run",
            ])
            .args(["--date", "2026-11-20", "--format", "json"])
            .output()
            .unwrap();
        let planned = report(&output);
        assert_eq!(planned.len(), 4);
        assert!(planned
            .iter()
            .all(|e| e["status"] == "dry-run" && e["uploaded"] == false));
        assert!(objects(&s3).await.is_empty());
        // The bundle was built: its digest is the one a real deploy would upload.
        let local = std::fs::read(project.local_bundle()).unwrap();
        assert_eq!(entry(&planned, "bundle")["sha256"], sha256_hex(&local));

        let real = report(&project.deploy(&moto, &[]));
        assert_eq!(
            entry(&real, "bundle")["s3_uri"],
            entry(&planned, "bundle")["s3_uri"]
        );
    });
}

/// The host-built emrship-job links against this machine's glibc (newer than 2.26 here), which
/// is why deploy cross-builds with cargo-zigbuild instead of shipping it.
#[test]
fn the_host_built_emrship_job_needs_the_host_glibc() {
    use emrship::bundle::elf::{check_fits, inspect, Machine, NodeTarget};
    let host_job = std::fs::read(env!("CARGO_BIN_EXE_emrship-job")).unwrap();
    let facts = inspect(&host_job).unwrap();
    let expected = if cfg!(target_arch = "aarch64") {
        Machine::Aarch64
    } else {
        Machine::X86_64
    };
    assert_eq!(facts.machine, expected);
    let need = facts.glibc.clone().expect("linked against glibc");
    assert!(need.version > (2, 26), "{need:?}");
    assert!(!need.symbols.is_empty());
    let al2 = emrship::spec::release::ReleaseLabel::parse("emr-6.15.0").unwrap();
    let arch = if cfg!(target_arch = "aarch64") {
        emrship::sizing::Arch::Arm64
    } else {
        emrship::sizing::Arch::X86_64
    };
    let refusal = check_fits(
        &facts,
        &NodeTarget {
            arch,
            release: &al2,
            instance_types: vec!["m5.xlarge"],
        },
    )
    .unwrap_err();
    assert!(refusal.contains(&need.version_name), "{refusal}");
}
