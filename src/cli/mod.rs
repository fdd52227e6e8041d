//! The command line: clap declarations here, one module per command. Data goes to stdout
//! (text or JSON), diagnostics to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod plan;
mod size;

/// Exit status for a spec that fails validation (nothing was sent or uploaded).
pub const EXIT_SPEC_ERROR: u8 = 2;
/// Exit status for any other failure (a file that cannot be read, …).
pub const EXIT_FAILURE: u8 = 1;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render, offline, every request and upload a spec would make.
    Plan(PlanArgs),
    /// Size Spark executors for an instance type and node count, showing the arithmetic.
    Size(SizeArgs),
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The job spec (YAML).
    pub spec: PathBuf,
    /// Overlay files, applied in order after the spec (later wins).
    #[arg(short = 'f', long = "overlay", value_name = "FILE")]
    pub overlays: Vec<PathBuf>,
    /// Set one value, after all files: `--set cluster.core.count=6`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The day the run processes ({{date}}); defaults to yesterday (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<chrono::NaiveDate>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
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
    #[arg(long, value_enum, default_value_t = DeployModeArg::Cluster)]
    pub deploy_mode: DeployModeArg,
    /// List the instance types emrship knows, with their YARN memory.
    #[arg(long)]
    pub list: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeployModeArg {
    Cluster,
    Client,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => plan::run(args),
        Command::Size(args) => size::run(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
