//! EMR release labels emrship knows, with the OS and glibc their nodes run.
//!
//! Sources: AWS EMR Release Guide release pages (emr-7.13.0 is the newest seen, April 2026) and
//! "Default AMI" / AL2023 glibc pages: emr-5.30+ and emr-6.x run Amazon Linux 2 (glibc 2.26),
//! emr-7.x Amazon Linux 2023 (glibc 2.34). Releases before 5.30 ran the older Amazon Linux AMI,
//! which emrship does not target.

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
        assert!(ReleaseLabel::parse("emr-5.29.0").is_err());
    }
}
