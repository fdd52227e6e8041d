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
    if plan.job.command != "match-rate" {
        return Err(CliError::failure(format!(
            "`{}` cannot run locally yet; emrship-job runs match-rate and rollup",
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
