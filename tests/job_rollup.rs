//! The page-view rollup (`emrship-job rollup`): documents against a straightforward reference
//! (BTreeMap/HashSet over all rows) on random inputs — distinct sessions, referrer maps, hour
//! boundaries, time zones, late events, keys shared by files — in every format and layout;
//! the generator's data; bad input; the atomic replace of the output, locally and on S3 (moto).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::DateTime;
use emrship::job::model::JobError;
use emrship::job::rollup::{run_local, RollupJob};
use parquet::arrow::ArrowWriter;
use serde_json::{json, Value};

use common::rng::Rng;
use common::rollup_files::read_parquet_events;

const HOUR: i64 = 3_600_000_000;
/// 2026-11-20T00:00:00Z in microseconds.
const DAY_START: i64 = 1_795_132_800_000_000;

#[derive(Clone, Debug)]
struct Event {
    customer: String,
    url: String,
    referrer: Option<String>,
    session: String,
    /// UTC microseconds.
    ts: i64,
}

/// Random events over a few hours: few urls and sessions so keys and sessions repeat across
/// files; sessions of every length (1–40 bytes, some prefixes of others, some with NUL);
/// times on the hour boundaries; ~20% null referrers.
fn random_events(seed: u64, n: usize) -> Vec<Event> {
    let mut rng = Rng(seed);
    let sessions: Vec<String> = (0..60)
        .map(|i| match i % 6 {
            0 => format!("{:016x}", rng.next()),
            1 => "s".repeat(1 + (i % 20)),
            2 => format!("{:x}-a-long-session-id-over-16-bytes-{i}", rng.next()),
            3 => format!("ab{i}\u{0}x"),
            4 => format!("ab{i}"),
            _ => format!("é{i}"),
        })
        .collect();
    let referrers = [
        "https://t.co/",
        "https://www.google.com/",
        "https://bing.com/",
        "zz",
        "a|b",
    ];
    (0..n)
        .map(|_| {
            let hour = rng.below(4) as i64;
            let ts = match rng.below(5) {
                0 => DAY_START + hour * HOUR - 1, // HH:59:59.999999 of the hour before
                1 => DAY_START + hour * HOUR,     // exactly on the hour
                _ => DAY_START + hour * HOUR + rng.below(HOUR as u64) as i64,
            };
            let customer = format!("site-{}.example", rng.below(3));
            Event {
                url: format!("https://{customer}/articles/{}", rng.below(7)),
                customer,
                referrer: (rng.below(5) != 0)
                    .then(|| referrers[rng.below(referrers.len() as u64) as usize].to_string()),
                session: sessions[rng.below(sessions.len() as u64) as usize].clone(),
                ts,
            }
        })
        .collect()
}

fn hour_iso(ts: i64) -> String {
    let hour = ts.div_euclid(HOUR);
    DateTime::from_timestamp(hour * 3600, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:00:00")
        .to_string()
}

/// The documents by `_id`, computed the obvious way.
fn reference(events: &[Event]) -> BTreeMap<String, Value> {
    type Acc = (u64, HashSet<String>, BTreeMap<String, u64>);
    let mut groups: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for e in events {
        let acc = groups
            .entry((e.customer.clone(), e.url.clone(), hour_iso(e.ts)))
            .or_default();
        acc.0 += 1;
        acc.1.insert(e.session.clone());
        if let Some(r) = &e.referrer {
            *acc.2.entry(r.clone()).or_default() += 1;
        }
    }
    groups
        .into_iter()
        .map(|((customer, url, hour), (views, sessions, referrers))| {
            let id = format!("{url}|{customer}|{hour}");
            let doc = json!({
                "_id": id,
                "customer": customer,
                "url": url,
                "ts": hour,
                "freq": "1hour",
                "metrics": {"page_views": views, "visitors": sessions.len()},
                "referrers": referrers,
            });
            (id, doc)
        })
        .collect()
}

/// Reads a finished local output: checks `_SUCCESS`, part names, key order and per-part `_id`
/// order; returns the documents by `_id` (each exactly once).
fn read_output(dir: &Path) -> BTreeMap<String, Value> {
    assert!(
        dir.join("_SUCCESS").is_file(),
        "{} has no _SUCCESS",
        dir.display()
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "_SUCCESS")
        .collect();
    names.sort();
    let texts: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            assert_eq!(name, &format!("part-{i:05}.jsonl"));
            (
                name.clone(),
                std::fs::read_to_string(dir.join(name)).unwrap(),
            )
        })
        .collect();
    parse_parts(&texts)
}

fn parse_parts(parts: &[(String, String)]) -> BTreeMap<String, Value> {
    let mut docs = BTreeMap::new();
    for (name, text) in parts {
        let mut previous: Option<String> = None;
        for line in text.lines() {
            let doc: Value = serde_json::from_str(line).unwrap();
            let keys: Vec<&str> = doc
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                [
                    "_id",
                    "customer",
                    "url",
                    "ts",
                    "freq",
                    "metrics",
                    "referrers"
                ],
                "{name}"
            );
            let referrer_keys: Vec<&String> =
                doc["referrers"].as_object().unwrap().keys().collect();
            assert!(referrer_keys
                .windows(2)
                .all(|w| w[0].as_bytes() < w[1].as_bytes()));
            let id = doc["_id"].as_str().unwrap().to_string();
            if let Some(previous) = &previous {
                assert!(
                    previous.as_bytes() < id.as_bytes(),
                    "{name} is not sorted by _id"
                );
            }
            previous = Some(id.clone());
            assert!(docs.insert(id.clone(), doc).is_none(), "{id} written twice");
        }
    }
    docs
}

fn assert_same(actual: &BTreeMap<String, Value>, expected: &BTreeMap<String, Value>) {
    assert_eq!(actual.len(), expected.len(), "document count");
    for (id, doc) in expected {
        assert_eq!(actual.get(id), Some(doc), "{id}");
    }
}

fn parquet_batch(events: &[Event], with_customer: bool) -> RecordBatch {
    let mut fields = vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("referrer", DataType::Utf8, true),
        Field::new("session_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(events.iter().map(|e| &e.url))),
        Arc::new(StringArray::from(
            events
                .iter()
                .map(|e| e.referrer.as_deref())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| &e.session),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.ts))
                .with_timezone("UTC"),
        ),
    ];
    if with_customer {
        fields.push(Field::new("customer", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| &e.customer),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn write_parquet(path: &Path, events: &[Event], with_customer: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = parquet_batch(events, with_customer);
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(100))
        .build();
    let mut writer =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// `ts` as text, in the time zone chosen by `style` (the same instant).
fn ts_text(ts: i64, style: usize) -> String {
    let utc = DateTime::from_timestamp_micros(ts).unwrap();
    match style % 4 {
        0 => utc.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        1 => utc
            .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
            .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string(),
        2 => utc
            .with_timezone(&chrono::FixedOffset::west_opt(5 * 3600 + 1800).unwrap())
            .format("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string(),
        _ => utc.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(), // no offset: UTC
    }
}

fn write_csv(path: &Path, events: &[Event], with_customer: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut writer = csv::Writer::from_path(path).unwrap();
    let mut header = vec!["ts", "url", "session_id", "referrer"];
    if with_customer {
        header.push("customer");
    }
    writer.write_record(&header).unwrap();
    for (i, e) in events.iter().enumerate() {
        let mut row = vec![
            ts_text(e.ts, i),
            e.url.clone(),
            e.session.clone(),
            e.referrer.clone().unwrap_or_default(),
        ];
        if with_customer {
            row.push(e.customer.clone());
        }
        writer.write_record(&row).unwrap();
    }
    writer.flush().unwrap();
}

fn write_jsonl(path: &Path, events: &[Event], with_customer: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        let mut doc = json!({
            "url": e.url, "referrer": e.referrer, "session_id": e.session, "ts": ts_text(e.ts, i + 1),
        });
        if with_customer {
            doc["customer"] = json!(e.customer);
        }
        text.push_str(&doc.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Writes `events` Hive style: `hour=HH/customer=C/part-k.ext`, the directory hour being the
/// hour *after* some events' own (late events), several files per directory.
fn write_hive(root: &Path, events: &[Event], ext: &str) {
    let mut by_dir: BTreeMap<(i64, String), Vec<Event>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        // Every 10th event lands in the next hour's directory, as a late event.
        let dir_hour = e.ts.div_euclid(HOUR) + i64::from(i % 10 == 0);
        by_dir
            .entry((dir_hour, e.customer.clone()))
            .or_default()
            .push(e.clone());
    }
    for ((hour, customer), events) in by_dir {
        let stamp = DateTime::from_timestamp(hour * 3600, 0).unwrap();
        let dir = root.join(format!(
            "year={}/month={}/day={}/hour={}/customer={customer}",
            stamp.format("%Y"),
            stamp.format("%m"),
            stamp.format("%d"),
            stamp.format("%H")
        ));
        for (k, chunk) in events.chunks(events.len().div_ceil(2).max(1)).enumerate() {
            let path = dir.join(format!("part-{k}.{ext}"));
            match ext {
                "parquet" => write_parquet(&path, chunk, false),
                "csv" => write_csv(&path, chunk, false),
                _ => write_jsonl(&path, chunk, false),
            }
        }
    }
}

fn job(input: &Path, output: &Path, buckets: Option<usize>) -> RollupJob {
    RollupJob {
        input: input.display().to_string(),
        output: output.display().to_string(),
        threads: Some(2),
        buckets,
    }
}

#[test]
fn random_hive_inputs_match_the_reference_for_any_bucketing() {
    let events = random_events(7, 3000);
    let expected = reference(&events);
    // The boundaries are really there: the hour before midnight and exact hours.
    assert!(expected
        .keys()
        .any(|id| id.ends_with("2026-11-19T23:00:00")));
    // Some documents have several referrers, so `parse_parts`'s check that referrer keys are
    // sorted compares something.
    assert!(expected
        .values()
        .any(|doc| doc["referrers"].as_object().unwrap().len() >= 2));
    let dir = tempfile::tempdir().unwrap();
    write_hive(&dir.path().join("events"), &events, "parquet");
    for buckets in [Some(1), Some(3), Some(64), None] {
        let out = dir.path().join(format!("out-{buckets:?}"));
        let report = run_local(&job(&dir.path().join("events"), &out, buckets)).unwrap();
        assert_eq!(report.records, events.len() as u64);
        assert_eq!(report.documents, expected.len() as u64);
        assert_same(&read_output(&out), &expected);
    }
}

#[test]
fn every_format_and_time_zone_gives_the_same_documents() {
    let events = random_events(11, 1200);
    let expected = reference(&events);
    let dir = tempfile::tempdir().unwrap();
    for ext in ["parquet", "csv", "jsonl"] {
        let input = dir.path().join(ext);
        write_hive(&input, &events, ext);
        let out = dir.path().join(format!("out-{ext}"));
        run_local(&job(&input, &out, Some(4))).unwrap();
        assert_same(&read_output(&out), &expected);
    }
    // Flat files with a customer column, no partitions; all three formats in one directory.
    let flat = dir.path().join("flat");
    let thirds: Vec<&[Event]> = events.chunks(400).collect();
    write_parquet(&flat.join("a.parquet"), thirds[0], true);
    write_csv(&flat.join("b.csv"), thirds[1], true);
    write_jsonl(&flat.join("c.jsonl"), thirds[2], true);
    let out = dir.path().join("out-flat");
    run_local(&job(&flat, &out, None)).unwrap();
    assert_same(&read_output(&out), &expected);
}

#[test]
fn generated_events_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let events_dir = dir.path().join("events");
    let status = Command::new(env!("CARGO_BIN_EXE_emrship-job"))
        .args([
            "gen",
            "rollup",
            "--records",
            "60000",
            "--records-per-file",
            "15000",
        ])
        .args(["--customers", "2", "--urls", "300", "--out"])
        .arg(&events_dir)
        .status()
        .unwrap();
    assert!(status.success());
    // Read the generator's files back the plain way (customer from the path).
    let events: Vec<Event> = read_parquet_events(&events_dir)
        .into_iter()
        .map(|e| Event {
            customer: e
                .file
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_prefix("customer=")
                .unwrap()
                .to_string(),
            url: e.url,
            referrer: e.referrer,
            session: e.session,
            ts: e.ts,
        })
        .collect();
    assert_eq!(events.len(), 60_000);
    let expected = reference(&events);
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_emrship-job"))
        .args(["rollup", "--format", "json", "--input"])
        .arg(&events_dir)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["records"], 60_000);
    assert_eq!(summary["documents"], expected.len());
    assert_same(&read_output(&out), &expected);
    // Sessions repeat within a (customer, url, hour): visitors are really distinct counts.
    assert!(expected
        .values()
        .any(|d| d["metrics"]["visitors"].as_u64() < d["metrics"]["page_views"].as_u64()));
}

fn rollup_error(input: &Path, output: &Path) -> String {
    match run_local(&job(input, output, None)) {
        Err(e @ JobError::Input { .. }) => e.to_string(),
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(_) => panic!("expected {} to fail", input.display()),
    }
}

#[test]
fn bad_input_gets_one_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let events = random_events(3, 50);
    let out = dir.path().join("out");

    // A missing column.
    let path = dir.path().join("missing/customer=a/x.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "url,referrer,ts\nu,,2026-11-20T00:00:00Z\n").unwrap();
    let error = rollup_error(&dir.path().join("missing"), &out);
    assert!(
        error.contains("x.csv") && error.contains("no column `session_id`"),
        "{error}"
    );
    assert!(
        error.contains("columns present: url, referrer, ts"),
        "{error}"
    );

    // No customer anywhere.
    write_parquet(&dir.path().join("nocustomer/x.parquet"), &events, false);
    let error = rollup_error(&dir.path().join("nocustomer"), &out);
    assert!(
        error.contains("x.parquet") && error.contains("no column `customer`"),
        "{error}"
    );

    // A time whose hour the rollup cannot hold (its rows carry hours as 32 bits): file and row.
    let mut far = random_events(4, 5);
    far[2].ts = i64::MAX;
    write_parquet(&dir.path().join("far/customer=a/x.parquet"), &far, false);
    let error = rollup_error(&dir.path().join("far"), &out);
    assert!(
        error.contains("x.parquet") && error.contains("row 3: ts ") && error.contains("245,000"),
        "{error}"
    );

    // Null session_id, null url, null ts: file and row.
    for (name, line) in [
        (
            "session",
            r#"{"url":"u","referrer":null,"session_id":null,"ts":"2026-11-20T00:00:00Z"}"#,
        ),
        (
            "url",
            r#"{"url":null,"referrer":null,"session_id":"s","ts":"2026-11-20T00:00:00Z"}"#,
        ),
        ("ts", r#"{"url":"u","referrer":null,"session_id":"s"}"#),
    ] {
        let root = dir.path().join(format!("null-{name}"));
        let path = root.join("customer=a/events.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let good = r#"{"url":"u","referrer":"r","session_id":"s","ts":"2026-11-20T00:00:00Z"}"#;
        std::fs::write(&path, format!("{good}\n{line}\n")).unwrap();
        let error = rollup_error(&root, &out);
        assert!(
            error.contains("events.jsonl: row 2:") && error.contains("is null"),
            "{name}: {error}"
        );
    }

    // A time that is not a time.
    let root = dir.path().join("bad-ts");
    let path = root.join("customer=a/e.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "url,referrer,session_id,ts\nu,,s,yesterday\n").unwrap();
    let error = rollup_error(&root, &out);
    assert!(error.contains("e.csv: row 1: ts `yesterday`"), "{error}");

    // A corrupt Parquet file.
    let root = dir.path().join("corrupt");
    write_parquet(&root.join("customer=a/good.parquet"), &events, false);
    std::fs::write(
        root.join("customer=a/bad.parquet"),
        b"PAR1 this is not parquet PAR1",
    )
    .unwrap();
    let error = rollup_error(&root, &out);
    assert!(
        error.contains("bad.parquet") && error.contains("not a readable Parquet file"),
        "{error}"
    );

    // A customer column contradicting the directory.
    let root = dir.path().join("contradiction");
    write_parquet(
        &root.join("customer=other.example/x.parquet"),
        &events,
        true,
    );
    let error = rollup_error(&root, &out);
    assert!(
        error.contains("x.parquet") && error.contains("customer=other.example"),
        "{error}"
    );

    assert!(!out.exists(), "no output after failures");

    // Through the binary: exit status 2 and the message on stderr.
    let output = Command::new(env!("CARGO_BIN_EXE_emrship-job"))
        .args(["rollup", "--input"])
        .arg(dir.path().join("corrupt"))
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("emrship-job: error: ") && stderr.contains("bad.parquet"),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_emrship-job"))
        .args([
            "rollup",
            "--granularity",
            "1d",
            "--input",
            "x",
            "--output",
            "y",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("only 1h"));
}

/// Every name under `dir`'s parent that is not `dir` itself or `keep`.
fn leftovers(parent: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn a_rerun_replaces_the_output_and_a_failed_run_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let first = random_events(21, 900);
    let second = random_events(22, 300);
    write_hive(&dir.path().join("first"), &first, "parquet");
    write_hive(&dir.path().join("second"), &second, "jsonl");
    let out_parent = dir.path().join("rollups");
    let out = out_parent.join("dt=2026-11-20");

    run_local(&job(&dir.path().join("first"), &out, Some(5))).unwrap();
    assert_eq!(read_output(&out).len(), reference(&first).len());
    assert!(out.join("part-00004.jsonl").exists());
    // A re-run with fewer parts: nothing of the first run is left.
    run_local(&job(&dir.path().join("second"), &out, Some(2))).unwrap();
    assert_same(&read_output(&out), &reference(&second));
    assert!(!out.join("part-00004.jsonl").exists());
    let before: BTreeSet<(String, String)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();

    // A run that fails on a corrupt file (after the good files were mapped).
    let broken = dir.path().join("broken");
    write_hive(&broken, &first, "parquet");
    let bad = broken.join("year=2026/month=11/day=20/hour=03/customer=zzz/part-9.parquet");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(
        broken.join("year=2026/month=11/day=20/hour=01/customer=site-0.example/part-0.parquet"),
    )
    .unwrap();
    let middle = bytes.len() / 2;
    bytes[8..middle].fill(0x55); // pages unreadable, footer intact
    std::fs::write(&bad, bytes).unwrap();
    let error = run_local(&job(&broken, &out, Some(3)))
        .unwrap_err()
        .to_string();
    assert!(error.contains("part-9.parquet"), "{error}");
    let after: BTreeSet<(String, String)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    assert_eq!(before, after, "the previous output survives");
    assert_eq!(
        leftovers(&out_parent, &["dt=2026-11-20"]),
        Vec::<String>::new(),
        "no staged leftovers"
    );
}

#[test]
fn s3_input_and_output_against_moto() {
    let moto = common::moto::Moto::start();
    let events = random_events(31, 800);
    let expected = reference(&events);
    let dir = tempfile::tempdir().unwrap();
    write_hive(&dir.path().join("events"), &events, "parquet");
    let corrupt = dir.path().join("corrupt.parquet");
    std::fs::write(&corrupt, b"PAR1 nope PAR1").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = moto.s3().await;
        for bucket in ["events", "rollups"] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        let mut stack = vec![dir.path().join("events")];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let key = format!(
                    "ev/{}",
                    path.strip_prefix(dir.path().join("events"))
                        .unwrap()
                        .display()
                );
                s3.put_object()
                    .bucket("events")
                    .key(key)
                    .body(std::fs::read(&path).unwrap().into())
                    .send()
                    .await
                    .unwrap();
            }
        }
        // A marker and work in progress are not input.
        for key in ["ev/_SUCCESS", "ev/year=2026/_tmp-x/part-0.parquet"] {
            s3.put_object()
                .bucket("events")
                .key(key)
                .body(Vec::from(&b"junk"[..]).into())
                .send()
                .await
                .unwrap();
        }
        // A previous run's extra part, to be replaced.
        s3.put_object()
            .bucket("rollups")
            .key("dt=2026-11-20/part-00009.jsonl")
            .body(Vec::from(&b"old"[..]).into())
            .send()
            .await
            .unwrap();
    });
    let run = |input: &str| {
        moto.command(env!("CARGO_BIN_EXE_emrship-job"))
            .args([
                "rollup",
                "--buckets",
                "3",
                "--input",
                input,
                "--output",
                "s3://rollups/dt=2026-11-20/",
            ])
            .output()
            .unwrap()
    };
    let output = run("s3://events/ev/");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects =
        runtime.block_on(async { common::moto::s3_objects(&moto.s3().await, "rollups", "").await });
    let names: Vec<&str> = objects.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "dt=2026-11-20/_SUCCESS",
            "dt=2026-11-20/part-00000.jsonl",
            "dt=2026-11-20/part-00001.jsonl",
            "dt=2026-11-20/part-00002.jsonl"
        ]
    );
    let parts: Vec<(String, String)> = objects
        .iter()
        .filter(|(k, _)| k.ends_with(".jsonl"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_same(&parse_parts(&parts), &expected);

    // A failing run (a corrupt object) leaves the output as it was, and no staged objects.
    runtime.block_on(async {
        let s3 = moto.s3().await;
        s3.put_object()
            .bucket("events")
            .key("ev/year=2026/month=11/day=20/hour=05/customer=x/bad.parquet")
            .body(std::fs::read(&corrupt).unwrap().into())
            .send()
            .await
            .unwrap();
    });
    let output = run("s3://events/ev/");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("s3://events/ev/year=2026/month=11/day=20/hour=05/customer=x/bad.parquet"));
    let after =
        runtime.block_on(async { common::moto::s3_objects(&moto.s3().await, "rollups", "").await });
    assert_eq!(after, objects);
}

#[test]
fn run_local_runs_the_example_spec_on_generated_events() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rollups");
    let output = Command::new(env!("CARGO_BIN_EXE_emrship"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "job-specs/pageview-rollup.yaml",
            "--local",
            "--date",
            "2026-11-20",
        ])
        .args(["--format", "json", "--output"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("sample events in target/emrship/sample/pageview-rollup/2026-11-20/events"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["records"], 300_000);
    let docs = read_output(&out);
    assert_eq!(summary["documents"], docs.len());
    // The spec's day, and the late events of its first hour in the hour before.
    assert!(docs.keys().any(|id| id.ends_with("|2026-11-20T00:00:00")));
    assert!(docs.keys().any(|id| id.ends_with("|2026-11-19T23:00:00")));
}

/// Parquet as pyarrow writes high-cardinality columns past its dictionary page limit (PLAIN
/// pages, no dictionary), UUID-length session ids (too long to pack: compared by hash, then
/// bytes, across map tasks), in many small files with one customer column: the documents of
/// the reference.
#[test]
fn plain_encoded_small_files_with_uuid_sessions_match_the_reference() {
    let mut events = random_events(23, 4000);
    for (i, e) in events.iter_mut().enumerate() {
        // 36 bytes, as a UUID's text; ~300 distinct, so sessions repeat across files.
        e.session = format!("{:08x}-0000-4000-8000-{:012x}", i % 7, (i * 7919) % 300);
    }
    let expected = reference(&events);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events");
    std::fs::create_dir_all(&input).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(64))
        .build();
    for (i, chunk) in events.chunks(97).enumerate() {
        let batch = parquet_batch(chunk, true);
        let file = File::create(input.join(format!("part-{i:05}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props.clone())).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    for buckets in [Some(1), Some(5), None] {
        let out = dir.path().join(format!("out-{buckets:?}"));
        let report = run_local(&job(&input, &out, buckets)).unwrap();
        assert_eq!(report.records, events.len() as u64);
        assert_same(&read_output(&out), &expected);
    }
}
