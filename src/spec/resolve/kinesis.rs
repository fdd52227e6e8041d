//! Kinesis consumers: the `stream` command's arguments and a user's `job.kinesis`. Each names
//! one stream (read-only access) and one DynamoDB lease table; a Spark application that reads
//! with receivers must keep a core free beside them.

use super::*;

/// What a job's AWS names are built from: the spec's name, region and account (`*` when the
/// spec gives none).
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner<'a> {
    pub name: &'a str,
    pub region: &'a str,
    pub account: &'a str,
}

/// The starting positions the `stream` command accepts.
const POSITIONS: &[&str] = &["trim_horizon", "latest"];

/// The longest window and lateness: an hour (the rollup's granularity).
const HOUR_SECONDS: u64 = 3600;

/// A Kinesis stream name: 1 to 128 of `[a-zA-Z0-9_.-]`.
fn is_stream_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Resolver<'_> {
    /// A stream name or ARN → (ARN, name). A name takes the spec's region and account.
    pub(super) fn kinesis_stream(
        &mut self,
        value: &str,
        at: &SpecPath,
        owner: Owner<'_>,
    ) -> Option<(String, String)> {
        let example = "write a stream name such as `page-events`, or its ARN \
                       `arn:aws:kinesis:us-east-1:123456789012:stream/page-events`";
        if !value.starts_with("arn:") {
            if is_stream_name(value) {
                let arn = format!(
                    "arn:aws:kinesis:{}:{}:stream/{value}",
                    owner.region, owner.account
                );
                return Some((arn, value.to_string()));
            }
            self.error(
                "spec::kinesis-stream",
                at,
                format!("`{value}` is not a Kinesis stream name"),
                format!("a stream name is 1 to 128 letters, digits, `_`, `.` and `-`; {example}"),
            );
            return None;
        }
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let name = parts.get(5).and_then(|r| r.strip_prefix("stream/"));
        let valid = parts.len() == 6
            && parts[1].starts_with("aws")
            && parts[2] == "kinesis"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && name.is_some_and(is_stream_name);
        let Some(name) = name.filter(|_| valid) else {
            self.error(
                "spec::kinesis-stream",
                at,
                format!("`{value}` is not a Kinesis stream ARN"),
                example,
            );
            return None;
        };
        if parts[3] != owner.region && owner.region != "*" {
            self.error(
                "spec::kinesis-stream-region",
                at,
                format!(
                    "the stream is in {} but the spec's region is {}",
                    parts[3], owner.region
                ),
                "the consumer reads Kinesis and keeps its leases in the spec's region: run the \
                 spec in the stream's region",
            );
            return None;
        }
        Some((value.to_string(), name.to_string()))
    }

    /// A DynamoDB table name: 3 to 255 of `[a-zA-Z0-9_.-]`.
    pub(super) fn check_lease_table(&mut self, value: &str, at: &SpecPath) -> bool {
        let valid = (3..=255).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            self.error(
                "spec::lease-table",
                at,
                format!("`{value}` is not a DynamoDB table name"),
                "a table name is 3 to 255 letters, digits, `_`, `.` and `-`, e.g. `page-events-leases`",
            );
        }
        valid
    }

    pub(super) fn stream_output_not_s3(&mut self, value: &str, at: &SpecPath) {
        self.error(
            "spec::stream-output",
            at,
            format!("`stream` writes its windows to S3, not to `{value}`"),
            "the stream writes each window as objects under an S3 prefix: give one, e.g. \
             `output: s3://my-bucket/windows/`",
        );
    }

    /// `window`, `lateness` and `position` of the `stream` command.
    pub(super) fn check_stream_arg(&mut self, key: &str, value: &str, at: &SpecPath) {
        match key {
            "window" => {
                let valid = parse_duration_seconds(value).map(|seconds| {
                    (60..=HOUR_SECONDS).contains(&seconds) && HOUR_SECONDS.is_multiple_of(seconds)
                });
                if let Err(why) = &valid {
                    self.error(
                        "spec::stream-window",
                        at,
                        format!("`{value}` is not a duration"),
                        why.clone(),
                    );
                } else if valid == Ok(false) {
                    self.error(
                        "spec::stream-window",
                        at,
                        format!("a window of `{value}` does not divide an hour into equal windows of 1 minute or more"),
                        "use 1 minute to 1 hour that divides an hour evenly: `1m`, `5m`, `10m`, `15m`, `20m`, `30m` or `1h`",
                    );
                }
            }
            "lateness" => match parse_duration_seconds(value) {
                Err(why) => self.error(
                    "spec::stream-lateness",
                    at,
                    format!("`{value}` is not a duration"),
                    why,
                ),
                Ok(seconds) if seconds > HOUR_SECONDS => self.error(
                    "spec::stream-lateness",
                    at,
                    format!("a lateness of `{value}` is more than an hour"),
                    "events later than this are dropped from their window; use at most `1h`, e.g. `1m`",
                ),
                Ok(_) => {}
            },
            "position" if !POSITIONS.contains(&value) => {
                let help = match did_you_mean(value, POSITIONS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "use `trim_horizon` (the oldest record kept) or `latest` (only new records)".to_string(),
                };
                self.error(
                    "spec::stream-position",
                    at,
                    format!("unknown starting position `{value}`"),
                    help,
                );
            }
            _ => {}
        }
    }

    /// `job.kinesis` of a user's application.
    pub(super) fn app_kinesis(
        &mut self,
        raw: RawKinesis,
        owner: Owner<'_>,
        spark_app: bool,
    ) -> Option<KinesisAccess> {
        let at = path("job.kinesis");
        let stream = self.required(raw.stream, &at.key("stream"), "stream: page-events")?;
        let stream = self.kinesis_stream(&stream, &at.key("stream"), owner);
        // The KCL's lease table is named after the application; emrship's default application
        // name is the spec's name.
        let lease_table = match raw.lease_table {
            Some(table) => self
                .check_lease_table(&table, &at.key("lease_table"))
                .then_some(table),
            None => Some(owner.name.to_string()),
        };
        for (key, value) in [("shards", raw.shards), ("receivers", raw.receivers)] {
            if value == Some(0) {
                self.error(
                    "spec::kinesis-count",
                    &at.key(key),
                    format!("`job.kinesis.{key}` is 0"),
                    "a stream has at least one shard, and an application at least one receiver",
                );
            }
        }
        let receivers = match (raw.receivers, raw.shards) {
            (Some(n), _) => Some((n, at.key("receivers"))),
            (None, Some(n)) => Some((n, at.key("shards"))),
            (None, None) => None,
        };
        if spark_app {
            self.kinesis_receivers = receivers.filter(|(n, _)| *n > 0);
        }
        let (stream_arn, stream_name) = stream?;
        let lease_table = lease_table?;
        Some(KinesisAccess {
            stream_arn,
            stream_name,
            // The KCL publishes its metrics under the application name, the lease table's.
            metrics_namespace: Some(lease_table.clone()),
            lease_table,
        })
    }

    /// A receiver holds one executor core for as long as the application runs; Spark needs a
    /// core beyond them to process what they receive ("the number of cores allocated to the
    /// Spark Streaming application must be more than the number of receivers").
    pub(super) fn check_kinesis_receivers(&mut self, spark: &Spark) {
        let Some((receivers, at)) = self.kinesis_receivers.clone() else {
            return;
        };
        let Some(sizing) = &spark.sizing else {
            return;
        };
        let executors = if spark.dynamic_allocation {
            let minimum = spark
                .conf
                .get("spark.dynamicAllocation.minExecutors")
                .and_then(|n| n.parse::<u32>().ok());
            match minimum {
                Some(minimum) => minimum,
                None => {
                    self.warning(
                        "spec::kinesis-receivers-unchecked",
                        &at,
                        format!("{receivers} receivers could not be checked against the executor cores: with dynamic allocation the executor count is not known"),
                        "set `spark.conf.spark.dynamicAllocation.minExecutors` so that the minimum's cores exceed the receivers, or `dynamic_allocation: false`",
                    );
                    return;
                }
            }
        } else {
            sizing.executor_instances
        };
        let cores = executors * sizing.executor_cores;
        if receivers < cores {
            return;
        }
        let what = if receivers > cores {
            format!(
                "{cores} receivers run, {} wait for a core, and no core is left to process what they receive",
                receivers - cores
            )
        } else {
            "every core runs a receiver and none is left to process what they receive".to_string()
        };
        // The fewest cores per executor that leave at least one core beyond the receivers.
        let per_executor = receivers / executors.max(1) + 1;
        self.error(
            "spec::kinesis-receivers",
            &at,
            format!(
                "{receivers} Kinesis receivers need more than the {cores} executor cores ({executors} executors × {} cores): {what}",
                sizing.executor_cores
            ),
            format!(
                "Spark needs more executor cores than receivers: union the shards into fewer receivers (e.g. one per executor, `receivers: {executors}`), or run more executor cores (more than {receivers} in all, e.g. {per_executor} cores per executor)"
            ),
        );
    }
}
