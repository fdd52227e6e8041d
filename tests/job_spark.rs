//! The spark engine under real pyspark (Spark 3.5 local mode): the step `emrship plan` renders
//! for the example spec, run by `spark-submit` with only what local mode needs substituted,
//! gives exactly the local engine's tables — also when a map task and a reduce task fail once
//! after doing their work — and leaves no staged file behind.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::{Array, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray};
use arrow_schema::DataType;
use common::spark::{
    assert_same_as_local, assert_threads_agree_with_the_plan, files_under, job_bin, localize_step,
    planned_step_args, rendered_driver, replace_flag, run_ok, spark_submit_command, timed,
    write_bundle, write_faulty_bundle,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const DAY: &str = "2026-11-20";
const SPEC: &str = "job-specs/match-rate.yaml";

struct SparkRun {
    sink: PathBuf,
    staging: PathBuf,
    stdout: String,
}

/// Runs the planned step under `spark-submit` in local mode. Substituted: the master and deploy
/// mode (local, client), the bundle URI (a local zip), the driver script (the rendered text in
/// a temp file) and the job's inputs and sink (local paths; the plan has a file catalog and a
/// Parquet sink — the example's DynamoDB catalog and PostgreSQL sink have their own tests);
/// the staging root comes from EMRSHIP_STAGING. Everything else — conf, env, sizing flags — is
/// kept as planned.
fn spark_submit(work: &Path, name: &str, master: &str, bundle: &Path, data: &Path) -> SparkRun {
    let mut args = planned_step_args(
        SPEC,
        &[
            "--set",
            "job.args.catalog=s3://example-ads-data/catalog/",
            "--set",
            "job.args.sink=s3://example-ads-data/match-rates/",
        ],
    );
    assert!(
        args.iter().any(|a| a == "spark.speculation=true"),
        "the example spec turns speculation on: {args:?}"
    );
    let driver = work.join(format!("{name}-driver.py"));
    let driver_at = localize_step(&mut args, master, bundle, &driver, &rendered_driver(SPEC));
    let sink = work.join(format!("{name}-sink"));
    let staging = work.join(format!("{name}-staging"));
    replace_flag(
        &mut args,
        driver_at,
        "--views",
        data.join("views").to_str().unwrap(),
    );
    replace_flag(
        &mut args,
        driver_at,
        "--catalog",
        data.join("catalog").to_str().unwrap(),
    );
    replace_flag(&mut args, driver_at, "--sink", sink.to_str().unwrap());
    let output = timed(
        &mut spark_submit_command(work, &args, &staging),
        &format!("spark-submit ({name})"),
        true,
    );
    SparkRun {
        sink,
        staging,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// Every row of a Parquet dataset table, as text, sorted.
fn table_rows(sink: &Path, table: &str) -> Vec<String> {
    let dir = sink.join(table).join(format!("day={DAY}"));
    let mut rows = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|column| cell(column.as_ref(), row))
                    .collect();
                rows.push(cells.join("|"));
            }
        }
    }
    rows.sort();
    rows
}

fn cell(column: &dyn Array, row: usize) -> String {
    let any = column.as_any();
    match column.data_type() {
        DataType::Utf8 => any
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(row)
            .to_string(),
        DataType::Int64 => any
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(row)
            .to_string(),
        DataType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .value(row)
            .to_string(),
        DataType::Date32 => any
            .downcast_ref::<Date32Array>()
            .unwrap()
            .value(row)
            .to_string(),
        // Bit-exact: both engines must compute the same doubles.
        DataType::Float64 => format!(
            "{:?}",
            any.downcast_ref::<Float64Array>().unwrap().value(row)
        ),
        other => panic!("unexpected column type {other}"),
    }
}

fn assert_same_tables(local: &Path, spark: &Path, what: &str) {
    for table in ["product_matches", "advertiser_match_rates"] {
        assert_same_as_local(
            &table_rows(local, table),
            &table_rows(spark, table),
            &format!("{what}: {table}"),
        );
    }
}

#[test]
fn spark_engine_matches_local_engine_and_survives_failed_attempts() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let data = work.join("data");
    run_ok(
        Command::new(job_bin())
            .args([
                "gen",
                "match-rate",
                "--events",
                "200000",
                "--pairs",
                "40000",
                "--advertisers",
                "60",
                "--catalog-size",
                "50000",
                "--match-fraction",
                "0.7",
                "--files",
                "4",
                "--date",
                DAY,
                "--out",
            ])
            .arg(&data),
        "emrship-job gen",
    );
    let local_sink = work.join("local-sink");
    let local = run_ok(
        Command::new(job_bin())
            .args(["match-rate", "--date", DAY, "--engine", "local", "--views"])
            .arg(data.join("views"))
            .arg("--catalog")
            .arg(data.join("catalog"))
            .arg("--sink")
            .arg(&local_sink),
        "the local engine",
    );

    // 1. The planned step as is, in local mode.
    let binary = std::fs::read(job_bin()).unwrap();
    let bundle = work.join("bundle.zip");
    write_bundle(&bundle, &binary);
    let clean = spark_submit(work, "clean", "local[2]", &bundle, &data);
    assert_same_tables(&local_sink, &clean.sink, "spark run");
    // spark-submit merges the Python driver's stderr (the summary) into its stdout: the
    // per-advertiser table comes last.
    let local_table = String::from_utf8_lossy(&local.stdout);
    assert!(
        clean.stdout.trim_end().ends_with(local_table.trim_end()),
        "the driver prints the local engine's per-advertiser table last; it printed:\n{}",
        clean.stdout
    );
    assert_eq!(
        files_under(&clean.staging),
        Vec::<PathBuf>::new(),
        "staged files left behind"
    );

    // 2. The first map and the first reduce attempt do all their work (the reduce stages its
    //    file) and then fail; Spark retries them (local[2,4]: local mode retries a task only
    //    when given a failure budget).
    let markers = work.join("markers");
    let faulty_bundle = work.join("faulty-bundle.zip");
    write_faulty_bundle(&faulty_bundle, &markers);
    let faulty = spark_submit(work, "faulty", "local[2,4]", &faulty_bundle, &data);
    for mode in ["map", "reduce"] {
        assert!(
            markers.join(format!("{mode}-failed")).is_dir(),
            "no {mode} attempt was made to fail: the fault injection did not run"
        );
    }
    assert_threads_agree_with_the_plan(&markers, &planned_step_args(SPEC, &[]));
    assert_same_tables(&local_sink, &faulty.sink, "spark run with failed attempts");
    assert_eq!(
        files_under(&faulty.staging),
        Vec::<PathBuf>::new(),
        "staged files left behind"
    );
}
