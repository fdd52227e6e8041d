//! The spark engine under real pyspark (Spark 3.5 local mode): the step `emrship plan` renders
//! for the example spec, run by `spark-submit` with only what local mode needs substituted,
//! gives exactly the local engine's tables — also when a map task and a reduce task fail once
//! after doing their work — and leaves no staged file behind.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use arrow_array::{Array, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const DAY: &str = "2026-11-20";

fn job_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emrship-job"))
}

fn run_ok(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr (tail):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        tail(&String::from_utf8_lossy(&output.stderr), 80)
    );
    output
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The step's args exactly as `emrship plan --format json` renders them for the example spec,
/// with a file catalog and a Parquet sink (the example's DynamoDB catalog and PostgreSQL sink
/// have their own tests).
fn planned_step_args() -> Vec<String> {
    let output = run_ok(
        Command::new(env!("CARGO_BIN_EXE_emrship"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "plan",
                "job-specs/match-rate.yaml",
                "--date",
                DAY,
                "--format",
                "json",
            ])
            .args(["--set", "job.args.catalog=s3://example-ads-data/catalog/"])
            .args(["--set", "job.args.sink=s3://example-ads-data/match-rates/"]),
        "emrship plan",
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    plan["add_job_flow_steps"]["Steps"][0]["HadoopJarStep"]["Args"]
        .as_array()
        .expect("Steps[0].HadoopJarStep.Args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The driver text the plan uploads (the same render `emrship deploy` uploads).
fn rendered_driver() -> String {
    let plan = common::plan_example("job-specs/match-rate.yaml", &[]);
    plan.rendered_files
        .iter()
        .find(|f| f.name.starts_with("driver.py"))
        .map(|f| f.text.clone())
        .expect("the plan renders driver.py")
}

/// Replaces the value after `flag` (the first occurrence at or after `from`).
fn replace_flag(args: &mut [String], from: usize, flag: &str, value: &str) {
    let i = from
        + args[from..]
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} not in the step args {args:?}"));
    args[i + 1] = value.to_string();
}

fn java_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        return Some(PathBuf::from(home));
    }
    // /usr/bin/java → …/jvm/java-17-…/bin/java: JAVA_HOME is two levels up.
    let java = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("java"))
        .find(|p| p.is_file())?;
    let real = std::fs::canonicalize(java).ok()?;
    Some(real.parent()?.parent()?.to_path_buf())
}

/// A zip holding `emrship-job` (stored: the debug binary is large and compresses slowly).
fn write_bundle(zip_path: &Path, binary: &[u8]) {
    let mut zip = zip::ZipWriter::new(File::create(zip_path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755)
        .large_file(binary.len() > u32::MAX as usize);
    zip.start_file("emrship-job", options).unwrap();
    zip.write_all(binary).unwrap();
    zip.finish().unwrap();
}

struct SparkRun {
    sink: PathBuf,
    staging: PathBuf,
    stdout: String,
}

/// Runs the planned step under `spark-submit` in local mode. Substituted: the master and deploy
/// mode (local, client), the bundle URI (a local zip), the driver script (the rendered text in
/// a temp file) and the job's inputs and sink (local paths); the staging root comes from
/// EMRSHIP_STAGING. Everything else — conf, env, sizing flags — is kept as planned.
fn spark_submit(work: &Path, name: &str, master: &str, bundle: &Path, data: &Path) -> SparkRun {
    let mut args = planned_step_args();
    assert_eq!(
        args[0], "spark-submit",
        "a cluster-mode step starts with spark-submit"
    );
    assert!(
        args.iter().any(|a| a == "spark.speculation=true"),
        "the example spec turns speculation on: {args:?}"
    );
    args.remove(0);
    replace_flag(&mut args, 0, "--master", master);
    replace_flag(&mut args, 0, "--deploy-mode", "client");
    replace_flag(
        &mut args,
        0,
        "--archives",
        &format!("{}#bundle", bundle.display()),
    );
    let driver_at = args
        .iter()
        .position(|a| a.starts_with("s3://") && a.ends_with("/driver.py"))
        .expect("the driver script URI");
    let driver = work.join(format!("{name}-driver.py"));
    std::fs::write(&driver, rendered_driver()).unwrap();
    args[driver_at] = driver.display().to_string();
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

    let python = common::moto::test_python();
    let spark_submit = python.parent().unwrap().join("spark-submit");
    let mut command = Command::new(&spark_submit);
    command
        .args(&args)
        .current_dir(work)
        .env("PYSPARK_PYTHON", &python)
        .env("PYSPARK_DRIVER_PYTHON", &python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("SPARK_LOCAL_HOSTNAME", "localhost")
        .env("EMRSHIP_STAGING", &staging)
        .env_remove("SPARK_HOME")
        .stdin(Stdio::null());
    if let Some(home) = java_home() {
        command.env("JAVA_HOME", home);
    }
    let started = Instant::now();
    let output = run_ok(&mut command, &format!("spark-submit ({name})"));
    eprintln!(
        "spark-submit {name}: {:.1} s",
        started.elapsed().as_secs_f64()
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

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn assert_same_tables(local: &Path, spark: &Path, what: &str) {
    for table in ["product_matches", "advertiser_match_rates"] {
        let (want, got) = (table_rows(local, table), table_rows(spark, table));
        assert!(!want.is_empty(), "the local engine wrote no {table}");
        if want != got {
            let want_set: BTreeSet<_> = want.iter().collect();
            let got_set: BTreeSet<_> = got.iter().collect();
            let missing: Vec<_> = want_set.difference(&got_set).take(5).collect();
            let extra: Vec<_> = got_set.difference(&want_set).take(5).collect();
            panic!(
                "{what}: {table} differs from the local engine ({} rows vs {}); missing e.g. {missing:?}, extra e.g. {extra:?}",
                want.len(),
                got.len()
            );
        }
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
    std::fs::create_dir_all(&markers).unwrap();
    let wrapper = format!(
        r#"#!/bin/sh
# Fails the first `map` and the first `reduce` invocation after running it for real.
mode="$2"
case "$mode" in
    map|reduce)
        if mkdir "{markers}/$mode-failed" 2>/dev/null; then
            "{real}" "$@" >/dev/null
            echo "injected failure of this $mode attempt (after it ran: status $?)" >&2
            exit 17
        fi ;;
esac
exec "{real}" "$@"
"#,
        markers = markers.display(),
        real = job_bin().display()
    );
    let faulty_bundle = work.join("faulty-bundle.zip");
    write_bundle(&faulty_bundle, wrapper.as_bytes());
    let faulty = spark_submit(work, "faulty", "local[2,4]", &faulty_bundle, &data);
    for mode in ["map", "reduce"] {
        assert!(
            markers.join(format!("{mode}-failed")).is_dir(),
            "no {mode} attempt was made to fail: the fault injection did not run"
        );
    }
    assert_same_tables(&local_sink, &faulty.sink, "spark run with failed attempts");
    assert_eq!(
        files_under(&faulty.staging),
        Vec::<PathBuf>::new(),
        "staged files left behind"
    );
}
