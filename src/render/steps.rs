//! The job's step: spark-submit (or the binary itself) as a discrete argument list for
//! command-runner.jar, which passes each element as one argument with no shell in between.

use indexmap::IndexMap;
use serde::Serialize;

use super::artifacts::install_dir;
use super::configurations::{derived_spark_properties, job_environment};
use crate::sizing::memory::format_spark_mib;
use crate::sizing::DeployMode;
use crate::spec::raw::{ActionOnFailure, Engine};
use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

/// EMR's limit on the characters of one step's arguments.
pub const MAX_STEP_CHARACTERS: usize = 10_240;

/// Where the step's inputs live in S3.
#[derive(Debug, Clone)]
pub struct StepLocations {
    pub bundle: S3Uri,
    pub driver: S3Uri,
    pub job_files: Vec<S3Uri>,
    /// A user's application's shipped pieces.
    pub app: Option<AppLocations>,
}

/// Where a user's application's pieces live in S3, by the spark-submit option that ships them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLocations {
    /// The entry script, application jar or program.
    pub entry: S3Uri,
    /// `--py-files`.
    pub py_files: Vec<S3Uri>,
    /// `--files`: each lands in the working directory by its file name.
    pub files: Vec<S3Uri>,
    /// `--archives uri#alias`: each is extracted under its alias.
    pub archives: Vec<(S3Uri, String)>,
    /// `--jars`.
    pub jars: Vec<S3Uri>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepConfig {
    pub name: String,
    pub action_on_failure: &'static str,
    pub hadoop_jar_step: HadoopJarStep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HadoopJarStep {
    pub jar: String,
    pub args: Vec<String>,
}

impl StepConfig {
    /// Characters EMR counts against [`MAX_STEP_CHARACTERS`].
    pub fn characters(&self) -> usize {
        self.hadoop_jar_step.args.iter().map(String::len).sum()
    }

    /// The arguments as one shell-quoted line, for humans to read or paste.
    pub fn shell_line(&self) -> String {
        shell_words::join(&self.hadoop_jar_step.args)
    }
}

fn action_name(action: ActionOnFailure) -> &'static str {
    match action {
        ActionOnFailure::TerminateCluster => "TERMINATE_CLUSTER",
        ActionOnFailure::CancelAndWait => "CANCEL_AND_WAIT",
        ActionOnFailure::Continue => "CONTINUE",
    }
}

pub fn job_step(plan: &JobPlan, locations: &StepLocations) -> StepConfig {
    let args = match (&plan.job.app, &locations.app) {
        (Some(app), Some(app_locations)) => super::app_steps::app_args(plan, app, app_locations),
        _ => match plan.job.engine {
            Engine::Spark => spark_submit_args(plan, locations),
            Engine::Local => local_args(plan),
        },
    };
    StepConfig {
        name: format!(
            "{} {} {}",
            plan.name,
            plan.job.command,
            plan.date.format("%Y-%m-%d")
        ),
        action_on_failure: action_name(plan.job.action_on_failure),
        hadoop_jar_step: HadoopJarStep {
            jar: "command-runner.jar".to_string(),
            args,
        },
    }
}

pub(super) fn flag(args: &mut Vec<String>, name: &str, value: impl Into<String>) {
    args.push(name.to_string());
    args.push(value.into());
}

fn spark_submit_args(plan: &JobPlan, locations: &StepLocations) -> Vec<String> {
    let mut args = Vec::new();
    spark_submit_head(plan, &mut args);
    flag(
        &mut args,
        "--archives",
        format!("{}#bundle", locations.bundle),
    );
    if !locations.job_files.is_empty() {
        let files: Vec<String> = locations.job_files.iter().map(S3Uri::to_string).collect();
        flag(&mut args, "--files", files.join(","));
    }
    sizing_flags(plan, &mut args);
    let mut conf = submit_conf(plan);
    conf.insert(
        "spark.executorEnv.EMRSHIP_JOB_BIN".into(),
        "./bundle/emrship-job".into(),
    );
    conf.insert(
        "spark.yarn.appMasterEnv.EMRSHIP_JOB_BIN".into(),
        "./bundle/emrship-job".into(),
    );
    conf_flags(plan, conf, &mut args);
    args.push(locations.driver.to_string());
    args.push(plan.job.command.clone());
    args.extend(plan.job.args.iter().cloned());
    args
}

/// `spark-submit --deploy-mode … --master yarn --name …`, after the client-mode environment.
pub(super) fn spark_submit_head(plan: &JobPlan, args: &mut Vec<String>) {
    let env = job_environment(plan);
    if plan.spark.deploy_mode == DeployMode::Client && !env.is_empty() {
        // A client-mode driver is spark-submit's own process on the primary node: give it the
        // environment directly (command-runner.jar has no way to set one).
        args.push("env".to_string());
        args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    args.push("spark-submit".to_string());
    let deploy_mode = match plan.spark.deploy_mode {
        DeployMode::Cluster => "cluster",
        DeployMode::Client => "client",
    };
    flag(args, "--deploy-mode", deploy_mode);
    flag(args, "--master", "yarn");
    flag(
        args,
        "--name",
        format!("{} {}", plan.name, plan.date.format("%Y-%m-%d")),
    );
}

/// The executor and driver sizing as spark-submit's own flags.
pub(super) fn sizing_flags(plan: &JobPlan, args: &mut Vec<String>) {
    if let Some(sizing) = &plan.spark.sizing {
        if !plan.spark.dynamic_allocation {
            flag(
                args,
                "--num-executors",
                sizing.executor_instances.to_string(),
            );
        }
        flag(args, "--executor-cores", sizing.executor_cores.to_string());
        flag(
            args,
            "--executor-memory",
            format_spark_mib(sizing.executor_memory_mib),
        );
        flag(args, "--driver-cores", sizing.driver_cores.to_string());
        flag(
            args,
            "--driver-memory",
            format_spark_mib(sizing.driver_memory_mib),
        );
    }
}

/// The derived Spark properties the sizing flags do not already carry.
pub(super) fn submit_conf(plan: &JobPlan) -> IndexMap<String, String> {
    // Flags above already carry these.
    let carried_by_flags = [
        "spark.executor.instances",
        "spark.executor.cores",
        "spark.executor.memory",
        "spark.driver.cores",
        "spark.driver.memory",
    ];
    let mut conf = derived_spark_properties(plan);
    conf.retain(|key, _| !carried_by_flags.contains(&key.as_str()));
    conf
}

/// `--conf` pairs: `conf`, then the spec's `spark.conf` (which wins), then `spark.submit_args`.
pub(super) fn conf_flags(
    plan: &JobPlan,
    mut conf: IndexMap<String, String>,
    args: &mut Vec<String>,
) {
    for (key, value) in &plan.spark.conf {
        conf.insert(key.clone(), value.clone());
    }
    for (key, value) in conf {
        flag(args, "--conf", format!("{key}={value}"));
    }
    args.extend(plan.spark.submit_args.iter().cloned());
}

/// `engine: local`: the binary the bootstrap action installed, run on the primary node.
fn local_args(plan: &JobPlan) -> Vec<String> {
    let mut args = Vec::new();
    let env = job_environment(plan);
    if !env.is_empty() {
        args.push("env".to_string());
        args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    args.push(format!("{}/emrship-job", install_dir(plan)));
    args.push(plan.job.command.clone());
    args.extend(plan.job.args.iter().cloned());
    args
}
