//! A catalog held in Parquet or CSV files (`advertiser_id`, `product_id` columns; JSON Lines
//! works too) at a path, directory, glob or `s3://` prefix.
//!
//! Neither lookup loads the catalog: each streams every catalog file — row groups in
//! parallel — and marks the keys it finds. `mark_counts` (the local engine) probes the scan's
//! own table of distinct pairs; `contains_all` (a list of keys) first builds a hash set of
//! them. Catalog rows of advertisers nobody viewed are dropped after one lookup per
//! dictionary value, without hashing their products.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::job::counts::{bytes_eq, hash_bytes, AdvertiserKey, Interner, PairCounts, PairMarks};
use crate::job::location::{list_inputs, Location};
use crate::job::model::{Catalog, JobError, PairRef, ScanStats};
use crate::job::source::{plan_file, scan_unit, PairVisitor, ScanOptions, ScanUnit};
use crate::job::table::{prefetch, ProbeTable, TableSlot, PREFETCH_DISTANCE};

pub struct FileCatalog {
    uri: String,
    files: Vec<Location>,
}

impl FileCatalog {
    /// Lists the catalog's files now, so a wrong location fails before the views are read.
    pub fn open(uri: &str) -> Result<FileCatalog, JobError> {
        let files = list_inputs(uri).map_err(|e| as_catalog_error(uri, e))?;
        Ok(FileCatalog {
            uri: uri.to_string(),
            files,
        })
    }

    pub fn files(&self) -> &[Location] {
        &self.files
    }
}

fn as_catalog_error(uri: &str, error: JobError) -> JobError {
    match error {
        JobError::Input { path, message } if path == uri => JobError::catalog(uri, message),
        JobError::Input { path, message } => JobError::catalog(uri, format!("{path}: {message}")),
        other => other,
    }
}

/// One requested key in the lookup table: 32 bytes, one cache line per probe.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct KeySlot {
    hash: u64,
    /// Where the product id is in [`KeySet::bytes`].
    offset: u64,
    len: u32,
    advertiser: u32,
    /// Index into the requested keys; `u32::MAX` marks a free slot.
    key: u32,
}

impl TableSlot for KeySlot {
    const EMPTY: KeySlot = KeySlot {
        hash: 0,
        offset: 0,
        len: 0,
        advertiser: 0,
        key: u32::MAX,
    };

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.key == u32::MAX
    }

    #[inline(always)]
    fn hash(&self) -> u64 {
        self.hash
    }
}

/// The requested keys, hashed for lookup by (advertiser, product); product bytes are copied
/// into one arena so a probe's comparison is one more (prefetched) cache line.
struct KeySet {
    advertisers: Interner,
    bytes: Vec<u8>,
    table: ProbeTable<KeySlot>,
}

impl KeySet {
    fn build(keys: &[PairRef<'_>]) -> Result<KeySet, JobError> {
        if keys.len() >= u32::MAX as usize {
            return Err(JobError::Other(format!(
                "{} catalog lookups at once is more than this catalog reader supports (2^32 - 1)",
                keys.len()
            )));
        }
        let mut advertisers = Interner::default();
        let mut key_advertisers = Vec::with_capacity(keys.len());
        let mut last: Option<(&str, AdvertiserKey)> = None;
        for &(advertiser, _) in keys {
            let key = match last {
                Some((name, key)) if name == advertiser => key,
                _ => advertisers.intern(advertiser),
            };
            last = Some((advertiser, key));
            key_advertisers.push(key);
        }
        let hashes: Vec<u64> = keys
            .par_iter()
            .zip(key_advertisers.par_iter())
            .map(|(&(_, product), advertiser)| hash_bytes(advertiser.hash, product.as_bytes()))
            .collect();
        let mut bytes = Vec::with_capacity(keys.iter().map(|k| k.1.len()).sum());
        let mut table = ProbeTable::with_capacity(keys.len());
        for (i, (&(_, product), advertiser)) in keys.iter().zip(&key_advertisers).enumerate() {
            if let Some(&ahead) = hashes.get(i + PREFETCH_DISTANCE) {
                table.prefetch(ahead);
            }
            let offset = bytes.len() as u64;
            bytes.extend_from_slice(product.as_bytes());
            table.insert_unique(KeySlot {
                hash: hashes[i],
                offset,
                len: product.len() as u32,
                advertiser: advertiser.index,
                key: i as u32,
            });
        }
        Ok(KeySet {
            advertisers,
            bytes,
            table,
        })
    }

    #[inline]
    fn find(&self, hash: u64, advertiser: u32, product: &[u8]) -> Option<u32> {
        self.table
            .find(hash, |s| {
                s.advertiser == advertiser
                    && s.len as usize == product.len()
                    && bytes_eq(
                        &self.bytes[s.offset as usize..s.offset as usize + s.len as usize],
                        product,
                    )
            })
            .map(|s| s.key)
    }
}

struct Marker<'a> {
    set: &'a KeySet,
    hits: &'a [AtomicBool],
    hashes: Vec<u64>,
}

impl PairVisitor for Marker<'_> {
    type Advertiser = AdvertiserKey;

    fn advertiser(&mut self, advertiser_id: &str) -> Option<AdvertiserKey> {
        self.set.advertisers.get(advertiser_id)
    }

    #[inline]
    fn pair(&mut self, advertiser: AdvertiserKey, product_id: &str) {
        let hash = hash_bytes(advertiser.hash, product_id.as_bytes());
        if let Some(i) = self.set.find(hash, advertiser.index, product_id.as_bytes()) {
            self.hits[i as usize].store(true, Ordering::Relaxed);
        }
    }

    fn pairs(&mut self, rows: &[(AdvertiserKey, &str)]) {
        let set = self.set;
        self.hashes.clear();
        self.hashes
            .extend(rows.iter().map(|(a, p)| hash_bytes(a.hash, p.as_bytes())));
        let half = PREFETCH_DISTANCE / 2;
        for (i, &(advertiser, product)) in rows.iter().enumerate() {
            if let Some(&ahead) = self.hashes.get(i + PREFETCH_DISTANCE) {
                set.table.prefetch(ahead);
            }
            if let Some(&near) = self.hashes.get(i + half) {
                if let Some(slot) = set.table.peek(near) {
                    prefetch(set.bytes.as_ptr().wrapping_add(slot.offset as usize));
                }
            }
            if let Some(k) = set.find(self.hashes[i], advertiser.index, product.as_bytes()) {
                self.hits[k as usize].store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Marks the catalog's rows found in the views' own table of pairs.
struct CountsMarker<'a> {
    counts: &'a PairCounts,
    marks: &'a PairMarks,
    hashes: Vec<u64>,
}

impl PairVisitor for CountsMarker<'_> {
    type Advertiser = AdvertiserKey;

    fn advertiser(&mut self, advertiser_id: &str) -> Option<AdvertiserKey> {
        self.counts.find_advertiser(advertiser_id)
    }

    fn pair(&mut self, advertiser: AdvertiserKey, product_id: &str) {
        self.pairs(&[(advertiser, product_id)]);
    }

    fn pairs(&mut self, rows: &[(AdvertiserKey, &str)]) {
        self.counts.mark_batch(self.marks, rows, &mut self.hashes);
    }
}

impl FileCatalog {
    /// Every scan unit of the catalog's files (footers read in parallel).
    fn units(&self, options: ScanOptions) -> Result<Vec<ScanUnit>, JobError> {
        Ok(self
            .files
            .par_iter()
            .map(|file| plan_file(file, options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| as_catalog_error(&self.uri, e))?
            .into_iter()
            .flatten()
            .collect())
    }
}

impl Catalog for FileCatalog {
    fn mark_counts(&self, counts: &PairCounts) -> Option<Result<PairMarks, JobError>> {
        let options = ScanOptions {
            day: None,
            role: "catalog",
        };
        let run = || -> Result<PairMarks, JobError> {
            let marks = counts.new_marks();
            if counts.is_empty() {
                return Ok(marks);
            }
            self.units(options)?
                .par_iter()
                .try_for_each(|unit| {
                    let mut marker = CountsMarker {
                        counts,
                        marks: &marks,
                        hashes: Vec::new(),
                    };
                    scan_unit(unit, options, &mut marker, &mut ScanStats::default())
                })
                .map_err(|e| as_catalog_error(&self.uri, e))?;
            Ok(marks)
        };
        Some(run())
    }

    fn contains_all(&self, keys: &[PairRef<'_>]) -> Result<Vec<bool>, JobError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let set = KeySet::build(keys)?;
        let hits: Vec<AtomicBool> = (0..keys.len()).map(|_| AtomicBool::new(false)).collect();
        let options = ScanOptions {
            day: None,
            role: "catalog",
        };
        self.units(options)?
            .par_iter()
            .try_for_each(|unit| {
                let mut marker = Marker {
                    set: &set,
                    hits: &hits,
                    hashes: Vec::new(),
                };
                scan_unit(unit, options, &mut marker, &mut ScanStats::default())
            })
            .map_err(|e| as_catalog_error(&self.uri, e))?;
        Ok(hits.into_iter().map(AtomicBool::into_inner).collect())
    }
}
