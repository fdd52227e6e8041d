//! Decoding page-view records and aggregating them per tumbling window (pure: no I/O).
//!
//! A record is one JSON object with the rollup's fields: `customer`, `url`, `referrer` (string
//! or null), `session_id` and `ts` (RFC 3339, or epoch milliseconds as a number). Per
//! (window start, customer, url) a [`RangeAggregate`] keeps the page views, the distinct
//! session ids (exact, so that ranges can be merged into a window's visitors) and the referrer
//! counts (a null referrer is a direct visit and is not counted).
//!
//! Lateness is judged per shard: the shard's watermark is the largest `ts` read from it so far
//! (carried from range to range through the checkpoint), raised by a floor when the shard was
//! idle (the wall clock, on a cluster) or drained (the end of a finite run). A record whose
//! window ended at least `lateness` before that is late: counted and kept aside, never added,
//! because that window may already have its final object.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Tumbling windows: `width_ms` divides an hour, so windows line up with the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub width_ms: i64,
    pub lateness_ms: i64,
}

impl WindowSpec {
    pub const MIN_WIDTH_MS: i64 = 60_000;
    pub const MAX_WIDTH_MS: i64 = 3_600_000;

    /// Checks a width of one minute to one hour that divides an hour, and a lateness of at
    /// most an hour.
    pub fn new(width_ms: i64, lateness_ms: i64) -> Result<WindowSpec, String> {
        if !(Self::MIN_WIDTH_MS..=Self::MAX_WIDTH_MS).contains(&width_ms)
            || Self::MAX_WIDTH_MS % width_ms != 0
        {
            return Err(format!(
                "a window of {} does not divide an hour between 1m and 1h; use e.g. 1m, 5m, 15m or 1h",
                human_ms(width_ms)
            ));
        }
        if !(0..=Self::MAX_WIDTH_MS).contains(&lateness_ms) {
            return Err(format!(
                "a lateness of {} is not between 0s and 1h",
                human_ms(lateness_ms)
            ));
        }
        Ok(WindowSpec {
            width_ms,
            lateness_ms,
        })
    }

    pub fn start_of(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.width_ms) * self.width_ms
    }

    /// Whether the window starting at `start` is closed for a shard whose watermark is `wm`.
    pub fn is_closed(&self, start: i64, watermark_ms: i64) -> bool {
        start + self.width_ms + self.lateness_ms <= watermark_ms
    }

    /// The documents' `freq`: `1hour` as the batch rollup writes, else e.g. `5min`.
    pub fn freq_label(&self) -> String {
        if self.width_ms == Self::MAX_WIDTH_MS {
            "1hour".to_string()
        } else {
            format!("{}min", self.width_ms / 60_000)
        }
    }
}

fn human_ms(ms: i64) -> String {
    if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// One decoded page view, borrowing from the record where JSON allows.
#[derive(Debug, Deserialize)]
pub struct Event<'a> {
    #[serde(borrow)]
    pub customer: Cow<'a, str>,
    #[serde(borrow)]
    pub url: Cow<'a, str>,
    #[serde(borrow, default)]
    pub referrer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    pub ts: EventTime,
}

/// `ts` in epoch milliseconds, from an RFC 3339 string or a number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime(pub i64);

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = EventTime;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time or epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<EventTime, E> {
                crate::job::source::parse_time_micros(text)
                    .map(|micros| EventTime(micros.div_euclid(1000)))
                    .ok_or_else(|| E::custom(format!("ts `{text}` is not an RFC 3339 time")))
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<EventTime, E> {
                Ok(EventTime(ms))
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<EventTime, E> {
                i64::try_from(ms)
                    .map(EventTime)
                    .map_err(|_| E::custom("ts is out of range"))
            }
            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<EventTime, E> {
                if ms.is_finite() && ms.abs() < 9.0e15 {
                    Ok(EventTime(ms.floor() as i64))
                } else {
                    Err(E::custom("ts is out of range"))
                }
            }
        }
        deserializer.deserialize_any(TimeVisitor)
    }
}

/// Decodes one record, or says why it is not a page view.
pub fn decode(data: &[u8]) -> Result<Event<'_>, String> {
    let event: Event = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    for (name, value) in [
        ("customer", &event.customer),
        ("url", &event.url),
        ("session_id", &event.session_id),
    ] {
        if value.is_empty() {
            return Err(format!("`{name}` is empty"));
        }
    }
    Ok(event)
}

/// (window start, customer, url), owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKey {
    pub window_ms: i64,
    pub customer: Box<str>,
    pub url: Box<str>,
}

impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        GroupRef {
            window_ms: self.window_ms,
            customer: &self.customer,
            url: &self.url,
        }
        .hash(state)
    }
}

/// The same key borrowed from a record: looked up without allocating.
struct GroupRef<'a> {
    window_ms: i64,
    customer: &'a str,
    url: &'a str,
}

impl Hash for GroupRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.window_ms.hash(state);
        self.customer.hash(state);
        self.url.hash(state);
    }
}

impl Equivalent<GroupKey> for GroupRef<'_> {
    fn equivalent(&self, key: &GroupKey) -> bool {
        self.window_ms == key.window_ms && *self.customer == *key.customer && *self.url == *key.url
    }
}

/// One group's sums, with sessions and referrers as ids of the range's [`Interner`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// The group's place among the range's groups, in order of first appearance: stored
    /// ranges list groups, sessions and referrers in that order, which the same records
    /// always give (no sorting of strings).
    pub order: u32,
    pub page_views: u64,
    /// Session ids, possibly repeated past `distinct_upto`; see [`Group::sessions`].
    sessions: Vec<u32>,
    /// `sessions[..distinct_upto]` is sorted and distinct.
    distinct_upto: usize,
    /// (referrer id, views); few per group.
    pub referrers: Vec<(u32, u64)>,
}

impl Group {
    fn add_referrer(&mut self, referrer: u32) {
        match self.referrers.iter_mut().find(|(r, _)| *r == referrer) {
            Some((_, n)) => *n += 1,
            None => self.referrers.push((referrer, 1)),
        }
    }

    fn add_session(&mut self, session: u32) {
        // Appending is cheaper than a set per group (most groups are small); the tail is
        // folded into the sorted, distinct prefix whenever it has doubled, which bounds the
        // memory to twice the distinct sessions.
        self.sessions.push(session);
        if self.sessions.len() >= 32 && self.sessions.len() >= 2 * self.distinct_upto {
            self.fold();
        }
    }

    fn fold(&mut self) {
        self.sessions.sort_unstable();
        self.sessions.dedup();
        self.distinct_upto = self.sessions.len();
    }

    /// The distinct session ids, ascending (= in order of first appearance in the range).
    pub fn sessions(&mut self) -> &[u32] {
        if self.distinct_upto != self.sessions.len() {
            self.fold();
        }
        &self.sessions
    }
}

/// Strings numbered in the order first seen: a range stores each session and referrer once.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// Why a record was kept aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aside {
    Malformed,
    Late,
}

/// A record kept aside, with its sequence number and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub sequence: String,
    pub kind: Aside,
    pub reason: String,
    pub data: Vec<u8>,
}

/// The sums of one contiguous range of a shard's records.
#[derive(Debug, Clone)]
pub struct RangeAggregate {
    pub spec: WindowSpec,
    pub groups: HashMap<GroupKey, Group>,
    pub sessions: Interner,
    pub referrers: Interner,
    /// Records read, including those kept aside.
    pub records: u64,
    pub malformed: u64,
    pub late: u64,
    /// The shard's event-time watermark (largest `ts` seen), in epoch ms.
    pub watermark_ms: i64,
    /// An idle shard's processing-time advance, or `i64::MAX` once drained: windows before it
    /// are closed too.
    pub floor_ms: i64,
    pub dead_letters: Vec<DeadLetter>,
}

impl RangeAggregate {
    pub fn new(spec: WindowSpec, watermark_ms: i64, floor_ms: i64) -> RangeAggregate {
        RangeAggregate {
            spec,
            groups: HashMap::new(),
            sessions: Interner::default(),
            referrers: Interner::default(),
            records: 0,
            malformed: 0,
            late: 0,
            watermark_ms,
            floor_ms,
            dead_letters: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Adds one record; malformed and late ones are counted and kept aside.
    pub fn add(&mut self, sequence: &str, data: &[u8]) {
        self.records += 1;
        let event = match decode(data) {
            Ok(event) => event,
            Err(reason) => {
                self.malformed += 1;
                self.keep_aside(sequence, Aside::Malformed, reason, data);
                return;
            }
        };
        let ts = event.ts.0;
        let window_ms = self.spec.start_of(ts);
        let closed_before = self.watermark_ms.max(self.floor_ms);
        if self.spec.is_closed(window_ms, closed_before) {
            self.late += 1;
            let reason = format!(
                "late: its window closed (watermark {closed_before} ms, lateness {} ms)",
                self.spec.lateness_ms
            );
            self.keep_aside(sequence, Aside::Late, reason, data);
            return;
        }
        self.watermark_ms = self.watermark_ms.max(ts);
        let session = self.sessions.id(&event.session_id);
        let referrer = event.referrer.as_deref().map(|r| self.referrers.id(r));
        let lookup = GroupRef {
            window_ms,
            customer: &event.customer,
            url: &event.url,
        };
        let order = self.groups.len() as u32;
        let group = match self.groups.get_mut(&lookup) {
            Some(group) => group,
            None => self
                .groups
                .entry(GroupKey {
                    window_ms,
                    customer: (*event.customer).into(),
                    url: (*event.url).into(),
                })
                .or_insert_with(|| Group {
                    order,
                    ..Group::default()
                }),
        };
        group.page_views += 1;
        group.add_session(session);
        if let Some(referrer) = referrer {
            group.add_referrer(referrer);
        }
    }

    fn keep_aside(&mut self, sequence: &str, kind: Aside, reason: String, data: &[u8]) {
        self.dead_letters.push(DeadLetter {
            sequence: sequence.to_string(),
            kind,
            reason,
            data: data.to_vec(),
        });
    }

    /// The window starts this range has counts for, ascending.
    pub fn windows(&self) -> Vec<i64> {
        let mut windows: Vec<i64> = self.groups.keys().map(|k| k.window_ms).collect();
        windows.sort_unstable();
        windows.dedup();
        windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WindowSpec {
        WindowSpec::new(300_000, 60_000).unwrap()
    }

    #[test]
    fn widths_must_divide_an_hour() {
        assert!(WindowSpec::new(60_000, 0).is_ok());
        assert!(WindowSpec::new(3_600_000, 3_600_000).is_ok());
        let err = WindowSpec::new(7 * 60_000, 0).unwrap_err();
        assert_eq!(
            err,
            "a window of 7m does not divide an hour between 1m and 1h; use e.g. 1m, 5m, 15m or 1h"
        );
        assert!(WindowSpec::new(30_000, 0).is_err());
        assert!(WindowSpec::new(7_200_000, 0).is_err());
        assert!(WindowSpec::new(60_000, 3_600_001).is_err());
        assert_eq!(spec().freq_label(), "5min");
        assert_eq!(WindowSpec::new(3_600_000, 0).unwrap().freq_label(), "1hour");
    }

    #[test]
    fn counts_views_distinct_sessions_and_referrers_per_window() {
        let mut range = RangeAggregate::new(spec(), i64::MIN, i64::MIN);
        let records = [
            r#"{"customer":"a","url":"/x","referrer":"g","session_id":"s1","ts":"2026-11-20T00:01:00Z"}"#,
            r#"{"customer":"a","url":"/x","referrer":null,"session_id":"s1","ts":"2026-11-20T00:02:00Z"}"#,
            r#"{"customer":"a","url":"/x","referrer":"g","session_id":"s2","ts":"2026-11-20T00:04:59.999Z"}"#,
            r#"{"customer":"a","url":"/x","session_id":"s3","ts":1795133100000}"#,
            r#"{"customer":"a","url":"/x","referrer":"g","session_id":"s\u0031","ts":"2026-11-20T01:05:00+01:00"}"#,
        ];
        for (i, record) in records.iter().enumerate() {
            range.add(&(i + 1).to_string(), record.as_bytes());
        }
        assert_eq!((range.records, range.malformed, range.late), (5, 0, 0));
        let first = 1_795_132_800_000; // 2026-11-20T00:00Z
        assert_eq!(range.windows(), vec![first, first + 300_000]);
        let mut group = |window_ms| {
            let group = range
                .groups
                .get_mut(&GroupKey {
                    window_ms,
                    customer: "a".into(),
                    url: "/x".into(),
                })
                .unwrap();
            let sessions: Vec<String> = group
                .sessions()
                .iter()
                .map(|&id| range.sessions.name(id).to_string())
                .collect();
            let referrers: Vec<(String, u64)> = group
                .referrers
                .iter()
                .map(|&(id, n)| (range.referrers.name(id).to_string(), n))
                .collect();
            (group.page_views, sessions, referrers)
        };
        let (views, sessions, referrers) = group(first);
        assert_eq!(views, 3);
        assert_eq!(sessions, ["s1", "s2"]);
        assert_eq!(referrers, [("g".to_string(), 2)]);
        let (views, sessions, _) = group(first + 300_000);
        assert_eq!(views, 2);
        assert_eq!(sessions, ["s1", "s3"], "s1 again (escaped) and s3");
        assert_eq!(range.watermark_ms, first + 300_000);
    }

    #[test]
    fn malformed_records_are_counted_and_kept_with_a_reason() {
        let mut range = RangeAggregate::new(spec(), 0, i64::MIN);
        range.add("7", b"not json");
        range.add(
            "8",
            br#"{"customer":"a","url":"/x","session_id":"s","ts":"yesterday"}"#,
        );
        range.add(
            "9",
            br#"{"customer":"","url":"/x","session_id":"s","ts":5}"#,
        );
        range.add("10", br#"{"url":"/x","session_id":"s","ts":5}"#);
        assert_eq!((range.records, range.malformed), (4, 4));
        assert!(range.groups.is_empty());
        let reasons: Vec<&str> = range
            .dead_letters
            .iter()
            .map(|d| d.reason.as_str())
            .collect();
        assert!(reasons[0].starts_with("expected ident"), "{reasons:?}");
        assert!(reasons[1].contains("ts `yesterday` is not an RFC 3339 time"));
        assert_eq!(reasons[2], "`customer` is empty");
        assert!(reasons[3].contains("missing field `customer`"));
        assert_eq!(range.dead_letters[0].sequence, "7");
        assert_eq!(range.dead_letters[0].data, b"not json");
    }

    #[test]
    fn a_record_whose_window_closed_before_the_watermark_is_late() {
        let mut range = RangeAggregate::new(spec(), 0, i64::MIN);
        let at = |minute: i64| {
            format!(
                r#"{{"customer":"a","url":"/x","session_id":"s","ts":{}}}"#,
                minute * 60_000
            )
        };
        range.add("1", at(12).as_bytes()); // watermark 12:00, window 10–15
        range.add("2", at(4).as_bytes()); // window 0–5 + 1m lateness = 6 ≤ 12: late
        range.add("3", at(7).as_bytes()); // window 5–10 + 1 = 11 ≤ 12: late
        range.add("4", at(9).as_bytes()); // same window: late too
        range.add("5", at(10).as_bytes()); // window 10–15: on time
        assert_eq!((range.records, range.late), (5, 3));
        assert_eq!(range.windows(), vec![600_000]);
        assert_eq!(range.dead_letters[0].kind, Aside::Late);
        assert_eq!(range.watermark_ms, 12 * 60_000);
    }

    #[test]
    fn a_group_with_many_repeated_sessions_keeps_each_once() {
        let mut group = Group::default();
        for i in 0..10_000u32 {
            group.add_session(i % 37);
            assert!(
                group.sessions.len() <= 2 * 37 + 32,
                "bounded: {}",
                group.sessions.len()
            );
        }
        assert_eq!(group.sessions(), (0..37).collect::<Vec<u32>>().as_slice());
    }

    #[test]
    fn a_drained_or_idle_floor_closes_windows_without_moving_event_time() {
        let record = |minute: i64| {
            format!(
                r#"{{"customer":"a","url":"/x","session_id":"s","ts":{}}}"#,
                minute * 60_000
            )
        };
        let mut idle = RangeAggregate::new(spec(), 0, 20 * 60_000);
        idle.add("1", record(13).as_bytes()); // window 10–15 + 1m = 16 ≤ 20: late
        idle.add("2", record(16).as_bytes()); // window 15–20 + 1m = 21 > 20: counted
        assert_eq!((idle.records, idle.late), (2, 1));
        assert_eq!(
            idle.watermark_ms,
            16 * 60_000,
            "the floor is not event time"
        );
        let mut drained = RangeAggregate::new(spec(), 0, i64::MAX);
        drained.add("1", record(10_000).as_bytes());
        assert_eq!(drained.late, 1);
    }
}
