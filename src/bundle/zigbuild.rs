//! Building `emrship-job` for the nodes: cargo-zigbuild links against an old glibc (2.26, the
//! ceiling of Amazon Linux 2, which Amazon Linux 2023 also runs) for x86_64 or aarch64, from
//! any Linux host.
//!
//! cargo-zigbuild and Zig come from the project's pinned Python environment
//! (`scripts/python-env.sh` installs `tests/python/requirements.txt` into `.venv-test`), the
//! Rust standard library for the targets from `scripts/rust-targets.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::elf::BUILD_GLIBC;
use crate::sizing::Arch;

/// The cargo-zigbuild target: a Rust triple with the glibc version to link against.
pub fn zig_target(arch: Arch) -> String {
    format!("{}.{BUILD_GLIBC}", arch.rust_target_triple())
}

/// The arguments of `cargo zigbuild` for the cluster's binary: only the `job` feature, so none of
/// the control-plane SDKs are built into it.
pub fn zigbuild_args(arch: Arch) -> Vec<String> {
    [
        "zigbuild",
        "--release",
        "--locked",
        "--no-default-features",
        "--features",
        "job",
        "--bin",
        "emrship-job",
        "--target",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(std::iter::once(zig_target(arch)))
    .collect()
}

/// Where cargo puts the binary: the target directory is named without the glibc suffix.
pub fn built_binary(source_dir: &Path, arch: Arch) -> PathBuf {
    source_dir
        .join("target")
        .join(arch.rust_target_triple())
        .join("release")
        .join("emrship-job")
}

/// The emrship source tree to build from: `EMRSHIP_SOURCE_DIR`, else the tree this emrship was
/// built from, if it is still on this machine.
pub fn source_dir() -> Result<PathBuf, String> {
    let candidate = std::env::var_os("EMRSHIP_SOURCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if candidate.join("src/bin/emrship-job.rs").is_file() && candidate.join("Cargo.toml").is_file()
    {
        Ok(candidate)
    } else {
        Err(format!(
            "cannot build emrship-job: the emrship source tree is not at {} (set EMRSHIP_SOURCE_DIR to a checkout), \
             or pass a prebuilt binary with --binary PATH or job.binary",
            candidate.display()
        ))
    }
}

/// `cargo-zigbuild` on PATH, else in the project's Python environment.
pub fn find_cargo_zigbuild(source_dir: &Path) -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("cargo-zigbuild"))
        .find(|candidate| candidate.is_file());
    let venv = std::env::var_os("EMRSHIP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| source_dir.join(".venv-test"));
    let in_venv = venv.join("bin/cargo-zigbuild");
    on_path
        .or_else(|| in_venv.is_file().then_some(in_venv.clone()))
        .ok_or_else(|| {
            format!(
                "cannot build emrship-job: cargo-zigbuild is neither on PATH nor at {}; \
                 run `scripts/python-env.sh` (installs the pinned cargo-zigbuild and ziglang) and `scripts/rust-targets.sh` \
                 (the Rust standard library for x86_64 and aarch64), or pass a prebuilt binary with --binary PATH",
                in_venv.display()
            )
        })
}

/// Runs cargo-zigbuild for `arch` and returns the binary's path. Cargo's output goes to stderr
/// (stdout carries deploy's results).
pub fn build_job_binary(source_dir: &Path, arch: Arch) -> Result<PathBuf, String> {
    let args = zigbuild_args(arch);
    eprintln!(
        "building emrship-job for {arch}: cargo {} (in {})",
        args.join(" "),
        source_dir.display()
    );
    zigbuild_binary(source_dir, &args, built_binary(source_dir, arch))
}

/// Runs `cargo-zigbuild <args>` in `source_dir` and returns `binary`, the path the build is
/// expected to write, after checking that it did.
pub fn zigbuild_binary(
    source_dir: &Path,
    args: &[String],
    binary: PathBuf,
) -> Result<PathBuf, String> {
    run_cargo_zigbuild(source_dir, args)?;
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "cargo zigbuild succeeded but {} does not exist",
            binary.display()
        ))
    }
}

/// Runs `cargo-zigbuild <args>` in `source_dir`, its output on stderr.
pub fn run_cargo_zigbuild(source_dir: &Path, args: &[String]) -> Result<(), String> {
    let zigbuild = find_cargo_zigbuild(source_dir)?;
    // The pip-installed cargo-zigbuild runs Zig as `python3 -m ziglang`: the venv's python must
    // come first on PATH.
    let mut path = vec![zigbuild.parent().map(Path::to_path_buf).unwrap_or_default()];
    if let Some(existing) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&existing));
    }
    let path = std::env::join_paths(path).map_err(|e| format!("cannot set PATH: {e}"))?;
    let status = Command::new(&zigbuild)
        .args(args)
        .current_dir(source_dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", zigbuild.display()))?;
    if !status.success() {
        return Err(format!(
            "`cargo {}` failed ({status}); its output is above. If the target's standard library is missing, run `scripts/rust-targets.sh`",
            args.join(" ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_for_the_nodes_glibc_and_arch_with_only_the_job_feature() {
        assert_eq!(zig_target(Arch::X86_64), "x86_64-unknown-linux-gnu.2.26");
        assert_eq!(zig_target(Arch::Arm64), "aarch64-unknown-linux-gnu.2.26");
        let args = zigbuild_args(Arch::Arm64).join(" ");
        assert_eq!(
            args,
            "zigbuild --release --locked --no-default-features --features job --bin emrship-job --target aarch64-unknown-linux-gnu.2.26"
        );
        assert_eq!(
            built_binary(Path::new("/src"), Arch::Arm64),
            Path::new("/src/target/aarch64-unknown-linux-gnu/release/emrship-job")
        );
    }
}
