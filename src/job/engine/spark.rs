//! The spark engine's Rust side: the task modes the rendered Spark driver runs.
//!
//! Spark is the distributed runtime and this binary the kernel. The driver
//! (`templates/spark_driver.py.hbs`) calls:
//!
//! 1. `emrship-job match-rate list-inputs ARGS` (driver): one `views\tURI` or `catalog\tURI`
//!    line per input file. Catalog files are listed only for file catalogs: a DynamoDB catalog
//!    is looked up per bucket by the reduce tasks.
//! 2. `… map --buckets N ARGS` (one per map task, the task's share of that listing on stdin):
//!    counts the views of its view files and collects the keys of its catalog files, splits
//!    both into N buckets by the stable pair hash, and writes [frames](write_frame) to stdout:
//!    at most one views frame and one catalog frame per bucket (few, large records), plus one
//!    stats frame for bucket 0.
//! 3. `… reduce --bucket B --buckets N --staging URI --attempt A ARGS` (one per bucket, the
//!    frames Spark shuffled to bucket B on stdin): merges the counts, joins them with the
//!    bucket's catalog keys (or asks DynamoDB for the bucket's distinct pairs), writes the
//!    bucket's sorted `product_matches` rows to `URI/bucket-B-attempt-A.bin` and prints one
//!    JSON line naming that file ([`StagedPart`]).
//! 4. `… finalize --buckets N --staging URI ARGS` (driver, the collected JSON lines on
//!    stdin): checks that every bucket is there exactly once, merges the staged parts, writes
//!    the day through the sink (one transaction / atomic replace), removes the staging
//!    directory and prints the summary.
//! 5. `… clean --staging URI` (driver, always, last): removes what is left under the staging
//!    directory (attempts that failed or lost a speculation race after finalize).
//!
//! Why retries and speculative copies never duplicate or lose a row: map output travels only
//! through Spark's shuffle, which serves exactly one successful attempt per map task; reduce
//! attempts stage under their own attempt id, and finalize reads only the files named by the
//! results Spark collected (one per bucket), never by listing the staging directory.

use std::collections::BinaryHeap;
use std::io::{Read, Write};

use bytes::Bytes;
use rayon::prelude::*;
use serde_json::json;

use super::{
    default_threads, look_up_catalog, reduce_and_write, scan_views, MatchRateJob, PhaseClock,
    RunReport,
};
use crate::job::counts::PairCounts;
use crate::job::location::{list_inputs, Location};
use crate::job::model::{JobError, ProductMatches, ScanStats, StringColumn};
use crate::job::source::{plan_file, scan_unit, ScanOptions, ScanUnit};
use crate::job::varint::{put_varint, Reader};
use crate::job::{catalog, sink};

/// A frame's kind: view counts, catalog keys, or scan statistics.
pub const FRAME_VIEWS: u8 = b'V';
pub const FRAME_CATALOG: u8 = b'C';
pub const FRAME_STATS: u8 = b'S';
const FRAME_HEADER: usize = 1 + 4 + 8;
const STAGED_MAGIC: &[u8; 8] = b"EMRSTG01";

/// Which input a listed file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRole {
    Views,
    Catalog,
}

impl InputRole {
    fn name(self) -> &'static str {
        match self {
            InputRole::Views => "views",
            InputRole::Catalog => "catalog",
        }
    }
}

/// One line of the `list-inputs` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInput {
    pub role: InputRole,
    pub uri: String,
}

impl TaskInput {
    pub fn line(&self) -> String {
        format!("{}\t{}", self.role.name(), self.uri)
    }

    pub fn parse(line: &str) -> Result<TaskInput, JobError> {
        let (role, uri) = line.split_once('\t').ok_or_else(|| {
            JobError::Usage(format!(
                "map input line {line:?}: expected `views<TAB>URI` or `catalog<TAB>URI` (as list-inputs prints)"
            ))
        })?;
        let role = match role {
            "views" => InputRole::Views,
            "catalog" => InputRole::Catalog,
            other => {
                return Err(JobError::Usage(format!(
                    "map input line {line:?}: unknown role {other:?} (views or catalog)"
                )))
            }
        };
        Ok(TaskInput {
            role,
            uri: uri.to_string(),
        })
    }
}

fn is_dynamodb(catalog: &str) -> bool {
    catalog.starts_with("dynamodb://")
}

/// Every input file of the job: the views, then (for a file catalog) the catalog's files.
pub fn list_task_inputs(job: &MatchRateJob) -> Result<Vec<TaskInput>, JobError> {
    let views = list_inputs(&job.views).map_err(|e| match e {
        JobError::Input { path, message } if path == job.views => {
            JobError::input(format!("views {path}"), message)
        }
        other => other,
    })?;
    let mut out: Vec<TaskInput> = views
        .iter()
        .map(|l| TaskInput {
            role: InputRole::Views,
            uri: location_uri(l),
        })
        .collect();
    if !is_dynamodb(&job.catalog) {
        let files = catalog::files::FileCatalog::open(&job.catalog)?;
        out.extend(files.files().iter().map(|l| TaskInput {
            role: InputRole::Catalog,
            uri: location_uri(l),
        }));
    }
    Ok(out)
}

fn location_uri(location: &Location) -> String {
    // Display gives `s3://…` for S3 and the plain path locally: both parse back.
    location.to_string()
}

/// Writes one frame: kind (1 byte), bucket (u32 LE), payload length (u64 LE), payload.
pub fn write_frame(
    out: &mut impl Write,
    kind: u8,
    bucket: u32,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut header = [0u8; FRAME_HEADER];
    header[0] = kind;
    header[1..5].copy_from_slice(&bucket.to_le_bytes());
    header[5..13].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    out.write_all(&header)?;
    out.write_all(payload)
}

/// Reads frames until the end of `input`, calling `each(kind, bucket, payload)`.
pub fn read_frames(
    input: &mut impl Read,
    mut each: impl FnMut(u8, u32, Vec<u8>) -> Result<(), JobError>,
) -> Result<(), JobError> {
    let broken = |why: String| JobError::Other(format!("reduce input on stdin: {why}"));
    loop {
        let mut header = [0u8; FRAME_HEADER];
        let mut got = 0;
        while got < FRAME_HEADER {
            let n = input
                .read(&mut header[got..])
                .map_err(|e| broken(format!("cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(());
        }
        if got < FRAME_HEADER {
            return Err(broken("truncated frame header".into()));
        }
        let kind = header[0];
        let bucket = u32::from_le_bytes(header[1..5].try_into().expect("4 bytes"));
        let len = u64::from_le_bytes(header[5..13].try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| broken(format!("frame of {len} bytes")))?;
        let mut payload = vec![0u8; len];
        input
            .read_exact(&mut payload)
            .map_err(|e| broken(format!("truncated frame of {len} bytes: {e}")))?;
        each(kind, bucket, payload)?;
    }
}

fn encode_stats(stats: &ScanStats) -> Vec<u8> {
    [
        stats.files,
        stats.rows_read,
        stats.rows_counted,
        stats.rows_outside_day,
        stats.rows_missing_ids,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

fn decode_stats(payload: &[u8]) -> Result<ScanStats, JobError> {
    if payload.len() != 40 {
        return Err(JobError::Other(format!(
            "a stats frame has {} bytes, expected 40 (mixed emrship-job versions?)",
            payload.len()
        )));
    }
    let v = |i: usize| u64::from_le_bytes(payload[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    Ok(ScanStats {
        files: v(0),
        rows_read: v(1),
        rows_counted: v(2),
        rows_outside_day: v(3),
        rows_missing_ids: v(4),
    })
}

fn worker_pool(threads: usize) -> Result<rayon::ThreadPool, JobError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("emrship-job-{i}"))
        .build()
        .map_err(|e| JobError::Other(format!("cannot start {threads} worker threads: {e}")))
}

/// Every (advertiser_id, product_id) of the catalog files, each once.
fn scan_catalog_keys(files: &[Location]) -> Result<PairCounts, JobError> {
    let options = ScanOptions {
        day: None,
        role: "catalog",
    };
    let units: Vec<ScanUnit> = files
        .par_iter()
        .map(|file| plan_file(file, options))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let parts = units
        .par_iter()
        .map(|unit| {
            let mut keys = PairCounts::new();
            scan_unit(unit, options, &mut keys, &mut ScanStats::default())?;
            Ok(keys)
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    Ok(PairCounts::merge_all(parts))
}

/// The map task: scans `inputs` and writes the bucketed frames to `out`.
pub fn map(
    job: &MatchRateJob,
    buckets: u32,
    inputs: &[TaskInput],
    out: &mut impl Write,
) -> Result<(), JobError> {
    if buckets == 0 {
        return Err(JobError::Usage("--buckets must be at least 1".into()));
    }
    let threads = job.threads.unwrap_or_else(default_threads).max(1);
    let parse = |role| -> Result<Vec<Location>, JobError> {
        inputs
            .iter()
            .filter(|i| i.role == role)
            .map(|i| Location::parse(&i.uri))
            .collect()
    };
    let (views, catalog_files) = (parse(InputRole::Views)?, parse(InputRole::Catalog)?);
    let (counts, stats, keys) = worker_pool(threads)?.install(|| -> Result<_, JobError> {
        let (counts, stats) = if views.is_empty() {
            (PairCounts::new(), ScanStats::default())
        } else {
            scan_views(&views, job.day, threads)?
        };
        let keys = scan_catalog_keys(&catalog_files)?;
        Ok((counts, stats, keys))
    })?;
    let write_error = |e: std::io::Error| JobError::Other(format!("cannot write map output: {e}"));
    for (kind, table) in [(FRAME_VIEWS, counts), (FRAME_CATALOG, keys)] {
        if table.is_empty() {
            continue;
        }
        for (bucket, part) in table.partition(buckets).iter().enumerate() {
            if !part.is_empty() {
                write_frame(out, kind, bucket as u32, &part.encode()).map_err(write_error)?;
            }
        }
    }
    write_frame(out, FRAME_STATS, 0, &encode_stats(&stats)).map_err(write_error)?;
    out.flush().map_err(write_error)
}

/// What a reduce task staged: the line it prints and finalize reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPart {
    pub bucket: u32,
    /// The staged file (`bucket-B-attempt-A.bin` under the staging directory).
    pub staged: String,
    pub rows: u64,
    /// The scan statistics the bucket received (all map tasks' stats go to bucket 0).
    pub stats: ScanStats,
}

impl StagedPart {
    pub fn to_line(&self) -> String {
        json!({
            "bucket": self.bucket,
            "staged": self.staged,
            "rows": self.rows,
            "stats": {
                "files": self.stats.files,
                "rows_read": self.stats.rows_read,
                "rows_counted": self.stats.rows_counted,
                "rows_outside_day": self.stats.rows_outside_day,
                "rows_missing_ids": self.stats.rows_missing_ids,
            }
        })
        .to_string()
    }

    pub fn parse(line: &str) -> Result<StagedPart, JobError> {
        let line = TaskLine::parse(line, "a reduce task")?;
        let value = &line.value;
        let stats = value.get("stats").ok_or_else(|| line.bad("no \"stats\""))?;
        Ok(StagedPart {
            bucket: line.bucket()?,
            staged: value
                .get("staged")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| line.bad("no string \"staged\""))?
                .to_string(),
            rows: line.number(value, "rows")?,
            stats: ScanStats {
                files: line.number(stats, "files")?,
                rows_read: line.number(stats, "rows_read")?,
                rows_counted: line.number(stats, "rows_counted")?,
                rows_outside_day: line.number(stats, "rows_outside_day")?,
                rows_missing_ids: line.number(stats, "rows_missing_ids")?,
            },
        })
    }
}

/// One line of finalize's input: the JSON line a reduce task printed. Errors quote the line
/// and say which task prints it.
pub struct TaskLine<'a> {
    line: &'a str,
    /// What prints such lines, e.g. "a reduce task".
    printer: &'static str,
    pub value: serde_json::Value,
}

impl<'a> TaskLine<'a> {
    pub fn parse(line: &'a str, printer: &'static str) -> Result<TaskLine<'a>, JobError> {
        let mut parsed = TaskLine {
            line,
            printer,
            value: serde_json::Value::Null,
        };
        parsed.value =
            serde_json::from_str(line).map_err(|e| parsed.bad(&format!("not JSON: {e}")))?;
        Ok(parsed)
    }

    pub fn bad(&self, why: &str) -> JobError {
        JobError::Usage(format!(
            "finalize input line {:?}: {why} (expected the JSON line {} prints)",
            self.line, self.printer
        ))
    }

    /// The unsigned number `name` of `object` (the line's value or an object inside it).
    pub fn number(&self, object: &serde_json::Value, name: &str) -> Result<u64, JobError> {
        object
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| self.bad(&format!("no number {name:?}")))
    }

    /// The line's `bucket`.
    pub fn bucket(&self) -> Result<u32, JobError> {
        u32::try_from(self.number(&self.value, "bucket")?).map_err(|_| self.bad("bucket too large"))
    }
}

/// The arguments every reduce task gets from the driver: a bucket below the bucket count, and
/// an attempt id that is safe inside a staged file's name.
pub fn check_reduce_task(bucket: u32, buckets: u32, attempt: &str) -> Result<(), JobError> {
    if bucket >= buckets {
        return Err(JobError::Usage(format!(
            "--bucket {bucket} is not below --buckets {buckets}"
        )));
    }
    if attempt.is_empty()
        || !attempt
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(JobError::Usage(format!(
            "--attempt {attempt:?}: use letters, digits, '-' and '_' only (it names a staged file)"
        )));
    }
    Ok(())
}

/// The staged file of one reduce attempt.
pub fn staged_location(staging: &Location, bucket: u32, attempt: &str) -> Location {
    staging.join(&format!("bucket-{bucket:05}-attempt-{attempt}.bin"))
}

/// The reduce task of `bucket`: merges the frames of `input`, joins with the catalog, stages
/// the bucket's rows.
pub fn reduce(
    job: &MatchRateJob,
    bucket: u32,
    buckets: u32,
    staging: &Location,
    attempt: &str,
    input: &mut impl Read,
) -> Result<StagedPart, JobError> {
    check_reduce_task(bucket, buckets, attempt)?;
    let threads = job.threads.unwrap_or_else(default_threads).max(1);
    let mut views = Vec::new();
    let mut keys = Vec::new();
    let mut stats = ScanStats::default();
    let mut frames = 0usize;
    read_frames(input, |kind, frame_bucket, payload| {
        frames += 1;
        if frame_bucket != bucket {
            return Err(JobError::Other(format!(
                "reduce of bucket {bucket} got a frame of bucket {frame_bucket}: the shuffle must partition by bucket"
            )));
        }
        let what = format!("bucket {bucket} frame {frames}");
        match kind {
            FRAME_VIEWS => views.push(PairCounts::decode(&payload, &what)?),
            FRAME_CATALOG => keys.push(PairCounts::decode(&payload, &what)?),
            FRAME_STATS => stats.merge(&decode_stats(&payload)?),
            other => {
                return Err(JobError::Other(format!(
                    "{what}: unknown frame kind {other:#04x}"
                )))
            }
        }
        Ok(())
    })?;
    let matches = worker_pool(threads)?.install(|| -> Result<ProductMatches, JobError> {
        let mut matches = PairCounts::merge_all(views).into_product_matches();
        if is_dynamodb(&job.catalog) {
            if !matches.is_empty() {
                let catalog = catalog::open(&job.catalog)?;
                look_up_catalog(catalog.as_ref(), &mut matches)?;
            }
        } else {
            let keys = PairCounts::merge_all(keys);
            let hits: Vec<bool> = (0..matches.len())
                .into_par_iter()
                .map(|i| {
                    let row = matches.row(i);
                    keys.contains(row.advertiser_id, row.product_id)
                })
                .collect();
            matches.matched = hits;
        }
        Ok(matches)
    })?;
    let location = staged_location(staging, bucket, attempt);
    location.write(Bytes::from(encode_staged(&matches)))?;
    Ok(StagedPart {
        bucket,
        staged: location_uri(&location),
        rows: matches.len() as u64,
        stats,
    })
}

/// The staged form of a bucket's sorted rows: magic `EMRSTG01`, then LEB128 varints:
/// advertiser count, each advertiser (length, bytes); row count, each row (advertiser index,
/// product length, product bytes, view count, matched 0/1).
pub fn encode_staged(matches: &ProductMatches) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + matches.product_id.value_bytes() + matches.len() * 6);
    out.extend_from_slice(STAGED_MAGIC);
    put_varint(&mut out, matches.advertisers.len() as u64);
    for name in &matches.advertisers {
        put_varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
    }
    put_varint(&mut out, matches.len() as u64);
    for i in 0..matches.len() {
        put_varint(&mut out, matches.advertiser[i] as u64);
        let product = matches.product_id.get(i);
        put_varint(&mut out, product.len() as u64);
        out.extend_from_slice(product.as_bytes());
        put_varint(&mut out, matches.view_count[i]);
        put_varint(&mut out, matches.matched[i] as u64);
    }
    out
}

/// Reads [`encode_staged`]'s form; `what` names the file in errors.
pub fn decode_staged(data: &[u8], what: &str) -> Result<ProductMatches, JobError> {
    let bad = |why: &str| JobError::input(what, format!("not a staged bucket file: {why}"));
    if data.len() < STAGED_MAGIC.len() || &data[..STAGED_MAGIC.len()] != STAGED_MAGIC {
        return Err(bad("wrong magic (expected EMRSTG01)"));
    }
    let mut r = Reader {
        data,
        pos: STAGED_MAGIC.len(),
    };
    let advertisers = r.varint().ok_or_else(|| bad("truncated"))?;
    let mut table = ProductMatches::default();
    for _ in 0..advertisers {
        let name = r.str().ok_or_else(|| bad("truncated advertiser id"))?;
        table.advertisers.push(name.to_string());
    }
    let rows = r.varint().ok_or_else(|| bad("truncated"))? as usize;
    table.product_id = StringColumn::with_capacity(rows.min(1 << 24), 0);
    for _ in 0..rows {
        let advertiser = r.varint().ok_or_else(|| bad("truncated row"))?;
        if advertiser >= table.advertisers.len() as u64 {
            return Err(bad("advertiser index out of range"));
        }
        let product = r.str().ok_or_else(|| bad("truncated product id"))?;
        let count = r.varint().ok_or_else(|| bad("truncated count"))?;
        let matched = match r.varint() {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(bad("bad matched flag")),
        };
        table.advertiser.push(advertiser as u32);
        table.product_id.push(product);
        table.view_count.push(count);
        table.matched.push(matched);
    }
    if r.pos != data.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(table)
}

/// Merges tables each sorted by (advertiser_id, product_id) into one sorted table. A pair in
/// two tables is an error: buckets are disjoint by construction.
pub fn merge_sorted(parts: &[ProductMatches]) -> Result<ProductMatches, JobError> {
    let total: usize = parts.iter().map(ProductMatches::len).sum();
    let bytes: usize = parts.iter().map(|p| p.product_id.value_bytes()).sum();
    let mut out = ProductMatches {
        product_id: StringColumn::with_capacity(total, bytes),
        advertiser: Vec::with_capacity(total),
        view_count: Vec::with_capacity(total),
        matched: Vec::with_capacity(total),
        ..ProductMatches::default()
    };
    let key = |p: usize, i: usize| {
        let part = &parts[p];
        (
            part.advertisers[part.advertiser[i] as usize].as_str(),
            part.product_id.get(i),
        )
    };
    let mut heap = BinaryHeap::new();
    for (p, part) in parts.iter().enumerate() {
        if !part.is_empty() {
            heap.push(std::cmp::Reverse((key(p, 0), p, 0usize)));
        }
    }
    let mut last: Option<(&str, &str)> = None;
    while let Some(std::cmp::Reverse(((advertiser, product), p, i))) = heap.pop() {
        if let Some(previous) = last {
            if previous >= (advertiser, product) {
                return Err(JobError::Other(format!(
                    "staged buckets overlap or are unsorted at ({advertiser}, {product}): a bug in emrship-job"
                )));
            }
        }
        last = Some((advertiser, product));
        if out.advertisers.last().map(String::as_str) != Some(advertiser) {
            out.advertisers.push(advertiser.to_string());
        }
        out.advertiser.push((out.advertisers.len() - 1) as u32);
        out.product_id.push(product);
        out.view_count.push(parts[p].view_count[i]);
        out.matched.push(parts[p].matched[i]);
        if i + 1 < parts[p].len() {
            heap.push(std::cmp::Reverse((key(p, i + 1), p, i + 1)));
        }
    }
    Ok(out)
}

/// Checks that `parts` holds every bucket 0..buckets exactly once.
pub fn check_coverage(parts: &[StagedPart], buckets: u32) -> Result<(), JobError> {
    check_bucket_coverage(parts.iter().map(|p| p.bucket), buckets)
}

/// Checks that the buckets finalize got are 0..buckets, each exactly once (any job's).
pub fn check_bucket_coverage(
    got: impl IntoIterator<Item = u32>,
    buckets: u32,
) -> Result<(), JobError> {
    let mut seen = vec![0u32; buckets as usize];
    for bucket in got {
        let slot = seen.get_mut(bucket as usize).ok_or_else(|| {
            JobError::Usage(format!(
                "finalize got bucket {bucket} of --buckets {buckets}"
            ))
        })?;
        *slot += 1;
    }
    let missing: Vec<String> = (0..buckets)
        .filter(|&b| seen[b as usize] == 0)
        .map(|b| b.to_string())
        .collect();
    let repeated: Vec<String> = (0..buckets)
        .filter(|&b| seen[b as usize] > 1)
        .map(|b| b.to_string())
        .collect();
    if !missing.is_empty() || !repeated.is_empty() {
        return Err(JobError::Other(format!(
            "finalize needs each of the {buckets} buckets exactly once; missing: [{}], repeated: [{}] — nothing was written",
            missing.join(", "),
            repeated.join(", ")
        )));
    }
    Ok(())
}

/// The driver's last step with data: merges the collected staged parts and replaces the day in
/// the sink, then removes the staging directory.
pub fn finalize(
    job: &MatchRateJob,
    buckets: u32,
    staging: &Location,
    parts: &[StagedPart],
) -> Result<RunReport, JobError> {
    let mut clock = PhaseClock::start();
    let mut sink = sink::open(&job.sink)?;
    check_coverage(parts, buckets)?;
    let threads = job.threads.unwrap_or_else(default_threads).max(1);
    let tables = worker_pool(threads)?.install(|| -> Result<Vec<ProductMatches>, JobError> {
        parts
            .par_iter()
            .map(|part| {
                let location = Location::parse(&part.staged)?;
                let table = decode_staged(&location.read()?, &part.staged)?;
                if table.len() as u64 != part.rows {
                    return Err(JobError::input(
                        &part.staged,
                        format!(
                            "holds {} rows but its reduce task reported {}",
                            table.len(),
                            part.rows
                        ),
                    ));
                }
                Ok(table)
            })
            .collect()
    })?;
    clock.lap("read staged");
    let matches = merge_sorted(&tables)?;
    drop(tables);
    let mut scan = ScanStats::default();
    for part in parts {
        scan.merge(&part.stats);
    }
    let report = reduce_and_write(job.day, scan, matches, sink.as_mut(), &mut clock)?;
    clean_staging(staging)?;
    clock.lap("clean");
    Ok(clock.finish(report))
}

/// Removes every object under the staging directory (and, locally, the directory itself).
pub fn clean_staging(staging: &Location) -> Result<(), JobError> {
    for object in staging.list_all()? {
        object.delete()?;
    }
    if let Location::Local(dir) = staging {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(JobError::Other(format!(
                    "cannot remove the staging directory {}: {e}",
                    dir.display()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::ProductMatchRow;

    fn table(rows: &[(&str, &str, u64, bool)]) -> ProductMatches {
        ProductMatches::from_rows(rows.iter().map(|&(a, p, v, m)| ProductMatchRow {
            advertiser_id: a,
            product_id: p,
            view_count: v,
            matched: m,
        }))
    }

    #[test]
    fn staged_files_round_trip_and_reject_damage() {
        let t = table(&[
            ("a1", "p1", 3, true),
            ("a1", "p2", 1, false),
            ("a2", "p1", 7, true),
        ]);
        let blob = encode_staged(&t);
        assert_eq!(decode_staged(&blob, "x").unwrap(), t);
        assert!(decode_staged(&blob[..blob.len() - 1], "x").is_err());
        let err = decode_staged(b"EMRSPC01", "s3://b/bucket-1").unwrap_err();
        assert!(err.to_string().contains("s3://b/bucket-1"), "{err}");
    }

    #[test]
    fn merge_sorted_interleaves_buckets_and_rejects_overlap() {
        let a = table(&[("a1", "p1", 1, true), ("a2", "p9", 2, false)]);
        let b = table(&[
            ("a1", "p0", 3, false),
            ("a1", "p5", 4, true),
            ("a3", "p1", 5, true),
        ]);
        let merged = merge_sorted(&[a.clone(), ProductMatches::default(), b]).unwrap();
        let rows: Vec<_> = merged
            .iter()
            .map(|r| (r.advertiser_id, r.product_id, r.view_count, r.matched))
            .collect();
        assert_eq!(
            rows,
            [
                ("a1", "p0", 3, false),
                ("a1", "p1", 1, true),
                ("a1", "p5", 4, true),
                ("a2", "p9", 2, false),
                ("a3", "p1", 5, true)
            ]
        );
        assert_eq!(merged.advertisers, ["a1", "a2", "a3"]);
        assert!(merge_sorted(&[a.clone(), a]).is_err());
    }

    #[test]
    fn frames_round_trip() {
        let mut out = Vec::new();
        write_frame(&mut out, FRAME_VIEWS, 3, b"abc").unwrap();
        write_frame(&mut out, FRAME_STATS, 0, &[]).unwrap();
        let mut got = Vec::new();
        read_frames(&mut out.as_slice(), |k, b, p| {
            got.push((k, b, p));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            [(FRAME_VIEWS, 3, b"abc".to_vec()), (FRAME_STATS, 0, vec![])]
        );
        assert!(read_frames(&mut &out[..5], |_, _, _| Ok(())).is_err());
    }

    #[test]
    fn coverage_names_missing_and_repeated_buckets() {
        let part = |bucket| StagedPart {
            bucket,
            staged: format!("s/{bucket}"),
            rows: 0,
            stats: ScanStats::default(),
        };
        assert!(check_coverage(&[part(0), part(1)], 2).is_ok());
        let err = check_coverage(&[part(0), part(0)], 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing: [1]") && err.contains("repeated: [0]"),
            "{err}"
        );
        assert!(check_coverage(&[part(2)], 2).is_err());
        let line = part(1).to_line();
        assert_eq!(StagedPart::parse(&line).unwrap(), part(1));
    }

    #[test]
    fn bad_finalize_lines_are_quoted_with_what_prints_them() {
        let err = StagedPart::parse("{oops").unwrap_err().to_string();
        assert!(
            err.contains("\"{oops\"") && err.contains("not JSON") && err.contains("a reduce task"),
            "{err}"
        );
        let err = StagedPart::parse(r#"{"bucket":4294967296,"stats":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bucket too large"), "{err}");
        let err = StagedPart::parse(r#"{"bucket":1,"staged":"s/1","stats":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no number \"rows\""), "{err}");
    }

    #[test]
    fn task_input_lines_round_trip() {
        let input = TaskInput {
            role: InputRole::Catalog,
            uri: "s3://b/c/part 1.parquet".into(),
        };
        assert_eq!(TaskInput::parse(&input.line()).unwrap(), input);
        assert!(TaskInput::parse("views").is_err());
        assert!(TaskInput::parse("other\tx").is_err());
    }
}
