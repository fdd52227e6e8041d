//! A PySpark application's third-party Python packages, built for the cluster's nodes on this
//! machine, without Docker: `pip install --target` with pip's cross-platform options, wheels
//! only, zipped deterministically.
//!
//! The zip ships as `--archives <s3>/…/deps-<sha12>.zip#emrship_deps` with
//! `PYTHONPATH=./emrship_deps` for the application master and the executors, and
//! `PYSPARK_PYTHON=/usr/bin/python3.X` (the node's own interpreter): a plain directory on the
//! import path needs no venv and no interpreter of its own.
//!
//! Why each pip option (see shared/research/user-apps.md §3.1):
//! - `--only-binary=:all:`: pip cannot compile a source package for another platform, and pip
//!   refuses `--platform` without it;
//! - one `--platform manylinux_2_N_<arch>` per glibc level up to the node's: pip does not widen
//!   PEP 600 tags (`manylinux_2_34` does not admit `manylinux_2_17` wheels by itself);
//! - `--abi cp3X --abi abi3 --abi none`: the node's CPython ABI, the stable ABI, and pure
//!   wheels (`py3-none-any` still match: compatible tags add `any`).
//!
//! pip evaluates environment markers (`; python_version < "3.11"`, `platform_machine ==
//! "aarch64"`) against the interpreter that runs it, not the `--python-version` it is given,
//! so a cross build from Python 3.11 would leave out a 3.9-only backport. The build runs pip
//! through a small bootstrap that sets the marker environment to the target's.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::app_problem::AppProblem;
use super::archive::{write_zip_file, FileEntry};
use crate::render::artifacts::Digest256;
use crate::sizing::Arch;
use crate::spec::release::ReleaseLabel;
/// The alias the deps archive is unpacked under in each container (the spec reserves it).
pub use crate::spec::resolve::DEPS_ALIAS;

/// Bump when the archive layout or the build changes, so old cache entries are not reused.
const BUILD_LAYOUT: &str = "emrship-python-deps 1";

/// What the cluster's nodes run Python with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PythonTarget {
    /// The node interpreter's (major, minor): (3, 9) for `/usr/bin/python3.9`.
    pub python: (u8, u8),
    /// The node's glibc (major, minor).
    pub glibc: (u32, u32),
    pub arch: Arch,
}

impl PythonTarget {
    /// The node's default `python3` for a release: 3.9 on emr-7 (Amazon Linux 2023), 3.7 on
    /// emr-5.30+ and emr-6 (Amazon Linux 2). emr-7.1+ also installs 3.11 (opt-in).
    pub fn default_for(release: &ReleaseLabel, arch: Arch) -> PythonTarget {
        let python = if release.major >= 7 { (3, 9) } else { (3, 7) };
        PythonTarget {
            python,
            glibc: release.glibc,
            arch,
        }
    }

    /// pip's and the manylinux tags' name of the architecture.
    pub fn pip_arch(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The CPython ABI tag: `cp39`; up to 3.7 the default build was `pymalloc` (`cp37m`).
    pub fn abi_tag(&self) -> String {
        let (major, minor) = self.python;
        if major == 3 && minor <= 7 {
            format!("cp{major}{minor}m")
        } else {
            format!("cp{major}{minor}")
        }
    }

    /// The node's interpreter, for `PYSPARK_PYTHON`.
    pub fn interpreter(&self) -> String {
        format!("/usr/bin/python{}.{}", self.python.0, self.python.1)
    }

    /// "CPython 3.9 manylinux (glibc ≤ 2.34) x86_64", for messages.
    pub fn describe(&self) -> String {
        format!(
            "CPython {}.{} manylinux (glibc ≤ {}.{}) {}",
            self.python.0,
            self.python.1,
            self.glibc.0,
            self.glibc.1,
            self.pip_arch()
        )
    }

    /// Every platform tag a node accepts, most specific first (pip prefers earlier tags when a
    /// release has several wheels, as it does natively: newest manylinux first).
    pub fn platform_tags(&self) -> Vec<String> {
        let arch = self.pip_arch();
        // manylinux_2_17 is the oldest tag PyPI's aarch64 wheels use (manylinux2014).
        let oldest = if self.arch == Arch::X86_64 { 5 } else { 17 };
        let mut tags: Vec<String> = (oldest..=self.glibc.1)
            .rev()
            .map(|minor| format!("manylinux_2_{minor}_{arch}"))
            .collect();
        if self.glibc >= (2, 17) {
            tags.push(format!("manylinux2014_{arch}"));
        }
        if self.arch == Arch::X86_64 {
            if self.glibc >= (2, 12) {
                tags.push(format!("manylinux2010_{arch}"));
            }
            tags.push(format!("manylinux1_{arch}"));
        }
        // A wheel the user built on Amazon Linux with `pip wheel` is tagged `linux_<arch>`; the
        // static check of its compiled modules stands in for the manylinux promise.
        tags.push(format!("linux_{arch}"));
        tags
    }

    /// The environment markers pip should evaluate for this target (see the module docs).
    fn marker_environment(&self) -> serde_json::Value {
        let version = format!("{}.{}", self.python.0, self.python.1);
        serde_json::json!({
            "python_version": version,
            "python_full_version": format!("{version}.0"),
            "implementation_version": format!("{version}.0"),
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "platform_machine": self.pip_arch(),
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
        })
    }
}

/// pip's options that make `pip install --target` pick wheels for `target` instead of for
/// this machine.
pub fn pip_cross_args(target: &PythonTarget) -> Vec<String> {
    let (major, minor) = target.python;
    let mut args = vec![
        "--only-binary=:all:".to_string(),
        "--implementation".into(),
        "cp".into(),
        "--python-version".into(),
        format!("{major}.{minor}"),
        "--abi".into(),
        target.abi_tag(),
        "--abi".into(),
        "abi3".into(),
        "--abi".into(),
        "none".into(),
    ];
    for tag in target.platform_tags() {
        args.push("--platform".into());
        args.push(tag);
    }
    args
}

/// Which platform to build the dependencies for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepsTarget {
    /// The cluster's nodes (for `deploy`).
    Cluster(PythonTarget),
    /// The given interpreter's own platform (for `run --local`); still wheels only, so a
    /// package that builds locally but has no wheel is found here too.
    Local,
}

/// One installed distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepPackage {
    pub name: String,
    pub version: String,
    /// The wheel's tags from its `WHEEL` file (`cp39-cp39-manylinux_2_17_x86_64`).
    pub tags: Vec<String>,
}

/// The zipped dependency tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltDeps {
    /// The zip, inside the cache (do not delete it; it is the cache entry).
    pub zip: PathBuf,
    pub digest: Digest256,
    /// Sorted by name.
    pub packages: Vec<DepPackage>,
    /// True when the zip came from an earlier build with the same key, without running pip.
    pub from_cache: bool,
    /// Not errors, but worth telling (`.pth` files that will not be processed).
    pub warnings: Vec<AppProblem>,
    /// The cache key: sha256 of the requirements text, the target, pip's version, the index
    /// settings and the `--find-links` directories' listings.
    pub key: String,
}

impl BuiltDeps {
    /// `deps-<first 12 hex digits of the zip's sha256>.zip`: the upload's unique basename.
    pub fn file_name(&self) -> String {
        format!("deps-{}.zip", &self.digest.sha256[..12])
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    key: String,
    sha256: String,
    bytes: u64,
    packages: Vec<DepPackage>,
    warnings: Vec<AppProblem>,
    target: String,
    pip_version: String,
}

/// What the interpreter that runs pip is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PythonProbe {
    pip_version: String,
    python: String,
    platform: String,
}

const PROBE: &str = "import sys, sysconfig, platform\n\
try:\n    import pip\n    v = pip.__version__\nexcept ImportError:\n    v = ''\n\
print(v)\nprint('%d.%d' % sys.version_info[:2])\n\
print(sysconfig.get_platform() + ' ' + ' '.join(platform.libc_ver()))\n";

fn probe(python: &Path) -> Result<PythonProbe, AppProblem> {
    let output = Command::new(python)
        .args(["-c", PROBE])
        .output()
        .map_err(|e| {
            AppProblem::new(
                python.display().to_string(),
                format!("cannot be run: {e}"),
                "point at a Python 3 interpreter that has pip (e.g. a venv's bin/python)",
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let (Some(pip_version), Some(version), Some(platform)) =
        (lines.next(), lines.next(), lines.next())
    else {
        return Err(AppProblem::new(
            python.display().to_string(),
            format!(
                "did not answer as a Python 3 interpreter: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            "point at a Python 3 interpreter that has pip",
        ));
    };
    if pip_version.is_empty() {
        return Err(AppProblem::new(
            python.display().to_string(),
            "has no pip module",
            format!("install it: {} -m ensurepip", python.display()),
        ));
    }
    Ok(PythonProbe {
        pip_version: pip_version.to_string(),
        python: version.to_string(),
        platform: platform.to_string(),
    })
}

/// Local `--find-links` directories (from the text and `PIP_FIND_LINKS`): their listings go
/// into the cache key, so adding a wheel there rebuilds.
fn find_links_dirs(requirements_text: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = requirements_text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("--find-links ")
                .or_else(|| l.strip_prefix("--find-links="))
                .or_else(|| l.strip_prefix("-f "))
        })
        .map(|v| PathBuf::from(v.trim()))
        .collect();
    if let Ok(env) = std::env::var("PIP_FIND_LINKS") {
        dirs.extend(env.split_whitespace().map(PathBuf::from));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

fn cache_key(requirements_text: &str, target_text: &str, probe: &PythonProbe) -> String {
    let mut hasher = Sha256::new();
    let mut add = |label: &str, value: &str| {
        hasher.update(label.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    };
    add("layout", BUILD_LAYOUT);
    add("requirements", requirements_text);
    add("target", target_text);
    add("pip", &probe.pip_version);
    for var in ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"] {
        add(var, &std::env::var(var).unwrap_or_default());
    }
    for dir in find_links_dirs(requirements_text) {
        let mut listing: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                format!("{} {size}", e.file_name().to_string_lossy())
            })
            .collect();
        listing.sort();
        add(&dir.display().to_string(), &listing.join("\n"));
    }
    hex::encode(hasher.finalize())
}

/// Runs pip with the target's marker environment (see the module docs), then pip's own `main`.
const PIP_BOOTSTRAP: &str = r#"import sys, json
overrides = json.loads(sys.argv[1])
if overrides:
    from pip._vendor.packaging import markers
    host_environment = markers.default_environment
    def target_environment():
        environment = host_environment()
        environment.update(overrides)
        return environment
    markers.default_environment = target_environment
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"#;

/// Builds (or finds in `cache_root`) the zipped dependency tree for `requirements_text`.
///
/// `python` runs pip; for [`DepsTarget::Local`] it is also the interpreter the zip is for.
/// Two builds of the same inputs give byte-identical zips; a build with a key already in the
/// cache returns it without running pip. Concurrent builds of one key each build in their own
/// folder and the first to finish renames it into place.
pub fn build_deps(
    requirements_text: &str,
    target: DepsTarget,
    cache_root: &Path,
    python: &Path,
) -> Result<BuiltDeps, Vec<AppProblem>> {
    let probe = probe(python).map_err(|p| vec![p])?;
    let target_text = match &target {
        DepsTarget::Cluster(t) => format!("cluster {} {}", t.describe(), t.abi_tag()),
        DepsTarget::Local => format!("local python {} {}", probe.python, probe.platform),
    };
    let key = cache_key(requirements_text, &target_text, &probe);
    let entry = cache_root.join(&key);
    if let Some(found) = from_cache(&entry) {
        return Ok(found);
    }

    let io_problem = |what: String, e: std::io::Error| {
        vec![AppProblem::new(
            cache_root.display().to_string(),
            format!("{what}: {e}"),
            "check that the cache folder is writable (or point the cache elsewhere)",
        )]
    };
    std::fs::create_dir_all(cache_root)
        .map_err(|e| io_problem("cannot create the dependency cache".into(), e))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let work = cache_root.join(format!(
        ".build-{}-{}-{nanos}",
        &key[..12],
        std::process::id()
    ));
    std::fs::create_dir_all(work.join("out"))
        .map_err(|e| io_problem("cannot create a build folder".into(), e))?;
    let result = build_into(
        requirements_text,
        &target,
        python,
        &work,
        &key,
        &target_text,
        &probe,
    )
    .and_then(|()| match std::fs::rename(work.join("out"), &entry) {
        Ok(()) => Ok(()),
        // Another build of the same key got there first: its zip has the same bytes.
        Err(_) if entry.join("manifest.json").is_file() => Ok(()),
        Err(e) => Err(io_problem(
            format!("cannot move the build into {}", entry.display()),
            e,
        )),
    });
    let _ = std::fs::remove_dir_all(&work);
    result?;
    let mut built = from_cache(&entry).ok_or_else(|| {
        vec![AppProblem::new(
            entry.display().to_string(),
            "the finished build is missing from the cache",
            "check that nothing else deletes the cache folder while emrship runs",
        )]
    })?;
    built.from_cache = false;
    Ok(built)
}

fn from_cache(entry: &Path) -> Option<BuiltDeps> {
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(entry.join("manifest.json")).ok()?).ok()?;
    let zip = entry.join("deps.zip");
    // A size check, not a re-hash: the cache is emrship's own, and the upload key is the
    // recorded digest (a corrupted file would fail the node's extraction, not go unnoticed).
    if std::fs::metadata(&zip).ok()?.len() != manifest.bytes {
        return None;
    }
    Some(BuiltDeps {
        zip,
        digest: Digest256 {
            sha256: manifest.sha256,
            bytes: manifest.bytes,
        },
        packages: manifest.packages,
        from_cache: true,
        warnings: manifest.warnings,
        key: manifest.key,
    })
}

fn build_into(
    requirements_text: &str,
    target: &DepsTarget,
    python: &Path,
    work: &Path,
    key: &str,
    target_text: &str,
    probe: &PythonProbe,
) -> Result<(), Vec<AppProblem>> {
    let io = |what: &str, e: String| {
        vec![AppProblem::new(
            work.display().to_string(),
            format!("{what}: {e}"),
            "check the disk space and permissions of the dependency cache",
        )]
    };
    let requirements = work.join("requirements.txt");
    std::fs::write(&requirements, requirements_text)
        .map_err(|e| io("cannot write the requirements", e.to_string()))?;
    let site = work.join("target");
    let (overrides, cross) = match target {
        DepsTarget::Cluster(t) => (t.marker_environment(), pip_cross_args(t)),
        DepsTarget::Local => (
            serde_json::json!({}),
            vec!["--only-binary=:all:".to_string()],
        ),
    };
    let output = Command::new(python)
        .arg("-c")
        .arg(PIP_BOOTSTRAP)
        .arg(overrides.to_string())
        .args(["install", "--target"])
        .arg(&site)
        .args([
            "--no-compile",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--no-input",
            "--progress-bar",
            "off",
        ])
        .args(&cross)
        .arg("-r")
        .arg(&requirements)
        .env("PIP_NO_INPUT", "1")
        .output()
        .map_err(|e| io("cannot run pip", e.to_string()))?;
    if !output.status.success() {
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let describe = match target {
            DepsTarget::Cluster(t) => t.describe(),
            DepsTarget::Local => format!(
                "this machine's Python {} ({})",
                probe.python, probe.platform
            ),
        };
        return Err(pip_failure_problems(&text, &describe, target));
    }

    let tree = collect_tree(&site).map_err(|e| io("cannot read pip's output", e))?;
    let zip = work.join("out").join("deps.zip");
    write_zip_file(&zip, tree.files, &|name, bytes| {
        if name.ends_with(".dist-info/RECORD") {
            filter_record(&bytes)
        } else {
            bytes
        }
    })
    .map_err(|e| io("cannot write the deps zip", e))?;
    let digest = digest_file(&zip).map_err(|e| io("cannot read the deps zip", e))?;
    let manifest = Manifest {
        key: key.to_string(),
        sha256: digest.sha256,
        bytes: digest.bytes,
        packages: tree.packages,
        warnings: tree.warnings,
        target: target_text.to_string(),
        pip_version: probe.pip_version.clone(),
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
    std::fs::write(work.join("out").join("manifest.json"), json)
        .map_err(|e| io("cannot write the manifest", e.to_string()))
}

fn digest_file(path: &Path) -> Result<Digest256, String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok(Digest256 {
        sha256: hex::encode(hasher.finalize()),
        bytes,
    })
}

/// pip's RECORD lists what it installed, including the `bin/` scripts (outside the target,
/// `../../bin/…`) and compiled caches, which the zip leaves out; their lines go too, so the
/// RECORD describes the zip (and the scripts' shebang, which names the build interpreter,
/// does not reach the digest).
fn filter_record(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for line in text.lines() {
        let path = line.split(',').next().unwrap_or("");
        if path.starts_with("../") || path.contains("__pycache__/") || path.ends_with(".pyc") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

struct Tree {
    files: Vec<FileEntry>,
    packages: Vec<DepPackage>,
    warnings: Vec<AppProblem>,
}

/// The files of pip's `--target` folder that go in the zip, with fixed modes (0644, or 0755
/// when any execute bit is set): no `bin/` (console scripts whose shebang names the build
/// interpreter), no `__pycache__` or `.pyc`.
fn collect_tree(site: &Path) -> Result<Tree, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut stack = vec![(site.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let metadata =
                std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let relative = format!("{prefix}{name}");
            if metadata.is_dir() {
                if name == "__pycache__" || (prefix.is_empty() && name == "bin") {
                    continue;
                }
                stack.push((path, format!("{relative}/")));
            } else if !name.ends_with(".pyc") {
                let mode = if metadata.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                files.push(FileEntry {
                    name: relative,
                    path,
                    mode,
                });
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));

    let mut packages = Vec::new();
    for file in &files {
        if let Some(dist_info) = file.name.strip_suffix("/METADATA") {
            if !dist_info.ends_with(".dist-info") || dist_info.contains('/') {
                continue;
            }
            let metadata = std::fs::read_to_string(&file.path).unwrap_or_default();
            let wheel =
                std::fs::read_to_string(site.join(dist_info).join("WHEEL")).unwrap_or_default();
            let header = |key: &str| {
                metadata
                    .lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            packages.push(DepPackage {
                name: header("Name:"),
                version: header("Version:"),
                tags: wheel_tags(&wheel),
            });
        }
    }
    packages.sort_by_key(|p| p.name.to_lowercase());

    let owners = record_owners(
        files
            .iter()
            .filter(|f| f.name.ends_with(".dist-info/RECORD"))
            .map(|f| {
                (
                    f.name.clone(),
                    std::fs::read_to_string(&f.path).unwrap_or_default(),
                )
            }),
    );
    let warnings = files
        .iter()
        .filter(|f| f.name.ends_with(".pth") && !f.name.contains('/'))
        .map(|f| pth_warning(&f.name, owners.get(&f.name).map(String::as_str)))
        .collect();
    Ok(Tree {
        files,
        packages,
        warnings,
    })
}

pub(crate) fn pth_warning(file: &str, owner: Option<&str>) -> AppProblem {
    let subject = match owner {
        Some(owner) => format!("{owner} ({file})"),
        None => file.to_string(),
    };
    AppProblem::new(
        subject,
        format!("`{file}` is a .pth file: Python processes those only in site-packages, not in a PYTHONPATH folder, so whatever it sets up (a namespace package, a path entry, an import hook) does not happen on the cluster"),
        "check the package works without it (most namespace packages do, through PEP 420); otherwise import what it sets up explicitly in the application",
    )
}

/// The `Tag:` lines of a wheel's `WHEEL` file.
pub fn wheel_tags(wheel_file: &str) -> Vec<String> {
    wheel_file
        .lines()
        .filter_map(|l| l.strip_prefix("Tag:"))
        .map(|t| t.trim().to_string())
        .collect()
}

/// Which distribution installed each file: `path → "name version"`, from the RECORD files
/// (`(RECORD's path in the tree, its text)`).
pub(crate) fn record_owners(
    records: impl Iterator<Item = (String, String)>,
) -> std::collections::HashMap<String, String> {
    let mut owners = std::collections::HashMap::new();
    for (record_path, text) in records {
        let dist_info = record_path
            .strip_suffix("/RECORD")
            .unwrap_or(&record_path)
            .rsplit('/')
            .next()
            .unwrap_or("");
        let stem = dist_info.strip_suffix(".dist-info").unwrap_or(dist_info);
        // `numpy-2.0.2` → "numpy 2.0.2" (distribution names in dist-info folders have no `-`).
        let owner = match stem.split_once('-') {
            Some((name, version)) => format!("{name} {version}"),
            None => stem.to_string(),
        };
        for line in text.lines() {
            if let Some(path) = line.split(',').next() {
                owners.insert(path.to_string(), owner.clone());
            }
        }
    }
    owners
}

/// Turns pip's failure output into problems: one per requirement that has no wheel for the
/// target, naming it and the target; otherwise pip's own error lines.
fn pip_failure_problems(output: &str, target_text: &str, target: &DepsTarget) -> Vec<AppProblem> {
    let pattern = regex_lite::Regex::new(
        r"Could not find a version that satisfies the requirement (\S+)(?: \(from versions: ([^)]*)\))?",
    )
    .expect("the pattern is valid");
    let where_to_build = match target {
        DepsTarget::Cluster(t) => format!(
            "build the wheel on Amazon Linux with Python {}.{} on {} (`pip wheel <pkg>==<version> -w wheels/`), put it in a folder and add `--find-links <folder>` to the requirements",
            t.python.0,
            t.python.1,
            t.pip_arch()
        ),
        DepsTarget::Local => "build the wheel with `pip wheel <pkg>==<version> -w wheels/`, put it in a folder and add `--find-links <folder>` to the requirements".to_string(),
    };
    let mut problems: Vec<AppProblem> = Vec::new();
    for captures in pattern.captures_iter(output) {
        let requirement = captures.get(1).map(|m| m.as_str()).unwrap_or("");
        let name = super::requirements::requirement_name(requirement);
        if problems.iter().any(|p| p.subject == name) {
            continue;
        }
        let versions: Vec<&str> = captures
            .get(2)
            .map(|m| m.as_str())
            .unwrap_or("none")
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty() && *v != "none")
            .collect();
        let (message, fix) = if versions.is_empty() {
            (
                format!("`{name}` has no wheel for {target_text}: pip found no version of it with one (a source-only package, or none built for this Python, ABI or platform); source packages cannot be built for another platform here"),
                format!("pick a package or version that publishes wheels for {target_text}, or {where_to_build}"),
            )
        } else {
            let shown: Vec<&str> = versions.iter().rev().take(5).rev().copied().collect();
            (
                format!("`{requirement}` matches no wheel for {target_text}; the versions that have one: {}{}", if versions.len() > shown.len() { "…, " } else { "" }, shown.join(", ")),
                format!("pick one of those versions (e.g. `{name}=={}`), or {where_to_build}", shown.last().unwrap_or(&"")),
            )
        };
        problems.push(AppProblem::new(name, message, fix));
    }
    if problems.is_empty() {
        let errors: Vec<&str> = output
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.starts_with("Collecting")
                    && !l.starts_with("  Downloading")
                    && !l.starts_with("Looking in")
                    && !l.starts_with("  Using cached")
            })
            .collect();
        let tail: Vec<&str> = errors.iter().rev().take(15).rev().copied().collect();
        problems.push(AppProblem::new(
            "pip install",
            format!("pip could not install the dependencies for {target_text}:\n{}", tail.join("\n")),
            "fix what pip reports in the requirements (a version conflict, a hash mismatch, an unreachable index) and build again",
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emr7(arch: Arch) -> PythonTarget {
        PythonTarget::default_for(&ReleaseLabel::parse("emr-7.5.0").unwrap(), arch)
    }

    #[test]
    fn cross_args_name_every_manylinux_level_up_to_the_node_glibc() {
        let args = pip_cross_args(&emr7(Arch::X86_64)).join(" ");
        assert!(args.starts_with("--only-binary=:all: --implementation cp --python-version 3.9 --abi cp39 --abi abi3 --abi none --platform manylinux_2_34_x86_64 --platform manylinux_2_33_x86_64 "), "{args}");
        assert!(args.contains("--platform manylinux_2_17_x86_64 "), "{args}");
        assert!(args.ends_with("--platform manylinux_2_5_x86_64 --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64"), "{args}");
        assert!(!args.contains("manylinux_2_35"), "{args}");

        let args = pip_cross_args(&emr7(Arch::Arm64)).join(" ");
        assert!(
            args.contains("--platform manylinux_2_34_aarch64 "),
            "{args}"
        );
        assert!(args.ends_with("--platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --platform linux_aarch64"), "{args}");
        assert!(!args.contains("manylinux1"), "{args}");

        let emr6 =
            PythonTarget::default_for(&ReleaseLabel::parse("emr-6.15.0").unwrap(), Arch::X86_64);
        let args = pip_cross_args(&emr6).join(" ");
        assert!(args.contains("--python-version 3.7 --abi cp37m "), "{args}");
        assert!(
            args.contains("manylinux_2_26_x86_64") && !args.contains("manylinux_2_27"),
            "{args}"
        );
        assert_eq!(emr6.interpreter(), "/usr/bin/python3.7");
        assert_eq!(
            emr7(Arch::Arm64).describe(),
            "CPython 3.9 manylinux (glibc ≤ 2.34) aarch64"
        );
    }

    #[test]
    fn no_wheel_failures_name_each_package_and_the_target() {
        let target = emr7(Arch::X86_64);
        let output = "Looking in links: /opt/wheels\nCollecting six==1.17.0\nERROR: Could not find a version that satisfies the requirement docopt==0.6.2 (from versions: none)\nERROR: No matching distribution found for docopt==0.6.2\n";
        let problems =
            pip_failure_problems(output, &target.describe(), &DepsTarget::Cluster(target));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].subject, "docopt");
        assert!(
            problems[0].message.starts_with(
                "`docopt` has no wheel for CPython 3.9 manylinux (glibc ≤ 2.34) x86_64"
            ),
            "{}",
            problems[0]
        );
        assert!(problems[0].fix.contains("--find-links"), "{}", problems[0]);
        assert!(
            problems[0]
                .fix
                .contains("Amazon Linux with Python 3.9 on x86_64"),
            "{}",
            problems[0]
        );

        let output = "ERROR: Could not find a version that satisfies the requirement numpy==2.1.0 (from versions: 1.26.3, 1.26.4, 2.0.0, 2.0.1, 2.0.2, 2.0.3)\n";
        let problems =
            pip_failure_problems(output, &target.describe(), &DepsTarget::Cluster(target));
        assert_eq!(problems[0].subject, "numpy");
        assert!(
            problems[0]
                .message
                .contains("`numpy==2.1.0` matches no wheel for CPython 3.9"),
            "{}",
            problems[0]
        );
        assert!(
            problems[0]
                .message
                .contains("…, 1.26.4, 2.0.0, 2.0.1, 2.0.2, 2.0.3"),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].fix.contains("`numpy==2.0.3`"),
            "{}",
            problems[0]
        );

        let output = "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.\n    six==1.17.0 from https://x:\n        Expected sha256 aaa\n             Got        bbb\n";
        let problems =
            pip_failure_problems(output, &target.describe(), &DepsTarget::Cluster(target));
        assert_eq!(problems[0].subject, "pip install");
        assert!(
            problems[0].message.contains("DO NOT MATCH THE HASHES"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn record_filter_drops_scripts_and_caches() {
        let record = "../../bin/f2py,sha256=x,232\nnumpy/__init__.py,sha256=y,10\nnumpy/__pycache__/a.cpython-39.pyc,,\nnumpy-2.0.2.dist-info/RECORD,,\n";
        assert_eq!(
            String::from_utf8(filter_record(record.as_bytes())).unwrap(),
            "numpy/__init__.py,sha256=y,10\nnumpy-2.0.2.dist-info/RECORD,,\n"
        );
    }

    #[test]
    fn owners_come_from_record_files() {
        let owners = record_owners(
            vec![(
                "protobuf-5.0.0.dist-info/RECORD".to_string(),
                "protobuf-5.0.0-nspkg.pth,sha256=x,1\ngoogle/protobuf/__init__.py,,\n".to_string(),
            )]
            .into_iter(),
        );
        assert_eq!(owners["protobuf-5.0.0-nspkg.pth"], "protobuf 5.0.0");
        let warning = pth_warning("protobuf-5.0.0-nspkg.pth", Some("protobuf 5.0.0"));
        assert_eq!(warning.subject, "protobuf 5.0.0 (protobuf-5.0.0-nspkg.pth)");
        assert!(warning.message.contains("not in a PYTHONPATH folder"));
    }

    #[test]
    fn wheel_tags_from_the_wheel_file() {
        assert_eq!(
            wheel_tags("Wheel-Version: 1.0\nGenerator: x\nTag: py2-none-any\nTag: py3-none-any\n"),
            ["py2-none-any", "py3-none-any"]
        );
    }
}
