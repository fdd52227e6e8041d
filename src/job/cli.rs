//! The `emrship-job` command line.
//!
//! ```text
//! emrship-job match-rate --date D --views URI --catalog URI --sink URL [--engine local|spark]
//!                        [--threads N] [--format text|json]
//! emrship-job gen match-rate --events N --pairs P --advertisers A --catalog-size C
//!                            --match-fraction F --out DIR [--date D] [--seed S] [--files K]
//!                            [--format parquet|csv|jsonl]
//! ```
//!
//! `match-rate` takes an optional mode before its flags ([`MatchRateMode`]): the Spark engine's
//! driver calls `emrship-job match-rate map|reduce|… --date … --views …`, each mode with the
//! job's flags plus its own. Exit status: 0 ok, 2 usage or bad input, 1 anything else; errors
//! go to stderr as `emrship-job: error: …`, data to stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use super::engine::{self, MatchRateJob};
use super::gen::{self, GenFormat, GenSpec};
use super::model::{Day, JobError};
use super::summary;

#[derive(Debug, Parser)]
#[command(
    name = "emrship-job",
    version,
    about = "The compute of emrship jobs: the daily match rate, on one node or under Spark"
)]
pub struct JobCli {
    #[command(subcommand)]
    pub command: JobCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Per advertiser, how many of the products its users viewed on a day are in its catalog.
    MatchRate(MatchRateCommand),
    /// Generate deterministic synthetic inputs.
    #[command(subcommand)]
    Gen(GenCommand),
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MatchRateCommand {
    #[command(subcommand)]
    pub mode: Option<MatchRateMode>,
    #[command(flatten)]
    pub args: Option<MatchRateArgs>,
}

/// The Spark engine's task modes (added with the Spark engine).
#[derive(Debug, Subcommand)]
pub enum MatchRateMode {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// This process, every core.
    Local,
    /// Spark executors, through the driver `emrship plan` renders.
    Spark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The match-rate job's arguments, as the cluster step passes them (`emrship run --local`
/// parses a spec's `job.args` with this too).
#[derive(Debug, Clone, Parser)]
#[command(name = "match-rate", no_binary_name = false)]
pub struct MatchRateArgs {
    /// The day to process (UTC), YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Day,
    /// Product-view events: a Parquet/CSV/JSONL file, directory, glob, or s3:// prefix.
    #[arg(long, value_name = "URI")]
    pub views: String,
    /// The catalog: Parquet/CSV files (path, directory, glob, s3://) or dynamodb://TABLE.
    #[arg(long, value_name = "URI")]
    pub catalog: String,
    /// Where the day's tables go: postgres://…, sqlite://PATH, a directory or s3:// prefix.
    #[arg(long, value_name = "URL")]
    pub sink: String,
    #[arg(long, value_enum, default_value_t = Engine::Local)]
    pub engine: Engine,
    /// Worker threads (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// stdout: the per-advertiser table as text, or the whole report as JSON.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl MatchRateArgs {
    pub fn job(&self) -> MatchRateJob {
        MatchRateJob {
            day: self.date,
            views: self.views.clone(),
            catalog: self.catalog.clone(),
            sink: self.sink.clone(),
            threads: self.threads,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Views and a catalog for the match-rate job.
    MatchRate(GenArgs),
}

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// View events to write.
    #[arg(long)]
    pub events: u64,
    /// Distinct (advertiser, product) pairs among the views.
    #[arg(long)]
    pub pairs: u64,
    #[arg(long)]
    pub advertisers: u64,
    /// Catalog rows.
    #[arg(long)]
    pub catalog_size: u64,
    /// Share of viewed pairs that are in the catalog.
    #[arg(long)]
    pub match_fraction: f64,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The day of the events (default 2026-11-20).
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-11-20")]
    pub date: Day,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Files per dataset (default: one per 4 million rows).
    #[arg(long)]
    pub files: Option<u64>,
    #[arg(long, value_enum, default_value_t = GenFormat::Parquet)]
    pub format: GenFormat,
}

impl GenArgs {
    pub fn spec(&self) -> GenSpec {
        GenSpec {
            events: self.events,
            pairs: self.pairs,
            advertisers: self.advertisers,
            catalog_size: self.catalog_size,
            match_fraction: self.match_fraction,
            out: self.out.clone(),
            day: self.date,
            seed: self.seed,
            files: self.files,
            format: self.format,
        }
    }
}

/// Exit status for an error: 2 for usage and bad input, 1 otherwise.
pub fn exit_code(error: &JobError) -> u8 {
    match error {
        JobError::Usage(_) | JobError::Input { .. } => 2,
        _ => 1,
    }
}

fn fail(error: JobError) -> ExitCode {
    eprintln!("emrship-job: error: {error}");
    ExitCode::from(exit_code(&error))
}

pub fn main() -> ExitCode {
    let cli = JobCli::parse();
    match cli.command {
        JobCommand::MatchRate(command) => match (command.mode, command.args) {
            (Some(mode), _) => match mode {},
            (None, Some(args)) => match run_match_rate(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            },
            (None, None) => fail(JobError::Usage(
                "match-rate needs --date, --views, --catalog and --sink (see --help)".into(),
            )),
        },
        JobCommand::Gen(GenCommand::MatchRate(args)) => match gen::generate(&args.spec()) {
            Ok(report) => {
                eprintln!(
                    "wrote {} views in {} files and a catalog of {} rows in {} files to {} ({} distinct pairs, {} in the catalog)",
                    summary::thousands(report.events),
                    report.views_files,
                    summary::thousands(report.catalog_rows),
                    report.catalog_files,
                    args.out.display(),
                    summary::thousands(report.pairs),
                    summary::thousands(report.matched_pairs),
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

/// Runs the job on the chosen engine and prints the summary (stderr) and table (stdout).
pub fn run_match_rate(args: &MatchRateArgs) -> Result<(), JobError> {
    if args.engine == Engine::Spark {
        return Err(JobError::Usage(
            "--engine spark runs through the rendered Spark driver (emrship plan/submit); on this machine use --engine local".into(),
        ));
    }
    let report = engine::local::run(&args.job())?;
    eprint!("{}", summary::render(&report, 10));
    print_report(&report, args.format);
    Ok(())
}

/// The run's data on stdout.
pub fn print_report(report: &engine::RunReport, format: Format) {
    let text = match format {
        Format::Text => summary::rates_text(&report.advertiser_rates),
        Format::Json => {
            serde_json::to_string_pretty(&summary::report_json(report)).expect("JSON") + "\n"
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error of the job.
    let _ = stdout.write_all(text.as_bytes());
}
