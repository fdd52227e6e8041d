//! The job's step: spark-submit (or the binary itself) as a discrete argument list for
//! command-runner.jar, which passes each element as one argument with no shell in between.

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
    let args = match plan.job.engine {
        Engine::Spark => spark_submit_args(plan, locations),
        Engine::Local => local_args(plan),
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

fn flag(args: &mut Vec<String>, name: &str, value: impl Into<String>) {
    args.push(name.to_string());
    args.push(value.into());
}

fn spark_submit_args(plan: &JobPlan, locations: &StepLocations) -> Vec<String> {
    let mut args = Vec::new();
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
    flag(&mut args, "--deploy-mode", deploy_mode);
    flag(&mut args, "--master", "yarn");
    flag(
        &mut args,
        "--name",
        format!("{} {}", plan.name, plan.date.format("%Y-%m-%d")),
    );
    flag(
        &mut args,
        "--archives",
        format!("{}#bundle", locations.bundle),
    );
    if !locations.job_files.is_empty() {
        let files: Vec<String> = locations.job_files.iter().map(S3Uri::to_string).collect();
        flag(&mut args, "--files", files.join(","));
    }
    if let Some(sizing) = &plan.spark.sizing {
        if !plan.spark.dynamic_allocation {
            flag(
                &mut args,
                "--num-executors",
                sizing.executor_instances.to_string(),
            );
        }
        flag(
            &mut args,
            "--executor-cores",
            sizing.executor_cores.to_string(),
        );
        flag(
            &mut args,
            "--executor-memory",
            format_spark_mib(sizing.executor_memory_mib),
        );
        flag(&mut args, "--driver-cores", sizing.driver_cores.to_string());
        flag(
            &mut args,
            "--driver-memory",
            format_spark_mib(sizing.driver_memory_mib),
        );
    }
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
    conf.insert(
        "spark.executorEnv.EMRSHIP_JOB_BIN".into(),
        "./bundle/emrship-job".into(),
    );
    conf.insert(
        "spark.yarn.appMasterEnv.EMRSHIP_JOB_BIN".into(),
        "./bundle/emrship-job".into(),
    );
    for (key, value) in &plan.spark.conf {
        conf.insert(key.clone(), value.clone());
    }
    for (key, value) in conf {
        flag(&mut args, "--conf", format!("{key}={value}"));
    }
    args.extend(plan.spark.submit_args.iter().cloned());
    args.push(locations.driver.to_string());
    args.push(plan.job.command.clone());
    args.extend(plan.job.args.iter().cloned());
    args
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
