//! Python tracebacks in Spark logs, each with its frames, the exception it ends with, and whether
//! a PySpark worker (an executor) or the driver raised it.
//!
//! In YARN cluster mode the driver's Python process writes to the ApplicationMaster container's
//! stdout; an executor's Python worker failure is logged by the executor JVM as
//! `org.apache.spark.api.python.PythonException: Traceback …` and relayed into the driver's log
//! (`Lost task …`, `Job aborted due to stage failure …`, `Caused by: …`).

use super::{regex, Evidence, LogText};

pub(super) struct Frame {
    /// 0-based index of the `File "…", line N, in f` line.
    pub index: usize,
    pub file: String,
    pub line: u32,
    pub function: String,
    /// The source line printed under the frame, when there is one.
    pub code: Option<String>,
}

pub(super) struct Traceback<'a> {
    pub log: &'a LogText,
    pub frames: Vec<Frame>,
    /// 0-based index of the exception line.
    pub end: usize,
    pub end_text: String,
    /// `ModuleNotFoundError`, `configparser.NoSectionError`, …
    pub exception: String,
    /// What follows `Exception: ` on its line (may be empty: numpy's ImportError continues on the
    /// next lines).
    pub message: String,
    /// Raised in a PySpark worker on an executor rather than by the driver.
    pub worker: bool,
}

impl<'a> Traceback<'a> {
    pub fn exception_evidence(&self) -> Evidence {
        self.log.evidence(self.end + 1, &self.end_text)
    }

    /// The innermost frame outside the Python standard library and PySpark's own code: where the
    /// application's code was when it failed.
    pub fn app_frame(&self) -> Option<&Frame> {
        self.frames
            .iter()
            .rev()
            .find(|frame| !is_library_file(&frame.file))
            .or(self.frames.last())
    }

    /// The frame's line and the source line under it.
    pub fn frame_evidence(&self, frame: &Frame) -> Vec<Evidence> {
        let mut evidence = vec![self.log.evidence(
            frame.index + 1,
            &format!(
                "  File \"{}\", line {}, in {}",
                frame.file, frame.line, frame.function
            ),
        )];
        if let Some(code) = &frame.code {
            evidence.push(self.log.evidence(frame.index + 2, code));
        }
        evidence
    }

    /// `main.py:12` for a frame.
    pub fn frame_location(frame: &Frame) -> String {
        let file = frame.file.rsplit('/').next().unwrap_or(&frame.file);
        format!("{file}:{}", frame.line)
    }

    /// "the driver" / "an executor".
    pub fn raised_by(&self) -> &'static str {
        if self.worker {
            "an executor"
        } else {
            "the driver"
        }
    }
}

/// Files of the Python standard library, PySpark and py4j: not where an application's bug is.
fn is_library_file(file: &str) -> bool {
    file.contains("/pyspark/")
        || file.contains("/py4j/")
        || file.contains("/lib/python3")
        || file.contains("/lib64/python3")
        || file.starts_with('<')
}

/// A log's tracebacks in order.
pub(super) fn tracebacks(log: &LogText) -> Vec<Traceback<'_>> {
    if !log.text.contains("Traceback (most recent call last):") {
        return Vec::new();
    }
    let frame = regex(r#"^\s+File "([^"]+)", line (\d+), in (\S+)"#);
    let exception = regex(
        r"^((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning)?)(?::\s?(.*)|$)",
    );
    let lines: Vec<&str> = log.text.lines().collect();
    let executor_log = is_executor_container(&log.name);
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        if !line.contains("Traceback (most recent call last):") {
            continue;
        }
        let mut frames: Vec<Frame> = Vec::new();
        let mut end = None;
        for (index, line) in lines.iter().enumerate().skip(start + 1) {
            if let Some(c) = frame.captures(line) {
                frames.push(Frame {
                    index,
                    file: c[1].to_string(),
                    line: c[2].parse().unwrap_or(0),
                    function: c[3].to_string(),
                    code: None,
                });
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') || line.trim().is_empty() {
                // The source line under a frame (Python ≥ 3.11 adds a `^^^^` marker line).
                if let Some(last) = frames.last_mut() {
                    if last.code.is_none() && index == last.index + 1 && !line.trim().is_empty() {
                        last.code = Some(line.to_string());
                    }
                }
                continue;
            }
            if let Some(c) = exception.captures(line) {
                end = Some((
                    index,
                    c[1].to_string(),
                    c.get(2).map(|m| m.as_str().trim().to_string()),
                ));
            }
            break;
        }
        let Some((end, exception, message)) = end else {
            continue;
        };
        let worker = executor_log
            || line.contains("PythonException")
            || frames.iter().any(|frame| {
                frame.file.contains("pyspark/worker.py") || frame.file.contains("pyspark/daemon.py")
            });
        found.push(Traceback {
            log,
            frames,
            end,
            end_text: lines[end].to_string(),
            exception,
            message: message.unwrap_or_default(),
            worker,
        });
    }
    found
}

/// An executor's container: any but the application's first (`…_000001` is the
/// ApplicationMaster, which runs the driver in cluster mode).
pub(super) fn is_executor_container(name: &str) -> bool {
    let container = regex(r"container_(?:e\d+_)?\d+_\d+_\d+_(\d+)");
    container
        .captures(name)
        .is_some_and(|c| c[1].trim_start_matches('0') != "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_exception_and_who_raised_it() {
        let log = LogText::new(
            "containers/application_1_0001/container_1_0001_01_000001/stderr.gz",
            "\
24/11/21 06:01:05 WARN TaskSetManager: Lost task 0.0 in stage 0.0 (TID 0) (ip-10-0-1-23.ec2.internal executor 1): org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1_0001/container_1_0001_01_000002/pyspark.zip/pyspark/worker.py\", line 1227, in main
    func, profiler, deserializer, serializer = read_command(pickleSer, infile)
ModuleNotFoundError: No module named 'geo'

Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1_0001/container_1_0001_01_000001/main.py\", line 9, in <module>
    import numpy as np
ImportError: 
",
        );
        let found = tracebacks(&log);
        assert_eq!(found.len(), 2);
        assert!(found[0].worker);
        assert_eq!(found[0].exception, "ModuleNotFoundError");
        assert_eq!(found[0].message, "No module named 'geo'");
        assert_eq!(found[0].end, 3);
        assert!(!found[1].worker);
        assert_eq!(found[1].exception, "ImportError");
        assert_eq!(found[1].message, "");
        let frame = found[1].app_frame().unwrap();
        assert_eq!(Traceback::frame_location(frame), "main.py:9");
        assert_eq!(frame.code.as_deref(), Some("    import numpy as np"));
        assert!(is_executor_container(
            "containers/a/container_1_0001_01_000002/stderr.gz"
        ));
        assert!(!is_executor_container(
            "containers/a/container_1_0001_01_000001/stdout.gz"
        ));
        assert!(!is_executor_container("steps/s-1/stderr.gz"));
    }
}
