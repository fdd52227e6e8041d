//! `emrship logs`: placeholder until issue 3 lands it.

use std::process::ExitCode;

use super::LogsArgs;

pub fn run(_args: LogsArgs) -> ExitCode {
    eprintln!("emrship logs: not built yet");
    ExitCode::from(super::EXIT_FAILURE)
}

/// Explains why `step_id` on `cluster_id` failed, from its logs on S3, printing to stderr.
/// `--wait` calls this when a step fails. (Placeholder until issue 3 lands it.)
pub async fn print_failure_diagnosis(
    _sdk: &aws_config::SdkConfig,
    cluster_id: &str,
    step_id: &str,
) {
    eprintln!("(no diagnosis yet for step {step_id} of {cluster_id})");
}
