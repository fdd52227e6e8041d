//! Users' Python dependencies built for real: the project's test Python runs pip, and the
//! result is read back from the zip.
//!
//! NETWORK: the tests named `pypi_*` download wheels from PyPI (six, tomli, numpy for cp39
//! x86_64 and aarch64, ~40 MB on a cold pip cache; pip's own cache makes a warm run quick).
//! The crafted wheels (`tiny`, `hooks`) come from a local `--find-links` folder, with a tiny
//! shared library compiled by zig (`python -m ziglang cc`, in the test venv) for an exact
//! glibc.
#![cfg(feature = "aws")]

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use emrship::bundle::app_problem::AppProblem;
use emrship::bundle::archive::{write_zip, ArchiveEntry};
use emrship::bundle::python_deps::{build_deps, BuiltDeps, DepsTarget, PythonTarget};
use emrship::bundle::wheel_check::{check_deps_files, check_deps_zip};
use emrship::sizing::Arch;
use emrship::spec::release::ReleaseLabel;

fn emr7(arch: Arch) -> PythonTarget {
    PythonTarget::default_for(&ReleaseLabel::parse("emr-7.5.0").unwrap(), arch)
}

/// A fresh cache folder per call, so every test builds from scratch unless it reuses one.
fn fresh_cache(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("app_packaging")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn python() -> PathBuf {
    common::moto::test_python()
}

fn build(
    requirements: &str,
    target: DepsTarget,
    cache: &Path,
) -> Result<BuiltDeps, Vec<AppProblem>> {
    build_deps(requirements, target, cache, &python())
}

fn zip_names(zip: &Path) -> Vec<String> {
    let archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    archive
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .collect()
}

fn zip_entry(zip: &Path, name: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut bytes = Vec::new();
    archive
        .by_name(name)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

#[test]
fn pypi_cross_build_for_emr7_x86_gets_cp39_manylinux_numpy_that_passes_the_checks() {
    let cache = fresh_cache("x86");
    let requirements = "six==1.17.0\nnumpy==2.0.2\n";
    let started = Instant::now();
    let built = build(
        requirements,
        DepsTarget::Cluster(emr7(Arch::X86_64)),
        &cache,
    )
    .unwrap();
    eprintln!("first build: {:?}", started.elapsed());
    assert!(!built.from_cache);
    let numpy = built.packages.iter().find(|p| p.name == "numpy").unwrap();
    assert_eq!(numpy.version, "2.0.2");
    assert!(
        numpy
            .tags
            .contains(&"cp39-cp39-manylinux_2_17_x86_64".to_string()),
        "{numpy:?}"
    );
    let six = built.packages.iter().find(|p| p.name == "six").unwrap();
    assert!(six.tags.contains(&"py3-none-any".to_string()), "{six:?}");
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    assert_eq!(
        built.file_name(),
        format!("deps-{}.zip", &built.digest.sha256[..12])
    );

    let names = zip_names(&built.zip);
    assert!(names.contains(&"six.py".to_string()));
    assert!(names.contains(&"numpy/__init__.py".to_string()));
    assert!(names
        .iter()
        .any(|n| n.starts_with("numpy/_core/_multiarray_umath.cpython-39-x86_64-linux-gnu.so")));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("bin/") || n.contains("__pycache__") || n.ends_with(".pyc")));
    let record = String::from_utf8(zip_entry(&built.zip, "numpy-2.0.2.dist-info/RECORD")).unwrap();
    assert!(
        !record.contains("../"),
        "the bin/ scripts' lines stay out of RECORD"
    );
    assert!(record.contains("numpy/__init__.py,sha256="));

    let problems = check_deps_zip(&built.zip, &emr7(Arch::X86_64)).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");

    // The same key again: from the cache, without pip.
    let started = Instant::now();
    let again = build(
        requirements,
        DepsTarget::Cluster(emr7(Arch::X86_64)),
        &cache,
    )
    .unwrap();
    let elapsed = started.elapsed();
    assert!(again.from_cache);
    assert_eq!(again.digest, built.digest);
    assert_eq!(again.packages, built.packages);
    assert!(elapsed.as_millis() < 1500, "a cache hit took {elapsed:?}");

    // The same requirements from scratch in another cache: byte-identical zip.
    let other = build(
        requirements,
        DepsTarget::Cluster(emr7(Arch::X86_64)),
        &fresh_cache("x86-again"),
    )
    .unwrap();
    assert!(!other.from_cache);
    assert_eq!(other.digest, built.digest);
}

#[test]
fn pypi_aarch64_numpy_fails_the_x86_check_with_the_exact_message() {
    let built = build(
        "numpy==2.0.2\n",
        DepsTarget::Cluster(emr7(Arch::Arm64)),
        &fresh_cache("arm"),
    )
    .unwrap();
    let numpy = &built.packages[0];
    assert!(
        numpy
            .tags
            .contains(&"cp39-cp39-manylinux_2_17_aarch64".to_string()),
        "{numpy:?}"
    );
    assert!(check_deps_zip(&built.zip, &emr7(Arch::Arm64))
        .unwrap()
        .is_empty());

    let problems = check_deps_zip(&built.zip, &emr7(Arch::X86_64)).unwrap();
    let mut modules: Vec<String> = zip_names(&built.zip)
        .into_iter()
        .filter(|n| emrship::bundle::wheel_check::is_compiled_module(n))
        .collect();
    modules.sort();
    assert!(modules.len() > 10, "{modules:?}");
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_eq!(problems[0].subject, "numpy 2.0.2");
    assert_eq!(
        problems[0].message,
        "its wheel is tagged for another platform than the nodes (CPython 3.9 manylinux (glibc ≤ 2.34) x86_64): \
         cp39-cp39-manylinux_2_17_aarch64: it is for aarch64, but the nodes are x86_64; \
         cp39-cp39-manylinux2014_aarch64: it is for aarch64, but the nodes are x86_64"
    );
    assert_eq!(problems[1].subject, "numpy 2.0.2");
    assert_eq!(
        problems[1].message,
        format!(
            "`{}` (and {} more files of it) is built for aarch64 (arm64), but the nodes are x86_64: Python cannot load it there",
            modules[0],
            modules.len() - 1
        ),
        "{problems:#?}"
    );
    assert_eq!(
        problems[1].fix,
        "build the dependencies for the nodes' architecture (x86_64; emrship picks it from the instance types); a wheel from a --find-links folder must be rebuilt on x86_64"
    );
}

#[test]
fn pypi_a_source_only_requirement_names_the_package_and_the_target() {
    // docopt 0.6.2 is published as an sdist only (checked with
    // `pip download --only-binary=:all: docopt` → "from versions: none").
    let problems = build(
        "six==1.17.0\ndocopt==0.6.2\n",
        DepsTarget::Cluster(emr7(Arch::X86_64)),
        &fresh_cache("sdist"),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].subject, "docopt");
    assert_eq!(
        problems[0].message,
        "`docopt` has no wheel for CPython 3.9 manylinux (glibc ≤ 2.34) x86_64: pip found no version of it with one \
         (a source-only package, or none built for this Python, ABI or platform); source packages cannot be built for another platform here"
    );
    assert_eq!(
        problems[0].fix,
        "pick a package or version that publishes wheels for CPython 3.9 manylinux (glibc ≤ 2.34) x86_64, or build the wheel on Amazon Linux \
         with Python 3.9 on x86_64 (`pip wheel <pkg>==<version> -w wheels/`), put it in a folder and add `--find-links <folder>` to the requirements"
    );
}

#[test]
fn pypi_markers_are_evaluated_for_the_nodes_python_not_this_one() {
    // The test Python is 3.11; the emr-7 nodes run 3.9, which needs the tomli backport.
    let requirements = "six==1.17.0\ntomli==2.2.1 ; python_version < \"3.11\"\n";
    let built = build(
        requirements,
        DepsTarget::Cluster(emr7(Arch::X86_64)),
        &fresh_cache("markers"),
    )
    .unwrap();
    let names: BTreeSet<&str> = built.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["six", "tomli"]));

    // Built for this machine's Python (3.11 here), the marker leaves tomli out.
    let local = build(
        requirements,
        DepsTarget::Local,
        &fresh_cache("markers-local"),
    )
    .unwrap();
    let host_minor = Command::new(python())
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()
        .unwrap();
    let host_minor: u32 = String::from_utf8(host_minor.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let local_names: BTreeSet<&str> = local.packages.iter().map(|p| p.name.as_str()).collect();
    if host_minor >= 11 {
        assert_eq!(local_names, BTreeSet::from(["six"]));
    } else {
        assert_eq!(local_names, BTreeSet::from(["six", "tomli"]));
    }
    assert_ne!(local.key, built.key);
}

#[test]
fn pypi_changed_requirements_rebuild_in_the_same_cache() {
    let cache = fresh_cache("rebuild");
    let target = DepsTarget::Cluster(emr7(Arch::X86_64));
    let first = build("six==1.16.0\n", target, &cache).unwrap();
    let cached = build("six==1.16.0\n", target, &cache).unwrap();
    assert!(cached.from_cache);
    let changed = build("six==1.17.0\n", target, &cache).unwrap();
    assert!(!changed.from_cache);
    assert_ne!(changed.digest, first.digest);
    assert_eq!(changed.packages[0].version, "1.17.0");
    // Another Python on the nodes is another key.
    let py311 = PythonTarget {
        python: (3, 11),
        ..emr7(Arch::X86_64)
    };
    assert!(
        !build("six==1.16.0\n", DepsTarget::Cluster(py311), &cache)
            .unwrap()
            .from_cache
    );
    // The build folders are gone; only the cache entries stay.
    let leftovers: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A shared library for x86_64 that needs glibc 2.38 (`strlcpy` is new in 2.38), compiled once.
fn glibc_238_library() -> Vec<u8> {
    static LIBRARY: OnceLock<Vec<u8>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let dir = fresh_cache("zig");
            let source = dir.join("tiny.c");
            std::fs::write(
                &source,
                "#include <string.h>\nsize_t tiny_copy(char *d, const char *s, size_t n) { return strlcpy(d, s, n); }\n",
            )
            .unwrap();
            let out = dir.join("tiny.so");
            let status = Command::new(python())
                .args(["-m", "ziglang", "cc", "-target", "x86_64-linux-gnu.2.38", "-O2", "-fno-sanitize=all", "-shared", "-o"])
                .arg(&out)
                .arg(&source)
                .status()
                .expect("run zig from the test venv");
            assert!(status.success());
            std::fs::read(out).unwrap()
        })
        .clone()
}

/// Writes `<name>-<version>-<tag>.whl` into `dir` with `files` (and the dist-info pip needs).
fn write_wheel(dir: &Path, name: &str, version: &str, tag: &str, files: Vec<(&str, Vec<u8>)>) {
    let dist_info = format!("{name}-{version}.dist-info");
    let mut entries: Vec<ArchiveEntry> = files
        .into_iter()
        .map(|(path, bytes)| ArchiveEntry {
            name: path.to_string(),
            bytes,
            mode: 0o644,
        })
        .collect();
    entries.push(ArchiveEntry {
        name: format!("{dist_info}/METADATA"),
        bytes: format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes(),
        mode: 0o644,
    });
    entries.push(ArchiveEntry {
        name: format!("{dist_info}/WHEEL"),
        bytes: format!(
            "Wheel-Version: 1.0\nGenerator: emrship-test\nRoot-Is-Purelib: false\nTag: {tag}\n"
        )
        .into_bytes(),
        mode: 0o644,
    });
    let mut record: String = entries.iter().map(|e| format!("{},,\n", e.name)).collect();
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    entries.push(ArchiveEntry {
        name: format!("{dist_info}/RECORD"),
        bytes: record.into_bytes(),
        mode: 0o644,
    });
    std::fs::write(
        dir.join(format!("{name}-{version}-{tag}.whl")),
        write_zip(entries).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_wheel_needing_glibc_238_fails_the_check_and_a_manylinux_2_39_one_is_not_picked() {
    let links = fresh_cache("links-glibc");
    let library = glibc_238_library();
    // `linux_x86_64`: the tag a `pip wheel` build on a newer distro gets; pip takes it, the
    // library's glibc needs tell.
    write_wheel(
        &links,
        "tiny",
        "1.0",
        "cp39-cp39-linux_x86_64",
        vec![
            ("tiny/__init__.py", b"".to_vec()),
            ("tiny/_fast.cpython-39-x86_64-linux-gnu.so", library.clone()),
        ],
    );
    let requirements = format!("--find-links {}\n--no-index\ntiny==1.0\n", links.display());
    let built = build(
        &requirements,
        DepsTarget::Cluster(emr7(Arch::X86_64)),
        &fresh_cache("glibc"),
    )
    .unwrap();
    let problems = check_deps_zip(&built.zip, &emr7(Arch::X86_64)).unwrap();
    assert_eq!(
        problems,
        vec![AppProblem::new(
            "tiny 1.0",
            "`tiny/_fast.cpython-39-x86_64-linux-gnu.so` needs glibc 2.38 (GLIBC_2.38), but the nodes have glibc 2.34: importing it fails there with \"version `GLIBC_2.38' not found\"",
            "pin a version of the package whose wheel is tagged manylinux_2_34 or older; a wheel you built yourself must be built on a system with glibc 2.34 or older (the nodes' Amazon Linux)",
        )]
    );
    // Adding a wheel to the --find-links folder changes the key: a rebuild, not the old zip.
    write_wheel(
        &links,
        "tiny",
        "1.0",
        "cp39-cp39-manylinux_2_39_x86_64",
        vec![("tiny/__init__.py", b"".to_vec())],
    );
    std::fs::remove_file(links.join("tiny-1.0-cp39-cp39-linux_x86_64.whl")).unwrap();
    let problems = build(
        &requirements,
        DepsTarget::Cluster(emr7(Arch::X86_64)),
        &fresh_cache("glibc"),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].subject, "tiny");
    assert!(
        problems[0]
            .message
            .starts_with("`tiny` has no wheel for CPython 3.9 manylinux (glibc ≤ 2.34) x86_64"),
        "{}",
        problems[0]
    );

    // A tree that holds the manylinux_2_39 wheel anyway (installed by hand) fails the tag check.
    let tree = vec![
        ("tiny/__init__.py".to_string(), Vec::new()),
        (
            "tiny-1.0.dist-info/WHEEL".to_string(),
            b"Wheel-Version: 1.0\nTag: cp39-cp39-manylinux_2_39_x86_64\n".to_vec(),
        ),
        (
            "tiny-1.0.dist-info/RECORD".to_string(),
            b"tiny/__init__.py,,\n".to_vec(),
        ),
    ];
    let problems = check_deps_files(&tree, &emr7(Arch::X86_64));
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].message,
        "its wheel is tagged for another platform than the nodes (CPython 3.9 manylinux (glibc ≤ 2.34) x86_64): \
         cp39-cp39-manylinux_2_39_x86_64: `manylinux_2_39_x86_64` needs glibc 2.39, but the nodes have glibc 2.34"
    );
}

#[test]
fn a_pth_file_in_the_deps_is_a_warning_naming_its_package() {
    let links = fresh_cache("links-pth");
    write_wheel(
        &links,
        "hooks",
        "2.0",
        "py3-none-any",
        vec![
            ("hooks/__init__.py", b"".to_vec()),
            ("hooks-nspkg.pth", b"import hooks\n".to_vec()),
        ],
    );
    let requirements = format!("--find-links {}\n--no-index\nhooks==2.0\n", links.display());
    let cache = fresh_cache("pth");
    let built = build(
        &requirements,
        DepsTarget::Cluster(emr7(Arch::Arm64)),
        &cache,
    )
    .unwrap();
    assert_eq!(built.warnings.len(), 1, "{:?}", built.warnings);
    assert_eq!(built.warnings[0].subject, "hooks 2.0 (hooks-nspkg.pth)");
    assert!(built.warnings[0]
        .message
        .contains("not in a PYTHONPATH folder"));
    // The warning is kept with the cache entry.
    let again = build(
        &requirements,
        DepsTarget::Cluster(emr7(Arch::Arm64)),
        &cache,
    )
    .unwrap();
    assert!(again.from_cache);
    assert_eq!(again.warnings, built.warnings);
}

#[test]
fn concurrent_builds_of_one_key_leave_one_good_cache_entry() {
    let links = fresh_cache("links-concurrent");
    write_wheel(
        &links,
        "calm",
        "1.0",
        "py3-none-any",
        vec![("calm/__init__.py", b"X = 1\n".to_vec())],
    );
    let requirements = format!("--find-links {}\n--no-index\ncalm==1.0\n", links.display());
    let cache = fresh_cache("concurrent");
    let results: Vec<BuiltDeps> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    build(
                        &requirements,
                        DepsTarget::Cluster(emr7(Arch::X86_64)),
                        &cache,
                    )
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| r.digest == results[0].digest));
    let bytes = std::fs::read(&results[0].zip).unwrap();
    assert_eq!(
        emrship::render::artifacts::Digest256::of(&bytes),
        results[0].digest
    );
    let entries: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, vec![results[0].key.clone()]);
}

/// The local build is what `run --local` puts on PYTHONPATH: unpacked, this machine's Python
/// imports a native package (numpy) and a pure one from it, not from its own site-packages.
#[test]
fn pypi_a_local_build_imports_from_pythonpath() {
    let built = build(
        "six==1.17.0\nnumpy==2.0.2\n",
        DepsTarget::Local,
        &fresh_cache("local"),
    )
    .unwrap();
    let unpacked = fresh_cache("local-unpacked");
    zip::ZipArchive::new(std::fs::File::open(&built.zip).unwrap())
        .unwrap()
        .extract(&unpacked)
        .unwrap();
    let output = Command::new(python())
        .args(["-s", "-c", "import numpy, six; print(numpy.__file__); print(six.__file__); print(int(numpy.arange(5).sum()))"])
        .env("PYTHONPATH", &unpacked)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(unpacked.to_str().unwrap()), "{text}");
    assert!(lines[1].starts_with(unpacked.to_str().unwrap()), "{text}");
    assert_eq!(lines[2], "10");
}
