//! The shapes every part of the match-rate job shares: the two output tables, scan
//! statistics, the sink and catalog contracts, and the job's error type.
//!
//! `product_matches` is held column-wise (advertiser index + one byte buffer of product ids)
//! because at seed scale it has 8 million rows: one `String` per cell would cost more memory
//! than the aggregation itself.

use std::fmt;

use chrono::NaiveDate;

/// The day a run processes (`--date`).
pub type Day = NaiveDate;

/// Strings stored back to back, Arrow style: value `i` is `bytes[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringColumn {
    offsets: Vec<usize>,
    bytes: Vec<u8>,
}

impl StringColumn {
    pub fn new() -> Self {
        StringColumn {
            offsets: vec![0],
            bytes: Vec::new(),
        }
    }

    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        StringColumn {
            offsets,
            bytes: Vec::with_capacity(bytes),
        }
    }

    pub fn push(&mut self, value: &str) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.bytes.extend_from_slice(value.as_bytes());
        self.offsets.push(self.bytes.len());
    }

    /// Adds every value of `other` after this column's.
    pub fn append(&mut self, other: &StringColumn) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.offsets
            .extend(other.offsets.iter().skip(1).map(|&end| base + end));
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, index: usize) -> &str {
        let bytes = &self.bytes[self.offsets[index]..self.offsets[index + 1]];
        // Only `push(&str)` writes here, so every slice between offsets is valid UTF-8 (checked
        // again all the same, inline for ASCII: sinks read every row through here).
        super::text::utf8(bytes).expect("StringColumn holds UTF-8 only")
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Total bytes of all values (for sizing buffers and reports).
    pub fn value_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// One row of `product_matches`, borrowed from the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductMatchRow<'a> {
    pub advertiser_id: &'a str,
    pub product_id: &'a str,
    pub view_count: u64,
    pub matched: bool,
}

/// `product_matches(day, advertiser_id, product_id, view_count, matched)` for one day, sorted
/// by (advertiser_id, product_id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductMatches {
    /// Distinct advertiser ids, sorted; rows point into it.
    pub advertisers: Vec<String>,
    /// Per row: index into `advertisers`.
    pub advertiser: Vec<u32>,
    pub product_id: StringColumn,
    pub view_count: Vec<u64>,
    pub matched: Vec<bool>,
}

impl ProductMatches {
    pub fn len(&self) -> usize {
        self.advertiser.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advertiser.is_empty()
    }

    pub fn row(&self, index: usize) -> ProductMatchRow<'_> {
        ProductMatchRow {
            advertiser_id: &self.advertisers[self.advertiser[index] as usize],
            product_id: self.product_id.get(index),
            view_count: self.view_count[index],
            matched: self.matched[index],
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = ProductMatchRow<'_>> + '_ {
        (0..self.len()).map(move |i| self.row(i))
    }

    /// Builds the column form from rows in any order (sorts them). Meant for tests, tools and
    /// small inputs; the engines build the columns directly.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = ProductMatchRow<'a>>) -> Self {
        let mut rows: Vec<ProductMatchRow<'a>> = rows.into_iter().collect();
        rows.sort_by(|a, b| (a.advertiser_id, a.product_id).cmp(&(b.advertiser_id, b.product_id)));
        let mut table = ProductMatches {
            product_id: StringColumn::with_capacity(rows.len(), 0),
            ..ProductMatches::default()
        };
        for row in rows {
            if table.advertisers.last().map(String::as_str) != Some(row.advertiser_id) {
                table.advertisers.push(row.advertiser_id.to_string());
            }
            table.advertiser.push((table.advertisers.len() - 1) as u32);
            table.product_id.push(row.product_id);
            table.view_count.push(row.view_count);
            table.matched.push(row.matched);
        }
        table
    }
}

/// One row of `advertiser_match_rates(day, advertiser_id, total_views, matched_views,
/// total_products, matched_products, match_rate)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvertiserRate {
    pub advertiser_id: String,
    pub total_views: u64,
    pub matched_views: u64,
    pub total_products: u64,
    pub matched_products: u64,
    /// matched_views / total_views: the share of viewed items found in the catalog.
    pub match_rate: f64,
}

/// Both output tables of one day.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRateTables {
    pub day: Day,
    pub product_matches: ProductMatches,
    /// Sorted by advertiser_id.
    pub advertiser_rates: Vec<AdvertiserRate>,
}

impl MatchRateTables {
    /// Derives `advertiser_match_rates` from `product_matches` (the per-advertiser reduce).
    pub fn from_product_matches(day: Day, product_matches: ProductMatches) -> Self {
        let mut advertiser_rates: Vec<AdvertiserRate> = product_matches
            .advertisers
            .iter()
            .map(|id| AdvertiserRate {
                advertiser_id: id.clone(),
                total_views: 0,
                matched_views: 0,
                total_products: 0,
                matched_products: 0,
                match_rate: 0.0,
            })
            .collect();
        for i in 0..product_matches.len() {
            let rate = &mut advertiser_rates[product_matches.advertiser[i] as usize];
            let views = product_matches.view_count[i];
            rate.total_views += views;
            rate.total_products += 1;
            if product_matches.matched[i] {
                rate.matched_views += views;
                rate.matched_products += 1;
            }
        }
        advertiser_rates.retain(|rate| rate.total_products > 0);
        for rate in &mut advertiser_rates {
            rate.match_rate = if rate.total_views == 0 {
                0.0
            } else {
                rate.matched_views as f64 / rate.total_views as f64
            };
        }
        advertiser_rates.sort_by(|a, b| a.advertiser_id.cmp(&b.advertiser_id));
        MatchRateTables {
            day,
            product_matches,
            advertiser_rates,
        }
    }
}

/// What a scan saw besides the rows it counted; reported on stderr and never fatal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub files: u64,
    pub rows_read: u64,
    pub rows_counted: u64,
    /// Rows whose `event_time` falls outside `--date` (UTC day).
    pub rows_outside_day: u64,
    /// Rows with a null or empty `advertiser_id` or `product_id`.
    pub rows_missing_ids: u64,
}

impl ScanStats {
    pub fn merge(&mut self, other: &ScanStats) {
        self.files += other.files;
        self.rows_read += other.rows_read;
        self.rows_counted += other.rows_counted;
        self.rows_outside_day += other.rows_outside_day;
        self.rows_missing_ids += other.rows_missing_ids;
    }
}

/// Where a day's tables went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkReport {
    /// The sink, with any password removed: safe to print.
    pub destination: String,
    pub product_rows: u64,
    pub advertiser_rows: u64,
}

/// A destination for the day's tables. `write_day` replaces the day atomically: afterwards
/// the destination holds exactly `tables` for `tables.day` (other days untouched), or, on any
/// error, exactly what it held before.
pub trait DaySink {
    fn write_day(&mut self, tables: &MatchRateTables) -> Result<SinkReport, JobError>;
}

/// (advertiser_id, product_id) pairs to look up in a catalog.
pub type PairRef<'a> = (&'a str, &'a str);

/// A product catalog: which (advertiser_id, product_id) pairs exist.
pub trait Catalog {
    /// For each key, whether the catalog has it; same order and length as `keys`. Called with
    /// distinct keys only.
    fn contains_all(&self, keys: &[PairRef<'_>]) -> Result<Vec<bool>, JobError>;

    /// Which pairs of `counts` the catalog holds, found by probing `counts` itself (no second
    /// set of the distinct pairs); `None` when this catalog only answers lists of keys, and
    /// the caller uses [`Catalog::contains_all`].
    fn mark_counts(
        &self,
        _counts: &crate::job::counts::PairCounts,
    ) -> Option<Result<crate::job::counts::PairMarks, JobError>> {
        None
    }
}

/// Everything that can stop the job, each naming what and where, and how to fix it where
/// that is known.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Wrong or inconsistent arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An input file that cannot be read or does not have the needed shape.
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    /// The catalog cannot be read.
    #[error("catalog {catalog}: {message}")]
    Catalog { catalog: String, message: String },
    /// The sink cannot be written; nothing of the day was changed.
    #[error("sink {sink}: {message}")]
    Sink { sink: String, message: String },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

impl JobError {
    pub fn input(path: impl fmt::Display, message: impl fmt::Display) -> Self {
        JobError::Input {
            path: path.to_string(),
            message: message.to_string(),
        }
    }

    pub fn catalog(catalog: impl fmt::Display, message: impl fmt::Display) -> Self {
        JobError::Catalog {
            catalog: catalog.to_string(),
            message: message.to_string(),
        }
    }

    pub fn sink(sink: impl fmt::Display, message: impl fmt::Display) -> Self {
        JobError::Sink {
            sink: sink.to_string(),
            message: message.to_string(),
        }
    }

    /// Wrong arguments and input data are invalid (exit 2, fix and run again); a catalog or
    /// sink that cannot be reached, and anything else, are failures (exit 1).
    pub fn class(&self) -> crate::edge::ErrorClass {
        use crate::edge::ErrorClass;
        match self {
            JobError::Usage(_) | JobError::Input { .. } => ErrorClass::Invalid,
            JobError::Catalog { .. } | JobError::Sink { .. } | JobError::Other(_) => {
                ErrorClass::Failure
            }
        }
    }

    /// The exit status for this error (the table in `crate::edge`).
    pub fn exit_code(&self) -> u8 {
        self.class().exit_status().code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_string_columns_keep_every_value_in_order() {
        let column = |values: &[&str]| {
            let mut column = StringColumn::new();
            values.iter().for_each(|v| column.push(v));
            column
        };
        let mut joined = column(&["a", "", "bc"]);
        joined.append(&column(&["d", "ef"]));
        joined.append(&StringColumn::default());
        assert_eq!(joined, column(&["a", "", "bc", "d", "ef"]));
        let mut empty = StringColumn::default();
        empty.append(&column(&["x"]));
        assert_eq!(empty.iter().collect::<Vec<_>>(), ["x"]);
    }

    fn day() -> Day {
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
    }

    #[test]
    fn advertiser_rates_sum_product_rows() {
        let rows = [
            ("a2", "p1", 5, true),
            ("a1", "p2", 3, false),
            ("a1", "p1", 1, true),
        ];
        let matches = ProductMatches::from_rows(rows.iter().map(|&(a, p, v, m)| ProductMatchRow {
            advertiser_id: a,
            product_id: p,
            view_count: v,
            matched: m,
        }));
        let first = matches.row(0);
        assert_eq!((first.advertiser_id, first.product_id), ("a1", "p1"));
        let tables = MatchRateTables::from_product_matches(day(), matches);
        assert_eq!(tables.advertiser_rates.len(), 2);
        let a1 = &tables.advertiser_rates[0];
        assert_eq!(
            (
                a1.total_views,
                a1.matched_views,
                a1.total_products,
                a1.matched_products
            ),
            (4, 1, 2, 1)
        );
        assert_eq!(a1.match_rate, 0.25);
        assert_eq!(tables.advertiser_rates[1].match_rate, 1.0);
    }
}
