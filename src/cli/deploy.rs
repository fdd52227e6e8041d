//! `emrship deploy`: placeholder until issue 3 lands it.

use std::process::ExitCode;

use super::DeployArgs;

pub fn run(_args: DeployArgs) -> ExitCode {
    eprintln!("emrship deploy: not built yet");
    ExitCode::from(super::EXIT_FAILURE)
}
