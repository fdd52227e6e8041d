//! What the step's own arguments and the cluster say about the run: executor sizing, whether the
//! real work is the native `emrship-job` process, the release's glibc and the nodes' CPU.

use crate::sizing::catalog::Arch;
use crate::spec::release::ReleaseLabel;

/// Memory settings of one kind of Spark container (executor or driver), in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySettings {
    /// `spark.executor.memory` / `--executor-memory` (the JVM heap).
    pub memory_mib: Option<u64>,
    /// `spark.executor.memoryOverhead` (off-heap: where a native child process lives).
    pub overhead_mib: Option<u64>,
    pub cores: Option<u32>,
}

impl MemorySettings {
    /// The overhead Spark uses when none is set: 10 % of the heap, at least 384 MiB.
    pub fn effective_overhead_mib(&self) -> Option<u64> {
        self.overhead_mib
            .or_else(|| self.memory_mib.map(|heap| (heap / 10).max(384)))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepContext {
    /// The cluster's release label (`emr-7.5.0`).
    pub release_label: Option<String>,
    /// The CPU of the worker nodes, when known from their instance type.
    pub node_arch: Option<Arch>,
    /// The executors' real work is the `emrship-job` child process (counted against the
    /// container's overhead), not the JVM.
    pub native: bool,
    pub executor: MemorySettings,
    pub driver: MemorySettings,
}

impl StepContext {
    /// Reads a `command-runner.jar` step's args (`spark-submit …`).
    pub fn from_step_args(args: &[String]) -> StepContext {
        let mut context = StepContext {
            native: args
                .iter()
                .any(|arg| arg.contains("EMRSHIP_JOB_BIN") || arg.contains("emrship-job")),
            ..StepContext::default()
        };
        let mut index = 0;
        while index < args.len() {
            let arg = args[index].as_str();
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
                _ => (arg, None),
            };
            let takes_value = matches!(
                flag,
                "--conf"
                    | "--executor-memory"
                    | "--executor-cores"
                    | "--driver-memory"
                    | "--driver-cores"
            );
            if !takes_value {
                index += 1;
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => match args.get(index + 1) {
                    Some(value) => {
                        index += 1;
                        value.as_str()
                    }
                    None => break,
                },
            };
            index += 1;
            match flag {
                "--executor-memory" => context.set("spark.executor.memory", value),
                "--executor-cores" => context.set("spark.executor.cores", value),
                "--driver-memory" => context.set("spark.driver.memory", value),
                "--driver-cores" => context.set("spark.driver.cores", value),
                _ => {
                    if let Some((key, value)) = value.split_once('=') {
                        context.set(key.trim(), value.trim());
                    }
                }
            }
        }
        context
    }

    fn set(&mut self, key: &str, value: &str) {
        match key {
            "spark.executor.memory" => self.executor.memory_mib = parse_spark_memory_mib(value),
            "spark.executor.memoryOverhead" | "spark.yarn.executor.memoryOverhead" => {
                self.executor.overhead_mib = parse_spark_memory_mib(value)
            }
            "spark.executor.cores" => self.executor.cores = value.parse().ok(),
            "spark.driver.memory" => self.driver.memory_mib = parse_spark_memory_mib(value),
            "spark.driver.memoryOverhead" | "spark.yarn.driver.memoryOverhead" => {
                self.driver.overhead_mib = parse_spark_memory_mib(value)
            }
            "spark.driver.cores" => self.driver.cores = value.parse().ok(),
            _ => {}
        }
    }

    /// Highest glibc the release's nodes provide, with their OS's name.
    pub fn node_glibc(&self) -> Option<((u32, u32), String)> {
        let label = self.release_label.as_deref()?;
        if let Ok(release) = ReleaseLabel::parse(label) {
            return Some((release.glibc, release.os.to_string()));
        }
        // A release newer than emrship's list: the OS follows the major version.
        let major: u32 = label
            .strip_prefix("emr-")?
            .split('.')
            .next()?
            .parse()
            .ok()?;
        Some(if major >= 7 {
            ((2, 34), "Amazon Linux 2023".to_string())
        } else {
            ((2, 26), "Amazon Linux 2".to_string())
        })
    }
}

/// A Spark memory string in MiB: `4096m`, `4g`, `4gb`, `1t`, `512k`; a bare number is MiB.
pub fn parse_spark_memory_mib(value: &str) -> Option<u64> {
    let value = value.trim().to_ascii_lowercase();
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let number: u64 = value[..digits_end].parse().ok()?;
    let mib = match value[digits_end..].trim() {
        "" | "m" | "mb" => number,
        "g" | "gb" => number * 1024,
        "t" | "tb" => number * 1024 * 1024,
        "k" | "kb" => number.div_ceil(1024),
        "b" => number.div_ceil(1024 * 1024),
        _ => return None,
    };
    Some(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_sizing_from_spark_submit_args() {
        let context = StepContext::from_step_args(&args(&[
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--executor-cores",
            "5",
            "--executor-memory",
            "4096m",
            "--driver-memory=2g",
            "--conf",
            "spark.executor.memoryOverhead=53248m",
            "--conf",
            "spark.executorEnv.EMRSHIP_JOB_BIN=./bundle/emrship-job",
            "s3://bucket/driver.py",
            "match-rate",
        ]));
        assert!(context.native);
        assert_eq!(context.executor.memory_mib, Some(4096));
        assert_eq!(context.executor.overhead_mib, Some(53248));
        assert_eq!(context.executor.cores, Some(5));
        assert_eq!(context.driver.memory_mib, Some(2048));
        assert_eq!(context.driver.overhead_mib, None);
        assert_eq!(context.driver.effective_overhead_mib(), Some(384));
    }

    #[test]
    fn jvm_work_is_not_native() {
        let context = StepContext::from_step_args(&args(&[
            "spark-submit",
            "--conf",
            "spark.executor.memory=18g",
            "--class",
            "com.example.Main",
            "s3://bucket/app.jar",
        ]));
        assert!(!context.native);
        assert_eq!(context.executor.memory_mib, Some(18 * 1024));
        assert_eq!(context.executor.effective_overhead_mib(), Some(1843));
    }

    #[test]
    fn memory_strings() {
        assert_eq!(parse_spark_memory_mib("4096"), Some(4096));
        assert_eq!(parse_spark_memory_mib("4g"), Some(4096));
        assert_eq!(parse_spark_memory_mib("4GB"), Some(4096));
        assert_eq!(parse_spark_memory_mib("1t"), Some(1024 * 1024));
        assert_eq!(parse_spark_memory_mib("1536k"), Some(2));
        assert_eq!(parse_spark_memory_mib("lots"), None);
    }

    #[test]
    fn glibc_of_the_release() {
        let mut context = StepContext {
            release_label: Some("emr-6.15.0".into()),
            ..StepContext::default()
        };
        assert_eq!(context.node_glibc().unwrap().0, (2, 26));
        context.release_label = Some("emr-7.99.0".into());
        assert_eq!(
            context.node_glibc(),
            Some(((2, 34), "Amazon Linux 2023".to_string()))
        );
    }
}
