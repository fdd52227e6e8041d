//! `emrship run <spec> --date D` (without `--local`) and `emrship backfill <spec> --from D1
//! --to D2`: launch days' transient clusters behind the run-key guard, as the scheduler Lambda
//! does (`aws::launch::launch_guarded`, shared by all three).
//!
//! Every day's plan is loaded before any AWS call (a spec error exits 2 having sent nothing), and
//! the uploads the requests point at are checked in S3 once, so a cluster is never paid for that
//! would fail in its bootstrap action.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::watch::{self, Backoff, Jitter};
use super::{check_uploads, Session};
use crate::aws::launch::{launch_guarded, Decision, Launch, LaunchError};
use crate::cli::plan::{load_plan, LoadedPlan};
use crate::cli::preflight::refuse_pending;
use crate::cli::{
    block_on, AwsArgs, BackfillArgs, CliError, CommandResult, ExitStatus, OutputFormat, Printer,
    RunArgs, SpecArgs,
};
use crate::render::artifacts::Upload;

/// More days than this is more likely a typo in --from/--to than a backfill.
const MAX_BACKFILL_DAYS: i64 = 366;

/// One line of text for a day's outcome.
fn outcome_text(launch: &Launch) -> String {
    let mut line = match launch.decision {
        Decision::Launched => format!("{}  launched {}", launch.date, launch.cluster_id),
        Decision::AlreadyActive => format!(
            "{}  skipped: already active ({} {})",
            launch.date,
            launch.cluster_id,
            launch.state.as_deref().unwrap_or("")
        ),
        Decision::AlreadyCompleted => format!(
            "{}  skipped: already completed ({})",
            launch.date, launch.cluster_id
        ),
    };
    if !launch.previous_attempts.is_empty() {
        line.push_str(&format!(
            " (a re-run: {} ended without completing)",
            launch.previous_attempts.join(", ")
        ));
    }
    if let Some(duplicate) = &launch.terminated_duplicate {
        line.push_str(&format!(
            " (another launch started it first; terminated our duplicate {duplicate})"
        ));
    }
    line
}

fn outcome_json(launch: &Launch) -> Value {
    let mut value = json!({
        "date": launch.date,
        "run_key": launch.run_key,
        "outcome": launch.decision,
        "cluster_id": launch.cluster_id,
    });
    if let Some(state) = &launch.state {
        value["state"] = json!(state);
    }
    if !launch.previous_attempts.is_empty() {
        value["previous_attempts"] = json!(launch.previous_attempts);
    }
    if let Some(duplicate) = &launch.terminated_duplicate {
        value["terminated_duplicate"] = json!(duplicate);
    }
    value
}

/// The distinct uploads of several days' plans (the bundle and scripts are the same every day).
fn distinct_uploads<'a>(plans: impl Iterator<Item = &'a LoadedPlan>) -> Vec<Upload> {
    let mut by_uri = BTreeMap::new();
    for loaded in plans {
        for upload in &loaded.plan.uploads {
            by_uri
                .entry(upload.s3_uri.to_string())
                .or_insert_with(|| upload.clone());
        }
    }
    by_uri.into_values().collect()
}

// ---------------------------------------------------------------------------------------------
// run --date

pub fn run_day(args: RunArgs, out: Printer) -> CommandResult {
    let local_only = [
        ("--sink", args.sink.is_some()),
        ("--views", args.views.is_some()),
        ("--catalog", args.catalog.is_some()),
        ("--threads", args.threads.is_some()),
    ];
    if let Some((flag, _)) = local_only.iter().find(|(_, given)| *given) {
        return Err(
            CliError::invalid(format!("{flag} applies to a local run only")).with_hint(format!(
                "add --local, or drop {flag} to launch the day on EMR"
            )),
        );
    }
    let loaded = load_plan(&args.spec, out)?;
    let spec_hint = args.spec.spec.display().to_string();
    refuse_pending(&loaded.plan, &spec_hint, args.dry_run, out)?;
    if args.dry_run {
        let run_key = loaded.job.run_key();
        let would = json!({
            "dry_run": true,
            "run_key": run_key,
            "guard": guard_text(&run_key),
            "run_job_flow": loaded.plan.run_job_flow,
        });
        out.result(
            args.stdout.format,
            &would,
            &format!(
                "Would {}; otherwise RunJobFlow:\n{}",
                guard_text(&run_key),
                super::pretty(&loaded.plan.run_job_flow)
            ),
        )?;
        return Ok(ExitStatus::Success);
    }
    block_on(run_day_async(args.aws, args.stdout.format, loaded, out))
}

fn guard_text(run_key: &str) -> String {
    format!(
        "launch nothing if a cluster tagged {}={run_key} is active or completed",
        crate::render::run_job_flow::RUN_KEY_TAG
    )
}

async fn run_day_async(
    aws: AwsArgs,
    format: OutputFormat,
    loaded: LoadedPlan,
    out: Printer,
) -> CommandResult {
    let session = Session::connect(&aws, Some(&loaded.job.region), out).await?;
    check_uploads(&session, &loaded.plan.uploads).await?;
    let launch = launch_guarded(&session.emr, &loaded.job, &loaded.plan).await?;
    out.result(format, &outcome_json(&launch), &outcome_text(&launch))?;
    Ok(ExitStatus::Success)
}

// ---------------------------------------------------------------------------------------------
// backfill

pub fn backfill(args: BackfillArgs, out: Printer) -> CommandResult {
    let days = (args.to - args.from).num_days() + 1;
    if days < 1 {
        return Err(CliError::invalid(format!(
            "--from {} is after --to {}",
            args.from, args.to
        )));
    }
    if days > MAX_BACKFILL_DAYS {
        return Err(CliError::invalid(format!(
            "{days} days from {} to {} is more than {MAX_BACKFILL_DAYS}",
            args.from, args.to
        ))
        .with_hint("split the range"));
    }
    let poll = watch::parse_wait_duration(&args.poll)
        .map_err(|e| CliError::invalid(format!("--poll: {e}")))?
        .max(Duration::from_millis(50));
    let mut plans = Vec::new();
    for date in args.from.iter_days().take(days as usize) {
        let spec = SpecArgs {
            spec: args.spec.clone(),
            layers: args.layers.clone(),
            date: Some(date),
        };
        plans.push((date, load_plan(&spec, out)?));
    }
    if let Some((_, loaded)) = plans.first() {
        let spec_hint = args.spec.display().to_string();
        refuse_pending(&loaded.plan, &spec_hint, args.dry_run, out)?;
    }
    if args.dry_run {
        let would: Vec<Value> = plans
            .iter()
            .map(|(date, loaded)| {
                json!({
                    "date": date.format("%Y-%m-%d").to_string(),
                    "run_key": loaded.job.run_key(),
                    "run_job_flow": loaded.plan.run_job_flow,
                })
            })
            .collect();
        match args.stdout.format {
            OutputFormat::Json => out.json(&json!({
                "dry_run": true,
                "max_parallel": args.max_parallel,
                "guard": "each day: launch nothing if a cluster tagged with its run key is active or completed",
                "days": would,
            }))?,
            OutputFormat::Text => {
                out.data(&format!(
                    "Would launch, for each day with no active or completed cluster for its run \
                     key, at most {} at once:",
                    args.max_parallel
                ))?;
                for day in &would {
                    out.data(&format!(
                        "\n{} (run key {}): RunJobFlow\n{}",
                        day["date"].as_str().unwrap_or_default(),
                        day["run_key"].as_str().unwrap_or_default(),
                        super::pretty(&day["run_job_flow"])
                    ))?;
                }
            }
        }
        return Ok(ExitStatus::Success);
    }
    block_on(backfill_async(args, plans, poll, out))
}

/// One day's result: the launch, or why it failed.
enum DayResult {
    Done(Launch),
    Failed {
        date: NaiveDate,
        run_key: String,
        why: LaunchError,
    },
}

async fn backfill_async(
    args: BackfillArgs,
    plans: Vec<(NaiveDate, LoadedPlan)>,
    poll: Duration,
    out: Printer,
) -> CommandResult {
    let region = plans.first().map(|(_, p)| p.job.region.clone());
    let session = Session::connect(&args.aws, region.as_deref(), out).await?;
    check_uploads(&session, &distinct_uploads(plans.iter().map(|(_, p)| p))).await?;
    let max_parallel = args.max_parallel as usize;
    // Clusters this backfill launched that may still be running.
    let mut running: Vec<String> = Vec::new();
    let mut results = Vec::new();
    let mut jitter = Jitter::new(std::process::id() as u64);
    for (date, loaded) in &plans {
        wait_for_slot(&session, &mut running, max_parallel, poll, &mut jitter).await?;
        let result = match launch_guarded(&session.emr, &loaded.job, &loaded.plan).await {
            Ok(launch) => {
                if launch.decision == Decision::Launched {
                    running.push(launch.cluster_id.clone());
                }
                out.info(&outcome_text(&launch));
                DayResult::Done(launch)
            }
            Err(why) => {
                out.info(&format!("{date}  failed: {}", why.with_hint()));
                DayResult::Failed {
                    date: *date,
                    run_key: loaded.job.run_key(),
                    why,
                }
            }
        };
        results.push(result);
    }
    let failed = results
        .iter()
        .filter(|r| matches!(r, DayResult::Failed { .. }))
        .count();
    let count = |decision| {
        results
            .iter()
            .filter(|r| matches!(r, DayResult::Done(l) if l.decision == decision))
            .count()
    };
    let (launched, active, completed) = (
        count(Decision::Launched),
        count(Decision::AlreadyActive),
        count(Decision::AlreadyCompleted),
    );
    match args.stdout.format {
        OutputFormat::Json => {
            let days: Vec<Value> = results
                .iter()
                .map(|r| match r {
                    DayResult::Done(launch) => outcome_json(launch),
                    DayResult::Failed { date, run_key, why } => json!({
                        "date": date.format("%Y-%m-%d").to_string(),
                        "run_key": run_key,
                        "outcome": "failed",
                        "error": why.with_hint(),
                        "retryable": why.is_transient(),
                    }),
                })
                .collect();
            out.json(&json!({
                "launched": launched,
                "already_active": active,
                "already_completed": completed,
                "failed": failed,
                "days": days,
            }))?;
        }
        OutputFormat::Text => {
            for result in &results {
                match result {
                    DayResult::Done(launch) => out.data(&outcome_text(launch))?,
                    DayResult::Failed { date, why, .. } => out.data(&format!(
                        "{date}  failed: {}",
                        why.with_hint().replace('\n', " ")
                    ))?,
                }
            }
            out.data(&format!(
                "{launched} launched, {active} already active, {completed} already completed, {failed} failed"
            ))?;
        }
    }
    if failed > 0 {
        Err(CliError::failure(format!(
            "{failed} day(s) failed; their errors are above"
        )))
    } else {
        Ok(ExitStatus::Success)
    }
}

/// Waits until fewer than `max_parallel` of the clusters in `running` are active, polling
/// ListClusters with backoff; clusters that ended leave `running`.
async fn wait_for_slot(
    session: &Session,
    running: &mut Vec<String>,
    max_parallel: usize,
    poll: Duration,
    jitter: &mut Jitter,
) -> Result<(), CliError> {
    let mut backoff = Backoff::new(poll);
    let mut said = false;
    while running.len() >= max_parallel {
        let active = match session.emr.active_clusters().await {
            Ok(active) => active,
            Err(e) if e.transient => {
                tokio::time::sleep(backoff.throttled(jitter.next())).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let before = running.len();
        running.retain(|id| active.iter().any(|c| &c.id == id));
        if running.len() < max_parallel {
            break;
        }
        if !said {
            session.out.info(&format!(
                "waiting for one of {} to end (--max-parallel {max_parallel})",
                running.join(", ")
            ));
            said = true;
        }
        tokio::time::sleep(backoff.next(running.len() != before, jitter.next())).await;
    }
    Ok(())
}
