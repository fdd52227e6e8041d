//! The checked job spec: defaults applied, run variables filled, every value validated.
//! Renderers take this and nothing else.

use chrono::NaiveDate;
use indexmap::IndexMap;
use serde::Serialize;

use super::raw::{ActionOnFailure, Engine, Market};
use super::release::ReleaseLabel;
use super::s3::S3Uri;
use crate::sizing::{Arch, DeployMode, ExecutorSizing, Workload};

#[derive(Debug, Clone, Serialize)]
pub struct JobPlan {
    pub name: String,
    pub region: String,
    pub release: ReleaseLabel,
    pub log_uri: S3Uri,
    pub artifacts: S3Uri,
    pub account_id: Option<String>,
    /// The day this run processes (`{{date}}`).
    pub date: NaiveDate,
    pub cluster: Cluster,
    pub roles: Roles,
    pub spark: Spark,
    pub job: Job,
    pub schedule: Option<Schedule>,
}

impl JobPlan {
    /// `emrship:run-key`: one spec, one day. Launches look it up first so that a retry never
    /// starts a second cluster for the same run.
    pub fn run_key(&self) -> String {
        format!("{}/{}", self.name, self.date.format("%Y-%m-%d"))
    }

    /// The prefix under which everything of this spec is stored.
    pub fn artifact_prefix(&self) -> S3Uri {
        self.artifacts.join(&format!("{}/", self.name))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub nodes: Nodes,
    pub subnets: Vec<String>,
    pub idle_timeout_seconds: Option<u64>,
    pub keep_alive: bool,
    pub ui_access_cidr: Option<String>,
    pub tags: IndexMap<String, String>,
    pub applications: Vec<String>,
    pub bootstrap: Vec<BootstrapAction>,
    pub step_concurrency: Option<u32>,
    pub ebs_root_volume_gib: Option<u32>,
    pub key_name: Option<String>,
    /// Extra classifications from the spec, in order, before merging with the rendered ones.
    pub configurations: Vec<Classification>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Nodes {
    Groups {
        master: InstanceGroup,
        core: Option<InstanceGroup>,
        task: Option<InstanceGroup>,
    },
    Fleets {
        master: Fleet,
        core: Fleet,
        task: Option<Fleet>,
    },
}

impl Nodes {
    /// Every instance type of the nodes that run YARN containers (core and task).
    pub fn worker_types(&self) -> Vec<&'static crate::sizing::InstanceType> {
        match self {
            Nodes::Groups { core, task, .. } => core
                .iter()
                .chain(task.iter())
                .map(|group| group.instance_type)
                .collect(),
            Nodes::Fleets { core, task, .. } => core
                .instance_types
                .iter()
                .chain(task.iter().flat_map(|fleet| fleet.instance_types.iter()))
                .map(|choice| choice.instance_type)
                .collect(),
        }
    }

    pub fn master_types(&self) -> Vec<&'static crate::sizing::InstanceType> {
        match self {
            Nodes::Groups { master, .. } => vec![master.instance_type],
            Nodes::Fleets { master, .. } => master
                .instance_types
                .iter()
                .map(|choice| choice.instance_type)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceGroup {
    pub instance_type: &'static crate::sizing::InstanceType,
    pub count: u32,
    pub market: Market,
    pub bid_price: Option<String>,
    pub ebs_gib: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub on_demand: u32,
    pub spot: u32,
    pub instance_types: Vec<FleetChoice>,
    pub spot_timeout_minutes: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetChoice {
    pub instance_type: &'static crate::sizing::InstanceType,
    pub weight: u32,
    pub bid_price_percent: Option<u32>,
    pub ebs_gib: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootstrapAction {
    pub name: String,
    pub script: BootstrapScript,
    pub args: Vec<String>,
}

/// A bootstrap script: in S3 already, or a local file (relative to the spec's folder) that
/// `deploy` uploads content-addressed like every other artifact.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapScript {
    S3(S3Uri),
    Local(AppPath),
}

/// An EMR configuration classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub classification: String,
    pub properties: IndexMap<String, String>,
    pub configurations: Vec<Classification>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Roles {
    /// The EMR service role (`ServiceRole`).
    pub service: String,
    /// The EC2 instance profile and its role, which share one name (`JobFlowRole`).
    pub instance_profile: String,
    /// The scheduler Lambda's execution role.
    pub scheduler: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Spark {
    pub deploy_mode: DeployMode,
    pub dynamic_allocation: bool,
    pub workload: Workload,
    /// Whether the sizing came from the spec (`explicit`) or was computed (`auto`).
    pub sizing_source: SizingSource,
    /// `None` when the cluster has no core or task nodes (a single-node `engine: local` run).
    pub sizing: Option<ExecutorSizing>,
    pub conf: IndexMap<String, String>,
    pub env: IndexMap<String, String>,
    pub submit_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SizingSource {
    Auto,
    Explicit,
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub engine: Engine,
    /// emrship-job's command, or for a user's application the entry's file name.
    pub command: String,
    /// A user's application; `None` for emrship-job's own commands.
    pub app: Option<UserApp>,
    /// Arguments after the command, one element per flag or value.
    pub args: Vec<String>,
    /// Environment variable → secret reference, resolved by the job at run time.
    pub secrets: IndexMap<String, String>,
    pub files: Vec<JobFile>,
    pub binary: Option<String>,
    pub arch: Arch,
    pub action_on_failure: ActionOnFailure,
    /// Every S3 location the job reads, for the instance profile's policy.
    pub reads: Vec<S3Uri>,
    /// Every S3 location the job writes.
    pub writes: Vec<S3Uri>,
    /// DynamoDB tables the job reads.
    pub dynamodb_tables: Vec<String>,
    /// The Kinesis stream the job consumes (the `stream` command, or `job.kinesis` of a user's
    /// application), for the instance profile's policy.
    pub kinesis: Option<KinesisAccess>,
}

/// What a Kinesis consumer touches: one stream, read-only, and its lease table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KinesisAccess {
    /// As written when the spec gives an ARN; else built from the spec's region and
    /// `account_id` (`*` without one).
    pub stream_arn: String,
    pub stream_name: String,
    /// The DynamoDB table of leases and checkpoints (in the spec's region and account).
    pub lease_table: String,
    /// The CloudWatch namespace the consumer publishes metrics to: a KCL-based application
    /// publishes under its application name by default. `None` for emrship-job's `stream`,
    /// which publishes none.
    pub metrics_namespace: Option<String>,
}

/// A user's application and what ships with it. Every path is relative to `project`.
#[derive(Debug, Clone, Serialize)]
pub struct UserApp {
    /// The application's folder, relative to the spec file's folder (`""` = that folder).
    pub project: String,
    pub kind: AppKind,
    /// Config and data files: each lands in the working directory under its `name`.
    pub files: Vec<AppPath>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    PySpark {
        main: AppPath,
        modules: Vec<AppPath>,
        requirements: Option<Requirements>,
        /// The nodes' interpreter the application runs on, as (3, minor).
        python: (u32, u32),
    },
    Jar {
        jar: AppPath,
        main_class: Option<String>,
        /// Local dependency jars (shipped) and `s3://` ones (referenced as they are).
        jars: Vec<JarRef>,
        packages: Vec<String>,
    },
    Executable {
        program: AppPath,
    },
}

impl AppKind {
    pub fn label(&self) -> &'static str {
        match self {
            AppKind::PySpark { .. } => "pyspark",
            AppKind::Jar { .. } => "jar",
            AppKind::Executable { .. } => "executable",
        }
    }
}

/// A local path of the application, with where the spec wrote it (for errors found on disk).
#[derive(Debug, Clone, Serialize)]
pub struct AppPath {
    /// As written, relative to the project folder.
    pub path: String,
    /// Its last component: the name it has in the container's working directory.
    pub name: String,
    #[serde(skip)]
    pub origin: Option<super::diagnostics::Origin>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JarRef {
    Local(AppPath),
    S3(S3Uri),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementsFormat {
    RequirementsTxt,
    Pyproject,
    UvLock,
    PoetryLock,
}

#[derive(Debug, Clone, Serialize)]
pub struct Requirements {
    pub file: AppPath,
    pub format: RequirementsFormat,
}

/// A config file shipped beside the job.
#[derive(Debug, Clone, Serialize)]
pub struct JobFile {
    /// The path as written in the spec.
    pub spec_path: String,
    /// The name the job sees in its working directory.
    pub file_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// EventBridge schedule expression, checked.
    pub expression: String,
    /// Days back from the tick's date in `timezone`: 1 = yesterday.
    pub days_back: u32,
    pub timezone: String,
}
