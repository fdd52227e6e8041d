//! `emrship-job stream` end to end against emulators: moto's server mode for Kinesis, DynamoDB
//! and S3; kinesalite where moto never ends a shard (a split); the fault proxy for throttled
//! reads and expired iterators, which no emulator gives on demand. Every assertion reads the
//! emulators' state through their APIs: window objects and range objects in S3, leases in
//! DynamoDB. The reference is computed here, independently, from the exact records put.
#![cfg(feature = "job")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fate, FaultMix, FaultProxy, Rule, Seen};
use common::moto::Moto;
use common::rng::Rng;
use serde_json::Value;

const BUCKET: &str = "stream-out";

/// The tests whose assertions depend on timing (kills at random moments, two workers
/// balancing, Spark's start) take turns, so that on two cores they do not starve each other.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timing_turn() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}
const JOB: &str = env!("CARGO_BIN_EXE_emrship-job");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One test's emulators and names.
struct Rig {
    moto: Moto,
    /// Where the job's Kinesis calls go when not to moto (kinesalite or the fault proxy).
    kinesis_endpoint: Option<String>,
    stream: String,
    table: String,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new(stream: &str, shards: i32) -> Rig {
        Rig::start(stream, shards, None)
    }

    /// A moto for S3 and DynamoDB with the output bucket, and the stream created where the
    /// job's Kinesis calls go (`kinesis_endpoint`, else moto).
    fn start(stream: &str, shards: i32, kinesis_endpoint: Option<String>) -> Rig {
        let moto = Moto::start();
        let rig = Rig {
            moto,
            kinesis_endpoint,
            stream: stream.to_string(),
            table: format!("{stream}-leases"),
            dir: tempfile::tempdir().unwrap(),
        };
        runtime().block_on(async {
            rig.moto
                .s3()
                .await
                .create_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .unwrap();
            rig.kinesis()
                .await
                .create_stream()
                .stream_name(stream)
                .shard_count(shards)
                .send()
                .await
                .unwrap();
        });
        rig
    }

    async fn kinesis(&self) -> aws_sdk_kinesis::Client {
        let config = self.moto.sdk_config().await;
        let mut builder = aws_sdk_kinesis::config::Builder::from(&config);
        if let Some(endpoint) = &self.kinesis_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        aws_sdk_kinesis::Client::from_conf(builder.build())
    }

    async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.moto.sdk_config().await)
    }

    fn command(&self) -> Command {
        let mut command = self.moto.command(JOB);
        if let Some(endpoint) = &self.kinesis_endpoint {
            command.env("AWS_ENDPOINT_URL_KINESIS", endpoint);
        }
        command
    }

    fn records_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `gen stream`, keeping a copy of the records put.
    fn put(&self, copy: &str, args: &[&str]) {
        let output = self
            .command()
            .args(["gen", "stream", "--stream", &self.stream, "--copy"])
            .arg(self.records_file(copy))
            .args(args)
            .output()
            .unwrap();
        assert_success(&output);
    }

    /// A worker that stops once its shards are quiet.
    fn worker(&self, id: &str, extra: &[&str]) -> Command {
        let mut command = self.command();
        command.args([
            "stream",
            "--stream",
            &self.stream,
            "--output",
            &format!("s3://{BUCKET}/windows-job/"),
            "--lease-table",
            &self.table,
            "--worker-id",
            id,
            "--window",
            "5m",
            "--lateness",
            "1m",
            "--poll-interval",
            "100ms",
            "--flush-interval",
            "500ms",
            "--failover",
            "1s",
            "--shard-sync-interval",
            "1s",
            "--format",
            "json",
        ]);
        if !extra.contains(&"--stop-when-idle") {
            command.args(["--stop-when-idle", "1500ms"]);
        }
        command.args(extra);
        command
    }

    fn run_worker(&self, id: &str, extra: &[&str]) -> Value {
        let output = self.worker(id, extra).output().unwrap();
        assert_success(&output);
        serde_json::from_slice(&output.stdout).unwrap()
    }

    async fn objects(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let s3 = self.moto.s3().await;
        let mut keys = Vec::new();
        let mut pages = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(format!("windows-job/{prefix}"))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for object in page.unwrap().contents() {
                keys.push(object.key().unwrap().to_string());
            }
        }
        let mut out = Vec::new();
        for key in keys {
            let object = s3
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .unwrap();
            out.push((key, object.body.collect().await.unwrap().to_vec()));
        }
        out
    }

    /// Every final window document, by `_id`.
    fn windows(&self) -> BTreeMap<String, Value> {
        let objects = runtime().block_on(self.objects("windows/"));
        let mut documents = BTreeMap::new();
        for (key, bytes) in objects {
            for line in String::from_utf8(bytes).unwrap().lines() {
                let document: Value = serde_json::from_str(line).unwrap();
                let id = document["_id"].as_str().unwrap().to_string();
                assert!(
                    documents.insert(id.clone(), document).is_none(),
                    "{id} is in two window objects ({key})"
                );
            }
        }
        documents
    }

    /// Every lease row as (leaseKey, attributes).
    fn leases(&self) -> BTreeMap<String, Value> {
        runtime().block_on(async {
            let scanned = self
                .dynamodb()
                .await
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .send()
                .await;
            let items = match scanned {
                Ok(items) => items,
                // Not created yet: the worker creates it when it starts.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    return BTreeMap::new()
                }
                Err(e) => panic!("scan {}: {e:?}", self.table),
            };
            items
                .items()
                .iter()
                .map(|item| {
                    let mut row = serde_json::Map::new();
                    for (name, value) in item {
                        let value = match value {
                            aws_sdk_dynamodb::types::AttributeValue::S(s) => Value::from(s.clone()),
                            aws_sdk_dynamodb::types::AttributeValue::N(n) => Value::from(n.clone()),
                            aws_sdk_dynamodb::types::AttributeValue::Ss(s) => {
                                Value::from(s.clone())
                            }
                            other => Value::from(format!("{other:?}")),
                        };
                        row.insert(name.clone(), value);
                    }
                    (
                        row["leaseKey"].as_str().unwrap().to_string(),
                        Value::Object(row),
                    )
                })
                .collect()
        })
    }

    /// The stored ranges must partition each shard's records: per shard, sorted by their first
    /// sequence number, each starts after the previous one ends. Returns the records they hold.
    fn check_ranges_chain(&self) -> u64 {
        let objects = runtime().block_on(self.objects("ranges/"));
        // Sequence numbers are up to 129 digits: ordered by length, then digits.
        type Seq = (usize, String);
        let mut by_shard: BTreeMap<String, Vec<(Seq, Seq, u64)>> = BTreeMap::new();
        for (key, bytes) in objects {
            let range: Value = serde_json::from_slice(&bytes).unwrap();
            let seq = |name: &str| {
                let text = range[name].as_str().unwrap().to_string();
                assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text}");
                (text.len(), text)
            };
            assert!(key.ends_with(&format!("from={}.json", range["from"].as_str().unwrap())));
            by_shard
                .entry(range["shard"].as_str().unwrap().to_string())
                .or_default()
                .push((seq("from"), seq("to"), range["records"].as_u64().unwrap()));
        }
        let mut total = 0;
        for (shard, mut ranges) in by_shard {
            ranges.sort();
            for pair in ranges.windows(2) {
                assert!(
                    pair[1].0 > pair[0].1,
                    "{shard}: range {:?} overlaps {:?}",
                    pair[1],
                    pair[0]
                );
            }
            total += ranges.iter().map(|r| r.2).sum::<u64>();
        }
        total
    }
}

fn is_sequence(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the windows must hold, from the records put: documents by `_id`, and the records that
/// are not page views.
struct Reference {
    documents: BTreeMap<String, Value>,
    malformed: Vec<String>,
}

fn reference(files: &[&Path], window_ms: i64) -> Reference {
    type Sums = (u64, BTreeSet<String>, BTreeMap<String, u64>);
    let mut groups: BTreeMap<(i64, String, String), Sums> = BTreeMap::new();
    let mut malformed = Vec::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                malformed.push(line.to_string());
                continue;
            };
            let ts = chrono::DateTime::parse_from_rfc3339(event["ts"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let window = ts.div_euclid(window_ms) * window_ms;
            let text = |name: &str| event[name].as_str().unwrap().to_string();
            let sums = groups
                .entry((window, text("customer"), text("url")))
                .or_default();
            sums.0 += 1;
            sums.1.insert(text("session_id"));
            if let Some(referrer) = event["referrer"].as_str() {
                *sums.2.entry(referrer.to_string()).or_default() += 1;
            }
        }
    }
    let freq = format!("{}min", window_ms / 60_000);
    let documents = groups
        .into_iter()
        .map(|((window, customer, url), (views, sessions, referrers))| {
            let ts = chrono::DateTime::from_timestamp_millis(window)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            let id = format!("{url}|{customer}|{ts}");
            let document = serde_json::json!({
                "_id": id, "customer": customer, "url": url, "ts": ts, "freq": freq,
                "metrics": {"page_views": views, "visitors": sessions.len()},
                "referrers": referrers,
            });
            (id, document)
        })
        .collect();
    Reference {
        documents,
        malformed,
    }
}

fn assert_windows_equal(rig: &Rig, expected: &Reference) {
    let actual = rig.windows();
    let missing: Vec<&String> = expected
        .documents
        .keys()
        .filter(|id| !actual.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} documents missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    for (id, document) in &actual {
        assert_eq!(Some(document), expected.documents.get(id), "{id}");
    }
    assert_eq!(actual.len(), expected.documents.len());
}

#[test]
fn records_put_become_window_objects_equal_to_a_reference_and_malformed_ones_are_kept_aside() {
    let rig = Rig::new("page-events", 2);
    rig.put(
        "records.jsonl",
        &["--records", "3000", "--malformed-every", "97"],
    );
    let report = rig.run_worker("w1", &[]);
    let expected = reference(&[&rig.records_file("records.jsonl")], 300_000);
    assert_eq!(expected.malformed.len(), 30);

    assert_windows_equal(&rig, &expected);
    assert_eq!(rig.check_ranges_chain(), 3000);
    // The malformed records, byte for byte, in dead-letter objects.
    let dead: Vec<Value> = runtime()
        .block_on(rig.objects("dead-letters/"))
        .iter()
        .flat_map(|(_, bytes)| {
            String::from_utf8(bytes.clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let kept: BTreeSet<&str> = dead.iter().map(|d| d["data"].as_str().unwrap()).collect();
    let malformed: BTreeSet<&str> = expected.malformed.iter().map(String::as_str).collect();
    assert_eq!(kept, malformed);
    assert!(dead
        .iter()
        .all(|d| d["kind"] == "malformed" && d["shard"].is_string()));
    assert_eq!(report["malformed"], 30);
    assert_eq!(report["records"], 3000);

    // The lease table is KCL's shape; the worker gave its leases up when it stopped.
    let leases = rig.leases();
    assert_eq!(leases.len(), 2);
    for lease in leases.values() {
        assert!(is_sequence(&lease["checkpoint"]), "{lease}");
        assert!(lease.get("leaseOwner").is_none(), "{lease}");
        for attribute in [
            "leaseCounter",
            "checkpointSubSequenceNumber",
            "ownerSwitchesSinceCheckpoint",
        ] {
            assert!(lease.get(attribute).is_some(), "{attribute} in {lease}");
        }
    }

    // A second run reads nothing again and changes no window.
    let before = rig.windows();
    let again = rig.run_worker("w2", &[]);
    assert_eq!(again["records"], 0, "{again}");
    assert_eq!(rig.windows(), before);
}

#[test]
fn a_crash_between_the_range_write_and_the_checkpoint_is_replayed_without_counting_twice() {
    let rig = Rig::new("replayed", 2);
    rig.put("records.jsonl", &["--records", "2000"]);
    let first = rig.run_worker(
        "first",
        &["--records-per-call", "250", "--flush-records", "200"],
    );
    let windows = rig.windows();
    let ranges = rig.check_ranges_chain();
    assert_eq!(ranges, 2000);
    // Put every lease back where a worker that died right after writing its ranges (before
    // any checkpoint) leaves it: its start, no watermark, still owned by the dead worker.
    let shards: Vec<String> = rig.leases().into_keys().collect();
    runtime().block_on(async {
        let dynamodb = rig.dynamodb().await;
        for shard in &shards {
            dynamodb
                .update_item()
                .table_name(&rig.table)
                .key("leaseKey", aws_sdk_dynamodb::types::AttributeValue::S(shard.clone()))
                .update_expression("SET checkpoint = :start, leaseOwner = :dead, watermark = :none REMOVE idleWatermark")
                .expression_attribute_values(":start", aws_sdk_dynamodb::types::AttributeValue::S("TRIM_HORIZON".into()))
                .expression_attribute_values(":dead", aws_sdk_dynamodb::types::AttributeValue::S("dead".into()))
                .expression_attribute_values(":none", aws_sdk_dynamodb::types::AttributeValue::N(i64::MIN.to_string()))
                .send()
                .await
                .unwrap();
        }
    });
    let replay = rig.run_worker(
        "replay",
        &["--records-per-call", "250", "--flush-records", "200"],
    );
    // Every range it cut was found written (S3 refused the create) and adopted.
    assert_eq!(replay["ranges_written"], 0, "{replay}");
    assert_eq!(
        replay["ranges_adopted"], first["ranges_written"],
        "{replay}"
    );
    assert_eq!(rig.check_ranges_chain(), 2000);
    assert_eq!(rig.windows(), windows);
    let expected = reference(&[&rig.records_file("records.jsonl")], 300_000);
    assert_windows_equal(&rig, &expected);
}

#[test]
fn a_worker_killed_at_random_points_and_restarted_loses_and_duplicates_no_record() {
    let _turn = timing_turn();
    let rig = Rig::new("killed", 4);
    rig.put(
        "records.jsonl",
        &["--records", "12000", "--malformed-every", "501"],
    );
    let small_ranges = ["--records-per-call", "150", "--flush-records", "100"];
    let mut rng = Rng(14);
    for round in 0..6 {
        let mut child = rig
            .worker(&format!("killed-{round}"), &small_ranges)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(600 + rng.below(2500)));
        child.kill().unwrap(); // SIGKILL: nothing committed, nothing given up
        child.wait().unwrap();
    }
    let report = rig.run_worker("survivor", &small_ranges);
    let expected = reference(&[&rig.records_file("records.jsonl")], 300_000);
    assert_windows_equal(&rig, &expected);
    assert_eq!(rig.check_ranges_chain(), 12_000);
    assert!(
        report["records"].as_u64().unwrap() < 12_000,
        "the killed workers did part: {report}"
    );
}

#[test]
fn two_workers_split_the_shards_and_write_no_duplicate() {
    let _turn = timing_turn();
    let rig = Rig::new("shared", 4);
    let put = {
        let mut command = rig.command();
        command
            .args([
                "gen",
                "stream",
                "--stream",
                "shared",
                "--records",
                "16000",
                "--rate",
                "2000",
                "--copy",
            ])
            .arg(rig.records_file("records.jsonl"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command.spawn().unwrap()
    };
    let spawn = |id: &str| -> Child {
        rig.worker(id, &["--stop-when-idle", "3s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn("worker-a"), spawn("worker-b"));
    // Watch the lease table: at some point each worker holds two of the four shards.
    let mut split_seen = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.try_wait().unwrap().is_none() || b.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the workers did not stop");
        let leases = rig.leases();
        let held = |id: &str| leases.values().filter(|l| l["leaseOwner"] == id).count();
        split_seen |= leases.len() == 4 && held("worker-a") == 2 && held("worker-b") == 2;
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut put = put;
    assert!(put.wait().unwrap().success());
    let report = |child: Child| -> Value {
        let output = child.wait_with_output().unwrap();
        assert_success(&output);
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let (ra, rb) = (report(a), report(b));
    assert!(
        split_seen,
        "the shards were never split two and two: {ra} {rb}"
    );
    let expected = reference(&[&rig.records_file("records.jsonl")], 300_000);
    assert_windows_equal(&rig, &expected);
    assert_eq!(rig.check_ranges_chain(), 16_000);
}

fn is_get_records(seen: &Seen) -> bool {
    seen.operation == "Kinesis_20131202.GetRecords"
}

#[test]
fn throttled_reads_and_expired_iterators_are_survived() {
    let mut rig = Rig::new("faulty", 2);
    rig.put("records.jsonl", &["--records", "4000"]);
    let throttle_every = std::sync::atomic::AtomicUsize::new(0);
    let expire_every = std::sync::atomic::AtomicUsize::new(0);
    let proxy = FaultProxy::start_with_rules(
        rig.moto.port,
        FaultMix::NONE,
        5,
        vec![
            // ListShards is limited per account: the first two are refused.
            Rule::first(
                2,
                Fate::Answered(
                    r#"{"__type":"LimitExceededException","message":"Rate exceeded for ListShards."}"#,
                ),
                |seen| seen.operation == "Kinesis_20131202.ListShards",
            ),
            Rule::always(
                Fate::Answered(
                    r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard shardId-000000000000 in stream faulty under account 123456789012."}"#,
                ),
                move |seen| {
                    is_get_records(seen)
                        && throttle_every.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 3 == 1
                },
            ),
            Rule::always(
                Fate::Answered(
                    r#"{"__type":"ExpiredIteratorException","message":"Iterator expired. The iterator was created at time Sun Dec 06 17:00:00 UTC 2026 while right now it is Sun Dec 06 17:05:01 UTC 2026 which is further in the future than the tolerated delay of 300000 milliseconds."}"#,
                ),
                move |seen| {
                    is_get_records(seen)
                        && expire_every.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 5 == 3
                },
            ),
        ],
    );
    rig.kinesis_endpoint = Some(proxy.endpoint.clone());
    let report = rig.run_worker("patient", &["--records-per-call", "300"]);
    let expected = reference(&[&rig.records_file("records.jsonl")], 300_000);
    assert_windows_equal(&rig, &expected);
    assert_eq!(rig.check_ranges_chain(), 4000);
    let seen = proxy.seen.lock().unwrap();
    let answered = |needle: &str| {
        seen.iter()
            .filter(|s| matches!(s.fate, Fate::Answered(body) if body.contains(needle)))
            .count()
    };
    assert_eq!(answered("LimitExceeded"), 2, "{report}");
    assert!(answered("ProvisionedThroughputExceeded") >= 3, "{report}");
    assert!(answered("ExpiredIterator") >= 2, "{report}");
    assert_eq!(
        report["throttled"].as_u64().unwrap() as usize,
        answered("ProvisionedThroughputExceeded")
    );
    assert_eq!(
        report["expired_iterators"].as_u64().unwrap() as usize,
        answered("ExpiredIterator")
    );
}

/// kinesalite from the pinned package (scripts/kinesalite.sh), on a free loopback port.
struct Kinesalite {
    child: Child,
    endpoint: String,
}

impl Kinesalite {
    fn start() -> Kinesalite {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let install = Command::new("bash")
            .arg(root.join("scripts/kinesalite.sh"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(install.status.success(), "scripts/kinesalite.sh failed");
        let launcher = String::from_utf8(install.stdout)
            .unwrap()
            .trim()
            .to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(launcher)
            .args([
                "--port",
                &port.to_string(),
                "--createStreamMs",
                "0",
                "--updateStreamMs",
                "0",
                "--deleteStreamMs",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "kinesalite did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Kinesalite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn after_a_split_the_parent_is_read_to_its_end_before_its_children() {
    let kinesalite = Kinesalite::start();
    let rig = Rig::start("resharded", 1, Some(kinesalite.endpoint.clone()));
    // Before the split: the first half hour of events into the one shard.
    rig.put("before.jsonl", &["--records", "1500", "--span", "30m"]);
    runtime().block_on(async {
        let kinesis = rig.kinesis().await;
        kinesis
            .split_shard()
            .stream_name("resharded")
            .shard_to_split("shardId-000000000000")
            .new_starting_hash_key((1u128 << 127).to_string())
            .send()
            .await
            .unwrap();
        for _ in 0..50 {
            let summary = kinesis
                .describe_stream_summary()
                .stream_name("resharded")
                .send()
                .await
                .unwrap();
            if summary
                .stream_description_summary()
                .unwrap()
                .stream_status()
                .as_str()
                == "ACTIVE"
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // After it: the next half hour, into the two children.
    rig.put(
        "after.jsonl",
        &[
            "--records",
            "1500",
            "--start",
            "2026-11-20T00:30",
            "--span",
            "30m",
            "--seed",
            "2",
        ],
    );

    let mut worker = rig
        .worker("splitter", &["--records-per-call", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Watch the lease table: no child lease may exist before the parent is at SHARD_END.
    let parent = "shardId-000000000000";
    let mut parent_ended_seen = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while worker.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the worker did not stop");
        let leases = rig.leases();
        let parent_ended = leases
            .get(parent)
            .is_some_and(|l| l["checkpoint"] == "SHARD_END");
        let children = leases.keys().filter(|k| *k != parent).count();
        assert!(
            parent_ended || children == 0,
            "a child lease before the parent ended: {leases:?}"
        );
        parent_ended_seen |= parent_ended;
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = worker.wait_with_output().unwrap();
    assert_success(&output);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(parent_ended_seen);
    let leases = rig.leases();
    assert_eq!(leases.len(), 3, "{leases:?}");
    assert_eq!(leases[parent]["checkpoint"], "SHARD_END");
    for (shard, lease) in leases.iter().filter(|(k, _)| *k != parent) {
        assert_eq!(
            lease["parentShardId"],
            serde_json::json!([parent]),
            "{shard}"
        );
        assert!(is_sequence(&lease["checkpoint"]), "{shard}: {lease}");
    }
    assert_eq!(report["shards_ended"], 1);
    // Event time only moves forward in these records, and a child starts at its parent's
    // watermark: nothing is late.
    assert_eq!(report["late"], 0, "{report}");
    let expected = reference(
        &[
            &rig.records_file("before.jsonl"),
            &rig.records_file("after.jsonl"),
        ],
        300_000,
    );
    assert_windows_equal(&rig, &expected);
    assert_eq!(rig.check_ranges_chain(), 3000);
}

#[test]
fn run_local_runs_the_streaming_spec_against_the_emulator() {
    let moto = Moto::start();
    let output = moto
        .command(env!("CARGO_BIN_EXE_emrship"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "job-specs/streaming-events.yaml",
            "--local",
            "--format",
            "json",
        ])
        .env("CARGO_TARGET_DIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .unwrap();
    assert_success(&output);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["records"], 20_000, "{report}");
    assert_eq!(report["malformed"], 20, "{report}");
    // The spec's stream, lease table and bucket, in the spec's region, on the emulator.
    let views: u64 = runtime().block_on(async {
        let config = moto.sdk_config_in("eu-west-1").await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let windows =
            common::moto::s3_objects(&s3, "example-stream-curated", "windows/windows/").await;
        assert_eq!(windows.len(), 12, "an hour of 5-minute windows");
        let mut views = 0;
        for line in windows.values().flat_map(|body| body.lines()) {
            let document: Value = serde_json::from_str(line).unwrap();
            assert_eq!(document["freq"], "5min");
            views += document["metrics"]["page_views"].as_u64().unwrap();
        }
        let table = aws_sdk_dynamodb::Client::new(&config)
            .describe_table()
            .table_name("streaming-events-leases")
            .send()
            .await
            .unwrap();
        assert!(table.table().is_some());
        views
    });
    assert_eq!(views, 20_000 - 20);
}

#[test]
fn run_local_of_a_stream_spec_without_an_emulator_says_how_to_start_one() {
    let output = Command::new(env!("CARGO_BIN_EXE_emrship"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "job-specs/streaming-events.yaml", "--local"])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_KINESIS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("reads a Kinesis emulator"), "{stderr}");
    assert!(stderr.contains("scripts/stream-emulator.sh"), "{stderr}");
}

/// The streaming spec's own step (engine: spark, the stream driver) under spark-submit in local
/// mode: the driver places one worker per executor, the workers share the shards through the
/// lease table, and the windows are the reference's.
#[cfg(feature = "aws")]
#[test]
fn the_planned_spark_step_runs_one_worker_per_executor_that_share_the_shards() {
    let _turn = timing_turn();
    use common::spark::{
        localize_step, planned_step_args, rendered_driver, replace_flag, spark_submit_command,
        timed, write_bundle,
    };
    const SPEC: &str = "job-specs/streaming-events.yaml";
    let rig = Rig::new("spark-fanned", 2);
    rig.put(
        "records.jsonl",
        &["--records", "3000", "--malformed-every", "250"],
    );
    let work = rig.dir.path();
    let bundle = work.join("bundle.zip");
    write_bundle(&bundle, &std::fs::read(JOB).unwrap());
    let mut args = planned_step_args(SPEC, &[]);
    let driver = work.join("driver.py");
    let driver_at = localize_step(
        &mut args,
        "local[2]",
        &bundle,
        &driver,
        &rendered_driver(SPEC),
    );
    assert_eq!(args[driver_at + 1], "stream", "{args:?}");
    assert!(args.iter().any(|a| a == "spark.speculation=false"));
    // The emulator's names and region.
    replace_flag(&mut args, driver_at, "--stream", &rig.stream);
    replace_flag(
        &mut args,
        driver_at,
        "--output",
        &format!("s3://{BUCKET}/windows-job/"),
    );
    replace_flag(&mut args, driver_at, "--lease_table", &rig.table);
    replace_flag(&mut args, driver_at, "--region", common::moto::REGION);
    // A finite run, with the short timings of these tests.
    args.extend(
        [
            "--stop-when-idle",
            "2s",
            "--poll-interval",
            "100ms",
            "--flush-interval",
            "500ms",
            "--failover",
            "1s",
            "--shard-sync-interval",
            "1s",
            "--format",
            "json",
        ]
        .map(String::from),
    );
    let mut command = spark_submit_command(work, &args, work.join("staging"));
    command.env_remove("AWS_PROFILE").envs(rig.moto.env());
    let output = timed(&mut command, "spark-submit (stream driver, local[2])", true);
    // The driver prints each worker's report (a JSON document) in turn.
    let reports: Vec<Value> = serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    // Local mode has no YARN executors: the driver falls back to the plan's 4, of which
    // local[2] runs two at a time.
    assert_eq!(reports.len(), 4, "one report per worker: {reports:?}");
    let workers: BTreeSet<&str> = reports
        .iter()
        .map(|r| r["worker"].as_str().unwrap())
        .collect();
    assert_eq!(workers.len(), 4, "{reports:?}");
    assert!(
        workers
            .iter()
            .all(|w| w.starts_with("local-") && w.contains("-w")),
        "{workers:?}"
    );
    // Which worker reads what depends on timing (two_workers_split_… checks the sharing);
    // every record is counted once whoever read it.
    let read: u64 = reports.iter().map(|r| r["records"].as_u64().unwrap()).sum();
    assert!(read >= 3000, "{reports:?}");
    let expected = reference(&[&rig.records_file("records.jsonl")], 300_000);
    assert_windows_equal(&rig, &expected);
    assert_eq!(rig.check_ranges_chain(), 3000);
}
