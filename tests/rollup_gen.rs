//! `emrship-job gen rollup`: the rollup contract's synthetic events, read back with the parquet
//! and csv crates — determinism, the Hive layout, row counts and row groups, the late, direct
//! and repeated-session shares, and the same events in every format.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_schema::{DataType, TimeUnit};
use emrship::job::gen::GenFormat;
use emrship::job::rollup::gen::{generate, parse_start, RollupGenSpec, REFERRERS};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, LogicalType, TimeUnit as ParquetTimeUnit};
use parquet::file::reader::{FileReader, SerializedFileReader};

use common::rollup_files::{files, read_parquet_events};

const HOUR_MICROS: i64 = 3_600_000_000;

fn spec(out: &Path, records: u64, records_per_file: u64, format: GenFormat) -> RollupGenSpec {
    RollupGenSpec {
        records,
        records_per_file,
        files_per_hour: 2,
        customers: 3,
        urls: 500,
        seed: 1,
        start: parse_start("2026-11-20T22").unwrap(),
        format,
        out: out.to_path_buf(),
    }
}

fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files(root)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(root.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

/// One event as read back: (file without extension, url, referrer, session_id, ts micros).
type Event = (String, String, Option<String>, String, i64);

/// Reads every event of one format under a dataset root.
type ReadEvents = fn(&Path) -> Vec<Event>;

fn stem(relative: &Path) -> String {
    relative.with_extension("").to_string_lossy().into_owned()
}

fn read_parquet(root: &Path) -> Vec<Event> {
    read_parquet_events(root)
        .into_iter()
        .map(|e| (stem(&e.file), e.url, e.referrer, e.session, e.ts))
        .collect()
}

fn parse_ts(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .timestamp_micros()
}

fn read_csv(root: &Path) -> Vec<Event> {
    let mut events = Vec::new();
    for relative in files(root) {
        if relative.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        let mut reader = csv::Reader::from_path(root.join(&relative)).unwrap();
        assert_eq!(
            reader.headers().unwrap(),
            vec!["url", "referrer", "session_id", "ts"]
        );
        for record in reader.records() {
            let record = record.unwrap();
            events.push((
                stem(&relative),
                record[0].to_string(),
                (!record[1].is_empty()).then(|| record[1].to_string()),
                record[2].to_string(),
                parse_ts(&record[3]),
            ));
        }
    }
    events
}

fn read_jsonl(root: &Path) -> Vec<Event> {
    let mut events = Vec::new();
    for relative in files(root) {
        if relative.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(root.join(&relative))
            .unwrap()
            .lines()
        {
            let doc: serde_json::Value = serde_json::from_str(line).unwrap();
            let keys: Vec<&str> = doc
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(keys, ["url", "referrer", "session_id", "ts"]);
            events.push((
                stem(&relative),
                doc["url"].as_str().unwrap().to_string(),
                doc["referrer"].as_str().map(String::from),
                doc["session_id"].as_str().unwrap().to_string(),
                parse_ts(doc["ts"].as_str().unwrap()),
            ));
        }
    }
    events
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for format in [GenFormat::Parquet, GenFormat::Csv, GenFormat::Jsonl] {
        generate(&spec(&a, 25_000, 6_000, format)).unwrap();
        generate(&spec(&b, 25_000, 6_000, format)).unwrap();
        let other = RollupGenSpec {
            seed: 2,
            ..spec(&c, 25_000, 6_000, format)
        };
        generate(&other).unwrap();
        let (a_files, b_files, c_files) = (contents(&a), contents(&b), contents(&c));
        assert_eq!(a_files.len(), 6, "5 files and _SUCCESS ({format:?})");
        assert!(
            a_files == b_files,
            "same seed, different bytes ({format:?})"
        );
        assert_eq!(
            a_files.keys().collect::<Vec<_>>(),
            c_files.keys().collect::<Vec<_>>()
        );
        for (name, bytes) in &a_files {
            if name != Path::new("_SUCCESS") {
                assert_ne!(bytes, &c_files[name], "seed 2 wrote {name:?} as seed 1 did");
            }
        }
    }
}

#[test]
fn hive_layout_row_counts_row_groups_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events");
    // Starts at 22:00 so the hours cross midnight into the next day.
    let report = generate(&spec(
        &out,
        1_000_000 + 2 * 400_000 + 7,
        1_000_001,
        GenFormat::Parquet,
    ));
    let report = report.unwrap();
    assert_eq!(report.records, 1_800_007);
    assert_eq!(report.files, 2);
    assert_eq!(report.hours, 1);

    let small = dir.path().join("small");
    let report = generate(&spec(&small, 25_000, 6_000, GenFormat::Parquet)).unwrap();
    assert_eq!((report.records, report.files, report.hours), (25_000, 5, 3));
    let expected: Vec<PathBuf> = [
        "_SUCCESS",
        "year=2026/month=11/day=20/hour=22/customer=site-0.example/part-00000.parquet",
        "year=2026/month=11/day=20/hour=22/customer=site-1.example/part-00001.parquet",
        "year=2026/month=11/day=20/hour=23/customer=site-0.example/part-00003.parquet",
        "year=2026/month=11/day=20/hour=23/customer=site-2.example/part-00002.parquet",
        "year=2026/month=11/day=21/hour=00/customer=site-1.example/part-00004.parquet",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(files(&small), expected);

    let row_groups = |path: PathBuf| {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let metadata = reader.metadata();
        let schema = metadata.file_metadata().schema_descr();
        let ts = schema.column(3);
        assert_eq!(ts.name(), "ts");
        assert!(
            matches!(
                ts.logical_type_ref(),
                Some(LogicalType::Timestamp(t))
                    if t.is_adjusted_to_u_t_c && t.unit == ParquetTimeUnit::MICROS
            ),
            "{:?}",
            ts.logical_type_ref()
        );
        let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, ["url", "referrer", "session_id", "ts"]);
        metadata
            .row_groups()
            .iter()
            .map(|g| {
                assert!(g
                    .columns()
                    .iter()
                    .all(|c| c.compression() == Compression::SNAPPY));
                g.num_rows()
            })
            .collect::<Vec<_>>()
    };
    let big = files(&out);
    assert_eq!(big.len(), 3);
    assert_eq!(row_groups(out.join(&big[1])), [1_000_000, 1]);
    assert_eq!(row_groups(out.join(&big[2])), [800_006]);
    let small_rows: Vec<Vec<i64>> = expected[1..]
        .iter()
        .map(|f| row_groups(small.join(f)))
        .collect();
    assert_eq!(
        small_rows,
        [
            vec![6_000],
            vec![6_000],
            vec![6_000],
            vec![6_000],
            vec![1_000]
        ]
    );

    let file = File::open(small.join(&expected[1])).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let fields = builder.schema().fields();
    assert_eq!(fields[0].data_type(), &DataType::Utf8);
    assert!(!fields[0].is_nullable() && fields[1].is_nullable());
    assert!(!fields[2].is_nullable() && !fields[3].is_nullable());
    assert_eq!(
        fields[3].data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
}

#[test]
fn shares_of_late_direct_and_repeated_events() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events");
    let records = 400_000;
    let report = generate(&RollupGenSpec {
        urls: 20_000,
        customers: 5,
        ..spec(&out, records, 40_000, GenFormat::Parquet)
    })
    .unwrap();
    let events = read_parquet(&out);
    assert_eq!(events.len() as u64, records);
    let start = parse_start("2026-11-20T22")
        .unwrap()
        .and_utc()
        .timestamp_micros();

    let mut late = 0u64;
    let mut direct = 0u64;
    let mut pairs = HashSet::new();
    let mut url_counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut referrers = BTreeSet::new();
    for (file, url, referrer, session, ts) in &events {
        // …/customer=site-K.example/part-IIIII
        let index: i64 = file.rsplit("part-").next().unwrap().parse().unwrap();
        let customer = file.split("customer=").nth(1).unwrap().split('/').next();
        let customer = customer.unwrap();
        assert_eq!(customer, format!("site-{}.example", index % 5));
        let hour = start + (index / 2) * HOUR_MICROS;
        let hour_dir = chrono::DateTime::from_timestamp_micros(hour)
            .unwrap()
            .format("year=%Y/month=%m/day=%d/hour=%H/")
            .to_string();
        assert!(file.starts_with(&hour_dir), "{file} is not in {hour_dir}");
        let prefix = format!("https://{customer}/articles/");
        let n: u64 = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{url} is not an article of {customer}"))
            .parse()
            .unwrap();
        assert!(n < 20_000);
        assert!(
            session.len() == 16
                && session
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{session}"
        );
        if *ts < hour {
            assert!(*ts >= hour - HOUR_MICROS, "{ts} before the previous hour");
            late += 1;
        } else {
            assert!(*ts < hour + HOUR_MICROS, "{ts} after the file's hour");
        }
        match referrer {
            None => direct += 1,
            Some(r) => {
                referrers.insert(r.as_str());
            }
        }
        pairs.insert((
            customer,
            url.as_str(),
            ts.div_euclid(HOUR_MICROS),
            session.as_str(),
        ));
        *url_counts.entry(url.as_str()).or_default() += 1;
    }
    let share = |n: u64| n as f64 / records as f64;
    assert_eq!((report.late, report.direct), (late, direct));
    assert!((share(late) - 0.01).abs() < 0.002, "late {}", share(late));
    assert!(
        (share(direct) - 0.15).abs() < 0.005,
        "direct {}",
        share(direct)
    );
    assert!((share(report.repeated) - 0.08).abs() < 0.005);
    let distinct = share(pairs.len() as u64);
    assert!((distinct - 0.92).abs() < 0.01, "distinct pairs {distinct}");
    assert_eq!(referrers, REFERRERS.iter().copied().collect());
    // Zipf-like: the most viewed article of a customer gets far more than a uniform share.
    let top = *url_counts.values().max().unwrap();
    assert!(
        top as f64 > 500.0 * records as f64 / 5.0 / 20_000.0,
        "top {top}"
    );
}

#[test]
fn csv_and_jsonl_hold_the_parquet_events() {
    let dir = tempfile::tempdir().unwrap();
    let read: [(GenFormat, ReadEvents); 3] = [
        (GenFormat::Parquet, read_parquet),
        (GenFormat::Csv, read_csv),
        (GenFormat::Jsonl, read_jsonl),
    ];
    let mut all = Vec::new();
    for (format, reader) in read {
        let out = dir.path().join(format!("{format:?}"));
        generate(&spec(&out, 20_000, 7_000, format)).unwrap();
        let events = reader(&out);
        assert_eq!(events.len(), 20_000);
        all.push(events);
    }
    assert!(all[0].iter().any(|e| e.2.is_none()));
    assert!(all[0] == all[1], "csv differs from parquet");
    assert!(all[0] == all[2], "jsonl differs from parquet");
}

#[test]
fn regenerating_replaces_the_earlier_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events");
    generate(&spec(&out, 25_000, 6_000, GenFormat::Parquet)).unwrap();
    std::fs::write(out.join("README"), "kept").unwrap();
    let again = RollupGenSpec {
        start: parse_start("2027-01-01T00").unwrap(),
        ..spec(&out, 3_000, 6_000, GenFormat::Jsonl)
    };
    generate(&again).unwrap();
    assert_eq!(
        files(&out),
        [
            PathBuf::from("README"),
            PathBuf::from("_SUCCESS"),
            PathBuf::from(
                "year=2027/month=01/day=01/hour=00/customer=site-0.example/part-00000.jsonl"
            ),
        ]
    );
    let bad = generate(&RollupGenSpec {
        records: 0,
        ..spec(&out, 1, 1, GenFormat::Parquet)
    });
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("--records must be at least 1"));
    assert!(out.join("_SUCCESS").exists());
}

#[test]
fn the_binary_writes_the_dataset_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events");
    let output = Command::new(env!("CARGO_BIN_EXE_emrship-job"))
        .args([
            "gen",
            "rollup",
            "--records",
            "5000",
            "--records-per-file",
            "2000",
        ])
        .args([
            "--customers",
            "2",
            "--start",
            "2026-11-20T05",
            "--format",
            "csv",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("wrote 5,000 events in 3 files over 2 hours"),
        "{stderr}"
    );
    let written = files(&out);
    assert_eq!(written.len(), 4);
    assert!(written[3].starts_with("year=2026/month=11/day=20/hour=06/customer=site-0.example"));

    let output = Command::new(env!("CARGO_BIN_EXE_emrship-job"))
        .args(["gen", "rollup", "--records", "10", "--start", "noon"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not an hour like 2026-11-20T00"),
        "{stderr}"
    );
}
