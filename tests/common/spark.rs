//! Running a planned Spark step under real pyspark (Spark 3.5 local mode, from `.venv-test`):
//! the step args `emrship plan` renders, with only what local mode needs substituted.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// The Spark engine's rows (`got`) are exactly the local engine's (`want`), in order; if not,
/// the panic names a few rows missing and a few extra. An empty `want` fails too: comparing
/// with nothing would prove nothing.
pub fn assert_same_as_local(want: &[String], got: &[String], what: &str) {
    assert!(!want.is_empty(), "{what}: the local engine wrote nothing");
    if want != got {
        let want_set: BTreeSet<&String> = want.iter().collect();
        let got_set: BTreeSet<&String> = got.iter().collect();
        let missing: Vec<_> = want_set.difference(&got_set).take(5).collect();
        let extra: Vec<_> = got_set.difference(&want_set).take(5).collect();
        panic!(
            "{what}: {} rows vs the local engine's {}; missing e.g. {missing:?}, extra e.g. {extra:?}",
            got.len(),
            want.len()
        );
    }
}

pub fn job_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emrship-job"))
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn run(command: &mut Command, what: &str) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"))
}

pub fn run_ok(command: &mut Command, what: &str) -> Output {
    let output = run(command, what);
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr (tail):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        tail(&String::from_utf8_lossy(&output.stderr), 80)
    );
    output
}

/// The first step's args exactly as `emrship plan --format json` renders them for `spec`.
pub fn planned_step_args(spec: &str, extra: &[&str]) -> Vec<String> {
    let output = run_ok(
        Command::new(env!("CARGO_BIN_EXE_emrship"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["plan", spec, "--date", "2026-11-20", "--format", "json"])
            .args(extra),
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

/// The driver text the plan of `spec` uploads (the same render `emrship deploy` uploads).
pub fn rendered_driver(spec: &str) -> String {
    let plan = super::plan_example(spec, &[]);
    plan.rendered_files
        .iter()
        .find(|f| f.name.starts_with("driver.py"))
        .map(|f| f.text.clone())
        .expect("the plan renders driver.py")
}

/// Replaces the value after `flag` (the first occurrence at or after `from`).
pub fn replace_flag(args: &mut [String], from: usize, flag: &str, value: &str) {
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
pub fn write_bundle(zip_path: &Path, binary: &[u8]) {
    let mut zip = zip::ZipWriter::new(File::create(zip_path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755)
        .large_file(binary.len() > u32::MAX as usize);
    zip.start_file("emrship-job", options).unwrap();
    zip.write_all(binary).unwrap();
    zip.finish().unwrap();
}

/// A bundle whose `emrship-job` fails the first `map` and the first `reduce` invocation after
/// running it for real (the reduce has staged its file), then behaves normally. `markers`
/// records which modes were failed, and `markers/invocations` the arguments of every call.
pub fn write_faulty_bundle(zip_path: &Path, markers: &Path) {
    std::fs::create_dir_all(markers).unwrap();
    let wrapper = format!(
        r#"#!/bin/sh
# Fails the first `map` and the first `reduce` invocation after running it for real.
mode="$2"
printf '%s\n' "$*" >> "{markers}/invocations"
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
    write_bundle(zip_path, wrapper.as_bytes());
}

/// The value after `flag` in `args`.
fn value_after<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} not in the step args {args:?}"));
    &args[i + 1]
}

/// The threads every `emrship-job` process used (recorded by the faulty bundle in `markers`)
/// agree with the cores the planned step asks YARN for: each map/reduce task process runs
/// `--threads <spark.task.cpus>`, and the executor cores are a whole number of tasks, so an
/// executor's processes use exactly its cores; the driver's steps use the driver's cores.
pub fn assert_threads_agree_with_the_plan(markers: &Path, planned: &[String]) {
    let task_cpus: usize = planned
        .iter()
        .find_map(|a| a.strip_prefix("spark.task.cpus="))
        .expect("the step sets spark.task.cpus")
        .parse()
        .unwrap();
    let executor_cores: usize = value_after(planned, "--executor-cores").parse().unwrap();
    let driver_cores: usize = value_after(planned, "--driver-cores").parse().unwrap();
    assert!(
        task_cpus >= 1 && executor_cores.is_multiple_of(task_cpus),
        "{planned:?}"
    );
    let invocations = std::fs::read_to_string(markers.join("invocations")).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for line in invocations.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let mode = words[1];
        let threads: Vec<usize> = words
            .windows(2)
            .filter(|pair| pair[0] == "--threads")
            .map(|pair| pair[1].parse().unwrap())
            .collect();
        let want = match mode {
            "map" | "reduce" => vec![task_cpus],
            "list-inputs" | "finalize" => vec![driver_cores],
            // `clean` only deletes staged files.
            _ => continue,
        };
        assert_eq!(threads, want, "emrship-job {line}");
        *seen.entry(mode).or_insert(0) += 1;
    }
    for mode in ["list-inputs", "map", "reduce", "finalize"] {
        assert!(
            seen.contains_key(mode),
            "no {mode} call recorded: {invocations}"
        );
    }
}

/// The planned step, ready for `spark-submit` in local mode: `args` without the leading
/// `spark-submit`, master and deploy mode (local, client), the bundle (a local zip) and the
/// driver (the rendered text written to `driver`) substituted. Returns the index of the
/// driver in `args` (the job's flags follow it).
pub fn localize_step(
    args: &mut Vec<String>,
    master: &str,
    bundle: &Path,
    driver: &Path,
    driver_text: &str,
) -> usize {
    assert_eq!(
        args[0], "spark-submit",
        "a cluster-mode step starts with spark-submit"
    );
    args.remove(0);
    replace_flag(args, 0, "--master", master);
    replace_flag(args, 0, "--deploy-mode", "client");
    replace_flag(
        args,
        0,
        "--archives",
        &format!("{}#bundle", bundle.display()),
    );
    let driver_at = args
        .iter()
        .position(|a| a.starts_with("s3://") && a.ends_with("/driver.py"))
        .expect("the driver script URI");
    std::fs::write(driver, driver_text).unwrap();
    args[driver_at] = driver.display().to_string();
    driver_at
}

/// `spark-submit ARGS` from the test venv, run in `work` with staging under `staging` (a
/// directory or an `s3://` prefix).
pub fn spark_submit_command(
    work: &Path,
    args: &[String],
    staging: impl AsRef<std::ffi::OsStr>,
) -> Command {
    let python = super::moto::test_python();
    let spark_submit = python.parent().unwrap().join("spark-submit");
    let mut command = Command::new(&spark_submit);
    command
        .args(args)
        .current_dir(work)
        .env("PYSPARK_PYTHON", &python)
        .env("PYSPARK_DRIVER_PYTHON", &python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("SPARK_LOCAL_HOSTNAME", "localhost")
        .env("EMRSHIP_STAGING", staging)
        .env_remove("SPARK_HOME")
        .stdin(Stdio::null());
    if let Some(home) = java_home() {
        command.env("JAVA_HOME", home);
    }
    command
}

/// Runs `command`, printing how long it took.
pub fn timed(command: &mut Command, what: &str, must_succeed: bool) -> Output {
    let started = Instant::now();
    let output = if must_succeed {
        run_ok(command, what)
    } else {
        run(command, what)
    };
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
    output
}

/// Every file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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
    out.sort();
    out
}
