//! Reading (advertiser_id, product_id[, event_time]) rows from Parquet, CSV and JSON Lines
//! files, local or on S3, into a [`PairVisitor`] (the counter for views, the key set for a file
//! catalog).
//!
//! - Format by extension: `.parquet`/`.parq`/`.pq`, `.csv` (header row), `.jsonl`/`.ndjson`/
//!   `.json` (one object per line). A local file with another name is read as Parquet if it
//!   starts with Parquet's magic bytes.
//! - Parquet is read with a projection to the needed columns, one work unit per row group so
//!   the scan runs in parallel inside big files too; `advertiser_id` is read dictionary-encoded
//!   so each distinct advertiser is looked up once per batch, not once per row.
//! - Ids are strings (Parquet string, large string, string view or dictionary of strings);
//!   integer ids are accepted and read as their decimal text, so `42` and `"42"` are the same id.
//! - `event_time` is optional: a Parquet timestamp (any unit; without a time zone it is taken
//!   as UTC), a Parquet date, or an ISO-8601 string (`2026-11-20T13:05:00Z`, with an offset, or
//!   without one meaning UTC). Rows outside the UTC day of `--date` are skipped and counted;
//!   rows with a null `event_time` are kept; a value that is not a time is an error naming the
//!   file, column and row.
//! - A null or empty id is counted in [`ScanStats::rows_missing_ids`], never fatal.
//! - A missing column is an error naming the file, the column and the columns present.

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::AnyDictionaryArray;
use arrow_array::{
    Array, ArrayRef, Int32Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::reader::ChunkReader;

use super::counts::{bytes_eq, AdvertiserKey, PairCounts};
use super::json_line;
use super::location::Location;
use super::model::{Day, JobError, ScanStats};
use super::text::{self, TextBlocks};

pub const ADVERTISER_ID: &str = "advertiser_id";
pub const PRODUCT_ID: &str = "product_id";
pub const EVENT_TIME: &str = "event_time";

const BATCH_ROWS: usize = 64 * 1024;

/// Receives the rows of a scan.
pub trait PairVisitor {
    type Advertiser: Copy;
    /// Called once per distinct advertiser value a scanner sees (per batch or run of equal
    /// values); `None` skips that advertiser's rows (they are read but not visited).
    fn advertiser(&mut self, advertiser_id: &str) -> Option<Self::Advertiser>;
    fn pair(&mut self, advertiser: Self::Advertiser, product_id: &str);
    /// A batch of rows at once (Parquet scans call this per record batch), so a visitor can
    /// hash them all first and overlap its memory accesses.
    fn pairs(&mut self, rows: &[(Self::Advertiser, &str)]) {
        for &(advertiser, product_id) in rows {
            self.pair(advertiser, product_id);
        }
    }
}

impl PairVisitor for PairCounts {
    type Advertiser = AdvertiserKey;

    #[inline]
    fn advertiser(&mut self, advertiser_id: &str) -> Option<AdvertiserKey> {
        Some(PairCounts::advertiser(self, advertiser_id))
    }

    #[inline]
    fn pair(&mut self, advertiser: AdvertiserKey, product_id: &str) {
        self.add_with(advertiser, product_id.as_bytes(), 1);
    }

    fn pairs(&mut self, rows: &[(AdvertiserKey, &str)]) {
        self.add_batch(rows);
    }
}

/// What a scan reads: which day (views) or no day filter (catalog), and what to call the
/// files in errors.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    pub day: Option<Day>,
    /// "views" or "catalog": says in errors which input is wrong.
    pub role: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    JsonLines,
}

impl Format {
    pub fn of(location: &Location) -> Result<Format, JobError> {
        let name = location.file_name().to_ascii_lowercase();
        let ext = name.rsplit('.').next().unwrap_or("");
        match ext {
            "parquet" | "parq" | "pq" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::JsonLines),
            _ => {
                if let Location::Local(path) = location {
                    let mut magic = [0u8; 4];
                    if let Ok(mut file) = File::open(path) {
                        use std::io::Read;
                        if file.read_exact(&mut magic).is_ok() && &magic == b"PAR1" {
                            return Ok(Format::Parquet);
                        }
                    }
                }
                Err(JobError::input(
                    location,
                    "unknown file format; name files .parquet, .csv (with a header row) or .jsonl/.ndjson/.json",
                ))
            }
        }
    }
}

/// Where a Parquet file's bytes come from: a local file is reopened per read, an S3 object is
/// fetched once and shared.
enum ParquetBytes {
    Local(std::path::PathBuf),
    Memory(Bytes),
}

/// A Parquet file whose footer has been read once, shared by its row-group units (here and in
/// the rollup's map inputs).
pub struct ParquetFile {
    pub(crate) location: Location,
    bytes: ParquetBytes,
    /// The reader metadata, possibly with type hints (see [`with_type_hints`]).
    pub(crate) metadata: ArrowReaderMetadata,
    projection: Vec<usize>,
}

impl ParquetFile {
    /// Reads the footer of the file at `location` (fetching an S3 object once). `configure`
    /// gets the plain reader metadata and returns the metadata to read with and the projected
    /// column indices, failing when a needed column is missing.
    pub(crate) fn open(
        location: &Location,
        configure: impl FnOnce(
            ArrowReaderMetadata,
        ) -> Result<(ArrowReaderMetadata, Vec<usize>), JobError>,
    ) -> Result<ParquetFile, JobError> {
        let bytes = match location {
            Location::Local(path) => ParquetBytes::Local(path.clone()),
            Location::S3 { .. } => ParquetBytes::Memory(location.read()?),
        };
        let corrupt = |e: parquet::errors::ParquetError| {
            JobError::input(location, format!("not a readable Parquet file: {e}"))
        };
        let plain = match &bytes {
            ParquetBytes::Local(path) => {
                let file = File::open(path)
                    .map_err(|e| JobError::input(location, format!("cannot open: {e}")))?;
                ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(corrupt)?
            }
            ParquetBytes::Memory(data) => {
                ArrowReaderMetadata::load(data, ArrowReaderOptions::new()).map_err(corrupt)?
            }
        };
        let (metadata, projection) = configure(plain)?;
        Ok(ParquetFile {
            location: location.clone(),
            bytes,
            metadata,
            projection,
        })
    }

    /// The rows of `row_groups`, projected, in batches of `batch_rows`.
    pub(crate) fn batches(
        &self,
        row_groups: Vec<usize>,
        batch_rows: usize,
    ) -> Result<ParquetRecordBatchReader, JobError> {
        self.batches_as(&self.metadata, row_groups, batch_rows)
    }

    /// [`ParquetFile::batches`] read as `metadata` says (the same file's, with other type
    /// hints): a reader may choose them per row group.
    pub(crate) fn batches_as(
        &self,
        metadata: &ArrowReaderMetadata,
        row_groups: Vec<usize>,
        batch_rows: usize,
    ) -> Result<ParquetRecordBatchReader, JobError> {
        match &self.bytes {
            ParquetBytes::Local(path) => {
                let reader = File::open(path)
                    .map_err(|e| JobError::input(&self.location, format!("cannot open: {e}")))?;
                self.build_reader(reader, metadata, row_groups, batch_rows)
            }
            ParquetBytes::Memory(data) => {
                self.build_reader(data.clone(), metadata, row_groups, batch_rows)
            }
        }
    }

    fn build_reader<T: ChunkReader + 'static>(
        &self,
        reader: T,
        metadata: &ArrowReaderMetadata,
        row_groups: Vec<usize>,
        batch_rows: usize,
    ) -> Result<ParquetRecordBatchReader, JobError> {
        let mask = ProjectionMask::roots(
            metadata.metadata().file_metadata().schema_descr(),
            self.projection.iter().copied(),
        );
        ParquetRecordBatchReaderBuilder::new_with_metadata(reader, metadata.clone())
            .with_projection(mask)
            .with_row_groups(row_groups)
            .with_batch_size(batch_rows)
            .build()
            .map_err(|e| {
                JobError::input(&self.location, format!("not a readable Parquet file: {e}"))
            })
    }

    /// The rows before row group `row_group`: row numbers in errors count from the file's start.
    pub(crate) fn rows_before(&self, row_group: usize) -> u64 {
        let parquet = self.metadata.metadata();
        (0..row_group)
            .map(|rg| parquet.row_group(rg).num_rows() as u64)
            .sum()
    }
}

/// A share of the input one task scans: a set of row groups of one Parquet file, or one whole
/// CSV/JSON file.
pub enum ScanUnit {
    Parquet {
        file: Arc<ParquetFile>,
        row_groups: Vec<usize>,
        /// The first unit of a file counts the file in [`ScanStats::files`].
        first: bool,
    },
    Whole {
        location: Location,
        format: Format,
    },
}

impl ScanUnit {
    pub fn location(&self) -> &Location {
        match self {
            ScanUnit::Parquet { file, .. } => &file.location,
            ScanUnit::Whole { location, .. } => location,
        }
    }
}

/// Reads what is needed to split a file into units: the Parquet footer (checking the columns
/// now, so a bad file fails before any work), nothing for CSV/JSON.
pub fn plan_file(location: &Location, options: ScanOptions) -> Result<Vec<ScanUnit>, JobError> {
    let format = Format::of(location)?;
    if format != Format::Parquet {
        return Ok(vec![ScanUnit::Whole {
            location: location.clone(),
            format,
        }]);
    }
    let file = Arc::new(ParquetFile::open(location, |plain| {
        let schema = plain.schema().clone();
        let index_of = |name: &str| schema.fields().iter().position(|f| f.name() == name);
        let mut projection = Vec::new();
        for column in [ADVERTISER_ID, PRODUCT_ID] {
            match index_of(column) {
                Some(i) => projection.push(i),
                None => {
                    return Err(missing_column(
                        location,
                        options,
                        column,
                        schema_names(&schema),
                    ))
                }
            }
        }
        if options.day.is_some() {
            if let Some(i) = index_of(EVENT_TIME) {
                projection.push(i);
            }
        }
        // Ask for advertiser_id as a dictionary: Parquet usually stores it dictionary-encoded,
        // and the reader then hands the dictionary over instead of materialising a string per
        // row. product_id as string views: they point into the page (PLAIN) or the dictionary
        // instead of copying every id's bytes into a new buffer.
        let (advertiser, product) = (projection[0], projection[1]);
        Ok((
            with_type_hints(plain, |i, _| i == advertiser, |i, _| i == product),
            projection,
        ))
    })?);
    let row_groups = file.metadata.metadata().num_row_groups();
    if row_groups == 0 {
        return Ok(vec![ScanUnit::Parquet {
            file,
            row_groups: Vec::new(),
            first: true,
        }]);
    }
    Ok((0..row_groups)
        .map(|rg| ScanUnit::Parquet {
            file: file.clone(),
            row_groups: vec![rg],
            first: rg == 0,
        })
        .collect())
}

fn schema_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn missing_column(
    location: &Location,
    options: ScanOptions,
    column: &str,
    present: Vec<String>,
) -> JobError {
    let present = if present.is_empty() {
        "none".to_string()
    } else {
        present.join(", ")
    };
    JobError::input(
        location,
        format!(
            "no column `{column}` (columns present: {present}); the {} need columns advertiser_id and product_id",
            options.role
        ),
    )
}

/// Scans one unit into `visitor`, adding to `stats`.
pub fn scan_unit<V: PairVisitor>(
    unit: &ScanUnit,
    options: ScanOptions,
    visitor: &mut V,
    stats: &mut ScanStats,
) -> Result<(), JobError> {
    match unit {
        ScanUnit::Parquet {
            file,
            row_groups,
            first,
        } => {
            if *first {
                stats.files += 1;
            }
            if row_groups.is_empty() {
                return Ok(());
            }
            scan_parquet(file, row_groups, options, visitor, stats)
        }
        ScanUnit::Whole { location, format } => {
            stats.files += 1;
            let blocks = TextBlocks::open(location)?;
            match format {
                Format::Csv => scan_csv(location, blocks, options, visitor, stats),
                Format::JsonLines => scan_json_lines(location, blocks, options, visitor, stats),
                Format::Parquet => unreachable!("Parquet files are planned into row groups"),
            }
        }
    }
}

fn scan_parquet<V: PairVisitor>(
    file: &ParquetFile,
    row_groups: &[usize],
    options: ScanOptions,
    visitor: &mut V,
    stats: &mut ScanStats,
) -> Result<(), JobError> {
    let location = &file.location;
    let reader = file.batches(row_groups.to_vec(), BATCH_ROWS)?;
    let window = options.day.map(DayWindow::new);
    let mut cache = AdvertiserCache::default();
    let mut first_row = file.rows_before(row_groups[0]);
    for batch in reader {
        let batch =
            batch.map_err(|e| JobError::input(location, format!("corrupt Parquet data: {e}")))?;
        scan_batch(
            location,
            &batch,
            first_row,
            window.as_ref(),
            visitor,
            stats,
            &mut cache,
        )?;
        first_row += batch.num_rows() as u64;
    }
    Ok(())
}

/// The advertiser of a row: missing (null/empty), skipped by the visitor, or a key.
#[derive(Clone, Copy)]
enum AdvertiserSlot<A> {
    Missing,
    Skip,
    Key(A),
}

fn resolve<V: PairVisitor>(visitor: &mut V, id: Option<&str>) -> AdvertiserSlot<V::Advertiser> {
    match id {
        None | Some("") => AdvertiserSlot::Missing,
        Some(id) => match visitor.advertiser(id) {
            Some(key) => AdvertiserSlot::Key(key),
            None => AdvertiserSlot::Skip,
        },
    }
}

/// [`resolve`] out of line: the per-row loops call it once per distinct advertiser, and keep
/// their own code small enough to inline.
#[cold]
#[inline(never)]
fn resolve_cold<V: PairVisitor>(
    visitor: &mut V,
    id: Option<&str>,
) -> AdvertiserSlot<V::Advertiser> {
    resolve(visitor, id)
}

/// Remembers the last advertiser looked up: inputs often hold runs of one advertiser.
struct AdvertiserCache<A> {
    last: String,
    slot: Option<AdvertiserSlot<A>>,
}

impl<A> Default for AdvertiserCache<A> {
    fn default() -> Self {
        AdvertiserCache {
            last: String::new(),
            slot: None,
        }
    }
}

impl<A: Copy> AdvertiserCache<A> {
    #[inline]
    fn get<V: PairVisitor<Advertiser = A>>(
        &mut self,
        visitor: &mut V,
        id: Option<&str>,
    ) -> AdvertiserSlot<A> {
        let Some(id) = id else {
            return AdvertiserSlot::Missing;
        };
        if let Some(slot) = self.slot {
            if bytes_eq(self.last.as_bytes(), id.as_bytes()) {
                return slot;
            }
        }
        let slot = resolve(visitor, Some(id));
        self.last.clear();
        self.last.push_str(id);
        self.slot = Some(slot);
        slot
    }
}

/// A string-valued column of one batch.
enum StrColumn {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
    Dict {
        keys: Int32Array,
        values: Box<StrColumn>,
    },
    Owned(Vec<Option<String>>),
}

impl StrColumn {
    fn new(array: &ArrayRef, location: &Location, column: &str) -> Result<StrColumn, JobError> {
        Ok(match array.data_type() {
            DataType::Utf8 => StrColumn::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => StrColumn::Large(array.as_string::<i64>().clone()),
            DataType::Utf8View => StrColumn::View(array.as_string_view().clone()),
            DataType::Dictionary(key, _) => {
                let (keys, values) = match key.as_ref() {
                    DataType::Int32 => {
                        let dict = array.as_dictionary::<Int32Type>();
                        (dict.keys().clone(), dict.values().clone())
                    }
                    DataType::Int8 => widen_dict::<Int8Type>(array),
                    DataType::Int16 => widen_dict::<Int16Type>(array),
                    DataType::Int64 => widen_dict::<Int64Type>(array),
                    DataType::UInt8 => widen_dict::<UInt8Type>(array),
                    DataType::UInt16 => widen_dict::<UInt16Type>(array),
                    DataType::UInt32 => widen_dict::<UInt32Type>(array),
                    other => {
                        return Err(JobError::input(
                            location,
                            format!("column `{column}` has dictionary keys of type {other}, which emrship-job does not read"),
                        ))
                    }
                };
                StrColumn::Dict {
                    keys,
                    values: Box::new(StrColumn::new(&values, location, column)?),
                }
            }
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let values = arrow_array::cast::as_primitive_array::<Int64Type>(&widen_ints(array))
                    .iter()
                    .map(|v| v.map(|v| v.to_string()))
                    .collect();
                StrColumn::Owned(values)
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                StrColumn::Owned(unsigned_strings(array))
            }
            other => {
                return Err(JobError::input(
                    location,
                    format!(
                        "column `{column}` has type {other}; it must hold strings (or integers)"
                    ),
                ))
            }
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        match self {
            StrColumn::Utf8(a) => (!a.is_null(i)).then(|| a.value(i)),
            StrColumn::Large(a) => (!a.is_null(i)).then(|| a.value(i)),
            StrColumn::View(a) => (!a.is_null(i)).then(|| a.value(i)),
            StrColumn::Dict { keys, values } => {
                if keys.is_null(i) {
                    None
                } else {
                    values.get(keys.value(i) as usize)
                }
            }
            StrColumn::Owned(v) => v[i].as_deref(),
        }
    }

    fn len(&self) -> usize {
        match self {
            StrColumn::Utf8(a) => a.len(),
            StrColumn::Large(a) => a.len(),
            StrColumn::View(a) => a.len(),
            StrColumn::Dict { keys, .. } => keys.len(),
            StrColumn::Owned(v) => v.len(),
        }
    }
}

fn widen_dict<K: arrow_array::types::ArrowDictionaryKeyType>(
    array: &ArrayRef,
) -> (Int32Array, ArrayRef) {
    let dict = array.as_dictionary::<K>();
    let normalized = dict.normalized_keys();
    let keys: Int32Array = (0..dict.len())
        .map(|i| {
            (!dict.keys().is_null(i))
                .then(|| i32::try_from(normalized[i]).ok())
                .flatten()
        })
        .collect();
    (keys, dict.values().clone())
}

fn widen_ints(array: &ArrayRef) -> ArrayRef {
    let values: arrow_array::Int64Array = match array.data_type() {
        DataType::Int8 => array
            .as_primitive::<Int8Type>()
            .iter()
            .map(|v| v.map(i64::from))
            .collect(),
        DataType::Int16 => array
            .as_primitive::<Int16Type>()
            .iter()
            .map(|v| v.map(i64::from))
            .collect(),
        DataType::Int32 => array
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| v.map(i64::from))
            .collect(),
        _ => array.as_primitive::<Int64Type>().clone(),
    };
    Arc::new(values)
}

fn unsigned_strings(array: &ArrayRef) -> Vec<Option<String>> {
    match array.data_type() {
        DataType::UInt8 => array
            .as_primitive::<UInt8Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::UInt16 => array
            .as_primitive::<UInt16Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        DataType::UInt32 => array
            .as_primitive::<UInt32Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
        _ => array
            .as_primitive::<UInt64Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()))
            .collect(),
    }
}

/// The UTC day a run keeps, in the forms the scanners compare against.
pub struct DayWindow {
    text: String,
    start_seconds: i64,
}

impl DayWindow {
    pub fn new(day: Day) -> DayWindow {
        DayWindow {
            text: day.format("%Y-%m-%d").to_string(),
            start_seconds: day
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp(),
        }
    }

    /// Whether a timestamp in `unit` since the epoch falls in the day.
    fn bounds(&self, unit: &TimeUnit) -> (i64, i64) {
        let per_second = match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        };
        (
            self.start_seconds * per_second,
            (self.start_seconds + 86_400) * per_second,
        )
    }

    /// Whether a text event time puts its row outside the day (an empty one does not), or why
    /// it is not a time.
    fn excludes_text(&self, text: &str, location: &Location, row: u64) -> Result<bool, JobError> {
        Ok(!text.is_empty()
            && !self
                .contains_text(text)
                .ok_or_else(|| bad_time(location, row, text))?)
    }

    /// Whether an ISO-8601 string falls in the day; `None` when it is not a time.
    pub fn contains_text(&self, value: &str) -> Option<bool> {
        let bytes = value.as_bytes();
        // Fast path: `YYYY-MM-DD[(T| )HH:MM:SS[.fff]][Z]` without an offset is decided by
        // its date part when that equals the day.
        // (Once per row of a text input: the comparison is inline and the time of day is
        // checked through a table, not a chain of comparisons per byte.)
        if bytes.len() >= 10
            && bytes_eq(&bytes[..10], self.text.as_bytes())
            && (bytes.len() == 10
                || ((bytes[10] == b'T' || bytes[10] == b' ')
                    && bytes[11..].iter().all(|&b| TIME_OF_DAY_BYTES[b as usize])))
        {
            return Some(true);
        }
        let seconds = parse_time(value)?;
        Some(seconds >= self.start_seconds && seconds < self.start_seconds + 86_400)
    }
}

/// The bytes of a time of day without an offset: digits, `:`, `.` and `Z`.
static TIME_OF_DAY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        table[b as usize] = true;
        b += 1;
    }
    table[b':' as usize] = true;
    table[b'.' as usize] = true;
    table[b'Z' as usize] = true;
    table
};

/// Seconds since the epoch of an ISO-8601 date or date-time (no offset means UTC).
fn parse_time(value: &str) -> Option<i64> {
    if let Some(micros) = parse_time_micros(value) {
        return Some(micros.div_euclid(1_000_000));
    }
    let value = value.trim();
    let date = value.strip_suffix('Z').unwrap_or(value);
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok().map(|d| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp()
    })
}

/// Parses an RFC 3339 / ISO 8601 date-time into UTC microseconds; no offset means UTC. A bare
/// date is not a time here (the rollup needs the hour); `parse_time` accepts it as midnight.
pub fn parse_time_micros(value: &str) -> Option<i64> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(value, format) {
            return Some(t.timestamp_micros());
        }
    }
    let naive = value.strip_suffix('Z').unwrap_or(value);
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

/// The event_time column of one batch, ready to test rows against the day.
enum TimeColumn {
    Absent,
    Stamps {
        values: arrow_array::Int64Array,
        low: i64,
        high: i64,
    },
    Days {
        values: arrow_array::Date32Array,
        day: i32,
    },
    Text(StrColumn),
}

impl TimeColumn {
    fn new(
        array: Option<&ArrayRef>,
        window: Option<&DayWindow>,
        location: &Location,
    ) -> Result<TimeColumn, JobError> {
        let (Some(array), Some(window)) = (array, window) else {
            return Ok(TimeColumn::Absent);
        };
        Ok(match array.data_type() {
            DataType::Timestamp(unit, _) => {
                let values: arrow_array::Int64Array = match unit {
                    TimeUnit::Second => array.as_primitive::<TimestampSecondType>().reinterpret_cast(),
                    TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().reinterpret_cast(),
                    TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().reinterpret_cast(),
                    TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().reinterpret_cast(),
                };
                let (low, high) = window.bounds(unit);
                TimeColumn::Stamps { values, low, high }
            }
            DataType::Date32 => TimeColumn::Days {
                values: array.as_primitive::<arrow_array::types::Date32Type>().clone(),
                day: (window.start_seconds / 86_400) as i32,
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                TimeColumn::Text(StrColumn::new(array, location, EVENT_TIME)?)
            }
            other => {
                return Err(JobError::input(
                    location,
                    format!("column `event_time` has type {other}; use a timestamp, a date or an ISO-8601 string"),
                ))
            }
        })
    }

    /// Whether row `i` is in the day (null times are kept).
    #[inline]
    fn keeps(&self, i: usize, window: Option<&DayWindow>) -> Result<bool, String> {
        match self {
            TimeColumn::Absent => Ok(true),
            TimeColumn::Stamps { values, low, high } => {
                Ok(values.is_null(i) || (values.value(i) >= *low && values.value(i) < *high))
            }
            TimeColumn::Days { values, day } => Ok(values.is_null(i) || values.value(i) == *day),
            TimeColumn::Text(column) => match column.get(i) {
                None | Some("") => Ok(true),
                Some(text) => window
                    .expect("a text time column has a window")
                    .contains_text(text)
                    .ok_or_else(|| text.to_string()),
            },
        }
    }
}

fn bad_time(location: &Location, row: u64, text: &str) -> JobError {
    JobError::input(
        location,
        format!(
            "row {row}: event_time `{text}` is not an ISO-8601 time (expected e.g. 2026-11-20T13:05:00Z)"
        ),
    )
}

fn scan_batch<V: PairVisitor>(
    location: &Location,
    batch: &RecordBatch,
    first_row: u64,
    window: Option<&DayWindow>,
    visitor: &mut V,
    stats: &mut ScanStats,
    cache: &mut AdvertiserCache<V::Advertiser>,
) -> Result<(), JobError> {
    let column = |name: &str| batch.column_by_name(name);
    let advertisers = column(ADVERTISER_ID).expect("projected advertiser_id");
    let products = StrColumn::new(
        column(PRODUCT_ID).expect("projected product_id"),
        location,
        PRODUCT_ID,
    )?;
    let times = TimeColumn::new(column(EVENT_TIME), window, location)?;
    let advertisers = StrColumn::new(advertisers, location, ADVERTISER_ID)?;
    let rows = batch.num_rows();
    stats.rows_read += rows as u64;

    let mut kept: Vec<(V::Advertiser, &str)> = Vec::with_capacity(rows);
    let mut batch_rows = BatchRows {
        location,
        first_row,
        kept: &mut kept,
        stats,
    };
    if let StrColumn::Dict { keys, values } = &advertisers {
        // Resolve each dictionary value once per batch.
        let mut resolved: Vec<Option<AdvertiserSlot<V::Advertiser>>> = vec![None; values.len()];
        let slot_of = |i: usize| {
            if keys.is_null(i) {
                return AdvertiserSlot::Missing;
            }
            let k = keys.value(i) as usize;
            match resolved[k] {
                Some(slot) => slot,
                None => *resolved[k].insert(resolve_cold(visitor, values.get(k))),
            }
        };
        batch_rows.visit_columns(rows, slot_of, &products, &times, window)?;
    } else {
        let slot_of = |i: usize| cache.get(visitor, advertisers.get(i));
        batch_rows.visit_columns(rows, slot_of, &products, &times, window)?;
    }
    visitor.pairs(&kept);
    Ok(())
}

/// The per-row part of a batch scan: ids present, then the day, then into `kept`.
struct BatchRows<'k, 'a, A> {
    location: &'a Location,
    first_row: u64,
    kept: &'k mut Vec<(A, &'a str)>,
    stats: &'k mut ScanStats,
}

impl<'a, A: Copy> BatchRows<'_, 'a, A> {
    /// Visits `rows` rows. The usual columns (ids as string views, times as timestamps or
    /// absent) get a loop of their own, without a match on the column types per row.
    fn visit_columns(
        &mut self,
        rows: usize,
        slot_of: impl FnMut(usize) -> AdvertiserSlot<A>,
        products: &'a StrColumn,
        times: &TimeColumn,
        window: Option<&DayWindow>,
    ) -> Result<(), JobError> {
        match (products, times) {
            (StrColumn::View(products), TimeColumn::Stamps { values, low, high }) => self.visit(
                rows,
                slot_of,
                |i| products.is_valid(i).then(|| products.value(i)),
                |i| Ok(values.is_null(i) || (*low..*high).contains(&values.value(i))),
            ),
            (StrColumn::View(products), TimeColumn::Absent) => self.visit(
                rows,
                slot_of,
                |i| products.is_valid(i).then(|| products.value(i)),
                |_| Ok(true),
            ),
            _ => self.visit(
                rows,
                slot_of,
                |i| products.get(i),
                |i| times.keeps(i, window),
            ),
        }
    }

    /// Checks every row (its advertiser, its product id and whether its time is in the day,
    /// by index) and keeps those that count.
    #[inline(always)]
    fn visit(
        &mut self,
        rows: usize,
        mut slot_of: impl FnMut(usize) -> AdvertiserSlot<A>,
        product: impl Fn(usize) -> Option<&'a str>,
        keeps: impl Fn(usize) -> Result<bool, String>,
    ) -> Result<(), JobError> {
        let (mut missing, mut outside) = (0u64, 0u64);
        for i in 0..rows {
            let slot = slot_of(i);
            let product = product(i).filter(|p| !p.is_empty());
            let (advertiser, product) = match (slot, product) {
                (AdvertiserSlot::Missing, _) | (_, None) => {
                    missing += 1;
                    continue;
                }
                (AdvertiserSlot::Skip, Some(p)) => (None, p),
                (AdvertiserSlot::Key(key), Some(p)) => (Some(key), p),
            };
            match keeps(i) {
                Ok(true) => {}
                Ok(false) => {
                    outside += 1;
                    continue;
                }
                Err(text) => {
                    return Err(bad_time(
                        self.location,
                        self.first_row + i as u64 + 1,
                        &text,
                    ))
                }
            }
            if let Some(key) = advertiser {
                self.kept.push((key, product));
            }
        }
        self.stats.rows_missing_ids += missing;
        self.stats.rows_outside_day += outside;
        self.stats.rows_counted += rows as u64 - missing - outside;
        Ok(())
    }
}

fn text_field<'r>(
    location: &Location,
    row: u64,
    column: &str,
    value: Option<&'r [u8]>,
) -> Result<Option<&'r str>, JobError> {
    match value {
        None => Ok(None),
        Some(bytes) => text::utf8(bytes).map(Some).ok_or_else(|| {
            JobError::input(
                location,
                format!("row {row}: column `{column}` is not UTF-8 text"),
            )
        }),
    }
}

/// What every row of a text scan goes through once its fields are read: ids present (null
/// and empty are missing), then the day (`outside_day`, asked only of a row with both ids),
/// each outcome counted in `stats`. The advertiser's key and the product id when the row
/// counts and the visitor keeps the advertiser.
#[inline]
fn count_text_row<'p, V: PairVisitor>(
    cache: &mut AdvertiserCache<V::Advertiser>,
    visitor: &mut V,
    advertiser: Option<&str>,
    product: Option<&'p str>,
    outside_day: impl FnOnce() -> Result<bool, JobError>,
    stats: &mut ScanStats,
) -> Result<Option<(V::Advertiser, &'p str)>, JobError> {
    let slot = cache.get(visitor, advertiser.filter(|s| !s.is_empty()));
    let (slot, product) = match (slot, product.filter(|s| !s.is_empty())) {
        (AdvertiserSlot::Missing, _) | (_, None) => {
            stats.rows_missing_ids += 1;
            return Ok(None);
        }
        (slot, Some(product)) => (slot, product),
    };
    if outside_day()? {
        stats.rows_outside_day += 1;
        return Ok(None);
    }
    stats.rows_counted += 1;
    Ok(match slot {
        AdvertiserSlot::Key(key) => Some((key, product)),
        AdvertiserSlot::Skip | AdvertiserSlot::Missing => None,
    })
}

/// A CSV file's bytes after a UTF-8 byte order mark, if any.
fn csv_text(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(data)
}

/// How the CSV files are read: a header row, rows of any length.
fn csv_builder() -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder.has_headers(true).flexible(true);
    builder
}

/// A CSV reader over a file's bytes: a header row (after a UTF-8 byte order mark, if any),
/// rows of any length.
pub(crate) fn csv_reader(data: &[u8]) -> csv::Reader<&[u8]> {
    csv_builder().from_reader(csv_text(data))
}

fn scan_csv<V: PairVisitor>(
    location: &Location,
    mut blocks: TextBlocks,
    options: ScanOptions,
    visitor: &mut V,
    stats: &mut ScanStats,
) -> Result<(), JobError> {
    let first = blocks.next_block()?.unwrap_or_default();
    let bom = first.len() - csv_text(first).len();
    let mut header = csv_builder().from_reader(&first[bom..]);
    let mut rows = CsvRows::new(location, options, &mut header)?;
    let header_end = bom + header.position().byte() as usize;
    if header_end >= first.len() {
        // The header may go on past the block (a quoted name with a line break): the csv
        // crate reads the whole file (a header alone is no work).
        let mut reader = csv_builder().from_reader(blocks.rest_from(bom));
        let mut rows = CsvRows::new(location, options, &mut reader)?;
        return rows.scan_records(reader, visitor, stats);
    }
    // Plain lines in place, a block at a time; from the first line that is not plain, the rest
    // of the file as the csv crate reads it, rows numbered on.
    let (mut block, mut from) = (first, header_end);
    loop {
        let plain = from + rows.scan_plain_lines(&block[from..], visitor, stats)?;
        if plain < block.len() {
            let mut rest = csv_builder();
            let reader = rest.has_headers(false).from_reader(blocks.rest_from(plain));
            return rows.scan_records(reader, visitor, stats);
        }
        match blocks.next_block()? {
            Some(next) => (block, from) = (next, 0),
            None => break,
        }
    }
    rows.pending.flush(visitor);
    Ok(())
}

/// The rows of one CSV file, numbered from 1 after the header.
struct CsvRows<'a, A> {
    location: &'a Location,
    advertiser: usize,
    product: usize,
    time: Option<usize>,
    window: Option<DayWindow>,
    cache: AdvertiserCache<A>,
    pending: PendingRows<A>,
    row: u64,
}

impl<'a, A: Copy> CsvRows<'a, A> {
    /// Reads the header row and finds the columns (an error names the file and the columns
    /// it has).
    fn new<R: std::io::Read>(
        location: &'a Location,
        options: ScanOptions,
        reader: &mut csv::Reader<R>,
    ) -> Result<Self, JobError> {
        let headers: Vec<String> = reader
            .byte_headers()
            .map_err(|e| JobError::input(location, format!("cannot read the CSV header row: {e}")))?
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        let index_of = |name: &str| headers.iter().position(|h| h == name);
        let advertiser = index_of(ADVERTISER_ID)
            .ok_or_else(|| missing_column(location, options, ADVERTISER_ID, headers.clone()))?;
        let product = index_of(PRODUCT_ID)
            .ok_or_else(|| missing_column(location, options, PRODUCT_ID, headers.clone()))?;
        let window = options.day.map(DayWindow::new);
        let time = window.as_ref().and(index_of(EVENT_TIME));
        Ok(CsvRows {
            location,
            advertiser,
            product,
            time,
            window,
            cache: AdvertiserCache::default(),
            pending: PendingRows::new(),
            row: 0,
        })
    }

    /// Every record `reader` has left, through the csv crate; then hands the pending rows over.
    fn scan_records<R: std::io::Read, V: PairVisitor<Advertiser = A>>(
        &mut self,
        mut reader: csv::Reader<R>,
        visitor: &mut V,
        stats: &mut ScanStats,
    ) -> Result<(), JobError> {
        let mut record = csv::ByteRecord::new();
        loop {
            let more = reader.read_byte_record(&mut record).map_err(|e| {
                JobError::input(
                    self.location,
                    format!("row {}: malformed CSV: {e}", self.row + 1),
                )
            })?;
            if !more {
                break;
            }
            self.visit(|i| record.get(i), visitor, stats)?;
        }
        self.pending.flush(visitor);
        Ok(())
    }

    /// Reads the leading lines of `body` that hold no quote and no carriage return but one
    /// ending the line: their fields are what is between the commas, as the csv crate reads
    /// them, without its per-byte state machine. Returns how many bytes it read (whole lines).
    fn scan_plain_lines<V: PairVisitor<Advertiser = A>>(
        &mut self,
        body: &[u8],
        visitor: &mut V,
        stats: &mut ScanStats,
    ) -> Result<usize, JobError> {
        let fields = self
            .advertiser
            .max(self.product)
            .max(self.time.unwrap_or(0))
            + 1;
        let mut bounds: Vec<(usize, usize)> = Vec::with_capacity(fields);
        let mut start = 0;
        while start < body.len() {
            // One pass over the line for its commas and its end: `\n`, `\r\n`, or a `\r` or
            // the end of `body` at the end of the file.
            bounds.clear();
            let (mut field_start, mut at) = (start, start);
            let (end, next) = loop {
                let Some(hit) = text::find_any(body, at, [b',', b'\n', b'\r', b'"']) else {
                    break (body.len(), body.len());
                };
                match body[hit] {
                    b',' => {
                        if bounds.len() < fields {
                            bounds.push((field_start, hit));
                        }
                        field_start = hit + 1;
                        at = hit + 1;
                    }
                    b'\n' => break (hit, hit + 1),
                    b'\r' if hit + 1 == body.len() => break (hit, hit + 1),
                    b'\r' if body[hit + 1] == b'\n' => break (hit, hit + 2),
                    // A quote or a carriage return inside the line: not plain.
                    _ => return Ok(start),
                }
            };
            // The csv crate skips empty lines.
            if end > start {
                if bounds.len() < fields {
                    bounds.push((field_start, end));
                }
                let field = |i: usize| bounds.get(i).map(|&(from, to)| &body[from..to]);
                self.visit(field, visitor, stats)?;
            }
            start = next;
        }
        Ok(start)
    }

    /// Checks one row (its fields by column index) and, when it counts, adds it to `pending`.
    #[inline]
    fn visit<'r, V: PairVisitor<Advertiser = A>>(
        &mut self,
        field: impl Fn(usize) -> Option<&'r [u8]>,
        visitor: &mut V,
        stats: &mut ScanStats,
    ) -> Result<(), JobError> {
        self.row += 1;
        let (location, row) = (self.location, self.row);
        stats.rows_read += 1;
        let advertiser = text_field(location, row, ADVERTISER_ID, field(self.advertiser))?;
        let product = text_field(location, row, PRODUCT_ID, field(self.product))?;
        let outside_day = || match (&self.window, self.time) {
            (Some(window), Some(i)) => match text_field(location, row, EVENT_TIME, field(i))? {
                Some(text) => window.excludes_text(text, location, row),
                None => Ok(false),
            },
            _ => Ok(false),
        };
        let counted = count_text_row(
            &mut self.cache,
            visitor,
            advertiser,
            product,
            outside_day,
            stats,
        )?;
        if let Some((key, product)) = counted {
            self.pending.add(key, product);
            if self.pending.rows.len() == BATCH_ROWS {
                self.pending.flush(visitor);
            }
        }
        Ok(())
    }
}

/// Rows of a text scan waiting for the visitor: the record buffer is reused per row, so the
/// product ids are copied into one arena and handed over a batch at a time (the visitor
/// hashes a batch first and overlaps its table probes).
struct PendingRows<A> {
    rows: Vec<(A, u32, u32)>,
    arena: String,
}

impl<A: Copy> PendingRows<A> {
    fn new() -> Self {
        PendingRows {
            rows: Vec::new(),
            arena: String::new(),
        }
    }

    #[inline]
    fn add(&mut self, advertiser: A, product: &str) {
        let start = self.arena.len() as u32;
        self.arena.push_str(product);
        self.rows.push((advertiser, start, self.arena.len() as u32));
    }

    fn flush<V: PairVisitor<Advertiser = A>>(&mut self, visitor: &mut V) {
        let rows: Vec<(A, &str)> = self
            .rows
            .iter()
            .map(|&(a, start, end)| (a, &self.arena[start as usize..end as usize]))
            .collect();
        visitor.pairs(&rows);
        self.rows.clear();
        self.arena.clear();
    }
}

/// An id from JSON: a string, or an integer read as its decimal text.
fn json_id<'v>(
    location: &Location,
    line: u64,
    column: &str,
    value: Option<&'v serde_json::Value>,
) -> Result<Option<std::borrow::Cow<'v, str>>, JobError> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(std::borrow::Cow::Borrowed(s))),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            Ok(Some(std::borrow::Cow::Owned(n.to_string())))
        }
        Some(other) => Err(JobError::input(
            location,
            format!("line {line}: `{column}` is {other}; ids must be strings or integers"),
        )),
    }
}

/// The keys of a view line the scan reads, in the order [`ViewLine::fields`] and
/// [`json_line::flat_fields`] return their values.
pub(crate) const VIEW_KEYS: [&str; 3] = [ADVERTISER_ID, PRODUCT_ID, EVENT_TIME];

/// One view as JSON Lines usually hold it: string (or null) values, borrowed from the line.
/// The outer `Option` says whether the key is present.
#[derive(serde::Deserialize)]
pub(crate) struct ViewLine<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    advertiser_id: json_line::Field<'a>,
    #[serde(borrow, default, deserialize_with = "present")]
    product_id: json_line::Field<'a>,
    #[serde(borrow, default, deserialize_with = "present")]
    event_time: json_line::Field<'a>,
}

impl<'a> ViewLine<'a> {
    /// The values of [`VIEW_KEYS`] in `line` as serde reads them into a `ViewLine`; `None`
    /// when it does not (escapes, ids as numbers, errors).
    pub(crate) fn fields(line: &'a [u8]) -> Option<[json_line::Field<'a>; 3]> {
        let view = serde_json::from_slice::<ViewLine<'a>>(line).ok()?;
        Some([view.advertiser_id, view.product_id, view.event_time])
    }
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<json_line::Field<'de>, D::Error> {
    <Option<&'de str> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

fn scan_json_lines<V: PairVisitor>(
    location: &Location,
    mut blocks: TextBlocks,
    options: ScanOptions,
    visitor: &mut V,
    stats: &mut ScanStats,
) -> Result<(), JobError> {
    let window = options.day.map(DayWindow::new);
    let mut cache = AdvertiserCache::default();
    let (mut seen_advertiser, mut seen_product) = (false, false);
    let mut keys_seen: Vec<String> = Vec::new();
    let mut rows = 0u64;
    let mut line_no = 0u64;
    while let Some(block) = blocks.next_block()? {
        // Rows of the fast path, handed to the visitor in batches (it hashes and prefetches).
        let mut kept: Vec<(V::Advertiser, &str)> = Vec::new();
        for line in text::lines(block) {
            line_no += 1;
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            // Fast paths: a flat line read in place (json_line), else a line of plain strings (or
            // nulls) parsed by serde into a borrowed struct, other keys skipped. Anything else
            // (ids as numbers, escapes, duplicate keys, errors) takes the general path below,
            // which also reads the first line for the column names of errors.
            if !keys_seen.is_empty() {
                let fields =
                    json_line::flat_fields(line, &VIEW_KEYS).or_else(|| ViewLine::fields(line));
                if let Some([advertiser, product, event_time]) = fields {
                    rows += 1;
                    stats.rows_read += 1;
                    seen_advertiser |= advertiser.is_some();
                    seen_product |= product.is_some();
                    let outside_day = || match (&window, event_time) {
                        (Some(window), Some(Some(text))) => {
                            window.excludes_text(text, location, line_no)
                        }
                        _ => Ok(false),
                    };
                    let counted = count_text_row(
                        &mut cache,
                        visitor,
                        advertiser.flatten(),
                        product.flatten(),
                        outside_day,
                        stats,
                    )?;
                    if let Some(pair) = counted {
                        kept.push(pair);
                        if kept.len() == BATCH_ROWS {
                            visitor.pairs(&kept);
                            kept.clear();
                        }
                    }
                    continue;
                }
            }
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
                .map_err(|e| {
                JobError::input(location, format!("line {line_no}: not a JSON object: {e}"))
            })?;
            rows += 1;
            stats.rows_read += 1;
            if keys_seen.is_empty() {
                keys_seen = object.keys().cloned().collect();
            }
            seen_advertiser |= object.contains_key(ADVERTISER_ID);
            seen_product |= object.contains_key(PRODUCT_ID);
            let advertiser = json_id(location, line_no, ADVERTISER_ID, object.get(ADVERTISER_ID))?;
            let product = json_id(location, line_no, PRODUCT_ID, object.get(PRODUCT_ID))?;
            let outside_day = || match (&window, object.get(EVENT_TIME)) {
                (None, _) | (_, None | Some(serde_json::Value::Null)) => Ok(false),
                (Some(window), Some(serde_json::Value::String(text))) => {
                    window.excludes_text(text, location, line_no)
                }
                (Some(_), Some(other)) => Err(JobError::input(
                    location,
                    format!("line {line_no}: event_time is {other}; use an ISO-8601 string"),
                )),
            };
            let counted = count_text_row(
                &mut cache,
                visitor,
                advertiser.as_deref(),
                product.as_deref(),
                outside_day,
                stats,
            )?;
            if let Some((key, product)) = counted {
                visitor.pair(key, product);
            }
        }
        visitor.pairs(&kept);
    }
    if rows > 0 {
        for (seen, column) in [(seen_advertiser, ADVERTISER_ID), (seen_product, PRODUCT_ID)] {
            if !seen {
                return Err(missing_column(location, options, column, keys_seen));
            }
        }
    }
    Ok(())
}

/// The reader metadata with the string columns `pick` chooses read as `Dictionary(Int32, _)`:
/// a dictionary-encoded Parquet column then comes as its dictionary plus keys, not as a string
/// per row. Those `view` chooses are read as `Utf8View`: views point into the decoded page or
/// dictionary, no bytes copied per row. Files with nested columns, or where the hints are
/// refused, keep the plain schema.
pub(crate) fn with_type_hints(
    plain: ArrowReaderMetadata,
    pick: impl Fn(usize, &Field) -> bool,
    view: impl Fn(usize, &Field) -> bool,
) -> ArrowReaderMetadata {
    let schema = plain.schema().clone();
    let nested = schema.fields().iter().any(|f| {
        matches!(
            f.data_type(),
            DataType::Struct(_) | DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _)
        )
    });
    if nested {
        return plain;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if pick(i, f) && matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(f.data_type().clone()),
                ))
            } else if view(i, f) && matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                f.as_ref().clone().with_data_type(DataType::Utf8View)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    ArrowReaderMetadata::try_new(
        plain.metadata().clone(),
        ArrowReaderOptions::new().with_schema(hinted),
    )
    .unwrap_or(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `text` as a views file of 2026-11-20 named `name`: the counts by (advertiser,
    /// product), and the stats.
    fn scan_text(name: &str, text: &str) -> (Counted, ScanStats) {
        try_scan_text(name, text).unwrap()
    }

    /// Counts by (advertiser, product).
    type Counted = std::collections::BTreeMap<(String, String), u64>;

    /// [`scan_text`], or the scan's error.
    fn try_scan_text(name: &str, text: &str) -> Result<(Counted, ScanStats), JobError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let options = ScanOptions {
            day: Some(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()),
            role: "views",
        };
        let mut counts = PairCounts::new();
        let mut stats = ScanStats::default();
        for unit in plan_file(&Location::Local(path), options).unwrap() {
            scan_unit(&unit, options, &mut counts, &mut stats)?;
        }
        let got = counts
            .iter()
            .map(|(a, p, n)| ((a.to_string(), p.to_string()), n))
            .collect();
        Ok((got, stats))
    }

    #[test]
    fn text_rows_read_their_time_only_when_both_ids_are_there() {
        // Rows missing an id are counted as such whatever their time holds; a row with both
        // ids and a time that is not one is an error. CSV read in place and by the csv crate
        // (a quoted line), JSON Lines on the fast path and the general one (the first line).
        let header = "advertiser_id,product_id,event_time\n";
        let csv_ok = [
            ",p1,yesterday\na1,,yesterday\na1,p1,2026-11-20\n",
            "\"\",p1,yesterday\na1,\"\",yesterday\na1,p1,2026-11-20\n",
        ];
        let json_ok = concat!(
            r#"{"advertiser_id":null,"product_id":"p1","event_time":12}"#,
            "\n",
            r#"{"advertiser_id":"a1","product_id":"","event_time":"yesterday"}"#,
            "\n",
            r#"{"advertiser_id":"a1","product_id":"p1","event_time":"2026-11-20"}"#,
        );
        for (name, text) in [
            ("v.csv", format!("{header}{}", csv_ok[0])),
            ("v.csv", format!("{header}{}", csv_ok[1])),
            ("v.jsonl", json_ok.to_string()),
        ] {
            let (got, stats) = try_scan_text(name, &text).unwrap();
            assert_eq!(got.len(), 1, "{text}");
            let counted = (
                stats.rows_missing_ids,
                stats.rows_outside_day,
                stats.rows_counted,
            );
            assert_eq!(counted, (2, 0, 1), "{text}");
        }
        let errors = [
            (
                "v.csv",
                format!("{header}a1,p1,2026-11-20\na1,p1,yesterday\n"),
                "row 2: event_time `yesterday`",
            ),
            (
                "v.csv",
                format!("{header}a1,p1,2026-11-20\n\"a1\",p1,yesterday\n"),
                "row 2: event_time `yesterday`",
            ),
            (
                "v.jsonl",
                format!(
                    "{}\n{}",
                    r#"{"advertiser_id":"a1","product_id":"p1"}"#,
                    r#"{"advertiser_id":"a1","product_id":"p1","event_time":"yesterday"}"#
                ),
                "row 2: event_time `yesterday`",
            ),
            (
                "v.jsonl",
                r#"{"advertiser_id":"a1","product_id":"p1","event_time":12}"#.to_string(),
                "line 1: event_time is 12",
            ),
        ];
        for (name, text, message) in errors {
            let error = try_scan_text(name, &text).unwrap_err().to_string();
            assert!(error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn csv_reads_the_same_in_place_and_through_the_csv_crate() {
        let pairs = |list: &[(&str, &str, u64)]| {
            list.iter()
                .map(|&(a, p, n)| ((a.to_string(), p.to_string()), n))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let plain = "a1,p1,2026-11-20T01:00:00Z\r\n\r\na2,p2\na1,p1,\na4,p4,2026-11-21T00:00:00Z\n";
        let quoted = "\"a3\",\"p,3\",2026-11-20\n\"a5\",\"p\r\n5\"\na1,p1\n";
        let want = pairs(&[
            ("a1", "p1", 3),
            ("a2", "p2", 1),
            ("a3", "p,3", 1),
            ("a5", "p\r\n5", 1),
        ]);
        // Plain lines first (read in place), then quoted ones (the csv crate), and the other
        // way round; a byte order mark and a quoted header.
        for text in [
            format!("\u{feff}advertiser_id,product_id,event_time\r\n{plain}{quoted}"),
            format!("\"advertiser_id\",product_id,event_time\n{quoted}{plain}"),
        ] {
            let (got, stats) = scan_text("v.csv", &text);
            assert_eq!(got, want, "{text:?}");
            assert_eq!(
                (stats.rows_read, stats.rows_outside_day),
                (7, 1),
                "{text:?}"
            );
        }
        let (got, stats) = scan_text("v.csv", "advertiser_id,product_id\n");
        assert!(got.is_empty());
        assert_eq!(stats.rows_read, 0);
    }

    #[test]
    fn json_lines_of_plain_strings_take_the_fast_path() {
        let line =
            br#"{"advertiser_id":"a1","x":[1,{"y":null}],"product_id":"p1","event_time":null}"#;
        let fast = serde_json::from_slice::<ViewLine<'_>>(line).expect("the fast path");
        assert_eq!(fast.advertiser_id, Some(Some("a1")));
        assert_eq!(fast.product_id, Some(Some("p1")));
        assert_eq!(fast.event_time, Some(None));
        let missing = serde_json::from_slice::<ViewLine<'_>>(br#"{"product_id":"p"}"#).unwrap();
        assert_eq!(missing.advertiser_id, None);
        // Not borrowable, or not a string: left to the general path.
        assert!(serde_json::from_slice::<ViewLine<'_>>(br#"{"product_id":"p\"q"}"#).is_err());
        assert!(serde_json::from_slice::<ViewLine<'_>>(br#"{"product_id":12}"#).is_err());
    }

    #[test]
    fn day_window_reads_iso_times() {
        let window = DayWindow::new(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
        for inside in [
            "2026-11-20",
            "2026-11-20T00:00:00Z",
            "2026-11-20 23:59:59.999",
            "2026-11-21T01:00:00+02:00",
            "2026-11-19T23:30:00-01:00",
        ] {
            assert_eq!(window.contains_text(inside), Some(true), "{inside}");
        }
        for outside in [
            "2026-11-21T00:00:00Z",
            "2026-11-19T23:59:59",
            "2026-11-20T23:30:00-01:00",
        ] {
            assert_eq!(window.contains_text(outside), Some(false), "{outside}");
        }
        assert!(window.contains_text("yesterday").is_none());
        assert!(window.contains_text("2026-11-2x").is_none());
    }
}
