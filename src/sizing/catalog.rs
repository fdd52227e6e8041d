//! EC2 instance types that EMR runs, with the memory YARN may hand out on each.
//!
//! Executor sizing must start from `yarn.nodemanager.resource.memory-mb`, not from the instance's
//! RAM: EMR keeps part of the RAM for the OS and the Hadoop daemons, and a container request
//! above the YARN figure is rejected. EMR does not expose that figure through any API
//! (`ListSupportedInstanceTypes` returns vCPU, RAM and architecture only), so it lives here.

use std::fmt;

use Arch::{Arm64, X86_64};

/// CPU architecture of an instance type; it decides which build of the Rust job a node can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    /// AWS Graviton.
    Arm64,
}

impl Arch {
    /// The Rust target triple of binaries that run on this architecture under EMR's glibc-based
    /// Amazon Linux.
    pub fn rust_target_triple(&self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        })
    }
}

/// One EC2 instance type as EMR configures it by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct InstanceType {
    /// Exact EC2 name, e.g. `m5.4xlarge`.
    pub name: &'static str,
    pub vcpu: u32,
    /// EC2 RAM. Informational only: sizing uses `yarn_memory_mib`.
    pub memory_gib: u32,
    /// EMR's default `yarn.nodemanager.resource.memory-mb` (no HBase installed): the memory one
    /// node offers to YARN containers.
    pub yarn_memory_mib: u32,
    pub arch: Arch,
}

impl InstanceType {
    /// The family part of the name: `r7g` for `r7g.4xlarge`.
    pub fn family(&self) -> &'static str {
        self.name.split('.').next().unwrap_or(self.name)
    }

    /// False for rows whose YARN memory was not read from the AWS table but copied from a sibling
    /// family (see `DERIVED_FAMILIES`); a plan may want to say so.
    pub fn yarn_memory_confirmed(&self) -> bool {
        !DERIVED_FAMILIES.contains(&self.family())
    }
}

/// Families whose YARN memory is copied from a sibling family rather than read from the AWS
/// table: `r7g` from `r7gd` (and `r7g.xlarge` from `r6g.xlarge`), `c7g` from `c7gn`.
const DERIVED_FAMILIES: &[&str] = &["r7g", "c7g"];

/// Looks up an instance type by its exact EC2 name (`m5.4xlarge`). Names are case-sensitive, as
/// in the EMR API.
pub fn lookup(name: &str) -> Option<&'static InstanceType> {
    CATALOG
        .binary_search_by(|row| row.name.cmp(name))
        .ok()
        .map(|index| &CATALOG[index])
}

/// Every known instance type, sorted by name (byte order), e.g. for did-you-mean suggestions.
pub fn all() -> &'static [InstanceType] {
    &CATALOG
}

/// The catalog, sorted at compile time so `lookup` can binary-search it.
static CATALOG: [InstanceType; ROWS_AS_LISTED.len()] = sorted_by_name(ROWS_AS_LISTED);

const fn row(
    name: &'static str,
    vcpu: u32,
    memory_gib: u32,
    yarn_memory_mib: u32,
    arch: Arch,
) -> InstanceType {
    InstanceType {
        name,
        vcpu,
        memory_gib,
        yarn_memory_mib,
        arch,
    }
}

/// YARN memory: the "Default value" column of `yarn.nodemanager.resource.memory-mb` in the AWS EMR
/// Release Guide "Task configuration" page,
/// <https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-hadoop-task-config.html>
/// (values for the EMR 7.x releases; m5, r5, c5, m4, m6g, r6g and c6g also match the 2022 copy in
/// `awsdocs/amazon-emr-release-guide`). The "With HBase installed" column is much lower and is not
/// used: emrship clusters do not install HBase.
///
/// vCPU and RAM are the EC2 sizes: xlarge = 4 vCPU, each size step scales linearly, and RAM is
/// 4 GiB per vCPU for `m`, 8 for `r`, 2 for `c`. A `g` after the generation digit means Graviton.
///
/// Rows that differ from what the name suggests are kept as the table has them: variants with a
/// `d`/`n` suffix do not always equal their base type, and m7g.12xlarge / m6a.12xlarge have
/// 179200 where m6g/m6i/m7i have 181248.
const ROWS_AS_LISTED: &[InstanceType] = &[
    // General purpose, x86.
    row("m4.xlarge", 4, 16, 12288, X86_64),
    row("m4.2xlarge", 8, 32, 24576, X86_64),
    row("m4.4xlarge", 16, 64, 57344, X86_64),
    row("m4.10xlarge", 40, 160, 155648, X86_64),
    row("m4.16xlarge", 64, 256, 253952, X86_64),
    row("m5.xlarge", 4, 16, 12288, X86_64),
    row("m5.2xlarge", 8, 32, 24576, X86_64),
    row("m5.4xlarge", 16, 64, 57344, X86_64),
    row("m5.8xlarge", 32, 128, 122880, X86_64),
    row("m5.12xlarge", 48, 192, 188416, X86_64),
    row("m5.16xlarge", 64, 256, 253952, X86_64),
    row("m5.24xlarge", 96, 384, 385024, X86_64),
    row("m6i.xlarge", 4, 16, 11712, X86_64),
    row("m6i.2xlarge", 8, 32, 23424, X86_64),
    row("m6i.4xlarge", 16, 64, 54272, X86_64),
    row("m6i.8xlarge", 32, 128, 116736, X86_64),
    row("m6i.12xlarge", 48, 192, 181248, X86_64),
    row("m6i.16xlarge", 64, 256, 241664, X86_64),
    row("m6i.24xlarge", 96, 384, 366592, X86_64),
    row("m6i.32xlarge", 128, 512, 491520, X86_64),
    row("m6a.xlarge", 4, 16, 11712, X86_64),
    row("m6a.2xlarge", 8, 32, 23424, X86_64),
    row("m6a.4xlarge", 16, 64, 54272, X86_64),
    row("m6a.8xlarge", 32, 128, 116736, X86_64),
    row("m6a.12xlarge", 48, 192, 179200, X86_64),
    row("m6a.16xlarge", 64, 256, 241664, X86_64),
    row("m6a.24xlarge", 96, 384, 366592, X86_64),
    row("m6a.32xlarge", 128, 512, 491520, X86_64),
    row("m6a.48xlarge", 192, 768, 741376, X86_64),
    row("m7i.xlarge", 4, 16, 11712, X86_64),
    row("m7i.2xlarge", 8, 32, 23424, X86_64),
    row("m7i.4xlarge", 16, 64, 54272, X86_64),
    row("m7i.8xlarge", 32, 128, 116736, X86_64),
    row("m7i.12xlarge", 48, 192, 181248, X86_64),
    row("m7i.16xlarge", 64, 256, 241664, X86_64),
    row("m7i.24xlarge", 96, 384, 366592, X86_64),
    row("m7i.48xlarge", 192, 768, 741376, X86_64),
    // General purpose, Graviton.
    row("m6g.xlarge", 4, 16, 11712, Arm64),
    row("m6g.2xlarge", 8, 32, 23424, Arm64),
    row("m6g.4xlarge", 16, 64, 54272, Arm64),
    row("m6g.8xlarge", 32, 128, 116736, Arm64),
    row("m6g.12xlarge", 48, 192, 181248, Arm64),
    row("m6g.16xlarge", 64, 256, 241664, Arm64),
    row("m7g.xlarge", 4, 16, 11712, Arm64),
    row("m7g.2xlarge", 8, 32, 23424, Arm64),
    row("m7g.4xlarge", 16, 64, 54272, Arm64),
    row("m7g.8xlarge", 32, 128, 116736, Arm64),
    row("m7g.12xlarge", 48, 192, 179200, Arm64),
    row("m7g.16xlarge", 64, 256, 241664, Arm64),
    row("m8g.xlarge", 4, 16, 11712, Arm64),
    row("m8g.2xlarge", 8, 32, 23424, Arm64),
    row("m8g.4xlarge", 16, 64, 54272, Arm64),
    row("m8g.8xlarge", 32, 128, 116736, Arm64),
    row("m8g.12xlarge", 48, 192, 181248, Arm64),
    row("m8g.16xlarge", 64, 256, 241664, Arm64),
    // Memory optimized, x86.
    row("r5.xlarge", 4, 32, 24576, X86_64),
    row("r5.2xlarge", 8, 64, 57344, X86_64),
    row("r5.4xlarge", 16, 128, 122880, X86_64),
    row("r5.8xlarge", 32, 256, 253952, X86_64),
    row("r5.12xlarge", 48, 384, 385024, X86_64),
    row("r5.16xlarge", 64, 512, 516096, X86_64),
    row("r5.24xlarge", 96, 768, 778240, X86_64),
    row("r6i.xlarge", 4, 32, 23424, X86_64),
    row("r6i.2xlarge", 8, 64, 54272, X86_64),
    row("r6i.4xlarge", 16, 128, 116736, X86_64),
    row("r6i.8xlarge", 32, 256, 241664, X86_64),
    row("r6i.12xlarge", 48, 384, 366592, X86_64),
    row("r6i.16xlarge", 64, 512, 491520, X86_64),
    row("r6i.24xlarge", 96, 768, 741376, X86_64),
    row("r6i.32xlarge", 128, 1024, 964608, X86_64),
    row("r7i.xlarge", 4, 32, 23424, X86_64),
    row("r7i.2xlarge", 8, 64, 54272, X86_64),
    row("r7i.4xlarge", 16, 128, 116736, X86_64),
    row("r7i.8xlarge", 32, 256, 241664, X86_64),
    row("r7i.12xlarge", 48, 384, 366592, X86_64),
    row("r7i.16xlarge", 64, 512, 491520, X86_64),
    row("r7i.24xlarge", 96, 768, 741376, X86_64),
    row("r7i.48xlarge", 192, 1536, 1490944, X86_64),
    // Memory optimized, Graviton.
    row("r6g.xlarge", 4, 32, 23424, Arm64),
    row("r6g.2xlarge", 8, 64, 54272, Arm64),
    row("r6g.4xlarge", 16, 128, 116736, Arm64),
    row("r6g.8xlarge", 32, 256, 241664, Arm64),
    row("r6g.12xlarge", 48, 384, 366592, Arm64),
    row("r6g.16xlarge", 64, 512, 491520, Arm64),
    // r7gd.xlarge was not read from the table, so it is left out rather than guessed.
    row("r7gd.2xlarge", 8, 64, 54272, Arm64),
    row("r7gd.4xlarge", 16, 128, 116736, Arm64),
    row("r7gd.8xlarge", 32, 256, 241664, Arm64),
    row("r7gd.12xlarge", 48, 384, 366592, Arm64),
    row("r7gd.16xlarge", 64, 512, 491520, Arm64),
    // DERIVED, not read from the AWS table: the r7g block was not read. Its sibling r7gd (same
    // vCPU and RAM, plus local NVMe) has the same values as r6g wherever both were read, so r7g
    // takes the r7gd values, and r7g.xlarge the r6g.xlarge value (r6g/r6i/r7i.xlarge all have
    // 23424). Confirm from yarn-site.xml on a node when possible.
    row("r7g.xlarge", 4, 32, 23424, Arm64),
    row("r7g.2xlarge", 8, 64, 54272, Arm64),
    row("r7g.4xlarge", 16, 128, 116736, Arm64),
    row("r7g.8xlarge", 32, 256, 241664, Arm64),
    row("r7g.12xlarge", 48, 384, 366592, Arm64),
    row("r7g.16xlarge", 64, 512, 491520, Arm64),
    // Compute optimized, x86. c5 has no 8xlarge/16xlarge: its sizes are 9, 12, 18 and 24xlarge.
    row("c5.xlarge", 4, 8, 6144, X86_64),
    row("c5.2xlarge", 8, 16, 12288, X86_64),
    row("c5.4xlarge", 16, 32, 24576, X86_64),
    row("c5.9xlarge", 36, 72, 65536, X86_64),
    row("c5.12xlarge", 48, 96, 90112, X86_64),
    row("c5.18xlarge", 72, 144, 139264, X86_64),
    row("c5.24xlarge", 96, 192, 188416, X86_64),
    row("c7i.xlarge", 4, 8, 5632, X86_64),
    row("c7i.2xlarge", 8, 16, 11712, X86_64),
    row("c7i.4xlarge", 16, 32, 23424, X86_64),
    row("c7i.8xlarge", 32, 64, 54272, X86_64),
    row("c7i.12xlarge", 48, 96, 85504, X86_64),
    row("c7i.16xlarge", 64, 128, 116736, X86_64),
    row("c7i.24xlarge", 96, 192, 179200, X86_64),
    row("c7i.48xlarge", 192, 384, 366592, X86_64),
    // Compute optimized, Graviton.
    row("c6g.xlarge", 4, 8, 5632, Arm64),
    row("c6g.2xlarge", 8, 16, 11712, Arm64),
    row("c6g.4xlarge", 16, 32, 23424, Arm64),
    row("c6g.8xlarge", 32, 64, 54272, Arm64),
    row("c6g.12xlarge", 48, 96, 85504, Arm64),
    row("c6g.16xlarge", 64, 128, 116736, Arm64),
    row("c7gn.xlarge", 4, 8, 5632, Arm64),
    row("c7gn.2xlarge", 8, 16, 11712, Arm64),
    row("c7gn.4xlarge", 16, 32, 23424, Arm64),
    row("c7gn.8xlarge", 32, 64, 54272, Arm64),
    row("c7gn.12xlarge", 48, 96, 85504, Arm64),
    row("c7gn.16xlarge", 64, 128, 116736, Arm64),
    // DERIVED, not read from the AWS table: the c7g block was not read. Its sibling c7gn (same
    // vCPU and RAM, faster network) matches c6g row for row, so c7g takes the c7gn values.
    // Confirm from yarn-site.xml on a node when possible.
    row("c7g.xlarge", 4, 8, 5632, Arm64),
    row("c7g.2xlarge", 8, 16, 11712, Arm64),
    row("c7g.4xlarge", 16, 32, 23424, Arm64),
    row("c7g.8xlarge", 32, 64, 54272, Arm64),
    row("c7g.12xlarge", 48, 96, 85504, Arm64),
    row("c7g.16xlarge", 64, 128, 116736, Arm64),
];

/// Byte-wise `a < b`, usable in a const context (it is what `str`'s `Ord` does).
const fn name_precedes(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// Insertion sort at compile time, so the table above can stay grouped by family.
const fn sorted_by_name<const N: usize>(rows: &[InstanceType]) -> [InstanceType; N] {
    assert!(rows.len() == N && N > 0);
    let mut sorted = [rows[0]; N];
    let mut i = 0;
    while i < N {
        sorted[i] = rows[i];
        i += 1;
    }
    let mut i = 1;
    while i < N {
        let mut j = i;
        while j > 0 && name_precedes(sorted[j].name, sorted[j - 1].name) {
            let earlier = sorted[j - 1];
            sorted[j - 1] = sorted[j];
            sorted[j] = earlier;
            j -= 1;
        }
        i += 1;
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, StrDeserializer};
    use serde::Deserialize;

    /// vCPU per size name; the EC2 scheme every family in the catalog follows.
    fn vcpu_for_size(size: &str) -> Option<u32> {
        Some(match size {
            "xlarge" => 4,
            "2xlarge" => 8,
            "4xlarge" => 16,
            "8xlarge" => 32,
            "9xlarge" => 36,
            "10xlarge" => 40,
            "12xlarge" => 48,
            "16xlarge" => 64,
            "18xlarge" => 72,
            "24xlarge" => 96,
            "32xlarge" => 128,
            "48xlarge" => 192,
            _ => return None,
        })
    }

    #[test]
    fn catalog_is_sorted_by_name_without_duplicates() {
        for pair in all().windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} then {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn every_row_is_found_by_lookup() {
        for row in all() {
            assert_eq!(lookup(row.name), Some(row));
        }
    }

    #[test]
    fn lookup_is_exact() {
        assert_eq!(lookup("m5.4xlarge").map(|t| t.yarn_memory_mib), Some(57344));
        for miss in [
            "",
            "m5",
            "M5.4XLARGE",
            " m5.4xlarge",
            "m5.4xlarge ",
            "m5.3xlarge",
            "r7gd.xlarge",
        ] {
            assert_eq!(lookup(miss), None, "{miss:?}");
        }
    }

    #[test]
    fn vcpu_and_ram_follow_the_ec2_naming_scheme() {
        for row in all() {
            let (family, size) = row.name.split_once('.').expect("family.size");
            assert_eq!(vcpu_for_size(size), Some(row.vcpu), "{}", row.name);
            let gib_per_vcpu = match &family[..1] {
                "m" => 4,
                "r" => 8,
                "c" => 2,
                other => panic!("unexpected family letter {other} in {}", row.name),
            };
            assert_eq!(row.memory_gib, row.vcpu * gib_per_vcpu, "{}", row.name);
        }
    }

    #[test]
    fn graviton_families_are_arm64() {
        for row in all() {
            // The letters after the generation digit: "g", "gd", "gn" mean Graviton.
            let attributes = row
                .family()
                .trim_start_matches(|c: char| !c.is_ascii_digit());
            let attributes = attributes.trim_start_matches(|c: char| c.is_ascii_digit());
            let graviton = attributes.starts_with('g');
            let expected = if graviton { Arch::Arm64 } else { Arch::X86_64 };
            assert_eq!(row.arch, expected, "{}", row.name);
        }
    }

    #[test]
    fn yarn_memory_is_below_ram_and_plausible() {
        for row in all() {
            let ram_mib = row.memory_gib * 1024;
            assert!(row.yarn_memory_mib < ram_mib, "{}", row.name);
            // EMR leaves YARN at least 65% of RAM on every listed type.
            assert!(
                u64::from(row.yarn_memory_mib) * 100 >= u64::from(ram_mib) * 65,
                "{}",
                row.name
            );
        }
    }

    #[test]
    fn required_families_cover_xlarge_to_16xlarge() {
        let sizes = [
            "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ];
        for family in ["m5", "m6i", "m6g", "m7g", "r5", "r6g", "r7g", "c6g"] {
            for size in sizes {
                let name = format!("{family}.{size}");
                assert!(lookup(&name).is_some(), "{name} missing");
            }
        }
        for size in [
            "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge",
        ] {
            let name = format!("c5.{size}");
            assert!(lookup(&name).is_some(), "{name} missing");
        }
        assert_eq!(lookup("c5.8xlarge"), None);
        assert_eq!(lookup("c5.16xlarge"), None);
    }

    #[test]
    fn rows_from_the_aws_table() {
        let expected = [
            ("m5.xlarge", 12288),
            ("m5.4xlarge", 57344),
            ("m5.24xlarge", 385024),
            ("m4.10xlarge", 155648),
            ("r5.12xlarge", 385024),
            ("c5.9xlarge", 65536),
            ("c5.18xlarge", 139264),
            ("m6g.12xlarge", 181248),
            ("m7g.12xlarge", 179200),
            ("m6a.12xlarge", 179200),
            ("r6g.2xlarge", 54272),
            ("r7i.48xlarge", 1490944),
            ("c6g.xlarge", 5632),
        ];
        for (name, yarn_memory_mib) in expected {
            assert_eq!(
                lookup(name).map(|t| t.yarn_memory_mib),
                Some(yarn_memory_mib),
                "{name}"
            );
        }
    }

    #[test]
    fn derived_rows_copy_their_siblings_and_are_flagged() {
        for size in ["2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"] {
            let r7g = lookup(&format!("r7g.{size}")).unwrap();
            let r7gd = lookup(&format!("r7gd.{size}")).unwrap();
            assert_eq!(r7g.yarn_memory_mib, r7gd.yarn_memory_mib);
        }
        for size in [
            "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
        ] {
            let c7g = lookup(&format!("c7g.{size}")).unwrap();
            let c7gn = lookup(&format!("c7gn.{size}")).unwrap();
            assert_eq!(c7g.yarn_memory_mib, c7gn.yarn_memory_mib);
        }
        assert!(!lookup("r7g.4xlarge").unwrap().yarn_memory_confirmed());
        assert!(!lookup("c7g.xlarge").unwrap().yarn_memory_confirmed());
        assert!(lookup("r7gd.4xlarge").unwrap().yarn_memory_confirmed());
        assert!(lookup("c7gn.xlarge").unwrap().yarn_memory_confirmed());
        assert!(lookup("m5.xlarge").unwrap().yarn_memory_confirmed());
    }

    #[test]
    fn arch_names_and_target_triples() {
        assert_eq!(Arch::X86_64.to_string(), "x86_64");
        assert_eq!(Arch::Arm64.to_string(), "arm64");
        assert_eq!(
            Arch::X86_64.rust_target_triple(),
            "x86_64-unknown-linux-gnu"
        );
        assert_eq!(
            Arch::Arm64.rust_target_triple(),
            "aarch64-unknown-linux-gnu"
        );
        assert_eq!(lookup("m7g.xlarge").unwrap().arch, Arch::Arm64);
        assert_eq!(lookup("m7i.xlarge").unwrap().arch, Arch::X86_64);
    }

    #[test]
    fn arch_deserializes_from_its_display_name() {
        for arch in [Arch::X86_64, Arch::Arm64] {
            let name = arch.to_string();
            let parsed = Arch::deserialize(StrDeserializer::<ValueError>::new(&name)).unwrap();
            assert_eq!(parsed, arch);
        }
        assert!(Arch::deserialize(StrDeserializer::<ValueError>::new("aarch64")).is_err());
    }
}
