//! A user's application could not find a file it reads (a config or data file not where it looks
//! in the container's working directory, or configparser's silent skip of a missing `.ini`), or
//! the Python interpreter the step names is not on the nodes.

use super::context::Shipped;
use super::pytrace::{self, Traceback};
use super::{mentions, regex, CauseKind, Diagnosis, LogText, StepContext};

const WORKING_DIRECTORY: &str = "in YARN cluster mode the driver and every executor run in their container's working directory (/mnt/yarn/usercache/hadoop/appcache/<application>/<container>/): each --files entry is linked there under its base name (or #alias), and each --archives entry is unpacked into a directory named after its #alias";

const PROVE: &str =
    "prove it with `emrship run <spec> --local`, which lays the files out as a container does";

pub(super) fn find_missing_file(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let not_found = regex(r"^\[Errno 2\] No such file or directory: '([^']+)'");
    let no_section = regex(r"^No section: '([^']+)'");
    let mut last_missing: Option<(Traceback, String)> = None;
    let mut last_section: Option<(Traceback, String)> = None;
    for log in logs {
        for traceback in pytrace::tracebacks(log) {
            let name = traceback.exception.as_str();
            if matches!(name, "FileNotFoundError" | "OSError" | "IOError") {
                if let Some(c) = not_found.captures(&traceback.message) {
                    let path = c[1].to_string();
                    // The binary diagnosis owns emrship-job; S3 paths are data, not local files.
                    if !path.contains("emrship-job") && !path.contains("://") {
                        last_missing = Some((traceback, path));
                    }
                }
            } else if name == "configparser.NoSectionError" {
                if let Some(c) = no_section.captures(&traceback.message) {
                    let section = c[1].to_string();
                    last_section = Some((traceback, section));
                }
            } else if name == "KeyError"
                && traceback
                    .frames
                    .last()
                    .is_some_and(|frame| frame.file.ends_with("/configparser.py"))
            {
                // `config["db"]` on a ConfigParser that read nothing.
                let section = traceback.message.trim_matches(['\'', '"']).to_string();
                last_section = Some((traceback, section));
            }
        }
    }
    if let Some((traceback, path)) = last_missing {
        return Some(missing_file(&traceback, &path, step));
    }
    let (traceback, section) = last_section?;
    Some(missing_section(&traceback, &section, step))
}

fn with_location(traceback: &Traceback) -> String {
    let location = traceback
        .app_frame()
        .map(|frame| {
            format!(
                " in {} ({})",
                frame.function,
                Traceback::frame_location(frame)
            )
        })
        .unwrap_or_default();
    format!("raised by {}{location}", traceback.raised_by())
}

fn evidence_of(traceback: &Traceback, diagnosis: &mut Diagnosis) {
    if let Some(frame) = traceback.app_frame() {
        diagnosis.evidence.extend(traceback.frame_evidence(frame));
    }
    diagnosis.evidence.push(traceback.exception_evidence());
}

fn missing_file(traceback: &Traceback, path: &str, step: &StepContext) -> Diagnosis {
    let mut diagnosis = Diagnosis::new(
        CauseKind::AppFileMissing,
        format!(
            "the application could not open '{path}' in the container's working directory ({})",
            with_location(traceback)
        ),
    );
    evidence_of(traceback, &mut diagnosis);
    diagnosis.advice.push(WORKING_DIRECTORY.to_string());
    diagnosis.advice.push(path_advice(path, step));
    diagnosis.advice.push(PROVE.to_string());
    diagnosis
}

/// What the path an application opened needs shipped, against what the step shipped.
fn path_advice(path: &str, step: &StepContext) -> String {
    let relative = path.strip_prefix("./").unwrap_or(path);
    let file_name = relative.rsplit('/').next().unwrap_or(relative);
    let submit = &step.submit;
    if let Some(inside) = path.find(".zip/").map(|at| &path[..at + 4]) {
        format!(
            "'{path}' is inside {}, a zip on the Python path: Python imports modules from a zip but open() cannot read files in one; ship the file with job.pyspark.files and read it by its path relative to the working directory",
            inside.rsplit('/').next().unwrap_or(inside)
        )
    } else if path.starts_with('/') {
        format!(
            "'{path}' is an absolute path, from the machine the application was written on: read it relative to the working directory (e.g. './{file_name}') and ship it with job.pyspark.files"
        )
    } else if let Some((directory, _)) = relative.split_once('/') {
        match submit.archives().find(|archive| archive.link_name == directory) {
            Some(archive) => format!(
                "an archive is shipped as #{directory} ({}), so ./{directory}/ exists, but without {}: the archive must hold the directory's contents at its root",
                archive.uri,
                &relative[directory.len() + 1..]
            ),
            None => {
                // `--files data/app.ini` ships the file, but under its base name only.
                let by_base_name = submit
                    .files()
                    .find(|file| file.link_name == file_name)
                    .map(|file| {
                        format!(
                            "; {file_name} itself is shipped with --files ({}), but by base name: it is ./{file_name}, not ./{relative}",
                            file.uri
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "nothing is shipped under the name {directory}: a path with a directory needs that directory shipped as an archive under that alias: list it in job.pyspark.files (`files: [{directory}]` → `--archives …#{directory}`), so that ./{relative} exists in every container{}{by_base_name}",
                    shipped_summary(step)
                )
            }
        }
    } else {
        match submit.files().find(|file| file.link_name == file_name) {
            Some(file) if !submit.is_cluster_mode() => format!(
                "{file_name} is shipped with --files ({}), but in client mode the driver runs on the primary node in the step's own directory, where --files do not land: submit in cluster mode",
                file.uri
            ),
            Some(file) => format!(
                "{file_name} is shipped with --files ({}): read it from the working directory of the process that opens it (the driver's is not an executor's), not relative to a module's __file__",
                file.uri
            ),
            None => format!(
                "{file_name} is not shipped: list it in job.pyspark.files (`files: [{file_name}]`) so that it is linked into every container's working directory{}",
                shipped_summary(step)
            ),
        }
    }
}

fn missing_section(traceback: &Traceback, section: &str, step: &StepContext) -> Diagnosis {
    let mut diagnosis = Diagnosis::new(
        CauseKind::AppFileMissing,
        format!(
            "the application's configuration has no section '{section}' ({}): configparser.read() skips a file it cannot open without an error, so the .ini file was most likely not at the path the application reads in the container's working directory",
            with_location(traceback)
        ),
    );
    evidence_of(traceback, &mut diagnosis);
    diagnosis.advice.push(WORKING_DIRECTORY.to_string());
    // The path the application passed, when a frame's source line shows it.
    let config_path = regex(r#"['"]([^'"\s]+\.(?:ini|cfg|conf|config|properties))['"]"#);
    let read = traceback.frames.iter().rev().find_map(|frame| {
        let code = frame.code.as_deref()?;
        let path = config_path.captures(code)?[1].to_string();
        Some((frame, path))
    });
    match read {
        Some((frame, path)) => {
            diagnosis.advice.push(format!(
                "the application reads '{path}' ({}): {}",
                Traceback::frame_location(frame),
                path_advice(&path, step)
            ));
            diagnosis.evidence.extend(traceback.frame_evidence(frame));
            diagnosis.evidence.sort_by_key(|evidence| evidence.line);
            diagnosis.evidence.dedup();
        }
        None => diagnosis.advice.push(format!(
            "a path with a directory ('./conf/app.ini') needs that directory shipped as an archive under that alias (job.pyspark.files: [conf] → ./conf/…); a bare file name needs the file in job.pyspark.files{}",
            shipped_summary(step)
        )),
    }
    diagnosis.advice.push(
        "check what read() returns (the files it did read) and fail when it is empty, so a missing file is reported where it happens".to_string(),
    );
    diagnosis.advice.push(PROVE.to_string());
    diagnosis
}

/// "; the step shipped --files app.ini and --archives conf.zip#conf".
fn shipped_summary(step: &StepContext) -> String {
    let describe = |shipped: Shipped| {
        if shipped.link_name == shipped.base_name {
            shipped.base_name.to_string()
        } else {
            format!("{}#{}", shipped.base_name, shipped.link_name)
        }
    };
    let files: Vec<String> = step.submit.files().map(describe).collect();
    let archives: Vec<String> = step.submit.archives().map(describe).collect();
    let mut parts = Vec::new();
    if !files.is_empty() {
        parts.push(format!("--files {}", files.join(", ")));
    }
    if !archives.is_empty() {
        parts.push(format!("--archives {}", archives.join(", ")));
    }
    if parts.is_empty() {
        "; the step shipped no --files and no --archives".to_string()
    } else {
        format!("; the step shipped {}", parts.join(" and "))
    }
}

/// `Cannot run program "/usr/bin/python3.11": error=2, No such file or directory`: Spark could
/// not start the Python the step names.
pub(super) fn find_missing_interpreter(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let cannot_run = regex(
        r#"Cannot run program "([^"]+)"(?: \(in directory "[^"]*"\))?: error=2, No such file or directory"#,
    );
    let mut found: Option<(&LogText, usize, &str, String)> = None;
    let mut on_executor = false;
    let mut on_driver = false;
    for log in logs {
        for (number, line) in log.numbered() {
            if !mentions(line, &["Cannot run program"]) {
                continue;
            }
            let Some(c) = cannot_run.captures(line) else {
                continue;
            };
            let program = c[1].to_string();
            if !program.contains("python") {
                continue;
            }
            let executor = pytrace::is_executor_container(&log.name)
                || line.contains("Lost task")
                || line.contains("Exception in task");
            on_executor |= executor;
            on_driver |= !executor;
            if found.is_none() {
                found = Some((log, number, line, program));
            }
        }
    }
    let (log, number, line, program) = found?;
    let whose = match (on_driver, on_executor) {
        (true, true) => "the driver and the executors",
        (false, true) => "the executors",
        _ => "the driver",
    };
    let mut diagnosis = Diagnosis::new(
        CauseKind::PythonInterpreterMissing,
        format!("the Python interpreter {program} the step names does not exist on the nodes ({whose} could not start it)"),
    );
    diagnosis.evidence.push(log.evidence(number, line));
    let node_pythons: Vec<String> = step
        .node_pythons()
        .iter()
        .map(|(major, minor)| format!("{major}.{minor}"))
        .collect();
    let release = step
        .release_label
        .as_deref()
        .unwrap_or("the cluster's release");
    if let Some(alias) = program
        .strip_prefix("./")
        .and_then(|rest| rest.split_once('/'))
        .map(|(alias, _)| alias)
    {
        match step.submit.archives().find(|archive| archive.link_name == alias) {
            Some(archive) => diagnosis.advice.push(format!(
                "the environment archive {} is unpacked as ./{alias}, but {program} is not in it or is a link to an interpreter on the machine that built it (venv-pack and `python -m venv` link the interpreter, they do not copy it): use the node's interpreter (/usr/bin/python3.X) with the dependencies on PYTHONPATH, as emrship's plan does",
                archive.base_name
            )),
            None => diagnosis.advice.push(format!(
                "no archive is shipped under the alias {alias}, so ./{alias}/ does not exist in the containers"
            )),
        }
    } else {
        let wanted = program
            .rsplit("python")
            .next()
            .filter(|version| version.contains('.'))
            .map(str::to_string);
        let have = if node_pythons.is_empty() {
            String::new()
        } else {
            format!(
                " {release} nodes have Python {};",
                node_pythons.join(" and ")
            )
        };
        match wanted {
            Some(version) => diagnosis.advice.push(format!(
                "{program} is Python {version}:{have} choose a release whose nodes have Python {version}{} or set the spec's `python:` to a version the nodes have, then `emrship plan` and submit again",
                if version == "3.11" { " (emr-7.1.0 or later)" } else { "" }
            )),
            None => diagnosis.advice.push(format!(
                "{program} is not on the nodes:{have} set the spec's `python:` to a version the nodes have"
            )),
        }
    }
    Some(diagnosis)
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};

    fn step(extra: &[&str]) -> StepContext {
        let mut args = vec![
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--py-files",
            "s3://b/emrship/sessions/modules-5e1f0c2a9b7d.zip",
            "--files",
            "s3://b/emrship/sessions/files/3c9a/app.ini",
            "--archives",
            "s3://b/emrship/sessions/deps-8f3e2a1b4c5d.zip#emrship_deps",
        ];
        args.extend_from_slice(extra);
        args.push("s3://b/emrship/sessions/main-77aa.py");
        let mut step =
            StepContext::from_step_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        step.release_label = Some("emr-7.0.0".to_string());
        step
    }

    const DRIVER_STDOUT: &str = "containers/application_1732168000000_0005/container_1732168000000_0005_01_000001/stdout.gz";

    #[test]
    fn a_path_with_a_directory_needs_an_archive_under_that_alias() {
        let log = LogText::new(
            DRIVER_STDOUT,
            "\
Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0005/container_1732168000000_0005_01_000001/main-77aa.py\", line 11, in <module>
    settings = load_settings(\"./data/app.ini\")
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0005/container_1732168000000_0005_01_000001/modules-5e1f0c2a9b7d.zip/sessions/settings.py\", line 8, in load_settings
    with open(path) as handle:
FileNotFoundError: [Errno 2] No such file or directory: './data/app.ini'
",
        );
        let diagnosis = diagnose(&[log], &step(&[]));
        assert_eq!(diagnosis.kind, CauseKind::AppFileMissing);
        assert_eq!(
            diagnosis.cause,
            "the application could not open './data/app.ini' in the container's working directory (raised by the driver in load_settings (settings.py:8))"
        );
        let lines: Vec<usize> = diagnosis.evidence.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(
            diagnosis.advice[1].starts_with("nothing is shipped under the name data: a path with a directory needs that directory shipped as an archive under that alias: list it in job.pyspark.files (`files: [data]` → `--archives …#data`), so that ./data/app.ini exists in every container; the step shipped --files app.ini and --archives deps-8f3e2a1b4c5d.zip#emrship_deps"),
            "{:?}",
            diagnosis.advice
        );
        assert!(diagnosis.also.is_empty(), "{:?}", diagnosis.also);

        // Shipped under the alias, but the file is not at the archive's root.
        let log = LogText::new(
            DRIVER_STDOUT,
            "\
Traceback (most recent call last):
  File \"/mnt/x/main-77aa.py\", line 2, in <module>
    open(\"data/app.ini\")
FileNotFoundError: [Errno 2] No such file or directory: 'data/app.ini'
",
        );
        let diagnosis = diagnose(
            &[log],
            &step(&["--archives", "s3://b/emrship/sessions/data-1a2b.zip#data"]),
        );
        assert!(
            diagnosis.advice[1].starts_with("an archive is shipped as #data (s3://b/emrship/sessions/data-1a2b.zip#data), so ./data/ exists, but without app.ini"),
            "{:?}",
            diagnosis.advice
        );
    }

    #[test]
    fn configparser_silently_skipped_the_file() {
        let log = LogText::new(
            DRIVER_STDOUT,
            "\
Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0005/container_1732168000000_0005_01_000001/main-77aa.py\", line 14, in <module>
    url = config[\"db\"][\"url\"]
  File \"/usr/lib64/python3.9/configparser.py\", line 963, in __getitem__
    raise KeyError(key)
KeyError: 'db'
",
        );
        let diagnosis = diagnose(&[log], &step(&[]));
        assert_eq!(diagnosis.kind, CauseKind::AppFileMissing);
        assert!(
            diagnosis.cause.starts_with("the application's configuration has no section 'db' (raised by the driver in <module> (main-77aa.py:14)): configparser.read() skips a file it cannot open"),
            "{}",
            diagnosis.cause
        );
        // The application's line, not configparser's.
        assert_eq!(diagnosis.evidence[0].line, 2);

        let log = LogText::new(
            DRIVER_STDOUT,
            "\
Traceback (most recent call last):
  File \"/mnt/x/main.py\", line 15, in <module>
    host = config.get(\"db\", \"host\")
  File \"/usr/lib64/python3.9/configparser.py\", line 781, in get
    d = self._unify_values(section, vars)
  File \"/usr/lib64/python3.9/configparser.py\", line 1152, in _unify_values
    raise NoSectionError(section) from None
configparser.NoSectionError: No section: 'db'
",
        );
        let diagnosis = diagnose(&[log], &step(&[]));
        assert!(
            diagnosis.cause.contains("has no section 'db'"),
            "{}",
            diagnosis.cause
        );

        // Any other KeyError is not about configuration.
        let log = LogText::new(
            DRIVER_STDOUT,
            "Traceback (most recent call last):\n  File \"/mnt/x/main.py\", line 3, in <module>\n    row[\"db\"]\nKeyError: 'db'\n",
        );
        assert_eq!(
            diagnose(&[log], &step(&[])).kind,
            CauseKind::PythonTraceback
        );
    }

    #[test]
    fn interpreter_the_nodes_lack() {
        let log = LogText::new(
            "containers/application_1732168000000_0005/container_1732168000000_0005_01_000001/stderr.gz",
            "24/11/21 06:00:21 ERROR ApplicationMaster: User class threw exception: java.io.IOException: Cannot run program \"/usr/bin/python3.11\": error=2, No such file or directory\n",
        );
        let diagnosis = diagnose(&[log], &step(&[]));
        assert_eq!(diagnosis.kind, CauseKind::PythonInterpreterMissing);
        assert_eq!(
            diagnosis.cause,
            "the Python interpreter /usr/bin/python3.11 the step names does not exist on the nodes (the driver could not start it)"
        );
        assert_eq!(
            diagnosis.advice[0],
            "/usr/bin/python3.11 is Python 3.11: emr-7.0.0 nodes have Python 3.9; choose a release whose nodes have Python 3.11 (emr-7.1.0 or later) or set the spec's `python:` to a version the nodes have, then `emrship plan` and submit again"
        );

        let log = LogText::new(
            "containers/application_1/container_1_0005_01_000003/stderr.gz",
            "java.io.IOException: Cannot run program \"./environment/bin/python\": error=2, No such file or directory\n",
        );
        let diagnosis = diagnose(&[log], &step(&[]));
        assert!(diagnosis
            .cause
            .contains("(the executors could not start it)"));
        assert_eq!(
            diagnosis.advice[0],
            "no archive is shipped under the alias environment, so ./environment/ does not exist in the containers"
        );
    }
}
