//! The match-rate compute core: kernels against straightforward references on random inputs,
//! every input format and location kind, bad input, the file catalog, the Parquet sink, the
//! generator, S3 (moto), and both binaries end to end.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type};
use arrow_array::{
    ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampSecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use emrship::job::catalog::files::FileCatalog;
use emrship::job::counts::PairCounts;
use emrship::job::engine;
use emrship::job::location::list_inputs;
use emrship::job::model::DaySink;
use emrship::job::model::{Catalog, JobError, MatchRateTables, ProductMatchRow, ProductMatches};
use emrship::job::sink::parquet::ParquetSink;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use common::rng::Rng;

type Counts = BTreeMap<(String, String), u64>;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

/// A view row: advertiser, product, event time (UTC micros) — `None` ids are nulls.
#[derive(Clone, Debug)]
struct View {
    advertiser: Option<String>,
    product: Option<String>,
    micros: Option<i64>,
}

fn micros_of(day: NaiveDate, seconds: i64) -> i64 {
    (day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() + seconds) * 1_000_000
}

fn random_views(rng: &mut Rng, n: usize, advertisers: u64, products: u64, skew: bool) -> Vec<View> {
    (0..n)
        .map(|_| {
            let a = if skew {
                rng.skewed(advertisers)
            } else {
                rng.below(advertisers)
            };
            let p = if skew {
                rng.skewed(products)
            } else {
                rng.below(products)
            };
            View {
                advertiser: Some(format!("adv-{a}")),
                // Varying lengths, shared prefixes, and non-ASCII ids exercise the byte keys.
                product: Some(match p % 3 {
                    0 => format!("p{p}"),
                    1 => format!("product-with-a-long-shared-prefix-{p}"),
                    _ => format!("é{p}ü"),
                }),
                micros: Some(micros_of(day(), rng.below(86_400) as i64)),
            }
        })
        .collect()
}

fn reference(views: &[View], day: NaiveDate) -> Counts {
    let start = micros_of(day, 0);
    let end = micros_of(day, 86_400);
    let mut counts = Counts::new();
    for v in views {
        let (Some(a), Some(p)) = (&v.advertiser, &v.product) else {
            continue;
        };
        if a.is_empty() || p.is_empty() {
            continue;
        }
        if let Some(t) = v.micros {
            if t < start || t >= end {
                continue;
            }
        }
        *counts.entry((a.clone(), p.clone())).or_insert(0) += 1;
    }
    counts
}

fn write_parquet(path: &Path, batch: &RecordBatch, row_group_rows: usize) {
    let file = File::create(path).unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn views_batch(views: &[View]) -> RecordBatch {
    let advertisers: StringArray = views.iter().map(|v| v.advertiser.as_deref()).collect();
    let products: StringArray = views.iter().map(|v| v.product.as_deref()).collect();
    let times = TimestampMicrosecondArray::from(views.iter().map(|v| v.micros).collect::<Vec<_>>())
        .with_timezone("UTC");
    let schema = Schema::new(vec![
        Field::new("advertiser_id", DataType::Utf8, true),
        Field::new("product_id", DataType::Utf8, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(advertisers), Arc::new(products), Arc::new(times)],
    )
    .unwrap()
}

fn iso(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn write_csv(path: &Path, views: &[View]) {
    let mut text = String::from("event_time,product_id,advertiser_id,other\n");
    for v in views {
        text.push_str(&format!(
            "{},{},{},x\n",
            v.micros.map(iso).unwrap_or_default(),
            v.product.as_deref().unwrap_or(""),
            v.advertiser.as_deref().unwrap_or("")
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn write_jsonl(path: &Path, views: &[View]) {
    let mut text = String::new();
    for v in views {
        let line = serde_json::json!({
            "advertiser_id": v.advertiser,
            "product_id": v.product,
            "event_time": v.micros.map(iso),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn scan(uri: &str, threads: usize) -> Result<(Counts, emrship::job::model::ScanStats), JobError> {
    let files = list_inputs(uri)?;
    let (counts, stats) = engine::scan_views(&files, day(), threads)?;
    Ok((as_map(&counts), stats))
}

fn as_map(counts: &PairCounts) -> Counts {
    counts
        .iter()
        .map(|(a, p, c)| ((a.to_string(), p.to_string()), c))
        .collect()
}

#[test]
fn kernel_matches_a_reference_count_on_random_inputs() {
    // (rows, advertisers, products, skewed, files)
    let shapes = [
        (0, 1, 1, false, 1),
        (1, 1, 1, false, 1),
        (5_000, 1, 2_000, true, 3),    // one huge advertiser
        (20_000, 300, 50, false, 4),   // many advertisers, few products
        (30_000, 40, 10_000, true, 5), // skew like real traffic
        (10_000, 5_000, 5_000, false, 2),
    ];
    for (seed, &(rows, advertisers, products, skew, files)) in shapes.iter().enumerate() {
        let mut rng = Rng(seed as u64 + 100);
        let views = random_views(&mut rng, rows, advertisers, products, skew);
        let expected = reference(&views, day());
        let dir = tempfile::tempdir().unwrap();
        for f in 0..files {
            // File f gets a contiguous share; the last file of a multi-file input is empty.
            let share = if files > 1 && f == files - 1 {
                0..0
            } else {
                let parts = if files > 1 { files - 1 } else { 1 };
                (rows * f / parts)..(rows * (f + 1) / parts)
            };
            let batch = views_batch(&views[share]);
            write_parquet(
                &dir.path().join(format!("part-{f}.parquet")),
                &batch,
                1_000 + f * 777,
            );
        }
        for threads in [1, 3] {
            let (got, stats) = scan(dir.path().to_str().unwrap(), threads).unwrap();
            assert_eq!(got, expected, "shape {seed}, {threads} threads");
            assert_eq!(stats.rows_read, rows as u64);
            assert_eq!(stats.rows_counted, expected.values().sum::<u64>());
            assert_eq!(stats.files, files as u64);
        }
        // The column form is sorted by (advertiser_id, product_id) and holds the same counts.
        let (counts, _) = engine::scan_views(
            &list_inputs(dir.path().to_str().unwrap()).unwrap(),
            day(),
            2,
        )
        .unwrap();
        let table = counts.into_product_matches();
        let rows: Vec<((String, String), u64)> = table
            .iter()
            .map(|r| {
                (
                    (r.advertiser_id.to_string(), r.product_id.to_string()),
                    r.view_count,
                )
            })
            .collect();
        assert_eq!(
            rows,
            expected.into_iter().collect::<Vec<_>>(),
            "shape {seed}"
        );
    }
}

#[test]
fn blobs_and_buckets_recombine_to_the_same_counts() {
    let mut rng = Rng(7);
    let views = random_views(&mut rng, 20_000, 50, 3_000, true);
    let expected = reference(&views, day());
    // Two "map tasks", each partitioning into 7 buckets; "reduce" merges decoded blobs.
    let mut maps = [PairCounts::new(), PairCounts::new()];
    for (i, v) in views.iter().enumerate() {
        maps[i % 2].add(
            v.advertiser.as_deref().unwrap(),
            v.product.as_deref().unwrap(),
            1,
        );
    }
    let mut merged = Counts::new();
    let partitions: Vec<Vec<PairCounts>> = maps.iter().map(|m| m.partition(7)).collect();
    for bucket in 0..7 {
        let blobs: Vec<PairCounts> = partitions
            .iter()
            .map(|p| PairCounts::decode(&p[bucket].encode(), "blob").unwrap())
            .collect();
        let reduced = PairCounts::merge_all(blobs);
        for (key, count) in as_map(&reduced) {
            assert!(merged.insert(key, count).is_none(), "a pair in two buckets");
        }
    }
    assert_eq!(merged, expected);
}

#[test]
fn every_format_and_location_kind_gives_the_same_counts() {
    let mut rng = Rng(11);
    let mut views = random_views(&mut rng, 6_000, 20, 500, true);
    // Some outside the day, some with missing ids, so every format filters the same way.
    for (i, v) in views.iter_mut().enumerate() {
        match i % 50 {
            0 => v.micros = Some(micros_of(day(), -1)),
            1 => v.micros = Some(micros_of(day(), 86_400)),
            2 => v.advertiser = None,
            3 => v.product = Some(String::new()),
            _ => {}
        }
    }
    let expected = reference(&views, day());
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = views.split_at(2_500);
    let mut results = Vec::new();
    for (kind, ext) in [
        ("parquet", "parquet"),
        ("csv", "csv"),
        ("jsonl", "jsonl"),
        ("ndjson", "ndjson"),
    ] {
        let sub = dir.path().join(kind);
        std::fs::create_dir(&sub).unwrap();
        for (i, part) in [a, b].iter().enumerate() {
            let path = sub.join(format!("part-{i}.{ext}"));
            match kind {
                "parquet" => write_parquet(&path, &views_batch(part), 1_000),
                "csv" => write_csv(&path, part),
                _ => write_jsonl(&path, part),
            }
        }
        std::fs::write(sub.join("_SUCCESS"), "").unwrap();
        let dir_uri = sub.display().to_string();
        let glob_uri = format!("{}/part-*.{ext}", sub.display());
        let file_uri = format!("{}/part-0.{ext}", sub.display());
        for uri in [&dir_uri, &glob_uri, &format!("file://{dir_uri}")] {
            let (got, stats) = scan(uri, 2).unwrap();
            assert_eq!(got, expected, "{uri}");
            assert_eq!(stats.rows_outside_day, 240, "{uri}");
            assert_eq!(stats.rows_missing_ids, 240, "{uri}");
            results.push(got);
        }
        let (one, _) = scan(&file_uri, 1).unwrap();
        assert_eq!(one, reference(a, day()), "{file_uri}");
    }
}

#[test]
fn event_time_in_other_types_and_offsets_is_filtered_by_the_utc_day() {
    let dir = tempfile::tempdir().unwrap();
    // Seconds without a time zone (taken as UTC), one row each side of both midnights.
    let start = micros_of(day(), 0) / 1_000_000;
    let seconds =
        TimestampSecondArray::from(vec![start - 1, start, start + 86_399, start + 86_400]);
    let schema = Schema::new(vec![
        Field::new("advertiser_id", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Second, None),
            false,
        ),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec!["a"; 4])),
            Arc::new(StringArray::from(vec!["p1", "p2", "p3", "p4"])),
            Arc::new(seconds),
        ],
    )
    .unwrap();
    write_parquet(&dir.path().join("t.parquet"), &batch, 10);
    let (got, stats) = scan(dir.path().join("t.parquet").to_str().unwrap(), 1).unwrap();
    assert_eq!(
        got.keys().map(|k| k.1.as_str()).collect::<Vec<_>>(),
        ["p2", "p3"]
    );
    assert_eq!(stats.rows_outside_day, 2);

    let csv = dir.path().join("offsets.csv");
    std::fs::write(
        &csv,
        "advertiser_id,product_id,event_time\n\
         a,in-1,2026-11-21T01:00:00+02:00\n\
         a,out-1,2026-11-20T23:30:00-01:00\n\
         a,in-2,2026-11-20 12:00:00\n\
         a,in-3,\n\
         a,out-2,2026-11-19T23:59:59.999Z\n",
    )
    .unwrap();
    let (got, stats) = scan(csv.to_str().unwrap(), 1).unwrap();
    let products: BTreeSet<&str> = got.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(products, BTreeSet::from(["in-1", "in-2", "in-3"]));
    assert_eq!(stats.rows_outside_day, 2);

    std::fs::write(&csv, "advertiser_id,product_id,event_time\na,p,yesterday\n").unwrap();
    let err = scan(csv.to_str().unwrap(), 1).unwrap_err().to_string();
    assert!(
        err.contains("offsets.csv") && err.contains("row 1") && err.contains("yesterday"),
        "{err}"
    );
}

#[test]
fn a_missing_column_is_an_error_naming_the_file_and_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new(vec![
        Field::new("advertiser_id", DataType::Utf8, false),
        Field::new("sku", DataType::Utf8, false),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["p"])),
        ],
    )
    .unwrap();
    write_parquet(&dir.path().join("no-product.parquet"), &batch, 10);
    std::fs::write(
        dir.path().join("no-advertiser.csv"),
        "adv,product_id\na,p\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("no-product.jsonl"),
        "{\"advertiser_id\":\"a\",\"sku\":\"p\"}\n",
    )
    .unwrap();
    for (file, column, present) in [
        ("no-product.parquet", "product_id", "advertiser_id, sku"),
        ("no-advertiser.csv", "advertiser_id", "adv, product_id"),
        ("no-product.jsonl", "product_id", "advertiser_id, sku"),
    ] {
        let err = scan(dir.path().join(file).to_str().unwrap(), 1).unwrap_err();
        assert!(matches!(err, JobError::Input { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(file), "{text}");
        assert!(text.contains(&format!("`{column}`")), "{text}");
        assert!(text.contains(present), "{text}");
    }
}

#[test]
fn null_and_empty_ids_are_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let views = vec![
        View {
            advertiser: Some("a".into()),
            product: Some("p".into()),
            micros: None,
        },
        View {
            advertiser: None,
            product: Some("p".into()),
            micros: None,
        },
        View {
            advertiser: Some("a".into()),
            product: None,
            micros: None,
        },
        View {
            advertiser: Some(String::new()),
            product: Some("p".into()),
            micros: None,
        },
        View {
            advertiser: Some("a".into()),
            product: Some(String::new()),
            micros: None,
        },
        View {
            advertiser: Some("a".into()),
            product: Some("p".into()),
            micros: None,
        },
    ];
    write_parquet(&dir.path().join("v.parquet"), &views_batch(&views), 100);
    write_jsonl(&dir.path().join("v.jsonl"), &views);
    write_csv(&dir.path().join("v.csv"), &views);
    for file in ["v.parquet", "v.jsonl", "v.csv"] {
        let (got, stats) = scan(dir.path().join(file).to_str().unwrap(), 1).unwrap();
        assert_eq!(got, Counts::from([(("a".into(), "p".into()), 2)]), "{file}");
        assert_eq!(
            (stats.rows_read, stats.rows_missing_ids, stats.rows_counted),
            (6, 4, 2),
            "{file}"
        );
    }
}

#[test]
fn a_corrupt_parquet_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    let views = random_views(&mut rng, 2_000, 3, 100, false);
    write_parquet(&dir.path().join("good.parquet"), &views_batch(&views), 500);
    std::fs::write(
        dir.path().join("garbage.parquet"),
        b"this is not parquet at all",
    )
    .unwrap();
    let good = std::fs::read(dir.path().join("good.parquet")).unwrap();
    // A file cut in half: the footer is gone.
    std::fs::write(
        dir.path().join("truncated.parquet"),
        &good[..good.len() / 2],
    )
    .unwrap();
    // Data pages damaged, footer intact: the error comes while decoding.
    let mut damaged = good.clone();
    for b in &mut damaged[8..good.len() / 2] {
        *b ^= 0x5A;
    }
    std::fs::write(dir.path().join("damaged.parquet"), &damaged).unwrap();
    for file in ["garbage.parquet", "truncated.parquet", "damaged.parquet"] {
        let err = scan(dir.path().join(file).to_str().unwrap(), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains(file), "{err}");
        assert!(err.to_lowercase().contains("parquet"), "{err}");
    }
    // In a directory, the error still names the bad file.
    std::fs::remove_file(dir.path().join("truncated.parquet")).unwrap();
    std::fs::remove_file(dir.path().join("damaged.parquet")).unwrap();
    let err = scan(dir.path().to_str().unwrap(), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbage.parquet"), "{err}");
}

fn catalog_batch(rows: &[(String, String)]) -> RecordBatch {
    let mut a = StringBuilder::new();
    let mut p = StringBuilder::new();
    for (x, y) in rows {
        a.append_value(x);
        p.append_value(y);
    }
    let schema = Schema::new(vec![
        Field::new("advertiser_id", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
    ]);
    let titles: StringArray = rows.iter().map(|_| Some("t")).collect();
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(a.finish()), Arc::new(p.finish()), Arc::new(titles)],
    )
    .unwrap()
}

/// A catalog of 30,000 random (advertiser, product) rows in `dir`, as a Parquet file and a
/// CSV file; returns its distinct keys.
fn write_file_catalog(dir: &Path, rng: &mut Rng) -> BTreeSet<(String, String)> {
    let catalog: Vec<(String, String)> = (0..30_000)
        .map(|_| {
            (
                format!("adv-{}", rng.skewed(60)),
                format!("p{}", rng.below(20_000)),
            )
        })
        .collect();
    let (a, b) = catalog.split_at(18_000);
    write_parquet(&dir.join("part-0.parquet"), &catalog_batch(a), 4_000);
    let mut csv = String::from("advertiser_id,product_id\n");
    for (x, y) in b {
        csv.push_str(&format!("{x},{y}\n"));
    }
    std::fs::write(dir.join("part-1.csv"), csv).unwrap();
    catalog.into_iter().collect()
}

#[test]
fn the_file_catalog_finds_exactly_the_keys_it_holds() {
    let mut rng = Rng(21);
    let dir = tempfile::tempdir().unwrap();
    let set = write_file_catalog(dir.path(), &mut rng);
    // Keys: distinct, some present, some absent (unknown advertisers too).
    let keys: BTreeSet<(String, String)> = (0..20_000)
        .map(|_| {
            (
                format!("adv-{}", rng.below(70)),
                format!("p{}", rng.below(25_000)),
            )
        })
        .collect();
    let keys: Vec<(String, String)> = keys.into_iter().collect();
    let refs: Vec<(&str, &str)> = keys.iter().map(|(a, p)| (a.as_str(), p.as_str())).collect();
    let catalog_reader = FileCatalog::open(dir.path().to_str().unwrap()).unwrap();
    let hits = catalog_reader.contains_all(&refs).unwrap();
    let expected: Vec<bool> = keys.iter().map(|k| set.contains(k)).collect();
    assert_eq!(hits, expected);
    assert!(expected.iter().any(|&h| h) && expected.iter().any(|&h| !h));
    let err = FileCatalog::open(dir.path().join("nothing").to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("catalog") && err.contains("nothing"), "{err}");
}

fn tables(rows: &[(&str, &str, u64, bool)], day: NaiveDate) -> MatchRateTables {
    let matches = ProductMatches::from_rows(rows.iter().map(|&(a, p, v, m)| ProductMatchRow {
        advertiser_id: a,
        product_id: p,
        view_count: v,
        matched: m,
    }));
    MatchRateTables::from_product_matches(day, matches)
}

/// Every row of a Parquet dataset table for one day, as text, sorted.
fn read_table(root: &Path, table: &str, day: NaiveDate) -> Vec<String> {
    let dir = root.join(table).join(format!("day={day}"));
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            rows.extend(batch_rows(&batch.unwrap()));
        }
    }
    rows.sort();
    rows
}

fn batch_rows(batch: &RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|i| {
            batch
                .columns()
                .iter()
                .map(|c| cell(c, i))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn cell(column: &ArrayRef, i: usize) -> String {
    match column.data_type() {
        DataType::Date32 => column
            .as_primitive::<Date32Type>()
            .value_as_date(i)
            .unwrap()
            .to_string(),
        DataType::Utf8 => column.as_string::<i32>().value(i).to_string(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Boolean => column.as_boolean().value(i).to_string(),
        DataType::Float64 => format!("{:.4}", column.as_primitive::<Float64Type>().value(i)),
        other => panic!("unexpected column type {other}"),
    }
}

#[test]
fn the_parquet_sink_replaces_one_day_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let other_day = day().succ_opt().unwrap();
    let mut sink = ParquetSink::open(dir.path().to_str().unwrap()).unwrap();
    sink.write_day(&tables(
        &[("a", "p1", 3, true), ("a", "p2", 1, false)],
        day(),
    ))
    .unwrap();
    sink.write_day(&tables(&[("z", "p9", 7, false)], other_day))
        .unwrap();
    let report = sink
        .write_day(&tables(&[("b", "p3", 5, true)], day()))
        .unwrap();
    assert_eq!((report.product_rows, report.advertiser_rows), (1, 1));
    assert_eq!(
        read_table(dir.path(), "product_matches", day()),
        ["2026-11-20|b|p3|5|true"]
    );
    assert_eq!(
        read_table(dir.path(), "advertiser_match_rates", day()),
        ["2026-11-20|b|5|5|1|1|1.0000"]
    );
    assert_eq!(
        read_table(dir.path(), "product_matches", other_day),
        ["2026-11-21|z|p9|7|false"]
    );
    // Nothing left aside.
    for table in ["product_matches", "advertiser_match_rates"] {
        let names: Vec<String> = std::fs::read_dir(dir.path().join(table))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.is_empty(), "no partition in {table}");
        assert!(names.iter().all(|n| n.starts_with("day=")), "{names:?}");
    }
    // A sink that cannot be created fails at open, before any work.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = ParquetSink::open(file.join("sub").to_str().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("a-file"), "{err}");
}

fn gen_command(out: &Path, format: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emrship-job"));
    command.args([
        "gen",
        "match-rate",
        "--events",
        "30000",
        "--pairs",
        "8000",
        "--advertisers",
        "25",
        "--catalog-size",
        "9000",
        "--match-fraction",
        "0.75",
        "--files",
        "3",
        "--format",
        format,
        "--out",
    ]);
    command.arg(out).args(extra);
    command
}

fn tree_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["views", "catalog"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            out.insert(
                path.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&path).unwrap(),
            );
        }
    }
    out
}

#[test]
fn gen_is_deterministic_and_has_the_asked_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two, other) = (
        dir.path().join("1"),
        dir.path().join("2"),
        dir.path().join("3"),
    );
    assert!(gen_command(&one, "parquet", &[])
        .status()
        .unwrap()
        .success());
    assert!(gen_command(&two, "parquet", &[])
        .status()
        .unwrap()
        .success());
    assert!(gen_command(&other, "parquet", &["--seed", "2"])
        .status()
        .unwrap()
        .success());
    assert_eq!(tree_bytes(&one), tree_bytes(&two));
    assert_ne!(tree_bytes(&one), tree_bytes(&other));
    assert_eq!(tree_bytes(&one).len(), 6);

    let (counts, stats) = scan(one.join("views").to_str().unwrap(), 2).unwrap();
    assert_eq!(stats.rows_read, 30_000);
    assert_eq!(stats.rows_counted, 30_000, "every event is inside the day");
    assert_eq!(counts.len(), 8_000, "exactly P distinct pairs");
    let advertisers: BTreeSet<&str> = counts.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(advertisers.len(), 25);
    // Skew: the busiest advertiser has several times its fair share of views.
    let mut per_advertiser: BTreeMap<&str, u64> = BTreeMap::new();
    for ((a, _), c) in &counts {
        *per_advertiser.entry(a).or_default() += c;
    }
    let busiest = per_advertiser.values().max().unwrap();
    assert!(
        *busiest > 3 * 30_000 / 25,
        "busiest advertiser has {busiest} views"
    );

    let catalog: Vec<(String, String)> = read_pairs(&one.join("catalog"));
    assert_eq!(catalog.len(), 9_000, "exactly C catalog rows");
    let catalog: BTreeSet<(String, String)> = catalog.into_iter().collect();
    assert_eq!(catalog.len(), 9_000, "catalog rows are distinct");
    let matched = counts.keys().filter(|k| catalog.contains(*k)).count() as f64;
    let fraction = matched / 8_000.0;
    assert!(
        (fraction - 0.75).abs() < 0.03,
        "matched fraction {fraction}"
    );

    // Same data as CSV and JSON Lines.
    for format in ["csv", "jsonl"] {
        let out = dir.path().join(format);
        assert!(gen_command(&out, format, &[]).status().unwrap().success());
        let (other_counts, _) = scan(out.join("views").to_str().unwrap(), 2).unwrap();
        assert_eq!(other_counts, counts, "{format}");
    }
}

fn read_pairs(dir: &Path) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for file in list_inputs(dir.to_str().unwrap()).unwrap() {
        let emrship::job::location::Location::Local(path) = file else {
            unreachable!()
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let a = batch
                .column_by_name("advertiser_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let p = batch
                .column_by_name("product_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            for i in 0..batch.num_rows() {
                rows.push((a.value(i).to_string(), p.value(i).to_string()));
            }
        }
    }
    rows
}

/// The expected advertiser table from first principles: count the views, check the catalog.
fn expected_rates(
    views: &Counts,
    catalog: &BTreeSet<(String, String)>,
) -> BTreeMap<String, (u64, u64, u64, u64)> {
    let mut rates: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for (key, &count) in views {
        let r = rates.entry(key.0.clone()).or_default();
        let hit = catalog.contains(key);
        r.0 += count;
        r.1 += if hit { count } else { 0 };
        r.2 += 1;
        r.3 += hit as u64;
    }
    rates
}

fn rates_from_json(json: &serde_json::Value) -> BTreeMap<String, (u64, u64, u64, u64)> {
    json["advertiser_match_rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["advertiser_id"].as_str().unwrap().to_string(),
                (
                    r["total_views"].as_u64().unwrap(),
                    r["matched_views"].as_u64().unwrap(),
                    r["total_products"].as_u64().unwrap(),
                    r["matched_products"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn emrship_job_runs_end_to_end_and_exits_2_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(gen_command(&data, "parquet", &[])
        .status()
        .unwrap()
        .success());
    let out = dir.path().join("out");
    let run = |views: &str, sink: &Path| {
        Command::new(env!("CARGO_BIN_EXE_emrship-job"))
            .args([
                "match-rate",
                "--date",
                "2026-11-20",
                "--views",
                views,
                "--catalog",
            ])
            .arg(data.join("catalog"))
            .arg("--sink")
            .arg(sink)
            .args(["--format", "json", "--threads", "2"])
            .output()
            .unwrap()
    };
    let output = run(data.join("views").to_str().unwrap(), &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (views, _) = scan(data.join("views").to_str().unwrap(), 1).unwrap();
    let catalog: BTreeSet<(String, String)> =
        read_pairs(&data.join("catalog")).into_iter().collect();
    let expected = expected_rates(&views, &catalog);
    assert_eq!(rates_from_json(&json), expected);
    assert_eq!(json["pairs"], 8_000);
    assert!(
        stderr.contains("top advertisers by unmatched views"),
        "{stderr}"
    );
    // The sink holds the same numbers.
    let rows = read_table(&out, "advertiser_match_rates", day());
    assert_eq!(rows.len(), expected.len());
    let products = read_table(&out, "product_matches", day());
    assert_eq!(products.len(), 8_000);
    let matched = products.iter().filter(|r| r.ends_with("|true")).count();
    assert_eq!(matched as u64, expected.values().map(|r| r.3).sum::<u64>());

    // Bad input: exit 2, the error names the file, the sink keeps the earlier day.
    let bad = dir.path().join("bad.parquet");
    std::fs::write(&bad, "not parquet").unwrap();
    let output = run(bad.to_str().unwrap(), &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("emrship-job: error: ") && stderr.contains("bad.parquet"),
        "{stderr}"
    );
    assert_eq!(read_table(&out, "product_matches", day()), products);

    // Usage errors exit 2 too.
    let output = Command::new(env!("CARGO_BIN_EXE_emrship-job"))
        .args([
            "match-rate",
            "--date",
            "2026-11-20",
            "--views",
            "x",
            "--catalog",
            "y",
            "--sink",
            "z",
            "--engine",
            "spark",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Spark driver"));
}

#[test]
fn emrship_run_local_generates_sample_data_once_and_writes_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("job-specs/match-rate.yaml");
    let sink = dir.path().join("results");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_emrship"))
            .current_dir(dir.path())
            .arg("run")
            .arg(&spec)
            .args([
                "--local",
                "--date",
                "2026-11-20",
                "--format",
                "json",
                "--sink",
            ])
            .arg(&sink)
            .output()
            .unwrap()
    };
    let output = run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("generated sample data"), "{stderr}");
    let sample = dir
        .path()
        .join("target/emrship/sample/match-rate/2026-11-20");
    assert!(sample.join("_SUCCESS").exists());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (views, _) = scan(sample.join("views").to_str().unwrap(), 1).unwrap();
    let catalog: BTreeSet<(String, String)> =
        read_pairs(&sample.join("catalog")).into_iter().collect();
    assert_eq!(rates_from_json(&json), expected_rates(&views, &catalog));
    assert_eq!(
        read_table(&sink, "advertiser_match_rates", day()).len(),
        json["advertiser_match_rates"].as_array().unwrap().len()
    );

    let again = run();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("using the sample data"), "{stderr}");
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        again["advertiser_match_rates"],
        json["advertiser_match_rates"]
    );
}

#[test]
fn s3_views_catalog_and_sink_against_moto() {
    let moto = common::moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(gen_command(&data, "parquet", &[])
        .status()
        .unwrap()
        .success());
    let csv_catalog = dir.path().join("csv");
    assert!(gen_command(&csv_catalog, "csv", &[])
        .status()
        .unwrap()
        .success());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = moto.s3().await;
        s3.create_bucket().bucket("lake").send().await.unwrap();
        for (local, key) in [
            (data.join("views"), "views/dt=2026-11-20"),
            (csv_catalog.join("catalog"), "catalog"),
        ] {
            for entry in std::fs::read_dir(&local).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                s3.put_object()
                    .bucket("lake")
                    .key(format!("{key}/{name}"))
                    .body(std::fs::read(&path).unwrap().into())
                    .send()
                    .await
                    .unwrap();
            }
        }
        s3.put_object()
            .bucket("lake")
            .key("views/dt=2026-11-20/_SUCCESS")
            .body(Vec::new().into())
            .send()
            .await
            .unwrap();
    });
    let run = |sink: &str| {
        moto.command(env!("CARGO_BIN_EXE_emrship-job"))
            .args([
                "match-rate",
                "--date",
                "2026-11-20",
                "--views",
                "s3://lake/views/dt=2026-11-20/",
                "--catalog",
                "s3://lake/catalog/part-*.csv",
                "--sink",
                sink,
                "--format",
                "json",
            ])
            .output()
            .unwrap()
    };
    let output = run("s3://lake/results");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (views, _) = scan(data.join("views").to_str().unwrap(), 1).unwrap();
    let catalog: BTreeSet<(String, String)> =
        read_pairs(&data.join("catalog")).into_iter().collect();
    assert_eq!(rates_from_json(&json), expected_rates(&views, &catalog));
    // Run the day again: the S3 dataset holds exactly one copy of the day.
    assert!(run("s3://lake/results").status.success());
    let listing = runtime.block_on(async {
        let s3 = moto.s3().await;
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket("lake")
                .prefix("results/")
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            keys.extend(page.contents().iter().map(|o| o.key().unwrap().to_string()));
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        keys
    });
    let product_files: Vec<&String> = listing
        .iter()
        .filter(|k| k.starts_with("results/product_matches/day=2026-11-20/"))
        .collect();
    let rate_files: Vec<&String> = listing
        .iter()
        .filter(|k| k.starts_with("results/advertiser_match_rates/day=2026-11-20/"))
        .collect();
    assert_eq!(product_files.len(), 1, "{listing:?}");
    assert_eq!(rate_files.len(), 1, "{listing:?}");
    assert!(listing.iter().all(|k| !k.contains("_tmp-")), "{listing:?}");
    // The product rows on S3 are the ones the local run writes.
    let body = runtime.block_on(async {
        let s3 = moto.s3().await;
        let object = s3
            .get_object()
            .bucket("lake")
            .key(product_files[0])
            .send()
            .await
            .unwrap();
        object.body.collect().await.unwrap().into_bytes()
    });
    let reader = ParquetRecordBatchReaderBuilder::try_new(body)
        .unwrap()
        .build()
        .unwrap();
    let mut rows: Vec<String> = reader.flat_map(|b| batch_rows(&b.unwrap())).collect();
    rows.sort();
    let local = dir.path().join("local-out");
    let output = run(local.to_str().unwrap());
    assert!(output.status.success());
    assert_eq!(rows, read_table(&local, "product_matches", day()));
    // A missing S3 object is an error naming it.
    let output = moto
        .command(env!("CARGO_BIN_EXE_emrship-job"))
        .args([
            "match-rate",
            "--date",
            "2026-11-20",
            "--views",
            "s3://lake/nothing-here/",
            "--catalog",
            "s3://lake/catalog/",
            "--sink",
        ])
        .arg(dir.path().join("unused"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("s3://lake/nothing-here/"), "{stderr}");
}

/// Parquet as pyarrow writes high-cardinality columns once the dictionary passes its page
/// limit (PLAIN pages, no dictionary), with UUID-length ids, in many small row groups.
#[test]
fn plain_encoded_parquet_with_uuid_length_ids_counts_like_the_reference() {
    let mut rng = Rng(41);
    let mut views = random_views(&mut rng, 12_000, 40, 3_000, false);
    for (i, v) in views.iter_mut().enumerate() {
        let p = v.product.take().unwrap();
        // 36 bytes, as a UUID's text: past the 12 bytes a string view keeps inline.
        v.product = Some(format!(
            "{:0>8}-0000-4000-8000-{:0>12}",
            i % 7,
            p.len() * 131 + i % 997
        ));
        if i % 40 == 0 {
            v.micros = Some(micros_of(day(), 86_400 + 5));
        }
    }
    let expected = reference(&views, day());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part-0.parquet");
    let file = File::create(&path).unwrap();
    let batch = views_batch(&views);
    let properties = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(1_500))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    for threads in [1, 2] {
        let (got, _) = scan(dir.path().to_str().unwrap(), threads).unwrap();
        assert_eq!(got, expected, "{threads} threads");
    }
}

/// JSON Lines mixing the fast path (plain strings) with lines it hands to the general one
/// (escapes, integer ids, extra and reordered keys, nulls, missing keys).
#[test]
fn json_lines_of_every_value_shape_count_like_the_reference() {
    let mut rng = Rng(43);
    let views = random_views(&mut rng, 3_000, 12, 400, true);
    let mut text = String::new();
    let mut expected_views = Vec::new();
    for (i, v) in views.iter().enumerate() {
        let time = v.micros.map(iso).unwrap();
        let (a, p) = (v.advertiser.clone().unwrap(), v.product.clone().unwrap());
        let line = match i % 6 {
            0 => format!(
                r#"{{"product_id":"{p}","x":[1,{{"y":2}}],"advertiser_id":"{a}","event_time":"{time}"}}"#
            ),
            // An escaped quote and a unicode escape: not borrowable.
            1 => format!(
                r#"{{"advertiser_id":"{a}","product_id":"{p}\"q\u00e9","event_time":"{time}"}}"#
            ),
            2 => format!(r#"{{"advertiser_id":"{a}","product_id":{i},"event_time":"{time}"}}"#),
            3 => format!(r#"{{"advertiser_id":"{a}","product_id":"{p}","event_time":null}}"#),
            4 => format!(r#"{{"advertiser_id":"{a}","product_id":"{p}"}}"#),
            _ => format!(r#"{{"advertiser_id":null,"product_id":"{p}","event_time":"{time}"}}"#),
        };
        text.push_str(&line);
        text.push('\n');
        let product = match i % 6 {
            1 => Some(format!("{p}\"qé")),
            2 => Some(i.to_string()),
            _ => Some(p),
        };
        expected_views.push(View {
            advertiser: (i % 6 != 5).then_some(a),
            product,
            micros: (i % 6 < 3 || i % 6 == 5).then_some(v.micros.unwrap()),
        });
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("part-0.jsonl"), text).unwrap();
    let (got, stats) = scan(dir.path().to_str().unwrap(), 1).unwrap();
    assert_eq!(got, reference(&expected_views, day()));
    assert_eq!(stats.rows_missing_ids, 500);
}

/// The local engine's catalog lookup probes the views' own table: the marks it leaves on the
/// sorted rows are exactly membership in the catalog.
#[test]
fn the_file_catalog_marks_exactly_the_viewed_pairs_it_holds() {
    let mut rng = Rng(47);
    let dir = tempfile::tempdir().unwrap();
    let set = write_file_catalog(dir.path(), &mut rng);
    let mut counts = PairCounts::new();
    for _ in 0..40_000 {
        counts.add(
            &format!("adv-{}", rng.below(70)),
            &format!("p{}", rng.below(25_000)),
            1,
        );
    }
    let reader = FileCatalog::open(dir.path().to_str().unwrap()).unwrap();
    let marks = reader.mark_counts(&counts).unwrap().unwrap();
    let unmarked = counts.clone().into_product_matches();
    let marked = counts.into_product_matches_marked(&marks);
    assert_eq!(marked.len(), unmarked.len());
    let mut found = 0;
    for i in 0..marked.len() {
        let (row, plain) = (marked.row(i), unmarked.row(i));
        assert_eq!(
            (row.advertiser_id, row.product_id, row.view_count),
            (plain.advertiser_id, plain.product_id, plain.view_count)
        );
        let key = (row.advertiser_id.to_string(), row.product_id.to_string());
        assert_eq!(row.matched, set.contains(&key), "{key:?}");
        found += usize::from(row.matched);
    }
    assert!(found > 0 && found < marked.len());
}
