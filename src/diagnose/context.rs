//! What the step's own arguments and the cluster say about the run: executor sizing, whether the
//! real work is the native `emrship-job` process, what the step shipped (`--py-files`, `--files`,
//! `--archives`, `--jars`, `--class`, environment settings), the release's glibc, Python and Java,
//! and the nodes' CPU.

use std::collections::BTreeMap;

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
    /// What spark-submit shipped and how; empty when the step is not a spark-submit.
    pub submit: SubmitArgs,
}

/// The parts of a `spark-submit` command line a diagnosis of a user's application needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitArgs {
    /// `--deploy-mode` (`cluster` / `client`); Spark's default is client.
    pub deploy_mode: Option<String>,
    /// `--class`: the JVM application's main class.
    pub main_class: Option<String>,
    /// The application itself: the entry script or the application jar.
    pub app_resource: Option<String>,
    /// `--py-files`, `--files`, `--archives`, `--jars`: each a comma-separated list of URIs,
    /// possibly with a `#alias`.
    pub py_files: Vec<String>,
    pub files: Vec<String>,
    pub archives: Vec<String>,
    pub jars: Vec<String>,
    /// Every `--conf key=value`, the last value of a key winning as in spark-submit.
    pub conf: BTreeMap<String, String>,
}

/// One shipped resource: `s3://b/k/conf-1a2b.zip#conf` → base name `conf-1a2b.zip`, link name
/// (what the container's working directory holds) `conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped<'a> {
    pub uri: &'a str,
    pub base_name: &'a str,
    /// The `#alias` when given, else the base name: YARN links a resource into the container's
    /// working directory under this name.
    pub link_name: &'a str,
}

impl<'a> Shipped<'a> {
    pub fn parse(entry: &'a str) -> Shipped<'a> {
        let (uri, alias) = match entry.split_once('#') {
            Some((uri, alias)) if !alias.is_empty() => (uri, Some(alias)),
            _ => (entry, None),
        };
        let base_name = uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri);
        Shipped {
            uri: entry,
            base_name,
            link_name: alias.unwrap_or(base_name),
        }
    }
}

impl SubmitArgs {
    pub fn py_files(&self) -> impl Iterator<Item = Shipped<'_>> {
        self.py_files.iter().map(|entry| Shipped::parse(entry))
    }

    pub fn files(&self) -> impl Iterator<Item = Shipped<'_>> {
        self.files.iter().map(|entry| Shipped::parse(entry))
    }

    pub fn archives(&self) -> impl Iterator<Item = Shipped<'_>> {
        self.archives.iter().map(|entry| Shipped::parse(entry))
    }

    /// The `PYTHONPATH` the driver (the ApplicationMaster in cluster mode) and the executors get.
    pub fn driver_pythonpath(&self) -> Option<&str> {
        self.conf
            .get("spark.yarn.appMasterEnv.PYTHONPATH")
            .map(String::as_str)
    }

    pub fn executor_pythonpath(&self) -> Option<&str> {
        self.conf
            .get("spark.executorEnv.PYTHONPATH")
            .map(String::as_str)
    }

    /// The Python interpreter the step asks for (executors' setting first: they run the most
    /// Python processes), e.g. `/usr/bin/python3.11` or `./environment/bin/python`.
    pub fn pyspark_python(&self) -> Option<&str> {
        [
            "spark.pyspark.python",
            "spark.executorEnv.PYSPARK_PYTHON",
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON",
        ]
        .iter()
        .find_map(|key| self.conf.get(*key))
        .map(String::as_str)
    }

    pub fn is_python_app(&self) -> bool {
        self.app_resource
            .as_deref()
            .is_some_and(|resource| resource.ends_with(".py"))
            || !self.py_files.is_empty()
    }

    pub fn is_cluster_mode(&self) -> bool {
        self.deploy_mode.as_deref() == Some("cluster")
    }
}

/// spark-submit's options that take a value (Spark 3.5 `SparkSubmitOptionParser`); any other
/// `--option` is a switch, and the first argument that is neither is the application.
const SUBMIT_OPTIONS_WITH_VALUE: [&str; 27] = [
    "--master",
    "--deploy-mode",
    "--class",
    "--name",
    "--jars",
    "--packages",
    "--exclude-packages",
    "--repositories",
    "--py-files",
    "--files",
    "--archives",
    "--conf",
    "-c",
    "--properties-file",
    "--driver-memory",
    "--driver-java-options",
    "--driver-library-path",
    "--driver-class-path",
    "--executor-memory",
    "--proxy-user",
    "--driver-cores",
    "--total-executor-cores",
    "--executor-cores",
    "--queue",
    "--num-executors",
    "--principal",
    "--keytab",
];

impl StepContext {
    /// Reads a `command-runner.jar` step's args (`spark-submit …`). Options after the
    /// application (its own arguments) are not spark-submit's and are not read.
    pub fn from_step_args(args: &[String]) -> StepContext {
        let mut context = StepContext {
            native: args
                .iter()
                .any(|arg| arg.contains("EMRSHIP_JOB_BIN") || arg.contains("emrship-job")),
            ..StepContext::default()
        };
        let spark_submit = args
            .first()
            .is_some_and(|first| first == "spark-submit" || first.ends_with("/spark-submit"));
        let mut index = usize::from(spark_submit);
        while index < args.len() {
            let arg = args[index].as_str();
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
                _ => (arg, None),
            };
            if !SUBMIT_OPTIONS_WITH_VALUE.contains(&flag) {
                if spark_submit && !arg.starts_with('-') {
                    context.submit.app_resource = Some(arg.to_string());
                    break;
                }
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
            let list = |value: &str| -> Vec<String> {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|entry| !entry.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            match flag {
                "--executor-memory" => context.set("spark.executor.memory", value),
                "--executor-cores" => context.set("spark.executor.cores", value),
                "--driver-memory" => context.set("spark.driver.memory", value),
                "--driver-cores" => context.set("spark.driver.cores", value),
                "--deploy-mode" => context.submit.deploy_mode = Some(value.to_string()),
                "--class" => context.submit.main_class = Some(value.to_string()),
                "--py-files" => context.submit.py_files.extend(list(value)),
                "--files" => context.submit.files.extend(list(value)),
                "--archives" => context.submit.archives.extend(list(value)),
                "--jars" => context.submit.jars.extend(list(value)),
                "--conf" | "-c" => {
                    if let Some((key, value)) = value.split_once('=') {
                        let (key, value) = (key.trim(), value.trim());
                        context.set(key, value);
                        context
                            .submit
                            .conf
                            .insert(key.to_string(), value.to_string());
                    }
                }
                _ => {}
            }
        }
        // The same lists given as configuration rather than as options.
        let conf_lists = [
            ("spark.submit.pyFiles", 0),
            ("spark.files", 1),
            ("spark.yarn.dist.files", 1),
            ("spark.archives", 2),
            ("spark.yarn.dist.archives", 2),
            ("spark.jars", 3),
        ];
        for (key, which) in conf_lists {
            let Some(value) = context.submit.conf.get(key).cloned() else {
                continue;
            };
            let entries = value
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(str::to_string);
            match which {
                0 => context.submit.py_files.extend(entries),
                1 => context.submit.files.extend(entries),
                2 => context.submit.archives.extend(entries),
                _ => context.submit.jars.extend(entries),
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

    /// The release line's major version (`emr-7.5.0` → 7).
    fn release_major(&self) -> Option<u32> {
        self.release_label
            .as_deref()?
            .strip_prefix("emr-")?
            .split('.')
            .next()?
            .parse()
            .ok()
    }

    /// The Python versions the release's nodes have as `/usr/bin/python3.X`, the default first:
    /// the release table's (`spec::release::Runtime`); for a release newer than the table, the
    /// newest line's.
    pub fn node_pythons(&self) -> Vec<(u32, u32)> {
        match self.release() {
            Some(release) => release.runtime.pythons,
            None if self.release_major().is_some_and(|major| major >= 7) => vec![(3, 9), (3, 11)],
            None => Vec::new(),
        }
    }

    /// The Java feature version of the release's default JVM (the release table's).
    pub fn node_java(&self) -> Option<u32> {
        match self.release() {
            Some(release) => Some(release.runtime.java),
            None => self
                .release_major()
                .map(|major| if major >= 7 { 17 } else { 8 }),
        }
    }

    fn release(&self) -> Option<ReleaseLabel> {
        ReleaseLabel::parse(self.release_label.as_deref()?).ok()
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
    fn reads_what_a_pyspark_or_jvm_step_shipped() {
        let context = StepContext::from_step_args(&args(&[
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--py-files",
            "s3://b/app/modules-5e1f.zip",
            "--files",
            "s3://b/app/files/3c9a/app.ini,s3://b/app/files/7d1e/rules.json#rules.json",
            "--archives",
            "s3://b/app/conf-1a2b.zip#conf",
            "--archives=s3://b/app/deps-8f3e2a1b4c5d.zip#emrship_deps",
            "--conf",
            "spark.yarn.appMasterEnv.PYTHONPATH=./emrship_deps",
            "--conf",
            "spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3.11",
            "s3://b/app/main.py",
            // The application's own arguments are not spark-submit's.
            "--files",
            "not-shipped.ini",
        ]));
        let submit = &context.submit;
        assert!(submit.is_cluster_mode() && submit.is_python_app());
        assert_eq!(submit.app_resource.as_deref(), Some("s3://b/app/main.py"));
        assert_eq!(submit.py_files, vec!["s3://b/app/modules-5e1f.zip"]);
        let files: Vec<(&str, &str)> = submit.files().map(|f| (f.base_name, f.link_name)).collect();
        assert_eq!(
            files,
            vec![("app.ini", "app.ini"), ("rules.json", "rules.json")]
        );
        let archives: Vec<&str> = submit.archives().map(|a| a.link_name).collect();
        assert_eq!(archives, vec!["conf", "emrship_deps"]);
        assert_eq!(submit.driver_pythonpath(), Some("./emrship_deps"));
        assert_eq!(submit.executor_pythonpath(), None);
        assert_eq!(submit.pyspark_python(), Some("/usr/bin/python3.11"));

        let context = StepContext::from_step_args(&args(&[
            "spark-submit",
            "--class",
            "com.example.Main",
            "--jars",
            "s3://b/a.jar,s3://b/b.jar",
            "--conf",
            "spark.jars=s3://b/c.jar",
            "s3://b/app.jar",
        ]));
        assert_eq!(
            context.submit.main_class.as_deref(),
            Some("com.example.Main")
        );
        assert_eq!(
            context.submit.jars,
            vec!["s3://b/a.jar", "s3://b/b.jar", "s3://b/c.jar"]
        );
        assert!(!context.submit.is_python_app());
    }

    #[test]
    fn python_and_java_of_the_release() {
        let at = |label: &str| StepContext {
            release_label: Some(label.to_string()),
            ..StepContext::default()
        };
        assert_eq!(at("emr-6.15.0").node_pythons(), vec![(3, 7)]);
        assert_eq!(at("emr-7.0.0").node_pythons(), vec![(3, 9)]);
        assert_eq!(at("emr-7.5.0").node_pythons(), vec![(3, 9), (3, 11)]);
        assert_eq!(at("emr-6.15.0").node_java(), Some(8));
        assert_eq!(at("emr-7.5.0").node_java(), Some(17));
        assert_eq!(StepContext::default().node_java(), None);
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
