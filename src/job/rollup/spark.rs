//! The rollup's spark engine: the task modes the rendered Spark driver
//! (`templates/spark_driver.py.hbs`, the same driver as match-rate's) runs as
//! `emrship-job rollup MODE …`.
//!
//! 1. `list-inputs ARGS` (driver): one event file URI per line (Hive trees walked).
//! 2. `map --buckets N ARGS` (one per map task, its share of the listing on stdin): runs the
//!    local engine's map over those files with N buckets (a group's bucket is a hash of its
//!    values, so every process agrees) and writes one [frame](write_frame) per non-empty
//!    bucket: the bucket's strings (the map's ids mean nothing elsewhere), its groups with page
//!    views and referrer counts, and each group's sessions, sorted and distinct within the
//!    task; plus one stats frame for bucket 0.
//! 3. `reduce --bucket B --buckets N --staging URI --attempt A ARGS` (one per bucket, the
//!    frames Spark shuffled to B on stdin): merges the groups, counts distinct sessions
//!    exactly, writes the bucket's documents sorted by `_id` to
//!    `URI/bucket-B-attempt-A.jsonl` and prints one JSON line naming it ([`StagedBucket`]).
//! 4. `finalize --buckets N --staging URI ARGS` (driver, the collected lines on stdin): checks
//!    every bucket is there exactly once, puts the named staged files in place as
//!    `part-00000.jsonl`, … with `_SUCCESS` last (the local engine's atomic commit), removes
//!    the staging directory and prints the summary.
//! 5. `clean --staging URI` (driver, always, last): removes what is left under staging.
//!
//! Retried and speculative attempts never double count: map output reaches a reduce only
//! through Spark's shuffle (one successful attempt per map task), reduce attempts stage under
//! their own attempt id, and finalize reads only the files the collected lines name.

use std::io::{Read, Write};
use std::time::Instant;

use bytes::Bytes;
use hashbrown::HashMap;
use rayon::prelude::*;
use serde_json::json;

use super::input::{list_event_files, plan_file, MapInput};
use super::kernel::{
    add_referrer, counted_runs, is_long_id, long_id_bytes, BucketGroups, Dictionaries,
    GroupSessions, GroupedRows, Interner, LongSessions, Shuffle,
};
use super::output::{part_name, OutputWriter};
use super::{map_all, reduce_merged, MapOutput, RollupJob, RollupReport};
use crate::job::engine::default_threads;
use crate::job::engine::spark::{
    check_bucket_coverage, check_reduce_task, read_frames, write_frame, TaskLine,
};
use crate::job::location::Location;
use crate::job::model::JobError;
use crate::job::varint::{put_varint, Reader};

/// A frame holding one bucket's share of a map task's groups.
pub const FRAME_GROUPS: u8 = b'G';
/// A frame holding a map task's statistics (sent to bucket 0).
pub const FRAME_STATS: u8 = b'S';

/// Packed sessions in `1..2^64` stand for long ids (see `kernel`): their numbers are per
/// process, so frames carry their bytes.
const LONG_SESSION_LIMIT: u128 = 1 << 64;

/// Every event file of the job, as the map tasks take them (one URI per line).
pub fn list_files(job: &RollupJob) -> Result<Vec<String>, JobError> {
    let files = list_event_files(&job.input).map_err(|e| match e {
        JobError::Input { path, message } if path == job.input => {
            JobError::input(format!("input {path}"), message)
        }
        other => other,
    })?;
    Ok(files.iter().map(ToString::to_string).collect())
}

fn worker_pool(threads: usize) -> Result<rayon::ThreadPool, JobError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("emrship-rollup-{i}"))
        .build()
        .map_err(|e| JobError::Other(format!("cannot start {threads} worker threads: {e}")))
}

/// What a map task read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapStats {
    pub files: u64,
    pub map_tasks: u64,
    pub records: u64,
}

impl MapStats {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        for v in [self.files, self.map_tasks, self.records] {
            put_varint(&mut out, v);
        }
        out
    }

    fn decode(payload: &[u8], what: &str) -> Result<MapStats, JobError> {
        let mut r = Reader {
            data: payload,
            pos: 0,
        };
        let mut next = || r.varint();
        match (next(), next(), next()) {
            (Some(files), Some(map_tasks), Some(records)) => Ok(MapStats {
                files,
                map_tasks,
                records,
            }),
            _ => Err(JobError::Other(format!(
                "{what}: a damaged stats frame (mixed emrship-job versions?)"
            ))),
        }
    }

    fn add(&mut self, other: &MapStats) {
        self.files += other.files;
        self.map_tasks += other.map_tasks;
        self.records += other.records;
    }
}

/// One Spark bucket's share of a map task, being built: frame-local string tables, groups
/// and (group, session) records.
#[derive(Default)]
struct FrameBuilder<'d> {
    customers: Table<'d>,
    urls: Table<'d>,
    referrers: Table<'d>,
    /// The frame's numbers of long session ids, by their bytes.
    long_sessions: HashMap<&'d [u8], u64>,
    long_bytes: Vec<&'d [u8]>,
    groups: Vec<FrameGroup>,
    /// (the group's index in `groups`, packed session).
    records: Vec<(u32, u128)>,
}

/// A group of a frame, with frame-local string ids.
struct FrameGroup {
    customer: u32,
    url: u32,
    hour: i64,
    page_views: u64,
    referrers: Vec<(u32, u64)>,
}

/// Strings of a frame: the map's global id to the frame's id.
#[derive(Default)]
struct Table<'d> {
    ids: HashMap<u32, u32>,
    values: Vec<&'d str>,
}

impl<'d> Table<'d> {
    fn id(&mut self, global: u32, dictionary: &'d [Box<str>]) -> u32 {
        *self.ids.entry(global).or_insert_with(|| {
            self.values.push(&dictionary[global as usize]);
            (self.values.len() - 1) as u32
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

impl FrameBuilder<'_> {
    /// The frame's payload: varint counts and LEB128 fields — customers, urls, referrers and
    /// long session ids (each length + bytes); then the groups, each: customer, url, zigzag
    /// hour, page views, referrer count, (referrer, count)…, session count, sessions
    /// (16 bytes LE, sorted, distinct; long ones as frame number + 1).
    fn encode(mut self) -> Vec<u8> {
        self.records.sort_unstable();
        self.records.dedup();
        let mut out = Vec::with_capacity(self.records.len() * 17 + self.groups.len() * 16);
        for table in [&self.customers, &self.urls, &self.referrers] {
            put_varint(&mut out, table.values.len() as u64);
            for value in &table.values {
                put_bytes(&mut out, value.as_bytes());
            }
        }
        put_varint(&mut out, self.long_bytes.len() as u64);
        for bytes in &self.long_bytes {
            put_bytes(&mut out, bytes);
        }
        put_varint(&mut out, self.groups.len() as u64);
        let mut records = self.records.chunk_by(|a, b| a.0 == b.0).peekable();
        for (g, group) in self.groups.iter().enumerate() {
            put_varint(&mut out, u64::from(group.customer));
            put_varint(&mut out, u64::from(group.url));
            put_varint(&mut out, zigzag(group.hour));
            put_varint(&mut out, group.page_views);
            put_varint(&mut out, group.referrers.len() as u64);
            for &(referrer, count) in &group.referrers {
                put_varint(&mut out, u64::from(referrer));
                put_varint(&mut out, count);
            }
            let sessions = match records.peek() {
                Some(run) if run[0].0 as usize == g => records.next().expect("peeked"),
                _ => &[],
            };
            put_varint(&mut out, sessions.len() as u64);
            for &(_, session) in sessions {
                out.extend_from_slice(&session.to_le_bytes());
            }
        }
        out
    }
}

/// The map task: the local engine's map over `files`, re-partitioned into `buckets` frames
/// written to `out`. Returns what it read.
pub fn map(
    job: &RollupJob,
    buckets: u32,
    files: &[String],
    out: &mut impl Write,
) -> Result<MapStats, JobError> {
    if buckets == 0 {
        return Err(JobError::Usage("--buckets must be at least 1".into()));
    }
    let threads = job.threads.unwrap_or_else(default_threads).max(1);
    let locations = files
        .iter()
        .map(|uri| Location::parse(uri))
        .collect::<Result<Vec<_>, _>>()?;
    let (frames, stats) = worker_pool(threads)?.install(|| -> Result<_, JobError> {
        let inputs: Vec<MapInput> = locations
            .par_iter()
            .map(plan_file)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        let events: u64 = inputs.iter().map(|i| i.rows_hint).sum();
        let shuffle = Shuffle::new(buckets as usize, events);
        let map = map_all(&inputs, &shuffle, threads)?;
        let records = map.rows;
        let dictionaries = shuffle.finish();
        let frames = encode_buckets(&dictionaries, map);
        let stats = MapStats {
            files: locations.len() as u64,
            map_tasks: inputs.len() as u64,
            records,
        };
        Ok((frames, stats))
    })?;
    let write_error = |e: std::io::Error| JobError::Other(format!("cannot write map output: {e}"));
    for (bucket, payload) in frames {
        write_frame(out, FRAME_GROUPS, bucket, &payload).map_err(write_error)?;
    }
    write_frame(out, FRAME_STATS, 0, &stats.encode()).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    Ok(stats)
}

/// Encodes the map's buckets as frames (the non-empty ones). The local engine's buckets are
/// the Spark buckets: a group's bucket comes from its values (`kernel::group_hash`), the same
/// in every process, while the frames carry strings instead of this process's ids.
fn encode_buckets(dictionaries: &Dictionaries, map: MapOutput) -> Vec<(u32, Vec<u8>)> {
    let long_ids = &map.long_ids;
    map.pieces
        .into_par_iter()
        .enumerate()
        .filter(|(_, partitions)| partitions.iter().any(|p| !p.is_empty()))
        .map(|(bucket, pieces)| {
            let mut grouped = GroupedRows::new(pieces, |r| r);
            let mut builder = FrameBuilder::default();
            for g in 0..grouped.keys.len() {
                let (customer, url, hour) = grouped.keys[g];
                let page_views = (grouped.starts[g + 1] - grouped.starts[g]) as u64;
                let customer = builder.customers.id(customer, &dictionaries.customers);
                let url = builder.urls.id(url, &dictionaries.urls);
                let (sessions, referrers) = grouped.take_group(g, long_ids);
                let referrers = counted_runs(referrers)
                    .map(|(r, count)| (builder.referrers.id(r, &dictionaries.referrers), count))
                    .collect();
                builder.groups.push(FrameGroup {
                    customer,
                    url,
                    hour,
                    page_views,
                    referrers,
                });
                for &session in sessions {
                    let session = if is_long_id(session) {
                        let bytes = long_id_bytes(long_ids, session);
                        let next = builder.long_bytes.len() as u64;
                        let number = *builder.long_sessions.entry(bytes).or_insert(next);
                        if number == next {
                            builder.long_bytes.push(bytes);
                        }
                        u128::from(number) + 1
                    } else {
                        session
                    };
                    builder.records.push((g as u32, session));
                }
            }
            (bucket as u32, builder.encode())
        })
        .collect()
}

/// What a reduce attempt staged: the JSON line it prints and finalize reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBucket {
    pub bucket: u32,
    /// The staged JSON Lines file; `None` for a bucket without documents.
    pub staged: Option<String>,
    pub documents: u64,
    pub visitors: u64,
    /// The map tasks' statistics this bucket received (all of them go to bucket 0).
    pub stats: MapStats,
}

impl StagedBucket {
    pub fn to_line(&self) -> String {
        json!({
            "bucket": self.bucket,
            "staged": self.staged,
            "documents": self.documents,
            "visitors": self.visitors,
            "files": self.stats.files,
            "map_tasks": self.stats.map_tasks,
            "records": self.stats.records,
        })
        .to_string()
    }

    pub fn parse(line: &str) -> Result<StagedBucket, JobError> {
        let line = TaskLine::parse(line, "a rollup reduce task")?;
        let number = |name: &str| line.number(&line.value, name);
        let staged = match line.value.get("staged") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) => None,
            _ => return Err(line.bad("no \"staged\" (a string or null)")),
        };
        Ok(StagedBucket {
            bucket: line.bucket()?,
            staged,
            documents: number("documents")?,
            visitors: number("visitors")?,
            stats: MapStats {
                files: number("files")?,
                map_tasks: number("map_tasks")?,
                records: number("records")?,
            },
        })
    }
}

/// The staged file of one reduce attempt.
pub fn staged_location(staging: &Location, bucket: u32, attempt: &str) -> Location {
    staging.join(&format!("bucket-{bucket:05}-attempt-{attempt}.jsonl"))
}

/// A bucket's groups merged over every frame, with reduce-local ids.
#[derive(Default)]
struct BucketMerge {
    customers: Interner,
    urls: Interner,
    referrers: Interner,
    long_sessions: LongSessions,
    groups: BucketGroups,
    sessions: GroupSessions,
}

impl BucketMerge {
    fn add_frame(&mut self, payload: &[u8], what: &str) -> Result<(), JobError> {
        let damaged = || {
            JobError::Other(format!(
                "{what}: a damaged groups frame (mixed emrship-job versions?)"
            ))
        };
        let mut r = Reader {
            data: payload,
            pos: 0,
        };
        let mut tables: Vec<Vec<u32>> = Vec::with_capacity(3);
        for interner in [&self.customers, &self.urls, &self.referrers] {
            let n = r.varint().ok_or_else(damaged)?;
            let values = (0..n)
                .map(|_| r.str().ok_or_else(damaged))
                .collect::<Result<Vec<&str>, _>>()?;
            tables.push(interner.ids(&values));
        }
        let (customers, urls, referrers) = (&tables[0], &tables[1], &tables[2]);
        let longs = r.varint().ok_or_else(damaged)?;
        let mut long_ids = Vec::with_capacity(longs.min(1 << 20) as usize);
        for _ in 0..longs {
            let len = usize::try_from(r.varint().ok_or_else(damaged)?).map_err(|_| damaged())?;
            let end = r.pos.checked_add(len).ok_or_else(damaged)?;
            let bytes = r.data.get(r.pos..end).ok_or_else(damaged)?;
            r.pos = end;
            long_ids.push(self.long_sessions.packed(bytes));
        }
        let groups = r.varint().ok_or_else(damaged)?;
        for _ in 0..groups {
            let mut field = || r.varint().ok_or_else(damaged);
            let customer = *customers.get(field()? as usize).ok_or_else(damaged)?;
            let url = *urls.get(field()? as usize).ok_or_else(damaged)?;
            let hour = unzigzag(field()?);
            let page_views = field()?;
            let g = self.groups.group((customer, url, hour));
            self.groups.page_views[g as usize] += page_views;
            let sums = &mut self.groups.referrers[g as usize];
            for _ in 0..field()? {
                let referrer = *referrers.get(field()? as usize).ok_or_else(damaged)?;
                add_referrer(sums, referrer, field()?);
            }
            let sessions = field()?;
            for _ in 0..sessions {
                let end = r.pos.checked_add(16).ok_or_else(damaged)?;
                let bytes: [u8; 16] = r
                    .data
                    .get(r.pos..end)
                    .ok_or_else(damaged)?
                    .try_into()
                    .expect("16 bytes");
                r.pos = end;
                let mut session = u128::from_le_bytes(bytes);
                if session != 0 && session < LONG_SESSION_LIMIT {
                    session = *long_ids.get((session - 1) as usize).ok_or_else(damaged)?;
                }
                self.sessions.groups.push(g);
                self.sessions.sessions.push(session);
            }
        }
        if r.pos != payload.len() {
            return Err(damaged());
        }
        Ok(())
    }
}

/// The reduce task of `bucket`: merges the frames of `input`, stages the bucket's documents.
pub fn reduce(
    bucket: u32,
    buckets: u32,
    staging: &Location,
    attempt: &str,
    input: &mut impl Read,
) -> Result<StagedBucket, JobError> {
    check_reduce_task(bucket, buckets, attempt)?;
    let mut merge = BucketMerge::default();
    let mut stats = MapStats::default();
    let mut frames = 0usize;
    read_frames(input, |kind, frame_bucket, payload| {
        frames += 1;
        if frame_bucket != bucket {
            return Err(JobError::Other(format!(
                "reduce of bucket {bucket} got a frame of bucket {frame_bucket}: the shuffle must partition by bucket"
            )));
        }
        let what = format!("bucket {bucket} frame {frames}");
        match kind {
            FRAME_GROUPS => merge.add_frame(&payload, &what),
            FRAME_STATS => {
                stats.add(&MapStats::decode(&payload, &what)?);
                Ok(())
            }
            other => Err(JobError::Other(format!(
                "{what}: unknown frame kind {other:#04x} (a match-rate map's output?)"
            ))),
        }
    })?;
    let dictionaries = Dictionaries {
        customers: merge.customers.into_values(),
        urls: merge.urls.into_values(),
        referrers: merge.referrers.into_values(),
    };
    if merge.groups.keys.is_empty() {
        return Ok(StagedBucket {
            bucket,
            staged: None,
            documents: 0,
            visitors: 0,
            stats,
        });
    }
    let (data, documents, visitors) = reduce_merged(&dictionaries, merge.groups, merge.sessions);
    let location = staged_location(staging, bucket, attempt);
    location.write(Bytes::from(data))?;
    Ok(StagedBucket {
        bucket,
        staged: Some(location.to_string()),
        documents,
        visitors,
        stats,
    })
}

/// The driver's last step with data: the collected buckets' staged files become the output's
/// part files (atomically, `_SUCCESS` last); then the staging directory is removed.
pub fn finalize(
    job: &RollupJob,
    buckets: u32,
    staging: &Location,
    parts: &[StagedBucket],
) -> Result<RollupReport, JobError> {
    let started = Instant::now();
    check_bucket_coverage(parts.iter().map(|p| p.bucket), buckets)?;
    let writer = OutputWriter::open(&job.output)?;
    let mut staged: Vec<&StagedBucket> = parts.iter().filter(|p| p.staged.is_some()).collect();
    staged.sort_by_key(|p| p.bucket);
    let names: Vec<String> = (0..staged.len()).map(part_name).collect();
    let threads = job.threads.unwrap_or_else(default_threads).max(1);
    let moved = worker_pool(threads)?.install(|| {
        staged
            .par_iter()
            .zip(names.par_iter())
            .try_for_each(|(part, name)| {
                let uri = part.staged.as_deref().expect("filtered");
                let data = Location::parse(uri)?.read()?;
                let lines = memchr::memchr_iter(b'\n', &data).count() as u64;
                if lines != part.documents {
                    return Err(JobError::input(
                        uri,
                        format!(
                            "holds {lines} documents but its reduce task reported {}",
                            part.documents
                        ),
                    ));
                }
                writer.stage(name, data.to_vec())
            })
    });
    if let Err(e) = moved {
        writer.abort();
        return Err(e);
    }
    let staged_at = started.elapsed();
    writer.commit(&names)?;
    let committed = Instant::now();
    crate::job::engine::spark::clean_staging(staging)?;
    let mut stats = MapStats::default();
    for part in parts {
        stats.add(&part.stats);
    }
    Ok(RollupReport {
        input: job.input.clone(),
        output: job.output.clone(),
        files: stats.files,
        map_tasks: stats.map_tasks,
        records: stats.records,
        documents: parts.iter().map(|p| p.documents).sum(),
        parts: names.len() as u64,
        buckets: u64::from(buckets),
        visitors: parts.iter().map(|p| p.visitors).sum(),
        timings: vec![
            ("stage", staged_at),
            ("commit", committed.duration_since(started) - staged_at),
            ("clean", committed.elapsed()),
            ("total", started.elapsed()),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips() {
        for v in [0, 1, -1, 493_661, -493_661, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn staged_lines_round_trip() {
        let part = StagedBucket {
            bucket: 3,
            staged: Some("s3://b/staging/run/bucket-00003-attempt-3-0-7.jsonl".into()),
            documents: 10,
            visitors: 9,
            stats: MapStats {
                files: 2,
                map_tasks: 4,
                records: 100,
            },
        };
        assert_eq!(StagedBucket::parse(&part.to_line()).unwrap(), part);
        let empty = StagedBucket {
            staged: None,
            ..part
        };
        assert_eq!(StagedBucket::parse(&empty.to_line()).unwrap(), empty);
        assert!(StagedBucket::parse("{\"bucket\":1}").is_err());
    }

    /// Frames with overlapping groups and long session ids merge into exact counts, and a
    /// truncated frame is an error, not a wrong count.
    #[test]
    fn frames_merge_exactly() {
        let customers: Vec<Box<str>> = vec!["c".into()];
        let urls: Vec<Box<str>> = vec!["u1".into(), "u2".into()];
        let referrers: Vec<Box<str>> = vec!["r".into()];
        let longs: Vec<&[u8]> = vec![b"a-session-id-longer-than-16"];
        let frame = |sessions: &[u128], long: bool| {
            let mut b = FrameBuilder::default();
            b.customers.id(0, &customers);
            b.urls.id(0, &urls);
            b.referrers.id(0, &referrers);
            b.groups.push(FrameGroup {
                customer: 0,
                url: 0,
                hour: 10,
                page_views: sessions.len() as u64,
                referrers: vec![(0, 1)],
            });
            for &s in sessions {
                b.records.push((0, s));
            }
            if long {
                b.long_bytes.push(longs[0]);
                b.records.push((0, 1));
                b.groups[0].page_views += 1;
            }
            b.encode()
        };
        let mut merge = BucketMerge::default();
        merge
            .add_frame(&frame(&[1 << 120, 2 << 120, 1 << 120], true), "f1")
            .unwrap();
        merge
            .add_frame(&frame(&[2 << 120, 3 << 120], true), "f2")
            .unwrap();
        assert_eq!(merge.groups.keys.len(), 1);
        assert_eq!(merge.groups.page_views, [7]);
        assert_eq!(merge.groups.referrers, [vec![(0, 2)]]);
        let visitors = crate::job::rollup::kernel::distinct_sessions(1, merge.sessions);
        // 1<<120, 2<<120, 3<<120 and the long id.
        assert_eq!(visitors, [4]);
        let damaged = frame(&[1 << 120], false);
        assert!(BucketMerge::default()
            .add_frame(&damaged[..damaged.len() - 1], "f")
            .is_err());
    }
}
