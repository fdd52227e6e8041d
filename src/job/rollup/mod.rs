//! `emrship-job rollup`: the hourly page-view rollup. Per (customer, url, UTC hour floor of
//! `ts`): `page_views` (events), `visitors` (exact distinct `session_id`) and the referrer
//! counts, written as JSON Lines documents (see `output` for the format and the atomic commit).
//!
//! Structured as map → shuffle-by-bucket → reduce, as the Spark engine will run it:
//! - **map** (one task per Parquet row group or CSV/JSON file, in parallel on every core):
//!   rows → per-bucket pieces of (group, session) records plus per-group sums ([`kernel`]);
//! - **shuffle**: the pieces of bucket `b` from every task go to reduce `b` (in memory here);
//! - **reduce** (one task per non-empty bucket, in parallel): distinct sessions per group,
//!   the bucket's documents sorted by `_id`, one staged part file;
//! - **finalize**: the staged parts moved into place atomically, `_SUCCESS` last.
//!
//! Memory is ~20 bytes per event until its bucket is reduced (a `u32` group index and a `u128`
//! session), plus the dictionaries and one entry per group.
//!
//! [`gen`]: `emrship-job gen rollup`, the synthetic events (the benchmark's and tests' data).

pub mod gen;
pub mod input;
pub mod kernel;
pub mod output;
pub mod spark;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::json;

use self::input::{list_event_files, plan_file, read_input, MapInput};
use self::kernel::{
    counted_runs, distinct_sessions, BucketGroups, Dictionaries, GroupKey, GroupSessions,
    GroupedRows, LongIds, MapTask, Piece, Shuffle,
};
use self::output::{
    document_id, hour_iso, part_name, write_escaped_document, Document, DocumentStrings,
    OutputWriter, FOUR_DIGIT_YEAR_HOURS,
};
use super::engine::default_threads;
use super::model::JobError;
use super::summary::thousands;

/// Events per bucket the local engine aims for (about 32 MB of rows per reduce task).
const EVENTS_PER_BUCKET: u64 = 1_000_000;
const MAX_BUCKETS: u64 = 512;

/// One rollup run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupJob {
    pub input: String,
    pub output: String,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Reduce buckets; `None` sizes them from the input (about a million events each).
    pub buckets: Option<usize>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RollupReport {
    pub input: String,
    pub output: String,
    pub files: u64,
    pub map_tasks: u64,
    pub records: u64,
    pub documents: u64,
    pub parts: u64,
    pub buckets: u64,
    /// Sum of `visitors` over all documents.
    pub visitors: u64,
    /// Wall time of each phase, in order, then the total.
    pub timings: Vec<(&'static str, Duration)>,
}

impl RollupReport {
    /// The summary on stdout.
    pub fn text(&self) -> String {
        let mut out = format!(
            "rollup: {} records from {} files ({} map tasks) -> {} documents ({} visitors) in {} part files at {}\n",
            thousands(self.records),
            thousands(self.files),
            thousands(self.map_tasks),
            thousands(self.documents),
            thousands(self.visitors),
            thousands(self.parts),
            self.output,
        );
        let phases: Vec<String> = self
            .timings
            .iter()
            .map(|(name, d)| format!("{name} {:.2}s", d.as_secs_f64()))
            .collect();
        out.push_str(&format!("time: {}\n", phases.join(", ")));
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let timings: serde_json::Map<String, serde_json::Value> = self
            .timings
            .iter()
            .map(|(name, d)| (format!("{name}_seconds"), json!(d.as_secs_f64())))
            .collect();
        json!({
            "input": self.input,
            "output": self.output,
            "files": self.files,
            "map_tasks": self.map_tasks,
            "records": self.records,
            "documents": self.documents,
            "visitors": self.visitors,
            "parts": self.parts,
            "buckets": self.buckets,
            "timings": timings,
        })
    }
}

/// Runs `job` on the local engine: every core of this process.
pub fn run_local(job: &RollupJob) -> Result<RollupReport, JobError> {
    let threads = job.threads.unwrap_or_else(default_threads).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("emrship-rollup-{i}"))
        .build()
        .map_err(|e| JobError::Other(format!("cannot start {threads} worker threads: {e}")))?;
    pool.install(|| run_on(job, threads))
}

struct Clock {
    started: Instant,
    phase: Instant,
    timings: Vec<(&'static str, Duration)>,
}

impl Clock {
    fn lap(&mut self, name: &'static str) {
        self.timings.push((name, self.phase.elapsed()));
        self.phase = Instant::now();
    }
}

fn run_on(job: &RollupJob, threads: usize) -> Result<RollupReport, JobError> {
    let now = Instant::now();
    let mut clock = Clock {
        started: now,
        phase: now,
        timings: Vec::new(),
    };
    let writer = OutputWriter::open(&job.output)?;
    let files = list_event_files(&job.input).map_err(|e| match e {
        JobError::Input { path, message } if path == job.input => {
            JobError::input(format!("input {path}"), message)
        }
        other => other,
    })?;
    let inputs: Vec<MapInput> = files
        .par_iter()
        .map(plan_file)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    clock.lap("list");

    let estimated: u64 = inputs.iter().map(|i| i.rows_hint).sum();
    // About a million events per bucket, but enough buckets to keep every core busy in the
    // reduce once there is more than a little data.
    let by_size = estimated.div_ceil(EVENTS_PER_BUCKET);
    let by_cores = (threads as u64 * 4).min(estimated / 100_000);
    let buckets = job
        .buckets
        .unwrap_or_else(|| by_size.max(by_cores).clamp(1, MAX_BUCKETS) as usize)
        .max(1);
    let shuffle = Shuffle::new(buckets, estimated);
    eprintln!(
        "rollup: mapping {} files ({} tasks, ~{} events) into {buckets} buckets on {threads} threads",
        thousands(files.len() as u64),
        thousands(inputs.len() as u64),
        thousands(estimated),
    );
    let map = map_all(&inputs, &shuffle, threads)?;
    let records = map.rows;
    clock.lap("map");
    eprintln!("rollup: mapped {} events; reducing", thousands(records));

    let dictionaries = shuffle.finish();
    let result = reduce_all(&writer, &dictionaries, map);
    let (names, documents, visitors) = match result {
        Ok(done) => done,
        Err(e) => {
            writer.abort();
            return Err(e);
        }
    };
    clock.lap("reduce");
    writer.commit(&names)?;
    clock.lap("commit");
    let mut timings = clock.timings;
    timings.push(("total", clock.started.elapsed()));
    Ok(RollupReport {
        input: job.input.clone(),
        output: job.output.clone(),
        files: files.len() as u64,
        map_tasks: inputs.len() as u64,
        records,
        documents,
        parts: names.len() as u64,
        buckets: buckets as u64,
        visitors,
        timings,
    })
}

/// The map's pieces: by bucket, by partition of the bucket, one piece per map task.
pub type BucketPieces = Vec<Vec<Vec<Piece>>>;

/// What the map leaves for the reduce.
pub struct MapOutput {
    pub pieces: BucketPieces,
    /// Each map task's long session ids, by task number.
    pub long_ids: Vec<LongIds>,
    pub rows: u64,
}

/// Runs every map task on `threads` workers. The error reported is the one of the earliest
/// failing input, so it is deterministic.
fn map_all(inputs: &[MapInput], shuffle: &Shuffle, threads: usize) -> Result<MapOutput, JobError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, JobError)>> = Mutex::new(None);
    let workers = threads.clamp(1, inputs.len().max(1));
    type TaskOutput = (usize, Vec<Piece>, LongIds);
    let outputs: Vec<(Vec<TaskOutput>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done: Vec<TaskOutput> = Vec::new();
                    let mut rows = 0;
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(input) = inputs.get(i) else { break };
                        let mut task = MapTask::new(shuffle, i);
                        let result = read_input(input, &mut |columns| task.add(columns));
                        match result {
                            Ok(_) => {
                                rows += task.rows;
                                let (pieces, long_ids) = task.finish();
                                done.push((i, pieces, long_ids));
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                let mut slot = first_error.lock().expect("error slot");
                                if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                                    *slot = Some((i, e));
                                }
                                break;
                            }
                        }
                    }
                    (done, rows)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a map worker panicked"))
            .collect()
    });
    if let Some((_, error)) = first_error.into_inner().expect("error slot") {
        return Err(error);
    }
    let mut by_bucket: BucketPieces = (0..shuffle.buckets)
        .map(|_| {
            (0..shuffle.partitions_per_bucket)
                .map(|_| Vec::new())
                .collect()
        })
        .collect();
    let mut records = 0;
    let mut long_ids: Vec<LongIds> = (0..inputs.len()).map(|_| LongIds::new()).collect();
    for (tasks, rows) in outputs {
        records += rows;
        for (i, pieces, ids) in tasks {
            long_ids[i] = ids;
            for (partition, piece) in pieces.into_iter().enumerate() {
                if !piece.is_empty() {
                    let bucket = partition % shuffle.buckets;
                    by_bucket[bucket][partition / shuffle.buckets].push(piece);
                }
            }
        }
    }
    Ok(MapOutput {
        pieces: by_bucket,
        long_ids,
        rows: records,
    })
}

/// Reduces every non-empty bucket in parallel into a staged part; returns the part names,
/// documents and visitors written.
fn reduce_all(
    writer: &OutputWriter,
    dictionaries: &Dictionaries,
    map: MapOutput,
) -> Result<(Vec<String>, u64, u64), JobError> {
    let strings = DocumentStrings::new(dictionaries);
    let long_ids = &map.long_ids;
    let work: BucketPieces = map
        .pieces
        .into_iter()
        .filter(|partitions| partitions.iter().any(|p| !p.is_empty()))
        .collect();
    let names: Vec<String> = (0..work.len()).map(part_name).collect();
    let counts = work
        .into_par_iter()
        .zip(names.par_iter())
        .map_init(GroupedRows::default, |grouped, (pieces, name)| {
            writer.stage_with(name, |part| {
                reduce_bucket(&strings, pieces, long_ids, grouped, part)
            })
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    let documents = counts.iter().map(|c| c.0).sum();
    let visitors = counts.iter().map(|c| c.1).sum();
    Ok((names, documents, visitors))
}

/// One bucket's documents from its map pieces (by partition), grouped in `grouped`'s
/// buffers: a JSON Lines file sorted by `_id` written to `part`; returns the documents and
/// visitors written.
pub fn reduce_bucket(
    strings: &DocumentStrings,
    pieces: Vec<Vec<Piece>>,
    long_ids: &[LongIds],
    grouped: &mut GroupedRows,
    part: &mut dyn Write,
) -> std::io::Result<(u64, u64)> {
    grouped.group(pieces, |r| strings.referrers.rank[r as usize]);
    let keys = std::mem::take(&mut grouped.keys);
    let written = write_bucket(strings, &keys, part, |g, referrers| {
        let page_views = (grouped.starts[g + 1] - grouped.starts[g]) as u64;
        let (sessions, ranks) = grouped.take_group(g, long_ids);
        referrers.extend(counted_runs(ranks));
        (page_views, sessions.len() as u64)
    });
    grouped.keys = keys;
    written
}

/// One bucket's documents from groups merged from Spark frames (their sums and sessions).
pub fn reduce_merged(
    dictionaries: &Dictionaries,
    groups: BucketGroups,
    sessions: GroupSessions,
) -> (Vec<u8>, u64, u64) {
    let strings = DocumentStrings::new(dictionaries);
    let visitors = distinct_sessions(groups.keys.len(), sessions);
    let mut out = Vec::new();
    let (documents, visitors) = write_bucket(&strings, &groups.keys, &mut out, |g, referrers| {
        referrers.extend(
            groups.referrers[g]
                .iter()
                .map(|&(r, count)| (strings.referrers.rank[r as usize], count)),
        );
        referrers.sort_unstable();
        (groups.page_views[g], visitors[g])
    })
    .expect("writing to memory cannot fail");
    (out, documents, visitors)
}

/// Bytes of documents gathered before they go to the part in one write.
const WRITE_CHUNK: usize = 1 << 20;

/// Writes the documents of `keys` sorted by `_id` to `part`. `group(g, referrers)` gives
/// group `g`'s page views and visitors and appends its (referrer rank, count) pairs in rank
/// order; each group is asked once. Returns the documents and the visitors.
fn write_bucket(
    strings: &DocumentStrings,
    keys: &[GroupKey],
    part: &mut dyn Write,
    mut group: impl FnMut(usize, &mut Vec<(u32, u64)>) -> (u64, u64),
) -> std::io::Result<(u64, u64)> {
    let mut hours: hashbrown::HashMap<i64, String> = hashbrown::HashMap::new();
    for &(_, _, hour) in keys {
        hours.entry(hour).or_insert_with(|| hour_iso(hour));
    }
    let mut out = Vec::with_capacity(WRITE_CHUNK + (WRITE_CHUNK >> 2));
    let mut referrers: Vec<(u32, u64)> = Vec::new();
    let mut total_visitors = 0;
    for g in document_order(strings, keys, &hours) {
        let (customer, url, hour) = keys[g];
        referrers.clear();
        let (page_views, visitors) = group(g, &mut referrers);
        total_visitors += visitors;
        let names = &strings.referrers;
        write_escaped_document(
            &mut out,
            &Document {
                customer: &strings.customers.escaped[customer as usize],
                url: &strings.urls.escaped[url as usize],
                hour: &hours[&hour],
                freq: "1hour",
                page_views,
                visitors,
            },
            referrers.iter().map(|&(rank, count)| {
                (
                    &*names.escaped[names.by_rank[rank as usize] as usize],
                    count,
                )
            }),
        );
        if out.len() >= WRITE_CHUNK {
            part.write_all(&out)?;
            out.clear();
        }
    }
    part.write_all(&out)?;
    Ok((keys.len() as u64, total_visitors))
}

/// The groups in `_id` order: by (url rank, customer rank, hour) when that is the same order
/// ([`DocumentStrings`]), else by the ids themselves.
fn document_order(
    strings: &DocumentStrings,
    keys: &[GroupKey],
    hours: &hashbrown::HashMap<i64, String>,
) -> Vec<usize> {
    if strings.ranks_order_ids && hours.keys().all(|h| FOUR_DIGIT_YEAR_HOURS.contains(h)) {
        let first_hour = *FOUR_DIGIT_YEAR_HOURS.start();
        let mut packed: Vec<u128> = keys
            .iter()
            .enumerate()
            .map(|(g, &(customer, url, hour))| {
                let url = u128::from(strings.urls.rank[url as usize]);
                let customer = u128::from(strings.customers.rank[customer as usize]);
                let hour = (hour - first_hour) as u128;
                url << 96 | customer << 64 | hour << 32 | g as u128
            })
            .collect();
        packed.sort_unstable();
        return packed.iter().map(|&p| p as u32 as usize).collect();
    }
    let mut ids: Vec<(String, usize)> = keys
        .iter()
        .enumerate()
        .map(|(g, &(customer, url, hour))| {
            (
                document_id(
                    &strings.dictionaries.urls[url as usize],
                    &strings.dictionaries.customers[customer as usize],
                    &hours[&hour],
                ),
                g,
            )
        })
        .collect();
    ids.sort_unstable();
    ids.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order `document_order` gives, as the `_id`s of every (customer, url, hour) in
    /// reverse, and whether the ranks gave it.
    fn ids_in_order(customers: &[&str], urls: &[&str], hours: &[i64]) -> (Vec<String>, bool) {
        let strings = |values: &[&str]| values.iter().map(|&v| v.into()).collect();
        let dictionaries = Dictionaries {
            customers: strings(customers),
            urls: strings(urls),
            referrers: Vec::new(),
        };
        let document_strings = DocumentStrings::new(&dictionaries);
        let mut keys: Vec<GroupKey> = Vec::new();
        for c in 0..customers.len() as u32 {
            for u in 0..urls.len() as u32 {
                for &h in hours {
                    keys.push((c, u, h));
                }
            }
        }
        keys.reverse();
        let texts: hashbrown::HashMap<i64, String> =
            hours.iter().map(|&h| (h, hour_iso(h))).collect();
        let ids = document_order(&document_strings, &keys, &texts)
            .into_iter()
            .map(|g| {
                let (c, u, h) = keys[g];
                document_id(urls[u as usize], customers[c as usize], &texts[&h])
            })
            .collect();
        let ranked = document_strings.ranks_order_ids
            && hours.iter().all(|h| FOUR_DIGIT_YEAR_HOURS.contains(h));
        (ids, ranked)
    }

    fn is_sorted(ids: &[String]) -> bool {
        ids.windows(2).all(|w| w[0] < w[1])
    }

    /// Ranks order documents as their `_id`s do: a url (or customer) that is a prefix of
    /// another sorts by the next byte against `|` (`!` before it, `~` after), and hours
    /// across the epoch and up to year 9999. A `|` in a url or an hour past 9999 falls back
    /// to sorting the ids themselves.
    #[test]
    fn documents_come_in_id_order() {
        let urls = [
            "https://x/a",
            "https://x/a!",
            "https://x/a/b",
            "https://x/a~",
            "https://x/",
        ];
        let customers = ["c", "c!", "c~", "c2", "b"];
        let hours = [-1, 0, 498_653, *FOUR_DIGIT_YEAR_HOURS.end()];
        let (ids, ranked) = ids_in_order(&customers, &urls, &hours);
        assert!(ranked && is_sorted(&ids), "{ids:#?}");

        let (ids, ranked) = ids_in_order(&customers, &["https://x/a", "https://x/a|b"], &hours);
        assert!(!ranked && is_sorted(&ids), "{ids:#?}");

        let past = [0, *FOUR_DIGIT_YEAR_HOURS.end() + 1];
        let (ids, ranked) = ids_in_order(&customers, &urls, &past);
        assert!(!ranked && is_sorted(&ids), "{ids:#?}");
    }
}
