//! The job binary itself stopped: a Rust panic (a bug) or an `emrship-job: error: …` line (a
//! condition the job reports, with what to fix in the message).

use super::{mentions, regex, CauseKind, Diagnosis, LogText};

const REPRODUCE: &str =
    "reproduce the day on your machine with `emrship run <spec> --local --date <day>`";

pub(super) fn find_panic(logs: &[LogText]) -> Option<Diagnosis> {
    // Rust ≥ 1.73: "thread 'main' panicked at src/x.rs:1:2:" + the message on the next line;
    // before: "thread 'main' panicked at 'message', src/x.rs:1:2".
    let panic = regex(r"thread '([^']*)' panicked at (.*)$");
    let old_style = regex(r"^'(.*)', (\S+:\d+:\d+)$");
    let mut last = None;
    for log in logs {
        let lines: Vec<&str> = log.text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !mentions(line, &["panicked at"]) {
                continue;
            }
            if let Some(c) = panic.captures(line) {
                last = Some((
                    log,
                    index,
                    lines.clone(),
                    c[1].to_string(),
                    c[2].to_string(),
                ));
            }
        }
    }
    let (log, index, lines, thread, rest) = last?;
    let mut evidence = vec![log.evidence(index + 1, lines[index])];
    let (message, location) = match old_style.captures(&rest) {
        Some(c) => (c[1].to_string(), c[2].to_string()),
        None => {
            let location = rest.trim_end_matches(':').to_string();
            // The message runs until the "note: run with RUST_BACKTRACE" line or a blank one.
            let mut message = Vec::new();
            for (offset, next) in lines[index + 1..].iter().enumerate().take(5) {
                if next.trim().is_empty()
                    || next.starts_with("note:")
                    || next.starts_with("stack backtrace")
                {
                    break;
                }
                evidence.push(log.evidence(index + offset + 2, next));
                message.push(next.trim());
            }
            (message.join(" "), location)
        }
    };
    let mut diagnosis = Diagnosis::new(
        CauseKind::RustPanic,
        format!("emrship-job panicked in thread '{thread}' at {location}: {message}"),
    );
    diagnosis.evidence = evidence;
    diagnosis.advice.push(
        "a panic is a bug in emrship-job, not a problem with the cluster: report it with these lines and the job's arguments"
            .to_string(),
    );
    diagnosis
        .advice
        .push(format!("{REPRODUCE} (RUST_BACKTRACE=1 prints the stack)"));
    Some(diagnosis)
}

pub(super) fn find_error(logs: &[LogText]) -> Option<Diagnosis> {
    let error = regex(r"emrship-job(?:\[\d+\])?(?: [a-z][a-z-]*){0,2}: error: (.+)$");
    let mut last = None;
    for log in logs {
        let lines: Vec<&str> = log.text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !mentions(line, &[": error: "]) {
                continue;
            }
            if let Some(c) = error.captures(line) {
                last = Some((log, index, lines.clone(), c[1].trim().to_string()));
            }
        }
    }
    let (log, index, lines, message) = last?;
    let mut diagnosis = Diagnosis::new(
        CauseKind::JobError,
        format!("emrship-job stopped with an error: {message}"),
    );
    diagnosis
        .evidence
        .push(log.evidence(index + 1, lines[index]));
    // Causes and help follow on indented or "caused by" / "help:" lines.
    for (offset, next) in lines[index + 1..].iter().enumerate().take(4) {
        let trimmed = next.trim_start();
        let continues = next.starts_with(' ')
            || next.starts_with('\t')
            || trimmed.starts_with("caused by")
            || trimmed.starts_with("Caused by")
            || trimmed.starts_with("help:");
        if !continues || trimmed.is_empty() {
            break;
        }
        diagnosis
            .evidence
            .push(log.evidence(index + offset + 2, next));
    }
    diagnosis.advice.push(
        "the error names what the job could not do and where: fix that input, setting or permission"
            .to_string(),
    );
    diagnosis.advice.push(REPRODUCE.to_string());
    Some(diagnosis)
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};

    #[test]
    fn rust_panic_with_its_message_and_location() {
        let log = LogText::new(
            "containers/application_1732168000000_0006/container_1732168000000_0006_01_000003/stderr.gz",
            "\
24/11/21 06:12:40 INFO PythonRunner: Times: total = 2812, boot = 39, init = 11, finish = 2762
thread 'main' panicked at src/job/kernels/match_rate.rs:214:38:
called `Option::unwrap()` on a `None` value
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
24/11/21 06:12:41 ERROR Executor: Exception in task 7.0 in stage 0.0 (TID 7)
org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0006/container_1732168000000_0006_01_000003/driver.py\", line 36, in run
    raise RuntimeError(
RuntimeError: emrship-job match-rate map exited with 101
",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::RustPanic);
        assert_eq!(
            diagnosis.cause,
            "emrship-job panicked in thread 'main' at src/job/kernels/match_rate.rs:214:38: called `Option::unwrap()` on a `None` value"
        );
        assert_eq!(diagnosis.evidence.len(), 2);
        assert_eq!(diagnosis.evidence[0].line, 2);
        assert!(diagnosis.also.iter().any(|a| a.contains("RuntimeError")));
    }

    #[test]
    fn old_style_panic() {
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "thread 'rayon-worker-3' panicked at 'index out of bounds: the len is 3 but the index is 7', src/job/agg.rs:88:9\n",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(
            diagnosis.cause,
            "emrship-job panicked in thread 'rayon-worker-3' at src/job/agg.rs:88:9: index out of bounds: the len is 3 but the index is 7"
        );
    }

    #[test]
    fn job_error_line_with_its_causes() {
        let log = LogText::new(
            "steps/s-3KQ1Z8L2N4M5P/stderr.gz",
            "\
24/11/21 06:00:31 INFO Client: Uploading resource s3://example-ads-data/emrship/match-rate/bundles/3f9c.zip
emrship-job: error: cannot connect to postgres://emrship@ads-db.internal:5432/ads
  caused by: error connecting to server: Connection timed out (os error 110)
  help: check the database's security group allows the cluster's nodes on port 5432
24/11/21 06:02:12 INFO ShutdownHookManager: Shutdown hook called
",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::JobError);
        assert_eq!(
            diagnosis.cause,
            "emrship-job stopped with an error: cannot connect to postgres://emrship@ads-db.internal:5432/ads"
        );
        assert_eq!(diagnosis.evidence.len(), 3);
        assert_eq!(diagnosis.evidence[2].line, 4);
    }
}
