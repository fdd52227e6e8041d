//! What both binaries (`emrship`, `emrship-job`) show their user: one error type, [`CliError`],
//! whose [`ErrorClass`] decides the exit status, and one [`Printer`] for data (stdout) and
//! diagnostics (stderr).
//!
//! A command returns `Result<ExitStatus, CliError>` ([`CommandResult`]) and `main` hands it to
//! [`Printer::exit`]. Exit status, the one table (README "Exit status"):
//!
//! | status | meaning |
//! | ---: | --- |
//! | 0 | success (also: stdout was closed by its reader, `… \| head`) |
//! | 1 | anything else: an AWS call, a file that cannot be read, a failed backfill day |
//! | 2 | invalid: the spec, an argument, or the job's input data; fix it and run again |
//! | 3 | `--wait` gave up after `--timeout` (the cluster goes on) |
//! | 4 | the cluster or a step ended in failure |

use std::fmt;
use std::io::Write as _;
use std::process::ExitCode;

use serde::Serialize;

/// How a command ended; its number is the process's exit status (the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    Success = 0,
    /// Anything else went wrong.
    Failure = 1,
    /// The spec, an argument or the input data is wrong.
    Invalid = 2,
    /// `--wait` gave up after `--timeout`.
    TimedOut = 3,
    /// The cluster or a step ended in failure.
    RunFailed = 4,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// What a command returns: how it ended, or why it failed.
pub type CommandResult = Result<ExitStatus, CliError>;

/// What kind of failure, which decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The spec, an argument or the input data is wrong; nothing was sent (exit 2).
    Invalid,
    /// Anything else (exit 1).
    Failure,
    /// stdout was closed by its reader (`emrship plan … | head -1`). Not a failure: the
    /// program stops quietly with status 0.
    ClosedPipe,
}

impl ErrorClass {
    pub fn exit_status(self) -> ExitStatus {
        match self {
            ErrorClass::Invalid => ExitStatus::Invalid,
            ErrorClass::Failure => ExitStatus::Failure,
            ErrorClass::ClosedPipe => ExitStatus::Success,
        }
    }
}

/// A failure as the user sees it: `error: <message>` on stderr, then one `help: <hint>` line
/// per hint, after an optional pre-rendered report (spec diagnostics with their source lines).
#[derive(Debug, Clone)]
pub struct CliError {
    class: ErrorClass,
    message: String,
    hints: Vec<String>,
    report: Option<String>,
    retryable: bool,
}

impl CliError {
    /// A wrong spec, argument or input (exit 2).
    pub fn invalid(message: impl Into<String>) -> CliError {
        CliError::new(ErrorClass::Invalid, message)
    }

    /// Any other failure (exit 1).
    pub fn failure(message: impl Into<String>) -> CliError {
        CliError::new(ErrorClass::Failure, message)
    }

    pub fn new(class: ErrorClass, message: impl Into<String>) -> CliError {
        CliError {
            class,
            message: message.into(),
            hints: Vec::new(),
            report: None,
            retryable: false,
        }
    }

    /// stdout is gone (`| head`): stop quietly, exit 0.
    pub fn closed_pipe() -> CliError {
        CliError::new(ErrorClass::ClosedPipe, "stdout was closed")
    }

    /// Adds a `help:` line: what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hints.push(hint.into());
        self
    }

    /// Text printed as is before the `error:` line (rendered spec diagnostics).
    pub fn with_report(mut self, report: impl Into<String>) -> CliError {
        self.report = Some(report.into());
        self
    }

    /// The spec failed to load or resolve: every diagnostic, then a one-line count (exit 2).
    pub fn spec(diagnostics: &crate::spec::Diagnostics) -> CliError {
        let errors = diagnostics.errors().count();
        let warnings = diagnostics.warnings().count();
        let report: String = diagnostics
            .errors()
            .chain(diagnostics.warnings())
            .map(|d| d.render() + "\n")
            .collect();
        CliError::invalid(format!(
            "{errors} error{} and {warnings} warning{} in the spec; nothing was sent or uploaded",
            plural(errors),
            plural(warnings)
        ))
        .with_report(report)
    }

    /// A write to stdout failed: a closed pipe stops quietly, anything else is a failure.
    pub fn stdout(error: std::io::Error) -> CliError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::closed_pipe()
        } else {
            CliError::failure(format!("cannot write to stdout: {error}"))
        }
    }

    pub fn class(&self) -> ErrorClass {
        self.class
    }

    pub fn exit_status(&self) -> ExitStatus {
        self.class.exit_status()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hints(&self) -> &[String] {
        &self.hints
    }

    /// Trying again later may succeed (throttling, a timeout, a dropped connection).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Puts `context` before the message: `<context>: <message>`.
    pub fn context(mut self, context: impl fmt::Display) -> CliError {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

#[cfg(any(feature = "aws", feature = "lambda"))]
impl From<crate::aws::error::AwsError> for CliError {
    fn from(error: crate::aws::error::AwsError) -> CliError {
        let transient = error.transient;
        let mut cli = CliError::failure(error.to_string());
        if transient {
            cli.retryable = true;
            cli = cli.with_hint(
                "this looks transient (throttling, a timeout or a dropped connection): run the \
                 command again in a minute",
            );
        }
        cli
    }
}

#[cfg(any(feature = "aws", feature = "lambda"))]
impl From<crate::aws::launch::LaunchError> for CliError {
    fn from(error: crate::aws::launch::LaunchError) -> CliError {
        use crate::aws::launch::LaunchError;
        let hint = error.hint();
        let mut cli = match error {
            LaunchError::Aws(aws) => CliError::from(aws),
            other => {
                let retryable = other.is_transient();
                let mut cli = CliError::failure(other.to_string());
                cli.retryable = retryable;
                cli
            }
        };
        if let Some(hint) = hint {
            cli = cli.with_hint(hint);
        }
        cli
    }
}

#[cfg(feature = "job")]
impl From<crate::job::model::JobError> for CliError {
    fn from(error: crate::job::model::JobError) -> CliError {
        CliError::new(error.class(), error.to_string())
    }
}

/// The output format of a command's data (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    Text,
    /// One pretty-printed JSON document.
    Json,
}

/// Where everything a command shows goes: data on stdout; warnings, progress and errors on
/// stderr. Data writes return `Err(CliError::closed_pipe())` when the reader went away, so a
/// command stops at its next `?` and the program exits 0 without a word.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printer {
    /// Prefixed to the `error:` line. `emrship-job` sets it: its stderr lands in Spark and YARN
    /// logs among other programs' lines, where `diagnose` finds `emrship-job: error: …`.
    program: Option<&'static str>,
}

impl Printer {
    /// The printer of `emrship`: `error: …`.
    pub fn new() -> Printer {
        Printer { program: None }
    }

    /// A printer whose error lines name the program: `<program>: error: …`.
    pub fn named(program: &'static str) -> Printer {
        Printer {
            program: Some(program),
        }
    }

    /// One line of data on stdout.
    pub fn data(&self, line: &str) -> Result<(), CliError> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(CliError::stdout)
    }

    /// Data on stdout, exactly as given (a rendered document that ends its own lines).
    pub fn data_text(&self, text: &str) -> Result<(), CliError> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(CliError::stdout)
    }

    /// A value as pretty-printed JSON on stdout.
    pub fn json(&self, value: &impl Serialize) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::failure(format!("cannot write JSON: {e}")))?;
        self.data(&text)
    }

    /// `value` as JSON, or `text` as a line, as `--format` asks.
    pub fn result(
        &self,
        format: OutputFormat,
        value: &impl Serialize,
        text: &str,
    ) -> Result<(), CliError> {
        match format {
            OutputFormat::Json => self.json(value),
            OutputFormat::Text => self.data(text),
        }
    }

    /// `warning: <message>` on stderr.
    pub fn warn(&self, message: &str) {
        self.stderr(&format!("warning: {}\n", message.trim_end()));
    }

    /// A line of progress or of what was done, on stderr.
    pub fn info(&self, line: &str) {
        self.stderr(&format!("{}\n", line.trim_end_matches('\n')));
    }

    /// Text on stderr exactly as given (rendered diagnostics, a failed step's diagnosis).
    pub fn info_text(&self, text: &str) {
        self.stderr(text);
    }

    /// The error: its report, `error: <message>`, one `help: <hint>` per hint. A closed pipe
    /// prints nothing.
    pub fn error(&self, error: &CliError) {
        if error.class == ErrorClass::ClosedPipe {
            return;
        }
        let mut text = error.report.clone().unwrap_or_default();
        if let Some(program) = self.program {
            text.push_str(program);
            text.push_str(": ");
        }
        text.push_str("error: ");
        text.push_str(error.message.trim_end());
        text.push('\n');
        for hint in &error.hints {
            text.push_str("help: ");
            text.push_str(hint.trim_end());
            text.push('\n');
        }
        self.stderr(&text);
    }

    /// Prints the error, if any, and gives the exit status.
    pub fn exit(&self, result: CommandResult) -> ExitCode {
        match result {
            Ok(status) => status.into(),
            Err(error) => {
                self.error(&error);
                error.exit_status().into()
            }
        }
    }

    /// stderr gone too: nothing left to tell anyone, so the write error is dropped.
    fn stderr(&self, text: &str) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_the_documented_exit_statuses() {
        assert_eq!(CliError::invalid("x").exit_status().code(), 2);
        assert_eq!(CliError::failure("x").exit_status().code(), 1);
        assert_eq!(CliError::closed_pipe().exit_status().code(), 0);
        assert_eq!(ExitStatus::TimedOut.code(), 3);
        assert_eq!(ExitStatus::RunFailed.code(), 4);
    }

    #[test]
    fn a_broken_pipe_is_a_closed_pipe_and_other_write_errors_fail() {
        let closed = CliError::stdout(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(closed.class(), ErrorClass::ClosedPipe);
        let full = CliError::stdout(std::io::Error::other("disk full"));
        assert_eq!(full.class(), ErrorClass::Failure);
        assert!(full.message().contains("disk full"), "{}", full.message());
    }

    #[cfg(feature = "job")]
    #[test]
    fn job_usage_and_input_errors_are_invalid_the_rest_failures() {
        use crate::job::model::JobError;
        let class = |e: JobError| CliError::from(e).class();
        assert_eq!(class(JobError::Usage("u".into())), ErrorClass::Invalid);
        assert_eq!(class(JobError::input("a.csv", "bad")), ErrorClass::Invalid);
        assert_eq!(class(JobError::sink("s", "down")), ErrorClass::Failure);
        assert_eq!(class(JobError::catalog("c", "gone")), ErrorClass::Failure);
        assert_eq!(class(JobError::Other("o".into())), ErrorClass::Failure);
    }

    #[cfg(any(feature = "aws", feature = "lambda"))]
    #[test]
    fn a_transient_aws_error_stays_retryable_with_a_hint() {
        let aws = |transient| crate::aws::error::AwsError {
            operation: "ListClusters",
            code: Some("ThrottlingException".into()),
            message: "Rate exceeded".into(),
            transient,
        };
        let error = CliError::from(aws(true));
        assert!(error.is_retryable());
        assert_eq!(error.hints().len(), 1);
        assert_eq!(
            error.message(),
            "ListClusters failed: ThrottlingException: Rate exceeded"
        );
        let error = CliError::from(aws(false));
        assert!(!error.is_retryable());
        assert!(error.hints().is_empty());
    }
}
