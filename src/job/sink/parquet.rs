//! The Parquet dataset sink: a local directory or an `s3://` prefix holding
//! `<root>/product_matches/day=YYYY-MM-DD/part-….parquet` and
//! `<root>/advertiser_match_rates/day=YYYY-MM-DD/part-….parquet` (Hive-style day partitions that
//! Spark, DuckDB, Polars and Athena read as they are). Columns are exactly the tables' columns:
//! `day` is a Date32, counts are Int64, `matched` Boolean, `match_rate` Float64; zstd-compressed.
//!
//! Replacing a day: both tables are written aside first, into hidden `_tmp-day=D-<run>/`
//! siblings (readers skip `_` names). Only when every file is written is the day swapped in:
//! - locally by directory renames (the old `day=D` is renamed to `_old-…`, the new one renamed
//!   into place, then the old removed) — a reader sees the old day or the new one;
//! - on S3, which has no rename, the new files are copied into `day=D/` under run-unique names,
//!   then the old day's files are deleted, then the staging prefix. A failure before the copy
//!   leaves the day untouched; a reader listing `day=D/` in the seconds between copy and delete
//!   can see both runs' files, and a failure inside that window leaves them both (the next run
//!   of the day cleans it up, since it deletes every file it did not write).

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use crate::job::location::{replace_dir, run_id, Location, ReplaceStep};
use crate::job::model::{DaySink, JobError, MatchRateTables, ProductMatches, SinkReport};

pub const PRODUCT_MATCHES: &str = "product_matches";
pub const ADVERTISER_MATCH_RATES: &str = "advertiser_match_rates";
/// Rows per Parquet file of `product_matches`: several files are compressed in parallel.
const ROWS_PER_FILE: usize = 1 << 21;
/// Fewest rows in a file of a day split so that every core encodes a file: below this a
/// day stays one file (the encoding is quick; more files would only cost readers).
const MIN_ROWS_PER_SPLIT_FILE: usize = 1 << 18;
const ROWS_PER_BATCH: usize = 1 << 16;

pub struct ParquetSink {
    url: String,
    root: Location,
}

impl ParquetSink {
    /// Checks the root can be written to (creates a local directory; lists an S3 prefix).
    pub fn open(url: &str) -> Result<ParquetSink, JobError> {
        let root = Location::parse(url).map_err(|e| JobError::sink(url, e))?;
        match &root {
            Location::Local(path) => std::fs::create_dir_all(path)
                .map_err(|e| JobError::sink(url, format!("cannot create the directory: {e}")))?,
            Location::S3 { .. } => {
                root.list_subdirs().map_err(|e| JobError::sink(url, e))?;
            }
        }
        Ok(ParquetSink {
            url: url.to_string(),
            root,
        })
    }

    fn write_aside(
        &self,
        table_dir: &Location,
        staging: &str,
        files: Vec<Bytes>,
    ) -> Result<Vec<String>, JobError> {
        let names: Vec<String> = (0..files.len())
            .map(|i| format!("part-{i:05}.parquet"))
            .collect();
        files
            .into_par_iter()
            .zip(names.par_iter())
            .try_for_each(|(bytes, name)| table_dir.join(staging).join(name).write(bytes))
            .map_err(|e| JobError::sink(&self.url, e))?;
        Ok(names)
    }

    fn publish(
        &self,
        table_dir: &Location,
        staging: &str,
        day_dir: &str,
        run: &str,
        names: &[String],
    ) -> Result<(), JobError> {
        let fail = |e: String| JobError::sink(&self.url, e);
        match table_dir {
            Location::Local(dir) => {
                let target = dir.join(day_dir);
                let old = dir.join(format!("_old-{day_dir}-{run}"));
                replace_dir(&dir.join(staging), &target, &old).map_err(|(step, e)| {
                    fail(match step {
                        ReplaceStep::MoveOldAside => {
                            format!("cannot move {} aside: {e}", target.display())
                        }
                        ReplaceStep::MoveNewIn => {
                            format!("cannot move the new day into {}: {e}", target.display())
                        }
                        ReplaceStep::RemoveOld => format!("cannot remove {}: {e}", old.display()),
                    })
                })
            }
            Location::S3 { .. } => {
                let target = table_dir.join(day_dir);
                let before = target.list_all().map_err(|e| fail(e.to_string()))?;
                let mut written = Vec::new();
                for name in names {
                    let to = target.join(&format!(
                        "{}-{run}.parquet",
                        name.trim_end_matches(".parquet")
                    ));
                    table_dir
                        .join(staging)
                        .join(name)
                        .copy_to(&to)
                        .map_err(|e| fail(e.to_string()))?;
                    written.push(to);
                }
                for file in before.iter().filter(|f| !written.contains(f)) {
                    file.delete().map_err(|e| fail(e.to_string()))?;
                }
                table_dir.join(staging).remove_tree();
                Ok(())
            }
        }
    }
}

impl DaySink for ParquetSink {
    fn write_day(&mut self, tables: &MatchRateTables) -> Result<SinkReport, JobError> {
        let day_dir = format!("day={}", tables.day.format("%Y-%m-%d"));
        let run = run_id();
        let staging = format!("_tmp-{day_dir}-{run}");
        let product_files =
            product_match_files(tables).map_err(|e| JobError::sink(&self.url, e))?;
        let rate_files =
            vec![advertiser_rate_file(tables).map_err(|e| JobError::sink(&self.url, e))?];
        let product_dir = self.root.join(PRODUCT_MATCHES);
        let rate_dir = self.root.join(ADVERTISER_MATCH_RATES);
        let written = self
            .write_aside(&product_dir, &staging, product_files)
            .and_then(|p| Ok((p, self.write_aside(&rate_dir, &staging, rate_files)?)));
        let (product_names, rate_names) = match written {
            Ok(names) => names,
            Err(e) => {
                product_dir.join(&staging).remove_tree();
                rate_dir.join(&staging).remove_tree();
                return Err(e);
            }
        };
        self.publish(&product_dir, &staging, &day_dir, &run, &product_names)?;
        self.publish(&rate_dir, &staging, &day_dir, &run, &rate_names)?;
        Ok(SinkReport {
            destination: self.url.clone(),
            product_rows: tables.product_matches.len() as u64,
            advertiser_rows: tables.advertiser_rates.len() as u64,
        })
    }
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("zstd level 1"),
        ))
        // A day's product ids are distinct within each advertiser: a dictionary of them only
        // costs a hash per row before it overflows and falls back to PLAIN anyway.
        .set_column_dictionary_enabled(ColumnPath::from("product_id"), false)
        .build()
}

pub fn product_matches_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("advertiser_id", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, false),
        Field::new("view_count", DataType::Int64, false),
        Field::new("matched", DataType::Boolean, false),
    ]))
}

pub fn advertiser_match_rates_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("advertiser_id", DataType::Utf8, false),
        Field::new("total_views", DataType::Int64, false),
        Field::new("matched_views", DataType::Int64, false),
        Field::new("total_products", DataType::Int64, false),
        Field::new("matched_products", DataType::Int64, false),
        Field::new("match_rate", DataType::Float64, false),
    ]))
}

fn day_number(tables: &MatchRateTables) -> i32 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    (tables.day - epoch).num_days() as i32
}

fn write_file(
    schema: SchemaRef,
    batches: impl Iterator<Item = RecordBatch>,
) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties()))
        .map_err(|e| format!("cannot start a Parquet file: {e}"))?;
    for batch in batches {
        writer
            .write(&batch)
            .map_err(|e| format!("cannot encode Parquet: {e}"))?;
    }
    writer
        .close()
        .map_err(|e| format!("cannot finish a Parquet file: {e}"))?;
    Ok(Bytes::from(out))
}

fn product_batch(table: &ProductMatches, day: i32, rows: std::ops::Range<usize>) -> RecordBatch {
    let n = rows.len();
    let mut advertisers = StringBuilder::with_capacity(n, n * 8);
    let mut products = StringBuilder::with_capacity(n, n * 16);
    for i in rows.clone() {
        advertisers.append_value(&table.advertisers[table.advertiser[i] as usize]);
        products.append_value(table.product_id.get(i));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![day; n])),
        Arc::new(advertisers.finish()),
        Arc::new(products.finish()),
        Arc::new(Int64Array::from_iter_values(
            table.view_count[rows.clone()].iter().map(|&v| v as i64),
        )),
        Arc::new(BooleanArray::from(table.matched[rows].to_vec())),
    ];
    RecordBatch::try_new(product_matches_schema(), columns).expect("columns match the schema")
}

/// How many files `rows` rows of `product_matches` are written as: at most [`ROWS_PER_FILE`]
/// rows each, and one per worker thread when each still gets [`MIN_ROWS_PER_SPLIT_FILE`] (a
/// file is encoded by one thread: a day of one big file would keep the other cores idle).
fn product_file_count(rows: usize, threads: usize) -> usize {
    rows.div_ceil(ROWS_PER_FILE)
        .max(threads.min(rows / MIN_ROWS_PER_SPLIT_FILE))
        .max(1)
}

/// `product_matches` as Parquet files of equal shares of the rows, encoded in parallel.
fn product_match_files(tables: &MatchRateTables) -> Result<Vec<Bytes>, String> {
    let table = &tables.product_matches;
    let day = day_number(tables);
    let files = product_file_count(table.len(), rayon::current_num_threads());
    let rows_per_file = table.len().div_ceil(files);
    (0..files)
        .into_par_iter()
        .map(|f| {
            let start = (f * rows_per_file).min(table.len());
            let end = (start + rows_per_file).min(table.len());
            let batches = (start..end)
                .step_by(ROWS_PER_BATCH)
                .map(move |b| product_batch(table, day, b..(b + ROWS_PER_BATCH).min(end)));
            write_file(product_matches_schema(), batches)
        })
        .collect()
}

fn advertiser_rate_file(tables: &MatchRateTables) -> Result<Bytes, String> {
    let rates = &tables.advertiser_rates;
    let n = rates.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![day_number(tables); n])),
        Arc::new(StringArray::from_iter_values(
            rates.iter().map(|r| &r.advertiser_id),
        )),
        Arc::new(Int64Array::from_iter_values(
            rates.iter().map(|r| r.total_views as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rates.iter().map(|r| r.matched_views as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rates.iter().map(|r| r.total_products as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rates.iter().map(|r| r.matched_products as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            rates.iter().map(|r| r.match_rate),
        )),
    ];
    let batch = RecordBatch::try_new(advertiser_match_rates_schema(), columns)
        .expect("columns match the schema");
    write_file(advertiser_match_rates_schema(), std::iter::once(batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_days_are_split_over_the_threads_and_small_ones_are_not() {
        assert_eq!(product_file_count(0, 2), 1);
        assert_eq!(product_file_count(MIN_ROWS_PER_SPLIT_FILE * 2 - 1, 2), 1);
        assert_eq!(product_file_count(MIN_ROWS_PER_SPLIT_FILE * 2, 2), 2);
        assert_eq!(product_file_count(1_000_000, 8), 3);
        assert_eq!(product_file_count(ROWS_PER_FILE * 3 + 1, 2), 4);
        assert_eq!(product_file_count(ROWS_PER_FILE * 3, 1), 3);
    }
}
