//! What the stream job stores under its output prefix, and how (pure: bytes in, bytes out).
//!
//! ```text
//! OUTPUT/ranges/shard=<shard>/from=<first seq>.json   one contiguous range of a shard: its
//!                                                     last sequence number, its watermark, the
//!                                                     partial sums of every window it touched
//!                                                     and the records it kept aside
//! OUTPUT/index/window=<start>/shard=<shard>/from=<seq> an empty marker: that range has counts
//!                                                     for that window
//! OUTPUT/dead-letters/shard=<shard>/from=<seq>.jsonl  that range's malformed and late records
//! OUTPUT/windows/<start>.jsonl                        a window's final documents (rollup shape)
//! ```
//!
//! Every object is created at most once (create-only writes). A range's key is a function of
//! its shard and first sequence number only, and a new range starts right after a checkpoint or
//! after a range that already exists: so ranges chain, each record is in exactly one of them,
//! whoever wrote it. Range content is in order of first appearance (groups, sessions,
//! referrers), so the same records give the same bytes.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::DateTime;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use hashbrown::{HashMap, HashSet};

use super::window::{Aside, Group, GroupKey, Interner, RangeAggregate, WindowSpec};
use crate::job::rollup::output::{document_id, write_document, Document};

pub fn range_key(shard: &str, from: &str) -> String {
    format!("ranges/shard={shard}/from={from}.json")
}

pub fn index_key(window_ms: i64, shard: &str, from: &str) -> String {
    format!("{}shard={shard}/from={from}", index_prefix(window_ms))
}

pub fn index_prefix(window_ms: i64) -> String {
    format!("index/window={}/", window_name(window_ms))
}

pub fn dead_letter_key(shard: &str, from: &str) -> String {
    format!("dead-letters/shard={shard}/from={from}.jsonl")
}

pub fn window_key(window_ms: i64) -> String {
    format!("windows/{}.jsonl", window_name(window_ms))
}

/// `2026-11-20T00:05:00Z`: sorts as time, and reads as it.
pub fn window_name(window_ms: i64) -> String {
    match DateTime::from_timestamp_millis(window_ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{window_ms}ms"),
    }
}

/// Parses [`window_name`] back.
pub fn parse_window_name(name: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(name)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A stored range: the unit of exactly-once. Its strings borrow from the aggregate it was made
/// from, or from the bytes it was read from: ranges are written and read in bulk, and copying
/// every session id twice would cost more than the aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeObject<'a> {
    #[serde(borrow)]
    pub shard: Cow<'a, str>,
    #[serde(borrow)]
    pub from: Cow<'a, str>,
    #[serde(borrow)]
    pub to: Cow<'a, str>,
    pub records: u64,
    pub malformed: u64,
    pub late: u64,
    /// The shard's watermark after the range (epoch ms).
    pub watermark_ms: i64,
    #[serde(borrow)]
    pub windows: Vec<WindowPart<'a>>,
    pub dead_letters: Vec<StoredDeadLetter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPart<'a> {
    pub start_ms: i64,
    #[serde(borrow)]
    pub groups: Vec<StoredGroup<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup<'a> {
    #[serde(borrow)]
    pub customer: Cow<'a, str>,
    #[serde(borrow)]
    pub url: Cow<'a, str>,
    pub page_views: u64,
    /// Distinct, in order of first appearance in the range.
    #[serde(borrow)]
    pub sessions: Vec<Cow<'a, str>>,
    /// In order of first appearance in the range.
    #[serde(borrow)]
    pub referrers: Vec<(Cow<'a, str>, u64)>,
}

/// What the worker keeps of a range once it is stored: where it ends, what it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSummary {
    pub from: String,
    pub to: String,
    pub records: u64,
    pub malformed: u64,
    pub late: u64,
    pub watermark_ms: i64,
    pub windows: Vec<i64>,
    /// The dead-letter object's lines, when the range kept records aside.
    pub dead_letters: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDeadLetter {
    pub sequence: String,
    /// `malformed` or `late`.
    pub kind: String,
    pub reason: String,
    /// The record's bytes as text when they are UTF-8…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// …else base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

impl<'a> RangeObject<'a> {
    pub fn new(
        shard: &'a str,
        from: &'a str,
        to: &'a str,
        aggregate: &'a mut RangeAggregate,
    ) -> RangeObject<'a> {
        let mut windows: BTreeMap<i64, Vec<(u32, StoredGroup)>> = BTreeMap::new();
        let RangeAggregate {
            groups,
            sessions,
            referrers,
            ..
        } = aggregate;
        for (key, group) in groups.iter_mut() {
            windows
                .entry(key.window_ms)
                .or_default()
                .push((group.order, stored_group(key, group, sessions, referrers)));
        }
        let windows = windows
            .into_iter()
            .map(|(start_ms, mut groups)| {
                groups.sort_unstable_by_key(|(order, _)| *order);
                WindowPart {
                    start_ms,
                    groups: groups.into_iter().map(|(_, group)| group).collect(),
                }
            })
            .collect();
        let dead_letters = aggregate
            .dead_letters
            .iter()
            .map(|dead| {
                let (data, data_base64) = match std::str::from_utf8(&dead.data) {
                    Ok(text) => (Some(text.to_string()), None),
                    Err(_) => (
                        None,
                        Some(base64::engine::general_purpose::STANDARD.encode(&dead.data)),
                    ),
                };
                StoredDeadLetter {
                    sequence: dead.sequence.clone(),
                    kind: match dead.kind {
                        Aside::Malformed => "malformed",
                        Aside::Late => "late",
                    }
                    .to_string(),
                    reason: dead.reason.clone(),
                    data,
                    data_base64,
                }
            })
            .collect();
        RangeObject {
            shard: Cow::Borrowed(shard),
            from: Cow::Borrowed(from),
            to: Cow::Borrowed(to),
            records: aggregate.records,
            malformed: aggregate.malformed,
            late: aggregate.late,
            watermark_ms: aggregate.watermark_ms,
            windows,
            dead_letters,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a range serializes")
    }

    pub fn from_bytes(bytes: &'a [u8]) -> Result<RangeObject<'a>, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a range object: {e}"))
    }

    pub fn summary(&self) -> RangeSummary {
        RangeSummary {
            from: self.from.to_string(),
            to: self.to.to_string(),
            records: self.records,
            malformed: self.malformed,
            late: self.late,
            watermark_ms: self.watermark_ms,
            windows: self.windows.iter().map(|w| w.start_ms).collect(),
            dead_letters: (!self.dead_letters.is_empty()).then(|| self.dead_letter_lines()),
        }
    }

    /// The dead-letter object: one JSON line per record kept aside.
    pub fn dead_letter_lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for dead in &self.dead_letters {
            let mut line = serde_json::to_value(dead).expect("a dead letter serializes");
            line["shard"] = serde_json::Value::String(self.shard.to_string());
            serde_json::to_writer(&mut out, &line).expect("a dead letter serializes");
            out.push(b'\n');
        }
        out
    }
}

fn stored_group<'a>(
    key: &'a GroupKey,
    group: &mut Group,
    sessions: &'a Interner,
    referrers: &'a Interner,
) -> StoredGroup<'a> {
    let session_names: Vec<Cow<str>> = group
        .sessions()
        .iter()
        .map(|&id| Cow::Borrowed(sessions.name(id)))
        .collect();
    group.referrers.sort_unstable();
    let referrer_counts: Vec<(Cow<str>, u64)> = group
        .referrers
        .iter()
        .map(|&(id, n)| (Cow::Borrowed(referrers.name(id)), n))
        .collect();
    StoredGroup {
        customer: Cow::Borrowed(&key.customer),
        url: Cow::Borrowed(&key.url),
        page_views: group.page_views,
        sessions: session_names,
        referrers: referrer_counts,
    }
}

/// One group of a window, merged over ranges, borrowing the ranges' strings.
#[derive(Default)]
struct Merged<'a> {
    page_views: u64,
    sessions: HashSet<&'a str>,
    referrers: Vec<(&'a str, u64)>,
}

/// One window's final documents from the ranges that have counts for it: JSON Lines in the
/// rollup's shape (`_id`, customer, url, ts, freq, metrics {page_views, visitors},
/// referrers), sorted by `_id`.
pub fn window_documents<'a, 'r: 'a>(
    window_ms: i64,
    spec: &WindowSpec,
    ranges: impl IntoIterator<Item = &'a RangeObject<'r>>,
) -> Vec<u8> {
    let mut groups: HashMap<(&str, &str), Merged> = HashMap::new();
    for range in ranges {
        for part in range.windows.iter().filter(|w| w.start_ms == window_ms) {
            for stored in &part.groups {
                let group = groups.entry((&*stored.customer, &*stored.url)).or_default();
                group.page_views += stored.page_views;
                group.sessions.extend(stored.sessions.iter().map(|s| &**s));
                for (referrer, count) in &stored.referrers {
                    let referrer: &str = referrer;
                    match group.referrers.iter_mut().find(|(r, _)| *r == referrer) {
                        Some((_, n)) => *n += count,
                        None => group.referrers.push((referrer, *count)),
                    }
                }
            }
        }
    }
    let ts = match DateTime::from_timestamp_millis(window_ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        None => window_ms.to_string(),
    };
    let freq = spec.freq_label();
    let mut documents: Vec<(String, Vec<u8>)> = groups
        .into_iter()
        .map(|((customer, url), mut group)| {
            group.referrers.sort_unstable();
            let id = document_id(url, customer, &ts);
            let mut line = Vec::with_capacity(128 + id.len() * 2);
            write_document(
                &mut line,
                &Document {
                    customer,
                    url,
                    hour: &ts,
                    freq: &freq,
                    page_views: group.page_views,
                    visitors: group.sessions.len() as u64,
                },
                &group.referrers,
            );
            (id, line)
        })
        .collect();
    documents.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(documents.iter().map(|(_, line)| line.len()).sum());
    for (_, line) in &documents {
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(customer: &str, url: &str, session: &str, referrer: &str, minute: i64) -> String {
        let referrer = if referrer.is_empty() {
            "null".to_string()
        } else {
            format!("\"{referrer}\"")
        };
        format!(
            r#"{{"customer":"{customer}","url":"{url}","referrer":{referrer},"session_id":"{session}","ts":{}}}"#,
            1_795_132_800_000 + minute * 60_000
        )
    }

    #[test]
    fn a_range_round_trips_and_the_same_records_give_the_same_bytes() {
        let spec = WindowSpec::new(300_000, 0).unwrap();
        let records = [
            record("b", "/y", "s2", "", 1),
            record("a", "/x", "s1", "g", 1),
            record("a", "/x", "s2", "b", 2),
            "{broken".to_string(),
            record("a", "/x", "s1", "g", 6),
        ];
        let build = |order: &[usize]| {
            let mut aggregate = RangeAggregate::new(spec, i64::MIN, i64::MIN);
            for &i in order {
                aggregate.add(&(i + 1).to_string(), records[i].as_bytes());
            }
            RangeObject::new("shardId-000000000001", "1", "5", &mut aggregate).to_bytes()
        };
        let bytes = build(&[0, 1, 2, 3, 4]);
        assert_eq!(bytes, build(&[0, 1, 2, 3, 4]));
        let range = RangeObject::from_bytes(&bytes).unwrap();
        assert_eq!(range.to_bytes(), bytes);
        assert_eq!(range.windows.len(), 2);
        // Groups, sessions and referrers in order of first appearance.
        assert_eq!(range.windows[0].groups[0].customer, "b");
        assert_eq!(range.windows[0].groups[1].customer, "a");
        assert_eq!(
            range.windows[0].groups[1].sessions,
            vec!["s2", "s1"],
            "s2 came first in the range"
        );
        assert_eq!(
            range.windows[0].groups[1].referrers,
            vec![(Cow::Borrowed("g"), 1), (Cow::Borrowed("b"), 1)]
        );
        assert_eq!(range.dead_letters.len(), 1);
        let lines = String::from_utf8(range.dead_letter_lines()).unwrap();
        assert!(lines.contains(r#""data":"{broken""#), "{lines}");
        assert!(
            lines.contains(r#""shard":"shardId-000000000001""#),
            "{lines}"
        );
    }

    #[test]
    fn window_documents_merge_ranges_with_exact_visitors() {
        let spec = WindowSpec::new(300_000, 0).unwrap();
        let range = |from: &str, rows: &[String]| {
            let mut aggregate = RangeAggregate::new(spec, i64::MIN, i64::MIN);
            for row in rows {
                aggregate.add(from, row.as_bytes());
            }
            RangeObject::new("s", from, from, &mut aggregate).to_bytes()
        };
        let a = range(
            "1",
            &[
                record("c", "/u", "s1", "g", 0),
                record("c", "/u", "s2", "", 1),
            ],
        );
        let b = range(
            "3",
            &[
                record("c", "/u", "s1", "g", 2),
                record("c", "/v", "s9", "", 9),
            ],
        );
        let first = 1_795_132_800_000;
        let (a, b) = (
            RangeObject::from_bytes(&a).unwrap(),
            RangeObject::from_bytes(&b).unwrap(),
        );
        let text = String::from_utf8(window_documents(first, &spec, &[a, b])).unwrap();
        assert_eq!(
            text,
            "{\"_id\":\"/u|c|2026-11-20T00:00:00\",\"customer\":\"c\",\"url\":\"/u\",\"ts\":\"2026-11-20T00:00:00\",\"freq\":\"5min\",\"metrics\":{\"page_views\":3,\"visitors\":2},\"referrers\":{\"g\":2}}\n"
        );
        assert_eq!(window_name(first), "2026-11-20T00:00:00Z");
        assert_eq!(parse_window_name("2026-11-20T00:00:00Z"), Some(first));
        assert_eq!(
            index_key(first, "s", "3"),
            "index/window=2026-11-20T00:00:00Z/shard=s/from=3"
        );
    }
}
