//! Engines run the match-rate job: `local` in this process on every core; `spark` fans the
//! same kernels out over Spark executors (through the rendered driver).
//!
//! The pieces here are shared by both: scanning files into [`PairCounts`], the catalog lookup
//! of the distinct pairs, and the report of a run.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::counts::PairCounts;
use super::location::Location;
use super::model::{
    AdvertiserRate, Catalog, Day, DaySink, JobError, MatchRateTables, PairRef, ProductMatches,
    ScanStats, SinkReport,
};
use super::source::{plan_file, scan_unit, ScanOptions, ScanUnit};

pub mod local;
pub mod spark;

/// One day's match-rate run: where the views, catalog and results are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRateJob {
    pub day: Day,
    pub views: String,
    pub catalog: String,
    pub sink: String,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
}

/// What a run did, for the summary and `--format json`.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub day: Day,
    pub scan: ScanStats,
    /// Distinct (advertiser, product) pairs viewed.
    pub pairs: u64,
    /// Of those, found in the catalog.
    pub matched_pairs: u64,
    pub advertiser_rates: Vec<AdvertiserRate>,
    pub sink: SinkReport,
    /// Wall time of each phase, in order.
    pub timings: Vec<(&'static str, Duration)>,
}

/// Wall time of each phase of a run, in order, for the report.
pub(crate) struct PhaseClock {
    started: Instant,
    phase: Instant,
    timings: Vec<(&'static str, Duration)>,
}

impl PhaseClock {
    pub(crate) fn start() -> PhaseClock {
        let now = Instant::now();
        PhaseClock {
            started: now,
            phase: now,
            timings: Vec::new(),
        }
    }

    /// Ends the current phase under `name` and starts the next.
    pub(crate) fn lap(&mut self, name: &'static str) {
        self.timings.push((name, self.phase.elapsed()));
        self.phase = Instant::now();
    }

    /// The report with every phase and the total.
    pub(crate) fn finish(mut self, mut report: RunReport) -> RunReport {
        self.timings.push(("total", self.started.elapsed()));
        report.timings = self.timings;
        report
    }
}

/// The common end of both engines once `product_matches` is complete: the per-advertiser
/// reduce, then the day replaced in the sink. Timings are left to the caller's clock.
pub(crate) fn reduce_and_write(
    day: Day,
    scan: ScanStats,
    matches: ProductMatches,
    sink: &mut dyn DaySink,
    clock: &mut PhaseClock,
) -> Result<RunReport, JobError> {
    let pairs = matches.len() as u64;
    let matched_pairs = matches.matched.iter().filter(|&&m| m).count() as u64;
    let tables = MatchRateTables::from_product_matches(day, matches);
    clock.lap("reduce");
    let sink_report = sink.write_day(&tables)?;
    clock.lap("sink");
    Ok(RunReport {
        day,
        scan,
        pairs,
        matched_pairs,
        advertiser_rates: tables.advertiser_rates,
        sink: sink_report,
        timings: Vec::new(),
    })
}

/// Scans `files` for the views of `day` with `threads` workers, each counting into its own
/// table; the tables are merged shard-parallel at the end.
pub fn scan_views(
    files: &[Location],
    day: Day,
    threads: usize,
) -> Result<(PairCounts, ScanStats), JobError> {
    let options = ScanOptions {
        day: Some(day),
        role: "views",
    };
    let units: Vec<ScanUnit> = files
        .par_iter()
        .map(|file| plan_file(file, options))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, JobError)>> = Mutex::new(None);
    let workers = threads.clamp(1, units.len().max(1));
    let results: Vec<(PairCounts, ScanStats)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut counts = PairCounts::new();
                    let mut stats = ScanStats::default();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(unit) = units.get(i) else { break };
                        if let Err(e) = scan_unit(unit, options, &mut counts, &mut stats) {
                            failed.store(true, Ordering::Relaxed);
                            let mut slot = first_error.lock().expect("error slot");
                            // Report the error of the earliest unit, so it is deterministic.
                            if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                                *slot = Some((i, e));
                            }
                            break;
                        }
                    }
                    (counts, stats)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scan worker panicked"))
            .collect()
    });
    if let Some((_, error)) = first_error.into_inner().expect("error slot") {
        return Err(error);
    }
    let mut stats = ScanStats::default();
    let mut tables = Vec::with_capacity(results.len());
    for (counts, s) in results {
        stats.merge(&s);
        tables.push(counts);
    }
    Ok((PairCounts::merge_all(tables), stats))
}

/// Fills `matched` by looking up every distinct pair of `matches` in the catalog at once.
pub fn look_up_catalog(
    catalog: &(dyn Catalog + Send + Sync),
    matches: &mut ProductMatches,
) -> Result<(), JobError> {
    let hits = {
        let keys: Vec<PairRef<'_>> = (0..matches.len())
            .into_par_iter()
            .map(|i| {
                (
                    matches.advertisers[matches.advertiser[i] as usize].as_str(),
                    matches.product_id.get(i),
                )
            })
            .collect();
        catalog.contains_all(&keys)?
    };
    if hits.len() != matches.len() {
        return Err(JobError::Other(format!(
            "the catalog answered {} lookups for {} keys",
            hits.len(),
            matches.len()
        )));
    }
    matches.matched = hits;
    Ok(())
}

/// Every core of this machine.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
