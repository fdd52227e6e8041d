//! `emrship init` as a newcomer runs it: the starter project it writes passes `emrship plan` and
//! `emrship run --local` (real Spark, its dependency built for this machine) as it is, and a
//! second `init` overwrites nothing.

mod common;

use std::process::{Command, Output};

use common::moto::test_python;

fn emrship(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emrship"))
        .args(args)
        .current_dir(dir)
        .env("EMRSHIP_PYTHON", test_python())
        .output()
        .unwrap()
}

#[test]
fn the_starter_project_plans_and_runs_locally_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = emrship(dir.path(), &["init", "daily-totals"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        written,
        [
            "daily-totals/daily-totals.yaml",
            "daily-totals/app/main.py",
            "daily-totals/app/daily_totals/__init__.py",
            "daily-totals/app/daily_totals/transform.py",
            "daily-totals/app/conf/app.ini",
            "daily-totals/app/requirements.txt",
        ]
    );
    let project = dir.path().join("daily-totals");

    let plan = emrship(
        &project,
        &[
            "plan",
            "daily-totals.yaml",
            "--date",
            "2026-11-20",
            "--format",
            "json",
        ],
    );
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let args = &plan["add_job_flow_steps"]["Steps"][0]["HadoopJarStep"]["Args"];
    assert_eq!(args[0], "spark-submit");
    assert!(args.as_array().unwrap().iter().any(|a| a == "--py-files"));

    let run = emrship(
        &project,
        &[
            "run",
            "daily-totals.yaml",
            "--local",
            "--date",
            "2026-11-20",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&run.stderr)
    );
    // Four buckets of 250 rows (conf/app.ini), the week from python-dateutil (shipped).
    assert_eq!(stdout.matches("'n': 250").count(), 4, "{stdout}");
    assert!(stdout.contains("'week': '2026-11-16'"), "{stdout}");
    let output = project.join(
        "target/emrship/daily-totals/local/s3/my-emr-bucket/daily-totals/dt=2026-11-20/_SUCCESS",
    );
    assert!(output.exists(), "{}", output.display());
}

#[test]
fn init_overwrites_nothing_without_force() {
    let dir = tempfile::tempdir().unwrap();
    assert!(emrship(dir.path(), &["init", "job"]).status.success());
    let main = dir.path().join("job/app/main.py");
    std::fs::write(&main, "# mine\n").unwrap();
    let again = emrship(dir.path(), &["init", "job"]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("error: files already exist: job/job.yaml, job/app/main.py"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(stderr.contains("help: choose an empty folder"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&main).unwrap(), "# mine\n");
    let forced = emrship(dir.path(), &["init", "job", "--force"]);
    assert!(forced.status.success());
    assert_ne!(std::fs::read_to_string(&main).unwrap(), "# mine\n");
}
