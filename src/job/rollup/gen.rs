//! `emrship-job gen rollup`: deterministic synthetic page-view events for the rollup job, its
//! tests and its benchmark (the shape of Parse.ly's rollup input, see the data contract).
//!
//! Layout: `OUT/year=YYYY/month=MM/day=DD/hour=HH/customer=<c>/part-<i>.<ext>`; file `i` holds
//! records `i * records_per_file ..` of hour `start + i / files_per_hour`, customer
//! `site-<i % customers>.example`. The customer is only in the path (as Hive partitioning
//! writes it); the files hold `url`, `referrer` (nullable), `session_id` and `ts`.
//!
//! Every value is a pure function of (seed, record index) through the match-rate generator's
//! [`Random`] (no `rand` crate, so the bytes never change with a dependency upgrade), except
//! repeated sessions: ~8% of records copy the url and session of an earlier record of the same
//! file (chosen uniformly, so the url distribution stays Zipf-like). Files are independent and
//! generated in parallel, one rayon task each.
//!
//! - url: `https://<customer>/articles/<n>`, n Zipf-like (≈ 1/rank) over `--urls`;
//! - referrer: one of [`REFERRERS`], Zipf-like, null (a direct visit) for ~15%;
//! - session_id: 16 lowercase hex digits;
//! - ts: uniform in the file's hour, except ~1% late events from the hour before.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{Datelike, NaiveDateTime, Timelike};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use crate::job::gen::{time_text, GenFormat, Random};
use crate::job::model::JobError;

/// The referrers events come from, most common first; null (not listed) is a direct visit.
pub const REFERRERS: [&str; 20] = [
    "https://www.google.com/",
    "https://www.facebook.com/",
    "https://t.co/",
    "https://www.bing.com/",
    "https://news.ycombinator.com/",
    "https://www.reddit.com/",
    "https://duckduckgo.com/",
    "https://www.linkedin.com/",
    "https://news.google.com/",
    "https://search.yahoo.com/",
    "https://flipboard.com/",
    "https://www.instagram.com/",
    "https://l.messenger.com/",
    "https://www.pinterest.com/",
    "https://out.reddit.com/",
    "https://lm.facebook.com/",
    "https://www.ecosia.org/",
    "https://yandex.ru/",
    "https://getpocket.com/",
    "https://mail.google.com/",
];

/// Share of records from the hour before their file's hour.
pub const LATE_FRACTION: f64 = 0.01;
/// Share of records with a null referrer.
pub const DIRECT_FRACTION: f64 = 0.15;
/// Share of records repeating a (url, session) seen earlier in the same file.
pub const REPEAT_FRACTION: f64 = 0.08;

const HOUR_MICROS: i64 = 3_600_000_000;
const BATCH: usize = 64 * 1024;
const ROW_GROUP_ROWS: usize = 1_000_000;
// Stream separators: each kind of random draw uses its own stream of the seed.
const URL: u64 = 0x101;
const REFERRER_NULL: u64 = 0x102;
const REFERRER: u64 = 0x103;
const SESSION: u64 = 0x104;
const REPEAT: u64 = 0x105;
const REPEAT_SOURCE: u64 = 0x106;
const LATE: u64 = 0x107;
const TIME: u64 = 0x108;

#[derive(Debug, Clone)]
pub struct RollupGenSpec {
    pub records: u64,
    pub records_per_file: u64,
    pub files_per_hour: u64,
    pub customers: u64,
    pub urls: u64,
    pub seed: u64,
    /// The first file's hour (UTC; minutes and seconds are ignored).
    pub start: NaiveDateTime,
    pub format: GenFormat,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupGenReport {
    pub records: u64,
    pub files: u64,
    pub hours: u64,
    /// Records whose `ts` is in the hour before their file's.
    pub late: u64,
    /// Records repeating a (url, session) seen earlier in the same file.
    pub repeated: u64,
    /// Records with a null referrer.
    pub direct: u64,
}

impl RollupGenReport {
    fn add(mut self, other: Self) -> Self {
        self.records += other.records;
        self.late += other.late;
        self.repeated += other.repeated;
        self.direct += other.direct;
        self
    }
}

/// Parses `--start`: `YYYY-MM-DDTHH`, optionally with `:MM` and `:SS` (floored to the hour).
pub fn parse_start(text: &str) -> Result<NaiveDateTime, String> {
    parse_time(text)
        .map(floor_hour)
        .map_err(|_| format!("{text:?} is not an hour like 2026-11-20T00 (UTC)"))
}

/// `YYYY-MM-DDTHH`, optionally with `:MM` and `:SS` (UTC), as written.
pub fn parse_time(text: &str) -> Result<NaiveDateTime, String> {
    let formats = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"];
    formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| NaiveDateTime::parse_from_str(&format!("{text}:00"), "%Y-%m-%dT%H:%M").ok())
        .ok_or_else(|| {
            format!("{text:?} is not a time like 2026-11-20T00 or 2026-11-20T00:30 (UTC)")
        })
}

fn floor_hour(t: NaiveDateTime) -> NaiveDateTime {
    t.date().and_hms_opt(t.hour(), 0, 0).expect("a whole hour")
}

pub fn customer_name(c: u64) -> String {
    format!("site-{c}.example")
}

/// The generated dataset's shape: everything about a file but its records.
struct Model {
    spec: RollupGenSpec,
    random: Random,
    start_micros: i64,
    files: u64,
}

impl Model {
    fn file_hour_micros(&self, file: u64) -> i64 {
        self.start_micros + (file / self.spec.files_per_hour) as i64 * HOUR_MICROS
    }

    /// `year=…/month=…/day=…/hour=…/customer=…/part-<file>.<ext>`, relative to the output.
    fn file_path(&self, file: u64) -> PathBuf {
        let hour = chrono::DateTime::from_timestamp_micros(self.file_hour_micros(file))
            .expect("an hour within chrono's range")
            .naive_utc();
        PathBuf::from(format!(
            "year={:04}/month={:02}/day={:02}/hour={:02}/customer={}/part-{file:05}.{}",
            hour.year(),
            hour.month(),
            hour.day(),
            hour.hour(),
            customer_name(file % self.spec.customers),
            self.spec.format.extension()
        ))
    }

    fn file_rows(&self, file: u64) -> std::ops::Range<u64> {
        let start = file * self.spec.records_per_file;
        start..(start + self.spec.records_per_file).min(self.spec.records)
    }
}

#[derive(Debug, Clone, Copy)]
struct Event {
    url: u32,
    referrer: Option<u8>,
    session: u64,
    ts_micros: i64,
}

/// One file's records in order; keeps the file's (url, session) history for repeats.
struct FileEvents<'a> {
    model: &'a Model,
    rows: std::ops::Range<u64>,
    next: u64,
    hour_micros: i64,
    urls: Vec<u32>,
    sessions: Vec<u64>,
    stats: RollupGenReport,
}

impl<'a> FileEvents<'a> {
    fn new(model: &'a Model, file: u64) -> Self {
        let rows = model.file_rows(file);
        let n = (rows.end - rows.start) as usize;
        FileEvents {
            model,
            next: rows.start,
            rows,
            hour_micros: model.file_hour_micros(file),
            urls: Vec::with_capacity(n),
            sessions: Vec::with_capacity(n),
            stats: RollupGenReport::default(),
        }
    }

    fn next_event(&mut self) -> Option<Event> {
        if self.next >= self.rows.end {
            return None;
        }
        let g = self.next;
        let local = (g - self.rows.start) as usize;
        self.next += 1;
        let random = self.model.random;
        let (url, session) = if local > 0 && random.unit(REPEAT, g) < REPEAT_FRACTION {
            self.stats.repeated += 1;
            let source = (random.draw(REPEAT_SOURCE, g) % local as u64) as usize;
            (self.urls[source], self.sessions[source])
        } else {
            (
                random.zipf(URL, g, self.model.spec.urls) as u32,
                random.draw(SESSION, g),
            )
        };
        self.urls.push(url);
        self.sessions.push(session);
        let referrer = if random.unit(REFERRER_NULL, g) < DIRECT_FRACTION {
            self.stats.direct += 1;
            None
        } else {
            Some(random.zipf(REFERRER, g, REFERRERS.len() as u64) as u8)
        };
        let mut hour = self.hour_micros;
        if random.unit(LATE, g) < LATE_FRACTION {
            self.stats.late += 1;
            hour -= HOUR_MICROS;
        }
        let ts_micros = hour + (random.draw(TIME, g) % HOUR_MICROS as u64) as i64;
        self.stats.records += 1;
        Some(Event {
            url,
            referrer,
            session,
            ts_micros,
        })
    }
}

fn usage(message: String) -> JobError {
    JobError::Usage(message)
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> JobError {
    JobError::Other(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes the dataset under `spec.out`, replacing the `year=*` directories of an earlier one:
/// the files are written aside (`OUT/.gen-rollup-<pid>/`), renamed into place, and
/// `OUT/_SUCCESS` is written last (removed first), so a reader that requires `_SUCCESS` never
/// sees a partial dataset and a failed run leaves the earlier one intact.
pub fn generate(spec: &RollupGenSpec) -> Result<RollupGenReport, JobError> {
    for (flag, value) in [
        ("--records", spec.records),
        ("--records-per-file", spec.records_per_file),
        ("--files-per-hour", spec.files_per_hour),
        ("--customers", spec.customers),
        ("--urls", spec.urls),
    ] {
        if value == 0 {
            return Err(usage(format!("{flag} must be at least 1")));
        }
    }
    if spec.urls > u64::from(u32::MAX) {
        return Err(usage(format!(
            "--urls must be at most {}, not {}",
            u32::MAX,
            spec.urls
        )));
    }
    let files = spec.records.div_ceil(spec.records_per_file);
    let model = Model {
        spec: spec.clone(),
        random: Random { seed: spec.seed },
        start_micros: floor_hour(spec.start).and_utc().timestamp_micros(),
        files,
    };
    let out = &spec.out;
    std::fs::create_dir_all(out).map_err(|e| io_error("create", out, e))?;
    let staging = out.join(format!(".gen-rollup-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| io_error("remove", &staging, e))?;
    }
    let result = write_files(&model, &staging);
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    publish(out, &staging)?;
    Ok(RollupGenReport {
        files,
        hours: files.div_ceil(spec.files_per_hour),
        ..report
    })
}

fn write_files(model: &Model, staging: &Path) -> Result<RollupGenReport, JobError> {
    let done = AtomicU64::new(0);
    let last_progress = Mutex::new(Instant::now());
    let files = model.files;
    (0..files)
        .into_par_iter()
        .map(|file| {
            let path = staging.join(model.file_path(file));
            let dir = path.parent().expect("a file under the staging directory");
            std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
            let stats = write_file(model, file, &path)?;
            let done = done.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = last_progress.lock().expect("progress lock");
            if done == files || last.elapsed().as_secs_f64() >= 2.0 {
                *last = Instant::now();
                eprintln!("gen rollup: {done}/{files} files written");
            }
            Ok(stats)
        })
        .try_reduce(RollupGenReport::default, |a, b| Ok(a.add(b)))
}

/// Replaces `out`'s `year=*` directories with `staging`'s, then writes `_SUCCESS`.
fn publish(out: &Path, staging: &Path) -> Result<(), JobError> {
    let success = out.join("_SUCCESS");
    if success.exists() {
        std::fs::remove_file(&success).map_err(|e| io_error("remove", &success, e))?;
    }
    let entries = |dir: &Path| -> Result<Vec<PathBuf>, JobError> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_error("list", dir, e))? {
            let path = entry.map_err(|e| io_error("list", dir, e))?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("year="))
            {
                paths.push(path);
            }
        }
        Ok(paths)
    };
    for old in entries(out)? {
        std::fs::remove_dir_all(&old).map_err(|e| io_error("remove", &old, e))?;
    }
    for new in entries(staging)? {
        let target = out.join(new.file_name().expect("a named entry"));
        std::fs::rename(&new, &target).map_err(|e| io_error("rename into place", &new, e))?;
    }
    std::fs::remove_dir_all(staging).map_err(|e| io_error("remove", staging, e))?;
    std::fs::write(&success, b"").map_err(|e| io_error("write", &success, e))
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("referrer", DataType::Utf8, true),
        Field::new("session_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

#[inline]
fn session_hex(session: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 16];
    for (i, byte) in text.iter_mut().enumerate() {
        *byte = DIGITS[((session >> (60 - 4 * i)) & 0xF) as usize];
    }
    text
}

fn session_str(text: &[u8; 16]) -> &str {
    std::str::from_utf8(text).expect("hex digits")
}

fn write_file(model: &Model, file: u64, path: &Path) -> Result<RollupGenReport, JobError> {
    let fail = |e: String| io_error("write", path, e);
    let customer = customer_name(file % model.spec.customers);
    let url_prefix = format!("https://{customer}/articles/");
    let url_texts: Vec<String> = (0..model.spec.urls)
        .map(|n| format!("{url_prefix}{n}"))
        .collect();
    let mut events = FileEvents::new(model, file);
    let handle = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, handle);
    match model.spec.format {
        GenFormat::Parquet => {
            let schema = schema();
            // Sessions and times are (nearly) unique: a dictionary would only be abandoned
            // after its first page; urls and referrers keep the writer's default dictionary.
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .set_column_dictionary_enabled(ColumnPath::from("session_id"), false)
                .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
                .build();
            let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(properties))
                .map_err(|e| fail(e.to_string()))?;
            loop {
                let mut urls = StringBuilder::with_capacity(BATCH, BATCH * 40);
                let mut referrers = StringBuilder::with_capacity(BATCH, BATCH * 24);
                let mut sessions = StringBuilder::with_capacity(BATCH, BATCH * 16);
                let mut times = Vec::with_capacity(BATCH);
                while times.len() < BATCH {
                    let Some(event) = events.next_event() else {
                        break;
                    };
                    urls.append_value(&url_texts[event.url as usize]);
                    referrers.append_option(event.referrer.map(|r| REFERRERS[r as usize]));
                    sessions.append_value(session_str(&session_hex(event.session)));
                    times.push(event.ts_micros);
                }
                if times.is_empty() {
                    break;
                }
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(urls.finish()),
                    Arc::new(referrers.finish()),
                    Arc::new(sessions.finish()),
                    Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
                ];
                let batch = RecordBatch::try_new(schema.clone(), columns)
                    .map_err(|e| fail(e.to_string()))?;
                writer.write(&batch).map_err(|e| fail(e.to_string()))?;
            }
            writer.close().map_err(|e| fail(e.to_string()))?;
        }
        GenFormat::Csv | GenFormat::Jsonl => {
            use std::fmt::Write as _;
            use std::io::Write as _;
            let csv = model.spec.format == GenFormat::Csv;
            let mut text = String::new();
            if csv {
                text.push_str("url,referrer,session_id,ts\n");
            }
            while let Some(event) = events.next_event() {
                let url = &url_texts[event.url as usize];
                let hex = session_hex(event.session);
                let session = session_str(&hex);
                let ts = time_text(event.ts_micros);
                // Urls, referrers and sessions hold no commas, quotes or backslashes.
                let _ = match (csv, event.referrer) {
                    (true, Some(r)) => {
                        writeln!(text, "{url},{},{session},{ts}", REFERRERS[r as usize])
                    }
                    (true, None) => writeln!(text, "{url},,{session},{ts}"),
                    (false, Some(r)) => writeln!(
                        text,
                        r#"{{"url":"{url}","referrer":"{}","session_id":"{session}","ts":"{ts}"}}"#,
                        REFERRERS[r as usize]
                    ),
                    (false, None) => writeln!(
                        text,
                        r#"{{"url":"{url}","referrer":null,"session_id":"{session}","ts":"{ts}"}}"#
                    ),
                };
                if text.len() > 1 << 16 {
                    out.write_all(text.as_bytes())
                        .map_err(|e| fail(e.to_string()))?;
                    text.clear();
                }
            }
            out.write_all(text.as_bytes())
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    use std::io::Write as _;
    out.flush().map_err(|e| fail(e.to_string()))?;
    Ok(events.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_accepts_an_hour_with_or_without_minutes() {
        let hour = parse_start("2026-11-20T05").unwrap();
        assert_eq!(hour.to_string(), "2026-11-20 05:00:00");
        assert_eq!(parse_start("2026-11-20T05:00").unwrap(), hour);
        assert_eq!(parse_start("2026-11-20T05:42:10").unwrap(), hour);
        assert!(parse_start("2026-11-20").is_err());
        assert!(parse_start("yesterday").is_err());
    }

    #[test]
    fn session_ids_are_sixteen_lowercase_hex_digits() {
        assert_eq!(session_str(&session_hex(0)), "0000000000000000");
        assert_eq!(
            session_str(&session_hex(0x0123_4567_89ab_cdef)),
            "0123456789abcdef"
        );
        assert_eq!(session_str(&session_hex(u64::MAX)), "ffffffffffffffff");
    }
}
