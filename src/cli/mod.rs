//! The command line: clap declarations here, one module per command. Every command returns a
//! [`CommandResult`] and prints through one [`Printer`] (`crate::edge`): data to stdout (text or
//! JSON), warnings, progress and errors to stderr, the exit status from the error's class.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::edge::{CliError, CommandResult, ExitStatus, OutputFormat, Printer};

mod aws_args;
mod deploy;
mod emr;
mod init;
mod logs;
pub mod plan;
mod preflight;
mod run;
pub mod run_app;
mod schedule;
mod size;

pub use aws_args::AwsArgs;

#[derive(Debug, Parser)]
#[command(
    name = "emrship",
    version,
    about = "Infrastructure as code for Spark jobs on Amazon EMR"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starter PySpark project and its spec, which pass `plan` and `run --local` as
    /// they are.
    Init(InitArgs),
    /// Render, offline, every request and upload a spec would make.
    Plan(PlanArgs),
    /// Size Spark executors for an instance type and node count, showing the arithmetic.
    Size(SizeArgs),
    /// Run a spec's job on this machine (--local), with the arguments the cluster would get;
    /// without --local, launch the day's cluster on EMR unless it already has an active or
    /// completed one.
    Run(RunArgs),
    /// Build the job bundle and upload it with the rendered scripts to S3 (once per content).
    Deploy(DeployArgs),
    /// Create the cluster the plan describes (RunJobFlow), reusing one already running for the
    /// same run key.
    Provision(ProvisionArgs),
    /// Add the plan's steps to a running cluster.
    Submit(SubmitArgs),
    /// Show a cluster's and its steps' states; `--wait` follows them to the end.
    Status(StatusArgs),
    /// Fetch a step's logs from the cluster's log URI and explain why it failed.
    Logs(LogsArgs),
    /// Terminate a cluster by id.
    Terminate(TerminateArgs),
    /// Terminate the cluster of a spec's run (found by its run-key tag).
    Down(DownArgs),
    /// Run a spec on its `schedule:`: a Lambda launched by an EventBridge rule (UTC cron).
    Schedule(ScheduleArgs),
    /// Remove what `schedule` created for a spec (and nothing else).
    Unschedule(UnscheduleArgs),
    /// Launch a transient cluster for each day from --from to --to that has none yet (at most
    /// --max-parallel at once), and report each day's outcome.
    Backfill(BackfillArgs),
}

/// What changes a spec without editing it: overlay files and `--set` values, applied after
/// the spec in this order. Shared by every command that reads a spec.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SpecLayers {
    /// Overlay file, applied after the spec; repeat for several, in order (later wins).
    #[arg(short = 'f', long = "overlay", value_name = "FILE")]
    pub overlays: Vec<PathBuf>,
    /// Set one value, after all files (the value is YAML): `--set cluster.core.count=6`;
    /// repeat for several.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// The spec files and values that make one day's plan.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// The job spec (YAML).
    pub spec: PathBuf,
    #[command(flatten)]
    pub layers: SpecLayers,
    /// The day the run processes ({{date}}); defaults to yesterday (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<chrono::NaiveDate>,
}

/// `--format`, shared by every command that prints data.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FormatArgs {
    /// How data goes to stdout: lines for people, or one JSON document.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The folder to write the project into (created if missing; default: the current one).
    pub dir: Option<PathBuf>,
    /// The project's name (the spec's `name`; the Python package gets `_` for `-`); default:
    /// the folder's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Run on this machine. Without it, `run` launches the day's transient cluster on EMR
    /// behind the run-key guard (as the scheduler does): nothing is launched when the day
    /// already has an active or completed cluster.
    #[arg(long)]
    pub local: bool,
    /// Where results go instead of the spec's sink (postgres://…, sqlite://PATH, a directory
    /// or s3:// prefix). Without it a local run writes SQLite under target/emrship/.
    #[arg(long, value_name = "URL")]
    pub sink: Option<String>,
    /// Read these views instead of the spec's (a file, directory, glob or s3:// prefix).
    /// Without it, a spec whose views are not local runs on generated sample data.
    #[arg(long, value_name = "URI")]
    pub views: Option<String>,
    /// Use this catalog instead of the spec's (files or dynamodb://TABLE).
    #[arg(long, value_name = "URI")]
    pub catalog: Option<String>,
    /// (rollup) Read these events instead of the spec's input. Without it, a spec whose input
    /// is not local runs on generated sample events.
    #[arg(long, value_name = "URI")]
    pub input: Option<String>,
    /// (rollup) Write the documents here instead of the spec's output. Without it, a non-local
    /// output becomes target/emrship/<name>/rollups/dt=<date>/.
    #[arg(long, value_name = "URI")]
    pub output: Option<String>,
    /// Worker threads (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Without --local: print the RunJobFlow request; call nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// The job spec (YAML).
    pub spec: PathBuf,
    #[command(flatten)]
    pub layers: SpecLayers,
    /// The first day to run.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: chrono::NaiveDate,
    /// The last day to run (included).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub to: chrono::NaiveDate,
    /// Clusters this backfill keeps active at once; the next day waits for one to end.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: u32,
    /// Print each day's RunJobFlow request; call nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// First interval between checks for a free slot (it backs off from there, with jitter).
    #[arg(long, value_name = "DURATION", default_value = "30s", hide = true)]
    pub poll: String,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Job specs to deploy (each with the same overlays and --set values).
    #[arg(required = true, num_args = 1..)]
    pub specs: Vec<PathBuf>,
    #[command(flatten)]
    pub layers: SpecLayers,
    /// The day whose plan names the uploads ({{date}}); defaults to yesterday (UTC). The
    /// bundle is the same every day; job files may name the date.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<chrono::NaiveDate>,
    /// Use this emrship-job binary instead of building one with cargo-zigbuild.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Print what would be built and uploaded; upload nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Create or update the IAM roles, inline policies and instance profile first.
    #[arg(long)]
    pub create_roles: bool,
    /// Refuse instead of reusing an active cluster with the same run key.
    #[arg(long)]
    pub no_reuse: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Print the RunJobFlow request (and with --create-roles the IAM documents); call nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("cluster").required(true).args(["cluster_id", "cluster_name"])))]
pub struct SubmitArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The id of an active cluster (j-…).
    #[arg(long, value_name = "j-…")]
    pub cluster_id: Option<String>,
    /// The name of an active cluster (must match exactly one).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Print the AddJobFlowSteps request; call nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

/// `--wait` and its bound, shared by provision, submit and status.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Follow the cluster/steps until they end; on a failed step, explain it from the logs.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (e.g. 30m, 2h); exit status 3.
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub timeout: String,
    /// First polling interval (it backs off from there, with jitter).
    #[arg(long, value_name = "DURATION", default_value = "15s", hide = true)]
    pub poll: String,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Cluster id (j-…).
    pub cluster: String,
    /// Only this step.
    #[arg(long, value_name = "s-…")]
    pub step: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Cluster id (j-…).
    pub cluster: String,
    /// The step (default: the last failed step, else the last step).
    #[arg(long, value_name = "s-…")]
    pub step: Option<String>,
    /// Lines of each log's tail to print.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub lines: usize,
    /// Follow the step while it runs: print its stderr and stdout as they reach S3, until it
    /// ends. EMR copies a running step's logs to S3 about every 5 minutes, so lines appear that
    /// long after the step writes them (and the last ones up to 5 minutes after it ends).
    #[arg(long, conflicts_with = "lines")]
    pub follow: bool,
    /// How often --follow looks for new log text in S3.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        requires = "follow"
    )]
    pub poll: String,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct TerminateArgs {
    /// Cluster id (j-…).
    pub cluster: String,
    /// Say whether the cluster would be terminated; terminate nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// List the run's active clusters that would be terminated; terminate nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("code").args(["lambda_zip", "lambda_binary"])))]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Deploy this zip (it must hold an executable `bootstrap`) instead of building one.
    #[arg(long, value_name = "FILE")]
    pub lambda_zip: Option<PathBuf>,
    /// Zip this emrship-lambda binary as `bootstrap` instead of building one.
    #[arg(long, value_name = "FILE")]
    pub lambda_binary: Option<PathBuf>,
    /// The function's architecture (and the build's target).
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: schedule::LambdaArchArg,
    /// Print every request; send none (not even the template upload).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct UnscheduleArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Print what would be removed; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, clap::Args)]
pub struct SizeArgs {
    /// EC2 instance type of the core nodes, e.g. r5.4xlarge.
    #[arg(long, required_unless_present = "list")]
    pub instance_type: Option<String>,
    /// Number of core nodes.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Size for native work (emrship-job inside the executors): small heap, large overhead.
    #[arg(long)]
    pub native: bool,
    /// Where the Spark driver runs: in a container on a core node (cluster), or on the primary
    /// node (client, which leaves only the ApplicationMaster on the core nodes).
    #[arg(long, value_enum, default_value_t = DeployModeArg::Cluster)]
    pub deploy_mode: DeployModeArg,
    /// List the instance types emrship knows, with their YARN memory.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub stdout: FormatArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeployModeArg {
    /// The driver in a YARN container on a core node.
    Cluster,
    /// The driver on the primary node.
    Client,
}

pub fn main() -> ExitCode {
    let out = Printer::new();
    out.exit(run(Cli::parse(), out))
}

fn run(cli: Cli, out: Printer) -> CommandResult {
    match cli.command {
        Command::Init(args) => init::run(args, out),
        Command::Plan(args) => plan::run(args, out),
        Command::Size(args) => size::run(args, out),
        Command::Run(args) => run::run(args, out),
        Command::Deploy(args) => deploy::run(args, out),
        Command::Provision(args) => emr::provision(args, out),
        Command::Submit(args) => emr::submit(args, out),
        Command::Status(args) => emr::status(args, out),
        Command::Terminate(args) => emr::terminate(args, out),
        Command::Down(args) => emr::down(args, out),
        Command::Backfill(args) => emr::backfill(args, out),
        Command::Logs(args) => logs::run(args, out),
        Command::Schedule(args) => schedule::schedule(args, out),
        Command::Unschedule(args) => schedule::unschedule(args, out),
    }
}

/// Runs an async command on the one runtime a command starts.
pub(crate) fn block_on(command: impl std::future::Future<Output = CommandResult>) -> CommandResult {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?
        .block_on(command)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
