//! The local engine: the whole job in this process, using every core.

use super::{
    default_threads, look_up_catalog, reduce_and_write, scan_views, MatchRateJob, PhaseClock,
    RunReport,
};
use crate::job::location::list_inputs;
use crate::job::model::JobError;
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
    let mut clock = PhaseClock::start();
    let mut sink = sink::open(&job.sink)?;
    let catalog = catalog::open(&job.catalog)?;
    let files = list_inputs(&job.views).map_err(|e| match e {
        JobError::Input { path, message } if path == job.views => {
            JobError::input(format!("views {path}"), message)
        }
        other => other,
    })?;
    clock.lap("open");

    let (counts, scan) = scan_views(&files, job.day, threads)?;
    clock.lap("scan");
    let matches = match catalog.mark_counts(&counts) {
        // Files: the catalog probes the scan's own table, then the sorted rows carry the marks.
        Some(marks) => {
            let marks = marks?;
            clock.lap("catalog");
            let matches = counts.into_product_matches_marked(&marks);
            clock.lap("sort");
            matches
        }
        // A key-value catalog (DynamoDB) answers the sorted list of distinct pairs.
        None => {
            let mut matches = counts.into_product_matches();
            clock.lap("sort");
            look_up_catalog(catalog.as_ref(), &mut matches)?;
            clock.lap("catalog");
            matches
        }
    };
    let report = reduce_and_write(job.day, scan, matches, sink.as_mut(), &mut clock)?;
    Ok(clock.finish(report))
}
