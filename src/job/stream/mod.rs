//! `emrship-job stream`: page-view events from a Kinesis stream, aggregated per tumbling
//! window into the rollup's documents, written to S3 exactly once.
//!
//! - [`window`] decodes records and sums them per (window, customer, url) (pure);
//! - [`range`] is the output layout and the unit of exactly-once, a contiguous range of one
//!   shard's records (pure);
//! - [`seq`] compares sequence numbers as the big integers they are (pure);
//! - [`kinesis`], [`leases`] and [`store`] are the thin AWS edges: GetRecords and friends, the
//!   KCL-shaped lease table in DynamoDB, and create-only S3 writes;
//! - [`worker`] is the loop that ties them together; [`gen`] puts synthetic events.
//!
//! Exactly once, in short: a range is stored under a key made of its shard and first sequence
//! number with a create-only write, before its end is checkpointed; a range starts only right
//! after a checkpoint or after a range found already stored (which is adopted). So however a
//! worker dies, restarts or overlaps with another on a shard, the stored ranges partition each
//! shard's records, and a window's final object sums exactly the ranges indexed for it.

pub mod gen;
pub mod kinesis;
pub mod leases;
pub mod range;
pub mod seq;
pub mod store;
pub mod window;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use worker::{StartPosition, StopRule, StreamJob, StreamReport, Worker};

use crate::job::model::JobError;

/// Runs one worker to its stop on a runtime of its own; SIGTERM (YARN, `emrship down`, a step
/// cancel) and Ctrl-C stop it gracefully: open ranges are committed and leases given up.
pub fn run(job: StreamJob) -> Result<StreamReport, JobError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("emrship-stream")
        .enable_all()
        .build()
        .map_err(|e| JobError::Other(format!("cannot start the async runtime: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    runtime.block_on(async move {
        let signalled = stop.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("emrship-job: stream: stopping: committing open ranges, giving leases up");
            signalled.store(true, Ordering::Relaxed);
        });
        Worker::start(job, stop).await?.run().await
    })
}

/// `90s`, `5m`, `1h`, or milliseconds as `250ms`.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if let Some(ms) = text.trim().strip_suffix("ms") {
        return ms
            .parse::<i64>()
            .map_err(|_| format!("`{text}` is not a number of milliseconds"));
    }
    crate::spec::duration::parse_duration_seconds(text).map(|s| s as i64 * 1000)
}

/// What [`aggregate_file`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub records: u64,
    pub malformed: u64,
    pub late: u64,
    pub ranges: u64,
    pub windows: u64,
    /// Decoding, aggregating and serializing the ranges.
    pub aggregate_seconds: f64,
    /// Merging the ranges into the windows' documents and writing them.
    pub finalize_seconds: f64,
}

/// The worker's whole CPU path without Kinesis, on one thread: a file of records (one per
/// line, e.g. a Firehose backup of the stream) is cut into ranges of `range_records`, each
/// aggregated and serialized as a range object; as the watermark closes windows, each window's
/// documents are merged from the stored ranges that touch it and written to
/// `output/windows/<start>.jsonl`, as the worker finalizes them; the rest when the file ends
/// (a drain).
pub fn aggregate_file(
    input: &std::path::Path,
    output: &std::path::Path,
    spec: window::WindowSpec,
    range_records: usize,
) -> Result<FileReport, JobError> {
    use std::fmt::Write as _;
    use std::io::BufRead;

    let file = std::fs::File::open(input)
        .map_err(|e| JobError::input(input.display(), format!("cannot read: {e}")))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let dir = output.join("windows");
    std::fs::create_dir_all(&dir)
        .map_err(|e| JobError::Other(format!("cannot create {}: {e}", dir.display())))?;
    let started = std::time::Instant::now();
    let mut finalize_seconds = 0.0;
    // Stored ranges whose windows are not all final yet: (bytes, the windows they touch).
    let mut pending: Vec<(Vec<u8>, Vec<i64>)> = Vec::new();
    let mut finalized = std::collections::BTreeSet::new();
    let mut watermark = i64::MIN;
    let (mut records, mut malformed, mut late, mut ranges) = (0, 0, 0, 0u64);
    let mut line = Vec::new();
    let mut sequence = String::new();
    let mut number = 0usize;
    let mut eof = false;
    while !eof {
        let mut aggregate = window::RangeAggregate::new(spec, watermark, i64::MIN);
        let first = number + 1;
        while aggregate.records < range_records.max(1) as u64 {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| JobError::input(input.display(), format!("cannot read: {e}")))?;
            if read == 0 {
                eof = true;
                break;
            }
            let record = line.strip_suffix(b"\n").unwrap_or(&line);
            if record.is_empty() {
                continue;
            }
            number += 1;
            // The line number stands for the sequence number; one buffer, not one string per
            // record.
            sequence.clear();
            let _ = write!(sequence, "{number}");
            aggregate.add(&sequence, record);
        }
        if aggregate.is_empty() {
            break;
        }
        watermark = aggregate.watermark_ms;
        records += aggregate.records;
        malformed += aggregate.malformed;
        late += aggregate.late;
        ranges += 1;
        let (from, to) = (first.to_string(), number.to_string());
        let object = range::RangeObject::new("file", &from, &to, &mut aggregate);
        let windows = object.windows.iter().map(|w| w.start_ms).collect();
        pending.push((object.to_bytes(), windows));
        let clock = std::time::Instant::now();
        let drain = if eof { i64::MAX } else { watermark };
        finalize_closed(output, &spec, drain, &mut pending, &mut finalized)?;
        finalize_seconds += clock.elapsed().as_secs_f64();
    }
    let clock = std::time::Instant::now();
    finalize_closed(output, &spec, i64::MAX, &mut pending, &mut finalized)?;
    finalize_seconds += clock.elapsed().as_secs_f64();
    Ok(FileReport {
        records,
        malformed,
        late,
        ranges,
        windows: finalized.len() as u64,
        aggregate_seconds: started.elapsed().as_secs_f64() - finalize_seconds,
        finalize_seconds,
    })
}

/// Writes every window closed under `watermark` from the pending ranges that touch it, then
/// forgets the ranges whose windows are all final.
fn finalize_closed(
    output: &std::path::Path,
    spec: &window::WindowSpec,
    watermark: i64,
    pending: &mut Vec<(Vec<u8>, Vec<i64>)>,
    finalized: &mut std::collections::BTreeSet<i64>,
) -> Result<(), JobError> {
    let mut closing: Vec<i64> = pending
        .iter()
        .flat_map(|(_, windows)| windows.iter().copied())
        .filter(|&start| spec.is_closed(start, watermark) && !finalized.contains(&start))
        .collect();
    closing.sort_unstable();
    closing.dedup();
    for start in closing {
        let touching = pending
            .iter()
            .filter(|(_, windows)| windows.contains(&start))
            .map(|(bytes, _)| range::RangeObject::from_bytes(bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(JobError::Other)?;
        let path = output.join(range::window_key(start));
        std::fs::write(&path, range::window_documents(start, spec, &touching))
            .map_err(|e| JobError::Other(format!("cannot write {}: {e}", path.display())))?;
        finalized.insert(start);
    }
    pending.retain(|(_, windows)| windows.iter().any(|w| !finalized.contains(w)));
    Ok(())
}
