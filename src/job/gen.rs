//! `emrship-job gen match-rate`: deterministic synthetic views and catalog for tests, demos
//! and benchmarks.
//!
//! Deterministic by construction: every value is a pure function of (seed, index) through
//! splitmix64-style mixing (no `rand` crate, so the bytes never change with a dependency
//! upgrade), and files are generated independently, in parallel.
//!
//! Shape, like real traffic:
//! - exactly `pairs` distinct (advertiser, product) pairs are viewed: the first `pairs` events
//!   (in a scrambled order) cover each pair once, the rest pick pairs Zipf-like (≈1/rank), so a
//!   few products get most views;
//! - pairs belong to advertisers Zipf-like too (every advertiser gets at least one), so a few
//!   advertisers own most products and views;
//! - each viewed pair is in the catalog with probability `match_fraction`; the catalog has
//!   exactly `catalog_size` rows: the matched viewed pairs plus products nobody viewed;
//! - `event_time` is spread over the UTC day.
//!
//! Product ids are `p` + 11 digits of a bijective scramble of the pair index (so ids are
//! unique), advertiser ids `adv-` + zero-padded rank.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use super::model::{Day, JobError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GenFormat {
    Parquet,
    Csv,
    Jsonl,
}

impl GenFormat {
    pub(crate) fn extension(self) -> &'static str {
        match self {
            GenFormat::Parquet => "parquet",
            GenFormat::Csv => "csv",
            GenFormat::Jsonl => "jsonl",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenSpec {
    pub events: u64,
    pub pairs: u64,
    pub advertisers: u64,
    pub catalog_size: u64,
    pub match_fraction: f64,
    pub out: PathBuf,
    pub day: Day,
    pub seed: u64,
    /// Files per dataset; `None`: one per 4 million rows.
    pub files: Option<u64>,
    pub format: GenFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenReport {
    pub events: u64,
    pub pairs: u64,
    pub matched_pairs: u64,
    pub catalog_rows: u64,
    pub views_files: u64,
    pub catalog_files: u64,
}

const ROWS_PER_FILE: u64 = 4_000_000;
const BATCH: u64 = 64 * 1024;
// Stream separators: each kind of random draw uses its own stream of the seed.
const PAIR_ADVERTISER: u64 = 0xA1;
const PAIR_MATCHED: u64 = 0xB2;
const EVENT_PAIR: u64 = 0xC3;
const EVENT_TIME: u64 = 0xD4;
const EXTRA_ADVERTISER: u64 = 0xE5;
const EVENT_ORDER: u64 = 0xF6;
const PRODUCT_ORDER: u64 = 0x17;

#[inline]
fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeded draws, each a pure function of (seed, stream, index); shared with
/// [`super::rollup::gen`].
#[derive(Clone, Copy)]
pub(crate) struct Random {
    pub(crate) seed: u64,
}

impl Random {
    #[inline]
    pub(crate) fn draw(self, stream: u64, index: u64) -> u64 {
        mix(mix(self.seed ^ stream.wrapping_mul(0x1000_0000_01B3)) ^ index)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub(crate) fn unit(self, stream: u64, index: u64) -> f64 {
        (self.draw(stream, index) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Zipf-like (density ≈ 1/x) over 0..n.
    #[inline]
    pub(crate) fn zipf(self, stream: u64, index: u64, n: u64) -> u64 {
        let u = self.unit(stream, index);
        let x = ((n as f64 + 1.0).powf(u).floor() as u64).saturating_sub(1);
        x.min(n - 1)
    }

    /// A bijection on 0..2^bits (xorshift-multiply rounds, each invertible).
    #[inline]
    fn permute_bits(self, stream: u64, x: u64, bits: u32) -> u64 {
        let mask = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let key = self.draw(stream, 0);
        let mut x = (x ^ key) & mask;
        let shift = (bits / 2).max(1);
        for round in 0..3u64 {
            x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15 | 1 | (round << 1)) & mask;
            x ^= x >> shift;
            x = (x ^ (key >> (round * 7 + 3))) & mask;
        }
        x
    }

    /// A bijection on 0..n (cycle-walking the power-of-two bijection).
    #[inline]
    fn permute(self, stream: u64, x: u64, n: u64) -> u64 {
        let bits = 64 - (n.max(2) - 1).leading_zeros();
        let mut y = self.permute_bits(stream, x, bits);
        while y >= n {
            y = self.permute_bits(stream, y, bits);
        }
        y
    }
}

struct Model {
    spec: GenSpec,
    random: Random,
    product_bits: u32,
    /// Viewed pairs that are in the catalog, ascending.
    matched: Vec<u64>,
    advertiser_width: usize,
    day_start_micros: i64,
}

impl Model {
    fn advertiser_of_pair(&self, pair: u64) -> u64 {
        if pair < self.spec.advertisers {
            pair
        } else {
            self.random
                .zipf(PAIR_ADVERTISER, pair, self.spec.advertisers)
        }
    }

    fn advertiser_id(&self, advertiser: u64) -> String {
        format!("adv-{advertiser:0width$}", width = self.advertiser_width)
    }

    /// Product id of product index `i` (viewed pairs are 0..pairs, unviewed after).
    fn product_id(&self, i: u64) -> String {
        format!(
            "p{:011}",
            self.random
                .permute_bits(PRODUCT_ORDER, i, self.product_bits)
        )
    }

    fn event(&self, e: u64) -> (u64, i64) {
        let spec = &self.spec;
        let slot = self.random.permute(EVENT_ORDER, e, spec.events);
        let pair = if slot < spec.pairs {
            slot
        } else {
            self.random.zipf(EVENT_PAIR, slot, spec.pairs)
        };
        let micros = (self.random.draw(EVENT_TIME, e) % 86_400_000_000) as i64;
        (pair, self.day_start_micros + micros)
    }

    /// Catalog row `r`: a matched viewed pair, then products nobody viewed.
    fn catalog_row(&self, r: u64) -> (u64, u64) {
        let m = self.matched.len() as u64;
        if r < m {
            let pair = self.matched[r as usize];
            (self.advertiser_of_pair(pair), pair)
        } else {
            let i = r - m;
            (
                self.random.zipf(EXTRA_ADVERTISER, i, self.spec.advertisers),
                self.spec.pairs + i,
            )
        }
    }
}

fn usage(message: String) -> JobError {
    JobError::Usage(message)
}

/// Writes `<out>/views/part-NNNNN.<ext>` and `<out>/catalog/part-NNNNN.<ext>`, replacing any
/// earlier `views/` and `catalog/` there, and `<out>/_SUCCESS` last.
pub fn generate(spec: &GenSpec) -> Result<GenReport, JobError> {
    if spec.pairs == 0 || spec.events < spec.pairs {
        return Err(usage(format!(
            "--pairs must be at least 1 and at most --events ({} pairs, {} events)",
            spec.pairs, spec.events
        )));
    }
    if spec.advertisers == 0 || spec.advertisers > spec.pairs {
        return Err(usage(format!(
            "--advertisers must be between 1 and --pairs ({} advertisers, {} pairs)",
            spec.advertisers, spec.pairs
        )));
    }
    if !(0.0..=1.0).contains(&spec.match_fraction) {
        return Err(usage(format!(
            "--match-fraction must be between 0 and 1, not {}",
            spec.match_fraction
        )));
    }
    let random = Random { seed: spec.seed };
    let fraction = spec.match_fraction;
    let matched: Vec<u64> = (0..spec.pairs)
        .into_par_iter()
        .filter(|&p| random.unit(PAIR_MATCHED, p) < fraction)
        .collect();
    if (matched.len() as u64) > spec.catalog_size {
        return Err(usage(format!(
            "--catalog-size {} is smaller than the {} viewed pairs the catalog must hold for --match-fraction {}; raise --catalog-size",
            spec.catalog_size,
            matched.len(),
            spec.match_fraction
        )));
    }
    let products = spec.pairs + (spec.catalog_size - matched.len() as u64);
    let product_bits = (64 - products.max(2).leading_zeros()).max(20);
    if product_bits > 36 {
        return Err(usage(
            "more than 2^36 products: too many to generate".into(),
        ));
    }
    let model = Model {
        spec: spec.clone(),
        random,
        product_bits,
        matched,
        advertiser_width: spec.advertisers.saturating_sub(1).to_string().len().max(5),
        day_start_micros: spec
            .day
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros(),
    };
    let views_dir = spec.out.join("views");
    let catalog_dir = spec.out.join("catalog");
    for dir in [&views_dir, &catalog_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| JobError::Other(format!("cannot replace {}: {e}", dir.display())))?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| JobError::Other(format!("cannot create {}: {e}", dir.display())))?;
    }
    let _ = std::fs::remove_file(spec.out.join("_SUCCESS"));
    let files_for = |rows: u64| {
        spec.files
            .unwrap_or(rows.div_ceil(ROWS_PER_FILE))
            .clamp(1, rows.max(1))
    };
    let views_files = files_for(spec.events);
    let catalog_files = files_for(spec.catalog_size);
    let ext = spec.format.extension();

    let jobs: Vec<(bool, u64)> = (0..views_files)
        .map(|f| (true, f))
        .chain((0..catalog_files).map(|f| (false, f)))
        .collect();
    jobs.par_iter().try_for_each(|&(views, f)| {
        let (rows, files, dir) = if views {
            (spec.events, views_files, &views_dir)
        } else {
            (spec.catalog_size, catalog_files, &catalog_dir)
        };
        let range = (rows * f / files)..(rows * (f + 1) / files);
        let path = dir.join(format!("part-{f:05}.{ext}"));
        write_file(&model, views, range, &path)
    })?;
    std::fs::write(spec.out.join("_SUCCESS"), b"")
        .map_err(|e| JobError::Other(format!("cannot write {}: {e}", spec.out.display())))?;
    Ok(GenReport {
        events: spec.events,
        pairs: spec.pairs,
        matched_pairs: model.matched.len() as u64,
        catalog_rows: spec.catalog_size,
        views_files,
        catalog_files,
    })
}

fn views_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("advertiser_id", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

fn catalog_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("advertiser_id", DataType::Utf8, false),
        Field::new("product_id", DataType::Utf8, false),
    ]))
}

/// An event time as the CSV/JSON Lines generators write it (UTC, microseconds), formatted
/// straight into the line: no string per row.
pub(crate) fn time_text(micros: i64) -> impl std::fmt::Display {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("a time within chrono's range")
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
}

fn write_file(
    model: &Model,
    views: bool,
    rows: std::ops::Range<u64>,
    path: &Path,
) -> Result<(), JobError> {
    let fail = |e: String| JobError::Other(format!("cannot write {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    match model.spec.format {
        GenFormat::Parquet => {
            let schema = if views {
                views_schema()
            } else {
                catalog_schema()
            };
            // Snappy, as most Spark-written data is; product ids and times are unique enough
            // that a dictionary only costs time.
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_column_dictionary_enabled(ColumnPath::from("product_id"), false)
                .set_column_dictionary_enabled(ColumnPath::from("event_time"), false)
                .build();
            let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(properties))
                .map_err(|e| fail(e.to_string()))?;
            let mut start = rows.start;
            while start < rows.end {
                let end = (start + BATCH).min(rows.end);
                let n = (end - start) as usize;
                let mut advertisers = StringBuilder::with_capacity(n, n * 9);
                let mut products = StringBuilder::with_capacity(n, n * 12);
                let mut times = Vec::with_capacity(if views { n } else { 0 });
                for i in start..end {
                    let (advertiser, product) = if views {
                        let (pair, time) = model.event(i);
                        times.push(time);
                        (model.advertiser_of_pair(pair), pair)
                    } else {
                        model.catalog_row(i)
                    };
                    advertisers.append_value(model.advertiser_id(advertiser));
                    products.append_value(model.product_id(product));
                }
                let mut columns: Vec<ArrayRef> =
                    vec![Arc::new(advertisers.finish()), Arc::new(products.finish())];
                if views {
                    columns.push(Arc::new(
                        TimestampMicrosecondArray::from(times).with_timezone("UTC"),
                    ));
                }
                let batch = RecordBatch::try_new(schema.clone(), columns)
                    .map_err(|e| fail(e.to_string()))?;
                writer.write(&batch).map_err(|e| fail(e.to_string()))?;
                start = end;
            }
            writer.close().map_err(|e| fail(e.to_string()))?;
        }
        GenFormat::Csv | GenFormat::Jsonl => {
            use std::io::Write;
            let csv = model.spec.format == GenFormat::Csv;
            let mut line = String::new();
            if csv {
                line.push_str(if views {
                    "advertiser_id,product_id,event_time\n"
                } else {
                    "advertiser_id,product_id\n"
                });
            }
            for i in rows {
                let (advertiser, product, time) = if views {
                    let (pair, time) = model.event(i);
                    (model.advertiser_of_pair(pair), pair, Some(time))
                } else {
                    let (a, p) = model.catalog_row(i);
                    (a, p, None)
                };
                let advertiser = model.advertiser_id(advertiser);
                let product = model.product_id(product);
                use std::fmt::Write as _;
                let _ = match (csv, time) {
                    (true, Some(t)) => writeln!(line, "{advertiser},{product},{}", time_text(t)),
                    (true, None) => writeln!(line, "{advertiser},{product}"),
                    (false, Some(t)) => writeln!(
                        line,
                        r#"{{"advertiser_id":"{advertiser}","product_id":"{product}","event_time":"{}"}}"#,
                        time_text(t)
                    ),
                    (false, None) => writeln!(
                        line,
                        r#"{{"advertiser_id":"{advertiser}","product_id":"{product}"}}"#
                    ),
                };
                if line.len() > 1 << 16 {
                    out.write_all(line.as_bytes())
                        .map_err(|e| fail(e.to_string()))?;
                    line.clear();
                }
            }
            out.write_all(line.as_bytes())
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    use std::io::Write;
    out.flush().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_bijections() {
        let random = Random { seed: 7 };
        for n in [1u64, 2, 3, 10, 1000, 4097] {
            let mut seen: Vec<u64> = (0..n).map(|x| random.permute(1, x, n)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
        let mut seen: Vec<u64> = (0..1 << 12)
            .map(|x| random.permute_bits(2, x, 12))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1 << 12);
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let random = Random { seed: 3 };
        let n = 1000;
        let mut counts = vec![0u64; n as usize];
        for i in 0..100_000 {
            counts[random.zipf(5, i, n) as usize] += 1;
        }
        assert!(counts[0] > counts[10] && counts[10] > counts[500]);
        assert!(counts[..10].iter().sum::<u64>() > 100_000 / 4);
    }
}
