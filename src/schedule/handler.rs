//! The scheduler Lambda's handler, as a plain async function (`emrship-lambda` is its thin
//! main; tests call it in-process against an emulator).
//!
//! Event → run date → plan template from S3 → `plan_for(date)` → guarded launch
//! ([`crate::aws::launch`]) → `{"cluster_id", "date", "run_key", "decision"}`. Two events:
//!
//! - EventBridge's scheduled event (`{"detail-type": "Scheduled Event", "time":
//!   "2026-11-21T06:00:00Z", …}`): the date is the event time in the schedule's time zone,
//!   minus the spec's `date` rule (`yesterday` = 1 day);
//! - a manual event `{"date": "YYYY-MM-DD"}` (a re-run from the console or `aws lambda invoke`).
//!
//! Every decision is one JSON line on stdout (CloudWatch Logs keeps one event per line):
//! `template` (what was read), `date` (which day and why), `guard` (what the run key already
//! has), `launch` (launched or skipped), or `error`.

use aws_config::SdkConfig;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::template::{run_date, PlanTemplate};
use crate::aws::emr::Emr;
use crate::aws::launch::{launch_guarded, Decision};
use crate::spec::s3::S3Uri;

/// The function's environment variable naming the plan template (`emrship schedule` sets it
/// to the plan's `schedule.plan_object`).
pub const PLAN_OBJECT_ENV: &str = "EMRSHIP_PLAN_OBJECT";

/// What the event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRequest {
    /// An EventBridge scheduled event fired at this time.
    Scheduled(DateTime<Utc>),
    /// `{"date": "YYYY-MM-DD"}`.
    Manual(NaiveDate),
}

/// Reads the event; the error says which two shapes are accepted.
pub fn parse_event(event: &Value) -> Result<RunRequest, String> {
    const SHAPES: &str = "the scheduler takes an EventBridge scheduled event (with `time`) or \
                          `{\"date\": \"YYYY-MM-DD\"}`";
    if let Some(date) = event.get("date") {
        let text = date
            .as_str()
            .ok_or_else(|| format!("`date` must be a string; {SHAPES}"))?;
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(RunRequest::Manual)
            .map_err(|e| format!("`date` `{text}` is not YYYY-MM-DD ({e}); {SHAPES}"));
    }
    if let Some(time) = event.get("time") {
        let text = time
            .as_str()
            .ok_or_else(|| format!("`time` must be a string; {SHAPES}"))?;
        return DateTime::parse_from_rfc3339(text)
            .map(|t| RunRequest::Scheduled(t.with_timezone(&Utc)))
            .map_err(|e| format!("`time` `{text}` is not an RFC 3339 time ({e}); {SHAPES}"));
    }
    Err(format!("the event has neither `date` nor `time`; {SHAPES}"))
}

/// What the handler runs with: the SDK configuration and where the template is.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    pub sdk: SdkConfig,
    /// `s3://bucket/key` of the plan template.
    pub plan_object: String,
    /// Path-style S3 addressing (an endpoint override, e.g. an emulator).
    pub path_style: bool,
}

/// Where decision lines go: stdout in the Lambda, a buffer in tests.
pub type LogLine<'a> = &'a (dyn Fn(Value) + Send + Sync);

/// Prints one decision line on stdout.
pub fn print_line(line: Value) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Handles one event; on failure the error (also logged as a line) names what failed and how
/// to fix it.
pub async fn handle(
    event: &Value,
    context: &HandlerContext,
    log: LogLine<'_>,
) -> Result<Value, String> {
    let result = run(event, context, log).await;
    if let Err(error) = &result {
        log(json!({ "decision": "error", "error": error }));
    }
    result
}

async fn run(event: &Value, context: &HandlerContext, log: LogLine<'_>) -> Result<Value, String> {
    let request = parse_event(event)?;
    let template = read_template(context).await?;
    log(json!({
        "decision": "template",
        "plan_object": context.plan_object,
        "name": template.name,
        "written_by": template.emrship_version,
        "read_by": env!("CARGO_PKG_VERSION"),
    }));
    let (date, why) = match request {
        RunRequest::Manual(date) => (date, json!({ "from": "manual event" })),
        RunRequest::Scheduled(time) => {
            let (timezone, days_back) = template
                .schedule
                .as_ref()
                .map_or(("UTC", 1), |s| (s.timezone.as_str(), s.days_back));
            (
                run_date(time, timezone, days_back),
                json!({
                    "from": "scheduled event",
                    "event_time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "timezone": timezone,
                    "days_back": days_back,
                }),
            )
        }
    };
    let mut line = json!({ "decision": "date", "date": date.format("%Y-%m-%d").to_string() });
    merge(&mut line, why);
    log(line);

    let (job, plan) = template.plan_for(date).map_err(|e| {
        format!(
            "the plan template at {} does not render for {date}:\n{e}",
            context.plan_object
        )
    })?;
    let config = context
        .sdk
        .to_builder()
        .region(aws_config::Region::new(job.region.clone()))
        .build();
    let emr = Emr::new(&config);
    let launch = launch_guarded(&emr, &job, &plan)
        .await
        .map_err(|e| e.with_hint())?;
    let mut line = json!({
        "decision": "guard",
        "run_key": launch.run_key,
        "found": match launch.decision {
            Decision::Launched => "no active or completed cluster",
            Decision::AlreadyActive => "an active cluster",
            Decision::AlreadyCompleted => "a completed cluster",
        },
    });
    if launch.decision != Decision::Launched {
        line["cluster_id"] = json!(launch.cluster_id);
    }
    if let Some(state) = &launch.state {
        line["state"] = json!(state);
    }
    if !launch.previous_attempts.is_empty() {
        line["previous_attempts"] = json!(launch.previous_attempts);
    }
    log(line);
    let mut line = json!({
        "decision": if launch.decision == Decision::Launched { "launched" } else { "skipped" },
        "outcome": launch.decision,
        "cluster_id": launch.cluster_id,
        "run_key": launch.run_key,
    });
    if let Some(duplicate) = &launch.terminated_duplicate {
        line["terminated_duplicate"] = json!(duplicate);
    }
    log(line);
    Ok(json!({
        "cluster_id": launch.cluster_id,
        "date": launch.date,
        "run_key": launch.run_key,
        "decision": launch.decision,
    }))
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// Reads and parses the template; every failure names the URI.
pub async fn read_template(context: &HandlerContext) -> Result<PlanTemplate, String> {
    let uri = &context.plan_object;
    let fix = format!(
        "store it with `emrship schedule <spec>`, or check the function's {PLAN_OBJECT_ENV} and \
         that its role may s3:GetObject it"
    );
    let parsed = S3Uri::parse(uri)
        .map_err(|e| format!("{PLAN_OBJECT_ENV} `{uri}` is not an S3 URI: {e}"))?;
    let s3 = crate::aws::s3::client(&context.sdk, context.path_style);
    let object = s3
        .get_object()
        .bucket(&parsed.bucket)
        .key(&parsed.key)
        .send()
        .await
        .map_err(|e| {
            let e = crate::aws::error::AwsError::from_sdk("GetObject", e);
            format!("cannot read the plan template at {uri}: {e}; {fix}")
        })?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| format!("cannot read the plan template at {uri}: {e}; {fix}"))?
        .into_bytes();
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("the plan template at {uri} is not UTF-8 text; {fix}"))?;
    PlanTemplate::parse(text, uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        assert_eq!(
            parse_event(&json!({"date": "2026-11-20"})),
            Ok(RunRequest::Manual(
                NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
            ))
        );
        let scheduled = json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-21T06:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/emrship-match-rate"],
            "detail": {}
        });
        assert_eq!(
            parse_event(&scheduled),
            Ok(RunRequest::Scheduled(
                "2026-11-21T06:00:00Z".parse::<DateTime<Utc>>().unwrap()
            ))
        );
        for (bad, needle) in [
            (json!({}), "neither"),
            (json!({"date": "20/11/2026"}), "not YYYY-MM-DD"),
            (json!({"time": "yesterday"}), "RFC 3339"),
        ] {
            let error = parse_event(&bad).unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
    }
}
