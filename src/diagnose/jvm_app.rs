//! A user's JVM application did not start or stopped for want of a class: the `--class` is not in
//! the application jar, a dependency jar is missing from `--jars`, or the jar was compiled for a
//! newer Java than the release's JVM.

use super::{mentions, regex, CauseKind, Diagnosis, Evidence, LogText, StepContext};

/// The Java release that writes a class file major version: 52 → 8, 55 → 11, 61 → 17, 65 → 21.
fn java_of_class_version(major: u32) -> Option<u32> {
    (major >= 49).then(|| major - 44)
}

pub(super) fn find_class_version(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let unsupported = regex(
        r"java\.lang\.UnsupportedClassVersionError: (\S+) has been compiled by a more recent version of the Java Runtime \(class file version (\d+)(?:\.\d+)?\), this version of the Java Runtime only recognizes class file versions up to (\d+)",
    );
    let mut found: Option<(&LogText, usize, &str, String, u32, u32)> = None;
    for log in logs {
        for (number, line) in log.numbered() {
            if !mentions(line, &["UnsupportedClassVersionError"]) {
                continue;
            }
            if let Some(c) = unsupported.captures(line) {
                if found.is_none() {
                    found = Some((
                        log,
                        number,
                        line,
                        c[1].replace('/', "."),
                        c[2].parse().unwrap_or(0),
                        c[3].parse().unwrap_or(0),
                    ));
                }
            }
        }
    }
    let (log, number, line, class, built, runs) = found?;
    let needs = java_of_class_version(built);
    let has = java_of_class_version(runs).or(step.node_java());
    let show = |java: Option<u32>, version: u32| match java {
        Some(java) => format!("Java {java} (class file version {version})"),
        None => format!("class file version {version}"),
    };
    let release = step
        .release_label
        .as_deref()
        .unwrap_or("the cluster's release");
    let mut diagnosis = Diagnosis::new(
        CauseKind::JavaVersionMismatch,
        format!(
            "{class} was compiled for {} but the JVM of {release} runs {}",
            show(needs, built),
            show(has, runs)
        ),
    );
    diagnosis.evidence.push(log.evidence(number, line));
    let which = where_the_class_is(&class, step);
    let target = has.unwrap_or(8);
    diagnosis.advice.push(format!(
        "compile {which} for Java {target}: `javac --release {target}`, Maven `<maven.compiler.release>{target}</maven.compiler.release>`, Gradle `java {{ toolchain {{ languageVersion = JavaLanguageVersion.of({target}) }} }}` or `options.release = {target}`; then `emrship deploy` (it checks every class file's version against the release before uploading)"
    ));
    match (needs, step.node_java()) {
        (Some(needs), Some(8)) if needs <= 17 => diagnosis.advice.push(format!(
            "or run on a release whose JVM is Java {needs} or newer: emr-7.x runs Java 17 (set cluster.release_label)"
        )),
        (Some(needs), _) if needs > 17 => diagnosis.advice.push(format!(
            "no EMR release emrship knows runs Java {needs} by default (emr-7.x runs Java 17): compiling for the release is the fix"
        )),
        _ => {}
    }
    Some(diagnosis)
}

/// "the application jar (app.jar)" or "the jar that holds it (one of --jars: a.jar, b.jar)".
fn where_the_class_is(class: &str, step: &StepContext) -> String {
    let package = |name: &str| name.rsplit_once('.').map(|(p, _)| p.to_string());
    let app_jar = step
        .submit
        .app_resource
        .as_deref()
        .map(|resource| resource.rsplit('/').next().unwrap_or(resource).to_string());
    let in_app = step.submit.main_class.as_deref().is_some_and(|main| {
        main == class || (package(main).is_some() && package(main) == package(class))
    });
    match (&app_jar, in_app) {
        (Some(jar), true) => format!("the application jar ({jar})"),
        (_, false) if !step.submit.jars.is_empty() => format!(
            "the jar that holds it (the application jar or one of --jars: {})",
            base_names(&step.submit.jars)
        ),
        _ => "the jar that holds it".to_string(),
    }
}

fn base_names(uris: &[String]) -> String {
    uris.iter()
        .map(|uri| uri.rsplit('/').next().unwrap_or(uri))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn find_missing_class(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    // Only where the exception is reported as thrown, not where a library logs a probe for an
    // optional class.
    let missing = regex(
        r#"(?:^\s*|Caused by: |Exception in thread "[^"]*" |[Ee]xception: |\): )java\.lang\.(ClassNotFoundException|NoClassDefFoundError): ([\w.$/]+)\s*$"#,
    );
    let failed_to_load = regex(r"Failed to load (?:main )?class ([\w.$]+)\.?\s*$");
    let app_frame = regex(r"^\s+at ([\w.$]+)\.[\w$<>]+\(([^)]*)\)");
    // A log4j line starts the next record: the stack trace ended.
    let log_record = regex(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d ");
    let mut hits: Vec<(&LogText, usize, &str, String)> = Vec::new();
    let mut referenced_from: Option<Evidence> = None;
    for log in logs {
        let lines: Vec<&str> = log.text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            if !mentions(
                line,
                &[
                    "ClassNotFoundException",
                    "NoClassDefFoundError",
                    "Failed to load",
                ],
            ) {
                continue;
            }
            let class = if let Some(c) = missing.captures(line) {
                c[2].replace('/', ".")
            } else if let Some(c) = failed_to_load.captures(line) {
                c[1].to_string()
            } else {
                continue;
            };
            // The first frame of the application's own code under it: what needed the class.
            if referenced_from.is_none() {
                referenced_from = lines
                    .iter()
                    .enumerate()
                    .skip(index + 1)
                    .take(40)
                    .take_while(|(_, l)| !log_record.is_match(l))
                    .find(|(_, l)| {
                        app_frame.captures(l).is_some_and(|c| {
                            let owner = &c[1];
                            ![
                                "java.",
                                "jdk.",
                                "sun.",
                                "scala.",
                                "org.apache.spark.",
                                "org.apache.hadoop.",
                            ]
                            .iter()
                            .any(|prefix| owner.starts_with(prefix))
                        })
                    })
                    .map(|(at, l)| log.evidence(at + 1, l));
            }
            hits.push((log, index + 1, line, class));
        }
    }
    let main_class = step.submit.main_class.as_deref();
    // The main class not loading explains everything after it; else the first missing class.
    let chosen = hits
        .iter()
        .find(|(.., class)| Some(class.as_str()) == main_class)
        .or(hits.first())?;
    let (log, number, line, class) = chosen;
    let jars = &step.submit.jars;
    let app_jar = step
        .submit
        .app_resource
        .as_deref()
        .map(|resource| resource.rsplit('/').next().unwrap_or(resource));
    let mut diagnosis = if Some(class.as_str()) == main_class {
        let mut diagnosis = Diagnosis::new(
            CauseKind::JvmClassMissing,
            format!(
                "the main class {class} (--class) is not in the application jar{}",
                app_jar.map(|jar| format!(" {jar}")).unwrap_or_default()
            ),
        );
        diagnosis.advice.push(format!(
            "check the spelling and package of the main class against the jar: `jar tf {} | grep {}` lists it as {}.class; set `job.jar.main_class` to that name",
            app_jar.unwrap_or("app.jar"),
            class.rsplit('.').next().unwrap_or(class),
            class.replace('.', "/")
        ));
        diagnosis.advice.push(
            "if the class is there, the jar shipped is not the one built: rebuild it and `emrship deploy` (it uploads the jar by content, so a changed jar gets a new key)".to_string(),
        );
        diagnosis
    } else {
        let mut diagnosis = Diagnosis::new(
            CauseKind::JvmClassMissing,
            format!(
                "the class {class} is on no jar of the application's classpath: a dependency jar is missing from --jars"
            ),
        );
        let shipped = if jars.is_empty() {
            "the step shipped no --jars".to_string()
        } else {
            format!("the step shipped --jars {}", base_names(jars))
        };
        diagnosis.advice.push(format!(
            "{shipped}: add the jar that holds {class} to `job.jar.jars` (shipped with --jars), or build the application as an assembly (\"uber\") jar with its dependencies in it (maven-shade-plugin, sbt-assembly), with Spark and Hadoop as `provided`"
        ));
        if class.starts_with("scala.") {
            diagnosis.advice.push(
                "a missing scala.* class means the jar was built for another Scala binary version than the release's Spark (Scala 2.12 on emr-6.x and emr-7.x)".to_string(),
            );
        }
        diagnosis
    };
    diagnosis.evidence.push(log.evidence(*number, line));
    if let Some(frame) = referenced_from {
        if Some(class.as_str()) != main_class {
            diagnosis.evidence.push(frame);
        }
    }
    Some(diagnosis)
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};
    use super::*;

    fn jvm_step(release: &str) -> StepContext {
        let args: Vec<String> = [
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--class",
            "com.example.sessions.Main",
            "--jars",
            "s3://b/emrship/sessions/jars/config-1.4.3-9a1b.jar,s3://b/emrship/sessions/jars/commons-csv-1.10.0-77c2.jar",
            "s3://b/emrship/sessions/sessions-app-3e4f.jar",
            "--date",
            "2024-11-20",
        ]
        .map(String::from)
        .to_vec();
        let mut step = StepContext::from_step_args(&args);
        step.release_label = Some(release.to_string());
        step
    }

    #[test]
    fn class_file_versions() {
        assert_eq!(java_of_class_version(52), Some(8));
        assert_eq!(java_of_class_version(55), Some(11));
        assert_eq!(java_of_class_version(61), Some(17));
        assert_eq!(java_of_class_version(65), Some(21));
        assert_eq!(java_of_class_version(12), None);
    }

    #[test]
    fn unsupported_class_version_names_both_javas() {
        let log = LogText::new(
            "containers/application_1732168000000_0008/container_1732168000000_0008_01_000001/stderr.gz",
            "\
24/11/21 06:00:20 ERROR ApplicationMaster: Uncaught exception: 
java.lang.UnsupportedClassVersionError: com/example/sessions/Main has been compiled by a more recent version of the Java Runtime (class file version 65.0), this version of the Java Runtime only recognizes class file versions up to 61.0
\tat java.base/java.lang.ClassLoader.defineClass1(Native Method)
",
        );
        let diagnosis = diagnose(&[log], &jvm_step("emr-7.5.0"));
        assert_eq!(diagnosis.kind, CauseKind::JavaVersionMismatch);
        assert_eq!(
            diagnosis.cause,
            "com.example.sessions.Main was compiled for Java 21 (class file version 65) but the JVM of emr-7.5.0 runs Java 17 (class file version 61)"
        );
        assert_eq!(diagnosis.evidence[0].line, 2);
        assert!(diagnosis.advice[0].starts_with(
            "compile the application jar (sessions-app-3e4f.jar) for Java 17: `javac --release 17`, Maven `<maven.compiler.release>17</maven.compiler.release>`"
        ), "{:?}", diagnosis.advice);
        assert!(diagnosis.advice[1].contains("no EMR release emrship knows runs Java 21"));

        // A Java 11 jar on emr-6.x (Java 8): a newer release is the other way out.
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "Exception in thread \"main\" java.lang.UnsupportedClassVersionError: com/typesafe/config/Config has been compiled by a more recent version of the Java Runtime (class file version 55.0), this version of the Java Runtime only recognizes class file versions up to 52.0\n",
        );
        let diagnosis = diagnose(&[log], &jvm_step("emr-6.15.0"));
        assert!(diagnosis.advice[0].starts_with("compile the jar that holds it (the application jar or one of --jars: config-1.4.3-9a1b.jar, commons-csv-1.10.0-77c2.jar) for Java 8"), "{:?}", diagnosis.advice);
        assert_eq!(
            diagnosis.advice[1],
            "or run on a release whose JVM is Java 11 or newer: emr-7.x runs Java 17 (set cluster.release_label)"
        );
    }

    #[test]
    fn main_class_not_in_the_jar() {
        let log = LogText::new(
            "containers/application_1732168000000_0008/container_1732168000000_0008_01_000001/stderr.gz",
            "\
24/11/21 06:00:20 ERROR ApplicationMaster: Uncaught exception: 
java.lang.ClassNotFoundException: com.example.sessions.Main
\tat java.base/java.net.URLClassLoader.findClass(URLClassLoader.java:445)
\tat org.apache.spark.deploy.yarn.ApplicationMaster.startUserApplication(ApplicationMaster.scala:722)
",
        );
        let diagnosis = diagnose(&[log], &jvm_step("emr-7.5.0"));
        assert_eq!(diagnosis.kind, CauseKind::JvmClassMissing);
        assert_eq!(
            diagnosis.cause,
            "the main class com.example.sessions.Main (--class) is not in the application jar sessions-app-3e4f.jar"
        );
        assert!(diagnosis.advice[0].contains("`jar tf sessions-app-3e4f.jar | grep Main` lists it as com/example/sessions/Main.class"));
    }

    #[test]
    fn dependency_class_missing_names_the_jars_shipped() {
        let log = LogText::new(
            "containers/application_1732168000000_0008/container_1732168000000_0008_01_000001/stderr.gz",
            "\
24/11/21 06:00:31 ERROR ApplicationMaster: User class threw exception: java.lang.NoClassDefFoundError: com/fasterxml/jackson/dataformat/yaml/YAMLFactory
java.lang.NoClassDefFoundError: com/fasterxml/jackson/dataformat/yaml/YAMLFactory
\tat com.example.sessions.Settings$.load(Settings.scala:18)
\tat com.example.sessions.Main$.main(Main.scala:11)
Caused by: java.lang.ClassNotFoundException: com.fasterxml.jackson.dataformat.yaml.YAMLFactory
\tat java.base/java.net.URLClassLoader.findClass(URLClassLoader.java:445)
24/11/21 06:00:31 DEBUG Shell: setsid exited with exit code 0 (ClassNotFoundException: org.apache.hadoop.optional.Probe probe)
",
        );
        let diagnosis = diagnose(&[log], &jvm_step("emr-7.5.0"));
        assert_eq!(
            diagnosis.cause,
            "the class com.fasterxml.jackson.dataformat.yaml.YAMLFactory is on no jar of the application's classpath: a dependency jar is missing from --jars"
        );
        assert_eq!(diagnosis.evidence.len(), 2);
        assert_eq!(diagnosis.evidence[1].line, 3);
        assert!(diagnosis.advice[0].starts_with(
            "the step shipped --jars config-1.4.3-9a1b.jar, commons-csv-1.10.0-77c2.jar: add the jar that holds com.fasterxml.jackson.dataformat.yaml.YAMLFactory to `job.jar.jars`"
        ));
    }
}
