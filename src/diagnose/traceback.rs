//! A Python traceback from the Spark driver (`driver.py`): the last `Traceback (most recent call
//! last):` block, its innermost frame and the exception it ends with.

use super::{regex, CauseKind, Diagnosis, LogText};

pub(super) fn find(logs: &[LogText]) -> Option<Diagnosis> {
    let frame = regex(r#"^\s+File "([^"]+)", line (\d+), in (\S+)"#);
    let exception =
        regex(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning)?(?::|$)");
    let mut last = None;
    for log in logs {
        let lines: Vec<&str> = log.text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if line.contains("Traceback (most recent call last):") {
                last = Some((log, index, lines.clone()));
            }
        }
    }
    let (log, start, lines) = last?;
    let mut evidence = vec![log.evidence(start + 1, lines[start])];
    let mut innermost = None;
    let mut end = None;
    for (index, line) in lines.iter().enumerate().skip(start + 1) {
        if let Some(c) = frame.captures(line) {
            innermost = Some((index, c[1].to_string(), c[2].to_string(), c[3].to_string()));
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') || line.trim().is_empty() {
            continue;
        }
        if exception.is_match(line) {
            end = Some(index);
        }
        break;
    }
    let end = end?;
    if let Some((index, ..)) = &innermost {
        evidence.push(log.evidence(index + 1, lines[*index]));
        if let Some(code) = lines.get(index + 1).filter(|l| !frame.is_match(l)) {
            evidence.push(log.evidence(index + 2, code));
        }
    }
    evidence.push(log.evidence(end + 1, lines[end]));
    // Py4J errors carry the Java cause on the next lines (": org.apache.spark.SparkException: …").
    for (offset, next) in lines[end + 1..].iter().enumerate().take(2) {
        if next.starts_with(": ") {
            evidence.push(log.evidence(end + offset + 2, next));
        }
    }
    let raised = lines[end].trim();
    let location = innermost
        .map(|(_, file, line, function)| {
            let file = file.rsplit('/').next().unwrap_or(&file).to_string();
            format!(" in {function} ({file}:{line})")
        })
        .unwrap_or_default();
    let mut diagnosis = Diagnosis::new(
        CauseKind::PythonTraceback,
        format!("the Spark driver raised {raised}{location}"),
    );
    diagnosis.evidence = evidence;
    if raised.contains("emrship-job") && raised.contains("exited with") {
        diagnosis.advice.push(
            "the driver only relays that emrship-job failed: its own error is in the same container's stderr, just above the traceback (and in the executors' container logs)".to_string(),
        );
    } else if raised.starts_with("ModuleNotFoundError") || raised.starts_with("ImportError") {
        diagnosis.advice.push(
            "the driver runs under the cluster's Python: it only needs pyspark, which EMR provides when the Spark application is installed (spec: cluster.applications)".to_string(),
        );
    } else {
        diagnosis.advice.push(
            "the innermost frame shows where; driver.py is rendered by `emrship plan` from templates/spark_driver.py.hbs: re-render rather than edit it on the cluster".to_string(),
        );
    }
    Some(diagnosis)
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};

    #[test]
    fn last_traceback_block_with_its_innermost_frame() {
        let log = LogText::new(
            "containers/application_1732168000000_0007/container_1732168000000_0007_01_000001/stdout.gz",
            "\
Traceback (most recent call last):
  File \"/usr/lib/spark/python/lib/pyspark.zip/pyspark/daemon.py\", line 186, in manager
ValueError: old, retried
24/11/21 06:20:11 INFO SparkContext: Running Spark version 3.5.1-amzn-0
Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0007/container_1732168000000_0007_01_000001/driver.py\", line 83, in <module>
    main(sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == COMMAND else sys.argv[1:])
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0007/container_1732168000000_0007_01_000001/driver.py\", line 47, in main
    buckets = int(spark.conf.get(\"spark.default.parallelism\", str(DEFAULT_PARTITIONS)))
ValueError: invalid literal for int() with base 10: 'auto'
24/11/21 06:20:12 INFO ShutdownHookManager: Shutdown hook called
",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::PythonTraceback);
        assert_eq!(
            diagnosis.cause,
            "the Spark driver raised ValueError: invalid literal for int() with base 10: 'auto' in main (driver.py:47)"
        );
        let lines: Vec<usize> = diagnosis.evidence.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![5, 8, 9, 10]);
    }

    #[test]
    fn py4j_error_keeps_the_java_cause() {
        let log = LogText::new(
            "steps/s-1/stdout.gz",
            "\
Traceback (most recent call last):
  File \"/mnt/tmp/spark-1/driver.py\", line 71, in main
    .collect()
py4j.protocol.Py4JJavaError: An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 1.0 failed 4 times, most recent failure: Lost task 3.3 in stage 1.0 (TID 52) (ip-10-0-1-88.ec2.internal executor 4): java.net.SocketTimeoutException: Read timed out
",
        );
        let diagnosis = diagnose(&[log], &StepContext::default());
        assert_eq!(diagnosis.kind, CauseKind::PythonTraceback);
        assert!(diagnosis
            .cause
            .starts_with("the Spark driver raised py4j.protocol.Py4JJavaError"));
        assert_eq!(diagnosis.evidence.last().unwrap().line, 5);
    }
}
