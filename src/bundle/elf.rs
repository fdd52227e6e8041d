//! Will this binary run on the cluster's nodes? Read from its ELF header and version needs,
//! before anything is uploaded or a cluster is paid for.
//!
//! Two things make a shipped Linux binary fail on a node: the wrong instruction set (an x86_64
//! build on Graviton, "exec format error") and a glibc older than the newest `GLIBC_x.y` symbol
//! version it links against ("version `GLIBC_2.38' not found"). Both are visible in the file.

use goblin::elf::header::{EM_AARCH64, EM_X86_64, ET_DYN, ET_EXEC};
use goblin::elf::Elf;

use crate::sizing::Arch;
use crate::spec::release::ReleaseLabel;

/// The zigbuild glibc suffix emrship builds with: glibc 2.26 (Amazon Linux 2) runs on every
/// release emrship targets, AL2023 (glibc 2.34) included.
pub const BUILD_GLIBC: &str = "2.26";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
    Other(u16),
}

impl Machine {
    pub fn describe(self) -> String {
        match self {
            Machine::X86_64 => "x86_64".into(),
            Machine::Aarch64 => "aarch64 (arm64)".into(),
            Machine::Other(code) => format!(
                "{} (ELF machine {code})",
                goblin::elf::header::machine_to_str(code)
            ),
        }
    }
}

/// How the binary finds its C library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linkage {
    /// No program interpreter: needs no C library from the node.
    Static,
    /// Dynamically linked against musl: needs no glibc (but the musl loader, which the bundle
    /// does not ship; static musl builds are the usual case and land in `Static`).
    Musl,
    /// Dynamically linked with this interpreter (glibc's `ld-linux…`).
    Dynamic(String),
}

/// The newest glibc version the binary needs, and the symbols that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlibcNeed {
    pub version: (u32, u32),
    /// The version name as written in the binary (`GLIBC_2.38`, `GLIBC_ABI_DT_RELR`).
    pub version_name: String,
    pub symbols: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFacts {
    pub machine: Machine,
    pub is_64: bool,
    pub linkage: Linkage,
    pub glibc: Option<GlibcNeed>,
}

/// `GLIBC_2.2.5` → (2, 2); `GLIBC_ABI_DT_RELR` (packed relative relocations) is only
/// understood by glibc 2.36 and later. Other names (`GLIBC_PRIVATE`) say nothing of a version.
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    if name == "GLIBC_ABI_DT_RELR" {
        return Some((2, 36));
    }
    let mut parts = name.strip_prefix("GLIBC_")?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Reads what the node must provide for `bytes` to run. Errors say what the file is instead.
pub fn inspect(bytes: &[u8]) -> Result<ElfFacts, String> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect::<String>();
        return Err(format!(
            "it is not an ELF executable (it starts with `{start}`); emrship-job must be a Linux binary"
        ));
    }
    let elf = Elf::parse(bytes).map_err(|e| format!("its ELF structure cannot be read: {e}"))?;
    if elf.header.e_type != ET_EXEC && elf.header.e_type != ET_DYN {
        return Err(format!(
            "it is an ELF {} file, not an executable",
            goblin::elf::header::et_to_str(elf.header.e_type)
        ));
    }
    let machine = match elf.header.e_machine {
        EM_X86_64 => Machine::X86_64,
        EM_AARCH64 => Machine::Aarch64,
        other => Machine::Other(other),
    };
    let linkage = match elf.interpreter {
        None => Linkage::Static,
        Some(interp) if interp.contains("ld-musl") => Linkage::Musl,
        Some(interp) => Linkage::Dynamic(interp.to_string()),
    };

    // Every version the binary needs, with the index its symbols refer to it by.
    let mut needs: Vec<(u16, String, (u32, u32))> = Vec::new();
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            for aux in need.iter() {
                let Some(name) = elf.dynstrtab.get_at(aux.vna_name) else {
                    continue;
                };
                if let Some(version) = glibc_version(name) {
                    needs.push((aux.vna_other, name.to_string(), version));
                }
            }
        }
    }
    let glibc = needs
        .iter()
        .max_by_key(|(_, _, version)| *version)
        .map(|(_, name, version)| {
            let indexes: Vec<u16> = needs
                .iter()
                .filter(|(_, _, v)| v == version)
                .map(|(index, _, _)| *index)
                .collect();
            let mut symbols = Vec::new();
            if let Some(versym) = &elf.versym {
                for (i, sym) in elf.dynsyms.iter().enumerate() {
                    let Some(entry) = versym.get_at(i) else {
                        continue;
                    };
                    if indexes.contains(&entry.version()) {
                        if let Some(symbol) = elf.dynstrtab.get_at(sym.st_name) {
                            if !symbol.is_empty() {
                                symbols.push(symbol.to_string());
                            }
                        }
                    }
                }
            }
            symbols.sort();
            symbols.dedup();
            GlibcNeed {
                version: *version,
                version_name: name.clone(),
                symbols,
            }
        });
    Ok(ElfFacts {
        machine,
        is_64: elf.is_64,
        linkage,
        glibc,
    })
}

/// What the nodes of one spec run.
#[derive(Debug, Clone)]
pub struct NodeTarget<'a> {
    pub arch: Arch,
    pub release: &'a ReleaseLabel,
    /// The instance types, for the message.
    pub instance_types: Vec<&'a str>,
}

fn zigbuild_hint(arch: Arch) -> String {
    format!(
        "cargo zigbuild --release --no-default-features --features job --bin emrship-job --target {}.{BUILD_GLIBC} \
         (or let `emrship deploy` build it: leave out --binary and job.binary)",
        arch.rust_target_triple()
    )
}

/// Refuses a binary that would not run on `node`: the message says what the binary needs, what
/// the node has, and how to build one that fits.
pub fn check_fits(facts: &ElfFacts, node: &NodeTarget<'_>) -> Result<(), String> {
    let types = node.instance_types.join(", ");
    let wanted = match node.arch {
        Arch::X86_64 => Machine::X86_64,
        Arch::Arm64 => Machine::Aarch64,
    };
    if facts.machine != wanted || !facts.is_64 {
        let built = if facts.is_64 {
            facts.machine.describe()
        } else {
            format!("32-bit {}", facts.machine.describe())
        };
        let fix = match node.arch {
            Arch::Arm64 => format!(
                "the instance types ({types}) are Graviton (arm64): build for aarch64 with {}",
                zigbuild_hint(Arch::Arm64)
            ),
            Arch::X86_64 => format!(
                "the instance types ({types}) are x86_64: build for x86_64 with {}; or, to run on Graviton, choose arm64 instance types (m6g, r6g, …) and set job.arch: arm64",
                zigbuild_hint(Arch::X86_64)
            ),
        };
        return Err(format!("it is built for {built}, but {fix}"));
    }
    if let (Linkage::Dynamic(_), Some(need)) = (&facts.linkage, &facts.glibc) {
        if need.version > node.release.glibc {
            let symbols = if need.symbols.is_empty() {
                String::new()
            } else {
                let shown: Vec<&str> = need.symbols.iter().take(5).map(String::as_str).collect();
                let more = need.symbols.len().saturating_sub(shown.len());
                format!(
                    " for {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            };
            return Err(format!(
                "it needs glibc {}.{} ({}{symbols}), but {} nodes run {} with glibc {}.{}; \
                 it would fail there with \"version `{}' not found\": build against glibc {BUILD_GLIBC}, which runs on every EMR release from emr-5.30: {}",
                need.version.0,
                need.version.1,
                need.version_name,
                node.release.label,
                node.release.os,
                node.release.glibc.0,
                node.release.glibc.1,
                need.version_name,
                zigbuild_hint(node.arch)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(arch: Arch, release: &ReleaseLabel) -> NodeTarget<'_> {
        NodeTarget {
            arch,
            release,
            instance_types: vec!["m5.xlarge"],
        }
    }

    #[test]
    fn glibc_version_names() {
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_ABI_DT_RELR"), Some((2, 36)));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version("GCC_3.0"), None);
    }

    #[test]
    fn not_an_elf_file_says_what_it_is() {
        let error = inspect(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(error.contains("not an ELF executable"), "{error}");
        assert!(error.contains("#!/bin/sh"), "{error}");
        assert!(inspect(b"").is_err());
    }

    #[test]
    fn truncated_elf_is_an_error_not_a_panic() {
        let error = inspect(b"\x7fELF\x02\x01\x01\x00").unwrap_err();
        assert!(error.contains("cannot be read"), "{error}");
    }

    /// The host's own test binary: x86_64 or aarch64 Linux, linked against the host's glibc.
    #[test]
    fn the_host_test_binary_needs_the_host_glibc() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let facts = inspect(&me).unwrap();
        let host = if cfg!(target_arch = "x86_64") {
            Machine::X86_64
        } else {
            Machine::Aarch64
        };
        assert_eq!(facts.machine, host);
        assert!(facts.is_64);
        assert!(matches!(facts.linkage, Linkage::Dynamic(_)));
        let need = facts
            .glibc
            .expect("a glibc-linked binary has version needs");
        assert!(need.version >= (2, 2), "{need:?}");
        assert!(!need.symbols.is_empty(), "{need:?}");
    }

    #[test]
    fn wrong_architecture_is_refused_with_the_fix() {
        let release = ReleaseLabel::parse("emr-6.15.0").unwrap();
        let facts = ElfFacts {
            machine: Machine::Aarch64,
            is_64: true,
            linkage: Linkage::Static,
            glibc: None,
        };
        let error = check_fits(&facts, &node(Arch::X86_64, &release)).unwrap_err();
        assert!(error.contains("built for aarch64 (arm64)"), "{error}");
        assert!(error.contains("x86_64-unknown-linux-gnu.2.26"), "{error}");
        let facts = ElfFacts {
            machine: Machine::X86_64,
            ..facts
        };
        let error = check_fits(&facts, &node(Arch::Arm64, &release)).unwrap_err();
        assert!(
            error.contains("Graviton (arm64): build for aarch64"),
            "{error}"
        );
        assert!(error.contains("aarch64-unknown-linux-gnu.2.26"), "{error}");
    }

    #[test]
    fn glibc_newer_than_the_release_is_refused_and_static_or_musl_pass() {
        let al2023 = ReleaseLabel::parse("emr-7.5.0").unwrap();
        let al2 = ReleaseLabel::parse("emr-6.15.0").unwrap();
        let need = |v: (u32, u32)| GlibcNeed {
            version: v,
            version_name: format!("GLIBC_{}.{}", v.0, v.1),
            symbols: vec!["strlcpy".into()],
        };
        let dynamic = |v| ElfFacts {
            machine: Machine::X86_64,
            is_64: true,
            linkage: Linkage::Dynamic("/lib64/ld-linux-x86-64.so.2".into()),
            glibc: Some(need(v)),
        };
        let error = check_fits(&dynamic((2, 38)), &node(Arch::X86_64, &al2023)).unwrap_err();
        assert!(
            error.contains("needs glibc 2.38 (GLIBC_2.38 for strlcpy)"),
            "{error}"
        );
        assert!(
            error.contains("emr-7.5.0 nodes run Amazon Linux 2023 with glibc 2.34"),
            "{error}"
        );
        assert!(
            error.contains("--target x86_64-unknown-linux-gnu.2.26"),
            "{error}"
        );
        assert!(check_fits(&dynamic((2, 34)), &node(Arch::X86_64, &al2023)).is_ok());
        assert!(check_fits(&dynamic((2, 34)), &node(Arch::X86_64, &al2)).is_err());
        assert!(check_fits(&dynamic((2, 26)), &node(Arch::X86_64, &al2)).is_ok());
        for linkage in [Linkage::Static, Linkage::Musl] {
            let facts = ElfFacts {
                linkage,
                ..dynamic((2, 38))
            };
            assert!(check_fits(&facts, &node(Arch::X86_64, &al2)).is_ok());
        }
    }
}
