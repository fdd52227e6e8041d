//! The `emrship-job` command line.
//!
//! ```text
//! emrship-job match-rate --date D --views URI --catalog URI --sink URL [--engine local|spark]
//!                        [--threads N] [--format text|json]
//! emrship-job gen match-rate --events N --pairs P --advertisers A --catalog-size C
//!                            --match-fraction F --out DIR [--date D] [--seed S] [--files K]
//!                            [--format parquet|csv|jsonl]
//! emrship-job rollup --input URI --output URI [--engine local|spark] [--granularity 1h]
//!                    [--threads N] [--buckets N] [--format text|json]
//! emrship-job stream --stream NAME|ARN --output URI [--lease-table T] [--window 5m]
//!                    [--lateness 1m] [--position trim_horizon|latest] [--region R]
//!                    [--worker-id ID] [--stop-when-idle 10s] [--format text|json]
//! emrship-job gen stream --stream NAME|ARN --records N [--rate R] [--copy FILE]
//! emrship-job gen rollup --records N --out DIR [--records-per-file 2000000] [--files-per-hour 2]
//!                        [--customers 5] [--urls 20000] [--seed 1] [--start 2026-11-20T00]
//!                        [--format parquet|csv|jsonl]
//! ```
//!
//! `match-rate` and `rollup` take an optional mode before their flags ([`MatchRateMode`],
//! [`RollupMode`]): the Spark engine's driver calls `emrship-job match-rate map|reduce|…
//! --date … --views …` (or `emrship-job rollup map|reduce|… --input … --output …`), each mode
//! with the job's flags plus its own. Exit status (`crate::edge`): 0 ok, 2 usage or bad input,
//! 1 anything else; errors go to stderr as `emrship-job: error: …` (the program named, for the
//! Spark and YARN logs its stderr lands in), data to stdout.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use super::engine::{self, spark, MatchRateJob};
use super::gen::{self, GenFormat, GenSpec};
use super::location::Location;
use super::model::{Day, JobError};
use super::rollup::gen as rollup_gen;
use super::rollup::{self, RollupJob};
use super::stream::gen::{self as stream_gen, StreamGenSpec};
use super::stream::window::WindowSpec;
use super::stream::{self, StartPosition, StopRule, StreamJob};
use super::summary;
use crate::edge::{CliError, CommandResult, ExitStatus, Printer};

#[derive(Debug, Parser)]
#[command(
    name = "emrship-job",
    version,
    about = "The compute of emrship jobs: the daily match rate and the hourly page-view \
             rollup, on one node or under Spark"
)]
pub struct JobCli {
    #[command(subcommand)]
    pub command: JobCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Per advertiser, how many of the products its users viewed on a day are in its catalog.
    MatchRate(MatchRateCommand),
    /// Hourly page-view rollup: per (customer, url, hour) page views, exact visitors and
    /// referrer counts, as JSON Lines documents.
    Rollup(RollupCommand),
    /// Page-view windows from a Kinesis stream: per (customer, url, tumbling window) the
    /// rollup's documents in S3, each record counted exactly once across crashes, restarts
    /// and workers sharing the shards (leases in DynamoDB, KCL's table layout).
    Stream(StreamArgs),
    /// The stream job's aggregation over a file of records (one JSON record per line, e.g. a
    /// Firehose backup of the stream) on one thread: ranges of N records, then each window's
    /// documents under OUTPUT/windows/. The worker's CPU path without Kinesis.
    StreamFile(StreamFileArgs),
    /// Generate deterministic synthetic inputs.
    #[command(subcommand)]
    Gen(GenCommand),
}

/// The stream job's arguments (`emrship run --local` parses a spec's `job.args` with this too).
#[derive(Debug, Clone, Parser)]
#[command(name = "stream")]
pub struct StreamArgs {
    /// The Kinesis stream: a name (in --region) or an ARN.
    #[arg(long, value_name = "NAME|ARN")]
    pub stream: String,
    /// Where windows go: `s3://bucket/prefix/` (or a local directory).
    #[arg(long, value_name = "URI")]
    pub output: String,
    /// The DynamoDB lease table (created on first use; one per application, as the KCL's).
    #[arg(long = "lease-table", alias = "lease_table", value_name = "TABLE")]
    pub lease_table: String,
    /// Tumbling window width: 1m to 1h, dividing an hour.
    #[arg(long, default_value = "5m", value_parser = parse_ms)]
    pub window: i64,
    /// How long after a window's end its records are still counted (event time); later ones
    /// are counted as late and kept aside.
    #[arg(long, default_value = "1m", value_parser = parse_ms)]
    pub lateness: i64,
    /// Where a new stream's shards are first read from.
    #[arg(long, value_enum, default_value_t = Position::TrimHorizon)]
    pub position: Position,
    /// The AWS region (default: the environment's).
    #[arg(long)]
    pub region: Option<String>,
    /// This worker's id in the lease table (default: host name, process id and a random part).
    #[arg(long = "worker-id", value_name = "ID")]
    pub worker_id: Option<String>,
    /// A lease whose counter has not moved for this long is taken over.
    #[arg(long, default_value = "10s", value_parser = parse_ms)]
    pub failover: i64,
    /// Pause between two reads of a shard (Kinesis allows 5 per second per shard, shared by
    /// every consumer).
    #[arg(long = "poll-interval", default_value = "1s", value_parser = parse_ms)]
    pub poll_interval: i64,
    /// A shard's open range is written at least this often (the latency floor).
    #[arg(long = "flush-interval", default_value = "5s", value_parser = parse_ms)]
    pub flush_interval: i64,
    /// …or when it holds this many records.
    #[arg(long = "flush-records", default_value_t = 50_000)]
    pub flush_records: u64,
    /// Records one GetRecords call may return (1 to 10,000).
    #[arg(long = "records-per-call", default_value_t = 10_000, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub records_per_call: i32,
    /// How often ListShards looks for new shards (after a reshard).
    #[arg(long = "shard-sync-interval", default_value = "60s", value_parser = parse_ms)]
    pub shard_sync_interval: i64,
    /// Stop once every held shard has been caught up and quiet this long (default: run until
    /// SIGTERM, as on a cluster).
    #[arg(long = "stop-when-idle", value_name = "DURATION", value_parser = parse_ms)]
    pub stop_when_idle: Option<i64>,
    /// How the report at the stop goes to stdout: a line, or one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct StreamFileArgs {
    /// The records, one per line.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The directory to write `windows/<start>.jsonl` under.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Tumbling window width: 1m to 1h, dividing an hour.
    #[arg(long, default_value = "5m", value_parser = parse_ms)]
    pub window: i64,
    /// How long after a window's end its records are still counted (event time).
    #[arg(long, default_value = "1m", value_parser = parse_ms)]
    pub lateness: i64,
    /// Records per range (the worker's --flush-records).
    #[arg(long = "range-records", default_value_t = 50_000)]
    pub range_records: usize,
    /// How the summary goes to stdout: a line, or one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn parse_ms(text: &str) -> Result<i64, String> {
    crate::job::stream::parse_duration_ms(text)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Position {
    TrimHorizon,
    Latest,
}

impl StreamArgs {
    pub fn job(&self) -> Result<StreamJob, JobError> {
        let window = WindowSpec::new(self.window, self.lateness)
            .map_err(|e| JobError::Usage(format!("--window/--lateness: {e}")))?;
        let ms = |v: i64| Duration::from_millis(v.max(1) as u64);
        if self.failover < 1000 {
            return Err(JobError::Usage(
                "--failover: at least 1s (leases are renewed every third of it)".into(),
            ));
        }
        let worker_id = match &self.worker_id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => default_worker_id(),
        };
        Ok(StreamJob {
            stream: self.stream.clone(),
            output: self.output.clone(),
            lease_table: self.lease_table.clone(),
            region: self.region.clone(),
            window,
            position: match self.position {
                Position::TrimHorizon => StartPosition::TrimHorizon,
                Position::Latest => StartPosition::Latest,
            },
            worker_id,
            failover: ms(self.failover),
            poll_interval: ms(self.poll_interval),
            flush_interval: ms(self.flush_interval),
            flush_records: self.flush_records.max(1),
            records_per_call: self.records_per_call,
            shard_sync_interval: ms(self.shard_sync_interval),
            stop: match self.stop_when_idle {
                Some(quiet) => StopRule::WhenIdle(ms(quiet)),
                None => StopRule::Never,
            },
        })
    }
}

/// `host:<run id>` (the run id holds the process id and a random part): unique per process,
/// readable in the lease table.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".to_string());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &super::location::run_id()
    )
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MatchRateCommand {
    #[command(subcommand)]
    pub mode: Option<MatchRateMode>,
    #[command(flatten)]
    pub args: Option<MatchRateArgs>,
}

/// The Spark engine's task modes, run by the rendered driver (see `engine::spark`).
#[derive(Debug, Subcommand)]
pub enum MatchRateMode {
    /// (driver) Print the input files, one `views<TAB>URI` or `catalog<TAB>URI` per line.
    ListInputs(MatchRateArgs),
    /// (map task) Scan the files listed on stdin; write bucketed binary frames to stdout.
    Map(MapArgs),
    /// (reduce task) Merge one bucket's frames from stdin, join the catalog, stage the rows;
    /// print one JSON line naming the staged file.
    Reduce(ReduceArgs),
    /// (driver) Merge the staged files named by the JSON lines on stdin, replace the day in
    /// the sink, remove the staging directory, print the summary.
    Finalize(FinalizeArgs),
    /// (driver) Remove everything left under a staging directory.
    Clean(CleanArgs),
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RollupCommand {
    #[command(subcommand)]
    pub mode: Option<RollupMode>,
    #[command(flatten)]
    pub args: Option<RollupArgs>,
}

/// The rollup's Spark task modes, run by the rendered driver (see `rollup::spark`). The
/// job's `--buckets` is the Spark bucket count here (the driver passes it).
#[derive(Debug, Subcommand)]
pub enum RollupMode {
    /// (driver) Print the event files, one URI per line.
    ListInputs(RollupArgs),
    /// (map task) Read the files listed on stdin; write bucketed binary frames to stdout.
    Map(RollupArgs),
    /// (reduce task) Merge one bucket's frames from stdin, stage its documents; print one
    /// JSON line naming the staged file.
    Reduce(RollupReduceArgs),
    /// (driver) Put the staged files named by the JSON lines on stdin in place as the output's
    /// part files (atomically, `_SUCCESS` last), remove the staging directory, print the summary.
    Finalize(RollupFinalizeArgs),
    /// (driver) Remove everything left under a staging directory.
    Clean(CleanArgs),
}

#[derive(Debug, clap::Args)]
pub struct RollupReduceArgs {
    /// The bucket this task reduces (0-based, below --buckets).
    #[arg(long)]
    pub bucket: u32,
    /// This run's staging directory or s3:// prefix.
    #[arg(long, value_name = "URI")]
    pub staging: String,
    /// This task attempt's unique id (names the staged file).
    #[arg(long)]
    pub attempt: String,
    #[command(flatten)]
    pub job: RollupArgs,
}

#[derive(Debug, clap::Args)]
pub struct RollupFinalizeArgs {
    /// This run's staging directory or s3:// prefix (removed once the output is in place).
    #[arg(long, value_name = "URI")]
    pub staging: String,
    #[command(flatten)]
    pub job: RollupArgs,
}

#[derive(Debug, clap::Args)]
pub struct MapArgs {
    /// Buckets to hash-partition into (one reduce task each).
    #[arg(long)]
    pub buckets: u32,
    #[command(flatten)]
    pub job: MatchRateArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReduceArgs {
    /// The bucket this task reduces (0-based, below --buckets).
    #[arg(long)]
    pub bucket: u32,
    /// Buckets the map tasks hash-partitioned into.
    #[arg(long)]
    pub buckets: u32,
    /// This run's staging directory or s3:// prefix.
    #[arg(long, value_name = "URI")]
    pub staging: String,
    /// This task attempt's unique id (names the staged file).
    #[arg(long)]
    pub attempt: String,
    #[command(flatten)]
    pub job: MatchRateArgs,
}

#[derive(Debug, clap::Args)]
pub struct FinalizeArgs {
    /// Buckets the run used (one staged file expected from each).
    #[arg(long)]
    pub buckets: u32,
    /// This run's staging directory or s3:// prefix (removed once the sink holds the day).
    #[arg(long, value_name = "URI")]
    pub staging: String,
    #[command(flatten)]
    pub job: MatchRateArgs,
}

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// The staging directory or s3:// prefix to empty.
    #[arg(long, value_name = "URI")]
    pub staging: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// This process, every core.
    Local,
    /// Spark executors, through the driver `emrship plan` renders.
    Spark,
}

/// The job's report format: the same `--format` as `emrship`'s.
pub use crate::edge::OutputFormat as Format;

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
    /// Where the work runs: this process, or Spark executors (through the rendered driver).
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

/// The rollup job's arguments (`emrship run --local` parses a spec's `job.args` with this too).
#[derive(Debug, Clone, Parser)]
#[command(name = "rollup", no_binary_name = false)]
pub struct RollupArgs {
    /// Page-view events: Parquet/CSV/JSONL files, a (Hive-partitioned) directory, a glob, or
    /// an s3:// prefix.
    #[arg(long, value_name = "URI")]
    pub input: String,
    /// Where the JSON Lines part files go: a directory or an s3:// prefix (replaced whole).
    #[arg(long, value_name = "URI")]
    pub output: String,
    /// Where the work runs: this process, or Spark executors (through the rendered driver).
    #[arg(long, value_enum, default_value_t = Engine::Local)]
    pub engine: Engine,
    /// Rollup period; only 1h (`freq` "1hour").
    #[arg(long, default_value = "1h")]
    pub granularity: String,
    /// Worker threads (default: every core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Reduce buckets = output part files at most (default: about one per million events).
    #[arg(long, value_name = "N")]
    pub buckets: Option<usize>,
    /// stdout: the run's summary as text or JSON.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl RollupArgs {
    pub fn job(&self) -> Result<RollupJob, JobError> {
        if !matches!(self.granularity.as_str(), "1h" | "1hour" | "hour") {
            return Err(JobError::Usage(format!(
                "--granularity {}: only 1h (hourly documents, freq \"1hour\") is supported",
                self.granularity
            )));
        }
        if self.buckets == Some(0) {
            return Err(JobError::Usage("--buckets must be at least 1".into()));
        }
        Ok(RollupJob {
            input: self.input.clone(),
            output: self.output.clone(),
            threads: self.threads,
            buckets: self.buckets,
        })
    }
}

/// Runs the rollup and prints its summary (stdout, text or JSON).
pub fn run_rollup(args: &RollupArgs, out: Printer) -> Result<(), CliError> {
    if args.engine == Engine::Spark {
        return Err(JobError::Usage(
            "--engine spark runs through the rendered Spark driver (emrship plan/submit); on this machine use --engine local".into(),
        ).into());
    }
    let report = rollup::run_local(&args.job()?)?;
    print_rollup_report(&report, args.format, out)
}

pub fn print_rollup_report(
    report: &rollup::RollupReport,
    format: Format,
    out: Printer,
) -> Result<(), CliError> {
    match format {
        Format::Text => out.data_text(&report.text()),
        Format::Json => out.json(&report.json()),
    }
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Views and a catalog for the match-rate job.
    MatchRate(GenArgs),
    /// Hive-partitioned page-view events for the rollup job.
    Rollup(RollupGenArgs),
    /// Page-view events put into a Kinesis stream (the stream job's input).
    Stream(StreamGenArgs),
}

#[derive(Debug, clap::Args)]
pub struct StreamGenArgs {
    /// The Kinesis stream: a name (in --region) or an ARN. Without it the records are only
    /// written to --copy (a benchmark's input).
    #[arg(long, value_name = "NAME|ARN", required_unless_present = "copy")]
    pub stream: Option<String>,
    /// Records to put.
    #[arg(long)]
    pub records: u64,
    /// Records per second at most (0: as fast as PutRecords takes them).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// The random seed: the same seed and arguments give the same records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The first record's event time (UTC); `ts` then moves forward evenly over --span.
    #[arg(long, value_name = "YYYY-MM-DDTHH[:MM]", default_value = "2026-11-20T00", value_parser = rollup_gen::parse_time)]
    pub start: chrono::NaiveDateTime,
    /// The event time the records cover.
    #[arg(long, default_value = "1h", value_parser = parse_ms)]
    pub span: i64,
    /// Customers.
    #[arg(long, default_value_t = 5)]
    pub customers: u64,
    /// Distinct articles per customer.
    #[arg(long, default_value_t = 200)]
    pub urls: u64,
    /// Distinct sessions.
    #[arg(long, default_value_t = 5_000)]
    pub sessions: u64,
    /// Make every n-th record malformed (not JSON); 0 for none.
    #[arg(long = "malformed-every", default_value_t = 0)]
    pub malformed_every: u64,
    /// Also write each record's data, one per line, to this file.
    #[arg(long, value_name = "FILE")]
    pub copy: Option<PathBuf>,
    /// The AWS region (default: the environment's).
    #[arg(long)]
    pub region: Option<String>,
}

impl StreamGenArgs {
    pub fn spec(&self) -> StreamGenSpec {
        StreamGenSpec {
            records: self.records,
            seed: self.seed,
            start_ms: self.start.and_utc().timestamp_millis(),
            span_ms: self.span.max(0),
            customers: self.customers,
            urls: self.urls,
            sessions: self.sessions,
            malformed_every: self.malformed_every,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RollupGenArgs {
    /// Events to write.
    #[arg(long)]
    pub records: u64,
    /// The directory to write the Hive-partitioned files under.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Events per file (the last file may be shorter).
    #[arg(long, default_value_t = 2_000_000)]
    pub records_per_file: u64,
    /// Files per hour directory.
    #[arg(long, default_value_t = 2)]
    pub files_per_hour: u64,
    /// Customers (the `customer=` directories).
    #[arg(long, default_value_t = 5)]
    pub customers: u64,
    /// Distinct articles per customer.
    #[arg(long, default_value_t = 20_000)]
    pub urls: u64,
    /// The random seed: the same seed and arguments give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The first file's hour (UTC).
    #[arg(long, value_name = "YYYY-MM-DDTHH", default_value = "2026-11-20T00", value_parser = rollup_gen::parse_start)]
    pub start: chrono::NaiveDateTime,
    /// The file format to write.
    #[arg(long, value_enum, default_value_t = GenFormat::Parquet)]
    pub format: GenFormat,
}

impl RollupGenArgs {
    pub fn spec(&self) -> rollup_gen::RollupGenSpec {
        rollup_gen::RollupGenSpec {
            records: self.records,
            records_per_file: self.records_per_file,
            files_per_hour: self.files_per_hour,
            customers: self.customers,
            urls: self.urls,
            seed: self.seed,
            start: self.start,
            format: self.format,
            out: self.out.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// View events to write.
    #[arg(long)]
    pub events: u64,
    /// Distinct (advertiser, product) pairs among the views.
    #[arg(long)]
    pub pairs: u64,
    /// Distinct advertisers (view counts per advertiser are skewed).
    #[arg(long)]
    pub advertisers: u64,
    /// Catalog rows.
    #[arg(long)]
    pub catalog_size: u64,
    /// Share of viewed pairs that are in the catalog.
    #[arg(long)]
    pub match_fraction: f64,
    /// The directory to write `views/` and `catalog/` under.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The day of the events (default 2026-11-20).
    #[arg(long, value_name = "YYYY-MM-DD", default_value = "2026-11-20")]
    pub date: Day,
    /// The random seed: the same seed and arguments give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Files per dataset (default: one per 4 million rows).
    #[arg(long)]
    pub files: Option<u64>,
    /// The file format to write.
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

pub fn main() -> ExitCode {
    let out = Printer::named("emrship-job");
    out.exit(run(JobCli::parse(), out))
}

fn run(cli: JobCli, out: Printer) -> CommandResult {
    match cli.command {
        JobCommand::MatchRate(command) => match (command.mode, command.args) {
            (Some(mode), _) => run_mode(mode, out)?,
            (None, Some(args)) => run_match_rate(&args, out)?,
            (None, None) => {
                return Err(JobError::Usage(
                    "match-rate needs --date, --views, --catalog and --sink (see --help)".into(),
                )
                .into())
            }
        },
        JobCommand::Rollup(command) => match (command.mode, command.args) {
            (Some(mode), _) => run_rollup_mode(mode, out)?,
            (None, Some(args)) => run_rollup(&args, out)?,
            (None, None) => {
                return Err(JobError::Usage(
                    "rollup needs --input and --output (see --help)".into(),
                )
                .into())
            }
        },
        JobCommand::Stream(args) => {
            let report = stream::run(args.job()?)?;
            match args.format {
                Format::Text => out.data_text(&report.text())?,
                Format::Json => out.json(&report)?,
            }
        }
        JobCommand::StreamFile(args) => {
            let spec = WindowSpec::new(args.window, args.lateness)
                .map_err(|e| JobError::Usage(format!("--window/--lateness: {e}")))?;
            let report =
                stream::aggregate_file(&args.input, &args.output, spec, args.range_records)?;
            match args.format {
                Format::Text => out.data_text(&format!(
                    "stream-file: {} records ({} malformed, {} late) in {} ranges -> {} windows in {}; aggregate {:.3} s, finalize {:.3} s\n",
                    report.records,
                    report.malformed,
                    report.late,
                    report.ranges,
                    report.windows,
                    args.output.display(),
                    report.aggregate_seconds,
                    report.finalize_seconds
                ))?,
                Format::Json => out.json(&report)?,
            }
        }
        JobCommand::Gen(GenCommand::Stream(args)) => match (&args.stream, &args.copy) {
            (Some(stream), copy) => {
                let report = stream_gen::put(
                    &args.spec(),
                    stream,
                    args.region.as_deref(),
                    args.rate,
                    copy.as_deref(),
                )?;
                out.info(&format!(
                    "put {} records into {} in {} PutRecords calls in {:.1}s",
                    summary::thousands(report.records),
                    report.stream,
                    report.calls,
                    report.seconds,
                ));
            }
            (None, copy) => {
                // clap requires --copy without --stream.
                let copy = copy.as_deref().expect("--copy without --stream");
                stream_gen::write_copy(&stream_gen::records(&args.spec()), copy)?;
                out.info(&format!(
                    "wrote {} records to {}",
                    summary::thousands(args.records),
                    copy.display()
                ));
            }
        },
        JobCommand::Gen(GenCommand::MatchRate(args)) => {
            let report = gen::generate(&args.spec())?;
            out.info(&format!(
                "wrote {} views in {} files and a catalog of {} rows in {} files to {} ({} distinct pairs, {} in the catalog)",
                summary::thousands(report.events),
                report.views_files,
                summary::thousands(report.catalog_rows),
                report.catalog_files,
                args.out.display(),
                summary::thousands(report.pairs),
                summary::thousands(report.matched_pairs),
            ));
        }
        JobCommand::Gen(GenCommand::Rollup(args)) => {
            let started = std::time::Instant::now();
            let report = rollup_gen::generate(&args.spec())?;
            let share = |n: u64| 100.0 * n as f64 / report.records.max(1) as f64;
            out.info(&format!(
                "wrote {} events in {} files over {} hours to {} in {:.1}s ({:.1}% late, {:.1}% repeated sessions, {:.1}% direct)",
                summary::thousands(report.records),
                report.files,
                report.hours,
                args.out.display(),
                started.elapsed().as_secs_f64(),
                share(report.late),
                share(report.repeated),
                share(report.direct),
            ));
        }
    }
    Ok(ExitStatus::Success)
}

/// Runs the job on the chosen engine and prints the summary (stderr) and table (stdout).
pub fn run_match_rate(args: &MatchRateArgs, out: Printer) -> Result<(), CliError> {
    if args.engine == Engine::Spark {
        return Err(JobError::Usage(
            "--engine spark runs through the rendered Spark driver (emrship plan/submit); on this machine use --engine local".into(),
        ).into());
    }
    let report = engine::local::run(&args.job())?;
    out.info_text(&summary::render(&report, 10));
    print_report(&report, args.format, out)
}

/// Runs one of the Spark engine's task modes (stdin/stdout as `engine::spark` describes).
/// Its streams are the driver's protocol, not a user's terminal: a closed stdout there is an
/// error of the task, so only the final report goes through the printer.
pub fn run_mode(mode: MatchRateMode, out: Printer) -> Result<(), CliError> {
    let write_error = |e: std::io::Error| JobError::Other(format!("cannot write stdout: {e}"));
    match mode {
        MatchRateMode::ListInputs(args) => {
            let inputs = spark::list_task_inputs(&args.job())?;
            let mut stdout = std::io::stdout().lock();
            for input in inputs {
                writeln!(stdout, "{}", input.line()).map_err(write_error)?;
            }
            Ok(stdout.flush().map_err(write_error)?)
        }
        MatchRateMode::Map(map) => {
            let inputs = read_stdin_lines()?
                .iter()
                .map(|line| spark::TaskInput::parse(line))
                .collect::<Result<Vec<_>, _>>()?;
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            Ok(spark::map(
                &map.job.job(),
                map.buckets,
                &inputs,
                &mut stdout,
            )?)
        }
        MatchRateMode::Reduce(reduce) => {
            let staging = Location::parse(&reduce.staging)?;
            let mut stdin = std::io::BufReader::new(std::io::stdin().lock());
            let part = spark::reduce(
                &reduce.job.job(),
                reduce.bucket,
                reduce.buckets,
                &staging,
                &reduce.attempt,
                &mut stdin,
            )?;
            let mut stdout = std::io::stdout().lock();
            Ok(writeln!(stdout, "{}", part.to_line()).map_err(write_error)?)
        }
        MatchRateMode::Finalize(finalize) => {
            let staging = Location::parse(&finalize.staging)?;
            let parts = read_stdin_lines()?
                .iter()
                .map(|line| spark::StagedPart::parse(line))
                .collect::<Result<Vec<_>, _>>()?;
            let report = spark::finalize(&finalize.job.job(), finalize.buckets, &staging, &parts)?;
            out.info_text(&summary::render(&report, 10));
            print_report(&report, finalize.job.format, out)
        }
        MatchRateMode::Clean(clean) => Ok(spark::clean_staging(&Location::parse(&clean.staging)?)?),
    }
}

impl RollupArgs {
    /// The Spark bucket count a task mode was given (`--buckets`, passed by the driver).
    fn spark_buckets(&self) -> Result<u32, JobError> {
        let buckets = self.buckets.ok_or_else(|| {
            JobError::Usage(
                "the rollup's map, reduce and finalize modes need --buckets (the driver passes it)"
                    .into(),
            )
        })?;
        u32::try_from(buckets)
            .map_err(|_| JobError::Usage(format!("--buckets {buckets}: at most {}", u32::MAX)))
    }
}

/// Runs one of the rollup's Spark task modes (stdin/stdout as `rollup::spark` describes).
pub fn run_rollup_mode(mode: RollupMode, out: Printer) -> Result<(), CliError> {
    let write_error = |e: std::io::Error| JobError::Other(format!("cannot write stdout: {e}"));
    match mode {
        RollupMode::ListInputs(args) => {
            let files = rollup::spark::list_files(&args.job()?)?;
            let mut stdout = std::io::stdout().lock();
            for file in files {
                writeln!(stdout, "{file}").map_err(write_error)?;
            }
            Ok(stdout.flush().map_err(write_error)?)
        }
        RollupMode::Map(args) => {
            let (job, buckets) = (args.job()?, args.spark_buckets()?);
            let files = read_stdin_lines()?;
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            rollup::spark::map(&job, buckets, &files, &mut stdout)?;
            Ok(())
        }
        RollupMode::Reduce(reduce) => {
            reduce.job.job()?;
            let staging = Location::parse(&reduce.staging)?;
            let mut stdin = std::io::BufReader::new(std::io::stdin().lock());
            let part = rollup::spark::reduce(
                reduce.bucket,
                reduce.job.spark_buckets()?,
                &staging,
                &reduce.attempt,
                &mut stdin,
            )?;
            Ok(writeln!(std::io::stdout().lock(), "{}", part.to_line()).map_err(write_error)?)
        }
        RollupMode::Finalize(finalize) => {
            let (job, buckets) = (finalize.job.job()?, finalize.job.spark_buckets()?);
            let staging = Location::parse(&finalize.staging)?;
            let parts = read_stdin_lines()?
                .iter()
                .map(|line| rollup::spark::StagedBucket::parse(line))
                .collect::<Result<Vec<_>, _>>()?;
            let report = rollup::spark::finalize(&job, buckets, &staging, &parts)?;
            print_rollup_report(&report, finalize.job.format, out)
        }
        RollupMode::Clean(clean) => Ok(spark::clean_staging(&Location::parse(&clean.staging)?)?),
    }
}

/// stdin's non-empty lines.
fn read_stdin_lines() -> Result<Vec<String>, JobError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| JobError::Other(format!("cannot read stdin: {e}")))?;
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The run's data on stdout.
pub fn print_report(
    report: &engine::RunReport,
    format: Format,
    out: Printer,
) -> Result<(), CliError> {
    match format {
        Format::Text => out.data_text(&summary::rates_text(&report.advertiser_rates)),
        Format::Json => out.json(&summary::report_json(report)),
    }
}
