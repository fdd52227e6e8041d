//! The rollup's map, shuffle and reduce kernels.
//!
//! - **map** ([`MapTask`]): one input split's rows into per-partition pieces, a 32-byte
//!   [`Row`] per event. A group is (customer, url, UTC hour floor of ts); strings become
//!   global ids once per batch dictionary (never per row), and a row's partition is a hash of
//!   its group's values, so a group's rows from every task meet in one bucket.
//! - **reduce** ([`GroupedRows`], [`crate::job::rollup::reduce_bucket`]): a bucket's rows
//!   grouped one partition at a time (a hash table of the partition's groups), counting-sorted
//!   by group; each group's sessions sorted and counted distinct — exact, no sketches — and
//!   its referrers counted.
//!
//! Session identity is exact: an id of at most 16 bytes without NUL packs injectively into a
//! `u128` (big-endian, zero padded: its first byte is non-zero unless it is empty, which packs
//! to 0). A longer id (or one with NUL) is copied into its map task's arena ([`LongIds`]) and
//! its row carries a [`long_id`] value: a zero top byte, 56 bits of the id's hash (never all
//! zero) and where its bytes are — at least 2^64 and below 2^120, so never a packed id. Two
//! rows of one id have the same hash but not the same value; sorted, they are next to each
//! other, and the reduce counts a run of equal hashes by comparing the ids' bytes
//! ([`GroupedRows::take_group`]). No table of every id is kept and no lock is taken per row.

use std::hash::BuildHasher;
use std::sync::Mutex;

use hashbrown::HashMap;

use super::input::{CustomerColumn, EventColumns, NULL_KEY};
use crate::job::model::JobError;

pub const HOUR_MICROS: i64 = 3_600_000_000;

/// (customer id, url id, hours since the epoch).
pub type GroupKey = (u32, u32, i64);

/// Strings to dense ids, shared by the map tasks (one lock per batch dictionary).
#[derive(Default)]
pub struct Interner {
    inner: Mutex<InternerTable>,
}

/// Value → id, and id → value.
type InternerTable = (HashMap<Box<str>, u32>, Vec<Box<str>>);

impl Interner {
    /// The ids of `values`, in order, interning new ones.
    pub fn ids(&self, values: &[&str]) -> Vec<u32> {
        let mut guard = self.inner.lock().expect("interner");
        let (index, all) = &mut *guard;
        values
            .iter()
            .map(|&value| {
                if let Some(&id) = index.get(value) {
                    return id;
                }
                let id = all.len() as u32;
                all.push(value.into());
                index.insert(value.into(), id);
                id
            })
            .collect()
    }

    pub fn into_values(self) -> Vec<Box<str>> {
        self.inner.into_inner().expect("interner").1
    }
}

/// Packs a session id into its exact `u128` form, when it fits (see the module docs).
#[inline]
pub fn pack_session(bytes: &[u8]) -> Option<u128> {
    if bytes.len() > 16 || memchr::memchr(0, bytes).is_some() {
        return None;
    }
    let mut buf = [0u8; 16];
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(u128::from_be_bytes(buf))
}

/// A stable 64-bit hash of a group's values (FNV-1a over the bytes, then a 64-bit finalizer):
/// the same in every process and build. It only routes groups to buckets; groups are compared
/// by their values.
pub fn group_hash(customer: &str, url: &str, hour: i64) -> u64 {
    group_hash_finish(group_hash_prefix(customer, url), hour)
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The FNV-1a state after `customer\0url\0`: shared by every hour of one (customer, url), so
/// a map task hashes those bytes once per dictionary value, not once per group.
#[inline]
pub fn group_hash_prefix(customer: &str, url: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [customer.as_bytes(), b"\0", url.as_bytes(), b"\0"] {
        for &byte in part {
            h ^= u64::from(byte);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// [`group_hash`] from its prefix state: the hour's bytes, then the finalizer.
#[inline]
pub fn group_hash_finish(prefix: u64, hour: i64) -> u64 {
    let mut h = prefix;
    for byte in hour.to_le_bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// One bucket's groups: their keys and the additive metrics summed over all map tasks.
#[derive(Default)]
pub struct BucketGroups {
    index: HashMap<GroupKey, u32>,
    pub keys: Vec<GroupKey>,
    pub page_views: Vec<u64>,
    /// Per group: (referrer id, count), unsorted.
    pub referrers: Vec<Vec<(u32, u64)>>,
}

impl BucketGroups {
    /// The index of the group `key` in this bucket, adding it (with zero sums) when new.
    pub fn group(&mut self, key: GroupKey) -> u32 {
        let next = self.keys.len() as u32;
        let g = *self.index.entry(key).or_insert(next);
        if g == next {
            self.keys.push(key);
            self.page_views.push(0);
            self.referrers.push(Vec::new());
        }
        g
    }
}

/// Adds `count` views from `referrer` to one group's unsorted (referrer id, count) sums.
#[inline]
pub fn add_referrer(sums: &mut Vec<(u32, u64)>, referrer: u32, count: u64) {
    match sums.iter_mut().find(|(r, _)| *r == referrer) {
        Some((_, total)) => *total += count,
        None => sums.push((referrer, count)),
    }
}

/// Session ids too long to pack, numbered by their bytes in the order first seen; a number
/// `n` packs as `n + 1` (see the module docs).
#[derive(Default)]
pub struct LongSessions {
    numbers: HashMap<Box<[u8]>, u64>,
}

impl LongSessions {
    /// The packed form of a long session id, numbering it when new. Copies the bytes only
    /// the first time an id is seen.
    pub fn packed(&mut self, bytes: &[u8]) -> u128 {
        let number = match self.numbers.get(bytes) {
            Some(&number) => number,
            None => {
                let number = self.numbers.len() as u64;
                self.numbers.insert(bytes.into(), number);
                number
            }
        };
        u128::from(number) + 1
    }
}

/// The long session ids a map task met, back to back, each as a 4-byte little-endian length
/// and its bytes; rows point into it ([`long_id`]).
pub type LongIds = Vec<u8>;

/// Map tasks (arenas) a [`long_id`] can point into, and bytes per arena.
const LONG_ID_TASK_BITS: u32 = 24;
const LONG_ID_OFFSET_BITS: u32 = 40;

/// The row value of a long session id: 0 (8 bits), the id's hash (56 bits, its low bit set so
/// the value is at least 2^64), its map task (24 bits), its offset in the task's arena (40).
#[inline]
pub fn long_id(hash: u64, task: u32, offset: u64) -> u128 {
    let hash = (hash >> 8) | 1;
    u128::from(hash) << 64 | u128::from(task) << LONG_ID_OFFSET_BITS | u128::from(offset)
}

/// Whether a row's session value is a [`long_id`].
#[inline]
pub fn is_long_id(value: u128) -> bool {
    value >> 120 == 0 && value >> 64 != 0
}

/// The bytes of a [`long_id`], from the map tasks' arenas.
pub fn long_id_bytes(arenas: &[LongIds], value: u128) -> &[u8] {
    let task = (value >> LONG_ID_OFFSET_BITS) as usize & ((1 << LONG_ID_TASK_BITS) - 1);
    let offset = (value as u64 & ((1 << LONG_ID_OFFSET_BITS) - 1)) as usize;
    let arena = &arenas[task];
    let len = u32::from_le_bytes(arena[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    &arena[offset + 4..offset + 4 + len]
}

/// The state map tasks share: the dictionaries and the long session ids.
pub struct Shuffle {
    pub buckets: usize,
    /// Partitions each bucket's rows come in (see [`Shuffle::partition_of_prefix`]).
    pub partitions_per_bucket: usize,
    pub customers: Interner,
    pub urls: Interner,
    pub referrers: Interner,
    /// Hashes long session ids ([`long_id`]); one for the process, so equal ids hash equal.
    long_id_hasher: hashbrown::DefaultHashBuilder,
}

/// The dictionaries once every map task is done: a row's ids index them.
pub struct Dictionaries {
    pub customers: Vec<Box<str>>,
    pub urls: Vec<Box<str>>,
    pub referrers: Vec<Box<str>>,
}

/// Events per partition of a bucket (see [`Shuffle::partition_of_prefix`]): at the ten or so
/// events per group users' data has, the reduce's table of a partition's groups (16 bytes a
/// slot) stays within a core's L2 cache; one big table per bucket missed it on every row.
const EVENTS_PER_PARTITION: u64 = 1 << 17;
const MAX_PARTITIONS_PER_BUCKET: u64 = 64;

impl Shuffle {
    /// A shuffle into `buckets` buckets of about `events` events in all, each bucket cut into
    /// partitions of about [`EVENTS_PER_PARTITION`].
    pub fn new(buckets: usize, events: u64) -> Shuffle {
        let buckets = buckets.max(1);
        let per_bucket = (events / buckets as u64)
            .div_ceil(EVENTS_PER_PARTITION)
            .clamp(1, MAX_PARTITIONS_PER_BUCKET);
        Shuffle {
            buckets,
            partitions_per_bucket: per_bucket as usize,
            customers: Interner::default(),
            urls: Interner::default(),
            referrers: Interner::default(),
            long_id_hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    /// All partitions: `partitions_per_bucket` for each bucket.
    pub fn partitions(&self) -> usize {
        self.buckets * self.partitions_per_bucket
    }

    /// The partition of a group (`prefix` is its customer and url's [`group_hash_prefix`]):
    /// its hash modulo [`Shuffle::partitions`]. As the bucket count divides the partition
    /// count, partition `p` belongs to bucket `p % buckets`, the group's hash modulo the
    /// buckets: from its values, not this process's ids, so every process of a distributed run
    /// sends a group to the same reduce task. A reduce groups its bucket one partition at a
    /// time, so each hash table holds a partition's groups and stays in the core's cache.
    #[inline]
    pub fn partition_of_prefix(&self, prefix: u64, hour: i64) -> usize {
        (group_hash_finish(prefix, hour) % self.partitions() as u64) as usize
    }

    pub fn finish(self) -> Dictionaries {
        Dictionaries {
            customers: self.customers.into_values(),
            urls: self.urls.into_values(),
            referrers: self.referrers.into_values(),
        }
    }
}

/// One event as the map leaves it for its bucket's reduce: the group's ids, the referrer's
/// id ([`NULL_KEY`] for none) and the packed session — 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub session: u128,
    pub customer: u32,
    pub url: u32,
    /// Hours since the epoch.
    pub hour: i32,
    pub referrer: u32,
}

impl Row {
    pub fn key(&self) -> GroupKey {
        (self.customer, self.url, i64::from(self.hour))
    }
}

/// What a map task last computed for a url dictionary value ([`MapTask::add`]).
#[derive(Clone, Copy)]
struct LastGroup {
    customer: u32,
    prefix: u64,
    hour: Option<i64>,
    partition: u32,
}

impl LastGroup {
    const NONE: LastGroup = LastGroup {
        customer: u32::MAX,
        prefix: 0,
        hour: None,
        partition: 0,
    };
}

/// One partition's share of a map task's output, a row per event.
pub type Piece = Vec<Row>;

/// A map task: reads batches into per-partition pieces, one [`Row`] per event. It does not
/// combine rows of a group: at the shapes users have (a file's rows spread over many
/// (customer, url, hour) groups), a task-local table would hash every row only to combine
/// almost nothing; the reduce groups each bucket once, with a table the size of the bucket.
pub struct MapTask<'s> {
    shuffle: &'s Shuffle,
    /// The task's number among all map tasks (its arena's, in [`long_id`]s).
    task: u32,
    pieces: Vec<Piece>,
    long_ids: LongIds,
    pub rows: u64,
}

impl<'s> MapTask<'s> {
    /// Task number `task` (below 2^24) of a map.
    pub fn new(shuffle: &'s Shuffle, task: usize) -> MapTask<'s> {
        assert!(task < 1 << LONG_ID_TASK_BITS, "at most 2^24 map tasks");
        MapTask {
            shuffle,
            task: task as u32,
            pieces: (0..shuffle.partitions()).map(|_| Piece::new()).collect(),
            long_ids: LongIds::new(),
            rows: 0,
        }
    }

    /// The row value of a session id too long to pack: its bytes go into the task's arena.
    fn long_session(&mut self, bytes: &[u8]) -> Result<u128, JobError> {
        let offset = self.long_ids.len() as u64;
        let len = u32::try_from(bytes.len())
            .ok()
            .filter(|_| offset + 4 + bytes.len() as u64 <= 1 << LONG_ID_OFFSET_BITS);
        let Some(len) = len else {
            return Err(JobError::Other(
                "a map task met more than 1 TiB of session ids longer than 16 bytes; split the input into smaller files".into(),
            ));
        };
        self.long_ids.extend_from_slice(&len.to_le_bytes());
        self.long_ids.extend_from_slice(bytes);
        let hash = self.shuffle.long_id_hasher.hash_one(bytes);
        Ok(long_id(hash, self.task, offset))
    }

    /// Adds one batch.
    pub fn add(&mut self, columns: &EventColumns<'_>) -> Result<(), JobError> {
        let shuffle = self.shuffle;
        let url_ids = shuffle.urls.ids(&columns.url.values);
        let referrer_ids = shuffle.referrers.ids(&columns.referrer.values);
        let (customer_const, customer_dict, customer_ids) = match &columns.customer {
            CustomerColumn::Const(name) => {
                ((shuffle.customers.ids(&[name])[0], *name), None, Vec::new())
            }
            CustomerColumn::Dict(dict) => {
                ((0, ""), Some(dict), shuffle.customers.ids(&dict.values))
            }
        };
        let rows = columns.rows;
        let expected = rows / self.pieces.len() + rows / (4 * self.pieces.len()) + 16;
        for piece in &mut self.pieces {
            piece.reserve(expected);
        }
        // Per url dictionary value: the customer last seen with it and their hash prefix
        // (rows of a url mostly share one customer), so the strings are hashed once per value;
        // and the hour last seen with them and its partition (the rows of a file often share
        // one hour), so the hour is hashed only when it changes.
        let mut last: Vec<LastGroup> = vec![LastGroup::NONE; url_ids.len()];
        let ts = &columns.ts[..];
        for (i, &micros) in ts.iter().enumerate().take(rows) {
            let url_key = columns.url.keys[i] as usize;
            let (customer, customer_name) = match customer_dict {
                None => customer_const,
                Some(dict) => {
                    let k = dict.keys[i] as usize;
                    (customer_ids[k], dict.values[k])
                }
            };
            let hour = micros.div_euclid(HOUR_MICROS);
            let Ok(short_hour) = i32::try_from(hour) else {
                return Err(JobError::input(
                    columns.location,
                    format!(
                        "row {}: ts {micros} µs since the epoch is beyond the years the rollup can group (about ±245,000)",
                        columns.first_row + i as u64 + 1
                    ),
                ));
            };
            let cached = &mut last[url_key];
            if cached.customer != customer {
                cached.customer = customer;
                cached.prefix = group_hash_prefix(customer_name, columns.url.values[url_key]);
                cached.hour = None;
            }
            if cached.hour != Some(hour) {
                cached.hour = Some(hour);
                cached.partition = shuffle.partition_of_prefix(cached.prefix, hour) as u32;
            }
            let partition = cached.partition as usize;
            let referrer_key = columns.referrer.keys[i];
            let referrer = if referrer_key == NULL_KEY {
                NULL_KEY
            } else {
                referrer_ids[referrer_key as usize]
            };
            let session = columns.session.get(i);
            let packed = match pack_session(session) {
                Some(packed) => packed,
                None => self.long_session(session)?,
            };
            self.pieces[partition].push(Row {
                session: packed,
                customer,
                url: url_ids[url_key],
                hour: short_hour,
                referrer,
            });
        }
        self.rows += rows as u64;
        Ok(())
    }

    /// The task's pieces, one per partition, and its long session ids.
    pub fn finish(mut self) -> (Vec<Piece>, LongIds) {
        for piece in &mut self.pieces {
            piece.shrink_to_fit();
        }
        self.long_ids.shrink_to_fit();
        (self.pieces, self.long_ids)
    }
}

/// One bucket's rows grouped: each group's key, and its rows' sessions and referrers
/// side by side, group after group (group `g`'s are at `starts[g]..starts[g + 1]`). Reused
/// from bucket to bucket ([`GroupedRows::group`]), so a reduce thread faults its memory in
/// once, not once per bucket.
#[derive(Default)]
pub struct GroupedRows {
    pub keys: Vec<GroupKey>,
    pub starts: Vec<usize>,
    pub sessions: Vec<u128>,
    /// As `referrer` maps them ([`NULL_KEY`] stays).
    pub referrers: Vec<u32>,
}

impl GroupedRows {
    /// Groups a bucket's rows, given as its partitions' pieces (consumed), one partition at a
    /// time: a hash lookup per row in a table of the partition's groups, then a counting sort
    /// of the partition's rows by group. `referrer` maps each non-null referrer id (to its
    /// rank in name order, say, so a group's sorted referrers are in name order).
    pub fn new(partitions: Vec<Vec<Piece>>, referrer: impl Fn(u32) -> u32) -> GroupedRows {
        let mut grouped = GroupedRows::default();
        grouped.group(partitions, referrer);
        grouped
    }

    /// [`GroupedRows::new`] into this one's buffers.
    pub fn group(&mut self, partitions: Vec<Vec<Piece>>, referrer: impl Fn(u32) -> u32) {
        let total: usize = partitions.iter().flatten().map(Vec::len).sum();
        let GroupedRows {
            keys,
            starts,
            sessions,
            referrers,
        } = self;
        keys.clear();
        starts.clear();
        starts.push(0);
        // Every slot is written below; the fill only sizes the buffers.
        sessions.clear();
        sessions.resize(total, 0);
        referrers.clear();
        referrers.resize(total, 0);
        let mut index: HashMap<(u32, u32, i32), u32> = HashMap::new();
        let mut counts: Vec<usize> = Vec::new();
        let mut group_of: Vec<u32> = Vec::new();
        for pieces in partitions {
            index.clear();
            counts.clear();
            group_of.clear();
            // A file's rows of one group often come together: the last group is checked
            // before the table.
            let mut last: Option<((u32, u32, i32), u32)> = None;
            for row in pieces.iter().flatten() {
                let key = (row.customer, row.url, row.hour);
                let g = match last {
                    Some((k, g)) if k == key => g,
                    _ => {
                        let next = counts.len() as u32;
                        let g = *index.entry(key).or_insert(next);
                        if g == next {
                            keys.push(row.key());
                            counts.push(0);
                        }
                        last = Some((key, g));
                        g
                    }
                };
                counts[g as usize] += 1;
                group_of.push(g);
            }
            // The partition's groups follow the previous partitions' rows.
            let mut at = *starts.last().expect("starts begins with 0");
            for count in &mut counts {
                let start = at;
                at += *count;
                starts.push(at);
                *count = start;
            }
            let cursor = &mut counts;
            for (row, &g) in pieces.iter().flatten().zip(&group_of) {
                let at = &mut cursor[g as usize];
                sessions[*at] = row.session;
                referrers[*at] = if row.referrer == NULL_KEY {
                    NULL_KEY
                } else {
                    referrer(row.referrer)
                };
                *at += 1;
            }
        }
    }

    /// Group `g`'s rows: its distinct sessions (one row value per distinct id, sorted by
    /// value; `arenas` hold the map tasks' [`LongIds`]) and its referrers (sorted). Both are
    /// arranged in place: a group is read once.
    pub fn take_group(&mut self, g: usize, arenas: &[LongIds]) -> (&[u128], &[u32]) {
        let range = self.starts[g]..self.starts[g + 1];
        let sessions = &mut self.sessions[range.clone()];
        sessions.sort_unstable();
        let distinct = dedup_sorted(sessions, arenas);
        let referrers = &mut self.referrers[range];
        referrers.sort_unstable();
        (&sessions[..distinct], referrers)
    }
}

/// Moves one value of each distinct session id of a sorted slice of row values to its
/// front; returns how many there are. Long ids with equal hashes are compared by their bytes
/// (the run is short: the rows of one id in one group, and the rare equal hash).
fn dedup_sorted(values: &mut [u128], arenas: &[LongIds]) -> usize {
    let mut kept = 0;
    let mut run_start = 0;
    for i in 0..values.len() {
        let value = values[i];
        if kept > 0 && value == values[kept - 1] {
            continue;
        }
        if is_long_id(value) {
            if kept == 0 || values[kept - 1] >> 64 != value >> 64 {
                run_start = kept;
            } else {
                let bytes = long_id_bytes(arenas, value);
                if values[run_start..kept]
                    .iter()
                    .any(|&other| long_id_bytes(arenas, other) == bytes)
                {
                    continue;
                }
            }
        }
        values[kept] = value;
        kept += 1;
    }
    kept
}

/// (id, count) runs of a sorted slice of ids, without [`NULL_KEY`] (which sorts last).
pub fn counted_runs(sorted: &[u32]) -> impl Iterator<Item = (u32, u64)> + '_ {
    sorted
        .chunk_by(|a, b| a == b)
        .filter(|run| run[0] != NULL_KEY)
        .map(|run| (run[0], run.len() as u64))
}

/// Per group of a bucket merged from Spark frames ([`BucketGroups`]): its sessions.
#[derive(Default)]
pub struct GroupSessions {
    pub groups: Vec<u32>,
    pub sessions: Vec<u128>,
}

/// Distinct sessions per group of one bucket, from its (group, session) records (consumed).
pub fn distinct_sessions(groups: usize, records: GroupSessions) -> Vec<u64> {
    let mut starts = vec![0usize; groups + 1];
    for &g in &records.groups {
        starts[g as usize + 1] += 1;
    }
    for g in 0..groups {
        starts[g + 1] += starts[g];
    }
    let mut cursor = starts.clone();
    let mut sessions = vec![0u128; starts[groups]];
    for (&g, &s) in records.groups.iter().zip(&records.sessions) {
        let at = &mut cursor[g as usize];
        sessions[*at] = s;
        *at += 1;
    }
    (0..groups)
        .map(|g| {
            let slice = &mut sessions[starts[g]..starts[g + 1]];
            slice.sort_unstable();
            dedup_sorted(slice, &[]) as u64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_sessions_are_injective() {
        let ids: [&[u8]; 6] = [b"", b"a", b"a\x01", b"ab", b"0123456789abcdef", b"\x01"];
        let packed: Vec<u128> = ids.iter().map(|s| pack_session(s).unwrap()).collect();
        for i in 0..ids.len() {
            for j in 0..ids.len() {
                assert_eq!(packed[i] == packed[j], i == j, "{:?} {:?}", ids[i], ids[j]);
            }
        }
        assert!(pack_session(b"0123456789abcdef0").is_none());
        assert!(pack_session(b"a\0").is_none());
        // Long ids are numbered from 1 and packed ids of 1..16 bytes are at least 2^120.
        assert!(packed[1..].iter().all(|&p| p >= 1 << 120));
    }

    /// Long ids from two tasks: equal ids count once, different ids (also with equal hashes,
    /// forced here) twice, and none is mistaken for a packed short id.
    #[test]
    fn long_sessions_are_compared_by_their_bytes() {
        let shuffle = Shuffle::new(1, 1);
        let (mut first, mut second) = (MapTask::new(&shuffle, 0), MapTask::new(&shuffle, 1));
        let a = first.long_session(b"a-session-id-longer-than-16").unwrap();
        let b = first.long_session(b"a-session-id-longer-than-17").unwrap();
        let a_again = second.long_session(b"a-session-id-longer-than-16").unwrap();
        let nul = second.long_session(b"x\0").unwrap();
        let arenas = vec![first.finish().1, second.finish().1];
        assert!([a, b, a_again, nul].iter().all(|&v| is_long_id(v)));
        assert_ne!(nul, pack_session(b"x").unwrap());
        assert_eq!(
            long_id_bytes(&arenas, a_again),
            b"a-session-id-longer-than-16"
        );
        assert_eq!(a >> 64, a_again >> 64);
        let mut values = vec![a, b, a_again, 1 << 120, a];
        values.sort_unstable();
        assert_eq!(dedup_sorted(&mut values, &arenas), 3);
        // Two different ids under one hash are still two.
        let collided = (a >> 64) << 64 | (b & u128::from(u64::MAX));
        let mut values = vec![a, collided, a_again];
        values.sort_unstable();
        assert_eq!(dedup_sorted(&mut values, &arenas), 2);
    }

    #[test]
    fn buckets_come_from_values_and_are_stable() {
        // Pinned: another process (or build) must route a group to the same bucket.
        assert_eq!(
            group_hash("site-0.example", "https://site-0.example/a", 498_653),
            0x9e4d2a1c12c80195
        );
        assert_ne!(group_hash("a", "bc", 0), group_hash("ab", "c", 0));
        assert_ne!(group_hash("a", "b", 0), group_hash("a", "b", 1));
        // A partition's bucket is the group's hash modulo the buckets, for any sizing.
        for (buckets, events) in [(1, 0), (3, 5_000_000), (10, 10_000_000), (7, 1 << 30)] {
            let shuffle = Shuffle::new(buckets, events);
            for (customer, url, hour) in [("a", "b", 0), ("site", "https://x/", 498_653)] {
                let partition = shuffle.partition_of_prefix(group_hash_prefix(customer, url), hour);
                assert_eq!(
                    partition % buckets,
                    (group_hash(customer, url, hour) % buckets as u64) as usize
                );
            }
        }
    }

    #[test]
    fn distinct_counts_per_group() {
        let records = GroupSessions {
            groups: vec![0, 1, 0, 2, 1, 0],
            sessions: vec![5, 5, 5, 7, 6, 9],
        };
        assert_eq!(distinct_sessions(4, records), [2, 2, 1, 0]);
    }

    fn row(customer: u32, url: u32, hour: i32, referrer: u32, session: u128) -> Row {
        Row {
            session,
            customer,
            url,
            hour,
            referrer,
        }
    }

    /// Rows of one group from several pieces come together; sessions are counted distinct
    /// and referrers counted by their mapped ids, null referrers left out.
    #[test]
    fn rows_group_across_pieces() {
        let pieces = vec![
            vec![
                row(0, 1, 5, 3, 10),
                row(0, 2, 5, NULL_KEY, 11),
                row(0, 1, 5, 4, 10),
            ],
            vec![row(0, 1, 5, 3, 12), row(0, 1, -1, 3, 10)],
        ];
        let mut grouped = GroupedRows::new(vec![pieces], |r| 100 - r);
        assert_eq!(grouped.keys, [(0, 1, 5), (0, 2, 5), (0, 1, -1)]);
        let (sessions, referrers) = grouped.take_group(0, &[]);
        assert_eq!(sessions, [10, 12]);
        assert_eq!(
            counted_runs(referrers).collect::<Vec<_>>(),
            [(96, 1), (97, 2)]
        );
        let (sessions, referrers) = grouped.take_group(1, &[]);
        assert_eq!(
            (sessions, counted_runs(referrers).count()),
            (&[11u128][..], 0)
        );
        assert_eq!(grouped.take_group(2, &[]).0, [10]);
    }
}
