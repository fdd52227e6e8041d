//! Why did a step fail? Classifies the text of a step's logs (step stderr/stdout/controller/
//! syslog, YARN container logs, bootstrap-action logs, the cluster's and step's status messages)
//! into a probable cause, with the lines that show it and what to change.
//!
//! Pure: no I/O, no SDK. `aws::emr_logs` fetches the texts, `cli::logs` prints the result.
//!
//! Every matcher looks at every log; the most specific finding wins (a bootstrap failure explains
//! cancelled steps; a glibc mismatch explains the Python traceback the driver raised after it),
//! and the others are listed as "also seen".

mod access;
mod app_files;
mod binary;
mod bootstrap;
mod context;
mod job;
mod jvm_app;
mod memory;
mod python_import;
mod pytrace;
mod traceback;

use serde::Serialize;

pub use context::{parse_spark_memory_mib, MemorySettings, Shipped, StepContext, SubmitArgs};

/// One log's text as fetched (possibly only its tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogText {
    /// Where it came from, relative to the cluster's log prefix (`steps/s-…/stderr.gz`,
    /// `containers/application_…/container_…/stderr.gz`, `node/i-…/bootstrap-actions/1/stderr.gz`)
    /// or a status message (`cluster status`, `step status`).
    pub name: String,
    pub text: String,
    /// Only the tail of the log was read: line numbers count from the start of that tail.
    pub truncated: bool,
}

impl LogText {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> LogText {
        LogText {
            name: name.into(),
            text: text.into(),
            truncated: false,
        }
    }

    /// The lines with their 1-based numbers.
    fn numbered(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text
            .lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line))
    }

    fn is_bootstrap_log(&self) -> bool {
        self.name.contains("/bootstrap-actions/")
    }

    fn evidence(&self, line: usize, text: &str) -> Evidence {
        Evidence {
            log: self.name.clone(),
            line,
            tail_only: self.truncated,
            text: text.trim_end().to_string(),
        }
    }
}

/// A line that shows the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub log: String,
    /// 1-based; counted from the start of the fetched tail when `tail_only`.
    pub line: usize,
    pub tail_only: bool,
    pub text: String,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = if self.tail_only { " of its tail" } else { "" };
        write!(f, "{} line {}{}: {}", self.log, self.line, tail, self.text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    BootstrapAction,
    BinaryDoesNotFit,
    PythonInterpreterMissing,
    NativeModuleDoesNotFit,
    JavaVersionMismatch,
    JvmClassMissing,
    PythonModuleMissing,
    AppFileMissing,
    ContainerMemory,
    JvmHeap,
    S3AccessDenied,
    RustPanic,
    JobError,
    PythonTraceback,
    Unknown,
}

impl CauseKind {
    /// A failure of the user's own application (its imports, classes, files, interpreter), as
    /// opposed to the cluster, the resources or emrship's own job.
    pub fn is_application_failure(self) -> bool {
        matches!(
            self,
            CauseKind::PythonInterpreterMissing
                | CauseKind::NativeModuleDoesNotFit
                | CauseKind::JavaVersionMismatch
                | CauseKind::JvmClassMissing
                | CauseKind::PythonModuleMissing
                | CauseKind::AppFileMissing
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub kind: CauseKind,
    /// The probable cause, one line.
    pub cause: String,
    pub evidence: Vec<Evidence>,
    /// What to change.
    pub advice: Vec<String>,
    /// Causes of the other findings, less specific than this one.
    pub also: Vec<String>,
}

impl Diagnosis {
    fn new(kind: CauseKind, cause: impl Into<String>) -> Diagnosis {
        Diagnosis {
            kind,
            cause: cause.into(),
            evidence: Vec::new(),
            advice: Vec::new(),
            also: Vec::new(),
        }
    }

    /// The text block `emrship logs` and `--wait` print.
    pub fn render_text(&self) -> String {
        let mut out = format!("Probable cause: {}\n", self.cause);
        if !self.evidence.is_empty() {
            out.push_str("Evidence:\n");
            for evidence in &self.evidence {
                out.push_str(&format!("  {evidence}\n"));
            }
        }
        if !self.advice.is_empty() {
            out.push_str("What to change:\n");
            for advice in &self.advice {
                out.push_str(&format!("  - {advice}\n"));
            }
        }
        if !self.also.is_empty() {
            out.push_str("Also seen:\n");
            for also in &self.also {
                out.push_str(&format!("  - {also}\n"));
            }
        }
        out
    }
}

/// The most probable cause of the failure the logs show, from the most specific finding.
pub fn diagnose(logs: &[LogText], step: &StepContext) -> Diagnosis {
    // Most specific first: each later finding is usually a consequence of an earlier one. The
    // failures of a user's application (an import, a class, a file) end the application where
    // they happen, so they come before the memory and access findings a failing run also logs,
    // and before the generic Python traceback they are a case of.
    let mut findings: Vec<Diagnosis> = [
        bootstrap::find(logs, step),
        binary::find(logs, step),
        app_files::find_missing_interpreter(logs, step),
        python_import::find_native_module(logs, step),
        jvm_app::find_class_version(logs, step),
        jvm_app::find_missing_class(logs, step),
        python_import::find_missing_module(logs, step),
        app_files::find_missing_file(logs, step),
        memory::find_container_kill(logs, step),
        memory::find_jvm_heap(logs, step),
        access::find(logs),
        job::find_panic(logs),
        job::find_error(logs),
        traceback::find(logs),
    ]
    .into_iter()
    .flatten()
    .collect();
    if findings.is_empty() {
        return unknown(logs, step);
    }
    let mut primary = findings.remove(0);
    for finding in findings {
        // An application failure is that Python exception, explained: the generic traceback
        // finding of the same exception (the same line, its copy relayed into another log, or
        // the exception it raised while handling it in the same log) adds nothing.
        let same_exception = primary.kind.is_application_failure()
            && finding.kind == CauseKind::PythonTraceback
            && finding.evidence.last().is_some_and(|raised| {
                primary
                    .evidence
                    .iter()
                    .any(|evidence| evidence.text == raised.text || evidence.log == raised.log)
            });
        // A bootstrap diagnosis already includes its inner cause; list each cause once.
        if !same_exception
            && !primary.cause.contains(&finding.cause)
            && !primary.also.contains(&finding.cause)
        {
            primary.also.push(finding.cause);
        }
    }
    primary
}

/// No known pattern: point at the lines that look like errors.
fn unknown(logs: &[LogText], step: &StepContext) -> Diagnosis {
    let mut diagnosis = Diagnosis::new(
        CauseKind::Unknown,
        "no known failure pattern in the fetched logs",
    );
    let error_like = regex_lite::Regex::new(r"\b(ERROR|FATAL|Exception|[Ee]rror:|FAILED)\b")
        .expect("valid regex");
    for log in logs {
        for (number, line) in log.numbered() {
            if mentions(line, &["ERROR", "FATAL", "Exception", "rror:", "FAILED"])
                && error_like.is_match(line)
            {
                diagnosis.evidence.push(log.evidence(number, line));
            }
        }
    }
    // The last few error-like lines are usually the closest to the failure.
    let keep = diagnosis.evidence.len().saturating_sub(8);
    diagnosis.evidence.drain(..keep);
    diagnosis.advice.push(
        "read the log tails above; the step's own status message (FailureDetails) is in `step status`"
            .to_string(),
    );
    if step.native {
        diagnosis.advice.push(
            "reproduce the day on your machine with `emrship run <spec> --local --date <day>`"
                .to_string(),
        );
    }
    diagnosis
}

/// Rounds MiB up to the next multiple of 512 (settings people read and type).
fn round_up_512(mib: u64) -> u64 {
    mib.div_ceil(512) * 512
}

/// `6144m (6 GiB)` / `5632m (5.5 GiB)`.
fn show_mib(mib: u64) -> String {
    if mib.is_multiple_of(1024) {
        format!("{mib}m ({} GiB)", mib / 1024)
    } else {
        format!("{mib}m ({:.1} GiB)", mib as f64 / 1024.0)
    }
}

/// A cheap literal test run before a regex: regex-lite scans without literal prefilters, and
/// logs run to megabytes.
fn mentions(line: &str, needles: &[&str]) -> bool {
    needles.iter().any(|needle| line.contains(needle))
}

fn regex(pattern: &str) -> regex_lite::Regex {
    regex_lite::Regex::new(pattern).expect("valid regex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_shows_the_last_error_like_lines() {
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "INFO starting\nINFO working\nERROR something odd happened\nINFO shutting down\n",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::Unknown);
        assert_eq!(diagnosis.evidence.len(), 1);
        assert_eq!(diagnosis.evidence[0].line, 3);
        assert!(diagnosis
            .render_text()
            .contains("steps/s-1/stderr.gz line 3"));
    }

    #[test]
    fn rounding_and_display() {
        assert_eq!(round_up_512(1), 512);
        assert_eq!(round_up_512(512), 512);
        assert_eq!(round_up_512(66561), 67072);
        assert_eq!(show_mib(6144), "6144m (6 GiB)");
        assert_eq!(show_mib(5632), "5632m (5.5 GiB)");
    }
}
