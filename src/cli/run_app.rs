//! `emrship run <spec> --local` for a user's own application: the plan's step, run here under
//! real Spark (`spark-submit --master local[2]` from the pyspark of `EMRSHIP_PYTHON`, else
//! `python3`), from a working directory laid out as a YARN container's would be: the entry, the
//! modules zip, each file by its name, each folder and the dependencies extracted under their
//! aliases. The dependencies are built from the same requirements for the local interpreter.
//!
//! What changes from the cluster's step, and why (each said on stderr):
//! - `--master local[2]` and `--deploy-mode client`: Spark's local mode has no YARN;
//! - the executor and driver sizing flags are dropped: they size cluster nodes, not this machine;
//! - `--files` and `--archives` are dropped: they are already in the working directory, which
//!   local mode would not fill (it puts them under a temporary SparkFiles folder instead);
//! - S3 URIs of the application's pieces become their local copies; `s3://bucket/key` arguments
//!   become `target/emrship/<name>/local/s3/bucket/key`, a local mirror, so an application that
//!   reads what another wrote finds it.
//! - `PYSPARK_PYTHON` is the local interpreter (the nodes' `/usr/bin/python3.X` need not exist
//!   here).
//!
//! What a local run cannot prove: that the dependency archive built for the nodes (another
//! Python, glibc and maybe CPU) loads there — `emrship deploy` checks every compiled module of
//! it statically — nor S3 permissions, data volume or cluster capacity.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::plan::LoadedPlan;
use super::{CliError, CommandResult, ExitStatus, Printer};
use crate::bundle::app_problem::AppProblem;
use crate::bundle::python_deps::{self, DepsTarget};
use crate::bundle::requirements::read_requirements;
use crate::render::artifacts::{self, AppPieceRole};
use crate::spec::job_plan::{AppKind, UserApp};
use crate::spec::resolve::DEPS_ALIAS;
use crate::spec::JobPlan;

/// Where local runs keep what they lay out and write: absolute, since the application runs in
/// the container folder below it.
pub fn local_root(plan: &JobPlan) -> PathBuf {
    let relative = PathBuf::from(format!("target/emrship/{}/local", plan.name));
    std::env::current_dir()
        .map(|dir| dir.join(&relative))
        .unwrap_or(relative)
}

/// Where `s3://bucket/key` lives in a local run.
pub fn local_mirror(plan: &JobPlan, uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("s3://")?;
    Some(local_root(plan).join("s3").join(rest))
}

/// The Python and Spark that run the application locally.
#[derive(Debug, Clone)]
pub struct LocalSpark {
    pub python: PathBuf,
    pub spark_submit: PathBuf,
    pub version: String,
}

/// Finds pyspark through `EMRSHIP_PYTHON` (else `python3`): its `spark-submit` and version.
pub fn find_local_spark() -> Result<LocalSpark, String> {
    let python = std::env::var_os("EMRSHIP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let probe = "import os, sys, pyspark\nprint(sys.executable)\nprint(pyspark.__version__)\nprint(os.path.dirname(pyspark.__file__))\n";
    let output = Command::new(&python)
        .args(["-c", probe])
        .output()
        .map_err(|e| {
            format!(
                "cannot run {}: {e}; set EMRSHIP_PYTHON to a Python that has pyspark",
                python.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "{} has no pyspark ({}); install it with `{} -m pip install pyspark==<the Spark of your release>`, or set EMRSHIP_PYTHON to a Python that has it",
            python.display(),
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("import failed"),
            python.display()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let executable = PathBuf::from(lines.next().unwrap_or_default());
    let version = lines.next().unwrap_or_default().to_string();
    let home = PathBuf::from(lines.next().unwrap_or_default());
    Ok(LocalSpark {
        python: executable,
        spark_submit: home.join("bin").join("spark-submit"),
        version,
    })
}

/// The command a local run executes: program, arguments, environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCommand {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// What differs from the cluster's step, for stderr.
    pub notes: Vec<String>,
}

/// Rewrites the cluster step's arguments for this machine (pure): `container` is the working
/// directory the run uses, `spark` the local pyspark (not needed for an executable).
pub fn local_command(
    plan: &JobPlan,
    step_args: &[String],
    container: &Path,
    spark: Option<&LocalSpark>,
) -> Result<LocalCommand, String> {
    let mut args = step_args.iter().cloned().peekable();
    let mut env = Vec::new();
    let mut notes = Vec::new();
    if args.peek().map(String::as_str) == Some("env") {
        args.next();
        while let Some((key, value)) = args.peek().and_then(|a| a.split_once('=')) {
            if key.contains('/') || key.starts_with('-') {
                break;
            }
            env.push((key.to_string(), value.to_string()));
            args.next();
        }
    }
    let local_piece = |uri: &str| -> String {
        let name = uri.rsplit('/').next().unwrap_or(uri);
        container.join(name).display().to_string()
    };
    let mirror = |value: &str| -> String {
        local_mirror(plan, value).map_or_else(|| value.to_string(), |p| p.display().to_string())
    };
    let first = args.next().unwrap_or_default();
    if first == "bash" {
        // An executable: the launcher downloads and runs it; here it is in the container.
        let rest: Vec<String> = args.collect();
        // bash -c LAUNCHER emrship-launch <count> <files…> <program> <args…>
        let count: usize = rest.get(3).and_then(|c| c.parse().ok()).unwrap_or(0);
        let program = rest
            .get(4 + count)
            .ok_or("the step names no program (an emrship bug)")?;
        let program_args = rest[5 + count..].iter().map(|a| mirror(a)).collect();
        return Ok(LocalCommand {
            program: local_piece(program),
            args: program_args,
            env,
            notes,
        });
    }
    if first != "spark-submit" {
        return Err(format!(
            "the step runs `{first}`, which a local run does not know"
        ));
    }
    let spark = spark.ok_or("a Spark application needs a local pyspark")?;
    let entry = plan_entry_uri(step_args);
    let mut out = Vec::new();
    let mut reached_entry = false;
    while let Some(arg) = args.next() {
        if reached_entry {
            out.push(mirror(&arg));
            continue;
        }
        if Some(&arg) == entry.as_ref() {
            out.push(local_piece(&arg));
            reached_entry = true;
            continue;
        }
        match arg.as_str() {
            "--master" => {
                args.next();
                out.extend(["--master".to_string(), "local[2]".to_string()]);
            }
            "--deploy-mode" => {
                args.next();
                out.extend(["--deploy-mode".to_string(), "client".to_string()]);
            }
            "--num-executors" | "--executor-cores" | "--executor-memory" | "--driver-cores"
            | "--driver-memory" => {
                let value = args.next().unwrap_or_default();
                notes.push(format!("left out `{arg} {value}` (it sizes cluster nodes)"));
            }
            "--files" | "--archives" => {
                args.next();
            }
            "--py-files" | "--jars" => {
                let list = args.next().unwrap_or_default();
                let mut local = Vec::new();
                for uri in list.split(',') {
                    if arg == "--jars"
                        && !uri.starts_with(plan.artifact_prefix().to_string().as_str())
                    {
                        return Err(format!("the dependency jar {uri} is not shipped by emrship; a local run cannot fetch it: list a local copy under `job.jar.jars`"));
                    }
                    local.push(local_piece(uri));
                }
                out.extend([arg.clone(), local.join(",")]);
            }
            "--conf" => {
                let pair = args.next().unwrap_or_default();
                let pair = match pair.split_once('=') {
                    Some((key, _)) if key.ends_with("Env.PYSPARK_PYTHON") => {
                        format!("{key}={}", spark.python.display())
                    }
                    _ => pair,
                };
                out.extend(["--conf".to_string(), pair]);
            }
            _ => out.push(arg),
        }
    }
    notes.push("--master local[2] --deploy-mode client: files and archives are laid out in the working directory as YARN would".into());
    env.push(("PYSPARK_PYTHON".into(), spark.python.display().to_string()));
    env.push((
        "PYSPARK_DRIVER_PYTHON".into(),
        spark.python.display().to_string(),
    ));
    if container.join(DEPS_ALIAS).exists() {
        // The client-mode driver does not get spark.yarn.appMasterEnv; give it the same path.
        env.push((
            "PYTHONPATH".into(),
            container.join(DEPS_ALIAS).display().to_string(),
        ));
    }
    Ok(LocalCommand {
        program: spark.spark_submit.display().to_string(),
        args: out,
        env,
        notes,
    })
}

/// The entry (script or application jar): the first S3 URI that is not an option's value.
fn plan_entry_uri(step_args: &[String]) -> Option<String> {
    let takes_value = |flag: &str| flag.starts_with("--") && !flag.contains('=');
    let mut i = step_args.iter().position(|a| a == "spark-submit")? + 1;
    while i < step_args.len() {
        let arg = &step_args[i];
        if takes_value(arg) {
            i += 2;
            continue;
        }
        if arg.starts_with("s3://") {
            return Some(arg.clone());
        }
        i += 1;
    }
    None
}

/// `run --local` of a user application. The built-in jobs' input and output overrides do not
/// apply: its `s3://` arguments are mirrored locally.
pub fn run(loaded: LoadedPlan, out: Printer) -> CommandResult {
    run_app(&loaded, out)
}

type Failure = CliError;

fn fail(message: impl Into<String>) -> Failure {
    CliError::failure(message)
}

/// Packaging problems: each with what, why and the fix; the input is wrong (exit 2).
pub fn problems_failure(problems: Vec<AppProblem>) -> Failure {
    let report: String = problems
        .iter()
        .map(|p| {
            // A message that names its subject already reads better without it in front.
            let what = if p.message.contains(&p.subject) {
                p.message.clone()
            } else {
                format!("{}: {}", p.subject, p.message)
            };
            format!("error: {what}\n  help: {}\n", p.fix)
        })
        .collect();
    CliError::invalid(format!(
        "{} problem{} with the application; nothing was run or uploaded",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    ))
    .with_report(report)
}

fn run_app(loaded: &LoadedPlan, out: Printer) -> CommandResult {
    let plan = &loaded.job;
    let app = plan
        .job
        .app
        .as_ref()
        .ok_or_else(|| fail("not a user application"))?;
    let packed = loaded
        .app
        .as_ref()
        .ok_or_else(|| fail("the application was not read (an emrship bug)"))?;
    let spark = match app.kind {
        AppKind::Executable { .. } => None,
        _ => Some(find_local_spark().map_err(fail)?),
    };
    if let Some(spark) = &spark {
        let wanted = plan.release.runtime.spark;
        if !spark
            .version
            .starts_with(&format!("{}.{}.", wanted.0, wanted.1))
        {
            out.warn(&format!(
                "local pyspark is {} but {} runs Spark {}.{}; install pyspark=={}.{}.* to run what the cluster runs",
                spark.version, plan.release.label, wanted.0, wanted.1, wanted.0, wanted.1
            ));
        }
    }
    let root = local_root(plan);
    let container = root.join("container");
    lay_out_container(loaded, app, packed, &container, spark.as_ref(), out)?;
    let step = &loaded.plan.add_job_flow_steps.steps[0].hadoop_jar_step.args;
    let container_abs = std::fs::canonicalize(&container)
        .map_err(|e| fail(format!("cannot resolve {}: {e}", container.display())))?;
    let command = local_command(plan, step, &container_abs, spark.as_ref()).map_err(fail)?;
    for arg in step.iter().filter(|a| a.starts_with("s3://")) {
        if let Some(local) = local_mirror(plan, arg) {
            if !arg.starts_with(&plan.artifact_prefix().to_string()) {
                out.info(&format!("emrship run: {arg} → {}", local.display()));
                if let Some(parent) = local.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
            }
        }
    }
    for note in &command.notes {
        out.info(&format!("emrship run: {note}"));
    }
    out.info(&format!(
        "emrship run: in {}: {} {}",
        container.display(),
        command.program,
        shell_words::join(&command.args)
    ));
    let status = Command::new(&command.program)
        .args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&container_abs)
        .status()
        .map_err(|e| fail(format!("cannot run {}: {e}", command.program)))?;
    if status.success() {
        Ok(ExitStatus::Success)
    } else {
        Err(fail(format!(
            "the application failed ({status}); its output is above"
        )))
    }
}

/// Puts every piece where YARN would: the working directory of a fresh container.
fn lay_out_container(
    loaded: &LoadedPlan,
    app: &UserApp,
    packed: &crate::bundle::user_app::PackedApp,
    container: &Path,
    spark: Option<&LocalSpark>,
    out: Printer,
) -> Result<(), Failure> {
    let plan = &loaded.job;
    if container.exists() {
        std::fs::remove_dir_all(container)
            .map_err(|e| fail(format!("cannot clear {}: {e}", container.display())))?;
    }
    std::fs::create_dir_all(container)
        .map_err(|e| fail(format!("cannot create {}: {e}", container.display())))?;
    let pieces = artifacts::app_pieces(plan, app, packed.inputs.as_ref());
    for piece in &pieces {
        let Some(digest) = &piece.digest else {
            continue;
        };
        let Some(bytes) = packed.bytes_by_sha256.get(&digest.sha256) else {
            continue; // the dependencies: built below for this machine
        };
        let name = piece.s3_uri.key.rsplit('/').next().unwrap_or_default();
        match &piece.role {
            AppPieceRole::Archive(alias) => unzip(bytes, &container.join(alias))?,
            _ => {
                let path = container.join(name);
                std::fs::write(&path, bytes)
                    .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
                if piece.role == AppPieceRole::Entry {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
                }
            }
        }
    }
    if let AppKind::PySpark {
        requirements: Some(requirements),
        ..
    } = &app.kind
    {
        let python = &spark.ok_or_else(|| fail("no local Python"))?.python;
        let file = packed.project_dir.join(&requirements.file.path);
        let pinned = read_requirements(&file).map_err(problems_failure)?;
        out.info(&format!(
            "emrship run: building the dependencies of {} for {} …",
            file.display(),
            python.display()
        ));
        let built =
            python_deps::build_deps(&pinned.text, DepsTarget::Local, &dependency_cache(), python)
                .map_err(problems_failure)?;
        out.info(&format!(
            "emrship run: dependencies {} ({} packages{})",
            built.zip.display(),
            built.packages.len(),
            if built.from_cache { ", cached" } else { "" }
        ));
        let bytes = std::fs::read(&built.zip)
            .map_err(|e| fail(format!("cannot read {}: {e}", built.zip.display())))?;
        unzip(&bytes, &container.join(DEPS_ALIAS))?;
    }
    Ok(())
}

/// Where built dependency archives are cached, keyed by their inputs.
pub fn dependency_cache() -> PathBuf {
    PathBuf::from("target/emrship/python-deps")
}

fn unzip(bytes: &[u8], into: &Path) -> Result<(), Failure> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| fail(format!("cannot open the zip for {}: {e}", into.display())))?;
    archive
        .extract(into)
        .map_err(|e| fail(format!("cannot extract into {}: {e}", into.display())))
}
