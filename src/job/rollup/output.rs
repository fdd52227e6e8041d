//! The rollup's output: JSON Lines documents (one per group, keys in the contract's order),
//! part files sorted by `_id`, and an atomic replace of the whole output location.
//!
//! - Local `OUTPUT`: parts and `_SUCCESS` are written into a hidden sibling
//!   `_tmp-<name>-<run>/`; then the old `OUTPUT` is renamed aside, the staging directory
//!   renamed to `OUTPUT`, and the old one removed — a reader sees the old set or the new one.
//! - `s3://…/OUTPUT/`: parts are staged under `OUTPUT/_tmp-<run>/` (hidden from readers); then
//!   the old `_SUCCESS` is deleted, the parts copied into place, every other old object under
//!   the prefix deleted, `_SUCCESS` written last and the staging objects removed. A reader that
//!   requires `_SUCCESS` never sees a partial set; a failure before the first copy leaves the
//!   previous output as it was.
//! - On any failure the staging area is removed.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::DateTime;

use super::kernel::Dictionaries;
use crate::job::location::{replace_dir, run_id, Location, ReplaceStep};
use crate::job::model::JobError;

pub const SUCCESS: &str = "_SUCCESS";

/// `part-00003.jsonl`.
pub fn part_name(index: usize) -> String {
    format!("part-{index:05}.jsonl")
}

/// `2026-11-20T05:00:00` for an hour counted from the epoch (UTC).
pub fn hour_iso(hour: i64) -> String {
    match hour
        .checked_mul(3600)
        .and_then(|s| DateTime::from_timestamp(s, 0))
    {
        Some(t) => t.format("%Y-%m-%dT%H:00:00").to_string(),
        None => format!("hour {hour}"),
    }
}

/// One output document, borrowed.
pub struct Document<'a> {
    pub customer: &'a str,
    pub url: &'a str,
    pub hour: &'a str,
    /// `1hour` for the batch rollup; the stream job's window width (`5min`).
    pub freq: &'a str,
    pub page_views: u64,
    pub visitors: u64,
}

/// The `_id` of a document: `url|customer|hourISO`.
pub fn document_id(url: &str, customer: &str, hour: &str) -> String {
    let mut id = String::with_capacity(url.len() + customer.len() + hour.len() + 2);
    id.push_str(url);
    id.push('|');
    id.push_str(customer);
    id.push('|');
    id.push_str(hour);
    id
}

/// `value` as it is written between the quotes of a JSON string: borrowed when nothing in it
/// needs escaping (most values).
pub fn json_escaped(value: &str) -> Cow<'_, str> {
    if !value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return Cow::Borrowed(value);
    }
    let quoted = serde_json::to_string(value).expect("a string serializes");
    Cow::Owned(quoted[1..quoted.len() - 1].to_string())
}

/// Appends one JSON line (keys in the contract's order), its `_id` made of the url,
/// customer and hour; `referrers` (name, count), sorted bytewise by name.
pub fn write_document(out: &mut Vec<u8>, doc: &Document<'_>, referrers: &[(&str, u64)]) {
    write_escaped_document(
        out,
        &Document {
            customer: &json_escaped(doc.customer),
            url: &json_escaped(doc.url),
            hour: &json_escaped(doc.hour),
            freq: &json_escaped(doc.freq),
            page_views: doc.page_views,
            visitors: doc.visitors,
        },
        referrers
            .iter()
            .map(|&(name, count)| (json_escaped(name), count)),
    );
}

/// [`write_document`] for strings already JSON-escaped ([`json_escaped`]), referrers
/// included (in name order): the rollup escapes each dictionary value once, not once per
/// document. Escaping `url|customer|hour` is escaping each part, as `|`
/// needs none.
pub fn write_escaped_document<Name: AsRef<str>>(
    out: &mut Vec<u8>,
    doc: &Document<'_>,
    referrers: impl Iterator<Item = (Name, u64)>,
) {
    let mut number = itoa::Buffer::new();
    for part in [
        "{\"_id\":\"",
        doc.url,
        "|",
        doc.customer,
        "|",
        doc.hour,
        "\",\"customer\":\"",
        doc.customer,
        "\",\"url\":\"",
        doc.url,
        "\",\"ts\":\"",
        doc.hour,
        "\",\"freq\":\"",
        doc.freq,
        "\",\"metrics\":{\"page_views\":",
        number.format(doc.page_views),
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(b",\"visitors\":");
    out.extend_from_slice(number.format(doc.visitors).as_bytes());
    out.extend_from_slice(b"},\"referrers\":{");
    for (i, (name, count)) in referrers.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_ref().as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(number.format(count).as_bytes());
    }
    out.extend_from_slice(b"}}\n");
}

/// One dictionary as the documents need it: each value JSON-escaped once, and its rank in the
/// bytewise order of `value|` (the order `_id`s sort in; see [`DocumentStrings`]).
pub struct EscapedDictionary {
    pub escaped: Vec<Box<str>>,
    pub rank: Vec<u32>,
    /// The ids by rank.
    pub by_rank: Vec<u32>,
}

impl EscapedDictionary {
    pub fn new(values: &[Box<str>]) -> EscapedDictionary {
        let escaped = values
            .iter()
            .map(|v| json_escaped(v).into_owned().into_boxed_str())
            .collect();
        let mut by_rank: Vec<u32> = (0..values.len() as u32).collect();
        by_rank.sort_unstable_by(|&a, &b| {
            let (a, b) = (values[a as usize].as_bytes(), values[b as usize].as_bytes());
            a.iter().chain(b"|").cmp(b.iter().chain(b"|"))
        });
        let mut rank = vec![0u32; values.len()];
        for (r, &id) in by_rank.iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        EscapedDictionary {
            escaped,
            rank,
            by_rank,
        }
    }

    fn has_bar(values: &[Box<str>]) -> bool {
        values.iter().any(|v| v.contains('|'))
    }
}

/// The rollup's dictionaries ready for writing documents: the values as they are, escaped,
/// and ranked.
///
/// A bucket's documents are sorted by `_id` = `url|customer|hour`. When no url or customer
/// contains `|`, comparing two ids compares `url|` first, then `customer|`, then the hour
/// text, so sorting by (url rank, customer rank, hour) sorts by `_id` without building the
/// ids: the ranks are of `value|` (a url that is a prefix of another sorts by the byte after
/// it against `|`), and hour texts of years 0–9999 sort as the hours do.
pub struct DocumentStrings<'d> {
    pub dictionaries: &'d Dictionaries,
    pub customers: EscapedDictionary,
    pub urls: EscapedDictionary,
    pub referrers: EscapedDictionary,
    /// Whether sorting by ranks is sorting by `_id` (no `|` in any url or customer).
    pub ranks_order_ids: bool,
}

/// Hours since the epoch whose [`hour_iso`] has a four-digit year (0000–9999), so their
/// texts sort as the numbers do.
pub const FOUR_DIGIT_YEAR_HOURS: std::ops::RangeInclusive<i64> = -17_268_672..=70_389_527;

impl<'d> DocumentStrings<'d> {
    pub fn new(dictionaries: &'d Dictionaries) -> Self {
        let Dictionaries {
            customers,
            urls,
            referrers,
        } = dictionaries;
        let ((customers_escaped, urls_escaped), referrers_escaped) = rayon::join(
            || {
                rayon::join(
                    || EscapedDictionary::new(customers),
                    || EscapedDictionary::new(urls),
                )
            },
            || EscapedDictionary::new(referrers),
        );
        DocumentStrings {
            dictionaries,
            customers: customers_escaped,
            urls: urls_escaped,
            referrers: referrers_escaped,
            ranks_order_ids: !EscapedDictionary::has_bar(customers)
                && !EscapedDictionary::has_bar(urls),
        }
    }
}

/// Where a run's parts go until they are committed.
pub struct OutputWriter {
    uri: String,
    output: Location,
    staging: Location,
    run: String,
}

impl OutputWriter {
    /// Checks the output location (a local directory path, or an `s3://bucket/prefix/`).
    pub fn open(uri: &str) -> Result<OutputWriter, JobError> {
        let output = Location::parse(uri)?;
        let run = run_id();
        let staging = match &output {
            Location::Local(path) => {
                let path = path.components().collect::<std::path::PathBuf>();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| !n.is_empty() && *n != "." && *n != "..")
                    .ok_or_else(|| {
                        JobError::Usage(format!(
                            "--output {uri}: name a directory for the rollup (e.g. out/rollups/)"
                        ))
                    })?;
                if path.is_file() {
                    return Err(JobError::Usage(format!(
                        "--output {uri}: is a file; the rollup writes a directory of part files"
                    )));
                }
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf();
                // Created with the first staged part: a run that fails earlier leaves nothing.
                Location::Local(parent.join(format!("_tmp-{name}-{run}")))
            }
            Location::S3 { bucket, key } => {
                if key.is_empty() {
                    return Err(JobError::Usage(format!(
                        "--output {uri}: give a prefix under the bucket (s3://{bucket}/rollups/), not the bucket's root"
                    )));
                }
                // Fails early on a missing bucket or no credentials.
                output.list_subdirs()?;
                output.join(&format!("_tmp-{run}"))
            }
        };
        Ok(OutputWriter {
            uri: uri.to_string(),
            output,
            staging,
            run,
        })
    }

    /// Writes one part file to the staging area.
    pub fn stage(&self, name: &str, data: Vec<u8>) -> Result<(), JobError> {
        self.staging.join(name).write(Bytes::from(data))
    }

    /// Stages part `name` as `fill` writes it, in chunks: straight into the file for a local
    /// output (nothing holds a whole part in memory), into memory for S3 (one PUT).
    pub fn stage_with<T>(
        &self,
        name: &str,
        fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<T>,
    ) -> Result<T, JobError> {
        self.staging.join(name).write_with(fill)
    }

    /// Removes the staging area (after a failure).
    pub fn abort(&self) {
        self.staging.remove_tree();
    }

    /// Puts the staged parts (`names`) in place of whatever the output held, `_SUCCESS` last.
    pub fn commit(&self, names: &[String]) -> Result<(), JobError> {
        let result = self.commit_inner(names);
        if result.is_err() {
            self.abort();
        }
        result
    }

    fn commit_inner(&self, names: &[String]) -> Result<(), JobError> {
        let fail = |e: String| JobError::Other(format!("output {}: {e}", self.uri));
        match (&self.output, &self.staging) {
            (Location::Local(target), Location::Local(staging)) => {
                std::fs::create_dir_all(staging)
                    .map_err(|e| fail(format!("cannot create {}: {e}", staging.display())))?;
                std::fs::write(staging.join(SUCCESS), b"")
                    .map_err(|e| fail(format!("cannot write {SUCCESS}: {e}")))?;
                let target = target.components().collect::<std::path::PathBuf>();
                let old = staging.with_file_name(format!(
                    "_old-{}-{}",
                    target
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("output"),
                    self.run
                ));
                replace_dir(staging, &target, &old).map_err(|(step, e)| {
                    fail(match step {
                        ReplaceStep::MoveOldAside => {
                            format!("cannot move the previous output aside: {e}")
                        }
                        ReplaceStep::MoveNewIn => {
                            format!("cannot move the new output into place: {e}")
                        }
                        ReplaceStep::RemoveOld => {
                            format!("cannot remove the previous output {}: {e}", old.display())
                        }
                    })
                })
            }
            (
                Location::S3 { .. },
                Location::S3 {
                    key: staging_key, ..
                },
            ) => {
                let before = self.output.list_all().map_err(|e| fail(e.to_string()))?;
                self.output
                    .join(SUCCESS)
                    .delete()
                    .map_err(|e| fail(e.to_string()))?;
                let mut written = Vec::with_capacity(names.len());
                for name in names {
                    let to = self.output.join(name);
                    self.staging
                        .join(name)
                        .copy_to(&to)
                        .map_err(|e| fail(e.to_string()))?;
                    written.push(to);
                }
                let staging_prefix = format!("{}/", staging_key.trim_end_matches('/'));
                for object in &before {
                    let Location::S3 { key, .. } = object else {
                        continue;
                    };
                    if key.starts_with(&staging_prefix) || written.contains(object) {
                        continue;
                    }
                    object.delete().map_err(|e| fail(e.to_string()))?;
                }
                self.output
                    .join(SUCCESS)
                    .write(Bytes::new())
                    .map_err(|e| fail(e.to_string()))?;
                self.abort();
                Ok(())
            }
            _ => unreachable!("staging is beside the output"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_contract() {
        let mut out = Vec::new();
        let hour = hour_iso(498_653); // 2026-11-20T05:00Z
        write_document(
            &mut out,
            &Document {
                customer: "a",
                url: "https://a/\"x\"",
                hour: &hour,
                freq: "1hour",
                page_views: 3,
                visitors: 2,
            },
            &[("bing", 1), ("google", 1)],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"_id\":\"https://a/\\\"x\\\"|a|2026-11-20T05:00:00\",\"customer\":\"a\",\"url\":\"https://a/\\\"x\\\"\",\"ts\":\"2026-11-20T05:00:00\",\"freq\":\"1hour\",\"metrics\":{\"page_views\":3,\"visitors\":2},\"referrers\":{\"bing\":1,\"google\":1}}\n"
        );
        assert_eq!(hour_iso(-1), "1969-12-31T23:00:00");
    }

    /// The constant holds the hours whose texts have four-digit years, and no more.
    #[test]
    fn four_digit_year_hours_are_exactly_those() {
        let (first, last) = (*FOUR_DIGIT_YEAR_HOURS.start(), *FOUR_DIGIT_YEAR_HOURS.end());
        assert_eq!(hour_iso(first), "0000-01-01T00:00:00");
        assert_eq!(hour_iso(last), "9999-12-31T23:00:00");
        assert!(
            !hour_iso(first - 1).starts_with("0000"),
            "{}",
            hour_iso(first - 1)
        );
        assert!(
            !hour_iso(last + 1).starts_with("9999"),
            "{}",
            hour_iso(last + 1)
        );
    }
}
