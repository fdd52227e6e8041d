//! `emrship run --local`: placeholder until the job engine lands (issue 4).

use std::process::ExitCode;

use super::RunArgs;

pub fn run(_args: RunArgs) -> ExitCode {
    eprintln!("emrship run: not built yet");
    ExitCode::from(super::EXIT_FAILURE)
}
