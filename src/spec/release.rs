//! EMR release labels emrship knows, with the OS and glibc their nodes run and the runtime a
//! user's application meets there (Python, Spark, Scala, Java).
//!
//! Sources: AWS EMR Release Guide release pages (emr-7.13.0 is the newest seen, April 2026) and
//! "Default AMI" / AL2023 glibc pages: emr-5.30+ and emr-6.x run Amazon Linux 2 (glibc 2.26),
//! emr-7.x Amazon Linux 2023 (glibc 2.34). Releases before 5.30 ran the older Amazon Linux AMI,
//! which emrship does not target.
//!
//! Runtimes (for packaging users' applications; see `Runtime`):
//! - Python: "Python 3 is the default for Amazon EMR version 5.30.0 and later" (emr-5300-release);
//!   6.x: 3.7 (6.15.0's table lists "2.7, 3.7", 3.7.10 seen on a node); 5.30–5.36: AL2's
//!   python3, 3.7 (derived from the OS, not confirmed on a node); emr-7.0.0 ships 3.9, emr-7.1.0 … 7.13.0 "3.9, 3.11" with 3.9 as `python3`
//!   (emr-release-app-versions-7.x). The interpreters live at /usr/bin/python3.X.
//! - Spark: 5.30–5.36 2.4; emr-6.0 2.4.4, 6.1/6.2 3.0, 6.3–6.5 3.1, 6.6/6.7 3.2, 6.8–6.11 3.3,
//!   6.12–6.15 3.4 (emr-release-app-versions-6.x); 7.x 3.5 (Spark-release-history: 7.8.0
//!   3.5.4 … 7.13.0 3.5.6). Only the minor version is kept: it is what a local pyspark must match.
//! - Scala: 2.11 on 5.x (Spark 2.4's default build), 2.12 on 6.x ("Scala 2.12 is used with
//!   Apache Spark", emr-600-release) and 7.x (2.12.18).
//! - Java: 8 on 5.x and 6.x (11/17 optional for some apps from 6.12, configuring-java8), 17 on
//!   7.x.

use serde::Serialize;

const KNOWN_RELEASES: &[&str] = &[
    "emr-5.30.0",
    "emr-5.30.1",
    "emr-5.30.2",
    "emr-5.31.0",
    "emr-5.31.1",
    "emr-5.32.0",
    "emr-5.32.1",
    "emr-5.33.0",
    "emr-5.33.1",
    "emr-5.34.0",
    "emr-5.35.0",
    "emr-5.36.0",
    "emr-5.36.1",
    "emr-5.36.2",
    "emr-6.0.0",
    "emr-6.0.1",
    "emr-6.1.0",
    "emr-6.1.1",
    "emr-6.2.0",
    "emr-6.2.1",
    "emr-6.3.0",
    "emr-6.3.1",
    "emr-6.4.0",
    "emr-6.5.0",
    "emr-6.6.0",
    "emr-6.7.0",
    "emr-6.8.0",
    "emr-6.8.1",
    "emr-6.9.0",
    "emr-6.9.1",
    "emr-6.10.0",
    "emr-6.10.1",
    "emr-6.11.0",
    "emr-6.11.1",
    "emr-6.12.0",
    "emr-6.13.0",
    "emr-6.14.0",
    "emr-6.15.0",
    "emr-7.0.0",
    "emr-7.1.0",
    "emr-7.2.0",
    "emr-7.3.0",
    "emr-7.4.0",
    "emr-7.5.0",
    "emr-7.6.0",
    "emr-7.7.0",
    "emr-7.8.0",
    "emr-7.9.0",
    "emr-7.10.0",
    "emr-7.11.0",
    "emr-7.12.0",
    "emr-7.13.0",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OperatingSystem {
    #[serde(rename = "Amazon Linux 2")]
    AmazonLinux2,
    #[serde(rename = "Amazon Linux 2023")]
    AmazonLinux2023,
}

impl std::fmt::Display for OperatingSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OperatingSystem::AmazonLinux2 => "Amazon Linux 2",
            OperatingSystem::AmazonLinux2023 => "Amazon Linux 2023",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseLabel {
    pub label: String,
    pub major: u32,
    pub minor: u32,
    pub os: OperatingSystem,
    /// Highest glibc symbol version a shipped binary may need, as (major, minor).
    pub glibc: (u32, u32),
    pub runtime: Runtime,
}

/// What a user's application meets on this release's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Runtime {
    /// The `python3` of the nodes, as (3, minor).
    pub default_python: (u32, u32),
    /// Every Python a spec may choose (`job.pyspark.python`), the default first.
    pub pythons: Vec<(u32, u32)>,
    /// Spark's (major, minor).
    pub spark: (u32, u32),
    /// Scala's binary version, e.g. "2.12".
    pub scala: &'static str,
    /// The JVM's feature version (8, 17).
    pub java: u32,
}

impl Runtime {
    fn of(major: u32, minor: u32) -> Runtime {
        let spark = match (major, minor) {
            (5, _) => (2, 4),
            (6, 0) => (2, 4),
            (6, 1..=2) => (3, 0),
            (6, 3..=5) => (3, 1),
            (6, 6..=7) => (3, 2),
            (6, 8..=11) => (3, 3),
            (6, _) => (3, 4),
            _ => (3, 5),
        };
        let pythons = match (major, minor) {
            (7, 0) => vec![(3, 9)],
            (7, _) => vec![(3, 9), (3, 11)],
            _ => vec![(3, 7)],
        };
        Runtime {
            default_python: pythons[0],
            pythons,
            spark,
            scala: if major == 5 { "2.11" } else { "2.12" },
            java: if major >= 7 { 17 } else { 8 },
        }
    }

    /// The class-file major version of the newest bytecode the nodes' JVM loads.
    pub fn max_class_file_major(&self) -> u16 {
        // Java N reads class files up to major 44 + N.
        44 + self.java as u16
    }
}

impl ReleaseLabel {
    pub fn parse(label: &str) -> Result<ReleaseLabel, String> {
        if !KNOWN_RELEASES.contains(&label) {
            return Err(label.to_string());
        }
        let mut numbers = label
            .trim_start_matches("emr-")
            .split('.')
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let major = numbers.next().unwrap_or(0);
        let minor = numbers.next().unwrap_or(0);
        let (os, glibc) = if major >= 7 {
            (OperatingSystem::AmazonLinux2023, (2, 34))
        } else {
            (OperatingSystem::AmazonLinux2, (2, 26))
        };
        Ok(ReleaseLabel {
            label: label.to_string(),
            major,
            minor,
            os,
            glibc,
            runtime: Runtime::of(major, minor),
        })
    }

    pub fn known() -> &'static [&'static str] {
        KNOWN_RELEASES
    }

    /// The Rust target a binary for this release is built for, with cargo-zigbuild's glibc
    /// suffix: `.2.26` runs on both Amazon Linux 2 and 2023.
    pub fn glibc_target_suffix(&self) -> String {
        format!(".{}.{}", self.glibc.0, self.glibc.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lines_map_to_their_os_and_glibc() {
        let seven = ReleaseLabel::parse("emr-7.5.0").unwrap();
        assert_eq!((seven.major, seven.minor, seven.glibc), (7, 5, (2, 34)));
        assert_eq!(seven.os, OperatingSystem::AmazonLinux2023);
        let six = ReleaseLabel::parse("emr-6.15.0").unwrap();
        assert_eq!(
            (six.os, six.glibc),
            (OperatingSystem::AmazonLinux2, (2, 26))
        );
        assert!(ReleaseLabel::parse("emr-7.99.0").is_err());
        assert_eq!(seven.runtime.pythons, vec![(3, 9), (3, 11)]);
        assert_eq!((seven.runtime.spark, seven.runtime.java), ((3, 5), 17));
        assert_eq!(seven.runtime.max_class_file_major(), 61);
        let seven_zero = ReleaseLabel::parse("emr-7.0.0").unwrap();
        assert_eq!(seven_zero.runtime.pythons, vec![(3, 9)]);
        assert_eq!(six.runtime.default_python, (3, 7));
        assert_eq!((six.runtime.spark, six.runtime.java), ((3, 4), 8));
        assert_eq!(six.runtime.max_class_file_major(), 52);
        let six_two = ReleaseLabel::parse("emr-6.2.0").unwrap();
        assert_eq!(six_two.runtime.spark, (3, 0));
        let five = ReleaseLabel::parse("emr-5.36.0").unwrap();
        assert_eq!((five.runtime.spark, five.runtime.scala), ((2, 4), "2.11"));
        assert!(ReleaseLabel::parse("emr-5.29.0").is_err());
    }
}
