//! A bootstrap action failed, so the cluster never ran the step (EMR cancels the steps; they have
//! no logs). Evidence: the cluster's status message and the action's stderr from the node.

use super::{access, binary, mentions, regex, CauseKind, Diagnosis, LogText, StepContext};

pub(super) fn find(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let status = regex(
        r"(?i)bootstrap action (\d+) (?:returned a non-zero return code|failed|timed out)|failed attempting to download bootstrap action (\d+)|BOOTSTRAP_FAILURE",
    );
    let failure_line = regex(
        r"(?i)emrship bootstrap \([^)]*\):|\berror\b|fatal|failed|not found|denied|traceback|no such file|exec format",
    );
    let instance = regex(r"\b(i-[0-9a-f]{8,17})\b");
    let action_in_name = regex(r"node/(i-[0-9a-f]+)/bootstrap-actions/(\d+)/");

    let mut status_hit = None;
    for log in logs.iter().filter(|log| !log.is_bootstrap_log()) {
        for (number, line) in log.numbered() {
            if !mentions(line, &["ootstrap", "BOOTSTRAP"]) {
                continue;
            }
            if let Some(c) = status.captures(line) {
                let action = c
                    .get(1)
                    .or_else(|| c.get(2))
                    .map(|m| m.as_str().to_string());
                let node = instance.captures(line).map(|i| i[1].to_string());
                status_hit = Some((log.evidence(number, line), action, node));
            }
        }
    }

    let bootstrap_logs: Vec<LogText> = logs
        .iter()
        .filter(|log| log.is_bootstrap_log())
        .cloned()
        .collect();
    let mut failing: Vec<(&LogText, Vec<super::Evidence>)> = Vec::new();
    for log in &bootstrap_logs {
        if !log.name.contains("stderr") {
            continue;
        }
        let hits: Vec<_> = log
            .numbered()
            // `set -x` echoes every command: the trace of `fail …` is not the failure.
            .filter(|(_, line)| !line.starts_with('+') && failure_line.is_match(line))
            .map(|(number, line)| log.evidence(number, line))
            .collect();
        if !hits.is_empty() {
            failing.push((log, hits));
        }
    }
    if status_hit.is_none() && failing.is_empty() {
        return None;
    }
    // Without the cluster saying so, an error line in a bootstrap log only explains the failure
    // when the step never got to write logs of its own (a step that ran is past bootstrapping).
    let step_ran = logs.iter().any(|log| log.name.starts_with("steps/"));
    if status_hit.is_none() && step_ran {
        return None;
    }

    let (mut action, mut node) = status_hit
        .as_ref()
        .map(|(_, action, node)| (action.clone(), node.clone()))
        .unwrap_or((None, None));
    if let Some((log, _)) = failing.first() {
        if let Some(c) = action_in_name.captures(&log.name) {
            node = node.or_else(|| Some(c[1].to_string()));
            action = action.or_else(|| Some(c[2].to_string()));
        }
    }
    let mut diagnosis = Diagnosis::new(
        CauseKind::BootstrapAction,
        format!(
            "bootstrap action {}failed{}, so the cluster never ran the step",
            action.map(|a| format!("{a} ")).unwrap_or_default(),
            node.map(|n| format!(" on {n}")).unwrap_or_default()
        ),
    );
    if let Some((evidence, _, _)) = status_hit {
        diagnosis.evidence.push(evidence);
    }
    for (_, hits) in &failing {
        diagnosis
            .evidence
            .extend(hits.iter().rev().take(6).rev().cloned());
    }

    // The action's own failure is often one of the other classes (a binary that does not run
    // here, a download the instance profile may not make): add what that one says to change.
    let inner = binary::find(&bootstrap_logs, step).or_else(|| access::find(&bootstrap_logs));
    match inner {
        Some(inner) => {
            diagnosis.cause = format!("{}: {}", diagnosis.cause, inner.cause);
            diagnosis.advice.extend(inner.advice);
        }
        None => {
            if failing.is_empty() {
                diagnosis.advice.push(
                    "the action's stderr is under <LogUri>/<cluster>/node/<instance>/bootstrap-actions/<n>/ once the node's logs reach S3; look again in a few minutes".to_string(),
                );
            } else {
                diagnosis.advice.push(
                    "the evidence lines are the action's own error: fix what they name".to_string(),
                );
            }
        }
    }
    diagnosis.advice.push(
        "emrship's bootstrap action downloads and checks the bundle: run `emrship deploy` for the same spec and date before `provision` so the planned bundle key exists".to_string(),
    );
    Some(diagnosis)
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};

    #[test]
    fn status_message_and_the_actions_stderr() {
        let status = LogText::new(
            "cluster status",
            "TERMINATED_WITH_ERRORS BOOTSTRAP_FAILURE: On the master instance (i-0a1b2c3d4e5f60718), bootstrap action 1 returned a non-zero return code",
        );
        let stderr = LogText::new(
            "node/i-0a1b2c3d4e5f60718/bootstrap-actions/1/stderr.gz",
            "\
+ BUNDLE_URI=s3://example-ads-data/emrship/match-rate/bundles/3f9c.zip
download failed: s3://example-ads-data/emrship/match-rate/bundles/3f9c.zip to ../../tmp/tmp.Xb3/bundle.zip An error occurred (403) when calling the HeadObject operation: Forbidden
emrship bootstrap (match-rate): cannot download s3://example-ads-data/emrship/match-rate/bundles/3f9c.zip: run 'emrship deploy', and check the instance profile allows s3:GetObject on it
",
        );
        let diagnosis = diagnose(&[status, stderr], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::BootstrapAction);
        assert!(
            diagnosis
                .cause
                .starts_with("bootstrap action 1 failed on i-0a1b2c3d4e5f60718, so the cluster never ran the step: S3 denied access (403): the role lacks s3:GetObject on arn:aws:s3:::example-ads-data/emrship/match-rate/bundles/3f9c.zip"),
            "{}",
            diagnosis.cause
        );
        assert_eq!(diagnosis.evidence[0].log, "cluster status");
        assert!(diagnosis.evidence.iter().any(|e| e.line == 3));
    }

    #[test]
    fn bootstrap_noise_does_not_explain_a_step_that_ran() {
        let stderr = LogText::new(
            "node/i-0a1b2c3d4e5f60718/bootstrap-actions/2/stderr.gz",
            "Error: Nothing to do\n",
        );
        let step = LogText::new(
            "steps/s-1/stderr.gz",
            "emrship-job: error: no input files under s3://example-ads-logs/product-views/dt=2024-11-20/\n",
        );
        let diagnosis = diagnose(&[stderr.clone(), step], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::JobError);
        // Alone (the step never wrote logs), the same line is the bootstrap's failure.
        assert_eq!(
            diagnose(&[stderr], &StepContext::default()).kind,
            CauseKind::BootstrapAction
        );
    }

    #[test]
    fn a_quiet_bootstrap_stderr_is_not_a_failure() {
        let stderr = LogText::new(
            "node/i-0a1b2c3d4e5f60718/bootstrap-actions/1/stderr.gz",
            "+ node_arch=x86_64\n+ mktemp -d\n",
        );
        assert_ne!(
            diagnose(&[stderr], &StepContext::default()).kind,
            CauseKind::BootstrapAction
        );
    }
}
