//! The Kinesis calls the worker makes, each turning the SDK's typed errors into what the loop
//! acts on: throttled (back off), iterator expired (re-seek from the last sequence number
//! read), shard gone, or anything else (retry later, say why).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;

use crate::job::model::JobError;

/// The SDK configuration every stream client shares: the region from `--region` or the
/// environment, endpoints from the standard overrides (`AWS_ENDPOINT_URL_KINESIS`, …).
pub async fn sdk_config(region: Option<&str>) -> Result<aws_config::SdkConfig, JobError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_string()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(JobError::Usage(
            "no AWS region: pass --region or set AWS_REGION".to_string(),
        ));
    }
    Ok(config)
}

/// The Kinesis client. Its GetRecords throttling and expiry are handled by the worker, so
/// the SDK does not retry them behind its back (one attempt per call).
pub fn client(config: &aws_config::SdkConfig) -> Client {
    let kinesis = aws_sdk_kinesis::config::Builder::from(config)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    Client::from_conf(kinesis)
}

/// A stream named by name or ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRef {
    Name(String),
    Arn(String),
}

impl StreamRef {
    pub fn parse(text: &str) -> StreamRef {
        if text.starts_with("arn:") {
            StreamRef::Arn(text.to_string())
        } else {
            StreamRef::Name(text.to_string())
        }
    }

    pub fn name(&self) -> &str {
        match self {
            StreamRef::Name(name) => name,
            StreamRef::Arn(arn) => arn.rsplit('/').next().unwrap_or(arn),
        }
    }
}

/// A shard and its parents, from ListShards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    /// The parent and, after a merge, the adjacent parent.
    pub parents: Vec<String>,
}

pub async fn list_shards(client: &Client, stream: &StreamRef) -> Result<Vec<ShardInfo>, JobError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = client.list_shards();
        request = match (&token, stream) {
            // With a NextToken the stream must not be named again.
            (Some(token), _) => request.next_token(token),
            (None, StreamRef::Name(name)) => request.stream_name(name),
            (None, StreamRef::Arn(arn)) => request.stream_arn(arn),
        };
        let page = request.send().await.map_err(|e| {
            JobError::Other(format!(
                "stream {}: cannot list its shards: {}",
                stream.name(),
                sdk_error(&e)
            ))
        })?;
        for shard in page.shards() {
            shards.push(ShardInfo {
                id: shard.shard_id().to_string(),
                parents: shard
                    .parent_shard_id()
                    .into_iter()
                    .chain(shard.adjacent_parent_shard_id())
                    .map(str::to_string)
                    .collect(),
            });
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => break,
        }
    }
    Ok(shards)
}

/// Where to start reading a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    TrimHorizon,
    AtTimestamp(i64),
    After(String),
}

pub async fn shard_iterator(
    client: &Client,
    stream: &StreamRef,
    shard: &str,
    start: &StartAt,
) -> Result<Option<String>, PollError> {
    let mut request = client.get_shard_iterator().shard_id(shard);
    request = match stream {
        StreamRef::Name(name) => request.stream_name(name),
        StreamRef::Arn(arn) => request.stream_arn(arn),
    };
    request = match start {
        StartAt::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        StartAt::AtTimestamp(ms) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from_millis(*ms)),
        StartAt::After(sequence) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence),
    };
    match request.send().await {
        Ok(output) => Ok(output.shard_iterator().map(str::to_string)),
        Err(e) => Err(match e.as_service_error() {
            Some(s) if s.is_provisioned_throughput_exceeded_exception() => PollError::Throttled,
            Some(s) if s.is_resource_not_found_exception() => PollError::Gone(message(&e)),
            _ => PollError::Other(format!("GetShardIterator: {}", sdk_error(&e))),
        }),
    }
}

fn message<E: ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or("no message").to_string()
}

/// A service's answer as `Code: message`; anything else (no connection, a timeout) with the
/// SDK's whole chain of causes.
pub fn sdk_error<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(error).to_string(),
    }
}

/// One GetRecords page.
#[derive(Debug)]
pub struct Page {
    /// (sequence number, data).
    pub records: Vec<(String, Vec<u8>)>,
    /// `None`: the shard is closed and every record of it has been read.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollError {
    /// ProvisionedThroughputExceeded: more than 5 reads/s or 2 MB/s on the shard.
    Throttled,
    /// The iterator is older than 5 minutes.
    Expired,
    /// The stream or shard is no longer there.
    Gone(String),
    Other(String),
}

pub async fn get_records(client: &Client, iterator: &str, limit: i32) -> Result<Page, PollError> {
    match client
        .get_records()
        .shard_iterator(iterator)
        .limit(limit)
        .send()
        .await
    {
        Ok(output) => Ok(Page {
            records: output
                .records()
                .iter()
                .map(|r| (r.sequence_number().to_string(), r.data().as_ref().to_vec()))
                .collect(),
            // An emulator may send an empty string for "none".
            next_iterator: output
                .next_shard_iterator()
                .filter(|it| !it.is_empty())
                .map(str::to_string),
            millis_behind_latest: output.millis_behind_latest(),
        }),
        Err(e) => Err(match e.as_service_error() {
            Some(s) if s.is_provisioned_throughput_exceeded_exception() => PollError::Throttled,
            Some(s) if s.is_expired_iterator_exception() => PollError::Expired,
            Some(s) if s.is_resource_not_found_exception() => PollError::Gone(message(&e)),
            _ => PollError::Other(format!("GetRecords: {}", sdk_error(&e))),
        }),
    }
}

/// Puts records (partition key, data) with PutRecords, 500 at a time, re-putting the entries
/// a call reports as failed (throttled) until every one is in. Returns the calls made.
pub async fn put_records(
    client: &Client,
    stream: &StreamRef,
    records: &[(String, Vec<u8>)],
) -> Result<u64, JobError> {
    let mut calls = 0;
    for chunk in records.chunks(500) {
        let mut pending: Vec<&(String, Vec<u8>)> = chunk.iter().collect();
        let mut backoff = Duration::from_millis(50);
        while !pending.is_empty() {
            let entries: Vec<PutRecordsRequestEntry> = pending
                .iter()
                .map(|(key, data)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(Blob::new(data.clone()))
                        .build()
                        .expect("partition key and data are set")
                })
                .collect();
            let mut request = client.put_records().set_records(Some(entries));
            request = match stream {
                StreamRef::Name(name) => request.stream_name(name),
                StreamRef::Arn(arn) => request.stream_arn(arn),
            };
            calls += 1;
            match request.send().await {
                Ok(output) => {
                    let failed: Vec<&(String, Vec<u8>)> = pending
                        .iter()
                        .zip(output.records())
                        .filter(|(_, result)| result.error_code().is_some())
                        .map(|(record, _)| *record)
                        .collect();
                    pending = failed;
                }
                Err(e) => match e.as_service_error() {
                    Some(s) if s.is_provisioned_throughput_exceeded_exception() => {}
                    _ => {
                        return Err(JobError::Other(format!(
                            "stream {}: PutRecords failed: {}",
                            stream.name(),
                            sdk_error(&e)
                        )))
                    }
                },
            }
            if !pending.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    Ok(calls)
}

/// Creates the stream with `shards` shards unless it exists, and waits until it is active;
/// `true` when this call created it. (`run --local` prepares an emulator with it.)
pub async fn ensure_stream(client: &Client, name: &str, shards: i32) -> Result<bool, JobError> {
    let failed = |what: &str, detail: String| {
        JobError::Other(format!("stream {name}: cannot {what} it: {detail}"))
    };
    let exists = match client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(failed("describe", sdk_error(&e))),
    };
    if !exists {
        client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .map_err(|e| failed("create", sdk_error(&e)))?;
    }
    for _ in 0..100 {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| failed("describe", sdk_error(&e)))?;
        let status = summary
            .stream_description_summary()
            .map(|d| d.stream_status().as_str().to_string());
        if status.as_deref() == Some("ACTIVE") {
            return Ok(!exists);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(failed("wait for", "not ACTIVE after 20 s".to_string()))
}
