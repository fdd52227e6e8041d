//! One stream worker: takes shard leases, reads its shards, commits ranges, finalizes windows.
//!
//! The loop, one round at a time:
//! 1. **Leases** (every failover/3): scan the table; renew what it holds (a failed renew drops
//!    the shard and its unwritten range); sync shards with ListShards when due, creating a
//!    lease for a shard once all its parents are at `SHARD_END`; take expired or unowned
//!    leases up to its fair share (⌈leases / workers⌉), else steal one from the busiest worker.
//! 2. **Reads**: every held shard whose poll is due gets one GetRecords (at most one call per
//!    shard per `poll_interval`, within the 5 reads/s limit); throttling backs off (doubling up
//!    to 10 s), an expired iterator is re-sought after the last record read, a closed shard
//!    (no next iterator) is flushed and checkpointed `SHARD_END`.
//! 3. **Commits**: a range is cut when it has `flush_records` records, is `flush_interval` old,
//!    or its shard ended: created once at `ranges/shard=S/from=F.json` (see `range`); markers
//!    and dead letters follow; then the checkpoint. Finding the key taken (another worker, or
//!    this one before a crash) means that range is adopted: its end becomes the checkpoint and
//!    reading resumes after it, so no record is counted twice.
//! 4. **Idle shards** (on a cluster, [`StopRule::Never`]): caught up with nothing open, they
//!    raise their floor to the wall clock (saved as `idleWatermark`), so windows close when
//!    traffic stops. A run that stops when idle treats the stream as a finite input instead:
//!    no wall clock (its records may be old), and on stopping it drains its shards (floor = the
//!    largest number), which closes every window they touch.
//! 5. **Windows**: a window is final once every unfinished lease's watermark (event time, or
//!    the floor) is past its end plus the lateness ([`closing_watermark`]: an ended shard counts
//!    until a child lease names it); its documents are then created once at
//!    `windows/<start>.jsonl`. Children inherit their parents' event watermark, never the
//!    floor: a child's backlog can be older than the wall clock.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use super::kinesis::{self, Page, PollError, StartAt, StreamRef};
use super::leases::{
    closing_watermark, Lease, LeaseError, LeaseTable, AT_TIMESTAMP, SHARD_END, TRIM_HORIZON,
};
use super::range::{
    dead_letter_key, index_key, index_prefix, parse_window_name, range_key, window_documents,
    window_key, RangeObject,
};
use super::seq::SequenceNumber;
use super::store::{Created, OutputStore};
use super::window::{RangeAggregate, WindowSpec};
use crate::job::model::JobError;

/// Where a new stream's shards are first read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still kept.
    TrimHorizon,
    /// Records put after the lease is created (saved as `AT_TIMESTAMP` of that moment, so that
    /// every worker starts at the same record).
    Latest,
}

/// When a worker stops by itself (it always stops on SIGTERM or Ctrl-C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRule {
    /// Run until told to stop: the cluster's mode.
    Never,
    /// Stop once every shard it holds has been caught up and quiet this long and no window it
    /// could finalize is left: `run --local`, tests and backfills.
    WhenIdle(Duration),
}

#[derive(Debug, Clone)]
pub struct StreamJob {
    pub stream: String,
    pub output: String,
    pub lease_table: String,
    pub region: Option<String>,
    pub window: WindowSpec,
    pub position: StartPosition,
    pub worker_id: String,
    pub failover: Duration,
    pub poll_interval: Duration,
    pub flush_interval: Duration,
    pub flush_records: u64,
    /// GetRecords' `Limit` (at most 10,000).
    pub records_per_call: i32,
    pub shard_sync_interval: Duration,
    pub stop: StopRule,
}

/// What a worker did, printed when it stops.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    pub worker: String,
    pub records: u64,
    pub malformed: u64,
    pub late: u64,
    pub ranges_written: u64,
    pub ranges_adopted: u64,
    pub windows_finalized: u64,
    pub throttled: u64,
    pub expired_iterators: u64,
    pub shards_ended: u64,
    pub leases_taken: u64,
    pub leases_lost: u64,
    pub seconds: f64,
}

impl StreamReport {
    pub fn text(&self) -> String {
        format!(
            "stream: worker {} read {} records ({} malformed, {} late: kept aside) in {:.1} s; {} ranges written, {} adopted; {} windows finalized; {} leases taken, {} lost; {} shards ended; {} throttled reads, {} expired iterators\n",
            self.worker,
            self.records,
            self.malformed,
            self.late,
            self.seconds,
            self.ranges_written,
            self.ranges_adopted,
            self.windows_finalized,
            self.leases_taken,
            self.leases_lost,
            self.shards_ended,
            self.throttled,
            self.expired_iterators
        )
    }
}

/// A held shard.
struct Held {
    counter: u64,
    /// The last committed sequence number (`None` before the first record).
    checkpoint: Option<String>,
    start: StartAt,
    iterator: Option<String>,
    next_poll: Instant,
    backoff: Duration,
    polling: bool,
    open: RangeAggregate,
    first: Option<String>,
    last: Option<String>,
    opened_at: Instant,
    caught_up_since: Option<Instant>,
    last_idle_save: Instant,
    ended: bool,
    /// A finite run's shard, quiet and closed for good (floor = the largest number).
    drained: bool,
}

impl Held {
    /// Where reading resumes: after the last record read, else the lease's start.
    fn resume_at(&self) -> StartAt {
        match (&self.last, &self.checkpoint) {
            (Some(last), _) | (None, Some(last)) => StartAt::After(last.clone()),
            _ => self.start.clone(),
        }
    }
}

/// A lease's counter as this worker last saw it change, by its own clock.
struct Observed {
    counter: u64,
    owner: Option<String>,
    since: Instant,
}

pub struct Worker {
    job: StreamJob,
    stream: StreamRef,
    kinesis: aws_sdk_kinesis::Client,
    leases: LeaseTable,
    output: OutputStore,
    observed: HashMap<String, Observed>,
    held: HashMap<String, Held>,
    table: Vec<Lease>,
    finalized: BTreeSet<i64>,
    /// The closing watermark of the last complete finalize pass.
    finalized_under: Option<i64>,
    report: StreamReport,
    next_lease_round: Instant,
    next_shard_sync: Instant,
    next_finalize: Instant,
    stop: Arc<AtomicBool>,
}

const LOG: &str = "emrship-job: stream:";
const MAX_BACKOFF: Duration = Duration::from_secs(10);

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Worker {
    pub async fn start(job: StreamJob, stop: Arc<AtomicBool>) -> Result<Worker, JobError> {
        let config = kinesis::sdk_config(job.region.as_deref()).await?;
        let output = OutputStore::open(&job.output)?;
        let leases = LeaseTable::new(&config, &job.lease_table);
        leases.ensure().await?;
        let now = Instant::now();
        Ok(Worker {
            stream: StreamRef::parse(&job.stream),
            kinesis: kinesis::client(&config),
            leases,
            output,
            observed: HashMap::new(),
            held: HashMap::new(),
            table: Vec::new(),
            finalized: BTreeSet::new(),
            finalized_under: None,
            report: StreamReport {
                worker: job.worker_id.clone(),
                ..StreamReport::default()
            },
            next_lease_round: now,
            next_shard_sync: now,
            next_finalize: now,
            stop,
            job,
        })
    }

    /// Runs until the stop rule or a signal says so; commits what it read and gives its
    /// leases up on the way out.
    pub async fn run(mut self) -> Result<StreamReport, JobError> {
        let started = Instant::now();
        let mut polls: JoinSet<(String, Result<Page, PollError>)> = JoinSet::new();
        let mut rounds = 0u64;
        loop {
            let now = Instant::now();
            if now >= self.next_lease_round {
                self.lease_round().await?;
                rounds += 1;
                self.next_lease_round = now + self.job.failover / 3;
            }
            self.start_polls(&mut polls).await;
            // Let the reads of this round come in (each is one short call).
            while let Some(joined) = polls.try_join_next() {
                self.handle_poll(joined).await?;
            }
            if polls.is_empty() {
                self.commit_due().await?;
                self.advance_idle().await?;
                self.drain_quiet().await?;
                if Instant::now() >= self.next_finalize {
                    self.finalize_windows().await?;
                    self.next_finalize = Instant::now() + self.job.flush_interval;
                }
            }
            let stopping = self.stop.load(Ordering::Relaxed);
            if polls.is_empty() && (stopping || (rounds > 0 && self.idle_done())) {
                break;
            }
            let wake = self
                .held
                .values()
                .filter(|h| !h.ended && !h.polling)
                .map(|h| h.next_poll)
                .chain([self.next_lease_round, self.next_finalize])
                .min()
                .unwrap_or(self.next_lease_round);
            let nap = wake
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(5), Duration::from_millis(200));
            if polls.is_empty() {
                tokio::time::sleep(nap).await;
            } else if let Ok(Some(joined)) = tokio::time::timeout(nap, polls.join_next()).await {
                self.handle_poll(joined).await?;
            }
        }
        self.shut_down().await?;
        self.report.seconds = started.elapsed().as_secs_f64();
        Ok(self.report)
    }

    /// Whether a `WhenIdle` worker is done: every shard it holds ended, or is drained, caught
    /// up and committed; and every other unfinished lease is drained too (a worker that died
    /// holding one is waited for, its lease taken over and read).
    fn idle_done(&self) -> bool {
        if !matches!(self.job.stop, StopRule::WhenIdle(_)) {
            return false;
        }
        // A worker that has seen no lease yet has not started, whatever it holds.
        !self.table.is_empty()
            && self
                .held
                .values()
                .all(|h| h.ended || (h.drained && h.open.is_empty() && h.caught_up_since.is_some()))
            && self
                .table
                .iter()
                .all(|lease| lease.is_ended() || lease.idle_watermark_ms == i64::MAX)
    }

    /// A finite run drains each held shard once it has been caught up and quiet for the stop
    /// rule's time: its floor becomes the largest number, which closes every window it touched.
    async fn drain_quiet(&mut self) -> Result<(), JobError> {
        let StopRule::WhenIdle(quiet) = self.job.stop else {
            return Ok(());
        };
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| {
                !h.ended
                    && !h.drained
                    && h.open.is_empty()
                    && h.caught_up_since
                        .is_some_and(|since| since.elapsed() >= quiet)
            })
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in due {
            self.raise_floor(&shard, i64::MAX).await?;
            if let Some(held) = self.held.get_mut(&shard) {
                held.drained = held.open.floor_ms == i64::MAX;
            }
        }
        Ok(())
    }

    async fn lease_round(&mut self) -> Result<(), JobError> {
        let now = Instant::now();
        self.table = self.leases.scan().await?;
        if now >= self.next_shard_sync {
            // The Kinesis client makes one attempt per call (reads handle their own errors),
            // so a throttled or failed ListShards is tried again next round, not fatal.
            match self.sync_shards().await {
                Ok(true) => self.table = self.leases.scan().await?,
                Ok(false) => {}
                Err(e) => {
                    eprintln!("{LOG} {e}; looking again next round");
                    self.next_shard_sync = now;
                    return self.keep_leases(now).await;
                }
            }
            self.next_shard_sync = now + self.job.shard_sync_interval;
        }
        self.keep_leases(now).await
    }

    /// Notes which counters moved, renews what this worker holds, takes its share.
    async fn keep_leases(&mut self, now: Instant) -> Result<(), JobError> {
        for lease in &self.table {
            let changed = match self.observed.get(&lease.shard) {
                Some(seen) => seen.counter != lease.counter || seen.owner != lease.owner,
                None => true,
            };
            if changed {
                self.observed.insert(
                    lease.shard.clone(),
                    Observed {
                        counter: lease.counter,
                        owner: lease.owner.clone(),
                        since: now,
                    },
                );
            }
        }
        self.renew_held().await?;
        self.take_leases().await?;
        Ok(())
    }

    async fn renew_held(&mut self) -> Result<(), JobError> {
        let me = self.job.worker_id.clone();
        let shards: Vec<String> = self.held.keys().cloned().collect();
        for shard in shards {
            let counter = self.held[&shard].counter;
            match self.leases.renew(&shard, &me, counter).await {
                Ok(next) => {
                    let held = self.held.get_mut(&shard).expect("held");
                    held.counter = next;
                    if let Some(lease) = self.table.iter_mut().find(|l| l.shard == shard) {
                        lease.counter = next;
                        lease.owner = Some(me.clone());
                    }
                }
                Err(LeaseError::Lost) => self.drop_lost(&shard),
                Err(LeaseError::Failed(e)) => eprintln!("{LOG} {e}; retrying next round"),
            }
        }
        Ok(())
    }

    /// Keeps this worker's copy of the table in step with a write of its own that succeeded,
    /// so that finalizing and stopping see it before the next scan.
    fn saved(&mut self, shard: &str, counter: u64, change: impl FnOnce(&mut Lease)) {
        if let Some(lease) = self.table.iter_mut().find(|l| l.shard == shard) {
            lease.counter = counter;
            change(lease);
        }
    }

    fn drop_lost(&mut self, shard: &str) {
        if self.held.remove(shard).is_some() {
            self.report.leases_lost += 1;
            eprintln!(
                "{LOG} worker {} lost the lease of {shard}; its unwritten range is dropped (the new owner reads it again)",
                self.job.worker_id
            );
        }
    }

    /// Creates leases for the shards ready to be read: no parents, or parents all finished
    /// (or gone from the stream and the table).
    /// Whether it found a shard the table just scanned lacks (the table is then out of date:
    /// this worker or another has just created its lease).
    async fn sync_shards(&mut self) -> Result<bool, JobError> {
        let shards = kinesis::list_shards(&self.kinesis, &self.stream).await?;
        let mut missing = false;
        let by_shard: HashMap<&str, &Lease> =
            self.table.iter().map(|l| (l.shard.as_str(), l)).collect();
        let listed: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        for shard in &shards {
            if by_shard.contains_key(shard.id.as_str()) {
                continue;
            }
            let parents: Vec<Option<&&Lease>> = shard
                .parents
                .iter()
                .map(|p| by_shard.get(p.as_str()))
                .collect();
            let ready = shard
                .parents
                .iter()
                .zip(&parents)
                .all(|(id, lease)| match lease {
                    Some(lease) => lease.is_ended(),
                    None => !listed.contains(id.as_str()),
                });
            if !ready {
                continue;
            }
            missing = true;
            let has_parents = parents.iter().any(Option::is_some);
            // A child starts at its beginning (KCL does too): nothing between is skipped.
            let (checkpoint, timestamp) = match (has_parents, self.job.position) {
                (true, _) | (false, StartPosition::TrimHorizon) => (TRIM_HORIZON, None),
                (false, StartPosition::Latest) => (AT_TIMESTAMP, Some(wall_ms())),
            };
            let watermark = parents
                .iter()
                .flatten()
                .map(|l| l.watermark_ms)
                .max()
                .unwrap_or(i64::MIN);
            if self
                .leases
                .create(&shard.id, checkpoint, &shard.parents, watermark, timestamp)
                .await?
            {
                eprintln!(
                    "{LOG} lease created for {} (parents: {:?})",
                    shard.id, shard.parents
                );
            }
        }
        Ok(missing)
    }

    fn is_expired(&self, lease: &Lease) -> bool {
        match &lease.owner {
            None => true,
            Some(owner) if *owner == self.job.worker_id => !self.held.contains_key(&lease.shard),
            Some(_) => self
                .observed
                .get(&lease.shard)
                .is_some_and(|seen| seen.since.elapsed() >= self.job.failover),
        }
    }

    async fn take_leases(&mut self) -> Result<(), JobError> {
        let me = self.job.worker_id.clone();
        let open: Vec<&Lease> = self.table.iter().filter(|l| !l.is_ended()).collect();
        if open.is_empty() {
            return Ok(());
        }
        let mut load: HashMap<&str, usize> = HashMap::new();
        load.insert(&me, 0);
        for lease in &open {
            if let Some(owner) = &lease.owner {
                if !self.is_expired(lease) {
                    *load.entry(owner.as_str()).or_default() += 1;
                }
            }
        }
        let target = open.len().div_ceil(load.len());
        let mine = self.held.len();
        if mine >= target {
            return Ok(());
        }
        let mut wanted: Vec<Lease> = open
            .iter()
            .filter(|l| self.is_expired(l) && !self.held.contains_key(&l.shard))
            .take(target - mine)
            .map(|l| (*l).clone())
            .collect();
        if wanted.is_empty() {
            // Steal one from the busiest worker when it holds more than its share.
            let busiest = load
                .iter()
                .filter(|(owner, _)| **owner != me)
                .max_by_key(|(owner, count)| (**count, std::cmp::Reverse(**owner)));
            if let Some((owner, count)) = busiest {
                if *count > target && *count > mine + 1 {
                    if let Some(lease) = open
                        .iter()
                        .rev()
                        .find(|l| l.owner.as_deref() == Some(*owner))
                    {
                        wanted.push((*lease).clone());
                    }
                }
            }
        }
        for lease in wanted {
            match self.leases.take(&lease, &me).await {
                Ok(counter) => {
                    self.report.leases_taken += 1;
                    eprintln!(
                        "{LOG} worker {me} took {} (from {}, checkpoint {})",
                        lease.shard,
                        lease.owner.as_deref().unwrap_or("nobody"),
                        lease.checkpoint
                    );
                    self.hold(&lease, counter);
                }
                Err(LeaseError::Lost) => {}
                Err(LeaseError::Failed(e)) => eprintln!("{LOG} {e}; retrying next round"),
            }
        }
        Ok(())
    }

    fn hold(&mut self, lease: &Lease, counter: u64) {
        let (checkpoint, start) = match lease.checkpoint.as_str() {
            TRIM_HORIZON => (None, StartAt::TrimHorizon),
            AT_TIMESTAMP => (
                None,
                StartAt::AtTimestamp(lease.starting_timestamp_ms.unwrap_or_else(wall_ms)),
            ),
            sequence => (
                Some(sequence.to_string()),
                StartAt::After(sequence.to_string()),
            ),
        };
        let now = Instant::now();
        self.held.insert(
            lease.shard.clone(),
            Held {
                counter,
                checkpoint,
                start,
                iterator: None,
                next_poll: now,
                backoff: self.job.poll_interval,
                polling: false,
                open: RangeAggregate::new(
                    self.job.window,
                    lease.watermark_ms,
                    lease.idle_watermark_ms,
                ),
                first: None,
                last: None,
                opened_at: now,
                caught_up_since: None,
                last_idle_save: now,
                ended: false,
                drained: lease.idle_watermark_ms == i64::MAX,
            },
        );
    }

    async fn start_polls(&mut self, polls: &mut JoinSet<(String, Result<Page, PollError>)>) {
        let now = Instant::now();
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| !h.ended && !h.polling && h.next_poll <= now)
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in due {
            let held = self.held.get_mut(&shard).expect("held");
            held.polling = true;
            let client = self.kinesis.clone();
            let stream = self.stream.clone();
            let iterator = held.iterator.clone();
            let start = held.resume_at();
            let limit = self.job.records_per_call;
            polls.spawn(async move {
                let iterator = match iterator {
                    Some(iterator) => iterator,
                    None => match kinesis::shard_iterator(&client, &stream, &shard, &start).await {
                        Ok(Some(iterator)) => iterator,
                        Ok(None) => {
                            return (
                                shard,
                                Ok(Page {
                                    records: Vec::new(),
                                    next_iterator: None,
                                    millis_behind_latest: Some(0),
                                }),
                            )
                        }
                        Err(e) => return (shard, Err(e)),
                    },
                };
                let page = kinesis::get_records(&client, &iterator, limit).await;
                (shard, page)
            });
        }
    }

    async fn handle_poll(
        &mut self,
        joined: Result<(String, Result<Page, PollError>), tokio::task::JoinError>,
    ) -> Result<(), JobError> {
        let (shard, result) =
            joined.map_err(|e| JobError::Other(format!("a shard read panicked: {e}")))?;
        let poll_interval = self.job.poll_interval;
        let Some(held) = self.held.get_mut(&shard) else {
            return Ok(()); // lost while the read was in flight
        };
        held.polling = false;
        let now = Instant::now();
        match result {
            Ok(page) => {
                held.backoff = poll_interval;
                let got = page.records.len();
                for (sequence, data) in &page.records {
                    if held.first.is_none() {
                        held.first = Some(sequence.clone());
                        held.opened_at = now;
                    }
                    held.open.add(sequence, data);
                    held.last = Some(sequence.clone());
                }
                self.report.records += got as u64;
                let caught_up = got == 0 && page.millis_behind_latest.unwrap_or(0) == 0;
                if caught_up {
                    held.caught_up_since.get_or_insert(now);
                } else {
                    held.caught_up_since = None;
                }
                // A full page means more is waiting: read again without the pause.
                held.next_poll = if got as i32 >= self.job.records_per_call {
                    now
                } else {
                    now + poll_interval
                };
                match page.next_iterator {
                    Some(next) => held.iterator = Some(next),
                    None => {
                        held.iterator = None;
                        held.ended = true;
                        self.end_shard(&shard).await?;
                    }
                }
            }
            Err(PollError::Throttled) => {
                self.report.throttled += 1;
                held.backoff = (held.backoff * 2).min(MAX_BACKOFF);
                held.next_poll = now + held.backoff;
                eprintln!(
                    "{LOG} {shard}: read throttled (ProvisionedThroughputExceeded); next read in {:?}",
                    held.backoff
                );
            }
            Err(PollError::Expired) => {
                self.report.expired_iterators += 1;
                held.iterator = None;
                held.next_poll = now;
                eprintln!(
                    "{LOG} {shard}: iterator expired; reading again after {}",
                    held.last
                        .as_deref()
                        .or(held.checkpoint.as_deref())
                        .unwrap_or("the lease's start")
                );
            }
            Err(PollError::Gone(message)) => {
                eprintln!("{LOG} {shard}: no longer readable ({message}); giving it up");
                self.held.remove(&shard);
            }
            Err(PollError::Other(message)) => {
                held.iterator = None;
                held.backoff = (held.backoff * 2).min(MAX_BACKOFF);
                held.next_poll = now + held.backoff;
                eprintln!("{LOG} {shard}: {message}; retrying in {:?}", held.backoff);
            }
        }
        Ok(())
    }

    /// Flushes a finished shard and checkpoints `SHARD_END`, which lets its children start.
    async fn end_shard(&mut self, shard: &str) -> Result<(), JobError> {
        self.commit(shard).await?;
        let me = self.job.worker_id.clone();
        let Some(held) = self.held.get(shard) else {
            return Ok(());
        };
        if !held.ended {
            // The commit adopted a range that ends earlier: read on from there first.
            return Ok(());
        }
        let watermark = held.open.watermark_ms;
        match self
            .leases
            .checkpoint(shard, &me, held.counter, SHARD_END, watermark)
            .await
        {
            Ok(next) => {
                self.saved(shard, next, |lease| {
                    lease.checkpoint = SHARD_END.to_string();
                    lease.watermark_ms = watermark;
                });
                self.report.shards_ended += 1;
                eprintln!("{LOG} {shard}: read to its end (SHARD_END); its children may start");
                self.held.remove(shard);
                // Children become ready now.
                self.next_shard_sync = Instant::now();
                self.next_lease_round = Instant::now();
            }
            Err(LeaseError::Lost) => self.drop_lost(shard),
            Err(LeaseError::Failed(e)) => return Err(e),
        }
        Ok(())
    }

    async fn commit_due(&mut self) -> Result<(), JobError> {
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| {
                !h.open.is_empty()
                    && (h.open.records >= self.job.flush_records
                        || h.opened_at.elapsed() >= self.job.flush_interval)
            })
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in due {
            self.commit(&shard).await?;
        }
        Ok(())
    }

    /// Writes the shard's open range (or adopts the one already there) and checkpoints.
    async fn commit(&mut self, shard: &str) -> Result<(), JobError> {
        let Some(held) = self.held.get_mut(shard) else {
            return Ok(());
        };
        let (Some(first), Some(last)) = (held.first.clone(), held.last.clone()) else {
            return Ok(());
        };
        let (bytes, written) = {
            let range = RangeObject::new(shard, &first, &last, &mut held.open);
            (range.to_bytes(), range.summary())
        };
        let key = range_key(shard, &first);
        let (mut range, adopted) = match self.output.create(&key, bytes).await? {
            Created::New => (written, false),
            Created::Exists => {
                let bytes = self.output.get(&key).await?.ok_or_else(|| {
                    JobError::Other(format!(
                        "{} exists and then does not: is something deleting the output?",
                        self.output.describe(&key)
                    ))
                })?;
                let existing = RangeObject::from_bytes(&bytes)
                    .map_err(|e| JobError::Other(format!("{}: {e}", self.output.describe(&key))))?
                    .summary();
                (existing, true)
            }
        };
        // Markers and dead letters come from the range that won, whoever wrote it; they are
        // written before the checkpoint, so a crash here is repaired by the replay.
        for &window in &range.windows {
            self.output
                .create(&index_key(window, shard, &range.from), Vec::new())
                .await?;
        }
        if let Some(lines) = range.dead_letters.take() {
            self.output
                .create(&dead_letter_key(shard, &range.from), lines)
                .await?;
        }
        if adopted {
            self.report.ranges_adopted += 1;
            eprintln!(
                "{LOG} {shard}: range from {} was already written (to {}); adopting it and reading on after it",
                range.from, range.to
            );
        } else {
            self.report.ranges_written += 1;
            self.report.malformed += range.malformed;
            self.report.late += range.late;
        }
        let me = self.job.worker_id.clone();
        let spec = self.job.window;
        let held = self.held.get_mut(shard).expect("held");
        let counter = held.counter;
        // Reading goes on after the committed range, whatever was read past it.
        let read_past = held.last.as_deref().and_then(SequenceNumber::parse)
            != SequenceNumber::parse(&range.to);
        let floor = held.open.floor_ms;
        held.open = RangeAggregate::new(spec, range.watermark_ms, floor);
        held.first = None;
        held.last = None;
        held.checkpoint = Some(range.to.clone());
        if read_past {
            held.iterator = None;
            held.ended = false;
        }
        match self
            .leases
            .checkpoint(shard, &me, counter, &range.to, range.watermark_ms)
            .await
        {
            Ok(next) => {
                self.held.get_mut(shard).expect("held").counter = next;
                self.saved(shard, next, |lease| {
                    lease.checkpoint = range.to.clone();
                    lease.watermark_ms = range.watermark_ms;
                });
                Ok(())
            }
            Err(LeaseError::Lost) => {
                self.drop_lost(shard);
                Ok(())
            }
            Err(LeaseError::Failed(e)) => Err(e),
        }
    }

    /// Caught-up shards with nothing open raise their floor to the wall clock, at most once
    /// per flush interval, so that windows close when the traffic stops (a cluster's worker
    /// only: a finite run's records may be far older than the wall clock).
    async fn advance_idle(&mut self) -> Result<(), JobError> {
        if self.job.stop != StopRule::Never {
            return Ok(());
        }
        let now_ms = wall_ms();
        let every = self.job.flush_interval.min(self.job.failover / 3);
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| {
                h.open.is_empty()
                    && !h.ended
                    && h.caught_up_since.is_some()
                    && h.last_idle_save.elapsed() >= every
                    && h.open.floor_ms.max(h.open.watermark_ms) < now_ms
            })
            .map(|(shard, _)| shard.clone())
            .collect();
        for shard in due {
            self.raise_floor(&shard, now_ms).await?;
        }
        Ok(())
    }

    async fn raise_floor(&mut self, shard: &str, floor_ms: i64) -> Result<(), JobError> {
        let me = self.job.worker_id.clone();
        let Some(held) = self.held.get_mut(shard) else {
            return Ok(());
        };
        match self
            .leases
            .set_idle_watermark(shard, &me, held.counter, floor_ms)
            .await
        {
            Ok(next) => {
                held.counter = next;
                held.open.floor_ms = floor_ms;
                held.last_idle_save = Instant::now();
                self.saved(shard, next, |lease| lease.idle_watermark_ms = floor_ms);
            }
            Err(LeaseError::Lost) => self.drop_lost(shard),
            Err(LeaseError::Failed(e)) => eprintln!("{LOG} {e}; retrying later"),
        }
        Ok(())
    }

    /// Every window closed under [`closing_watermark`] gets its final object. The table is
    /// this worker's copy (scanned each lease round, its own writes applied): stale values are
    /// smaller, never larger, so a stale copy only finalizes later. Nothing can close while
    /// that watermark stands still, so the output is listed only when it has moved.
    async fn finalize_windows(&mut self) -> Result<(), JobError> {
        let Some(watermark) = closing_watermark(&self.table) else {
            return Ok(());
        };
        if self.finalized_under == Some(watermark) {
            return Ok(());
        }
        let spec = self.job.window;
        let (_, window_dirs) = self.output.list("index/").await?;
        let (done, _) = self.output.list("windows/").await?;
        let done: BTreeSet<String> = done
            .into_iter()
            .map(|name| format!("windows/{name}"))
            .collect();
        for dir in window_dirs {
            let Some(start) = dir.strip_prefix("window=").and_then(parse_window_name) else {
                continue;
            };
            if self.finalized.contains(&start) || !spec.is_closed(start, watermark) {
                continue;
            }
            let key = window_key(start);
            if done.contains(&key) {
                self.finalized.insert(start);
                continue;
            }
            let mut stored = Vec::new();
            let prefix = index_prefix(start);
            let (_, shard_dirs) = self.output.list(&prefix).await?;
            for shard_dir in shard_dirs {
                let Some(shard) = shard_dir.strip_prefix("shard=") else {
                    continue;
                };
                let (markers, _) = self.output.list(&format!("{prefix}{shard_dir}/")).await?;
                for marker in markers {
                    let Some(from) = marker.strip_prefix("from=") else {
                        continue;
                    };
                    let range_at = range_key(shard, from);
                    let bytes = self.output.get(&range_at).await?.ok_or_else(|| {
                        JobError::Other(format!(
                            "{} is indexed but missing",
                            self.output.describe(&range_at)
                        ))
                    })?;
                    stored.push((range_at, bytes));
                }
            }
            let mut ranges = Vec::with_capacity(stored.len());
            for (range_at, bytes) in &stored {
                ranges.push(RangeObject::from_bytes(bytes).map_err(|e| {
                    JobError::Other(format!("{}: {e}", self.output.describe(range_at)))
                })?);
            }
            let documents = window_documents(start, &spec, &ranges);
            if self.output.create(&key, documents).await? == Created::New {
                self.report.windows_finalized += 1;
                eprintln!(
                    "{LOG} window {} is final: {} ({} ranges)",
                    dir.trim_start_matches("window="),
                    self.output.describe(&key),
                    ranges.len()
                );
            }
            self.finalized.insert(start);
        }
        self.finalized_under = Some(watermark);
        Ok(())
    }

    /// Commits every open range, finalizes what closed and gives the leases up.
    async fn shut_down(&mut self) -> Result<(), JobError> {
        let shards: Vec<String> = self.held.keys().cloned().collect();
        for shard in &shards {
            self.commit(shard).await?;
        }
        self.table = self.leases.scan().await?;
        self.finalize_windows().await?;
        let me = self.job.worker_id.clone();
        for shard in shards {
            if let Some(held) = self.held.remove(&shard) {
                match self.leases.release(&shard, &me, held.counter).await {
                    Ok(()) | Err(LeaseError::Lost) => {}
                    Err(LeaseError::Failed(e)) => eprintln!("{LOG} {e}"),
                }
            }
        }
        Ok(())
    }
}
