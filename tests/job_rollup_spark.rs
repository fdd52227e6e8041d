//! The rollup's spark engine under real pyspark (Spark 3.5 local mode): the step `emrship plan`
//! renders for `job-specs/pageview-rollup.yaml`, run by `spark-submit` with only the master,
//! bundle, driver and the job's input and output made local, writes exactly the local engine's
//! documents — also when a map and a reduce attempt fail once after doing their work — leaves
//! no staged file behind, and on a corrupt input fails with one clear error and no output.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::spark::{
    assert_same_as_local, assert_threads_agree_with_the_plan, files_under, job_bin, localize_step,
    planned_step_args, rendered_driver, replace_flag, run_ok, spark_submit_command, tail, timed,
    write_bundle, write_faulty_bundle,
};

const SPEC: &str = "job-specs/pageview-rollup.yaml";

struct SparkRun {
    output: PathBuf,
    staging: PathBuf,
    result: Output,
}

/// The planned step in local mode over `input`, writing to `output`, staging under `staging`.
fn spark_submit_step(
    work: &Path,
    name: &str,
    master: &str,
    bundle: &Path,
    input: &str,
    output: &str,
    staging: &str,
) -> Command {
    let mut args = planned_step_args(SPEC, &[]);
    assert!(
        args.iter().any(|a| a == "spark.speculation=true"),
        "the rollup spec turns speculation on: {args:?}"
    );
    let driver = work.join(format!("{name}-driver.py"));
    let driver_at = localize_step(&mut args, master, bundle, &driver, &rendered_driver(SPEC));
    assert_eq!(
        args.get(driver_at + 1).map(String::as_str),
        Some("rollup"),
        "{args:?}"
    );
    replace_flag(&mut args, driver_at, "--input", input);
    replace_flag(&mut args, driver_at, "--output", output);
    spark_submit_command(work, &args, staging)
}

/// Runs the planned step in local mode over `input`, writing to `output`.
fn spark_submit(
    work: &Path,
    name: &str,
    master: &str,
    bundle: &Path,
    input: &Path,
    output: &Path,
    must_succeed: bool,
) -> SparkRun {
    let staging = work.join(format!("{name}-staging"));
    let result = timed(
        &mut spark_submit_step(
            work,
            name,
            master,
            bundle,
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            staging.to_str().unwrap(),
        ),
        &format!("spark-submit ({name})"),
        must_succeed,
    );
    SparkRun {
        output: output.to_path_buf(),
        staging,
        result,
    }
}

/// Documents of JSON Lines texts, parsed and re-serialized, sorted; each text sorted by `_id`.
fn parse_documents<'a>(texts: impl IntoIterator<Item = (String, &'a str)>) -> Vec<String> {
    let mut docs = Vec::new();
    for (name, text) in texts {
        let mut previous: Option<String> = None;
        for line in text.lines() {
            let doc: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            let id = doc["_id"].as_str().expect("_id").to_string();
            if let Some(p) = &previous {
                assert!(p < &id, "{name}: not sorted by _id at {id}");
            }
            previous = Some(id);
            docs.push(doc.to_string());
        }
    }
    docs.sort();
    docs
}

/// The output's documents, parsed and re-serialized (so key order inside objects does not
/// matter), sorted: the multiset the contract compares. Also checks the output's shape:
/// `_SUCCESS`, part files named in sequence, each sorted by `_id`.
fn documents(output: &Path) -> Vec<String> {
    let files = files_under(output);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n == "_SUCCESS"),
        "{}: no _SUCCESS in {names:?}",
        output.display()
    );
    let parts: Vec<&String> = names.iter().filter(|n| n.as_str() != "_SUCCESS").collect();
    for (i, name) in parts.iter().enumerate() {
        assert_eq!(**name, format!("part-{i:05}.jsonl"), "{names:?}");
    }
    let texts: Vec<(String, String)> = files
        .iter()
        .filter(|f| !f.ends_with("_SUCCESS"))
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
        .collect();
    parse_documents(texts.iter().map(|(n, t)| (n.clone(), t.as_str())))
}

/// Nothing but the output directory itself next to it (no `_tmp-…`/`_old-…` leftovers).
fn siblings(output: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn spark_engine_matches_local_engine_survives_failed_attempts_and_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let input = work.join("events");
    // 4 files per hour for 2 customers: every (customer, url, hour) group spans two files
    // (two map tasks), and late events put groups of an hour into the next hour's files.
    run_ok(
        Command::new(job_bin())
            .args([
                "gen",
                "rollup",
                "--records",
                "240000",
                "--records-per-file",
                "20000",
                "--files-per-hour",
                "4",
                "--customers",
                "2",
                "--urls",
                "1500",
                "--out",
            ])
            .arg(&input),
        "emrship-job gen rollup",
    );
    let hive_files: Vec<PathBuf> = files_under(&input)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert_eq!(hive_files.len(), 12, "{hive_files:?}");
    assert!(
        hive_files[0]
            .to_str()
            .unwrap()
            .contains("/customer=site-0.example/"),
        "{hive_files:?}"
    );
    let local_output = work.join("local").join("rollup");
    let local = run_ok(
        Command::new(job_bin())
            .args(["rollup", "--engine", "local", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&local_output),
        "the local engine",
    );
    let want = documents(&local_output);
    // "rollup: R records from F files (T map tasks) -> D documents (V visitors)" — the part
    // count and the path after it differ between the engines.
    let local_summary = String::from_utf8_lossy(&local.stdout);
    let totals = local_summary
        .split(" in ")
        .next()
        .expect("the local engine's summary")
        .to_string();
    assert!(
        totals.starts_with("rollup: 240,000 records from 12 files"),
        "{local_summary}"
    );

    // 1. The planned step as is, in local mode.
    let bundle = work.join("bundle.zip");
    write_bundle(&bundle, &std::fs::read(job_bin()).unwrap());
    let out_dir = work.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let clean = spark_submit(
        work,
        "clean",
        "local[2]",
        &bundle,
        &input,
        &out_dir.join("clean"),
        true,
    );
    assert_same_as_local(&want, &documents(&clean.output), "spark run");
    let stdout = String::from_utf8_lossy(&clean.result.stdout);
    assert!(
        stdout.contains(&totals),
        "the driver prints finalize's summary with the local engine's totals ({totals}); it printed:\n{stdout}"
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
    let faulty = spark_submit(
        work,
        "faulty",
        "local[2,4]",
        &faulty_bundle,
        &input,
        &out_dir.join("faulty"),
        true,
    );
    for mode in ["map", "reduce"] {
        assert!(
            markers.join(format!("{mode}-failed")).is_dir(),
            "no {mode} attempt was made to fail: the fault injection did not run"
        );
    }
    assert_threads_agree_with_the_plan(&markers, &planned_step_args(SPEC, &[]));
    assert_same_as_local(
        &want,
        &documents(&faulty.output),
        "spark run with failed attempts",
    );
    assert_eq!(
        files_under(&faulty.staging),
        Vec::<PathBuf>::new(),
        "staged files left behind"
    );

    // 3. A corrupt file among the events: one clear error naming it, no output, no staging.
    let bad = hive_files[5].clone();
    std::fs::write(&bad, b"PAR1 this is not a parquet file").unwrap();
    let failed = spark_submit(
        work,
        "bad",
        "local[2]",
        &bundle,
        &input,
        &out_dir.join("bad"),
        false,
    );
    // Where a task's stderr ends up differs (driver or executor side): read both streams.
    let stderr = format!(
        "{}\n{}",
        String::from_utf8_lossy(&failed.result.stdout),
        String::from_utf8_lossy(&failed.result.stderr)
    );
    assert!(
        !failed.result.status.success(),
        "a corrupt input must fail the run; stderr:\n{}",
        tail(&stderr, 40)
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("emrship-job: error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error from emrship-job; stderr:\n{}",
        tail(&stderr, 60)
    );
    assert!(
        errors[0].contains(bad.to_str().unwrap())
            && errors[0].contains("not a readable Parquet file"),
        "the error names the file and what is wrong with it: {}",
        errors[0]
    );
    assert!(
        !failed.output.exists(),
        "a failed run left output at {}",
        failed.output.display()
    );
    assert_eq!(
        siblings(&failed.output),
        ["clean", "faulty"],
        "leftovers beside the output"
    );
    assert_eq!(
        files_under(&failed.staging),
        Vec::<PathBuf>::new(),
        "staged files left behind"
    );
}

/// On S3 (moto): the map tasks read the events from S3, the reduce tasks stage under an S3
/// staging prefix, and finalize replaces the S3 output (a previous run's extra part goes,
/// `_SUCCESS` is there) and removes every staged object.
#[test]
fn spark_engine_reads_stages_and_writes_on_s3() {
    let moto = common::moto::Moto::start();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let input = work.join("events");
    run_ok(
        Command::new(job_bin())
            .args([
                "gen",
                "rollup",
                "--records",
                "60000",
                "--records-per-file",
                "10000",
                "--files-per-hour",
                "2",
                "--customers",
                "1",
                "--urls",
                "500",
                "--out",
            ])
            .arg(&input),
        "emrship-job gen rollup",
    );
    let local_output = work.join("local");
    run_ok(
        Command::new(job_bin())
            .args(["rollup", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&local_output),
        "the local engine",
    );
    let want = documents(&local_output);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = moto.s3().await;
        for bucket in ["events", "rollups", "artifacts"] {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
        }
        for file in files_under(&input) {
            let key = format!("ev/{}", file.strip_prefix(&input).unwrap().display());
            s3.put_object()
                .bucket("events")
                .key(key)
                .body(std::fs::read(&file).unwrap().into())
                .send()
                .await
                .unwrap();
        }
        s3.put_object()
            .bucket("rollups")
            .key("dt=2026-11-20/part-00099.jsonl")
            .body(Vec::from(&b"a previous run's part"[..]).into())
            .send()
            .await
            .unwrap();
    });
    let bundle = work.join("bundle.zip");
    write_bundle(&bundle, &std::fs::read(job_bin()).unwrap());
    let mut command = spark_submit_step(
        work,
        "s3",
        "local[2]",
        &bundle,
        "s3://events/ev/",
        "s3://rollups/dt=2026-11-20/",
        "s3://artifacts/emrship/pageview-rollup/staging/",
    );
    command.env_remove("AWS_PROFILE").envs(moto.env());
    timed(&mut command, "spark-submit (s3)", true);

    let (output, staged) = runtime.block_on(async {
        let s3 = moto.s3().await;
        (
            common::moto::s3_objects(&s3, "rollups", "").await,
            common::moto::s3_objects(&s3, "artifacts", "").await,
        )
    });
    let names: Vec<&str> = output.keys().map(String::as_str).collect();
    // `_SUCCESS`, then the parts numbered from 0 (the previous run's part-00099 is gone).
    assert_eq!(names.first(), Some(&"dt=2026-11-20/_SUCCESS"), "{names:?}");
    let parts = &names[1..];
    assert!(!parts.is_empty());
    for (i, name) in parts.iter().enumerate() {
        assert_eq!(
            *name,
            format!("dt=2026-11-20/part-{i:05}.jsonl"),
            "{names:?}"
        );
    }
    let got = parse_documents(
        output
            .iter()
            .filter(|(k, _)| k.ends_with(".jsonl"))
            .map(|(k, v)| (k.clone(), v.as_str())),
    );
    assert_same_as_local(&want, &got, "spark run on S3");
    assert_eq!(staged, BTreeMap::new(), "staged objects left behind");
}
