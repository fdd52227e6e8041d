//! `emrship-job gen stream`: deterministic page-view events put into a Kinesis stream at a
//! given rate, for tests, `run --local` and the benchmark.
//!
//! Record `i` (a pure function of the seed and `i`): customer `site-<c>.example`, a Zipf-like
//! url of that customer, a Zipf-like referrer or null (~15 %), a session of 16 hex digits drawn
//! from `sessions` per customer, and `ts` = start + i × span / records (RFC 3339, UTC, ms), so
//! event time only moves forward. Every `malformed_every`-th record is not JSON. The partition
//! key is the session id, so the records spread over every shard.

use std::time::{Duration, Instant};

use crate::job::gen::Random;
use crate::job::model::JobError;
use crate::job::rollup::gen::{customer_name, REFERRERS};

use super::kinesis::{self, StreamRef};

#[derive(Debug, Clone)]
pub struct StreamGenSpec {
    pub records: u64,
    pub seed: u64,
    /// Epoch ms of the first record's `ts`.
    pub start_ms: i64,
    /// Event time the records cover, in ms.
    pub span_ms: i64,
    pub customers: u64,
    pub urls: u64,
    pub sessions: u64,
    /// Every n-th record is malformed (0: none).
    pub malformed_every: u64,
}

const URL: u64 = 0x201;
const REFERRER_NULL: u64 = 0x202;
const REFERRER: u64 = 0x203;
const SESSION: u64 = 0x204;
const CUSTOMER: u64 = 0x205;

/// Record `i`: (partition key, data).
pub fn record(spec: &StreamGenSpec, i: u64) -> (String, Vec<u8>) {
    let random = Random { seed: spec.seed };
    let session = random.draw(SESSION, i) % spec.sessions.max(1);
    let session_id = format!("{:016x}", mix_session(spec.seed, session));
    if spec.malformed_every > 0 && (i + 1).is_multiple_of(spec.malformed_every) {
        return (
            session_id,
            format!("{{\"customer\": broken record {i}").into_bytes(),
        );
    }
    let customer = customer_name(random.draw(CUSTOMER, i) % spec.customers.max(1));
    let url = format!(
        "https://{customer}/articles/{}",
        random.zipf(URL, i, spec.urls.max(1))
    );
    let referrer = if random.unit(REFERRER_NULL, i) < 0.15 {
        "null".to_string()
    } else {
        let r = random.zipf(REFERRER, i, REFERRERS.len() as u64) as usize;
        format!("\"{}\"", REFERRERS[r])
    };
    let offset = (i as i128 * spec.span_ms as i128 / spec.records.max(1) as i128) as i64;
    let ts = chrono::DateTime::from_timestamp_millis(spec.start_ms + offset)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    let data = format!(
        r#"{{"customer":"{customer}","url":"{url}","referrer":{referrer},"session_id":"{session_id}","ts":"{ts}"}}"#
    );
    (session_id, data.into_bytes())
}

fn mix_session(seed: u64, session: u64) -> u64 {
    Random { seed }.draw(0x206, session)
}

/// Every record of `spec`, in order.
pub fn records(spec: &StreamGenSpec) -> Vec<(String, Vec<u8>)> {
    (0..spec.records).map(|i| record(spec, i)).collect()
}

/// Each record's data as one line of `path`.
pub fn write_copy(records: &[(String, Vec<u8>)], path: &std::path::Path) -> Result<(), JobError> {
    let mut text = Vec::new();
    for (_, data) in records {
        text.extend_from_slice(data);
        text.push(b'\n');
    }
    std::fs::write(path, text)
        .map_err(|e| JobError::Other(format!("cannot write {}: {e}", path.display())))
}

/// What `gen stream` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamGenReport {
    pub stream: String,
    pub records: u64,
    pub calls: u64,
    pub seconds: f64,
}

/// Puts the records, at most `rate` per second (0: as fast as PutRecords goes), writing each
/// record's data as one line to `copy` when given (the exact bytes put, for references).
pub fn put(
    spec: &StreamGenSpec,
    stream: &str,
    region: Option<&str>,
    rate: u64,
    copy: Option<&std::path::Path>,
) -> Result<StreamGenReport, JobError> {
    let records = records(spec);
    if let Some(path) = copy {
        write_copy(&records, path)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| JobError::Other(format!("cannot start the async runtime: {e}")))?;
    let stream_ref = StreamRef::parse(stream);
    runtime.block_on(async {
        let config = kinesis::sdk_config(region).await?;
        let client = aws_sdk_kinesis::Client::new(&config);
        let started = Instant::now();
        let mut calls = 0;
        // Batches of at most 500, paced so that `rate` per second is never exceeded.
        let batch = if rate == 0 {
            500
        } else {
            rate.clamp(1, 500) as usize
        };
        for (n, chunk) in records.chunks(batch).enumerate() {
            if rate > 0 {
                let due = Duration::from_secs_f64((n * batch) as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            calls += kinesis::put_records(&client, &stream_ref, chunk).await?;
        }
        Ok(StreamGenReport {
            stream: stream.to_string(),
            records: spec.records,
            calls,
            seconds: started.elapsed().as_secs_f64(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::stream::window::decode;

    fn spec() -> StreamGenSpec {
        StreamGenSpec {
            records: 1000,
            seed: 1,
            start_ms: 1_763_596_800_000,
            span_ms: 3_600_000,
            customers: 3,
            urls: 50,
            sessions: 100,
            malformed_every: 100,
        }
    }

    #[test]
    fn records_decode_move_forward_in_time_and_repeat_exactly() {
        let spec = spec();
        let mut last = i64::MIN;
        let mut malformed = 0;
        for i in 0..spec.records {
            let (key, data) = record(&spec, i);
            assert_eq!(record(&spec, i), (key.clone(), data.clone()));
            assert_eq!(key.len(), 16);
            match decode(&data) {
                Ok(event) => {
                    assert!(event.ts.0 >= last);
                    last = event.ts.0;
                    assert_eq!(event.session_id, key);
                    assert!(event
                        .url
                        .starts_with(&format!("https://{}/", event.customer)));
                }
                Err(_) => malformed += 1,
            }
        }
        assert_eq!(malformed, 10);
        assert!(last < spec.start_ms + spec.span_ms);
    }
}
