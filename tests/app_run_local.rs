//! `emrship run <spec> --local` for users' own applications, under real Spark (the test
//! environment's pyspark, `spark-submit --master local[2]`), with the step arguments the plan
//! renders: the example PySpark application (its modules zip, its `conf` folder, numpy and
//! pandas built for the local interpreter) and the example JVM application (compiled here with
//! the JDK against pyspark's Spark jars).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::moto::test_python;

const DATE: &str = "2026-11-20";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_local(spec: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emrship"))
        .args(["run"])
        .arg(spec)
        .args(["--local", "--date", DATE])
        .env("EMRSHIP_PYTHON", test_python())
        .current_dir(repo())
        .output()
        .expect("emrship runs")
}

/// Every JSON Lines record Spark wrote under `dir`.
fn json_records(dir: &Path) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("part-") && name.ends_with(".json") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                records.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    records
}

fn mirror(name: &str, s3_key: &str) -> PathBuf {
    repo()
        .join("target/emrship")
        .join(name)
        .join("local/s3")
        .join(s3_key)
}

#[test]
fn the_example_pyspark_application_runs_with_its_modules_config_and_dependencies() {
    let output_dir = mirror(
        "daily-sales-report",
        &format!("example-analytics/reports/daily-sales/dt={DATE}"),
    );
    let _ = std::fs::remove_dir_all(&output_dir);
    let out = run_local(&repo().join("job-specs/pyspark-app.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The report's rows: 3 regions × 2 bands, 20,000 orders per region (conf/app.ini).
    let records = json_records(&output_dir);
    assert_eq!(records.len(), 6, "{records:?}");
    let orders: i64 = records.iter().map(|r| r["orders"].as_i64().unwrap()).sum();
    assert_eq!(orders, 60_000);
    let mut regions: Vec<&str> = records
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    regions.sort_unstable();
    regions.dedup();
    assert_eq!(regions, ["americas", "apac", "emea"]);
    assert!(records.iter().all(|r| r["day"] == DATE));
    // The driver printed the pandas frame on stdout.
    assert!(stdout.contains("region"), "{stdout}");
    assert!(
        stdout.contains("large") && stdout.contains("small"),
        "{stdout}"
    );
    // It ran the plan's step from a container-shaped working directory.
    assert!(stderr.contains("--master 'local[2]'"), "{stderr}");
    assert!(stderr.contains("--py-files"), "{stderr}");
    assert!(stderr.contains("container/modules.zip"), "{stderr}");
    let container = repo().join("target/emrship/daily-sales-report/local/container");
    for shipped in [
        "main.py",
        "modules.zip",
        "conf/app.ini",
        "emrship_deps/numpy",
        "emrship_deps/pandas",
    ] {
        assert!(
            container.join(shipped).exists(),
            "{shipped} is not in the container"
        );
    }
}

#[test]
fn an_entry_script_importing_a_package_it_does_not_ship_is_refused_before_spark_starts() {
    // The same application with `modules` left out: main.py imports `sales`, which sits beside
    // it but would not reach the cluster (ModuleNotFoundError there).
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(repo().join("job-specs/pyspark-app.yaml"))
        .unwrap()
        .replace(
            "project: ../examples/pyspark-app",
            &format!(
                "project: {}",
                relative_to(dir.path(), &repo().join("examples/pyspark-app"))
            ),
        )
        .replace(
            "    modules: [sales]          # zipped for --py-files\n",
            "",
        )
        .replace(
            "name: daily-sales-report",
            "name: daily-sales-report-unshipped",
        );
    let spec_path = dir.path().join("unshipped.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let out = run_local(&spec_path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`main.py` imports `sales`, which is beside it but not shipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("add `sales` to `job.pyspark.modules`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("spark-submit"),
        "Spark must not start: {stderr}"
    );
}

/// `to` as a path relative to `from` (both absolute).
fn relative_to(from: &Path, to: &Path) -> String {
    let depth = from.components().count() - 1;
    format!(
        "{}{}",
        "../".repeat(depth),
        to.display().to_string().trim_start_matches('/')
    )
}

#[test]
fn the_example_jvm_application_is_compiled_here_and_runs() {
    let build = Command::new("bash")
        .arg(repo().join("examples/jvm-app/build.sh"))
        .arg(test_python())
        .output()
        .expect("build.sh runs");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    // Its plan is accepted by the EMR service model (botocore's validator and serializer).
    let plan = Command::new(env!("CARGO_BIN_EXE_emrship"))
        .args([
            "plan",
            "job-specs/jvm-app.yaml",
            "--date",
            DATE,
            "--format",
            "json",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let mut validate = Command::new(test_python())
        .arg(repo().join("tests/python/validate_emr.py"))
        .arg("--stdin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    validate
        .stdin
        .take()
        .unwrap()
        .write_all(&plan.stdout)
        .unwrap();
    let validated = validate.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&validated.stdout).trim(),
        "ok: RunJobFlow, AddJobFlowSteps",
        "{}",
        String::from_utf8_lossy(&validated.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    // Its rendered artifacts, with the digests (which follow the local JDK's jar bytes) masked.
    let digests = regex_lite::Regex::new("[0-9a-f]{64}").unwrap();
    for key in ["run_job_flow", "add_job_flow_steps", "iam", "uploads"] {
        let text = serde_json::to_string_pretty(&plan[key]).unwrap();
        let masked = digests.replace_all(&text, "<sha256>").into_owned();
        let masked = regex_lite::Regex::new(r#""Bytes": \d+|"bytes": \d+"#)
            .unwrap()
            .replace_all(&masked, "\"bytes\": <n>")
            .into_owned();
        insta::with_settings!({ snapshot_suffix => "jvm-app", omit_expression => true }, {
            insta::assert_snapshot!(key, masked);
        });
    }
    // The node check gets the Java the jar's classes need (javac --release 17).
    assert_eq!(
        plan["run_job_flow"]["BootstrapActions"][0]["ScriptBootstrapAction"]["Args"],
        serde_json::json!(["--arch", "x86_64", "--java", "17"])
    );

    let output_dir = mirror(
        "sales-totals",
        &format!("example-analytics/reports/sales-totals/dt={DATE}"),
    );
    let _ = std::fs::remove_dir_all(&output_dir);
    let out = run_local(&repo().join("job-specs/jvm-app.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--class com.example.sales.DailyTotals"),
        "{stderr}"
    );
    let records = json_records(&output_dir);
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records {
        assert_eq!(record["orders"], 30_000, "{record}");
        assert_eq!(record["day"], DATE);
    }
}

/// An executable application: a script with a config file, run on the primary node by the
/// step's launcher. Here `run --local` runs it in a container-shaped folder; the launcher itself
/// runs with an `aws` stand-in on PATH that serves `s3 cp` from a local folder (the AWS CLI is
/// not in the test environment), so the step's own bash program, argument positions and quoting
/// are what is tested.
#[test]
fn an_executable_runs_locally_and_through_the_steps_launcher() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::create_dir_all(project.join("tool/conf")).unwrap();
    std::fs::write(
        project.join("tool/report.sh"),
        "#!/bin/bash\nset -euo pipefail\n# writes its arguments and its config beside each other\nout=\"$2\"\nmkdir -p \"$out\"\nprintf '%s\\n' \"$@\" > \"$out/args.txt\"\ncp settings.toml \"$out/\"\necho \"REPORT_ENV=${REPORT_ENV:-unset}\" > \"$out/env.txt\"\n",
    )
    .unwrap();
    std::fs::write(project.join("tool/conf/settings.toml"), "threshold = 3\n").unwrap();
    std::fs::write(
        project.join("spec.yaml"),
        "name: shell-report\nregion: us-east-1\nrelease: emr-7.5.0\nlog_uri: s3://bkt/logs/\nartifacts: s3://bkt/emrship/\n\
         cluster:\n  master: { instance_type: m5.xlarge }\n\
         spark:\n  env: { REPORT_ENV: prod }\n\
         job:\n  executable:\n    project: tool\n    path: report.sh\n    files: [conf/settings.toml]\n\
         \x20 args: [--output, {output: \"s3://bkt/out/dt={{date}}/\"}, \"two words\"]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_emrship"))
            .args(args)
            .current_dir(project)
            .output()
            .unwrap()
    };
    let out = run(&["run", "spec.yaml", "--local", "--date", DATE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mirrored = project.join(format!(
        "target/emrship/shell-report/local/s3/bkt/out/dt={DATE}"
    ));
    assert_eq!(
        std::fs::read_to_string(mirrored.join("args.txt")).unwrap(),
        format!("--output\n{}/\ntwo words\n", mirrored.display())
    );
    assert_eq!(
        std::fs::read_to_string(mirrored.join("settings.toml")).unwrap(),
        "threshold = 3\n"
    );
    assert_eq!(
        std::fs::read_to_string(mirrored.join("env.txt")).unwrap(),
        "REPORT_ENV=prod\n"
    );

    // The cluster's step: env … bash -c LAUNCHER emrship-launch 1 <file> <program> <args…>.
    let plan = run(&["plan", "spec.yaml", "--date", DATE, "--format", "json"]);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let step: Vec<String> = plan["add_job_flow_steps"]["Steps"][0]["HadoopJarStep"]["Args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(step[..4], ["env", "REPORT_ENV=prod", "bash", "-c"]);
    // Stand in for S3: the uploads' bytes under a local folder, found by key.
    let bucket = project.join("bucket");
    for upload in plan["uploads"].as_array().unwrap() {
        let key = upload["s3_uri"]
            .as_str()
            .unwrap()
            .strip_prefix("s3://")
            .unwrap();
        let source = project.join("tool").join(
            upload["source"]
                .as_str()
                .unwrap()
                .trim_start_matches("tool/"),
        );
        if source.is_file() {
            std::fs::create_dir_all(bucket.join(key).parent().unwrap()).unwrap();
            std::fs::copy(&source, bucket.join(key)).unwrap();
        }
    }
    let shims = project.join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    std::fs::write(
        shims.join("aws"),
        format!("#!/bin/bash\n# aws s3 cp --only-show-errors s3://KEY DEST\n[ \"$1 $2\" = \"s3 cp\" ] || exit 9\ncp \"{}/${{4#s3://}}\" \"$5\"\n", bucket.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        shims.join("aws"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // The output argument points at a local folder for this run.
    let local_out = project.join("launched");
    let step: Vec<String> = step
        .into_iter()
        .map(|a| {
            if a.starts_with("s3://bkt/out/") {
                local_out.display().to_string()
            } else {
                a
            }
        })
        .collect();
    let launched = Command::new("env")
        .args(&step[1..])
        .env(
            "PATH",
            format!("{}:{}", shims.display(), std::env::var("PATH").unwrap()),
        )
        .env("TMPDIR", project)
        .output()
        .unwrap();
    assert!(
        launched.status.success(),
        "{}",
        String::from_utf8_lossy(&launched.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(local_out.join("args.txt")).unwrap(),
        format!("--output\n{}\ntwo words\n", local_out.display())
    );
    assert_eq!(
        std::fs::read_to_string(local_out.join("settings.toml")).unwrap(),
        "threshold = 3\n"
    );
    assert_eq!(
        std::fs::read_to_string(local_out.join("env.txt")).unwrap(),
        "REPORT_ENV=prod\n"
    );
}
