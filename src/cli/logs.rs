//! `emrship logs`: placeholder until issue 3 lands it.

use std::process::ExitCode;

use super::LogsArgs;

pub fn run(_args: LogsArgs) -> ExitCode {
    eprintln!("emrship logs: not built yet");
    ExitCode::from(super::EXIT_FAILURE)
}
