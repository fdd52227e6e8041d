//! `emrship run <spec> --local`: runs a spec's job on this machine with the arguments the
//! cluster step would get (`job.args`, `--date` included), through the same argument parser
//! as `emrship-job`, on the local engine, in this process.
//!
//! So that it works on a fresh machine without an AWS account: views or a catalog that are not
//! local (`s3://`, `dynamodb://`) and not overridden with `--views`/`--catalog` are replaced by
//! deterministic sample data generated once under `target/emrship/sample/<name>/<date>/`; a
//! sink that is not local (`postgres://`, `s3://`) and not overridden with `--sink` becomes
//! `sqlite://target/emrship/<name>.sqlite`. Each substitution is said on stderr.
//!
//! The rollup job ([`rollup`]) likewise: a remote `--input` becomes generated sample events
//! under `target/emrship/sample/<name>/<date>/events/`, a remote `--output` a directory under
//! `target/emrship/<name>/`.
//!
//! Without `--local`, `run <spec> --date D` launches that day's cluster on EMR behind the
//! run-key guard, as the scheduler does (`cli::emr::launch`).

use std::path::{Path, PathBuf};

use clap::Parser;

use super::plan::{load_plan, LoadedPlan};
use super::{CliError, CommandResult, ExitStatus, Printer, RunArgs};
use crate::job::cli::{print_report, Engine, MatchRateArgs};
use crate::job::engine;
use crate::job::gen::{self, GenFormat, GenSpec};
use crate::job::model::{Day, JobError};
use crate::job::summary;

/// The sample `run --local` generates when the spec's inputs are remote: small enough to
/// generate in about a second, big enough to show skew.
pub fn sample_spec(out: PathBuf, day: Day) -> GenSpec {
    GenSpec {
        events: 500_000,
        pairs: 100_000,
        advertisers: 40,
        catalog_size: 150_000,
        match_fraction: 0.8,
        out,
        day,
        seed: 1,
        files: Some(4),
        format: GenFormat::Parquet,
    }
}

fn is_remote_input(uri: &str) -> bool {
    uri.starts_with("s3://") || uri.starts_with("s3a://") || uri.starts_with("dynamodb://")
}

fn is_remote_sink(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("s3://")
}

/// The spec's `job.args` through the job's own parser, as `emrship-job <command>` reads them.
fn parse_spec_args<T: Parser>(command: &str, spec_args: &[String]) -> Result<T, JobError> {
    T::try_parse_from(std::iter::once(command.to_string()).chain(spec_args.iter().cloned()))
        .map_err(|e| JobError::Usage(format!("the spec's job.args do not parse: {e}")))
}

/// The job's arguments as `run --local` runs them, and what it said about substitutions.
pub fn local_arguments(
    spec_args: &[String],
    name: &str,
    args: &RunArgs,
) -> Result<(MatchRateArgs, Vec<String>), JobError> {
    let mut job: MatchRateArgs = parse_spec_args("match-rate", spec_args)?;
    let mut notes = Vec::new();
    job.engine = Engine::Local;
    job.threads = args.threads;
    job.format = args.stdout.format;
    if let Some(views) = &args.views {
        job.views = views.clone();
    }
    if let Some(catalog) = &args.catalog {
        job.catalog = catalog.clone();
    }
    let needs_sample = (args.views.is_none() && is_remote_input(&job.views))
        || (args.catalog.is_none() && is_remote_input(&job.catalog));
    if needs_sample {
        let dir = PathBuf::from(format!(
            "target/emrship/sample/{name}/{}",
            job.date.format("%Y-%m-%d")
        ));
        if !dir.join("_SUCCESS").exists() {
            gen::generate(&sample_spec(dir.clone(), job.date))?;
            notes.push(format!(
                "generated sample data in {} (the spec reads {} and {})",
                dir.display(),
                job.views,
                job.catalog
            ));
        } else {
            notes.push(format!(
                "using the sample data in {} (the spec reads {} and {})",
                dir.display(),
                job.views,
                job.catalog
            ));
        }
        if args.views.is_none() {
            job.views = dir.join("views").display().to_string();
        }
        if args.catalog.is_none() {
            job.catalog = dir.join("catalog").display().to_string();
        }
    }
    match &args.sink {
        Some(sink) => job.sink = sink.clone(),
        None if is_remote_sink(&job.sink) => {
            let path = Path::new("target/emrship").join(format!("{name}.sqlite"));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    JobError::Other(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            notes.push(format!(
                "writing to sqlite://{} instead of {} (give --sink to choose)",
                path.display(),
                job.sink
            ));
            job.sink = format!("sqlite://{}", path.display());
        }
        None => {}
    }
    Ok((job, notes))
}

pub fn run(args: RunArgs, out: Printer) -> CommandResult {
    if !args.local {
        return super::emr::run_day(args, out);
    }
    if args.dry_run {
        return Err(CliError::invalid(
            "--dry-run applies when launching on EMR (without --local)",
        ));
    }
    let loaded = load_plan(&args.spec, out)?;
    if loaded.job.job.app.is_some() {
        return super::run_app::run(loaded, out);
    }
    let LoadedPlan { job: plan, .. } = loaded;
    if plan.job.command == "rollup" {
        return rollup::run(&plan, &args, out);
    }
    if plan.job.command == "stream" {
        return stream::run(&plan, &args, out);
    }
    if plan.job.command != "match-rate" {
        return Err(CliError::failure(format!(
            "`{}` cannot run locally yet; emrship-job runs match-rate, rollup and stream",
            plan.job.command
        )));
    }
    let (job_args, notes) = local_arguments(&plan.job.args, &plan.name, &args)?;
    for note in notes {
        out.info(&format!("emrship run: {note}"));
    }
    out.info(&format!(
        "emrship run: {} --date {} --views {} --catalog {} --sink {} (local engine)",
        plan.job.command, job_args.date, job_args.views, job_args.catalog, job_args.sink
    ));
    let report = engine::local::run(&job_args.job())?;
    out.info_text(&summary::render(&report, 10));
    print_report(&report, job_args.format, out)?;
    Ok(ExitStatus::Success)
}

/// `emrship run` for the rollup job.
pub mod rollup {
    use std::path::PathBuf;

    use chrono::NaiveDateTime;

    use super::super::{CommandResult, ExitStatus, Printer, RunArgs};
    use super::{is_remote_input, parse_spec_args};
    use crate::job::cli::{print_rollup_report, Engine, RollupArgs};
    use crate::job::gen::GenFormat;
    use crate::job::model::{Day, JobError};
    use crate::job::rollup::gen::{self, RollupGenSpec};
    use crate::job::rollup::run_local;

    /// The sample a local run generates when the spec's input is remote: the day's first
    /// hours of three customers, late events included; about a second to generate.
    pub fn sample_spec(out: PathBuf, day: Day) -> RollupGenSpec {
        RollupGenSpec {
            records: 300_000,
            records_per_file: 50_000,
            files_per_hour: 2,
            customers: 3,
            urls: 2_000,
            seed: 1,
            start: NaiveDateTime::from(day),
            format: GenFormat::Parquet,
            out,
        }
    }

    /// The rollup's arguments as `run --local` runs them, and what it said about substitutions.
    pub fn local_arguments(
        spec_args: &[String],
        name: &str,
        day: Day,
        args: &RunArgs,
    ) -> Result<(RollupArgs, Vec<String>), JobError> {
        let mut job: RollupArgs = parse_spec_args("rollup", spec_args)?;
        let mut notes = Vec::new();
        job.engine = Engine::Local;
        job.threads = args.threads;
        job.format = args.stdout.format;
        let date = day.format("%Y-%m-%d");
        match &args.input {
            Some(input) => job.input = input.clone(),
            None if is_remote_input(&job.input) => {
                let dir = PathBuf::from(format!("target/emrship/sample/{name}/{date}/events"));
                if dir.join("_SUCCESS").exists() {
                    notes.push(format!(
                        "using the sample events in {} (the spec reads {})",
                        dir.display(),
                        job.input
                    ));
                } else {
                    gen::generate(&sample_spec(dir.clone(), day))?;
                    notes.push(format!(
                        "generated sample events in {} (the spec reads {})",
                        dir.display(),
                        job.input
                    ));
                }
                job.input = dir.display().to_string();
            }
            None => {}
        }
        match &args.output {
            Some(output) => job.output = output.clone(),
            None if is_remote_input(&job.output) => {
                let dir = format!("target/emrship/{name}/rollups/dt={date}");
                notes.push(format!(
                    "writing to {dir} instead of {} (give --output to choose)",
                    job.output
                ));
                job.output = dir;
            }
            None => {}
        }
        Ok((job, notes))
    }

    pub fn run(plan: &crate::spec::JobPlan, args: &RunArgs, out: Printer) -> CommandResult {
        let (job_args, notes) = local_arguments(&plan.job.args, &plan.name, plan.date, args)?;
        for note in notes {
            out.info(&format!("emrship run: {note}"));
        }
        out.info(&format!(
            "emrship run: rollup --input {} --output {} --granularity {} (local engine)",
            job_args.input, job_args.output, job_args.granularity
        ));
        let report = run_local(&job_args.job()?)?;
        print_rollup_report(&report, job_args.format, out)?;
        Ok(ExitStatus::Success)
    }
}

/// `emrship run` for the stream job: against a Kinesis emulator on this machine.
///
/// The worker needs Kinesis, DynamoDB (its leases) and S3 (its windows); `--local` means no AWS
/// account, so an endpoint override must name an emulator (`scripts/stream-emulator.sh` starts
/// moto and prints the variables). The stream and the output bucket are created there when
/// missing, and a stream this run created gets sample events of the plan's day first. The
/// worker then runs as a finite run: it stops once the shards are quiet, and every window is
/// final.
pub mod stream {
    use super::super::{CliError, CommandResult, ExitStatus, Printer, RunArgs};
    use super::parse_spec_args;
    use crate::job::cli::{Format, StreamArgs};
    use crate::job::stream::gen::{put, StreamGenSpec};
    use crate::job::stream::kinesis::{self, StreamRef};
    use crate::job::stream::{self as stream_job};

    /// Shards of a stream `run --local` creates, and the events it puts into it.
    const SAMPLE_SHARDS: i32 = 2;
    const SAMPLE_RECORDS: u64 = 20_000;

    pub fn run(plan: &crate::spec::JobPlan, args: &RunArgs, out: Printer) -> CommandResult {
        let mut job_args: StreamArgs = parse_spec_args("stream", &plan.job.args)?;
        let endpoint = args.aws.endpoint_url.clone().or_else(|| {
            ["AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        });
        let Some(endpoint) = endpoint else {
            return Err(CliError::invalid(
                "`run --local` of a stream job reads a Kinesis emulator, and no endpoint names one",
            )
            .with_hint(
                "start one with `eval \"$(scripts/stream-emulator.sh)\"` (moto on a loopback port), or pass --endpoint-url",
            ));
        };
        if let Some(url) = &args.aws.endpoint_url {
            // The worker's SDK clients and S3 store read the standard variable.
            std::env::set_var("AWS_ENDPOINT_URL", url);
        }
        if let Some(output) = &args.output {
            job_args.output = output.clone();
        }
        job_args.format = args.stdout.format;
        job_args.region = Some(
            job_args
                .region
                .clone()
                .unwrap_or_else(|| plan.region.clone()),
        );
        if job_args.stop_when_idle.is_none() {
            job_args.stop_when_idle = Some(2_000);
        }
        job_args.poll_interval = job_args.poll_interval.min(200);
        job_args.flush_interval = job_args.flush_interval.min(1_000);
        let stream_name = StreamRef::parse(&job_args.stream).name().to_string();
        let created = prepare_emulator(&job_args, &stream_name, plan, args)?;
        if created {
            let sample = StreamGenSpec {
                records: SAMPLE_RECORDS,
                seed: 1,
                start_ms: plan
                    .date
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight")
                    .and_utc()
                    .timestamp_millis(),
                span_ms: 3_600_000,
                customers: 5,
                urls: 200,
                sessions: 5_000,
                malformed_every: 1_000,
            };
            let report = put(&sample, &stream_name, job_args.region.as_deref(), 0, None)?;
            out.info(&format!(
                "emrship run: created stream {stream_name} ({SAMPLE_SHARDS} shards) at {endpoint} and put {} sample events of {} into it",
                report.records, plan.date
            ));
        }
        out.info(&format!(
            "emrship run: stream --stream {} --output {} --lease-table {} (one worker, stops when the shards are quiet)",
            job_args.stream, job_args.output, job_args.lease_table
        ));
        let report = stream_job::run(job_args.job()?)?;
        match job_args.format {
            Format::Text => out.data_text(&report.text())?,
            Format::Json => out.json(&report)?,
        }
        Ok(ExitStatus::Success)
    }

    /// Creates the stream and the output bucket on the emulator when missing.
    fn prepare_emulator(
        job_args: &StreamArgs,
        stream_name: &str,
        plan: &crate::spec::JobPlan,
        args: &RunArgs,
    ) -> Result<bool, CliError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::failure(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(async {
            let config = kinesis::sdk_config(job_args.region.as_deref()).await?;
            let created =
                kinesis::ensure_stream(&kinesis::client(&config), stream_name, SAMPLE_SHARDS)
                    .await?;
            if let Some(uri) = job_args.output.strip_prefix("s3://") {
                let bucket = uri.split('/').next().unwrap_or_default();
                let options = args.aws.options(Some(&plan.region));
                let s3 = crate::aws::s3::client(&crate::aws::sdk::load(&options).await, true);
                crate::aws::s3::ensure_bucket(&s3, bucket, options.region.as_deref())
                    .await
                    .map_err(|e| {
                        CliError::failure(format!(
                            "cannot create bucket {bucket} on the emulator: {e}"
                        ))
                    })?;
            }
            Ok::<bool, CliError>(created)
        })
    }
}
