//! Will the built dependencies import on the cluster's nodes? Read from the deps zip itself,
//! before anything is uploaded: every compiled module's ELF header and glibc needs, the CPython
//! version in its file name, and each wheel's tags.
//!
//! pip's cross options pick the right wheels from an index, but a wheel from a `--find-links`
//! folder (built on a laptop, on the wrong distro, with the wrong Python) or a wheel whose tag
//! lies gets past them; what fails on the node shows in the files:
//!
//! | what | fails on the node as |
//! | --- | --- |
//! | ELF machine ≠ the nodes' architecture | `ImportError: … cannot open shared object file` / wrong ELF class |
//! | newest `GLIBC_x.y` needed > the node's glibc | ``ImportError: … version `GLIBC_2.38' not found`` |
//! | `*.cpython-311-*.so` on a Python 3.9 node | `ModuleNotFoundError` (the name does not match the interpreter's suffixes) |
//!
//! Problems are grouped per package and kind: numpy built for the wrong architecture is one
//! problem naming one of its files and how many more, not forty.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use super::app_problem::AppProblem;
use super::elf::{inspect, Linkage, Machine};
use super::python_deps::{record_owners, wheel_tags, PythonTarget};
use crate::sizing::Arch;

/// Checks the deps zip `zip` (as built by `python_deps::build_deps`) against `target`.
/// Err only when the zip cannot be read.
pub fn check_deps_zip(zip: &Path, target: &PythonTarget) -> Result<Vec<AppProblem>, String> {
    let file =
        std::fs::File::open(zip).map_err(|e| format!("cannot open {}: {e}", zip.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("{} is not a readable zip: {e}", zip.display()))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} has an unreadable entry name: {e}", zip.display()))?;
    let mut read = |name: &str| -> Result<Vec<u8>, String> {
        let mut entry = archive
            .by_name(name)
            .map_err(|e| format!("{name} in {}: {e}", zip.display()))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name} in {}: {e}", zip.display()))?;
        Ok(bytes)
    };
    check_tree(&names, &mut read, target)
}

/// The checks over a tree's file names, reading files through `read`.
fn check_tree(
    names: &[String],
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    target: &PythonTarget,
) -> Result<Vec<AppProblem>, String> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let top_dist_info = name.matches('/').count() == 1 && name.contains(".dist-info/");
        if top_dist_info && name.ends_with("/RECORD") {
            records.push((
                name.clone(),
                String::from_utf8_lossy(&read(name)?).into_owned(),
            ));
        } else if top_dist_info && name.ends_with("/WHEEL") {
            let owner = dist_info_owner(name.trim_end_matches("/WHEEL"));
            let tags = wheel_tags(&String::from_utf8_lossy(&read(name)?));
            problems.extend(check_wheel_tags(&owner, &tags, target));
        }
    }
    let owners = record_owners(records.into_iter());
    let mut issues = Vec::new();
    for name in names.iter().filter(|n| is_compiled_module(n)) {
        let owner = owners.get(name.as_str()).cloned();
        issues.extend(check_compiled_module(name, owner, &read(name)?, target));
    }
    problems.extend(group_issues(issues, target));
    Ok(problems)
}

/// `numpy-2.0.2.dist-info` → "numpy 2.0.2".
fn dist_info_owner(dist_info: &str) -> String {
    let stem = dist_info.strip_suffix(".dist-info").unwrap_or(dist_info);
    match stem.split_once('-') {
        Some((name, version)) => format!("{name} {version}"),
        None => stem.to_string(),
    }
}

/// Shared libraries: extension modules (`*.so`) and the libraries wheels vendor beside them
/// (`numpy.libs/libgfortran-….so.5.0.0`).
pub fn is_compiled_module(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.ends_with(".so") || file.contains(".so.")
}

/// One thing wrong with one file, before grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleIssue {
    /// "numpy 2.0.2", when a RECORD names the file.
    pub owner: Option<String>,
    pub file: String,
    pub kind: IssueKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueKind {
    /// Built for another machine (described, `aarch64 (arm64)`).
    Architecture { built: String },
    /// Needs a newer glibc: (version, its name in the file).
    Glibc {
        needs: (u32, u32),
        version_name: String,
    },
    /// Named for another CPython (major, minor).
    PythonVersion { built_for: (u32, u32) },
    /// Not a Linux shared library at all (a macOS or Windows build).
    NotElf { why: String },
}

impl IssueKind {
    fn key(&self) -> &'static str {
        match self {
            IssueKind::Architecture { .. } => "arch",
            IssueKind::Glibc { .. } => "glibc",
            IssueKind::PythonVersion { .. } => "python",
            IssueKind::NotElf { .. } => "elf",
        }
    }
}

/// `foo.cpython-311-x86_64-linux-gnu.so` → (3, 11); `foo.cpython-37m-…` → (3, 7); `.abi3.so`
/// and untagged names → None.
pub fn cpython_tag_of(file_name: &str) -> Option<(u32, u32)> {
    let (_, rest) = file_name.rsplit_once(".cpython-")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.len() < 2 {
        return None;
    }
    Some((digits[..1].parse().ok()?, digits[1..].parse().ok()?))
}

/// What is wrong with one compiled file (`name` inside the deps tree, `bytes` its content).
pub fn check_compiled_module(
    name: &str,
    owner: Option<String>,
    bytes: &[u8],
    target: &PythonTarget,
) -> Vec<ModuleIssue> {
    let issue = |kind| ModuleIssue {
        owner: owner.clone(),
        file: name.to_string(),
        kind,
    };
    let mut issues = Vec::new();
    let file_name = name.rsplit('/').next().unwrap_or(name);
    if let Some(built_for) = cpython_tag_of(file_name) {
        let node = (u32::from(target.python.0), u32::from(target.python.1));
        if built_for != node {
            issues.push(issue(IssueKind::PythonVersion { built_for }));
        }
    }
    let facts = match inspect(bytes) {
        Ok(facts) => facts,
        Err(why) => {
            issues.push(issue(IssueKind::NotElf { why }));
            return issues;
        }
    };
    let wanted = match target.arch {
        Arch::X86_64 => Machine::X86_64,
        Arch::Arm64 => Machine::Aarch64,
    };
    if facts.machine != wanted || !facts.is_64 {
        let built = if facts.is_64 {
            facts.machine.describe()
        } else {
            format!("32-bit {}", facts.machine.describe())
        };
        issues.push(issue(IssueKind::Architecture { built }));
        // A foreign machine's glibc needs say nothing about this one.
        return issues;
    }
    // Shared libraries have no program interpreter, so `inspect` calls them `Static`; their
    // version needs are what matters. A musl build needs no glibc.
    if let (false, Some(need)) = (facts.linkage == Linkage::Musl, &facts.glibc) {
        if need.version > target.glibc {
            issues.push(issue(IssueKind::Glibc {
                needs: need.version,
                version_name: need.version_name.clone(),
            }));
        }
    }
    issues
}

/// One problem per (package, kind): the worst file named (highest glibc need), the count of
/// the others.
pub fn group_issues(issues: Vec<ModuleIssue>, target: &PythonTarget) -> Vec<AppProblem> {
    let mut groups: BTreeMap<(String, &'static str), Vec<ModuleIssue>> = BTreeMap::new();
    for issue in issues {
        let subject = issue.owner.clone().unwrap_or_else(|| issue.file.clone());
        groups
            .entry((subject, issue.kind.key()))
            .or_default()
            .push(issue);
    }
    let node_arch = target.pip_arch();
    groups
        .into_iter()
        .map(|((subject, _), mut files)| {
            files.sort_by(|a, b| {
                let rank = |i: &ModuleIssue| match &i.kind {
                    IssueKind::Glibc { needs, .. } => *needs,
                    _ => (0, 0),
                };
                rank(b).cmp(&rank(a)).then(a.file.cmp(&b.file))
            });
            let first = &files[0];
            let more = match files.len() - 1 {
                0 => String::new(),
                1 => " (and 1 more file of it)".to_string(),
                n => format!(" (and {n} more files of it)"),
            };
            let file = &first.file;
            let (message, fix) = match &first.kind {
                IssueKind::Architecture { built } => (
                    format!("`{file}`{more} is built for {built}, but the nodes are {node_arch}: Python cannot load it there"),
                    format!("build the dependencies for the nodes' architecture ({node_arch}; emrship picks it from the instance types); a wheel from a --find-links folder must be rebuilt on {node_arch}"),
                ),
                IssueKind::Glibc { needs, version_name } => (
                    format!(
                        "`{file}`{more} needs glibc {}.{} ({version_name}), but the nodes have glibc {}.{}: importing it fails there with \"version `{version_name}' not found\"",
                        needs.0, needs.1, target.glibc.0, target.glibc.1
                    ),
                    format!(
                        "pin a version of the package whose wheel is tagged manylinux_2_{} or older; a wheel you built yourself must be built on a system with glibc {}.{} or older (the nodes' Amazon Linux)",
                        target.glibc.1, target.glibc.0, target.glibc.1
                    ),
                ),
                IssueKind::PythonVersion { built_for } => (
                    format!(
                        "`{file}`{more} is compiled for CPython {}.{}, but the nodes run Python {}.{}: it cannot be imported there",
                        built_for.0, built_for.1, target.python.0, target.python.1
                    ),
                    format!(
                        "use the package's wheel for CPython {}.{} (build the dependencies for the nodes' Python); a wheel from a --find-links folder must be built with Python {}.{}",
                        target.python.0, target.python.1, target.python.0, target.python.1
                    ),
                ),
                IssueKind::NotElf { why } => (
                    format!("`{file}`{more} is not a Linux shared library: {why}"),
                    format!("use the package's Linux wheel for {}", target.describe()),
                ),
            };
            AppProblem::new(subject, message, fix)
        })
        .collect()
}

/// The platform a manylinux / linux tag is for: (glibc it needs, architecture).
fn platform_needs(platform: &str) -> Option<((u32, u32), &str)> {
    for (legacy, glibc) in [
        ("manylinux1_", (2, 5)),
        ("manylinux2010_", (2, 12)),
        ("manylinux2014_", (2, 17)),
    ] {
        if let Some(arch) = platform.strip_prefix(legacy) {
            return Some((glibc, arch));
        }
    }
    if let Some(rest) = platform.strip_prefix("manylinux_") {
        let mut parts = rest.splitn(3, '_');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        return Some(((major, minor), parts.next()?));
    }
    platform.strip_prefix("linux_").map(|arch| ((0, 0), arch))
}

/// Why one wheel tag (`cp39-cp39-manylinux_2_17_x86_64`) does not fit `target`, or None.
pub fn tag_incompatibility(tag: &str, target: &PythonTarget) -> Option<String> {
    let mut parts = tag.splitn(3, '-');
    let (Some(pythons), Some(abis), Some(platforms)) = (parts.next(), parts.next(), parts.next())
    else {
        return Some(format!("`{tag}` is not a wheel tag"));
    };
    let (major, minor) = (u32::from(target.python.0), u32::from(target.python.1));
    let node_abi = target.abi_tag();
    let mut reasons = Vec::new();
    for python in pythons.split('.') {
        for abi in abis.split('.') {
            for platform in platforms.split('.') {
                let reason = (|| {
                    let version = |digits: &str| -> Option<(u32, u32)> {
                        let major = digits.get(..1)?.parse().ok()?;
                        let minor = digits
                            .get(1..)
                            .filter(|m| !m.is_empty())
                            .map_or(Some(0), |m| m.parse().ok())?;
                        Some((major, minor))
                    };
                    let python_ok = if let Some(digits) = python.strip_prefix("py") {
                        matches!(version(digits), Some((m, n)) if m == major && n <= minor)
                    } else if let Some(digits) = python.strip_prefix("cp") {
                        match version(digits) {
                            Some((m, n)) if m == major => {
                                if abi == "abi3" || abi == "none" {
                                    n <= minor
                                } else {
                                    n == minor
                                }
                            }
                            _ => false,
                        }
                    } else {
                        false
                    };
                    if !python_ok {
                        return Some(format!(
                            "its Python tag `{python}` is not CPython {major}.{minor}"
                        ));
                    }
                    if !(abi == "none" || abi == "abi3" || abi == node_abi) {
                        return Some(format!("its ABI `{abi}` is not the nodes' `{node_abi}`"));
                    }
                    if platform == "any" {
                        return None;
                    }
                    let Some((glibc, arch)) = platform_needs(platform) else {
                        return Some(format!("its platform `{platform}` is not glibc Linux"));
                    };
                    if arch != target.pip_arch() {
                        return Some(format!(
                            "it is for {arch}, but the nodes are {}",
                            target.pip_arch()
                        ));
                    }
                    if glibc > target.glibc {
                        return Some(format!(
                            "`{platform}` needs glibc {}.{}, but the nodes have glibc {}.{}",
                            glibc.0, glibc.1, target.glibc.0, target.glibc.1
                        ));
                    }
                    None
                })();
                match reason {
                    None => return None,
                    Some(reason) if !reasons.contains(&reason) => reasons.push(reason),
                    Some(_) => {}
                }
            }
        }
    }
    Some(reasons.join("; "))
}

/// A problem when none of a wheel's tags fits `target` (`owner` is "numpy 2.0.2").
pub fn check_wheel_tags(owner: &str, tags: &[String], target: &PythonTarget) -> Option<AppProblem> {
    if tags.is_empty() {
        return None;
    }
    let mut reasons = Vec::new();
    for tag in tags {
        match tag_incompatibility(tag, target) {
            None => return None,
            Some(reason) => reasons.push(format!("{tag}: {reason}")),
        }
    }
    Some(AppProblem::new(
        owner,
        format!(
            "its wheel is tagged for another platform than the nodes ({}): {}",
            target.describe(),
            reasons.join("; ")
        ),
        format!(
            "pin a version that publishes a wheel for {} (pip picks it when the dependencies are built for the cluster); a wheel you built yourself must be built on the nodes' Amazon Linux with Python {}.{}",
            target.describe(),
            target.python.0,
            target.python.1
        ),
    ))
}

/// [`check_deps_zip`] for a tree held in memory: (name inside the tree, bytes).
pub fn check_deps_files(files: &[(String, Vec<u8>)], target: &PythonTarget) -> Vec<AppProblem> {
    let by_name: HashMap<&str, &[u8]> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let mut read = |name: &str| Ok(by_name.get(name).map(|b| b.to_vec()).unwrap_or_default());
    check_tree(&names, &mut read, target).expect("reading from memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(python: (u8, u8), glibc: (u32, u32), arch: Arch) -> PythonTarget {
        PythonTarget {
            python,
            glibc,
            arch,
        }
    }

    #[test]
    fn wheel_tags_against_an_emr7_x86_node() {
        let node = target((3, 9), (2, 34), Arch::X86_64);
        for fits in [
            "py3-none-any",
            "py2.py3-none-any",
            "cp39-cp39-manylinux_2_17_x86_64",
            "cp39-cp39-manylinux2014_x86_64",
            "cp36-abi3-manylinux1_x86_64",
            "cp39-cp39-manylinux_2_34_x86_64",
            "cp39-cp39-linux_x86_64",
            "py39-none-any",
        ] {
            assert_eq!(tag_incompatibility(fits, &node), None, "{fits}");
        }
        for (misfit, why) in [
            (
                "cp311-cp311-manylinux_2_17_x86_64",
                "Python tag `cp311` is not CPython 3.9",
            ),
            (
                "cp39-cp39-manylinux_2_17_aarch64",
                "it is for aarch64, but the nodes are x86_64",
            ),
            (
                "cp39-cp39-manylinux_2_39_x86_64",
                "`manylinux_2_39_x86_64` needs glibc 2.39, but the nodes have glibc 2.34",
            ),
            (
                "cp39-cp39-musllinux_1_2_x86_64",
                "platform `musllinux_1_2_x86_64` is not glibc Linux",
            ),
            ("cp39-cp39-macosx_11_0_arm64", "is not glibc Linux"),
            (
                "cp310-abi3-manylinux_2_17_x86_64",
                "`cp310` is not CPython 3.9",
            ),
            ("pp39-pypy39_pp73-manylinux_2_17_x86_64", "`pp39`"),
            ("py2-none-any", "`py2`"),
        ] {
            let reason = tag_incompatibility(misfit, &node).unwrap_or_default();
            assert!(reason.contains(why), "{misfit}: {reason}");
        }
        // Python 3.7's default ABI is `cp37m`.
        let emr6 = target((3, 7), (2, 26), Arch::X86_64);
        assert_eq!(
            tag_incompatibility("cp37-cp37m-manylinux_2_17_x86_64", &emr6),
            None
        );
        assert!(tag_incompatibility("cp37-cp37m-manylinux_2_28_x86_64", &emr6).is_some());
    }

    #[test]
    fn a_wheel_fits_when_any_of_its_tags_does() {
        let node = target((3, 9), (2, 34), Arch::X86_64);
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_wheel_tags(
            "numpy 2.0.2",
            &tags(&[
                "cp39-cp39-manylinux_2_17_x86_64",
                "cp39-cp39-manylinux2014_x86_64"
            ]),
            &node
        )
        .is_none());
        let problem = check_wheel_tags(
            "tiny 1.0",
            &tags(&["cp39-cp39-manylinux_2_39_x86_64"]),
            &node,
        )
        .unwrap();
        assert_eq!(problem.subject, "tiny 1.0");
        assert_eq!(
            problem.message,
            "its wheel is tagged for another platform than the nodes (CPython 3.9 manylinux (glibc ≤ 2.34) x86_64): cp39-cp39-manylinux_2_39_x86_64: `manylinux_2_39_x86_64` needs glibc 2.39, but the nodes have glibc 2.34"
        );
    }

    #[test]
    fn cpython_tags_in_module_names() {
        assert_eq!(
            cpython_tag_of("_multiarray_umath.cpython-39-x86_64-linux-gnu.so"),
            Some((3, 9))
        );
        assert_eq!(
            cpython_tag_of("_x.cpython-311-aarch64-linux-gnu.so"),
            Some((3, 11))
        );
        assert_eq!(
            cpython_tag_of("_x.cpython-37m-x86_64-linux-gnu.so"),
            Some((3, 7))
        );
        assert_eq!(cpython_tag_of("_cffi.abi3.so"), None);
        assert_eq!(cpython_tag_of("libgfortran-040039e1.so.5.0.0"), None);
        assert!(is_compiled_module(
            "numpy.libs/libgfortran-040039e1-0352e75f.so.5.0.0"
        ));
        assert!(is_compiled_module("a/b.cpython-39-x86_64-linux-gnu.so"));
        assert!(!is_compiled_module("a/so.py"));
        assert!(!is_compiled_module("a/resolver.json"));
    }

    /// This test binary is an x86_64 or aarch64 ELF: on a node of the other architecture it is
    /// refused, named for its package.
    #[test]
    fn a_host_elf_on_the_other_architecture_is_refused_with_its_package() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let (host, other) = if cfg!(target_arch = "x86_64") {
            (Arch::X86_64, Arch::Arm64)
        } else {
            (Arch::Arm64, Arch::X86_64)
        };
        let node = target((3, 9), (2, 99), other);
        let name = "pkg/_speed.cpython-39-x86_64-linux-gnu.so";
        let issues = check_compiled_module(name, Some("pkg 1.0".into()), &me, &node);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(matches!(issues[0].kind, IssueKind::Architecture { .. }));
        let at_home = target((3, 9), (2, 99), host);
        assert!(check_compiled_module(name, None, &me, &at_home).is_empty());
        let wrong_python = target((3, 11), (2, 99), host);
        let issues = check_compiled_module(name, None, &me, &wrong_python);
        assert_eq!(
            issues[0].kind,
            IssueKind::PythonVersion { built_for: (3, 9) }
        );
        let issues = check_compiled_module("x.so", None, b"not an elf", &at_home);
        assert!(matches!(issues[0].kind, IssueKind::NotElf { .. }));
    }

    #[test]
    fn issues_are_grouped_per_package_naming_the_worst_file() {
        let node = target((3, 9), (2, 34), Arch::X86_64);
        let glibc = |file: &str, minor| ModuleIssue {
            owner: Some("fast 1.0".into()),
            file: file.into(),
            kind: IssueKind::Glibc {
                needs: (2, minor),
                version_name: format!("GLIBC_2.{minor}"),
            },
        };
        let problems = group_issues(
            vec![
                glibc("fast/a.so", 35),
                glibc("fast/b.so", 38),
                glibc("fast/c.so", 36),
            ],
            &node,
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].subject, "fast 1.0");
        assert_eq!(
            problems[0].message,
            "`fast/b.so` (and 2 more files of it) needs glibc 2.38 (GLIBC_2.38), but the nodes have glibc 2.34: importing it fails there with \"version `GLIBC_2.38' not found\""
        );
        assert!(
            problems[0].fix.contains("manylinux_2_34 or older"),
            "{}",
            problems[0].fix
        );
    }
}
