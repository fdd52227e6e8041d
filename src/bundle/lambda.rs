//! The scheduler Lambda's deployment package: `emrship-lambda` cross-compiled with
//! cargo-zigbuild for the `provided.al2023` runtime (x86_64 or arm64), zipped with the
//! executable at the root named `bootstrap`, as the OS-only runtimes expect.
//!
//! Linked against the same old glibc as `emrship-job` ([`BUILD_GLIBC`], 2.26): Amazon Linux
//! 2023 has 2.34, so the binary runs there, and a lower floor never hurts. Built with only the
//! `lambda` feature (EMR and S3 SDKs, the Lambda runtime), not the job's compute crates nor the
//! IAM SDK. The zip is deterministic like the bundles (sorted, fixed times, modes kept), so the
//! same binary gives the same package bytes and the same digest.

use std::path::{Path, PathBuf};

use super::archive::{write_zip, ArchiveEntry};
use super::elf::BUILD_GLIBC;
use super::zigbuild::zigbuild_binary;
use crate::sizing::Arch;

/// The executable name the `provided.*` runtimes start.
pub const BOOTSTRAP_ENTRY: &str = "bootstrap";
/// The binary the package is made of.
pub const LAMBDA_BINARY: &str = "emrship-lambda";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LambdaArch {
    X86_64,
    Arm64,
}

impl LambdaArch {
    /// The name Lambda's `Architectures` takes.
    pub fn as_lambda_name(self) -> &'static str {
        match self {
            LambdaArch::X86_64 => "x86_64",
            LambdaArch::Arm64 => "arm64",
        }
    }

    pub fn arch(self) -> Arch {
        match self {
            LambdaArch::X86_64 => Arch::X86_64,
            LambdaArch::Arm64 => Arch::Arm64,
        }
    }

    pub fn rust_target_triple(self) -> &'static str {
        self.arch().rust_target_triple()
    }
}

/// How to build: which source tree, which cargo profile, where cargo's output goes, and where
/// the zip is written.
#[derive(Debug, Clone)]
pub struct LambdaBuild {
    /// An emrship source tree (see [`super::zigbuild::source_dir`]).
    pub source_dir: PathBuf,
    /// Cargo profile: `release` for what is deployed; tests use `dev` to stay cheap.
    pub profile: String,
    /// Cargo's target directory; `None` is `<source_dir>/target`. A separate directory keeps a
    /// build started from inside a cargo command off the outer build's lock.
    pub target_dir: Option<PathBuf>,
    /// Where the zip is written.
    pub out: PathBuf,
}

/// The `cargo zigbuild` arguments for `emrship-lambda`: only the `lambda` feature.
pub fn lambda_zigbuild_args(arch: LambdaArch, build: &LambdaBuild) -> Vec<String> {
    let mut args: Vec<String> = [
        "zigbuild",
        "--locked",
        "--profile",
        &build.profile,
        "--no-default-features",
        "--features",
        "lambda",
        "--bin",
        LAMBDA_BINARY,
        "--target",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("{}.{BUILD_GLIBC}", arch.rust_target_triple()));
    if let Some(dir) = &build.target_dir {
        args.push("--target-dir".into());
        args.push(dir.display().to_string());
    }
    args
}

/// Where cargo leaves the binary (`dev` builds go to `debug/`, other profiles to their name).
pub fn built_lambda_binary(arch: LambdaArch, build: &LambdaBuild) -> PathBuf {
    let target_dir = build
        .target_dir
        .clone()
        .unwrap_or_else(|| build.source_dir.join("target"));
    let profile_dir = match build.profile.as_str() {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    };
    target_dir
        .join(arch.rust_target_triple())
        .join(profile_dir)
        .join(LAMBDA_BINARY)
}

/// Builds `emrship-lambda` for `arch` with cargo-zigbuild; returns the binary's path.
pub fn build_lambda_binary(arch: LambdaArch, build: &LambdaBuild) -> Result<PathBuf, String> {
    let args = lambda_zigbuild_args(arch, build);
    eprintln!(
        "building {LAMBDA_BINARY} for {}: cargo {} (in {})",
        arch.as_lambda_name(),
        args.join(" "),
        build.source_dir.display()
    );
    zigbuild_binary(&build.source_dir, &args, built_lambda_binary(arch, build))
}

/// Builds `emrship-lambda` for `arch` and zips it as `build.out`; returns the zip's path.
pub fn build_lambda_zip(arch: LambdaArch, build: &LambdaBuild) -> Result<PathBuf, String> {
    let binary = build_lambda_binary(arch, build)?;
    zip_lambda_binary(&binary, &build.out)?;
    Ok(build.out.clone())
}

/// The deployment package's bytes: `binary` as `bootstrap`, mode 0755, alone at the root.
pub fn lambda_zip_bytes(binary: &[u8]) -> Result<Vec<u8>, String> {
    write_zip(vec![ArchiveEntry {
        name: BOOTSTRAP_ENTRY.into(),
        bytes: binary.to_vec(),
        mode: 0o755,
    }])
}

/// Zips a built (or prebuilt, `--lambda-binary`) `emrship-lambda` as the deployment package.
pub fn zip_lambda_binary(binary: &Path, out: &Path) -> Result<(), String> {
    let bytes =
        std::fs::read(binary).map_err(|e| format!("cannot read {}: {e}", binary.display()))?;
    let zip = lambda_zip_bytes(&bytes)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // Written beside and renamed, so a reader never sees half a zip.
    let partial = out.with_extension("zip.partial");
    std::fs::write(&partial, &zip)
        .and_then(|()| std::fs::rename(&partial, out))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn build(target_dir: Option<&str>, profile: &str) -> LambdaBuild {
        LambdaBuild {
            source_dir: PathBuf::from("/src"),
            profile: profile.into(),
            target_dir: target_dir.map(PathBuf::from),
            out: PathBuf::from("/out/lambda.zip"),
        }
    }

    #[test]
    fn builds_only_the_lambda_feature_for_the_old_glibc() {
        let args = lambda_zigbuild_args(LambdaArch::Arm64, &build(Some("/t"), "release"));
        assert_eq!(
            args.join(" "),
            "zigbuild --locked --profile release --no-default-features --features lambda --bin emrship-lambda \
             --target aarch64-unknown-linux-gnu.2.26 --target-dir /t"
        );
        assert_eq!(
            built_lambda_binary(LambdaArch::Arm64, &build(Some("/t"), "dev")),
            Path::new("/t/aarch64-unknown-linux-gnu/debug/emrship-lambda")
        );
        assert_eq!(
            built_lambda_binary(LambdaArch::X86_64, &build(None, "release")),
            Path::new("/src/target/x86_64-unknown-linux-gnu/release/emrship-lambda")
        );
        assert_eq!(LambdaArch::X86_64.as_lambda_name(), "x86_64");
        assert_eq!(LambdaArch::Arm64.as_lambda_name(), "arm64");
    }

    #[test]
    fn the_package_holds_bootstrap_alone_executable_and_is_deterministic() {
        let zip = lambda_zip_bytes(b"\x7fELF binary").unwrap();
        assert_eq!(zip, lambda_zip_bytes(b"\x7fELF binary").unwrap());
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        assert_eq!(archive.len(), 1);
        let file = archive.by_index(0).unwrap();
        assert_eq!(file.name().unwrap(), "bootstrap");
        assert_eq!(file.unix_mode(), Some(0o100_755));
    }
}
