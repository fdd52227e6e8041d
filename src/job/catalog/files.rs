//! A catalog held in Parquet or CSV files (`advertiser_id`, `product_id` columns; JSON Lines
//! works too) at a path, directory, glob or `s3://` prefix.
//!
//! `contains_all` never loads the catalog: it builds a hash set of the requested (distinct,
//! viewed) keys, streams every catalog file — row groups in parallel — and marks the keys it
//! finds. Catalog rows of advertisers nobody viewed are dropped after one lookup per
//! dictionary value, without hashing their products.

use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashTable;
use rayon::prelude::*;

use crate::job::counts::{hash_bytes, AdvertiserKey, Interner};
use crate::job::location::{list_inputs, Location};
use crate::job::model::{Catalog, JobError, PairRef, ScanStats};
use crate::job::source::{plan_file, scan_unit, PairVisitor, ScanOptions, ScanUnit};

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

/// The requested keys, hashed for lookup by (advertiser, product).
struct KeySet<'k> {
    keys: &'k [PairRef<'k>],
    advertisers: Interner,
    key_advertiser: Vec<u32>,
    hashes: Vec<u64>,
    table: HashTable<u32>,
}

impl<'k> KeySet<'k> {
    fn build(keys: &'k [PairRef<'k>]) -> KeySet<'k> {
        let mut advertisers = Interner::default();
        let mut key_advertiser = Vec::with_capacity(keys.len());
        let mut advertiser_hashes = Vec::with_capacity(keys.len());
        let mut last: Option<(&str, AdvertiserKey)> = None;
        for &(advertiser, _) in keys {
            let key = match last {
                Some((name, key)) if name == advertiser => key,
                _ => advertisers.intern(advertiser),
            };
            last = Some((advertiser, key));
            key_advertiser.push(key.index);
            advertiser_hashes.push(key.hash);
        }
        let hashes: Vec<u64> = keys
            .par_iter()
            .zip(advertiser_hashes.par_iter())
            .map(|(&(_, product), &seed)| hash_bytes(seed, product.as_bytes()))
            .collect();
        let mut table = HashTable::with_capacity(keys.len());
        for (i, &hash) in hashes.iter().enumerate() {
            table.insert_unique(hash, i as u32, |&j| hashes[j as usize]);
        }
        KeySet {
            keys,
            advertisers,
            key_advertiser,
            hashes,
            table,
        }
    }
}

struct Marker<'a, 'k> {
    set: &'a KeySet<'k>,
    hits: &'a [AtomicBool],
}

impl PairVisitor for Marker<'_, '_> {
    type Advertiser = AdvertiserKey;

    fn advertiser(&mut self, advertiser_id: &str) -> Option<AdvertiserKey> {
        self.set.advertisers.get(advertiser_id)
    }

    #[inline]
    fn pair(&mut self, advertiser: AdvertiserKey, product_id: &str) {
        let set = self.set;
        let hash = hash_bytes(advertiser.hash, product_id.as_bytes());
        if let Some(&i) = set.table.find(hash, |&i| {
            let i = i as usize;
            set.hashes[i] == hash
                && set.key_advertiser[i] == advertiser.index
                && set.keys[i].1 == product_id
        }) {
            self.hits[i as usize].store(true, Ordering::Relaxed);
        }
    }
}

impl Catalog for FileCatalog {
    fn contains_all(&self, keys: &[PairRef<'_>]) -> Result<Vec<bool>, JobError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let set = KeySet::build(keys);
        let hits: Vec<AtomicBool> = (0..keys.len()).map(|_| AtomicBool::new(false)).collect();
        let options = ScanOptions {
            day: None,
            role: "catalog",
        };
        let units: Vec<ScanUnit> = self
            .files
            .par_iter()
            .map(|file| plan_file(file, options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| as_catalog_error(&self.uri, e))?
            .into_iter()
            .flatten()
            .collect();
        units
            .par_iter()
            .try_for_each(|unit| {
                let mut marker = Marker {
                    set: &set,
                    hits: &hits,
                };
                scan_unit(unit, options, &mut marker, &mut ScanStats::default())
            })
            .map_err(|e| as_catalog_error(&self.uri, e))?;
        Ok(hits.into_iter().map(AtomicBool::into_inner).collect())
    }
}
