//! `emrship logs <cluster> [--step ID]`: a step's log tails from S3 and why it failed.

use serde_json::json;

use super::{CliError, CommandResult, ExitStatus, LogsArgs, OutputFormat, Printer};
use crate::aws::emr_logs::{ClusterLogs, FetchedLog, FollowCursor, LogFetcher};
use crate::diagnose::{self, Diagnosis};

pub fn run(args: LogsArgs, out: Printer) -> CommandResult {
    super::block_on(run_async(args, out))
}

async fn run_async(args: LogsArgs, out: Printer) -> CommandResult {
    let sdk = crate::aws::sdk::load(&args.aws.options(None)).await;
    if args.follow {
        return follow(&args, &sdk, out).await;
    }
    let fetched = LogFetcher::new(&sdk)
        .fetch(&args.cluster, args.step.as_deref())
        .await
        .map_err(|error| CliError::failure(error.to_string()))?;
    if fetched.step.is_none() && fetched.logs.is_empty() && fetched.cluster_reason.is_none() {
        return Err(CliError::failure(format!(
            "cluster {} has no steps and no logs under {}{}/",
            fetched.cluster_id, fetched.log_prefix, fetched.cluster_id
        )));
    }
    let diagnosis = (!fetched.logs.is_empty() || fetched.cluster_reason.is_some())
        .then(|| diagnose::diagnose(&fetched.log_texts(), &fetched.step_context()));

    match args.stdout.format {
        OutputFormat::Json => out.json(&json_document(&fetched, diagnosis.as_ref(), args.lines))?,
        OutputFormat::Text => {
            out.data_text(&text_document(&fetched, diagnosis.as_ref(), args.lines))?
        }
    }
    for note in &fetched.notes {
        out.info(&format!("note: {note}"));
    }
    if fetched.logs.is_empty() {
        // Nothing to show yet: a script should try again later.
        let message = match &fetched.not_yet {
            Some(not_yet) => not_yet.message.clone(),
            None => "no logs yet".to_string(),
        };
        return Err(CliError::failure(message));
    }
    if let Some(not_yet) = &fetched.not_yet {
        out.info(&not_yet.message);
    }
    Ok(ExitStatus::Success)
}

/// A step's own logs, followed: what EMR copied to S3 since the last look, whole lines, until
/// the step ends. Exit status: success when it completed, run-failed otherwise.
async fn follow(args: &LogsArgs, sdk: &aws_config::SdkConfig, out: Printer) -> CommandResult {
    if args.stdout.format == OutputFormat::Json {
        return Err(CliError::invalid(
            "--follow prints the log text as it arrives; it has no JSON form",
        )
        .with_hint("drop --format json, or leave out --follow for one JSON document"));
    }
    let poll = super::emr::watch::parse_wait_duration(&args.poll)
        .map_err(|e| CliError::invalid(format!("--poll: {e}")))?;
    // Faster than this only loads S3 and EMR (and gets throttled).
    let poll = poll.max(std::time::Duration::from_millis(100));
    let fetcher = LogFetcher::new(sdk);
    let failure = |error: crate::aws::emr_logs::LogsError| CliError::failure(error.to_string());
    let prefix = fetcher.log_prefix(&args.cluster).await.map_err(failure)?;
    let Some(first) = fetcher
        .step(&args.cluster, args.step.as_deref())
        .await
        .map_err(failure)?
    else {
        return Err(CliError::failure(format!(
            "cluster {} has no steps to follow",
            args.cluster
        )));
    };
    let step_id = first.id.clone();
    out.info(&format!(
        "following step {step_id} `{}` ({}): its stderr and stdout under {}{}/steps/{step_id}/; \
         EMR copies them to S3 about every {} minutes",
        first.name,
        first.state,
        prefix,
        args.cluster,
        crate::aws::emr_logs::LOG_PUSH_INTERVAL_MINUTES
    ));
    let mut cursors: [(&str, FollowCursor); 2] = [
        ("stderr", FollowCursor::default()),
        ("stdout", FollowCursor::default()),
    ];
    let mut shown_header: Option<&str> = None;
    let mut step = first;
    loop {
        let ended = step.ended.is_some() || STEP_ENDED_STATES.contains(&step.state.as_str());
        for (file, cursor) in cursors.iter_mut() {
            let Some((name, tail, total)) = fetcher
                .step_log_bytes(&prefix, &args.cluster, &step_id, file)
                .await
                .map_err(failure)?
            else {
                continue;
            };
            let new = cursor.advance(&tail, total, ended);
            if new.restarted {
                out.info(&format!(
                    "{name} was replaced on S3; printing it from its start"
                ));
            }
            if new.skipped > 0 {
                out.info(&format!(
                    "{name}: {} bytes arrived at once; skipped all but the last {} MiB",
                    new.skipped + new.bytes.len() as u64,
                    crate::aws::emr_logs::MAX_TAIL_BYTES >> 20
                ));
            }
            if new.bytes.is_empty() {
                continue;
            }
            if shown_header != Some(*file) {
                out.data(&format!("==> {name} <=="))?;
                shown_header = Some(*file);
            }
            out.data_text(&String::from_utf8_lossy(&new.bytes))?;
        }
        if ended {
            out.info(&format!(
                "step {step_id} ended {}; EMR copies its last lines to S3 within about {} \
                 minutes of that: `emrship logs {} --step {step_id}` shows them then",
                step.state,
                crate::aws::emr_logs::LOG_PUSH_INTERVAL_MINUTES,
                args.cluster
            ));
            return Ok(if step.state == "COMPLETED" {
                ExitStatus::Success
            } else {
                ExitStatus::RunFailed
            });
        }
        tokio::time::sleep(poll).await;
        step = fetcher
            .step(&args.cluster, Some(&step_id))
            .await
            .map_err(failure)?
            .ok_or_else(|| CliError::failure(format!("step {step_id} is gone")))?;
    }
}

/// Step states after which a step writes nothing more.
const STEP_ENDED_STATES: &[&str] = &["COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"];

/// The last `lines` lines of a log, and the number of its first line in the fetched text.
fn tail(log: &FetchedLog, lines: usize) -> (usize, Vec<&str>) {
    let all: Vec<&str> = log.text.lines().collect();
    let start = all.len().saturating_sub(lines);
    (start + 1, all[start..].to_vec())
}

fn text_document(fetched: &ClusterLogs, diagnosis: Option<&Diagnosis>, lines: usize) -> String {
    let mut out = format!("Cluster {} ({})", fetched.cluster_id, fetched.cluster_state);
    if let Some(reason) = &fetched.cluster_reason {
        out.push_str(&format!(": {reason}"));
    }
    out.push('\n');
    if let Some(step) = &fetched.step {
        out.push_str(&format!(
            "Step {} {:?}: {}\n",
            step.id, step.name, step.state
        ));
        if let Some(failure) = &step.failure {
            out.push_str(&format!("  {failure}\n"));
        }
    }
    out.push_str(&format!(
        "Logs under {}{}/\n",
        fetched.log_prefix, fetched.cluster_id
    ));
    for log in &fetched.logs {
        let (first, shown) = tail(log, lines);
        let total = first + shown.len() - 1;
        let of = if log.truncated { " of its tail" } else { "" };
        out.push_str(&format!(
            "\n==> {} (lines {first}–{total}{of}) <==\n",
            log.name
        ));
        for line in shown {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(diagnosis) = diagnosis {
        out.push('\n');
        out.push_str(&diagnosis.render_text());
    }
    out
}

fn json_document(
    fetched: &ClusterLogs,
    diagnosis: Option<&Diagnosis>,
    lines: usize,
) -> serde_json::Value {
    let logs: Vec<serde_json::Value> = fetched
        .logs
        .iter()
        .map(|log| {
            let (first, shown) = tail(log, lines);
            json!({
                "name": log.name,
                "uri": log.uri,
                "truncated": log.truncated,
                "tail_first_line": first,
                "tail": shown.join("\n"),
            })
        })
        .collect();
    json!({
        "cluster": fetched.cluster_id,
        "cluster_state": fetched.cluster_state,
        "cluster_reason": fetched.cluster_reason,
        "log_uri": fetched.log_prefix.to_string(),
        "step": fetched.step.as_ref().map(|s| s.id.clone()),
        "step_name": fetched.step.as_ref().map(|s| s.name.clone()),
        "step_state": fetched.step.as_ref().map(|s| s.state.clone()),
        "step_failure": fetched.step.as_ref().and_then(|s| s.failure.clone()),
        "logs": logs,
        "diagnosis": diagnosis,
        "not_yet": fetched.not_yet.as_ref().map(|n| json!({
            "message": n.message,
            "look_again_after": n.look_again_after.map(|t| t.to_rfc3339()),
        })),
        "notes": fetched.notes,
    })
}

/// Explains why `step_id` on `cluster_id` failed, from its logs on S3, printing to stderr.
/// `--wait` calls this when a step fails. Never fails: when the logs are not there yet it says
/// when to look again, and any other problem becomes one error line.
pub async fn print_failure_diagnosis(
    sdk: &aws_config::SdkConfig,
    cluster_id: &str,
    step_id: &str,
    out: Printer,
) {
    out.info_text(&failure_diagnosis(sdk, cluster_id, step_id).await);
}

/// What [`print_failure_diagnosis`] prints.
async fn failure_diagnosis(sdk: &aws_config::SdkConfig, cluster_id: &str, step_id: &str) -> String {
    let again = format!("emrship logs {cluster_id} --step {step_id}");
    let fetched = match LogFetcher::new(sdk).fetch(cluster_id, Some(step_id)).await {
        Ok(fetched) => fetched,
        Err(error) => return format!("emrship: cannot explain step {step_id}: {error}\n"),
    };
    if fetched.logs.is_empty() && fetched.cluster_reason.is_none() {
        return match &fetched.not_yet {
            Some(not_yet) => format!("emrship: {}: `{again}`\n", not_yet.message),
            None => format!("emrship: no logs for step {step_id} yet: `{again}` later\n"),
        };
    }
    let diagnosis = diagnose::diagnose(&fetched.log_texts(), &fetched.step_context());
    let mut out = format!("Step {step_id} on {cluster_id} failed.\n");
    out.push_str(&diagnosis.render_text());
    match &fetched.not_yet {
        Some(not_yet) => out.push_str(&format!("{} (`{again}`)\n", not_yet.message)),
        None => out.push_str(&format!("Full tails: `{again}`\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failure_diagnosis_degrades_to_one_error_line() {
        // Nothing listens on this loopback port, and no retries: the fetch fails at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_emr::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        let text = failure_diagnosis(&sdk, "j-1ABC", "s-2DEF").await;
        assert!(
            text.starts_with("emrship: cannot explain step s-2DEF: DescribeCluster j-1ABC:"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
