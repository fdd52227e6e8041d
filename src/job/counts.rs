//! The aggregation kernel: view counts per (advertiser_id, product_id).
//!
//! Memory-lean by construction: advertiser ids are interned to `u32` (a few thousand per day),
//! product ids are copied once into a byte arena per shard, and each distinct pair costs one
//! 32-byte slot (hash, count, arena offset, length, advertiser). Pairs are spread over
//! [`SHARDS`] hash tables so tables grow in small steps (no 2× spike of one huge table) and
//! merging/sorting runs shard-parallel.
//!
//! Hashes are *stable*: they depend only on the id bytes (never on process state or an
//! in-process index), so every process of the Spark engine agrees on them:
//!
//! - `hash_bytes(seed, bytes)`: 8-byte little-endian words (the last one zero-padded), each
//!   folded as `h = rotl((h ^ w) * K, 31)` from `h = seed ^ len * K`, `K = 0x9E3779B97F4A7C15`,
//!   finished with MurmurHash3's fmix64.
//! - advertiser hash = `hash_bytes(HASH_SEED, advertiser_id)`; pair hash =
//!   `hash_bytes(advertiser hash, product_id)`.
//! - [`bucket_of_hash`]: `((fmix64(hash ^ BUCKET_SALT) >> 32) * N) >> 32` — uniform over N
//!   buckets, and independent of the bits the hash tables use.
//!
//! Blob format ([`PairCounts::encode`], version 1): magic `EMRSPC01`, then LEB128 varints:
//! advertiser count, each advertiser as (length, UTF-8 bytes); pair count, each pair as
//! (advertiser index, product length, product bytes, view count). Decoding checks every length
//! and index and that the blob ends exactly where it should.

use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;
use rayon::prelude::*;

use super::model::{JobError, ProductMatches, StringColumn};
use super::table::{prefetch, ProbeTable, TableSlot, PREFETCH_DISTANCE};
use super::text;
use super::varint::{put_varint, Reader};

pub const HASH_SEED: u64 = 0x005E_ED0F_E3A5_11E5;
const K: u64 = 0x9E37_79B9_7F4A_7C15;
const BUCKET_SALT: u64 = 0xB0C4_E75A_17ED_0001;
/// Number of hash-table shards in a [`PairCounts`] (a power of two).
pub const SHARDS: usize = 64;
const MAGIC: &[u8; 8] = b"EMRSPC01";

#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The stable byte hash described in the module documentation.
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        h = (h ^ word).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = (h ^ last_word(bytes, rest.len()))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    fmix64(h)
}

/// The last `rest` (1..8) bytes of `bytes` as a little-endian word, zero-padded, without a
/// call to `memcpy` per id: past 8 bytes, the last 8 read at once and shifted down.
#[inline(always)]
fn last_word(bytes: &[u8], rest: usize) -> u64 {
    let n = bytes.len();
    if n >= 8 {
        let word = u64::from_le_bytes(bytes[n - 8..].try_into().expect("8 bytes"));
        word >> ((8 - rest) * 8)
    } else {
        bytes
            .iter()
            .enumerate()
            .fold(0, |word, (i, &byte)| word | u64::from(byte) << (8 * i))
    }
}

/// Whether two byte strings are equal, inline: ids are short (a UUID is 36 bytes), where a
/// call to libc's `memcmp` per probe costs more than the comparison. Words of 8 bytes, the
/// last one overlapping the one before.
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

#[inline]
pub fn advertiser_hash(advertiser_id: &str) -> u64 {
    hash_bytes(HASH_SEED, advertiser_id.as_bytes())
}

#[inline]
pub fn pair_hash(advertiser_id: &str, product_id: &str) -> u64 {
    hash_bytes(advertiser_hash(advertiser_id), product_id.as_bytes())
}

/// The bucket (0..buckets) of a pair hash; `buckets` must be at least 1.
#[inline]
pub fn bucket_of_hash(hash: u64, buckets: u32) -> u32 {
    ((fmix64(hash ^ BUCKET_SALT) >> 32).wrapping_mul(buckets as u64) >> 32) as u32
}

/// The bucket of a pair, as every process of the Spark engine computes it.
pub fn bucket_of(advertiser_id: &str, product_id: &str, buckets: u32) -> u32 {
    bucket_of_hash(pair_hash(advertiser_id, product_id), buckets)
}

#[inline]
fn shard_of(hash: u64) -> usize {
    // Bits 32..38: hashbrown itself uses the low bits (position) and the top 7 (tag).
    ((hash >> 32) as usize) & (SHARDS - 1)
}

/// An interned advertiser: its index in one [`PairCounts`] and its stable hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertiserKey {
    pub index: u32,
    pub hash: u64,
}

/// Distinct strings → dense `u32` indexes, with their stable hashes.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    names: Vec<Box<str>>,
    hashes: Vec<u64>,
    index: HashTable<u32>,
}

impl Interner {
    pub fn intern(&mut self, name: &str) -> AdvertiserKey {
        let hash = advertiser_hash(name);
        let names = &self.names;
        if let Some(&index) = self.index.find(hash, |&i| {
            bytes_eq(names[i as usize].as_bytes(), name.as_bytes())
        }) {
            return AdvertiserKey { index, hash };
        }
        let index = u32::try_from(self.names.len()).expect("fewer than 2^32 advertisers");
        self.names.push(name.into());
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.index
            .insert_unique(hash, index, |&i| hashes[i as usize]);
        AdvertiserKey { index, hash }
    }

    pub fn get(&self, name: &str) -> Option<AdvertiserKey> {
        let hash = advertiser_hash(name);
        self.index
            .find(hash, |&i| &*self.names[i as usize] == name)
            .map(|&index| AdvertiserKey { index, hash })
    }

    pub fn name(&self, index: u32) -> &str {
        &self.names[index as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One distinct pair: 32 bytes, aligned so a probe reads one cache line.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Slot {
    hash: u64,
    count: u64,
    offset: u32,
    len: u32,
    /// `u32::MAX` marks a free slot.
    advertiser: u32,
}

impl TableSlot for Slot {
    const EMPTY: Slot = Slot {
        hash: 0,
        count: 0,
        offset: 0,
        len: 0,
        advertiser: u32::MAX,
    };

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.advertiser == u32::MAX
    }

    #[inline(always)]
    fn hash(&self) -> u64 {
        self.hash
    }
}

#[derive(Debug, Default, Clone)]
struct Shard {
    table: ProbeTable<Slot>,
    arena: Vec<u8>,
}

impl Shard {
    #[inline]
    fn add(&mut self, hash: u64, advertiser: u32, product: &[u8], count: u64) {
        let arena = &self.arena;
        let entry = self.table.entry(hash, |s| {
            s.advertiser == advertiser
                && s.len as usize == product.len()
                && bytes_eq(
                    &arena[s.offset as usize..s.offset as usize + s.len as usize],
                    product,
                )
        });
        match entry {
            Ok(slot) => slot.count += count,
            Err(vacant) => {
                let offset = u32::try_from(self.arena.len())
                    .ok()
                    .filter(|o| (*o as usize) + product.len() <= u32::MAX as usize)
                    .expect("a shard's product ids exceed 4 GiB");
                self.arena.extend_from_slice(product);
                self.table.fill(
                    vacant,
                    Slot {
                        hash,
                        count,
                        offset,
                        len: product.len() as u32,
                        advertiser,
                    },
                );
            }
        }
    }

    /// Prefetches where `hash` lives and, when its slot is already cached and matches, the
    /// product bytes the comparison will read.
    #[inline(always)]
    fn prefetch_slot(&self, hash: u64) {
        self.table.prefetch(hash);
    }

    #[inline(always)]
    fn prefetch_bytes(&self, hash: u64) {
        if let Some(slot) = self.table.peek(hash) {
            prefetch(self.arena.as_ptr().wrapping_add(slot.offset as usize));
        }
    }

    fn product(&self, slot: &Slot) -> &[u8] {
        &self.arena[slot.offset as usize..slot.offset as usize + slot.len as usize]
    }
}

/// Which pairs of one [`PairCounts`] a catalog holds: a flag per slot position of each shard,
/// set concurrently by the catalog's scan workers ([`PairCounts::mark_batch`]) and read by
/// [`PairCounts::into_product_matches_marked`].
pub struct PairMarks {
    shards: Vec<Vec<AtomicBool>>,
}

/// View counts per (advertiser_id, product_id): built by scanning, merged across threads or
/// processes, partitioned into buckets, serialized as blobs, and finally turned into the
/// sorted `product_matches` columns.
#[derive(Debug, Clone)]
pub struct PairCounts {
    advertisers: Interner,
    shards: Vec<Shard>,
    total_views: u64,
    /// Reused per batch: the batch's hashes.
    scratch: Vec<u64>,
}

impl Default for PairCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl PairCounts {
    pub fn new() -> Self {
        PairCounts {
            advertisers: Interner::default(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            total_views: 0,
            scratch: Vec::new(),
        }
    }

    /// Interns an advertiser id; scanners call this once per distinct value they see (per
    /// dictionary page, per run of equal values) and then [`PairCounts::add_with`].
    pub fn advertiser(&mut self, advertiser_id: &str) -> AdvertiserKey {
        self.advertisers.intern(advertiser_id)
    }

    /// Adds `count` views of `product_id` for an advertiser interned in *this* table.
    #[inline]
    pub fn add_with(&mut self, advertiser: AdvertiserKey, product_id: &[u8], count: u64) {
        let hash = hash_bytes(advertiser.hash, product_id);
        self.shards[shard_of(hash)].add(hash, advertiser.index, product_id, count);
        self.total_views += count;
    }

    /// Adds one view of each (advertiser, product) — a scanned batch. Hashes the batch first,
    /// then probes while prefetching ahead (see [`crate::job::table`]).
    pub fn add_batch(&mut self, rows: &[(AdvertiserKey, &str)]) {
        let mut hashes = std::mem::take(&mut self.scratch);
        hashes.clear();
        hashes.extend(rows.iter().map(|(a, p)| hash_bytes(a.hash, p.as_bytes())));
        let n = rows.len();
        let half = PREFETCH_DISTANCE / 2;
        for i in 0..n {
            if let Some(&h) = hashes.get(i + PREFETCH_DISTANCE) {
                self.shards[shard_of(h)].prefetch_slot(h);
            }
            if let Some(&h) = hashes.get(i + half) {
                self.shards[shard_of(h)].prefetch_bytes(h);
            }
            let hash = hashes[i];
            let (advertiser, product) = rows[i];
            self.shards[shard_of(hash)].add(hash, advertiser.index, product.as_bytes(), 1);
        }
        self.total_views += n as u64;
        self.scratch = hashes;
    }

    pub fn add(&mut self, advertiser_id: &str, product_id: &str, count: u64) {
        let key = self.advertiser(advertiser_id);
        self.add_with(key, product_id.as_bytes(), count);
    }

    /// Distinct pairs.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.table.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pair is in this table (the Spark engine's reduce joins a bucket's views
    /// with the same bucket's catalog keys through this).
    pub fn contains(&self, advertiser_id: &str, product_id: &str) -> bool {
        let Some(key) = self.advertisers.get(advertiser_id) else {
            return false;
        };
        let hash = hash_bytes(key.hash, product_id.as_bytes());
        let shard = &self.shards[shard_of(hash)];
        shard
            .table
            .find(hash, |s| {
                s.hash == hash
                    && s.advertiser == key.index
                    && shard.product(s) == product_id.as_bytes()
            })
            .is_some()
    }

    /// No pair marked yet, for [`PairCounts::mark_batch`].
    pub fn new_marks(&self) -> PairMarks {
        PairMarks {
            shards: self
                .shards
                .iter()
                .map(|s| {
                    (0..s.table.capacity())
                        .map(|_| AtomicBool::new(false))
                        .collect()
                })
                .collect(),
        }
    }

    /// The advertiser as interned in this table, if it was seen (a catalog scan skips the
    /// rows of every other advertiser).
    pub fn find_advertiser(&self, advertiser_id: &str) -> Option<AdvertiserKey> {
        self.advertisers.get(advertiser_id)
    }

    /// Marks in `marks` every row of `rows` (advertisers from [`PairCounts::find_advertiser`])
    /// that is a pair of this table: the catalog lookup probes the scan's own table, so no
    /// second set of the distinct pairs is built. Hashes the batch into `hashes` first, then
    /// probes while prefetching ahead.
    pub fn mark_batch(
        &self,
        marks: &PairMarks,
        rows: &[(AdvertiserKey, &str)],
        hashes: &mut Vec<u64>,
    ) {
        hashes.clear();
        hashes.extend(rows.iter().map(|(a, p)| hash_bytes(a.hash, p.as_bytes())));
        let half = PREFETCH_DISTANCE / 2;
        for (i, &(advertiser, product)) in rows.iter().enumerate() {
            if let Some(&h) = hashes.get(i + PREFETCH_DISTANCE) {
                self.shards[shard_of(h)].prefetch_slot(h);
            }
            if let Some(&h) = hashes.get(i + half) {
                self.shards[shard_of(h)].prefetch_bytes(h);
            }
            let hash = hashes[i];
            let product = product.as_bytes();
            let s = shard_of(hash);
            let shard = &self.shards[s];
            let found = shard.table.find_index(hash, |slot| {
                slot.advertiser == advertiser.index
                    && slot.len as usize == product.len()
                    && bytes_eq(shard.product(slot), product)
            });
            if let Some(position) = found {
                marks.shards[s][position].store(true, Ordering::Relaxed);
            }
        }
    }

    /// Sum of all view counts.
    pub fn total_views(&self) -> u64 {
        self.total_views
    }

    /// Every (advertiser_id, product_id, view_count), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, u64)> + '_ {
        self.shards.iter().flat_map(move |shard| {
            shard.table.iter().map(move |slot| {
                (
                    self.advertisers.name(slot.advertiser),
                    product_str(shard.product(slot)),
                    slot.count,
                )
            })
        })
    }

    /// Adds every count of `other` into `self`.
    pub fn merge(&mut self, other: PairCounts) {
        let remap: Vec<u32> = (0..other.advertisers.len() as u32)
            .map(|i| self.advertisers.intern(other.advertisers.name(i)).index)
            .collect();
        self.total_views += other.total_views;
        for (mine, theirs) in self.shards.iter_mut().zip(&other.shards) {
            merge_shard(mine, theirs, &remap);
        }
    }

    /// Merges many tables into one, shard by shard in parallel (the local engine's per-thread
    /// tables, or a reduce task's decoded blobs).
    pub fn merge_all(mut parts: Vec<PairCounts>) -> PairCounts {
        if parts.is_empty() {
            return PairCounts::new();
        }
        // The largest table is the base: the fewest slots move.
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let mut base = parts.remove(0);
        if parts.is_empty() {
            return base;
        }
        let remaps: Vec<Vec<u32>> = parts
            .iter()
            .map(|part| {
                (0..part.advertisers.len() as u32)
                    .map(|i| base.advertisers.intern(part.advertisers.name(i)).index)
                    .collect()
            })
            .collect();
        base.total_views += parts.iter().map(|p| p.total_views).sum::<u64>();
        let mut part_shards: Vec<Vec<Shard>> = parts.into_iter().map(|p| p.shards).collect();
        // Transpose: for each shard index, the base shard and every part's shard.
        let mut columns: Vec<Vec<Shard>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for shards in &mut part_shards {
            for (i, shard) in shards.drain(..).enumerate() {
                columns[i].push(shard);
            }
        }
        base.shards
            .par_iter_mut()
            .zip(columns.into_par_iter())
            .for_each(|(mine, theirs)| {
                for (shard, remap) in theirs.into_iter().zip(&remaps) {
                    merge_shard(mine, &shard, remap);
                }
            });
        base
    }

    /// Splits into `buckets` tables by [`bucket_of_hash`] (the Spark engine's map side).
    pub fn partition(&self, buckets: u32) -> Vec<PairCounts> {
        assert!(buckets >= 1, "at least one bucket");
        let mut out: Vec<PairCounts> = (0..buckets).map(|_| PairCounts::new()).collect();
        let mut keys: Vec<Vec<Option<AdvertiserKey>>> =
            vec![vec![None; self.advertisers.len()]; buckets as usize];
        for shard in &self.shards {
            for slot in shard.table.iter() {
                let b = bucket_of_hash(slot.hash, buckets) as usize;
                let key = *keys[b][slot.advertiser as usize].get_or_insert_with(|| {
                    out[b].advertiser(self.advertisers.name(slot.advertiser))
                });
                out[b].add_with(key, shard.product(slot), slot.count);
            }
        }
        out
    }

    /// The compact binary form (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let bytes: usize = self.shards.iter().map(|s| s.arena.len()).sum();
        let mut out = Vec::with_capacity(16 + bytes + self.len() * 6);
        out.extend_from_slice(MAGIC);
        put_varint(&mut out, self.advertisers.len() as u64);
        for name in &self.advertisers.names {
            put_varint(&mut out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
        put_varint(&mut out, self.len() as u64);
        for shard in &self.shards {
            for slot in shard.table.iter() {
                put_varint(&mut out, slot.advertiser as u64);
                put_varint(&mut out, slot.len as u64);
                out.extend_from_slice(shard.product(slot));
                put_varint(&mut out, slot.count);
            }
        }
        out
    }

    /// Reads a blob written by [`PairCounts::encode`]; `what` names it in errors.
    pub fn decode(blob: &[u8], what: &str) -> Result<PairCounts, JobError> {
        let bad = |why: &str| JobError::input(what, format!("not a valid pair-count blob: {why}"));
        if blob.len() < MAGIC.len() || &blob[..MAGIC.len()] != MAGIC {
            return Err(bad(
                "wrong magic (expected EMRSPC01: version 1 of emrship-job)",
            ));
        }
        let mut reader = Reader {
            data: blob,
            pos: MAGIC.len(),
        };
        let mut counts = PairCounts::new();
        let advertisers = reader.varint().ok_or_else(|| bad("truncated"))?;
        let mut keys = Vec::with_capacity(advertisers.min(1 << 20) as usize);
        for _ in 0..advertisers {
            let name = reader.str().ok_or_else(|| bad("truncated advertiser id"))?;
            let key = counts.advertiser(name);
            if key.index as usize != keys.len() {
                return Err(bad("duplicate advertiser id"));
            }
            keys.push(key);
        }
        let pairs = reader.varint().ok_or_else(|| bad("truncated"))?;
        for _ in 0..pairs {
            let advertiser = reader.varint().ok_or_else(|| bad("truncated pair"))?;
            let key = *keys
                .get(advertiser as usize)
                .ok_or_else(|| bad("advertiser index out of range"))?;
            let product = reader.str().ok_or_else(|| bad("truncated product id"))?;
            let count = reader.varint().ok_or_else(|| bad("truncated count"))?;
            counts.add_with(key, product.as_bytes(), count);
        }
        if reader.pos != blob.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(counts)
    }

    /// The sorted `product_matches` columns, every `matched` false (the catalog lookup fills
    /// them in). Advertisers with no pairs are dropped.
    pub fn into_product_matches(self) -> ProductMatches {
        self.sorted_matches(None)
    }

    /// The sorted `product_matches` columns with `matched` from `marks` (made by this table's
    /// [`PairCounts::new_marks`]).
    pub fn into_product_matches_marked(self, marks: &PairMarks) -> ProductMatches {
        self.sorted_matches(Some(marks))
    }

    fn sorted_matches(self, marks: Option<&PairMarks>) -> ProductMatches {
        let PairCounts {
            advertisers,
            shards,
            ..
        } = self;
        // Rank advertisers by id (only those with pairs).
        let mut per_advertiser = vec![0usize; advertisers.len()];
        for shard in &shards {
            for slot in shard.table.iter() {
                per_advertiser[slot.advertiser as usize] += 1;
            }
        }
        let mut order: Vec<u32> = (0..advertisers.len() as u32)
            .filter(|&i| per_advertiser[i as usize] > 0)
            .collect();
        order.sort_unstable_by(|&a, &b| advertisers.name(a).cmp(advertisers.name(b)));
        let mut rank = vec![u32::MAX; advertisers.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        // Group starts by rank (counting sort), then sort each advertiser's products.
        let mut starts = Vec::with_capacity(order.len() + 1);
        let mut total = 0usize;
        for &i in &order {
            starts.push(total);
            total += per_advertiser[i as usize];
        }
        starts.push(total);
        let slot_lists: Vec<Vec<Slot>> = shards
            .par_iter()
            .map(|s| s.table.iter().copied().collect())
            .collect();
        // Per shard, in the order of `slot_lists`: whether the catalog holds the pair.
        let slot_matched: Vec<Vec<bool>> = match marks {
            None => Vec::new(),
            Some(marks) => shards
                .par_iter()
                .zip(&marks.shards)
                .map(|(s, flags)| {
                    s.table
                        .iter_indexed()
                        .map(|(position, _)| flags[position].load(Ordering::Relaxed))
                        .collect()
                })
                .collect(),
        };
        let mut entries = vec![Entry::default(); total];
        let mut next = starts.clone();
        for (shard_index, slots) in slot_lists.iter().enumerate() {
            let shard = &shards[shard_index];
            for (slot_index, slot) in slots.iter().enumerate() {
                let r = rank[slot.advertiser as usize] as usize;
                entries[next[r]] = Entry {
                    prefix: prefix_key(shard.product(slot)),
                    shard: shard_index as u32,
                    slot: slot_index as u32,
                };
                next[r] += 1;
            }
        }
        let product_of = |e: &Entry| -> &[u8] {
            shards[e.shard as usize].product(&slot_lists[e.shard as usize][e.slot as usize])
        };
        let mut groups = Vec::with_capacity(order.len());
        let mut rest: &mut [Entry] = &mut entries;
        for r in 0..order.len() {
            let (group, tail) = rest.split_at_mut(starts[r + 1] - starts[r]);
            groups.push(group);
            rest = tail;
        }
        groups.par_iter_mut().for_each(|group| {
            group.sort_unstable_by(|a, b| {
                a.prefix
                    .cmp(&b.prefix)
                    .then_with(|| product_of(a).cmp(product_of(b)))
            })
        });
        let bytes: usize = shards.iter().map(|s| s.arena.len()).sum();
        let mut advertiser = Vec::with_capacity(total);
        for r in 0..order.len() {
            advertiser.resize(starts[r + 1], r as u32);
        }
        // The other columns in parallel, a share of the rows per thread (this once ran on one
        // core): counts and flags in place, product ids into a column per share, appended.
        // Entries are in output order but their slots and bytes are scattered: prefetch the
        // slot, then the bytes, of rows ahead.
        let slot_of = |e: &Entry| &slot_lists[e.shard as usize][e.slot as usize];
        let shares = rayon::current_num_threads().max(1);
        let share_rows = total.div_ceil(shares).max(1);
        let mut view_count = vec![0u64; total];
        let mut matched = vec![false; total];
        let product_shares: Vec<StringColumn> = entries
            .par_chunks(share_rows)
            .zip(view_count.par_chunks_mut(share_rows))
            .zip(matched.par_chunks_mut(share_rows))
            .map(|((entries, view_count), matched)| {
                let mut products = StringColumn::with_capacity(entries.len(), bytes / shares);
                for (row, entry) in entries.iter().enumerate() {
                    if let Some(ahead) = entries.get(row + PREFETCH_DISTANCE) {
                        prefetch(slot_of(ahead));
                    }
                    if let Some(near) = entries.get(row + PREFETCH_DISTANCE / 2) {
                        let shard = &shards[near.shard as usize];
                        prefetch(
                            shard
                                .arena
                                .as_ptr()
                                .wrapping_add(slot_of(near).offset as usize),
                        );
                    }
                    let slot = slot_of(entry);
                    products.push(product_str(shards[entry.shard as usize].product(slot)));
                    view_count[row] = slot.count;
                    matched[row] = slot_matched
                        .get(entry.shard as usize)
                        .is_some_and(|flags| flags[entry.slot as usize]);
                }
                products
            })
            .collect();
        // The first share becomes the column (no copy); the others are appended to it.
        let mut product_shares = product_shares.into_iter();
        // (No shares for an empty table: `new`, not `default`, which lacks the first offset.)
        let mut product_id = match product_shares.next() {
            Some(first) => first,
            None => StringColumn::new(),
        };
        for share in product_shares {
            product_id.append(&share);
        }
        ProductMatches {
            advertisers: order
                .iter()
                .map(|&i| advertisers.name(i).to_string())
                .collect(),
            advertiser,
            product_id,
            view_count,
            matched,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// The product id's first 16 bytes, big-endian, zero-padded: most comparisons end here
    /// without touching the arena.
    prefix: [u64; 2],
    shard: u32,
    slot: u32,
}

#[inline]
fn prefix_key(bytes: &[u8]) -> [u64; 2] {
    let mut words = [0u8; 16];
    let n = bytes.len().min(16);
    words[..n].copy_from_slice(&bytes[..n]);
    [
        u64::from_be_bytes(words[..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(words[8..].try_into().expect("8 bytes")),
    ]
}

fn merge_shard(mine: &mut Shard, theirs: &Shard, remap: &[u32]) {
    mine.table.reserve(theirs.table.len() / 2);
    let slots: Vec<&Slot> = theirs.table.iter().collect();
    for (i, slot) in slots.iter().enumerate() {
        if let Some(ahead) = slots.get(i + PREFETCH_DISTANCE) {
            mine.prefetch_slot(ahead.hash);
        }
        if let Some(near) = slots.get(i + PREFETCH_DISTANCE / 2) {
            mine.prefetch_bytes(near.hash);
        }
        mine.add(
            slot.hash,
            remap[slot.advertiser as usize],
            theirs.product(slot),
            slot.count,
        );
    }
}

fn product_str(bytes: &[u8]) -> &str {
    // Only `&str` values are ever added, so the arena holds UTF-8 between slot bounds (checked
    // again all the same, inline for ASCII: this runs once per output row, on one core).
    text::utf8(bytes).expect("product ids are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn reference(rows: &[(String, String)]) -> BTreeMap<(String, String), u64> {
        let mut map = BTreeMap::new();
        for (a, p) in rows {
            *map.entry((a.clone(), p.clone())).or_insert(0) += 1;
        }
        map
    }

    fn as_map(counts: &PairCounts) -> BTreeMap<(String, String), u64> {
        counts
            .iter()
            .map(|(a, p, c)| ((a.to_string(), p.to_string()), c))
            .collect()
    }

    fn rows(n: usize, seed: u64) -> Vec<(String, String)> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = fmix64(x.wrapping_add(K));
                (format!("a{}", x % 7), format!("p{}", (x >> 20) % 50))
            })
            .collect()
    }

    #[test]
    fn bytes_eq_agrees_with_slice_equality_at_every_length() {
        let base: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(37)).collect();
        for n in 0..=40 {
            let a = &base[..n];
            assert!(bytes_eq(a, a));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert!(!bytes_eq(a, &b), "{n} bytes, differing at {at}");
            }
            if n > 0 {
                assert!(!bytes_eq(a, &base[..n - 1]));
            }
        }
    }

    #[test]
    fn hash_bytes_pads_the_last_word_with_zeros_at_every_length() {
        // The definition in the module documentation, written plainly.
        fn reference(seed: u64, bytes: &[u8]) -> u64 {
            let mut h = seed ^ (bytes.len() as u64).wrapping_mul(K);
            for chunk in bytes.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                h = (h ^ u64::from_le_bytes(word))
                    .wrapping_mul(K)
                    .rotate_left(31);
            }
            fmix64(h)
        }
        let base: Vec<u8> = (0..40u8)
            .map(|b| b.wrapping_mul(151).wrapping_add(7))
            .collect();
        for n in 0..=40 {
            assert_eq!(
                hash_bytes(9, &base[..n]),
                reference(9, &base[..n]),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn hashes_are_stable_across_releases() {
        // Pinned: the Spark engine's buckets depend on these exact values.
        assert_eq!(pair_hash("adv-1", "p-1"), 0xb2a0_466c_255e_2f91);
        assert_eq!(bucket_of("adv-1", "p-1", 1000), 404);
        assert_eq!(bucket_of("adv-2", "p-1", 1000), 165);
        assert_eq!(bucket_of("adv-1", "p-1", 1), 0);
        let h = pair_hash("adv-1", "p-1");
        assert_ne!(h, pair_hash("adv-1p", "-1"));
        assert_eq!(hash_bytes(0, b""), fmix64(0));
    }

    #[test]
    fn merge_partition_and_blobs_keep_every_count() {
        let data = rows(5000, 1);
        let expected = reference(&data);
        let mut a = PairCounts::new();
        let mut b = PairCounts::new();
        for (i, (adv, prod)) in data.iter().enumerate() {
            if i % 3 == 0 { &mut a } else { &mut b }.add(adv, prod, 1);
        }
        let merged = PairCounts::merge_all(vec![a.clone(), b.clone()]);
        assert_eq!(as_map(&merged), expected);
        a.merge(b);
        assert_eq!(as_map(&a), expected);
        assert_eq!(a.total_views(), 5000);

        let buckets = a.partition(5);
        for (i, bucket) in buckets.iter().enumerate() {
            for (adv, prod, _) in bucket.iter() {
                assert_eq!(bucket_of(adv, prod, 5) as usize, i);
            }
        }
        let decoded: Vec<PairCounts> = buckets
            .iter()
            .map(|b| PairCounts::decode(&b.encode(), "blob").unwrap())
            .collect();
        assert_eq!(as_map(&PairCounts::merge_all(decoded)), expected);
    }

    #[test]
    fn decode_rejects_damaged_blobs() {
        let mut counts = PairCounts::new();
        counts.add("a", "p", 3);
        let blob = counts.encode();
        assert!(PairCounts::decode(&blob[..blob.len() - 1], "x").is_err());
        assert!(PairCounts::decode(b"EMRSPC02", "x").is_err());
        let mut longer = blob.clone();
        longer.push(0);
        let err = PairCounts::decode(&longer, "bucket-3").unwrap_err();
        assert!(err.to_string().contains("bucket-3"), "{err}");
    }

    #[test]
    fn product_matches_are_sorted_by_advertiser_then_product() {
        let data = rows(3000, 9);
        let expected = reference(&data);
        let mut counts = PairCounts::new();
        counts.advertiser("never-used");
        for (adv, prod) in &data {
            counts.add(adv, prod, 1);
        }
        let table = counts.into_product_matches();
        let got: Vec<((String, String), u64)> = table
            .iter()
            .map(|r| ((r.advertiser_id.into(), r.product_id.into()), r.view_count))
            .collect();
        let want: Vec<((String, String), u64)> = expected.into_iter().collect();
        assert_eq!(got, want);
        assert!(!table.advertisers.contains(&"never-used".to_string()));
    }
}
