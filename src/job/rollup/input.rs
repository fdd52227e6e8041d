//! The rollup's input: event files found under a URI (Hive-partitioned directory trees
//! included), split into map tasks, and read into [`EventColumns`] — per-batch dictionaries
//! for `customer`, `url` and `referrer`, raw session bytes and UTC microsecond timestamps.
//!
//! - Formats by extension, as for match-rate (`.parquet`, `.csv` with a header, `.jsonl`).
//! - A directory or an `s3://` prefix is walked recursively; names starting with `_` or `.`
//!   (files or directories) are skipped. `key=value` directory segments are partition columns;
//!   only `customer` is used (the grouping hour comes from `ts`, never from `hour=`).
//! - Parquet is read one row group per task, with `customer`, `url` and `referrer` asked for as
//!   arrow dictionaries, so each row group's dictionary is resolved to global ids once.
//! - `ts`: a Parquet timestamp of any unit (with or without a zone: the value is an instant),
//!   or an RFC 3339 / ISO 8601 string (CSV, JSON Lines, or a Parquet string column) with an
//!   optional offset; no offset means UTC.
//! - Null `url`, `session_id`, `ts` or `customer`, a missing column and a corrupt file are
//!   errors naming the file and, where known, the row.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow_array::builder::StringViewBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, LargeStringArray, RecordBatch, StringArray, StringViewArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use hashbrown::HashMap;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::basic::Encoding;
use parquet::file::metadata::RowGroupMetaData;

use crate::job::location::{is_hidden, list_inputs, Location};
use crate::job::model::JobError;
use crate::job::source::{csv_reader, parse_time_micros, with_type_hints, Format, ParquetFile};

pub const CUSTOMER: &str = "customer";
pub const URL: &str = "url";
pub const REFERRER: &str = "referrer";
pub const SESSION_ID: &str = "session_id";
pub const TS: &str = "ts";

/// A dictionary key that stands for null.
pub const NULL_KEY: u32 = u32::MAX;

/// Rows per Parquet batch: the generator's row groups (1M rows) arrive as one batch, so a row
/// group's dictionaries are resolved once.
const PARQUET_BATCH_ROWS: usize = 1 << 20;

/// Every event file under `uri`, sorted: a file, a glob, or a directory / `s3://` prefix
/// walked recursively (hidden names skipped at every level).
pub fn list_event_files(uri: &str) -> Result<Vec<Location>, JobError> {
    let location = Location::parse(uri)?;
    let walk = match &location {
        Location::Local(path) => path.is_dir(),
        Location::S3 { key, .. } => {
            let name = key.rsplit('/').next().unwrap_or("");
            key.is_empty() || key.ends_with('/') || (!name.contains('*') && !name.contains('?'))
        }
    };
    if !walk {
        return list_inputs(uri);
    }
    let files: Vec<Location> = match &location {
        Location::Local(root) => {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir)
                    .map_err(|e| JobError::input(dir.display(), format!("cannot list: {e}")))?;
                for entry in entries {
                    let entry = entry
                        .map_err(|e| JobError::input(dir.display(), format!("cannot list: {e}")))?;
                    let name = entry.file_name();
                    if name.to_str().is_none_or(is_hidden) {
                        continue;
                    }
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        out.push(Location::Local(path));
                    }
                }
            }
            out
        }
        Location::S3 { key, .. } => {
            let prefix = if key.is_empty() || key.ends_with('/') {
                key.clone()
            } else {
                format!("{key}/")
            };
            let all = match location.list_all() {
                Ok(all) => all,
                // A key that names one object, not a prefix.
                Err(_) => return list_inputs(uri),
            };
            let under: Vec<Location> = all
                .into_iter()
                .filter(|file| match file {
                    Location::S3 { key, .. } => key
                        .strip_prefix(&prefix)
                        .is_some_and(|rest| !rest.split('/').any(is_hidden)),
                    Location::Local(_) => false,
                })
                .collect();
            if under.is_empty() && !key.is_empty() && !key.ends_with('/') {
                // `s3://b/events` may name one object.
                return list_inputs(uri);
            }
            under
        }
    };
    let mut files = files;
    files.sort();
    if files.is_empty() {
        return Err(JobError::input(
            uri,
            "no input files found (names starting with `_` or `.` are skipped)",
        ));
    }
    Ok(files)
}

/// The `key=value` directory segments of a file's path (Hive partitions), `%XX` decoded.
pub fn partition_values(location: &Location) -> Vec<(String, String)> {
    let path = match location {
        Location::Local(path) => path.display().to_string(),
        Location::S3 { key, .. } => key.clone(),
    };
    let mut segments: Vec<&str> = path.split(['/', '\\']).collect();
    segments.pop(); // the file name
    segments
        .into_iter()
        .filter_map(|segment| segment.split_once('='))
        .filter(|(key, _)| !key.is_empty())
        .map(|(key, value)| (key.to_string(), percent_decode(value)))
        .collect()
}

/// `%XX` decoded; a value whose decoded bytes are not UTF-8 is kept as written.
fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map_or_else(|_| value.to_string(), |decoded| decoded.into_owned())
}

/// One file's customer from its path, if a `customer=` partition names it.
fn partition_customer(location: &Location) -> Option<String> {
    partition_values(location)
        .into_iter()
        .rev()
        .find(|(key, _)| key == CUSTOMER)
        .map(|(_, value)| value)
}

/// A map task's input: one row group of a Parquet file, or one whole CSV/JSON Lines file.
pub struct MapInput {
    pub location: Location,
    /// The `customer=` partition value of the file's path.
    pub partition_customer: Option<String>,
    /// Rows, where the footer says (for sizing the shuffle).
    pub rows_hint: u64,
    kind: InputKind,
}

enum InputKind {
    RowGroup {
        file: Arc<ParquetFile>,
        row_group: usize,
        /// The file's metadata with this row group's type hints ([`row_group_hints`]).
        metadata: ArrowReaderMetadata,
    },
    Whole {
        format: Format,
    },
}

/// Splits a file into map inputs, checking a Parquet file's columns now, so a bad file fails
/// before any work.
pub fn plan_file(location: &Location) -> Result<Vec<MapInput>, JobError> {
    let format = Format::of(location)?;
    let customer = partition_customer(location);
    if format != Format::Parquet {
        let size = match location {
            Location::Local(path) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            Location::S3 { .. } => 0,
        };
        return Ok(vec![MapInput {
            location: location.clone(),
            partition_customer: customer,
            rows_hint: size / 80,
            kind: InputKind::Whole { format },
        }]);
    }
    let file = Arc::new(ParquetFile::open(location, |plain| {
        let schema = plain.schema().clone();
        let index_of = |name: &str| schema.fields().iter().position(|f| f.name() == name);
        let mut projection = Vec::new();
        for column in [URL, REFERRER, SESSION_ID, TS] {
            match index_of(column) {
                Some(i) => projection.push(i),
                None => return Err(missing_column(location, column, &schema_names(&schema))),
            }
        }
        match index_of(CUSTOMER) {
            Some(i) => projection.push(i),
            None if customer.is_some() => {}
            None => return Err(missing_column(location, CUSTOMER, &schema_names(&schema))),
        }
        // Kept without hints: they are chosen per row group (`row_group_hints`).
        Ok((plain, projection))
    })?);
    let parquet = file.metadata.metadata().clone();
    let mut variants: Vec<([bool; 3], ArrowReaderMetadata)> = Vec::new();
    Ok((0..parquet.num_row_groups())
        .map(|rg| {
            let dictionaries = all_dictionary_columns(parquet.row_group(rg));
            let metadata = match variants.iter().find(|(d, _)| *d == dictionaries) {
                Some((_, metadata)) => metadata.clone(),
                None => {
                    let metadata = row_group_hints(&file.metadata, dictionaries);
                    variants.push((dictionaries, metadata.clone()));
                    metadata
                }
            };
            MapInput {
                location: location.clone(),
                partition_customer: customer.clone(),
                rows_hint: parquet.row_group(rg).num_rows().max(0) as u64,
                kind: InputKind::RowGroup {
                    file: file.clone(),
                    row_group: rg,
                    metadata,
                },
            }
        })
        .collect())
}

/// The string columns a map task reads as dictionaries when Parquet stores them so.
const DICTIONARY_COLUMNS: [&str; 3] = [URL, REFERRER, CUSTOMER];

/// For each of [`DICTIONARY_COLUMNS`], whether every data page of its chunk in `row_group` is
/// dictionary encoded (as the footer's page encoding statistics say; assumed so when they
/// are missing). A writer falls back to plain pages once a chunk's dictionary grows past its
/// limit (pyarrow's default: 1 MiB), as high-cardinality urls do.
fn all_dictionary_columns(row_group: &RowGroupMetaData) -> [bool; 3] {
    DICTIONARY_COLUMNS.map(|name| {
        row_group
            .columns()
            .iter()
            .find(|c| c.column_path().parts() == [name])
            .is_none_or(|chunk| {
                chunk.dictionary_page_offset().is_some()
                    && chunk.page_encoding_stats_mask().is_none_or(|mask| {
                        mask.is_only(Encoding::PLAIN_DICTIONARY)
                            || mask.is_only(Encoding::RLE_DICTIONARY)
                    })
            })
    })
}

/// The file's metadata (as read, without hints: `plan_file` keeps it so) with type hints for
/// a row group: a string column stored as a
/// dictionary is read as one, and the reader hands its dictionary and keys over instead of a
/// string per row; any other ([`all_dictionary_columns`] false) is read as string views, and
/// the map task dictionary-encodes it itself ([`DictView::new`]), which costs less than the
/// reader's own re-encoding of a chunk that fell back to plain pages. Session ids are always
/// views: they point into the page or dictionary instead of copying every id's bytes.
fn row_group_hints(plain: &ArrowReaderMetadata, dictionaries: [bool; 3]) -> ArrowReaderMetadata {
    let as_dictionary = |name: &str| {
        DICTIONARY_COLUMNS
            .iter()
            .zip(dictionaries)
            .any(|(column, dictionary)| *column == name && dictionary)
    };
    with_type_hints(
        plain.clone(),
        |_, f| as_dictionary(f.name()),
        |_, f| !as_dictionary(f.name()),
    )
}

fn schema_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn missing_column(location: &Location, column: &str, present: &[String]) -> JobError {
    let present = if present.is_empty() {
        "none".to_string()
    } else {
        present.join(", ")
    };
    let hint = if column == CUSTOMER {
        "; put the file under a customer=<name>/ directory or add a customer column"
    } else {
        ""
    };
    JobError::input(
        location,
        format!(
            "no column `{column}` (columns present: {present}); page-view events need url, referrer, session_id, ts and customer{hint}"
        ),
    )
}

/// One batch of events, ready for the map kernel.
pub struct EventColumns<'a> {
    pub location: &'a Location,
    /// The file row number of row 0 minus one (errors count rows from 1).
    pub first_row: u64,
    pub rows: usize,
    pub customer: CustomerColumn<'a>,
    pub url: DictView<'a>,
    pub referrer: DictView<'a>,
    pub session: SessionColumn<'a>,
    /// Microseconds since the epoch, UTC.
    pub ts: Cow<'a, [i64]>,
}

pub enum CustomerColumn<'a> {
    Const(&'a str),
    Dict(DictView<'a>),
}

/// A string column as dictionary keys (per row, [`NULL_KEY`] for null) and values.
pub struct DictView<'a> {
    pub keys: Vec<u32>,
    pub values: Vec<&'a str>,
}

impl<'a> DictView<'a> {
    fn new(array: &'a ArrayRef, location: &Location, column: &str) -> Result<Self, JobError> {
        if let Some(dict) = array.as_any_dictionary_opt() {
            let values = strings(dict.values(), location, column)?;
            let normalized = dict.normalized_keys();
            let key_nulls = dict.keys().logical_nulls();
            let value_nulls: Vec<bool> = values.iter().map(Option::is_none).collect();
            let keys = normalized
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    let null = key_nulls.as_ref().is_some_and(|n| n.is_null(i))
                        || value_nulls.get(k).copied().unwrap_or(true);
                    if null {
                        NULL_KEY
                    } else {
                        k as u32
                    }
                })
                .collect();
            return Ok(DictView {
                keys,
                values: values.into_iter().map(|v| v.unwrap_or("")).collect(),
            });
        }
        if let DataType::Utf8View = array.data_type() {
            return Ok(DictView::of_views(array.as_string_view()));
        }
        let rows = strings(array, location, column)?;
        let mut index: HashMap<&'a str, u32> = HashMap::new();
        let mut values = Vec::new();
        let keys = rows
            .into_iter()
            .map(|value| match value {
                None => NULL_KEY,
                Some(value) => *index.entry(value).or_insert_with(|| {
                    values.push(value);
                    (values.len() - 1) as u32
                }),
            })
            .collect();
        Ok(DictView { keys, values })
    }

    /// Dictionary-encodes a string-view column, a hash per row. A string of up to 12 bytes
    /// is held whole in its 16-byte view (length, bytes, zero padding), so its view is its
    /// identity; a longer one is compared by length and 4-byte prefix (in the view) before
    /// its bytes, against a copy of the value packed with the others: the row where a value
    /// first appeared may be anywhere in the batch's pages, far out of cache.
    fn of_views(array: &'a StringViewArray) -> Self {
        let hasher = hashbrown::DefaultHashBuilder::default();
        let mut table: hashbrown::HashTable<(u64, u32)> = hashbrown::HashTable::new();
        let mut value_views: Vec<u128> = Vec::new();
        let mut values: Vec<&'a str> = Vec::new();
        // Long values' bytes, back to back; `packed_at[id]` is where value `id`'s start.
        let mut packed: Vec<u8> = Vec::new();
        let mut packed_at: Vec<usize> = Vec::new();
        let nulls = array.logical_nulls();
        let keys = array
            .views()
            .iter()
            .enumerate()
            .map(|(i, &view)| {
                if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                    return NULL_KEY;
                }
                let inline = view as u32 <= 12;
                let value = array.value(i);
                let hash = if inline {
                    hasher.hash_one(view)
                } else {
                    hasher.hash_one(value.as_bytes())
                };
                let same = |&(h, id): &(u64, u32)| {
                    h == hash
                        && if inline {
                            value_views[id as usize] == view
                        } else {
                            let at = packed_at[id as usize];
                            value_views[id as usize] as u64 == view as u64
                                && packed[at..at + value.len()] == *value.as_bytes()
                        }
                };
                if let Some(&(_, id)) = table.find(hash, same) {
                    return id;
                }
                let id = values.len() as u32;
                table.insert_unique(hash, (hash, id), |&(h, _)| h);
                value_views.push(view);
                values.push(value);
                packed_at.push(packed.len());
                if !inline {
                    packed.extend_from_slice(value.as_bytes());
                }
                id
            })
            .collect();
        DictView { keys, values }
    }

    /// The first row whose value is null.
    fn first_null(&self) -> Option<usize> {
        self.keys.iter().position(|&k| k == NULL_KEY)
    }
}

/// Every value of a plain string column (not a dictionary).
fn strings<'a>(
    array: &'a ArrayRef,
    location: &Location,
    column: &str,
) -> Result<Vec<Option<&'a str>>, JobError> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        other => {
            return Err(JobError::input(
                location,
                format!("column `{column}` has type {other}; it must hold strings"),
            ))
        }
    })
}

/// The session ids of a batch: read in place, never copied per row.
pub enum SessionColumn<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    Dict(DictView<'a>),
}

impl<'a> SessionColumn<'a> {
    fn new(array: &'a ArrayRef, location: &Location) -> Result<Self, JobError> {
        Ok(match array.data_type() {
            DataType::Utf8 => SessionColumn::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => SessionColumn::Large(array.as_string::<i64>()),
            DataType::Utf8View => SessionColumn::View(array.as_string_view()),
            DataType::Dictionary(_, _) => {
                SessionColumn::Dict(DictView::new(array, location, SESSION_ID)?)
            }
            other => {
                return Err(JobError::input(
                    location,
                    format!("column `session_id` has type {other}; it must hold strings"),
                ))
            }
        })
    }

    fn first_null(&self) -> Option<usize> {
        let nulls = match self {
            SessionColumn::Utf8(a) => a.nulls(),
            SessionColumn::Large(a) => a.nulls(),
            SessionColumn::View(a) => a.nulls(),
            SessionColumn::Dict(d) => return d.first_null(),
        };
        nulls.and_then(|n| (0..n.len()).find(|&i| n.is_null(i)))
    }

    /// Row `i`'s bytes (non-null: checked once per batch by `first_null`).
    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        match self {
            SessionColumn::Utf8(a) => a.value(i).as_bytes(),
            SessionColumn::Large(a) => a.value(i).as_bytes(),
            SessionColumn::View(a) => a.value(i).as_bytes(),
            SessionColumn::Dict(d) => d.values[d.keys[i] as usize].as_bytes(),
        }
    }
}

fn null_error(location: &Location, row: u64, column: &str) -> JobError {
    let fix = match column {
        SESSION_ID => "every event needs a session_id (visitors are distinct session ids)",
        TS => "every event needs a ts (it decides the hour)",
        CUSTOMER => "every event needs a customer (column or customer= directory)",
        _ => "every event needs a url",
    };
    JobError::input(location, format!("row {row}: `{column}` is null; {fix}"))
}

fn bad_time(location: &Location, row: u64, text: &str) -> JobError {
    JobError::input(
        location,
        format!("row {row}: ts `{text}` is not an RFC 3339 time (expected e.g. 2026-11-20T05:04:21.123+02:00)"),
    )
}

/// The `ts` column as UTC microseconds.
fn times<'a>(
    array: &'a ArrayRef,
    location: &Location,
    first_row: u64,
) -> Result<Cow<'a, [i64]>, JobError> {
    if let Some(i) = array
        .logical_nulls()
        .and_then(|n| (0..n.len()).find(|&i| n.is_null(i)))
    {
        return Err(null_error(location, first_row + i as u64 + 1, TS));
    }
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Cow::Borrowed(array.as_primitive::<TimestampMicrosecondType>().values())
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => Cow::Owned(
            array
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .iter()
                .map(|v| v.saturating_mul(1_000))
                .collect(),
        ),
        DataType::Timestamp(TimeUnit::Second, _) => Cow::Owned(
            array
                .as_primitive::<TimestampSecondType>()
                .values()
                .iter()
                .map(|v| v.saturating_mul(1_000_000))
                .collect(),
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Cow::Owned(
            array
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .iter()
                .map(|v| v.div_euclid(1_000))
                .collect(),
        ),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let mut out = Vec::with_capacity(array.len());
            for (i, text) in strings(array, location, TS)?.into_iter().enumerate() {
                let text = text.unwrap_or("");
                let row = first_row + i as u64 + 1;
                out.push(parse_time_micros(text).ok_or_else(|| bad_time(location, row, text))?);
            }
            Cow::Owned(out)
        }
        other => {
            return Err(JobError::input(
                location,
                format!("column `ts` has type {other}; use a timestamp or an RFC 3339 string"),
            ))
        }
    })
}

/// Turns one record batch into [`EventColumns`] and hands it to `visit`.
fn visit_batch(
    input: &MapInput,
    batch: &RecordBatch,
    first_row: u64,
    visit: &mut dyn FnMut(&EventColumns<'_>) -> Result<(), JobError>,
) -> Result<(), JobError> {
    let location = &input.location;
    let column = |name: &str| {
        batch.column_by_name(name).ok_or_else(|| {
            let present: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            missing_column(location, name, &present)
        })
    };
    let url = DictView::new(column(URL)?, location, URL)?;
    if let Some(i) = url.first_null() {
        return Err(null_error(location, first_row + i as u64 + 1, URL));
    }
    let referrer = DictView::new(column(REFERRER)?, location, REFERRER)?;
    let session = SessionColumn::new(column(SESSION_ID)?, location)?;
    if let Some(i) = session.first_null() {
        return Err(null_error(location, first_row + i as u64 + 1, SESSION_ID));
    }
    let ts = times(column(TS)?, location, first_row)?;
    let customer = match (batch.column_by_name(CUSTOMER), &input.partition_customer) {
        (Some(array), partition) => {
            let dict = DictView::new(array, location, CUSTOMER)?;
            if let Some(i) = dict.first_null() {
                match partition {
                    // A null in the column falls back to the directory's value.
                    Some(_) => {}
                    None => return Err(null_error(location, first_row + i as u64 + 1, CUSTOMER)),
                }
            }
            if let Some(partition) = partition {
                for (i, &k) in dict.keys.iter().enumerate() {
                    if k != NULL_KEY && dict.values[k as usize] != partition.as_str() {
                        return Err(JobError::input(
                            location,
                            format!(
                                "row {}: column customer is `{}` but the file is under customer={partition}/; move the file or fix the column",
                                first_row + i as u64 + 1,
                                dict.values[k as usize]
                            ),
                        ));
                    }
                }
                CustomerColumn::Const(partition.as_str())
            } else {
                CustomerColumn::Dict(dict)
            }
        }
        (None, Some(partition)) => CustomerColumn::Const(partition.as_str()),
        (None, None) => {
            let present: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            return Err(missing_column(location, CUSTOMER, &present));
        }
    };
    visit(&EventColumns {
        location,
        first_row,
        rows: batch.num_rows(),
        customer,
        url,
        referrer,
        session,
        ts,
    })
}

/// Reads one map input, batch by batch, into `visit`. Returns the rows read.
pub fn read_input(
    input: &MapInput,
    visit: &mut dyn FnMut(&EventColumns<'_>) -> Result<(), JobError>,
) -> Result<u64, JobError> {
    match &input.kind {
        InputKind::RowGroup {
            file,
            row_group,
            metadata,
        } => read_row_group(input, file, metadata, *row_group, visit),
        InputKind::Whole { format } => {
            let data = TextFile::read(&input.location)?;
            let data = data.bytes();
            let batch = match format {
                Format::Csv => csv_batch(&input.location, data)?,
                Format::JsonLines => json_batch(&input.location, data)?,
                Format::Parquet => unreachable!("Parquet files are planned per row group"),
            };
            let Some(batch) = batch else { return Ok(0) };
            visit_batch(input, &batch, 0, visit)?;
            Ok(batch.num_rows() as u64)
        }
    }
}

fn read_row_group(
    input: &MapInput,
    file: &ParquetFile,
    metadata: &ArrowReaderMetadata,
    row_group: usize,
    visit: &mut dyn FnMut(&EventColumns<'_>) -> Result<(), JobError>,
) -> Result<u64, JobError> {
    let location = &file.location;
    let reader = file.batches_as(metadata, vec![row_group], PARQUET_BATCH_ROWS)?;
    let mut first_row = file.rows_before(row_group);
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| {
            JobError::input(
                location,
                format!("row group {row_group}: corrupt Parquet data: {e}"),
            )
        })?;
        visit_batch(input, &batch, first_row, visit)?;
        first_row += batch.num_rows() as u64;
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}

/// A whole CSV or JSON Lines input: a local file mapped into memory (read in place, never
/// copied into the process's own pages), an S3 object read into memory.
enum TextFile {
    Mapped(memmap2::Mmap),
    Read(bytes::Bytes),
}

impl TextFile {
    fn read(location: &Location) -> Result<TextFile, JobError> {
        match location {
            Location::Local(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| JobError::input(location, format!("cannot open: {e}")))?;
                // SAFETY: the map is read only and lives until the file's batch is visited.
                // Another process truncating the file meanwhile would fault the read (as it
                // would make any reader's result wrong); inputs are not written during a run.
                let map = unsafe { memmap2::Mmap::map(&file) }
                    .map_err(|e| JobError::input(location, format!("cannot read: {e}")))?;
                #[cfg(unix)]
                let _ = map.advise(memmap2::Advice::Sequential);
                Ok(TextFile::Mapped(map))
            }
            Location::S3 { .. } => Ok(TextFile::Read(location.read()?)),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            TextFile::Mapped(map) => map,
            TextFile::Read(data) => data,
        }
    }
}

/// Text columns gathered from CSV or JSON Lines, turned into one arrow batch: values are
/// appended to the column buffers as read, never copied into a `String` per field. String
/// views, so the map dictionary-encodes them as it does Parquet's plain pages
/// ([`DictView::of_views`]).
#[derive(Default)]
struct TextColumns {
    customer: StringViewBuilder,
    url: StringViewBuilder,
    referrer: StringViewBuilder,
    session: StringViewBuilder,
    ts: StringViewBuilder,
    has_customer: bool,
}

impl TextColumns {
    fn into_batch(mut self) -> RecordBatch {
        let text = |builder: &mut StringViewBuilder| -> ArrayRef { Arc::new(builder.finish()) };
        let mut fields = vec![
            Field::new(URL, DataType::Utf8View, true),
            Field::new(REFERRER, DataType::Utf8View, true),
            Field::new(SESSION_ID, DataType::Utf8View, true),
            Field::new(TS, DataType::Utf8View, true),
        ];
        let mut columns = vec![
            text(&mut self.url),
            text(&mut self.referrer),
            text(&mut self.session),
            text(&mut self.ts),
        ];
        if self.has_customer {
            fields.push(Field::new(CUSTOMER, DataType::Utf8View, true));
            columns.push(text(&mut self.customer));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("text columns")
    }
}

/// One event as JSON Lines usually hold it: string (or null) values borrowed from the line,
/// other keys skipped. The outer `Option` says whether the key is present.
#[derive(serde::Deserialize)]
struct EventLine<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    customer: Option<Option<&'a str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    url: Option<Option<&'a str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    referrer: Option<Option<&'a str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    session_id: Option<Option<&'a str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    ts: Option<Option<&'a str>>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<&'de str>>, D::Error> {
    <Option<&'de str> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

fn csv_batch(location: &Location, data: &[u8]) -> Result<Option<RecordBatch>, JobError> {
    let mut reader = csv_reader(data);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| JobError::input(location, format!("cannot read the CSV header row: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let index_of = |name: &str| headers.iter().position(|h| h == name);
    let required =
        |name: &str| index_of(name).ok_or_else(|| missing_column(location, name, &headers));
    let (url, referrer, session, ts) = (
        required(URL)?,
        required(REFERRER)?,
        required(SESSION_ID)?,
        required(TS)?,
    );
    let customer = index_of(CUSTOMER);
    let mut columns = TextColumns {
        has_customer: customer.is_some(),
        ..TextColumns::default()
    };
    let mut record = csv::StringRecord::new();
    let mut row = 0u64;
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            JobError::input(location, format!("row {}: malformed CSV: {e}", row + 1))
        })?;
        if !more {
            break;
        }
        row += 1;
        // An empty field is null (CSV has no other way to say it).
        let field = |i: usize| record.get(i).filter(|s| !s.is_empty());
        columns.url.append_option(field(url));
        columns.referrer.append_option(field(referrer));
        columns.session.append_option(field(session));
        columns.ts.append_option(field(ts));
        if let Some(i) = customer {
            columns.customer.append_option(field(i));
        }
    }
    Ok((row > 0).then(|| columns.into_batch()))
}

fn json_batch(location: &Location, data: &[u8]) -> Result<Option<RecordBatch>, JobError> {
    use serde_json::Value;
    let mut columns = TextColumns::default();
    let mut seen = [false; 4];
    let mut first_keys: Vec<String> = Vec::new();
    let mut rows = 0u64;
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        let line_no = index as u64 + 1;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        // Fast path: string (or null) values parsed in place; anything else (numbers,
        // escapes, duplicate keys, errors) takes the general path, which also reads the first
        // line for the column names of errors.
        if !first_keys.is_empty() {
            if let Ok(fast) = serde_json::from_slice::<EventLine<'_>>(line) {
                rows += 1;
                for (slot, value) in
                    seen.iter_mut()
                        .zip([&fast.url, &fast.referrer, &fast.session_id, &fast.ts])
                {
                    *slot |= value.is_some();
                }
                columns.url.append_option(fast.url.flatten());
                columns.referrer.append_option(fast.referrer.flatten());
                columns.session.append_option(fast.session_id.flatten());
                columns.ts.append_option(fast.ts.flatten());
                columns.has_customer |= fast.customer.is_some();
                columns.customer.append_option(fast.customer.flatten());
                continue;
            }
        }
        let object: serde_json::Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
            JobError::input(location, format!("line {line_no}: not a JSON object: {e}"))
        })?;
        rows += 1;
        if first_keys.is_empty() {
            first_keys = object.keys().cloned().collect();
        }
        let text = |name: &str| -> Result<Option<&str>, JobError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(JobError::input(
                    location,
                    format!("line {line_no}: `{name}` is {other}; it must be a string"),
                )),
            }
        };
        for (slot, name) in seen.iter_mut().zip([URL, REFERRER, SESSION_ID, TS]) {
            *slot |= object.contains_key(name);
        }
        columns.url.append_option(text(URL)?);
        columns.referrer.append_option(text(REFERRER)?);
        columns.session.append_option(text(SESSION_ID)?);
        columns.ts.append_option(text(TS)?);
        columns.has_customer |= object.contains_key(CUSTOMER);
        columns.customer.append_option(text(CUSTOMER)?);
    }
    if rows == 0 {
        return Ok(None);
    }
    // A nullable referrer may be absent from every line; the others must appear somewhere.
    for (present, name) in [(seen[0], URL), (seen[2], SESSION_ID), (seen[3], TS)] {
        if !present {
            return Err(missing_column(location, name, &first_keys));
        }
    }
    Ok(Some(columns.into_batch()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_come_from_directories_only() {
        let file =
            Location::parse("s3://b/ev/year=2026/hour=05/customer=a%2Fb.example/part=1.parquet")
                .unwrap();
        assert_eq!(
            partition_values(&file),
            [
                ("year".to_string(), "2026".to_string()),
                ("hour".to_string(), "05".to_string()),
                ("customer".to_string(), "a/b.example".to_string()),
            ]
        );
        assert_eq!(partition_customer(&file).as_deref(), Some("a/b.example"));
    }

    #[test]
    fn partition_values_that_do_not_decode_are_kept_as_written() {
        // Not UTF-8 once decoded; a `%` without two hex digits after it.
        assert_eq!(percent_decode("caf%E9"), "caf%E9");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }

    #[test]
    fn times_with_offsets_are_utc_instants() {
        let utc = parse_time_micros("2026-11-20T03:04:21.123Z").unwrap();
        assert_eq!(
            parse_time_micros("2026-11-20T05:04:21.123+02:00"),
            Some(utc)
        );
        assert_eq!(parse_time_micros("2026-11-20T03:04:21.123"), Some(utc));
        assert_eq!(parse_time_micros("2026-11-20 03:04:21.123"), Some(utc));
        assert_eq!(
            parse_time_micros("2026-11-20T03:59:59.999999Z").unwrap() + 1,
            parse_time_micros("2026-11-20T04:00:00Z").unwrap()
        );
        assert!(parse_time_micros("yesterday").is_none());
    }
}

#[cfg(test)]
mod parquet_tests {
    use super::*;
    use arrow_array::TimestampMicrosecondArray;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// Every row's url as the map task sees it (a dictionary key and values).
    fn urls_read(input: &MapInput) -> Vec<Option<String>> {
        let mut urls = Vec::new();
        read_input(input, &mut |columns| {
            urls.extend(
                columns
                    .url
                    .keys
                    .iter()
                    .map(|&k| (k != NULL_KEY).then(|| columns.url.values[k as usize].to_string())),
            );
            Ok(())
        })
        .unwrap();
        urls
    }

    /// A row group whose url chunk fell back to plain pages (a small dictionary page limit,
    /// as pyarrow's 1 MiB is for high-cardinality urls) is read as string views and
    /// dictionary-encoded by the map; one that stayed dictionary encoded is read as a
    /// dictionary. Both give every row its url, long and short ones alike.
    #[test]
    fn plain_and_dictionary_row_groups_read_the_same_urls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new(URL, DataType::Utf8, false),
            Field::new(REFERRER, DataType::Utf8, true),
            Field::new(SESSION_ID, DataType::Utf8, false),
            Field::new(TS, DataType::Timestamp(TimeUnit::Microsecond, None), false),
            Field::new(CUSTOMER, DataType::Utf8, false),
        ]));
        // Row group 0: 2,000 distinct urls (some of 12 bytes or less, most longer), repeated;
        // row group 1: 3 urls.
        let many: Vec<String> = (0..4_000)
            .map(|i| match (i % 2_000) % 4 {
                0 => format!("u{}", i % 2_000),
                _ => format!("https://site.example/page-{}", i % 2_000),
            })
            .collect();
        let few: Vec<String> = (0..300).map(|i| format!("https://x/{}", i % 3)).collect();
        let batch = |urls: &[String]| {
            let n = urls.len();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(urls)),
                    Arc::new(StringArray::from(vec![Some("r"); n])),
                    Arc::new(StringArray::from_iter_values(
                        (0..n).map(|i| format!("s{i}")),
                    )),
                    Arc::new(TimestampMicrosecondArray::from(vec![0i64; n])),
                    Arc::new(StringArray::from(vec!["c"; n])),
                ],
            )
            .unwrap()
        };
        let properties = WriterProperties::builder()
            .set_dictionary_page_size_limit(1024)
            .set_data_page_row_count_limit(256)
            .set_write_batch_size(256)
            .build();
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            schema.clone(),
            Some(properties),
        )
        .unwrap();
        writer.write(&batch(&many)).unwrap();
        writer.flush().unwrap();
        writer.write(&batch(&few)).unwrap();
        writer.close().unwrap();

        let inputs = plan_file(&Location::Local(path)).unwrap();
        assert_eq!(inputs.len(), 2);
        let url_type = |input: &MapInput| match &input.kind {
            InputKind::RowGroup { metadata, .. } => metadata
                .schema()
                .field_with_name(URL)
                .unwrap()
                .data_type()
                .clone(),
            InputKind::Whole { .. } => unreachable!(),
        };
        assert_eq!(url_type(&inputs[0]), DataType::Utf8View);
        assert!(matches!(url_type(&inputs[1]), DataType::Dictionary(_, _)));
        let expected = |urls: &[String]| urls.iter().cloned().map(Some).collect::<Vec<_>>();
        assert_eq!(urls_read(&inputs[0]), expected(&many));
        assert_eq!(urls_read(&inputs[1]), expected(&few));
    }

    /// Views of short (inline) and long strings with nulls and repeats encode to one key per
    /// distinct value, first appearance first.
    #[test]
    fn string_views_are_dictionary_encoded() {
        let array = StringViewArray::from(vec![
            Some("a-long-value-of-many-bytes"),
            Some("short"),
            None,
            Some("a-long-value-of-many-bytes"),
            Some("a-long-value-of-many-bytez"),
            Some("short"),
            Some(""),
        ]);
        let view = DictView::of_views(&array);
        assert_eq!(
            view.values,
            [
                "a-long-value-of-many-bytes",
                "short",
                "a-long-value-of-many-bytez",
                ""
            ]
        );
        assert_eq!(view.keys, [0, 1, NULL_KEY, 0, 2, 1, 3]);
    }
}
