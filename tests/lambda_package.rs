//! The scheduler Lambda's deployment package, built for real: `emrship-lambda` cross-compiled
//! with cargo-zigbuild for x86_64 and aarch64 (the `dev` profile, to keep CI time low), zipped
//! by `bundle::lambda`, and checked from its ELF header: the architecture Lambda runs it on, and
//! no `GLIBC_` symbol version newer than provided.al2023's 2.34.
//!
//! Cargo builds into `target/lambda-build` (its own lock, so this build does not wait on the
//! outer `cargo test`, which holds `target/`'s).
#![cfg(feature = "aws")]

use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::time::Instant;

use emrship::bundle::elf::{inspect, Linkage, Machine};
use emrship::bundle::lambda::{build_lambda_zip, LambdaArch, LambdaBuild};

/// provided.al2023's glibc.
const AL2023_GLIBC: (u32, u32) = (2, 34);

fn package(arch: LambdaArch) -> (PathBuf, Vec<u8>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("emrship-lambda-{}.zip", arch.as_lambda_name()));
    let build = LambdaBuild {
        source_dir: root.clone(),
        profile: "dev".into(),
        target_dir: Some(root.join("target/lambda-build")),
        out: out.clone(),
    };
    let started = Instant::now();
    let zip = build_lambda_zip(arch, &build).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "built and zipped emrship-lambda for {} in {:.1} s",
        arch.as_lambda_name(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(zip, out);
    let bytes = std::fs::read(&zip).unwrap();
    (zip, bytes)
}

fn check(arch: LambdaArch, machine: Machine) {
    let (path, zip) = package(arch);
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    assert_eq!(archive.len(), 1, "{}: only bootstrap", path.display());
    let mut entry = archive.by_index(0).unwrap();
    assert_eq!(entry.name().unwrap(), "bootstrap");
    assert_eq!(
        entry.unix_mode(),
        Some(0o100_755),
        "a regular file, mode 0755"
    );
    let mut binary = Vec::new();
    entry.read_to_end(&mut binary).unwrap();
    let facts = inspect(&binary).unwrap();
    assert_eq!(facts.machine, machine);
    assert!(facts.is_64);
    assert!(
        matches!(facts.linkage, Linkage::Dynamic(_) | Linkage::Static),
        "{:?}",
        facts.linkage
    );
    let glibc = facts.glibc.expect("a glibc build names GLIBC_ versions");
    assert!(
        glibc.version <= AL2023_GLIBC,
        "{} needs {} (symbols {:?}); provided.al2023 has glibc 2.34",
        arch.as_lambda_name(),
        glibc.version_name,
        glibc.symbols
    );
}

#[test]
fn the_lambda_package_runs_on_provided_al2023_for_both_architectures() {
    check(LambdaArch::X86_64, Machine::X86_64);
    check(LambdaArch::Arm64, Machine::Aarch64);
}
