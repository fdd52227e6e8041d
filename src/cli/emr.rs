//! `emrship provision|submit|status|terminate|down`: placeholders until issue 3 lands them.

use std::process::ExitCode;

use super::{DownArgs, ProvisionArgs, StatusArgs, SubmitArgs, TerminateArgs};

fn not_yet(command: &str) -> ExitCode {
    eprintln!("emrship {command}: not built yet");
    ExitCode::from(super::EXIT_FAILURE)
}

pub fn provision(_args: ProvisionArgs) -> ExitCode {
    not_yet("provision")
}

pub fn submit(_args: SubmitArgs) -> ExitCode {
    not_yet("submit")
}

pub fn status(_args: StatusArgs) -> ExitCode {
    not_yet("status")
}

pub fn terminate(_args: TerminateArgs) -> ExitCode {
    not_yet("terminate")
}

pub fn down(_args: DownArgs) -> ExitCode {
    not_yet("down")
}
