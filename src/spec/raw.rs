//! The job spec as written: mirrors the YAML, denies unknown keys, checks nothing else.
//! Every field is optional here, so that deserialization fails only on unknown keys and wrong
//! types; required keys, defaults and every other check live in `resolve`, which has each
//! value's position at hand and reports all problems at once.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::sizing::{Arch, DeployMode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub log_uri: Option<String>,
    #[serde(default)]
    pub artifacts: Option<String>,
    /// The AWS account the resources live in; only used to tighten IAM ARNs and trust policies.
    #[serde(default)]
    pub account_id: Option<ScalarString>,
    #[serde(default)]
    pub cluster: Option<RawCluster>,
    #[serde(default)]
    pub roles: RawRoles,
    #[serde(default)]
    pub spark: RawSpark,
    #[serde(default)]
    pub job: Option<RawJob>,
    #[serde(default)]
    pub schedule: Option<RawSchedule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    #[serde(default)]
    pub master: Option<RawInstanceGroup>,
    #[serde(default)]
    pub core: Option<RawInstanceGroup>,
    #[serde(default)]
    pub task: Option<RawInstanceGroup>,
    #[serde(default)]
    pub fleets: Option<RawFleets>,
    #[serde(default)]
    pub subnet: Option<String>,
    /// Several subnets let an instance fleet pick the one with capacity.
    #[serde(default)]
    pub subnets: Option<Vec<String>>,
    #[serde(default)]
    pub idle_timeout: Option<ScalarString>,
    /// Keep the cluster when its steps end (a long-running cluster).
    #[serde(default)]
    pub keep_alive: bool,
    #[serde(default)]
    pub ui_access_cidr: Option<String>,
    #[serde(default)]
    pub tags: IndexMap<String, ScalarString>,
    #[serde(default)]
    pub applications: Option<Vec<String>>,
    #[serde(default)]
    pub bootstrap: Vec<RawBootstrapAction>,
    #[serde(default)]
    pub step_concurrency: Option<u32>,
    #[serde(default)]
    pub ebs_root_volume_gib: Option<u32>,
    #[serde(default)]
    pub key_name: Option<String>,
    /// Extra configuration classifications in the EMR API's own shape.
    #[serde(default)]
    pub configurations: Vec<RawClassification>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Market {
    OnDemand,
    Spot,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstanceGroup {
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub market: Option<Market>,
    /// Maximum spot price in USD per hour; without it EMR bids the on-demand price.
    #[serde(default)]
    pub bid_price: Option<ScalarString>,
    #[serde(default)]
    pub ebs_gib: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleets {
    #[serde(default)]
    pub master: Option<RawFleet>,
    #[serde(default)]
    pub core: Option<RawFleet>,
    #[serde(default)]
    pub task: Option<RawFleet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    #[serde(default)]
    pub on_demand: u32,
    #[serde(default)]
    pub spot: u32,
    #[serde(default)]
    pub instance_types: Vec<RawFleetInstanceType>,
    /// How long to wait for spot capacity before switching to on-demand, e.g. `20m`.
    #[serde(default)]
    pub spot_timeout: Option<ScalarString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleetInstanceType {
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub bid_price_percent: Option<u32>,
    #[serde(default)]
    pub ebs_gib: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBootstrapAction {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub args: Vec<ScalarString>,
}

/// A configuration classification in the EMR API's shape, with lower-case keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClassification {
    #[serde(default)]
    pub classification: Option<String>,
    #[serde(default)]
    pub properties: IndexMap<String, ScalarString>,
    #[serde(default)]
    pub configurations: Vec<RawClassification>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoles {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub instance_profile: Option<String>,
    #[serde(default)]
    pub scheduler: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpark {
    #[serde(default)]
    pub deploy_mode: Option<DeployMode>,
    #[serde(default)]
    pub dynamic_allocation: bool,
    #[serde(default)]
    pub executors: RawExecutors,
    #[serde(default)]
    pub conf: IndexMap<String, ScalarString>,
    /// Environment for the job: reaches the driver (or YARN ApplicationMaster) and every executor.
    #[serde(default)]
    pub env: IndexMap<String, ScalarString>,
    /// Extra spark-submit options, one list element per flag or value.
    #[serde(default)]
    pub submit_args: Vec<ScalarString>,
}

/// `executors: auto` or `executors: { instances, cores, memory, memory_overhead }`.
#[derive(Debug, Default)]
pub enum RawExecutors {
    #[default]
    Auto,
    Explicit(RawExplicitExecutors),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExplicitExecutors {
    #[serde(default)]
    pub instances: Option<u32>,
    #[serde(default)]
    pub cores: Option<u32>,
    #[serde(default)]
    pub memory: Option<ScalarString>,
    #[serde(default)]
    pub memory_overhead: Option<ScalarString>,
}

impl<'de> Deserialize<'de> for RawExecutors {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExecutorsVisitor;
        impl<'de> Visitor<'de> for ExecutorsVisitor {
            type Value = RawExecutors;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`auto` or a mapping with `instances`, `cores` and `memory`")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawExecutors, E> {
                if value == "auto" {
                    Ok(RawExecutors::Auto)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(value), &self))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawExecutors, A::Error> {
                RawExplicitExecutors::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawExecutors::Explicit)
            }
        }
        deserializer.deserialize_any(ExecutorsVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Spark on YARN fans the work out over the executors.
    Spark,
    /// One process on the primary node.
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionOnFailure {
    TerminateCluster,
    CancelAndWait,
    Continue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    #[serde(default)]
    pub engine: Option<Engine>,
    /// One of emrship-job's own commands; a user's application is `pyspark`, `jar` or
    /// `executable` instead.
    #[serde(default)]
    pub command: Option<String>,
    /// A user's PySpark application.
    #[serde(default)]
    pub pyspark: Option<RawPySparkApp>,
    /// A user's JVM application (a jar run by spark-submit).
    #[serde(default)]
    pub jar: Option<RawJarApp>,
    /// Any Linux program or script the user builds, run on the primary node.
    #[serde(default)]
    pub executable: Option<RawExecutableApp>,
    #[serde(default)]
    pub args: RawJobArgs,
    /// Environment variable name → secret reference (Secrets Manager or SSM parameter ARN).
    #[serde(default)]
    pub secrets: IndexMap<String, String>,
    /// Local config files shipped beside the job (`--files`), paths relative to the spec file.
    #[serde(default)]
    pub files: Vec<String>,
    /// A prebuilt `emrship-job` binary to ship instead of building one.
    #[serde(default)]
    pub binary: Option<String>,
    /// The architecture of the shipped binary; defaults to the worker nodes' architecture.
    #[serde(default)]
    pub arch: Option<Arch>,
    #[serde(default)]
    pub action_on_failure: Option<ActionOnFailure>,
    /// The Kinesis stream a user's application consumes (its IAM, and the receiver check).
    #[serde(default)]
    pub kinesis: Option<RawKinesis>,
}

/// `job.kinesis`: the stream a user's application reads with the KCL (e.g. Spark's
/// `KinesisInputDStream`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKinesis {
    /// A stream name, or its full ARN.
    #[serde(default)]
    pub stream: Option<String>,
    /// The KCL's lease table; the KCL names it after the application (default: the spec name).
    #[serde(default)]
    pub lease_table: Option<String>,
    /// The stream's shard count, when known.
    #[serde(default)]
    pub shards: Option<u32>,
    /// How many receivers the application starts (default: one per shard).
    #[serde(default)]
    pub receivers: Option<u32>,
}

/// A PySpark application: paths are relative to `project`, itself relative to the spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPySparkApp {
    /// The application's folder (default: the spec file's folder).
    #[serde(default)]
    pub project: Option<String>,
    /// The entry script spark-submit runs.
    #[serde(default)]
    pub main: Option<String>,
    /// The application's own packages and modules, zipped for `--py-files` (pure Python).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Config and data files: a file lands in the container's working directory by its name, a
    /// directory as a folder of that name (`conf` → `./conf/app.ini`).
    #[serde(default)]
    pub files: Vec<String>,
    /// `requirements.txt`, `pyproject.toml`, `uv.lock` or `poetry.lock`.
    #[serde(default)]
    pub requirements: Option<String>,
    /// The nodes' Python to run on, e.g. `"3.11"` (default: the release's `python3`).
    #[serde(default)]
    pub python: Option<ScalarString>,
}

/// A JVM application: paths are relative to `project`, itself relative to the spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJarApp {
    #[serde(default)]
    pub project: Option<String>,
    /// The application jar.
    #[serde(default)]
    pub path: Option<String>,
    /// `--class`; without it the jar's manifest `Main-Class` is used.
    #[serde(default)]
    pub main_class: Option<String>,
    /// Dependency jars for `--jars`: local paths or `s3://` URIs.
    #[serde(default)]
    pub jars: Vec<String>,
    /// Maven coordinates for `--packages` (resolved from the internet on every run).
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
}

/// Any program: paths are relative to `project`, itself relative to the spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExecutableApp {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// Files downloaded beside the program, into its working directory.
    #[serde(default)]
    pub files: Vec<String>,
}

/// Job arguments: named (`views: s3://…` → `--views s3://…`) or a discrete list.
#[derive(Debug)]
pub enum RawJobArgs {
    Named(IndexMap<String, RawArg>),
    List(Vec<RawArg>),
}

/// One argument: a value, or a value marked as data the job reads (`{input: s3://…}`) or
/// writes (`{output: s3://…}`) so that the instance profile is granted exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawArg {
    Plain(String),
    Input(String),
    Output(String),
}

impl RawArg {
    pub fn value(&self) -> &str {
        match self {
            RawArg::Plain(v) | RawArg::Input(v) | RawArg::Output(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for RawArg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "snake_case")]
        enum Marked {
            Input(ScalarString),
            Output(ScalarString),
        }
        struct ArgVisitor;
        impl<'de> Visitor<'de> for ArgVisitor {
            type Value = RawArg;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean, or `{input: …}` / `{output: …}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawArg, E> {
                Ok(RawArg::Plain(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawArg, E> {
                Ok(RawArg::Plain(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawArg, E> {
                Ok(RawArg::Plain(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawArg, E> {
                Ok(RawArg::Plain(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawArg, E> {
                Ok(RawArg::Plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawArg, A::Error> {
                Marked::deserialize(de::value::MapAccessDeserializer::new(map)).map(|m| match m {
                    Marked::Input(v) => RawArg::Input(v.0),
                    Marked::Output(v) => RawArg::Output(v.0),
                })
            }
        }
        deserializer.deserialize_any(ArgVisitor)
    }
}

impl Default for RawJobArgs {
    fn default() -> Self {
        RawJobArgs::Named(IndexMap::new())
    }
}

impl<'de> Deserialize<'de> for RawJobArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = RawJobArgs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of argument names to values, or a list of arguments")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawJobArgs, A::Error> {
                IndexMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawJobArgs::Named)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<RawJobArgs, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawJobArgs::List)
            }
        }
        deserializer.deserialize_any(ArgsVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// EventBridge syntax: `cron(min hour day-of-month month day-of-week year)` or `rate(…)`.
    #[serde(default)]
    pub cron: Option<String>,
    /// Which day a run processes: `yesterday` (default), `today`, or `N days ago`.
    #[serde(default)]
    pub date: Option<String>,
    /// IANA time zone in which `date` is taken; UTC by default.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// A scalar that is used as a string: YAML `true`, `4` and `"4"` all become text, as EMR and
/// Spark want every property value as a string. Mappings and lists are rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarString(pub String);

impl ScalarString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}
