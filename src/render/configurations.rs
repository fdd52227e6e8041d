//! Configuration classifications: `spark`, `spark-defaults`, `spark-env`, `yarn-env`, then the
//! spec's own, merged deterministically (later wins per property, with a warning per key).

use indexmap::IndexMap;
use serde::Serialize;

use crate::sizing::memory::format_spark_mib;
use crate::spec::job_plan::Classification;
use crate::spec::JobPlan;

/// A classification in the EMR API's member names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Configuration {
    pub classification: String,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub properties: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configurations: Vec<Configuration>,
}

impl Configuration {
    fn new(classification: &str, properties: IndexMap<String, String>) -> Self {
        Configuration {
            classification: classification.to_string(),
            properties,
            configurations: Vec::new(),
        }
    }

    /// An `*-env` classification: variables go in a nested `export` classification.
    fn exports(classification: &str, variables: &IndexMap<String, String>) -> Self {
        Configuration {
            classification: classification.to_string(),
            properties: IndexMap::new(),
            configurations: vec![Configuration::new("export", variables.clone())],
        }
    }
}

impl From<&Classification> for Configuration {
    fn from(c: &Classification) -> Self {
        Configuration {
            classification: c.classification.clone(),
            properties: c.properties.clone(),
            configurations: c.configurations.iter().map(Configuration::from).collect(),
        }
    }
}

/// The environment every process of the job gets: `spark.env` plus one
/// `EMRSHIP_SECRET_<NAME>=<reference>` per secret, which the job resolves at run time (so the
/// secret's value never appears in the plan, the step or the console).
pub fn job_environment(plan: &JobPlan) -> IndexMap<String, String> {
    let mut env = plan.spark.env.clone();
    for (name, reference) in &plan.job.secrets {
        env.insert(format!("EMRSHIP_SECRET_{name}"), reference.clone());
    }
    env
}

/// Spark properties emrship derives: allocation, sizing, environment. Shared by
/// `spark-defaults` and the step's `--conf` pairs so the two can never disagree.
pub fn derived_spark_properties(plan: &JobPlan) -> IndexMap<String, String> {
    let mut properties = IndexMap::new();
    properties.insert(
        "spark.dynamicAllocation.enabled".to_string(),
        plan.spark.dynamic_allocation.to_string(),
    );
    if let Some(sizing) = &plan.spark.sizing {
        if !plan.spark.dynamic_allocation {
            properties.insert(
                "spark.executor.instances".into(),
                sizing.executor_instances.to_string(),
            );
        } else {
            properties.insert(
                "spark.dynamicAllocation.maxExecutors".into(),
                sizing.executor_instances.to_string(),
            );
        }
        properties.insert(
            "spark.executor.cores".into(),
            sizing.executor_cores.to_string(),
        );
        properties.insert(
            "spark.executor.memory".into(),
            format_spark_mib(sizing.executor_memory_mib),
        );
        properties.insert(
            "spark.executor.memoryOverhead".into(),
            format_spark_mib(sizing.executor_memory_overhead_mib),
        );
        // The driver template passes each task's emrship-job `--threads <spark.task.cpus>`:
        // rendering it keeps the threads and the executor cores in agreement.
        properties.insert("spark.task.cpus".into(), sizing.task_cpus.to_string());
        properties.insert("spark.driver.cores".into(), sizing.driver_cores.to_string());
        properties.insert(
            "spark.driver.memory".into(),
            format_spark_mib(sizing.driver_memory_mib),
        );
        properties.insert(
            "spark.driver.memoryOverhead".into(),
            format_spark_mib(sizing.driver_memory_overhead_mib),
        );
        properties.insert(
            "spark.default.parallelism".into(),
            sizing.default_parallelism.to_string(),
        );
        properties.insert(
            "spark.sql.shuffle.partitions".into(),
            sizing.default_parallelism.to_string(),
        );
    }
    for (name, value) in job_environment(plan) {
        // spark-env does not reach the YARN ApplicationMaster or the executors; these do.
        properties.insert(format!("spark.executorEnv.{name}"), value.clone());
        properties.insert(format!("spark.yarn.appMasterEnv.{name}"), value);
    }
    properties
}

/// A property the spec's own classifications changed in one emrship rendered or an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub classification: String,
    pub key: String,
    pub old: String,
    pub new: String,
}

/// Every classification of the cluster, and each property the spec's own entries overrode.
pub fn configurations(plan: &JobPlan) -> (Vec<Configuration>, Vec<Override>) {
    let mut spark_defaults = derived_spark_properties(plan);
    for (key, value) in &plan.spark.conf {
        spark_defaults.insert(key.clone(), value.clone());
    }
    let env = job_environment(plan);
    let mut rendered = vec![
        // Sizing is explicit, so EMR must not compute its own on top of it.
        Configuration::new(
            "spark",
            IndexMap::from([(
                "maximizeResourceAllocation".to_string(),
                "false".to_string(),
            )]),
        ),
        Configuration::new("spark-defaults", spark_defaults),
    ];
    if !env.is_empty() {
        // spark-env reaches spark-submit and a client-mode driver on the primary node; yarn-env
        // the NodeManagers. Executors get theirs from spark.executorEnv.* above.
        rendered.push(Configuration::exports("spark-env", &env));
        rendered.push(Configuration::exports("yarn-env", &env));
    }
    let mut overrides = Vec::new();
    for extra in &plan.cluster.configurations {
        merge_into(&mut rendered, Configuration::from(extra), &mut overrides);
    }
    (rendered, overrides)
}

fn merge_into(list: &mut Vec<Configuration>, extra: Configuration, overrides: &mut Vec<Override>) {
    let Some(existing) = list
        .iter_mut()
        .find(|c| c.classification == extra.classification)
    else {
        list.push(extra);
        return;
    };
    for (key, value) in extra.properties {
        if let Some(old) = existing.properties.get(&key) {
            if *old != value {
                overrides.push(Override {
                    classification: extra.classification.clone(),
                    key: key.clone(),
                    old: old.clone(),
                    new: value.clone(),
                });
            }
        }
        existing.properties.insert(key, value);
    }
    for nested in extra.configurations {
        merge_into(&mut existing.configurations, nested, overrides);
    }
}
