//! Will this application jar run on the cluster's JVM and Spark? Read from the jar itself:
//! the newest class-file version among its classes, its `Main-Class`, the Scala binary version
//! it was built for, and whether it bundles Spark's own classes.
//!
//! | what | fails on the cluster as |
//! | --- | --- |
//! | a class newer than the node's Java (major 61 = Java 17 on a Java 8 node) | `UnsupportedClassVersionError` |
//! | Scala 2.13 code on Spark built with Scala 2.12 | `NoSuchMethodError` / `NoClassDefFoundError` for `scala.*` |
//! | Spark's own classes bundled (spark-core not `provided`) | class conflicts with the cluster's Spark |
//!
//! Class-file major versions: 52 = Java 8, 55 = 11, 61 = 17, 65 = 21 (Java N = 44 + N).
//! `module-info.class` and `META-INF/versions/N/` (multi-release jars) are left out of the
//! newest-version count: a Java 8 JVM never loads them.

use std::io::{Cursor, Read};

use super::app_problem::AppProblem;

/// Where the jar says it was built for a Scala binary version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalaEvidence {
    /// `2.12`, `2.13`, `3`.
    pub binary: String,
    /// What says so: `library.properties (version.number=2.13.14)`, `com.example:lib_2.13`.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JarFacts {
    /// `Main-Class` from `META-INF/MANIFEST.MF`.
    pub main_class: Option<String>,
    /// The highest class-file major version, and one class (`com/x/App.class`) that has it.
    pub newest_class: Option<(u16, String)>,
    pub class_count: usize,
    /// Every hint of the Scala binary version the jar's code was built for, in entry order.
    pub scala: Vec<ScalaEvidence>,
    /// `org/apache/spark/SparkContext.class` is inside: spark-core is bundled.
    pub bundles_spark_core: bool,
}

impl JarFacts {
    /// The Java feature release of the newest class (major 61 → 17).
    pub fn java_release(&self) -> Option<u16> {
        self.newest_class
            .as_ref()
            .map(|(major, _)| java_release_of_major(*major))
    }

    /// The Scala binary versions the evidence names, sorted and unique.
    pub fn scala_binaries(&self) -> Vec<&str> {
        let mut binaries: Vec<&str> = self.scala.iter().map(|e| e.binary.as_str()).collect();
        binaries.sort();
        binaries.dedup();
        binaries
    }
}

/// Java N compiles to class-file major 44 + N (Java 8 → 52, Java 17 → 61); majors below 49
/// are Java 1.x, reported as 1..4.
pub fn java_release_of_major(major: u16) -> u16 {
    major.saturating_sub(44)
}

/// The value of `key` in a MANIFEST.MF (continuation lines start with one space).
fn manifest_value(manifest: &str, key: &str) -> Option<String> {
    let mut logical: Vec<String> = Vec::new();
    for line in manifest.lines() {
        let line = line.trim_end_matches('\r');
        match (line.strip_prefix(' '), logical.last_mut()) {
            (Some(continued), Some(last)) => last.push_str(continued),
            _ => logical.push(line.to_string()),
        }
    }
    logical.iter().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case(key)
            .then(|| value.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

/// `2.13.14` → `2.13`; `3.3.1` → `3`.
fn scala_binary_of(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let major = parts.next()?;
    if major == "3" {
        return Some("3".into());
    }
    let minor = parts.next()?;
    (major == "2" && minor.chars().all(|c| c.is_ascii_digit()) && !minor.is_empty())
        .then(|| format!("2.{minor}"))
}

/// `spark-sql-kafka-0-10_2.12` → `2.12`; `scala3-library_3` → `3`.
fn scala_suffix(artifact: &str) -> Option<String> {
    let (_, suffix) = artifact.rsplit_once('_')?;
    match suffix {
        "3" => Some("3".into()),
        s if s.starts_with("2.") && s[2..].chars().all(|c| c.is_ascii_digit()) && s.len() > 2 => {
            Some(s.to_string())
        }
        _ => None,
    }
}

fn properties_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == key).then(|| value.trim().to_string())
    })
}

/// Reads the facts of a jar (its bytes). Errors say why it is not a jar.
pub fn inspect_jar(bytes: &[u8]) -> Result<JarFacts, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("it is not a jar (zip) file: {e}"))?;
    let mut facts = JarFacts::default();
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| format!("entry {index} cannot be read: {e}"))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map_err(|e| format!("entry {index} has an unreadable name: {e}"))?
            .into_owned();
        let read_text = |entry: &mut dyn Read| -> String {
            let mut text = String::new();
            let _ = entry.take(1 << 20).read_to_string(&mut text);
            text
        };
        if name.ends_with(".class") {
            if name == "org/apache/spark/SparkContext.class" {
                facts.bundles_spark_core = true;
            }
            if name.starts_with("META-INF/versions/") || name.ends_with("module-info.class") {
                continue;
            }
            let mut header = [0u8; 8];
            if entry.read_exact(&mut header).is_err() || header[..4] != [0xCA, 0xFE, 0xBA, 0xBE] {
                continue;
            }
            facts.class_count += 1;
            let major = u16::from_be_bytes([header[6], header[7]]);
            // Ties keep the first class in entry order, so the example is stable.
            if facts.newest_class.as_ref().is_none_or(|(m, _)| major > *m) {
                facts.newest_class = Some((major, name));
            }
        } else if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
            facts.main_class = manifest_value(&read_text(&mut entry), "Main-Class");
        } else if name == "library.properties" {
            let text = read_text(&mut entry);
            if let Some(version) = properties_value(&text, "version.number") {
                if let Some(binary) = scala_binary_of(&version) {
                    facts.scala.push(ScalaEvidence {
                        binary,
                        from: format!("library.properties (version.number={version})"),
                    });
                }
            }
        } else if let Some(rest) = name
            .strip_prefix("META-INF/maven/")
            .and_then(|r| r.strip_suffix("/pom.properties"))
        {
            let Some((group, artifact)) = rest.split_once('/') else {
                continue;
            };
            if group == "org.scala-lang" && artifact == "scala-library" {
                let text = read_text(&mut entry);
                if let Some(binary) =
                    properties_value(&text, "version").and_then(|v| scala_binary_of(&v))
                {
                    facts.scala.push(ScalaEvidence {
                        binary,
                        from: format!("{group}:{artifact}"),
                    });
                }
            } else if let Some(binary) = scala_suffix(artifact) {
                facts.scala.push(ScalaEvidence {
                    binary,
                    from: format!("{group}:{artifact}"),
                });
            }
        }
    }
    Ok(facts)
}

/// What the cluster runs jars with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JvmTarget {
    /// The nodes' Java feature release (8, 17).
    pub java: u16,
    /// Spark's Scala binary version (`2.12`).
    pub scala: String,
    /// For messages: `emr-7.5.0`.
    pub release: String,
}

/// Problems of a jar (`jar` names it in messages) on `target`.
pub fn check_jar(jar: &str, facts: &JarFacts, target: &JvmTarget) -> Vec<AppProblem> {
    let mut problems = Vec::new();
    if let Some((major, class)) = &facts.newest_class {
        let release = java_release_of_major(*major);
        if release > target.java {
            problems.push(AppProblem::new(
                jar,
                format!(
                    "has classes compiled for Java {release} (class file version {major}, e.g. {class}), but {} nodes run Java {}: the JVM refuses them with UnsupportedClassVersionError",
                    target.release, target.java
                ),
                format!(
                    "compile for Java {java}: javac/Maven `--release {java}` (maven.compiler.release={java}), Gradle `options.release = {java}`, sbt `javacOptions ++= Seq(\"--release\", \"{java}\")` and `scalacOptions += \"-release:{java}\"`; and check that no dependency needs a newer Java",
                    java = target.java
                ),
            ));
        }
    }
    let foreign: Vec<&ScalaEvidence> = facts
        .scala
        .iter()
        .filter(|e| e.binary != target.scala)
        .collect();
    if !foreign.is_empty() {
        let shown: Vec<String> = foreign
            .iter()
            .take(3)
            .map(|e| format!("{} from {}", e.binary, e.from))
            .collect();
        let more = foreign.len().saturating_sub(shown.len());
        problems.push(AppProblem::new(
            jar,
            format!(
                "is built for Scala {} ({}{}), but Spark on {} is built with Scala {}: Scala binary versions do not mix, it fails with NoSuchMethodError or NoClassDefFoundError for scala.* classes",
                foreign[0].binary,
                shown.join("; "),
                if more > 0 { format!("; and {more} more") } else { String::new() },
                target.release,
                target.scala
            ),
            format!(
                "build with Scala {scala} (sbt `scalaVersion := \"{scala}.x\"`) and use the `_{scala}` artifacts of every Scala library",
                scala = target.scala
            ),
        ));
    }
    if facts.bundles_spark_core {
        problems.push(AppProblem::new(
            jar,
            "bundles Spark's own classes (org/apache/spark/SparkContext.class): they clash with the cluster's Spark",
            "mark the Spark dependencies as provided (Maven `<scope>provided</scope>`, sbt `% \"provided\"`, Gradle `compileOnly`) and rebuild the assembly",
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::archive::{write_zip, ArchiveEntry};

    fn class(major: u16) -> Vec<u8> {
        let mut bytes = vec![0xCA, 0xFE, 0xBA, 0xBE, 0, 0];
        bytes.extend(major.to_be_bytes());
        bytes.extend([0u8; 16]);
        bytes
    }

    fn jar(entries: Vec<(&str, Vec<u8>)>) -> Vec<u8> {
        write_zip(
            entries
                .into_iter()
                .map(|(name, bytes)| ArchiveEntry {
                    name: name.to_string(),
                    bytes,
                    mode: 0o644,
                })
                .collect(),
        )
        .unwrap()
    }

    fn emr7() -> JvmTarget {
        JvmTarget {
            java: 17,
            scala: "2.12".into(),
            release: "emr-7.5.0".into(),
        }
    }

    #[test]
    fn newest_class_main_class_and_scala_2_12_from_library_properties() {
        let bytes = jar(vec![
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nMain-Class: com.example.analytics.DailyRollupJobWithAVeryLongNameThatW\r\n raps\r\nCreated-By: sbt\r\n".to_vec()),
            ("com/example/App.class", class(52)),
            ("com/example/Util.class", class(55)),
            ("com/example/Other.class", class(55)),
            ("module-info.class", class(65)),
            ("META-INF/versions/21/com/example/Util.class", class(65)),
            ("library.properties", b"version.number=2.12.18\nmaven.version.number=2.12.18\n".to_vec()),
            ("scala/Predef.class", class(52)),
        ]);
        let facts = inspect_jar(&bytes).unwrap();
        assert_eq!(
            facts.main_class.as_deref(),
            Some("com.example.analytics.DailyRollupJobWithAVeryLongNameThatWraps")
        );
        assert_eq!(
            facts.newest_class,
            Some((55, "com/example/Other.class".to_string()))
        );
        assert_eq!(facts.java_release(), Some(11));
        assert_eq!(facts.class_count, 4);
        assert_eq!(facts.scala_binaries(), ["2.12"]);
        assert!(!facts.bundles_spark_core);
        assert!(check_jar("app.jar", &facts, &emr7()).is_empty());
    }

    #[test]
    fn java_21_classes_on_java_17_nodes_are_refused_with_the_fix() {
        let facts = inspect_jar(&jar(vec![
            ("a/A.class", class(61)),
            ("a/B.class", class(65)),
        ]))
        .unwrap();
        let problems = check_jar("app.jar", &facts, &emr7());
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].message,
            "has classes compiled for Java 21 (class file version 65, e.g. a/B.class), but emr-7.5.0 nodes run Java 17: the JVM refuses them with UnsupportedClassVersionError"
        );
        assert!(
            problems[0].fix.contains("--release 17"),
            "{}",
            problems[0].fix
        );
        let java8 = JvmTarget { java: 8, ..emr7() };
        let facts = inspect_jar(&jar(vec![("a/A.class", class(61))])).unwrap();
        assert!(check_jar("app.jar", &facts, &java8)[0]
            .message
            .contains("Java 17 (class file version 61"));
    }

    #[test]
    fn scala_2_13_artifacts_and_bundled_spark_are_refused() {
        let facts = inspect_jar(&jar(vec![
            (
                "META-INF/maven/com.example/rollup_2.13/pom.properties",
                b"artifactId=rollup_2.13\nversion=1.0\n".to_vec(),
            ),
            (
                "META-INF/maven/org.scala-lang/scala-library/pom.properties",
                b"groupId=org.scala-lang\nartifactId=scala-library\nversion=2.13.14\n".to_vec(),
            ),
            (
                "META-INF/maven/org.apache.spark/spark-avro_2.12/pom.properties",
                b"version=3.5.1\n".to_vec(),
            ),
            (
                "META-INF/maven/com.google.guava/guava/pom.properties",
                b"version=33\n".to_vec(),
            ),
            ("org/apache/spark/SparkContext.class", class(52)),
        ]))
        .unwrap();
        assert_eq!(facts.scala_binaries(), ["2.12", "2.13"]);
        assert!(facts.bundles_spark_core);
        assert!(facts.main_class.is_none());
        let problems = check_jar("rollup.jar", &facts, &emr7());
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_eq!(
            problems[0].message,
            "is built for Scala 2.13 (2.13 from com.example:rollup_2.13; 2.13 from org.scala-lang:scala-library), but Spark on emr-7.5.0 is built with Scala 2.12: Scala binary versions do not mix, it fails with NoSuchMethodError or NoClassDefFoundError for scala.* classes"
        );
        assert!(problems[0].fix.contains("`_2.12` artifacts"));
        assert!(problems[1].message.contains("bundles Spark's own classes"));
    }

    #[test]
    fn not_a_jar_and_odd_classes() {
        assert!(inspect_jar(b"PK nope").unwrap_err().contains("not a jar"));
        let facts = inspect_jar(&jar(vec![("x/Broken.class", b"nope".to_vec())])).unwrap();
        assert_eq!(facts.class_count, 0);
        assert_eq!(facts.newest_class, None);
        assert_eq!(java_release_of_major(52), 8);
        assert_eq!(java_release_of_major(61), 17);
        assert_eq!(scala_suffix("scala3-library_3"), Some("3".into()));
        assert_eq!(
            scala_suffix("spark-sql-kafka-0-10_2.12"),
            Some("2.12".into())
        );
        assert_eq!(scala_suffix("my_lib"), None);
        assert_eq!(scala_binary_of("2.11.12"), Some("2.11".into()));
    }
}
