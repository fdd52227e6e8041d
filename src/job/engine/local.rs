//! The local engine: the whole job in this process, using every core.

use std::time::Instant;

use super::{default_threads, look_up_catalog, scan_views, MatchRateJob, RunReport};
use crate::job::location::list_inputs;
use crate::job::model::{JobError, MatchRateTables};
use crate::job::{catalog, sink};

/// Runs `job`: opens the sink and catalog first (so a wrong URL fails before any work), scans
/// the views, looks up the distinct pairs, and replaces the day in the sink.
pub fn run(job: &MatchRateJob) -> Result<RunReport, JobError> {
    let threads = job.threads.unwrap_or_else(default_threads).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("emrship-job-{i}"))
        .build()
        .map_err(|e| JobError::Other(format!("cannot start {threads} worker threads: {e}")))?;
    pool.install(|| run_on(job, threads))
}

fn run_on(job: &MatchRateJob, threads: usize) -> Result<RunReport, JobError> {
    let mut timings = Vec::new();
    let started = Instant::now();
    let mut phase = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<_>| {
        timings.push((name, phase.elapsed()));
        phase = Instant::now();
    };
    let mut sink = sink::open(&job.sink)?;
    let catalog = catalog::open(&job.catalog)?;
    let files = list_inputs(&job.views).map_err(|e| match e {
        JobError::Input { path, message } if path == job.views => {
            JobError::input(format!("views {path}"), message)
        }
        other => other,
    })?;
    lap("open", &mut timings);

    let (counts, scan) = scan_views(&files, job.day, threads)?;
    lap("scan", &mut timings);
    let mut matches = counts.into_product_matches();
    lap("sort", &mut timings);
    look_up_catalog(catalog.as_ref(), &mut matches)?;
    lap("catalog", &mut timings);
    let pairs = matches.len() as u64;
    let matched_pairs = matches.matched.iter().filter(|&&m| m).count() as u64;
    let tables = MatchRateTables::from_product_matches(job.day, matches);
    lap("reduce", &mut timings);
    let sink_report = sink.write_day(&tables)?;
    lap("sink", &mut timings);
    timings.push(("total", started.elapsed()));
    Ok(RunReport {
        day: job.day,
        scan,
        pairs,
        matched_pairs,
        advertiser_rates: tables.advertiser_rates,
        sink: sink_report,
        timings,
    })
}
