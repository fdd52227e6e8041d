//! The rollup's map, shuffle and reduce kernels.
//!
//! - **map** ([`MapTask`]): one input split's rows into per-bucket partial state. A group is
//!   (customer, url, UTC hour floor of ts); strings become global ids once per batch
//!   dictionary (never per row), and each group gets a bucket (a hash of its ids) and a dense
//!   index inside that bucket from the bucket's shard of the group table. Page views and
//!   referrer counts are additive and summed per task; sessions cannot be, so each row leaves
//!   one 20-byte record (group index `u32`, session `u128`) in its bucket's piece.
//! - **reduce** ([`reduce_bucket`]): a bucket's pieces, counting-sorted by group, each group's
//!   sessions sorted and counted distinct — exact, no sketches.
//!
//! Session identity is exact: an id of at most 16 bytes without NUL packs injectively into a
//! `u128` (big-endian, zero padded: its first byte is non-zero unless it is empty, which packs
//! to 0); longer ids (or ids with NUL) are interned by their bytes into a counter `n`, encoded
//! as `n + 1` — below 2^64, so never equal to a packed id of 1–16 bytes (at least 2^120).

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

/// One shard of [`SharedLongSessions`]: an id's hash, bytes and number. The hash is kept so
/// a probe compares bytes (far away in memory) only when the whole hash matches, and a
/// table that grows never hashes the bytes again.
type LongSessionShard = Mutex<hashbrown::HashTable<(u64, Box<[u8]>, u64)>>;

/// Shards of [`SharedLongSessions`] (a power of two).
const LONG_SESSION_SHARDS: usize = 64;

/// Long session ids numbered once for all map tasks of a process: sharded by a hash of the
/// bytes so concurrent tasks rarely wait on one another (one lock per row would serialize the
/// map when every id is long, as UUIDs are). Numbers are dense, from one counter.
pub struct SharedLongSessions {
    hasher: hashbrown::DefaultHashBuilder,
    shards: Vec<LongSessionShard>,
    next: std::sync::atomic::AtomicU64,
}

impl Default for SharedLongSessions {
    fn default() -> Self {
        SharedLongSessions {
            hasher: hashbrown::DefaultHashBuilder::default(),
            shards: (0..LONG_SESSION_SHARDS).map(|_| Mutex::default()).collect(),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl SharedLongSessions {
    /// The packed form of a long session id (number + 1), numbering it when new.
    pub fn packed(&self, bytes: &[u8]) -> u128 {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(bytes);
        // Bits a table never uses: its tags are the top 7 bits and its slots the low ones, so
        // sharding by either would leave the ids of a shard telling themselves apart by less.
        let shard = (hash >> 40) as usize & (LONG_SESSION_SHARDS - 1);
        let mut table = self.shards[shard].lock().expect("session shard");
        let number = match table.find(hash, |(h, b, _)| *h == hash && **b == *bytes) {
            Some(&(_, _, number)) => number,
            None => {
                let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                table.insert_unique(hash, (hash, bytes.into(), number), |(h, _, _)| *h);
                number
            }
        };
        u128::from(number) + 1
    }

    /// The ids' bytes, by number.
    fn by_number(&self) -> Vec<Box<[u8]>> {
        let count = self.next.load(std::sync::atomic::Ordering::Relaxed) as usize;
        let mut out: Vec<Box<[u8]>> = vec![Box::default(); count];
        for shard in &self.shards {
            for (_, bytes, number) in shard.lock().expect("session shard").iter() {
                out[*number as usize] = bytes.clone();
            }
        }
        out
    }
}

/// The state map tasks share: the dictionaries and the long session ids.
pub struct Shuffle {
    pub buckets: usize,
    /// Partitions each bucket's rows come in (see [`Shuffle::partition_of_prefix`]).
    pub partitions_per_bucket: usize,
    pub customers: Interner,
    pub urls: Interner,
    pub referrers: Interner,
    long_sessions: SharedLongSessions,
}

/// The dictionaries once every map task is done: a row's ids index them.
pub struct Dictionaries {
    pub customers: Vec<Box<str>>,
    pub urls: Vec<Box<str>>,
    pub referrers: Vec<Box<str>>,
}

impl Shuffle {
    pub fn new(buckets: usize, partitions_per_bucket: usize) -> Shuffle {
        Shuffle {
            buckets: buckets.max(1),
            partitions_per_bucket: partitions_per_bucket.max(1),
            customers: Interner::default(),
            urls: Interner::default(),
            referrers: Interner::default(),
            long_sessions: SharedLongSessions::default(),
        }
    }

    fn long_session(&self, bytes: &[u8]) -> u128 {
        self.long_sessions.packed(bytes)
    }

    /// The bucket of a group, from its values (not this process's ids), so every process of
    /// a distributed run — each with its own ids — sends a group to the same reduce task.
    pub fn bucket_of(&self, customer: &str, url: &str, hour: i64) -> usize {
        self.bucket_of_prefix(group_hash_prefix(customer, url), hour)
    }

    /// [`Shuffle::bucket_of`] from the (customer, url) prefix state ([`group_hash_prefix`]).
    #[inline]
    pub fn bucket_of_prefix(&self, prefix: u64, hour: i64) -> usize {
        (group_hash_finish(prefix, hour) % self.buckets as u64) as usize
    }

    /// All partitions: `partitions_per_bucket` for each bucket.
    pub fn partitions(&self) -> usize {
        self.buckets * self.partitions_per_bucket
    }

    /// The partition of a group: its hash modulo [`Shuffle::partitions`]. As the bucket count
    /// divides the partition count, partition `p` belongs to bucket `p % buckets` (the
    /// group's [`Shuffle::bucket_of_prefix`]). A reduce groups its bucket one partition at a
    /// time, so each hash table holds a partition's groups and stays in the core's cache.
    #[inline]
    pub fn partition_of_prefix(&self, prefix: u64, hour: i64) -> usize {
        (group_hash_finish(prefix, hour) % self.partitions() as u64) as usize
    }

    /// The bytes of the long session ids interned so far, by number (packed as number + 1):
    /// what a Spark map task ships, as the numbers mean nothing in another process.
    pub fn long_sessions(&self) -> Vec<Box<[u8]>> {
        self.long_sessions.by_number()
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

/// One partition's share of a map task's output, a row per event.
pub type Piece = Vec<Row>;

/// A map task: reads batches into per-partition pieces, one [`Row`] per event. It does not
/// combine rows of a group: at the shapes users have (a file's rows spread over many
/// (customer, url, hour) groups), a task-local table would hash every row only to combine
/// almost nothing; the reduce groups each bucket once, with a table the size of the bucket.
pub struct MapTask<'s> {
    shuffle: &'s Shuffle,
    pieces: Vec<Piece>,
    pub rows: u64,
}

impl<'s> MapTask<'s> {
    pub fn new(shuffle: &'s Shuffle) -> MapTask<'s> {
        MapTask {
            shuffle,
            pieces: (0..shuffle.partitions()).map(|_| Piece::new()).collect(),
            rows: 0,
        }
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
        // (rows of a url mostly share one customer), so the strings are hashed once per value.
        let mut prefixes: Vec<(u32, u64)> = vec![(u32::MAX, 0); url_ids.len()];
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
            let prefix = match prefixes[url_key] {
                (c, state) if c == customer => state,
                _ => {
                    let state = group_hash_prefix(customer_name, columns.url.values[url_key]);
                    prefixes[url_key] = (customer, state);
                    state
                }
            };
            let referrer_key = columns.referrer.keys[i];
            let referrer = if referrer_key == NULL_KEY {
                NULL_KEY
            } else {
                referrer_ids[referrer_key as usize]
            };
            let session = columns.session.get(i);
            let packed = pack_session(session).unwrap_or_else(|| shuffle.long_session(session));
            self.pieces[shuffle.partition_of_prefix(prefix, hour)].push(Row {
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

    /// The task's pieces, one per partition.
    pub fn finish(mut self) -> Vec<Piece> {
        for piece in &mut self.pieces {
            piece.shrink_to_fit();
        }
        self.pieces
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
            for row in pieces.iter().flatten() {
                let next = counts.len() as u32;
                let g = *index
                    .entry((row.customer, row.url, row.hour))
                    .or_insert(next);
                if g == next {
                    keys.push(row.key());
                    counts.push(0);
                }
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

    /// Group `g`'s rows: its sessions (sorted and distinct afterwards, in place: a group is
    /// read once) and its referrers (sorted, in place).
    pub fn take_group(&mut self, g: usize) -> (&[u128], &[u32]) {
        let range = self.starts[g]..self.starts[g + 1];
        let sessions = &mut self.sessions[range.clone()];
        sessions.sort_unstable();
        let distinct = dedup_sorted(sessions);
        let referrers = &mut self.referrers[range];
        referrers.sort_unstable();
        (&sessions[..distinct], referrers)
    }
}

/// Moves the distinct values of a sorted slice to its front; returns how many there are.
fn dedup_sorted(values: &mut [u128]) -> usize {
    let mut kept = 0;
    for i in 0..values.len() {
        if kept == 0 || values[i] != values[kept - 1] {
            values[kept] = values[i];
            kept += 1;
        }
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
            dedup_sorted(slice) as u64
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

    #[test]
    fn long_sessions_are_compared_by_their_bytes() {
        let shuffle = Shuffle::new(1, 1);
        let a = shuffle.long_session(b"a-session-id-longer-than-16");
        let b = shuffle.long_session(b"a-session-id-longer-than-17");
        assert_ne!(a, b);
        assert_eq!(a, shuffle.long_session(b"a-session-id-longer-than-16"));
        assert_ne!(shuffle.long_session(b"x\0"), pack_session(b"x").unwrap());
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
        let (sessions, referrers) = grouped.take_group(0);
        assert_eq!(sessions, [10, 12]);
        assert_eq!(
            counted_runs(referrers).collect::<Vec<_>>(),
            [(96, 1), (97, 2)]
        );
        let (sessions, referrers) = grouped.take_group(1);
        assert_eq!(
            (sessions, counted_runs(referrers).count()),
            (&[11u128][..], 0)
        );
        assert_eq!(grouped.take_group(2).0, [10]);
    }
}
