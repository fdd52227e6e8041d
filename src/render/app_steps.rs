//! The step of a user's own application: spark-submit for a PySpark application or a jar, a
//! small fixed launcher for an executable. Every flag and value is its own element.

use super::configurations::job_environment;
use super::steps::{conf_flags, flag, sizing_flags, spark_submit_head, submit_conf, AppLocations};
use crate::spec::job_plan::{AppKind, UserApp};
use crate::spec::resolve::DEPS_ALIAS;
use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

/// Runs a program from S3 on the primary node, where command-runner.jar runs steps: download
/// the listed files and the program into a fresh working directory, make the program
/// executable, run it there with the step's remaining arguments. The arguments reach bash as
/// positional parameters, never as code, so no value is ever re-split or expanded.
pub const EXECUTABLE_LAUNCHER: &str = r#"set -euo pipefail
work="$(mktemp -d "${TMPDIR:-/tmp}/emrship-XXXXXX")"
cd "$work"
count="$1"; shift
while [ "$count" -gt 0 ]; do
  aws s3 cp --only-show-errors "$1" "./${1##*/}"; shift; count=$((count - 1))
done
program="./${1##*/}"
aws s3 cp --only-show-errors "$1" "$program"; shift
chmod +x "$program"
exec "$program" "$@""#;

pub fn app_args(plan: &JobPlan, app: &UserApp, locations: &AppLocations) -> Vec<String> {
    match &app.kind {
        AppKind::PySpark { python, .. } => {
            let mut args = Vec::new();
            spark_submit_head(plan, &mut args);
            shipping_flags(locations, &mut args);
            sizing_flags(plan, &mut args);
            let mut conf = submit_conf(plan);
            let interpreter = format!("/usr/bin/python{}.{}", python.0, python.1);
            let ships_dependencies = locations
                .archives
                .iter()
                .any(|(_, alias)| alias == DEPS_ALIAS);
            for side in ["spark.yarn.appMasterEnv", "spark.executorEnv"] {
                conf.insert(format!("{side}.PYSPARK_PYTHON"), interpreter.clone());
                if ships_dependencies {
                    // YARN extracts the archive in each container's working directory; Spark
                    // puts the --py-files after a PYTHONPATH set here, so the dependencies and
                    // the user's own PYTHONPATH entries both stay importable.
                    let key = format!("{side}.PYTHONPATH");
                    let value = match conf.get(&key) {
                        Some(own) => format!("./{DEPS_ALIAS}:{own}"),
                        None => format!("./{DEPS_ALIAS}"),
                    };
                    conf.insert(key, value);
                }
            }
            conf_flags(plan, conf, &mut args);
            args.push(locations.entry.to_string());
            args.extend(plan.job.args.iter().cloned());
            args
        }
        AppKind::Jar {
            main_class,
            packages,
            ..
        } => {
            let mut args = Vec::new();
            spark_submit_head(plan, &mut args);
            shipping_flags(locations, &mut args);
            if !locations.jars.is_empty() {
                flag(&mut args, "--jars", join(&locations.jars));
            }
            if !packages.is_empty() {
                flag(&mut args, "--packages", packages.join(","));
            }
            sizing_flags(plan, &mut args);
            conf_flags(plan, submit_conf(plan), &mut args);
            if let Some(class) = main_class {
                flag(&mut args, "--class", class.clone());
            }
            args.push(locations.entry.to_string());
            args.extend(plan.job.args.iter().cloned());
            args
        }
        AppKind::Executable { .. } => {
            let mut args = Vec::new();
            let env = job_environment(plan);
            if !env.is_empty() {
                args.push("env".to_string());
                args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
            }
            args.extend([
                "bash".to_string(),
                "-c".to_string(),
                EXECUTABLE_LAUNCHER.to_string(),
                "emrship-launch".to_string(),
                locations.files.len().to_string(),
            ]);
            args.extend(locations.files.iter().map(S3Uri::to_string));
            args.push(locations.entry.to_string());
            args.extend(plan.job.args.iter().cloned());
            args
        }
    }
}

/// `--py-files`, `--files` and `--archives`, each one comma-separated list.
fn shipping_flags(locations: &AppLocations, args: &mut Vec<String>) {
    if !locations.py_files.is_empty() {
        flag(args, "--py-files", join(&locations.py_files));
    }
    if !locations.files.is_empty() {
        flag(args, "--files", join(&locations.files));
    }
    if !locations.archives.is_empty() {
        let archives: Vec<String> = locations
            .archives
            .iter()
            .map(|(uri, alias)| format!("{uri}#{alias}"))
            .collect();
        flag(args, "--archives", archives.join(","));
    }
}

fn join(uris: &[S3Uri]) -> String {
    uris.iter()
        .map(S3Uri::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
