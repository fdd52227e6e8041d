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
