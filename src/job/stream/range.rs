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
//! whoever wrote it. Range content is sorted, so the same records give the same bytes.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use super::window::{Aside, Group, GroupKey, RangeAggregate, WindowSpec};
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

/// A stored range: the unit of exactly-once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeObject {
    pub shard: String,
    pub from: String,
    pub to: String,
    pub records: u64,
    pub malformed: u64,
    pub late: u64,
    /// The shard's watermark after the range (epoch ms).
    pub watermark_ms: i64,
    pub windows: Vec<WindowPart>,
    pub dead_letters: Vec<StoredDeadLetter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPart {
    pub start_ms: i64,
    pub groups: Vec<StoredGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub customer: String,
    pub url: String,
    pub page_views: u64,
    /// Sorted.
    pub sessions: Vec<String>,
    /// Sorted by name.
    pub referrers: Vec<(String, u64)>,
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

impl RangeObject {
    pub fn new(shard: &str, from: &str, to: &str, aggregate: &RangeAggregate) -> RangeObject {
        let mut windows: BTreeMap<i64, Vec<StoredGroup>> = BTreeMap::new();
        for (key, group) in &aggregate.groups {
            windows
                .entry(key.window_ms)
                .or_default()
                .push(stored_group(key, group));
        }
        let windows = windows
            .into_iter()
            .map(|(start_ms, mut groups)| {
                groups.sort_by(|a, b| (&a.customer, &a.url).cmp(&(&b.customer, &b.url)));
                WindowPart { start_ms, groups }
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
            shard: shard.to_string(),
            from: from.to_string(),
            to: to.to_string(),
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

    pub fn from_bytes(bytes: &[u8]) -> Result<RangeObject, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a range object: {e}"))
    }

    /// The dead-letter object: one JSON line per record kept aside.
    pub fn dead_letter_lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for dead in &self.dead_letters {
            let mut line = serde_json::to_value(dead).expect("a dead letter serializes");
            line["shard"] = serde_json::Value::String(self.shard.clone());
            serde_json::to_writer(&mut out, &line).expect("a dead letter serializes");
            out.push(b'\n');
        }
        out
    }
}

fn stored_group(key: &GroupKey, group: &Group) -> StoredGroup {
    let mut sessions: Vec<String> = group.sessions.iter().map(|s| s.to_string()).collect();
    sessions.sort_unstable();
    let mut referrers: Vec<(String, u64)> = group
        .referrers
        .iter()
        .map(|(r, n)| (r.to_string(), *n))
        .collect();
    referrers.sort_unstable();
    StoredGroup {
        customer: key.customer.to_string(),
        url: key.url.to_string(),
        page_views: group.page_views,
        sessions,
        referrers,
    }
}

/// One window's final documents from the ranges that have counts for it: JSON Lines in the
/// rollup's shape (`_id`, customer, url, ts, freq, metrics {page_views, visitors},
/// referrers), sorted by `_id`.
pub fn window_documents(window_ms: i64, spec: &WindowSpec, ranges: &[RangeObject]) -> Vec<u8> {
    let mut groups: BTreeMap<(&str, &str), Group> = BTreeMap::new();
    for range in ranges {
        for part in range.windows.iter().filter(|w| w.start_ms == window_ms) {
            for stored in &part.groups {
                let group = groups.entry((&stored.customer, &stored.url)).or_default();
                group.merge(&Group {
                    page_views: stored.page_views,
                    sessions: stored.sessions.iter().map(|s| s.as_str().into()).collect(),
                    referrers: stored
                        .referrers
                        .iter()
                        .map(|(r, n)| (r.as_str().into(), *n))
                        .collect(),
                });
            }
        }
    }
    let ts = match DateTime::from_timestamp_millis(window_ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        None => window_ms.to_string(),
    };
    let freq = spec.freq_label();
    let mut documents: Vec<(String, Vec<u8>)> = groups
        .iter()
        .map(|((customer, url), group)| {
            let mut referrers: Vec<(&str, u64)> =
                group.referrers.iter().map(|(r, n)| (&**r, *n)).collect();
            referrers.sort_unstable();
            let id = document_id(url, customer, &ts);
            let mut line = Vec::new();
            write_document(
                &mut line,
                &id,
                &Document {
                    customer,
                    url,
                    hour: &ts,
                    freq: &freq,
                    page_views: group.page_views,
                    visitors: group.sessions.len() as u64,
                    referrers: &referrers,
                },
            );
            (id, line)
        })
        .collect();
    documents.sort_by(|a, b| a.0.cmp(&b.0));
    documents.into_iter().flat_map(|(_, line)| line).collect()
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
            RangeObject::new("shardId-000000000001", "1", "5", &aggregate)
        };
        let range = build(&[0, 1, 2, 3, 4]);
        assert_eq!(range.to_bytes(), build(&[0, 1, 2, 3, 4]).to_bytes());
        assert_eq!(RangeObject::from_bytes(&range.to_bytes()).unwrap(), range);
        assert_eq!(range.windows.len(), 2);
        assert_eq!(range.windows[0].groups[0].customer, "a");
        assert_eq!(range.windows[0].groups[0].sessions, vec!["s1", "s2"]);
        assert_eq!(
            range.windows[0].groups[0].referrers,
            vec![("b".to_string(), 1), ("g".to_string(), 1)]
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
            RangeObject::new("s", from, from, &aggregate)
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
