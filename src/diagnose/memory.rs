//! YARN killed a container for memory, or a JVM ran out of heap. The advice names the setting
//! to raise and by how much, from the numbers in the log and the step's own sizing.

use super::context::MemorySettings;
use super::{mentions, regex, round_up_512, show_mib, CauseKind, Diagnosis, LogText, StepContext};

/// Headroom over the measured peak when sizing a container up.
const HEADROOM: f64 = 1.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Executor,
    Driver,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Executor => "executor",
            Role::Driver => "driver",
        }
    }

    fn settings(self, step: &StepContext) -> MemorySettings {
        match self {
            Role::Executor => step.executor,
            Role::Driver => step.driver,
        }
    }
}

/// The AM / cluster-mode driver is a YARN application's first container (`…_000001`).
fn role_of_container(text: &str) -> Option<Role> {
    let container = regex(r"container_(?:e\d+_)?\d+_\d+_\d+_(\d+)");
    container.captures(text).map(|c| {
        if c[1].trim_start_matches('0') == "1" {
            Role::Driver
        } else {
            Role::Executor
        }
    })
}

/// MiB from a Hadoop size as printed in YARN diagnostics (`57.1 GB`: binary prefixes).
fn hadoop_size_mib(number: &str, unit: &str) -> Option<f64> {
    let number: f64 = number.parse().ok()?;
    let factor = match unit.to_ascii_uppercase().as_str() {
        "B" => 1.0 / (1024.0 * 1024.0),
        "KB" => 1.0 / 1024.0,
        "MB" => 1.0,
        "GB" => 1024.0,
        "TB" => 1024.0 * 1024.0,
        _ => return None,
    };
    Some(number * factor)
}

pub(super) fn find_container_kill(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let killed = regex(
        r"(?i)container killed by yarn for exceeding (?:physical )?memory limits|is running (?:\d+\w? )?beyond (?:the 'physical' memory limit|physical memory limits)",
    );
    let usage = regex(r"([\d.]+) ?([KMGT]?B) of ([\d.]+) ?([KMGT]?B) physical memory used");
    let exit_code = regex(r"(?i)exit ?(?:code|status)(?: is|:|=)? ?(137|143)\b");
    let memory_context = regex(r"(?i)memory|oom[- ]?kill|out of memory");

    // The explicit YARN message is the best evidence; its first report is the most direct
    // (later lines repeat it inside task and job failures).
    let best: Option<(&LogText, usize, &str)> = logs.iter().find_map(|log| {
        log.numbered()
            .find(|(_, line)| {
                mentions(line, &["ontainer"])
                    && mentions(line, &["emory", "EMORY"])
                    && killed.is_match(line)
            })
            .map(|(number, line)| (log, number, line))
    });
    if let Some((log, number, line)) = best {
        let role = role_of_container(line)
            .or_else(|| role_of_container(&log.name))
            .filter(|_| !line.contains("Container killed by YARN"))
            .unwrap_or(Role::Executor);
        let measured = usage.captures(line).and_then(|c| {
            Some((
                hadoop_size_mib(&c[1], &c[2])?,
                hadoop_size_mib(&c[3], &c[4])?,
            ))
        });
        let mut diagnosis = Diagnosis::new(
            CauseKind::ContainerMemory,
            match measured {
                Some((used, limit)) => format!(
                    "YARN killed a Spark {} container for exceeding its physical memory limit ({:.1} GiB used of {:.1} GiB)",
                    role.name(),
                    used / 1024.0,
                    limit / 1024.0,
                ),
                None => format!(
                    "YARN killed a Spark {} container for exceeding its physical memory limit",
                    role.name()
                ),
            },
        );
        diagnosis.evidence.push(log.evidence(number, line));
        diagnosis.advice = container_advice(step, role, measured);
        return Some(diagnosis);
    }

    // Exit 137 (SIGKILL) / 143 (SIGTERM) only count with memory mentioned nearby.
    for log in logs.iter().rev() {
        let lines: Vec<&str> = log.text.lines().collect();
        for (index, line) in lines.iter().enumerate().rev() {
            if !mentions(line, &["137", "143"]) {
                continue;
            }
            let Some(code) = exit_code.captures(line) else {
                continue;
            };
            let window = &lines[index.saturating_sub(5)..(index + 6).min(lines.len())];
            if !window.iter().any(|l| memory_context.is_match(l)) {
                continue;
            }
            let role = role_of_container(line)
                .or_else(|| role_of_container(&log.name))
                .unwrap_or(Role::Executor);
            let mut diagnosis = Diagnosis::new(
                CauseKind::ContainerMemory,
                format!(
                    "a Spark {} container was killed (exit {}, {}) with memory pressure reported: most likely YARN or the kernel's OOM killer reclaimed it",
                    role.name(),
                    &code[1],
                    if &code[1] == "137" { "SIGKILL" } else { "SIGTERM" }
                ),
            );
            for (offset, window_line) in window.iter().enumerate() {
                let at = index.saturating_sub(5) + offset;
                if at == index || memory_context.is_match(window_line) {
                    diagnosis.evidence.push(log.evidence(at + 1, window_line));
                }
            }
            diagnosis.advice = container_advice(step, role, None);
            return Some(diagnosis);
        }
    }
    None
}

/// Which setting to raise and to what, from the measured use (MiB used, MiB limit) when the log
/// has it, else from the step's sizing plus 25 %.
fn container_advice(step: &StepContext, role: Role, measured: Option<(f64, f64)>) -> Vec<String> {
    let settings = role.settings(step);
    let prefix = format!("spark.{}", role.name());
    let heap = settings.memory_mib;
    let overhead = settings.effective_overhead_mib();
    let limit = measured
        .map(|(_, limit)| limit.round() as u64)
        .or_else(|| Some(heap? + overhead?));
    let target = match (measured, limit) {
        (Some((used, _)), _) => Some((used * HEADROOM).ceil() as u64),
        (None, Some(limit)) => Some((limit as f64 * HEADROOM).ceil() as u64),
        (None, None) => None,
    };
    let mut advice = Vec::new();
    let why = if step.native && role == Role::Executor {
        "the emrship-job processes the executor starts live outside the JVM heap, in the overhead"
    } else {
        "YARN counts everything outside the JVM heap (Python workers, native buffers, threads) against the overhead"
    };
    match (heap, target) {
        (Some(heap), Some(target)) => {
            let new_overhead = round_up_512(target.saturating_sub(heap)).max(
                overhead
                    .map(|o| round_up_512(o + 1))
                    .unwrap_or(512),
            );
            let from = overhead
                .map(|o| format!("from {} ", show_mib(o)))
                .unwrap_or_default();
            let basis = match measured {
                Some((used, _)) => format!(
                    "peak use {} × {HEADROOM} = {} container, minus the {} heap",
                    show_mib(used.ceil() as u64),
                    show_mib(target),
                    show_mib(heap)
                ),
                None => format!(
                    "the container {} × {HEADROOM} = {}, minus the {} heap",
                    show_mib(limit.unwrap_or(target)),
                    show_mib(target),
                    show_mib(heap)
                ),
            };
            advice.push(format!(
                "raise {prefix}.memoryOverhead {from}to at least {} ({basis}); {why}. In the spec: spark.executors.memory_overhead: {}m",
                show_mib(new_overhead),
                new_overhead
            ));
            advice.push(format!(
                "the container then needs {} of the node's yarn.nodemanager.resource.memory-mb: check it still fits with `emrship plan` / `emrship size{}`",
                show_mib(heap + new_overhead),
                if step.native { " --native" } else { "" }
            ));
        }
        (_, Some(target)) => advice.push(format!(
            "raise the {} container ({prefix}.memory + {prefix}.memoryOverhead) to at least {} (peak × {HEADROOM}), putting the increase into {prefix}.memoryOverhead; {why}",
            role.name(),
            show_mib(target)
        )),
        _ => advice.push(format!(
            "raise {prefix}.memoryOverhead by at least a quarter of the container size; {why}"
        )),
    }
    if role == Role::Executor {
        match settings.cores {
            Some(cores) if cores > 1 => {
                let fewer = match (measured, limit) {
                    (Some((used, _)), Some(limit)) => {
                        let per_task = used / cores as f64;
                        ((limit as f64 / HEADROOM / per_task).floor() as u32).clamp(1, cores - 1)
                    }
                    _ => (cores / 2).max(1),
                };
                advice.push(format!(
                    "or, keeping the container, run fewer tasks at once per executor: spark.executor.cores from {cores} to {fewer} (spec: spark.executors.cores){}",
                    if step.native {
                        "; each running task has its own emrship-job process"
                    } else {
                        ""
                    }
                ));
            }
            _ => advice.push(
                "or run fewer tasks at once per executor (spark.executor.cores, spec: spark.executors.cores)"
                    .to_string(),
            ),
        }
    }
    advice
}

pub(super) fn find_jvm_heap(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let oom = regex(r"java\.lang\.OutOfMemoryError: ?([^\r\n]*)");
    let driver_hint = regex(r#"(?i)in thread "(main|driver|dag-scheduler[^"]*)"|\bdriver\b"#);
    let mut best: Option<(&LogText, usize, &str, String, Role)> = None;
    for log in logs {
        let lines: Vec<&str> = log.text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !mentions(line, &["OutOfMemoryError"]) {
                continue;
            }
            let Some(found) = oom.captures(line) else {
                continue;
            };
            let near = &lines[index.saturating_sub(3)..(index + 1)];
            let role = role_of_container(&log.name)
                .or_else(|| {
                    near.iter()
                        .any(|l| driver_hint.is_match(l))
                        .then_some(Role::Driver)
                })
                .unwrap_or(Role::Executor);
            best = Some((log, index + 1, line, found[1].trim().to_string(), role));
        }
    }
    let (log, number, line, what, role) = best?;
    let heap_exhausted = what.is_empty()
        || what.contains("Java heap space")
        || what.contains("GC overhead limit exceeded")
        || what.contains("Requested array size");
    let settings = role.settings(step);
    let prefix = format!("spark.{}", role.name());
    let mut diagnosis = Diagnosis::new(
        CauseKind::JvmHeap,
        format!(
            "the Spark {} JVM ran out of memory (java.lang.OutOfMemoryError: {})",
            role.name(),
            if what.is_empty() { "heap" } else { &what }
        ),
    );
    diagnosis.evidence.push(log.evidence(number, line));
    if heap_exhausted {
        match settings.memory_mib {
            Some(heap) => {
                let raised = round_up_512((heap as f64 * 1.5).ceil() as u64);
                diagnosis.advice.push(format!(
                    "raise {prefix}.memory from {} to at least {} (× 1.5; spec: spark.executors.memory); the container grows by {}, check it still fits with `emrship plan`",
                    show_mib(heap),
                    show_mib(raised),
                    show_mib(raised - heap)
                ));
            }
            None => diagnosis.advice.push(format!(
                "raise {prefix}.memory (the JVM heap) by half (spec: spark.executors.memory)"
            )),
        }
        if role == Role::Executor {
            let cores = settings
                .cores
                .map(|c| format!(" from {c} to {}", (c / 2).max(1)))
                .unwrap_or_default();
            diagnosis.advice.push(format!(
                "or let fewer tasks share one heap: spark.executor.cores{cores}, or more, smaller partitions (spark.default.parallelism / spark.sql.shuffle.partitions × 2)"
            ));
        } else {
            diagnosis.advice.push(
                "the driver holds what it collects: collect less, or aggregate on the executors first"
                    .to_string(),
            );
        }
    } else {
        let overhead = settings
            .effective_overhead_mib()
            .map(|o| {
                format!(
                    " from {} to at least {}",
                    show_mib(o),
                    show_mib(round_up_512((o as f64 * 1.5) as u64))
                )
            })
            .unwrap_or_default();
        diagnosis.advice.push(format!(
            "this is off-heap memory ({what}), not the heap: raise {prefix}.memoryOverhead{overhead}"
        ));
    }
    Some(diagnosis)
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, LogText, StepContext};
    use super::*;

    fn native_step() -> StepContext {
        StepContext::from_step_args(
            &[
                "spark-submit",
                "--executor-cores",
                "5",
                "--executor-memory",
                "4096m",
                "--conf",
                "spark.executor.memoryOverhead=20480m",
                "--conf",
                "spark.executorEnv.EMRSHIP_JOB_BIN=./bundle/emrship-job",
            ]
            .map(String::from),
        )
    }

    const SPARK_DRIVER_LOG: &str = "\
24/11/21 06:14:02 INFO TaskSetManager: Starting task 17.0 in stage 0.0 (TID 17) (ip-10-0-1-23.ec2.internal, executor 3, partition 17, PROCESS_LOCAL, 7734 bytes)
24/11/21 06:14:09 INFO TaskSetManager: Finished task 12.0 in stage 0.0 (TID 12) in 61234 ms on ip-10-0-1-88.ec2.internal (executor 1) (13/30)
24/11/21 06:15:41 WARN YarnSchedulerBackend$YarnSchedulerEndpoint: Requesting driver to remove executor 3 for reason Container killed by YARN for exceeding physical memory limits. 30.1 GB of 24 GB physical memory used. Consider boosting spark.executor.memoryOverhead.
24/11/21 06:15:41 ERROR YarnScheduler: Lost executor 3 on ip-10-0-1-23.ec2.internal: Container killed by YARN for exceeding physical memory limits. 30.1 GB of 24 GB physical memory used. Consider boosting spark.executor.memoryOverhead.
24/11/21 06:15:41 WARN TaskSetManager: Lost task 17.0 in stage 0.0 (TID 17) (ip-10-0-1-23.ec2.internal executor 3): ExecutorLostFailure (executor 3 exited caused by one of the running tasks) Reason: Container killed by YARN for exceeding physical memory limits. 30.1 GB of 24 GB physical memory used. Consider boosting spark.executor.memoryOverhead.
24/11/21 06:15:42 INFO DAGScheduler: Executor lost: 3 (epoch 1)
";

    #[test]
    fn yarn_physical_memory_kill_of_native_work_raises_the_overhead() {
        let log = LogText::new(
            "containers/application_1732168000000_0001/container_1732168000000_0001_01_000001/stderr.gz",
            SPARK_DRIVER_LOG,
        );
        let diagnosis = diagnose(&[log], &native_step());
        assert_eq!(diagnosis.kind, CauseKind::ContainerMemory);
        assert!(diagnosis.cause.contains("executor"), "{}", diagnosis.cause);
        assert!(
            diagnosis.cause.ends_with("(30.1 GiB used of 24.0 GiB)"),
            "{}",
            diagnosis.cause
        );
        assert_eq!(diagnosis.evidence[0].line, 3);
        // 30.1 GiB = 30822.4 MiB → ×1.25 = 38529 MiB; minus the 4096 heap → 34433 → 34816 (512s).
        assert!(
            diagnosis.advice[0].starts_with(
                "raise spark.executor.memoryOverhead from 20480m (20 GiB) to at least 34816m (34 GiB)"
            ),
            "{}",
            diagnosis.advice[0]
        );
        assert!(diagnosis.advice[0].contains("emrship-job"));
        // 30.1 GiB over 5 tasks ≈ 6 GiB each; 24 GiB / 1.25 fits 3.
        assert!(
            diagnosis.advice[2].contains("spark.executor.cores from 5 to 3"),
            "{}",
            diagnosis.advice[2]
        );
    }

    #[test]
    fn node_manager_message_for_the_application_master_names_the_driver() {
        let log = LogText::new(
            "steps/s-2V3XJ1WQZK0LQ/stderr.gz",
            "\
24/11/21 07:02:11 INFO Client: Application report for application_1732168000000_0002 (state: RUNNING)
24/11/21 07:09:44 INFO Client: Application report for application_1732168000000_0002 (state: FAILED)
24/11/21 07:09:44 INFO Client:
\t client token: N/A
\t diagnostics: Application application_1732168000000_0002 failed 1 times due to AM Container for appattempt_1732168000000_0002_000001 exited with  exitCode: -104
Failing this attempt.Diagnostics: [2024-11-21 07:09:41.118]Container [pid=21877,containerID=container_1732168000000_0002_01_000001] is running 1210056704B beyond the 'PHYSICAL' memory limit. Current usage: 5.6 GB of 4.5 GB physical memory used; 8.4 GB of 22.5 GB virtual memory used. Killing container.
Dump of the process-tree for container_1732168000000_0002_01_000001 :
\t|- PID PPID PGRPID SESSID CMD_NAME USER_MODE_TIME(MILLIS) SYSTEM_TIME(MILLIS) VMEM_USAGE(BYTES) RSSMEM_USAGE(PAGES) FULL_CMD_LINE
",
        );
        let step = StepContext::from_step_args(
            &[
                "--driver-memory",
                "4g",
                "--conf",
                "spark.driver.memoryOverhead=512m",
            ]
            .map(String::from),
        );
        let diagnosis = diagnose(&[log], &step);
        assert_eq!(diagnosis.kind, CauseKind::ContainerMemory);
        assert!(diagnosis.cause.contains("driver"), "{}", diagnosis.cause);
        assert_eq!(diagnosis.evidence[0].line, 6);
        // 5.6 GiB = 5734.4 → ×1.25 = 7168 → minus 4096 heap = 3072.
        assert!(
            diagnosis.advice[0].starts_with(
                "raise spark.driver.memoryOverhead from 512m (0.5 GiB) to at least 3072m (3 GiB)"
            ),
            "{}",
            diagnosis.advice[0]
        );
    }

    #[test]
    fn exit_137_counts_only_with_memory_mentioned() {
        let with_memory = LogText::new(
            "steps/s-1/stderr.gz",
            "\
24/11/21 06:15:41 WARN TaskSetManager: Lost task 3.0 in stage 1.0 (TID 40) (ip-10-0-1-23.ec2.internal executor 2): ExecutorLostFailure (executor 2 exited caused by one of the running tasks) Reason: Container from a bad node: container_1732168000000_0001_01_000003 on host: ip-10-0-1-23.ec2.internal. Exit status: 137. Diagnostics: [2024-11-21 06:15:40.982]Container killed on request. Exit code is 137
[2024-11-21 06:15:40.983]Container exited with a non-zero exit code 137.
[2024-11-21 06:15:40.983]Killed by external signal
kernel: Out of memory: Killed process 30211 (emrship-job) total-vm:31457280kB, anon-rss:29360128kB
",
        );
        let diagnosis = diagnose(&[with_memory], &native_step());
        assert_eq!(diagnosis.kind, CauseKind::ContainerMemory);
        assert!(diagnosis.cause.contains("exit 137"), "{}", diagnosis.cause);
        // No numbers in the log: 4096 + 20480 = 24576 × 1.25 = 30720 − 4096 = 26624.
        assert!(
            diagnosis.advice[0].contains("to at least 26624m (26 GiB)"),
            "{}",
            diagnosis.advice[0]
        );

        let without = LogText::new(
            "steps/s-1/stderr.gz",
            "24/11/21 06:15:40 INFO YarnAllocator: Container killed on request. Exit code is 143\n24/11/21 06:15:40 INFO YarnAllocator: Removed executor 4 (idle)\n",
        );
        assert_ne!(
            diagnose(&[without], &native_step()).kind,
            CauseKind::ContainerMemory
        );
    }

    #[test]
    fn java_heap_space_raises_executor_memory() {
        let log = LogText::new(
            "containers/application_1732168000000_0003/container_1732168000000_0003_01_000004/stderr.gz",
            "\
24/11/21 08:01:12 INFO Executor: Running task 4.0 in stage 2.0 (TID 61)
24/11/21 08:03:55 ERROR Executor: Exception in task 4.0 in stage 2.0 (TID 61)
java.lang.OutOfMemoryError: Java heap space
\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)
\tat java.base/java.io.ByteArrayOutputStream.ensureCapacity(ByteArrayOutputStream.java:100)
24/11/21 08:03:55 ERROR SparkUncaughtExceptionHandler: Uncaught exception in thread Thread[Executor task launch worker for task 4.0 in stage 2.0 (TID 61),5,main]
",
        );
        let step = StepContext::from_step_args(
            &["--executor-memory", "18g", "--executor-cores", "4"].map(String::from),
        );
        let diagnosis = diagnose(&[log], &step);
        assert_eq!(diagnosis.kind, CauseKind::JvmHeap);
        assert_eq!(diagnosis.evidence[0].line, 3);
        assert!(
            diagnosis.advice[0].starts_with(
                "raise spark.executor.memory from 18432m (18 GiB) to at least 27648m (27 GiB)"
            ),
            "{}",
            diagnosis.advice[0]
        );
        assert!(diagnosis.advice[1].contains("spark.executor.cores from 4 to 2"));
    }
}
