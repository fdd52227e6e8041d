//! Fetches a step's logs from the cluster's LogUri on S3: the step's own logs, the YARN
//! container logs of the applications it started, and bootstrap-action logs when the cluster may
//! not have got as far as the step.
//!
//! Layout (EMR Management Guide, "View log files archived to Amazon S3"), under
//! `<LogUri>/<cluster-id>/`: `steps/<step-id>/{controller,syslog,stderr,stdout}.gz`,
//! `containers/<application-id>/<container-id>/{stderr,stdout}.gz`,
//! `node/<instance-id>/bootstrap-actions/<n>/{stderr,stdout}.gz`. EMR pushes them about every
//! five minutes, so right after a step ends they may not be there yet.

use std::fmt;
use std::io::Write;

use aws_config::SdkConfig;
use aws_sdk_emr::error::{DisplayErrorContext, ProvideErrorMetadata};
use chrono::{DateTime, Duration, Utc};

use crate::diagnose::{LogText, StepContext};
use crate::sizing::catalog::{self, Arch};

/// EMR copies node logs to S3 about this often.
pub const LOG_PUSH_INTERVAL_MINUTES: i64 = 5;
/// Decompressed text kept per log: its tail.
pub const MAX_TAIL_BYTES: usize = 4 << 20;
/// Container logs fetched per step (the driver's first, then executors').
pub const MAX_CONTAINER_LOGS: usize = 24;
/// Nodes whose bootstrap-action logs are looked at.
pub const MAX_BOOTSTRAP_NODES: usize = 16;

const STEP_LOG_FILES: [&str; 4] = ["stderr", "stdout", "controller", "syslog"];

#[derive(Debug)]
pub enum LogsError {
    ClusterNotFound { cluster: String, detail: String },
    StepNotFound { cluster: String, step: String },
    NoLogUri { cluster: String },
    BadLogUri { cluster: String, log_uri: String },
    AccessDenied { uri: String, detail: String },
    Aws { what: String, detail: String },
}

impl fmt::Display for LogsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogsError::ClusterNotFound { cluster, detail } => write!(
                f,
                "cluster {cluster} not found ({detail}): check the id (j-…) and that --region / AWS_REGION is the cluster's region"
            ),
            LogsError::StepNotFound { cluster, step } => write!(
                f,
                "step {step} not found on cluster {cluster}: `emrship status {cluster}` lists its steps"
            ),
            LogsError::NoLogUri { cluster } => write!(
                f,
                "cluster {cluster} has no LogUri, so its logs were never copied to S3 (they are only on the nodes, under /mnt/var/log/hadoop/steps/): set log_uri in the spec for the next cluster"
            ),
            LogsError::BadLogUri { cluster, log_uri } => write!(
                f,
                "cluster {cluster} has LogUri {log_uri:?}, which is not an s3:// location"
            ),
            LogsError::AccessDenied { uri, detail } => write!(
                f,
                "cannot read {uri}: access denied ({detail}); your credentials need s3:ListBucket on the log bucket and s3:GetObject on the log prefix"
            ),
            LogsError::Aws { what, detail } => write!(f, "{what}: {detail}"),
        }
    }
}

impl std::error::Error for LogsError {}

/// `s3://bucket/prefix/` (EMR also reports `s3n://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPrefix {
    pub bucket: String,
    /// Empty or ending in `/`.
    pub prefix: String,
}

impl LogPrefix {
    pub fn parse(log_uri: &str) -> Option<LogPrefix> {
        let rest = ["s3://", "s3n://", "s3a://"]
            .iter()
            .find_map(|scheme| log_uri.strip_prefix(scheme))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        let prefix = prefix.trim_start_matches('/');
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_string()
        } else {
            format!("{prefix}/")
        };
        Some(LogPrefix {
            bucket: bucket.to_string(),
            prefix,
        })
    }

    /// The key of `rest` under the cluster's folder.
    pub fn key(&self, cluster_id: &str, rest: &str) -> String {
        format!("{}{cluster_id}/{rest}", self.prefix)
    }

    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl fmt::Display for LogPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[derive(Debug, Clone)]
pub struct FetchedLog {
    /// Relative to `<LogUri>/<cluster-id>/`, e.g. `steps/s-…/stderr.gz`.
    pub name: String,
    pub uri: String,
    pub text: String,
    /// Only the last [`MAX_TAIL_BYTES`] were kept.
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct StepInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    pub args: Vec<String>,
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    /// FailureDetails (reason, message, log file), one line.
    pub failure: Option<String>,
}

/// Logs are not on S3 yet: when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotYet {
    pub message: String,
    pub look_again_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct ClusterLogs {
    pub cluster_id: String,
    pub cluster_state: String,
    /// The cluster's state-change reason (code: message).
    pub cluster_reason: Option<String>,
    pub release_label: Option<String>,
    pub log_prefix: LogPrefix,
    pub node_arch: Option<Arch>,
    pub step: Option<StepInfo>,
    pub logs: Vec<FetchedLog>,
    /// The step's own logs are not there (yet).
    pub not_yet: Option<NotYet>,
    /// What was left out (more containers than fetched, unreadable objects).
    pub notes: Vec<String>,
}

impl ClusterLogs {
    /// The texts to diagnose: the status messages, then every fetched log.
    pub fn log_texts(&self) -> Vec<LogText> {
        let mut texts = Vec::new();
        if let Some(reason) = &self.cluster_reason {
            texts.push(LogText::new(
                "cluster status",
                format!("{} {reason}", self.cluster_state),
            ));
        }
        if let Some(step) = &self.step {
            if let Some(failure) = &step.failure {
                texts.push(LogText::new(
                    "step status",
                    format!("{} {failure}", step.state),
                ));
            }
        }
        texts.extend(self.logs.iter().map(|log| LogText {
            name: log.name.clone(),
            text: log.text.clone(),
            truncated: log.truncated,
        }));
        texts
    }

    pub fn step_context(&self) -> StepContext {
        let mut context = self
            .step
            .as_ref()
            .map(|step| StepContext::from_step_args(&step.args))
            .unwrap_or_default();
        context.release_label = self.release_label.clone();
        context.node_arch = self.node_arch;
        context
    }
}

/// What to say when the step's logs are not on S3: EMR pushes them about every five minutes,
/// counted from the step's end when it has ended.
pub fn not_yet(
    step_id: &str,
    state: &str,
    started: Option<DateTime<Utc>>,
    ended: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> NotYet {
    let interval = Duration::minutes(LOG_PUSH_INTERVAL_MINUTES);
    let hhmm = |t: DateTime<Utc>| {
        // Round up to the next whole minute so "after HH:MM" is never too early.
        let up = t + Duration::seconds(59);
        up.format("%H:%M UTC").to_string()
    };
    if state == "CANCELLED" && started.is_none() {
        return NotYet {
            message: format!(
                "step {step_id} was cancelled before it started, so it has no logs of its own; the cause is in the cluster's status or its bootstrap logs"
            ),
            look_again_after: None,
        };
    }
    match ended {
        Some(ended) if now < ended + interval => {
            let after = ended + interval;
            NotYet {
                message: format!(
                    "the logs of step {step_id} are not on S3 yet: EMR copies them about every {LOG_PUSH_INTERVAL_MINUTES} minutes and the step ended at {}; look again after {}",
                    ended.format("%H:%M UTC"),
                    hhmm(after)
                ),
                look_again_after: Some(after),
            }
        }
        Some(ended) => {
            let after = now + interval;
            NotYet {
                message: format!(
                    "the logs of step {step_id} are still not on S3 {} minutes after it ended ({}); look again after {}, and if they never arrive check the cluster's LogUri and that its instance profile may s3:PutObject under it",
                    (now - ended).num_minutes(),
                    ended.format("%H:%M UTC"),
                    hhmm(after)
                ),
                look_again_after: Some(after),
            }
        }
        None => {
            let after = now + interval;
            NotYet {
                message: format!(
                    "the logs of step {step_id} ({state}) are not on S3 yet: EMR copies them about every {LOG_PUSH_INTERVAL_MINUTES} minutes while it runs; look again after {}",
                    hhmm(after)
                ),
                look_again_after: Some(after),
            }
        }
    }
}

/// Keeps the last `limit` bytes written to it.
struct TailBuffer {
    bytes: Vec<u8>,
    limit: usize,
    dropped: bool,
    /// Every byte ever written, kept or not.
    total: u64,
}

impl TailBuffer {
    fn new(limit: usize) -> TailBuffer {
        TailBuffer {
            bytes: Vec::new(),
            limit,
            dropped: false,
            total: 0,
        }
    }

    /// The last `limit` bytes as they are (not cut at a line), and the whole length.
    fn finish_bytes(mut self) -> (Vec<u8>, u64) {
        if self.bytes.len() > self.limit {
            let cut = self.bytes.len() - self.limit;
            self.bytes.drain(..cut);
        }
        (self.bytes, self.total)
    }

    fn finish(mut self) -> (String, bool) {
        if self.bytes.len() > self.limit {
            let cut = self.bytes.len() - self.limit;
            self.bytes.drain(..cut);
            self.dropped = true;
        }
        let mut start = 0;
        if self.dropped {
            // Start at a whole line.
            if let Some(newline) = self.bytes.iter().position(|&b| b == b'\n') {
                start = newline + 1;
            }
        }
        (
            String::from_utf8_lossy(&self.bytes[start..]).into_owned(),
            self.dropped,
        )
    }
}

impl Write for TailBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(data);
        self.total += data.len() as u64;
        // Trim in batches, not on every write.
        if self.bytes.len() > 2 * self.limit {
            let cut = self.bytes.len() - self.limit;
            self.bytes.drain(..cut);
            self.dropped = true;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes a log as its bytes arrive: gzip when it starts with gzip's magic number (EMR's `.gz`
/// logs, possibly several members), plain text otherwise. Keeps only the tail.
pub struct LogDecoder {
    state: DecoderState,
}

enum DecoderState {
    Sniffing(Vec<u8>, usize),
    Gzip(Box<flate2::write::MultiGzDecoder<TailBuffer>>),
    Plain(TailBuffer),
}

impl LogDecoder {
    pub fn new(limit: usize) -> LogDecoder {
        LogDecoder {
            state: DecoderState::Sniffing(Vec::new(), limit),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        match &mut self.state {
            DecoderState::Sniffing(head, limit) => {
                head.extend_from_slice(chunk);
                if head.len() < 2 {
                    return Ok(());
                }
                let head = std::mem::take(head);
                let limit = *limit;
                self.state = if head[..2] == [0x1f, 0x8b] {
                    DecoderState::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                        TailBuffer::new(limit),
                    )))
                } else {
                    DecoderState::Plain(TailBuffer::new(limit))
                };
                self.push(&head)
            }
            DecoderState::Gzip(decoder) => decoder.write_all(chunk),
            DecoderState::Plain(tail) => tail.write_all(chunk),
        }
    }

    /// The text (its tail) and whether anything before the tail was dropped.
    pub fn finish(self) -> std::io::Result<(String, bool)> {
        match self.state {
            DecoderState::Sniffing(head, limit) => {
                let mut tail = TailBuffer::new(limit);
                tail.write_all(&head)?;
                Ok(tail.finish())
            }
            DecoderState::Gzip(decoder) => Ok(decoder.finish()?.finish()),
            DecoderState::Plain(tail) => Ok(tail.finish()),
        }
    }

    /// The decoded tail's bytes (not cut at a line) and the decoded length of the whole log.
    pub fn finish_bytes(self) -> std::io::Result<(Vec<u8>, u64)> {
        match self.state {
            DecoderState::Sniffing(head, limit) => {
                let mut tail = TailBuffer::new(limit);
                tail.write_all(&head)?;
                Ok(tail.finish_bytes())
            }
            DecoderState::Gzip(decoder) => Ok(decoder.finish()?.finish_bytes()),
            DecoderState::Plain(tail) => Ok(tail.finish_bytes()),
        }
    }
}

/// Where `logs --follow` is in one log: EMR rewrites a running step's log object whole every
/// few minutes, so each read is the whole log again and only what lies past the cursor is new.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowCursor {
    /// Decoded bytes of the log already printed.
    printed: u64,
}

/// What one read of a followed log adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowedBytes {
    /// New bytes, whole lines only unless the read was the last.
    pub bytes: Vec<u8>,
    /// New bytes that were no longer in the tail kept from the read (more than
    /// [`MAX_TAIL_BYTES`] arrived between two reads).
    pub skipped: u64,
    /// The log got shorter than what was printed: it was replaced, and is printed from its
    /// start again.
    pub restarted: bool,
}

impl FollowCursor {
    /// `tail` is the end of the log as read now and `total` its whole length. Returns what was
    /// not printed yet: up to its last newline (a line still being written waits for the next
    /// read), or all of it when `last` (the step has ended).
    pub fn advance(&mut self, tail: &[u8], total: u64, last: bool) -> FollowedBytes {
        let mut out = FollowedBytes::default();
        if total < self.printed {
            out.restarted = true;
            self.printed = 0;
        }
        let tail_start = total.saturating_sub(tail.len() as u64);
        let start = self.printed.max(tail_start);
        out.skipped = start - self.printed;
        let fresh = &tail[(start - tail_start) as usize..];
        let shown = if last {
            fresh
        } else {
            match fresh.iter().rposition(|&b| b == b'\n') {
                Some(newline) => &fresh[..=newline],
                None => &fresh[..0],
            }
        };
        out.bytes = shown.to_vec();
        self.printed = start + shown.len() as u64;
        out
    }
}

fn from_smithy(time: &aws_sdk_emr::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// The step to show: the last FAILED one, else the last one (ListSteps lists newest first).
pub fn choose_step(steps: &[(String, String)]) -> Option<&str> {
    steps
        .iter()
        .find(|(_, state)| state == "FAILED")
        .or_else(|| steps.first())
        .map(|(id, _)| id.as_str())
}

pub struct LogFetcher {
    emr: aws_sdk_emr::Client,
    s3: aws_sdk_s3::Client,
}

impl LogFetcher {
    pub fn new(sdk: &SdkConfig) -> LogFetcher {
        // An emulator or a custom endpoint has no per-bucket host names: path-style addressing.
        let path_style = sdk.endpoint_url().is_some()
            || super::sdk::endpoint_overridden(&super::sdk::AwsOptions::default());
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(path_style)
                .build(),
        );
        LogFetcher {
            emr: aws_sdk_emr::Client::new(sdk),
            s3,
        }
    }

    pub async fn fetch(
        &self,
        cluster_id: &str,
        step_id: Option<&str>,
    ) -> Result<ClusterLogs, LogsError> {
        let described = self
            .emr
            .describe_cluster()
            .cluster_id(cluster_id)
            .send()
            .await
            .map_err(|error| describe_cluster_error(cluster_id, &error))?;
        let cluster = described
            .cluster()
            .ok_or_else(|| LogsError::ClusterNotFound {
                cluster: cluster_id.to_string(),
                detail: "DescribeCluster returned no cluster".to_string(),
            })?;
        let log_uri = cluster
            .log_uri()
            .filter(|uri| !uri.is_empty())
            .ok_or_else(|| LogsError::NoLogUri {
                cluster: cluster_id.to_string(),
            })?;
        let log_prefix = LogPrefix::parse(log_uri).ok_or_else(|| LogsError::BadLogUri {
            cluster: cluster_id.to_string(),
            log_uri: log_uri.to_string(),
        })?;
        let status = cluster.status();
        let cluster_state = status
            .and_then(|s| s.state())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let cluster_reason = status.and_then(|s| s.state_change_reason()).and_then(|r| {
            let message = r.message().unwrap_or_default();
            let code = r.code().map(|c| c.as_str()).unwrap_or_default();
            (!message.is_empty() || !code.is_empty()).then(|| match (code, message) {
                ("", message) => message.to_string(),
                (code, "") => code.to_string(),
                (code, message) => format!("{code}: {message}"),
            })
        });

        let step = self.step(cluster_id, step_id).await?;
        let node_arch = self.node_arch(cluster_id).await;

        let mut result = ClusterLogs {
            cluster_id: cluster_id.to_string(),
            cluster_state,
            cluster_reason,
            release_label: cluster.release_label().map(str::to_string),
            log_prefix,
            node_arch,
            step,
            logs: Vec::new(),
            not_yet: None,
            notes: Vec::new(),
        };

        if let Some(step) = result.step.clone() {
            for file in STEP_LOG_FILES {
                let name = format!("steps/{}/{file}.gz", step.id);
                let key = result.log_prefix.key(cluster_id, &name);
                if let Some(log) = self.get_log(&result.log_prefix, &key, &name).await? {
                    result.logs.push(log);
                }
            }
            if result.logs.is_empty() {
                result.not_yet = Some(not_yet(
                    &step.id,
                    &step.state,
                    step.started,
                    step.ended,
                    Utc::now(),
                ));
            }
        }
        self.fetch_container_logs(&mut result).await?;

        let reason_mentions_bootstrap = result
            .cluster_reason
            .as_deref()
            .is_some_and(|r| r.to_ascii_lowercase().contains("bootstrap"));
        let step_may_not_have_run = result.step.as_ref().is_none_or(|s| {
            result.not_yet.is_some() || s.state == "CANCELLED" || s.state == "FAILED"
        });
        if reason_mentions_bootstrap || step_may_not_have_run {
            self.fetch_bootstrap_logs(&mut result).await?;
        }
        Ok(result)
    }

    /// The cluster's LogUri, as a prefix.
    pub async fn log_prefix(&self, cluster_id: &str) -> Result<LogPrefix, LogsError> {
        let described = self
            .emr
            .describe_cluster()
            .cluster_id(cluster_id)
            .send()
            .await
            .map_err(|error| describe_cluster_error(cluster_id, &error))?;
        let log_uri = described
            .cluster()
            .and_then(|c| c.log_uri())
            .filter(|uri| !uri.is_empty())
            .ok_or_else(|| LogsError::NoLogUri {
                cluster: cluster_id.to_string(),
            })?;
        LogPrefix::parse(log_uri).ok_or_else(|| LogsError::BadLogUri {
            cluster: cluster_id.to_string(),
            log_uri: log_uri.to_string(),
        })
    }

    /// One of the step's own logs (`stderr`, `stdout`, …) as EMR last copied it: the decoded
    /// tail's bytes and the decoded length; `None` while it is not on S3. EMR names it
    /// `<file>.gz`; a plain `<file>` is read too.
    pub async fn step_log_bytes(
        &self,
        prefix: &LogPrefix,
        cluster_id: &str,
        step_id: &str,
        file: &str,
    ) -> Result<Option<(String, Vec<u8>, u64)>, LogsError> {
        for name in [
            format!("steps/{step_id}/{file}.gz"),
            format!("steps/{step_id}/{file}"),
        ] {
            let key = prefix.key(cluster_id, &name);
            if let Some(decoder) = self.get_decoded(prefix, &key).await? {
                let uri = prefix.uri(&key);
                let (bytes, total) = decoder.finish_bytes().map_err(|error| LogsError::Aws {
                    what: format!("decompressing {uri}"),
                    detail: error.to_string(),
                })?;
                return Ok(Some((name, bytes, total)));
            }
        }
        Ok(None)
    }

    /// The step as DescribeStep shows it now; the last failed, else the last, when `step_id`
    /// is `None` (`None` when the cluster has no steps).
    pub async fn step(
        &self,
        cluster_id: &str,
        step_id: Option<&str>,
    ) -> Result<Option<StepInfo>, LogsError> {
        let step_id = match step_id {
            Some(id) => id.to_string(),
            None => {
                let mut steps = Vec::new();
                let mut pages = self
                    .emr
                    .list_steps()
                    .cluster_id(cluster_id)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|error| LogsError::Aws {
                        what: format!("ListSteps {cluster_id}"),
                        detail: DisplayErrorContext(&error).to_string(),
                    })?;
                    for summary in page.steps() {
                        let state = summary
                            .status()
                            .and_then(|s| s.state())
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default();
                        steps.push((summary.id().unwrap_or_default().to_string(), state));
                    }
                }
                match choose_step(&steps) {
                    Some(id) => id.to_string(),
                    None => return Ok(None),
                }
            }
        };
        let described = self
            .emr
            .describe_step()
            .cluster_id(cluster_id)
            .step_id(&step_id)
            .send()
            .await
            .map_err(|error| {
                let code = error.code().unwrap_or_default();
                if code == "InvalidRequestException" || code == "ResourceNotFoundException" {
                    LogsError::StepNotFound {
                        cluster: cluster_id.to_string(),
                        step: step_id.clone(),
                    }
                } else {
                    LogsError::Aws {
                        what: format!("DescribeStep {step_id} on {cluster_id}"),
                        detail: DisplayErrorContext(&error).to_string(),
                    }
                }
            })?;
        let step = described
            .step()
            .filter(|s| s.id() == Some(step_id.as_str()))
            .ok_or_else(|| LogsError::StepNotFound {
                cluster: cluster_id.to_string(),
                step: step_id.clone(),
            })?;
        let status = step.status();
        let timeline = status.and_then(|s| s.timeline());
        let failure = status.and_then(|s| s.failure_details()).and_then(|d| {
            let parts: Vec<String> = [
                d.reason().map(|r| format!("reason: {r}")),
                d.message().map(|m| format!("message: {m}")),
                d.log_file().map(|l| format!("log file: {l}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        });
        Ok(Some(StepInfo {
            id: step_id.clone(),
            name: step.name().unwrap_or_default().to_string(),
            state: status
                .and_then(|s| s.state())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            args: step.config().map(|c| c.args().to_vec()).unwrap_or_default(),
            started: timeline
                .and_then(|t| t.start_date_time())
                .and_then(from_smithy),
            ended: timeline
                .and_then(|t| t.end_date_time())
                .and_then(from_smithy),
            failure,
        }))
    }

    /// The worker nodes' CPU, from the core (else task) instance group's type; best effort.
    async fn node_arch(&self, cluster_id: &str) -> Option<Arch> {
        let groups = self
            .emr
            .list_instance_groups()
            .cluster_id(cluster_id)
            .send()
            .await
            .ok()?;
        let groups = groups.instance_groups();
        let pick = |kind: &str| {
            groups
                .iter()
                .find(|g| g.instance_group_type().map(|t| t.as_str()) == Some(kind))
        };
        let group = pick("CORE")
            .or_else(|| pick("TASK"))
            .or_else(|| pick("MASTER"))?;
        catalog::lookup(group.instance_type()?).map(|t| t.arch)
    }

    /// Lists keys under `prefix` (at most `max_pages` pages of 1,000).
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        max_pages: usize,
    ) -> Result<(Vec<String>, Vec<String>), LogsError> {
        let mut keys = Vec::new();
        let mut folders = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..max_pages {
            let mut request = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.clone());
            if let Some(delimiter) = delimiter {
                request = request.delimiter(delimiter);
            }
            let page = request.send().await.map_err(|error| {
                s3_error(
                    &format!("s3://{bucket}/{prefix}"),
                    "ListObjectsV2",
                    error.code(),
                    DisplayErrorContext(&error).to_string(),
                )
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok((keys, folders))
    }

    /// One log object's text, or None when it does not exist.
    async fn get_log(
        &self,
        prefix: &LogPrefix,
        key: &str,
        name: &str,
    ) -> Result<Option<FetchedLog>, LogsError> {
        let uri = prefix.uri(key);
        let Some(decoder) = self.get_decoded(prefix, key).await? else {
            return Ok(None);
        };
        let (text, truncated) = decoder.finish().map_err(|error| LogsError::Aws {
            what: format!("decompressing {uri}"),
            detail: error.to_string(),
        })?;
        Ok(Some(FetchedLog {
            name: name.to_string(),
            uri,
            text,
            truncated,
        }))
    }

    /// One log object, read through a decoder (its tail kept); None when it does not exist.
    async fn get_decoded(
        &self,
        prefix: &LogPrefix,
        key: &str,
    ) -> Result<Option<LogDecoder>, LogsError> {
        let uri = prefix.uri(key);
        let output = match self
            .s3
            .get_object()
            .bucket(&prefix.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                let missing = matches!(
                    error.as_service_error(),
                    Some(aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(_))
                ) || error.code() == Some("NoSuchKey");
                if missing {
                    return Ok(None);
                }
                return Err(s3_error(
                    &uri,
                    "GetObject",
                    error.code(),
                    DisplayErrorContext(&error).to_string(),
                ));
            }
        };
        let mut body = output.body;
        let mut decoder = LogDecoder::new(MAX_TAIL_BYTES);
        while let Some(chunk) = body.try_next().await.map_err(|error| LogsError::Aws {
            what: format!("reading {uri}"),
            detail: error.to_string(),
        })? {
            decoder.push(&chunk).map_err(|error| LogsError::Aws {
                what: format!("decompressing {uri}"),
                detail: format!("{error} (not gzip, and not plain text either?)"),
            })?;
        }
        Ok(Some(decoder))
    }

    async fn fetch_container_logs(&self, result: &mut ClusterLogs) -> Result<(), LogsError> {
        let mut applications: Vec<String> = Vec::new();
        for log in &result.logs {
            for found in application_ids(&log.text) {
                if !applications.iter().any(|a| a == found) {
                    applications.push(found.to_string());
                }
            }
        }
        let cluster_id = result.cluster_id.clone();
        let prefix = result.log_prefix.clone();
        let mut keys = Vec::new();
        for app in applications.iter().take(4) {
            let folder = prefix.key(&cluster_id, &format!("containers/{app}/"));
            keys.extend(self.list(&prefix.bucket, &folder, None, 5).await?.0);
        }
        if keys.is_empty() {
            // The step logs name no application (or none of theirs arrived): take what is there.
            let folder = prefix.key(&cluster_id, "containers/");
            keys = self.list(&prefix.bucket, &folder, None, 5).await?.0;
        }
        let container_root = prefix.key(&cluster_id, "");
        let mut wanted: Vec<String> = keys
            .into_iter()
            .filter(|key| {
                let file = key.rsplit('/').next().unwrap_or_default();
                matches!(file, "stderr.gz" | "stdout.gz" | "stderr" | "stdout")
                    && key.contains("/container_")
            })
            .collect();
        // The driver (the application's first container) first, stderr before stdout.
        wanted.sort_by_key(|key| {
            let driver = !key.contains("_000001/");
            let stdout = key.ends_with("stdout.gz") || key.ends_with("stdout");
            (
                driver,
                key.rsplit_once('/')
                    .map(|(folder, _)| folder)
                    .unwrap_or_default()
                    .to_string(),
                stdout,
            )
        });
        if wanted.len() > MAX_CONTAINER_LOGS {
            result.notes.push(format!(
                "fetched {MAX_CONTAINER_LOGS} of {} container logs (the driver's first); the rest are under {}containers/",
                wanted.len(),
                prefix.uri(&container_root)
            ));
            wanted.truncate(MAX_CONTAINER_LOGS);
        }
        for key in wanted {
            let name = key
                .strip_prefix(&container_root)
                .unwrap_or(&key)
                .to_string();
            if let Some(log) = self.get_log(&prefix, &key, &name).await? {
                result.logs.push(log);
            }
        }
        Ok(())
    }

    async fn fetch_bootstrap_logs(&self, result: &mut ClusterLogs) -> Result<(), LogsError> {
        let cluster_id = result.cluster_id.clone();
        let prefix = result.log_prefix.clone();
        let node_root = prefix.key(&cluster_id, "node/");
        let (_, mut nodes) = self.list(&prefix.bucket, &node_root, Some("/"), 1).await?;
        // The node the cluster's status names first.
        let named = result.cluster_reason.as_deref().and_then(|reason| {
            regex_lite::Regex::new(r"\b(i-[0-9a-f]{8,17})\b")
                .expect("valid regex")
                .captures(reason)
                .map(|c| c[1].to_string())
        });
        nodes.sort_by_key(|folder| {
            named
                .as_deref()
                .map(|n| !folder.contains(n))
                .unwrap_or(true)
        });
        if nodes.len() > MAX_BOOTSTRAP_NODES {
            result.notes.push(format!(
                "looked at the bootstrap logs of {MAX_BOOTSTRAP_NODES} of {} nodes",
                nodes.len()
            ));
            nodes.truncate(MAX_BOOTSTRAP_NODES);
        }
        let cluster_root = prefix.key(&cluster_id, "");
        for node in nodes {
            let folder = format!("{node}bootstrap-actions/");
            let (keys, _) = self.list(&prefix.bucket, &folder, None, 1).await?;
            for key in keys {
                let file = key.rsplit('/').next().unwrap_or_default();
                if !matches!(file, "stderr.gz" | "stderr" | "stdout.gz" | "stdout") {
                    continue;
                }
                let name = key.strip_prefix(&cluster_root).unwrap_or(&key).to_string();
                if let Some(log) = self.get_log(&prefix, &key, &name).await? {
                    if !log.text.trim().is_empty() {
                        result.logs.push(log);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The YARN application ids (`application_<cluster-timestamp>_<n>`) a log mentions, in order.
fn application_ids(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("application_")
        .filter_map(move |(start, _)| {
            let rest = &text[start + "application_".len()..];
            let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let first = digits(rest);
            let after = rest[first..].strip_prefix('_')?;
            let second = digits(after);
            (first > 0 && second > 0)
                .then(|| &text[start..start + "application_".len() + first + 1 + second])
        })
}

fn s3_error(uri: &str, operation: &str, code: Option<&str>, detail: String) -> LogsError {
    match code {
        Some("AccessDenied") | Some("Forbidden") | Some("AllAccessDisabled") => {
            LogsError::AccessDenied {
                uri: uri.to_string(),
                detail: format!("{operation}: {}", code.unwrap_or_default()),
            }
        }
        Some("NoSuchBucket") => LogsError::Aws {
            what: format!("{operation} {uri}"),
            detail: "the cluster's log bucket does not exist (deleted, or another account's)"
                .to_string(),
        },
        _ => LogsError::Aws {
            what: format!("{operation} {uri}"),
            detail,
        },
    }
}

/// DescribeCluster's failure: an unknown cluster, or anything else with its whole cause.
fn describe_cluster_error<R: std::fmt::Debug>(
    cluster_id: &str,
    error: &aws_sdk_emr::error::SdkError<
        aws_sdk_emr::operation::describe_cluster::DescribeClusterError,
        R,
    >,
) -> LogsError {
    let code = error.code().unwrap_or_default().to_string();
    if code == "InvalidRequestException" || code == "NoSuchCluster" {
        LogsError::ClusterNotFound {
            cluster: cluster_id.to_string(),
            detail: error.message().unwrap_or(&code).to_string(),
        }
    } else {
        LogsError::Aws {
            what: format!("DescribeCluster {cluster_id}"),
            detail: DisplayErrorContext(error).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn application_ids_in_a_log() {
        let text = "Submitted application application_1732168000000_0001\n\
            tracking URL: http://ip:20888/proxy/application_1732168000000_0001/ application_x \
            application_17_ application_1732168000000_0012";
        let ids: Vec<&str> = application_ids(text).collect();
        assert_eq!(
            ids,
            vec![
                "application_1732168000000_0001",
                "application_1732168000000_0001",
                "application_1732168000000_0012"
            ]
        );
    }

    #[test]
    fn log_uri_forms() {
        let parsed = LogPrefix::parse("s3n://example-ads-data/emr-logs/").unwrap();
        assert_eq!(parsed.bucket, "example-ads-data");
        assert_eq!(parsed.prefix, "emr-logs/");
        assert_eq!(
            parsed.key("j-1", "steps/s-1/stderr.gz"),
            "emr-logs/j-1/steps/s-1/stderr.gz"
        );
        assert_eq!(parsed.to_string(), "s3://example-ads-data/emr-logs/");
        assert_eq!(LogPrefix::parse("s3://b").unwrap().prefix, "");
        assert_eq!(LogPrefix::parse("s3://b/logs").unwrap().prefix, "logs/");
        assert!(LogPrefix::parse("hdfs:///logs").is_none());
        assert!(LogPrefix::parse("s3:///logs").is_none());
    }

    #[test]
    fn the_last_failed_step_else_the_last() {
        let steps = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let newest_first = steps(&[("s-3", "PENDING"), ("s-2", "FAILED"), ("s-1", "FAILED")]);
        assert_eq!(choose_step(&newest_first), Some("s-2"));
        let none_failed = steps(&[("s-3", "RUNNING"), ("s-2", "COMPLETED")]);
        assert_eq!(choose_step(&none_failed), Some("s-3"));
        assert_eq!(choose_step(&[]), None);
    }

    #[test]
    fn when_to_look_again() {
        let ended = Utc.with_ymd_and_hms(2026, 11, 21, 6, 14, 30).unwrap();
        let soon = not_yet(
            "s-1",
            "FAILED",
            Some(ended),
            Some(ended),
            ended + Duration::minutes(1),
        );
        assert_eq!(soon.look_again_after, Some(ended + Duration::minutes(5)));
        assert!(
            soon.message
                .contains("ended at 06:14 UTC; look again after 06:20 UTC"),
            "{}",
            soon.message
        );

        let late = not_yet(
            "s-1",
            "FAILED",
            Some(ended),
            Some(ended),
            ended + Duration::minutes(30),
        );
        assert!(
            late.message.contains("30 minutes after it ended"),
            "{}",
            late.message
        );
        assert!(
            late.message.contains("look again after 06:50 UTC"),
            "{}",
            late.message
        );

        let running = not_yet("s-1", "RUNNING", Some(ended), None, ended);
        assert!(running.message.contains("(RUNNING)"));
        assert!(
            running.message.contains("after 06:20 UTC"),
            "{}",
            running.message
        );

        let cancelled = not_yet("s-1", "CANCELLED", None, None, ended);
        assert_eq!(cancelled.look_again_after, None);
        assert!(cancelled.message.contains("cancelled before it started"));
    }

    #[test]
    fn decoder_reads_gzip_in_chunks_and_keeps_the_tail() {
        use flate2::write::GzEncoder;
        let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        let gz = encoder.finish().unwrap();

        let mut decoder = LogDecoder::new(1 << 20);
        for chunk in gz.chunks(1).take(1).chain(gz[1..].chunks(777)) {
            decoder.push(chunk).unwrap();
        }
        assert_eq!(decoder.finish().unwrap(), (text.clone(), false));

        let mut decoder = LogDecoder::new(1000);
        decoder.push(&gz).unwrap();
        let (tail, truncated) = decoder.finish().unwrap();
        assert!(truncated);
        assert!(tail.len() <= 1000);
        assert!(
            tail.starts_with("line "),
            "starts at a whole line: {tail:?}"
        );
        assert!(tail.ends_with("line 19999\n"));
    }

    #[test]
    fn decoder_tolerates_plain_text() {
        let mut decoder = LogDecoder::new(1 << 20);
        decoder.push(b"p").unwrap();
        decoder.push(b"lain log\n").unwrap();
        assert_eq!(
            decoder.finish().unwrap(),
            ("plain log\n".to_string(), false)
        );
        let decoder = LogDecoder::new(10);
        assert_eq!(decoder.finish().unwrap(), (String::new(), false));
    }

    #[test]
    fn following_a_log_prints_each_whole_line_once() {
        let mut cursor = FollowCursor::default();
        let first = cursor.advance(b"one\ntw", 6, false);
        assert_eq!(first.bytes, b"one\n");
        // The same object read again: nothing new.
        assert_eq!(cursor.advance(b"one\ntw", 6, false).bytes, b"");
        let grown = b"one\ntwo\nthree\nfo";
        assert_eq!(
            cursor.advance(grown, grown.len() as u64, false).bytes,
            b"two\nthree\n"
        );
        // The step ended: the last, unfinished line too.
        let last = cursor.advance(grown, grown.len() as u64, true);
        assert_eq!(last.bytes, b"fo");
        assert_eq!(last.skipped, 0);
    }

    #[test]
    fn following_a_log_says_what_it_skipped_and_when_it_started_over() {
        let mut cursor = FollowCursor::default();
        cursor.advance(b"a\n", 2, false);
        // 100 bytes arrived, of which the read kept the last 6.
        let jumped = cursor.advance(b"xx\nyy\n", 102, false);
        assert_eq!(jumped.bytes, b"xx\nyy\n");
        assert_eq!(jumped.skipped, 94);
        // A shorter log: replaced, printed from its start.
        let replaced = cursor.advance(b"new\n", 4, false);
        assert!(replaced.restarted);
        assert_eq!(replaced.bytes, b"new\n");
    }

    #[test]
    fn the_decoder_counts_every_byte_of_the_log() {
        let text = "0123456789\n".repeat(10);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        let mut decoder = LogDecoder::new(16);
        decoder.push(&encoder.finish().unwrap()).unwrap();
        let (tail, total) = decoder.finish_bytes().unwrap();
        assert_eq!(total, 110);
        assert_eq!(tail, &text.as_bytes()[94..]);
    }
}
