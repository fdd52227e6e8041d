//! The job bundle `emrship deploy` ships: one deterministic zip, stored under its own sha256.
//!
//! Contents (sorted; fixed timestamps; Unix modes kept):
//!
//! | entry | what |
//! | --- | --- |
//! | `emrship-job` | the job binary for the nodes' architecture and glibc (mode kept, always executable) |
//! | `spec.yaml` | the spec as merged from its file, overlays and `--set` values, run variables unfilled |
//! | `driver.py` | the rendered Spark driver (`engine: spark`) |
//! | `files/<name>` | each `job.files` entry (mode kept) |
//!
//! What is left out, and why: the rendered bootstrap script embeds the bundle's own URI and
//! sha256 (it checks the download), and the rendered plan (step args, RunJobFlow) names the
//! bundle's key; putting either inside the bundle would make its digest depend on itself. The
//! spec is the merged document before run variables are filled (`dt={{date}}/`), not the
//! resolved plan for one day, so the same job gives the same bundle every day and a daily run
//! finds it with one HEAD instead of uploading it again.

// Users' own applications (issue 11): what a problem with one looks like, their Python
// dependencies (requirements sources → pip cross build → checks), their modules and config
// folders, their jars.
pub mod app_problem;
pub mod archive;
pub mod elf;
pub mod jar_check;
pub mod lambda;
pub mod pymodules;
pub mod python_deps;
pub mod requirements;
pub mod user_app;
pub mod wheel_check;
pub mod zigbuild;

use crate::render::artifacts::Digest256;
use crate::spec::{Diagnostics, LayerText};
use archive::ArchiveEntry;

/// The binary's name inside the bundle; the driver and the bootstrap action run it from there.
pub const BINARY_ENTRY: &str = "emrship-job";
pub const SPEC_ENTRY: &str = "spec.yaml";
pub const DRIVER_ENTRY: &str = "driver.py";
/// Job files go under this folder, so no file name can clash with the entries above.
pub const FILES_DIR: &str = "files/";

/// Everything that goes into a bundle, read by the caller.
#[derive(Debug, Clone)]
pub struct BundleInputs {
    pub binary: Vec<u8>,
    /// The binary file's Unix mode; execute bits are added, since the node runs it.
    pub binary_mode: u32,
    pub spec_yaml: String,
    pub driver: Option<String>,
    /// Each job file: the name the job sees, its bytes, its Unix mode.
    pub job_files: Vec<(String, Vec<u8>, u32)>,
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub zip: Vec<u8>,
    pub digest: Digest256,
    /// Entry names and modes, in archive order.
    pub entries: Vec<(String, u32)>,
}

/// Builds the zip. The same inputs give byte-identical bytes, so the same digest and key.
pub fn build(inputs: &BundleInputs) -> Result<Bundle, String> {
    let mut entries = vec![
        ArchiveEntry {
            name: BINARY_ENTRY.into(),
            bytes: inputs.binary.clone(),
            mode: (inputs.binary_mode & 0o7777) | 0o555,
        },
        ArchiveEntry {
            name: SPEC_ENTRY.into(),
            bytes: inputs.spec_yaml.as_bytes().to_vec(),
            mode: 0o644,
        },
    ];
    if let Some(driver) = &inputs.driver {
        entries.push(ArchiveEntry {
            name: DRIVER_ENTRY.into(),
            bytes: driver.as_bytes().to_vec(),
            mode: 0o644,
        });
    }
    for (name, bytes, mode) in &inputs.job_files {
        entries.push(ArchiveEntry {
            name: format!("{FILES_DIR}{name}"),
            bytes: bytes.clone(),
            mode: mode & 0o7777,
        });
    }
    let mut listing: Vec<(String, u32)> =
        entries.iter().map(|e| (e.name.clone(), e.mode)).collect();
    listing.sort();
    let zip = archive::write_zip(entries)?;
    Ok(Bundle {
        digest: Digest256::of(&zip),
        zip,
        entries: listing,
    })
}

/// The spec as merged from its layers, before run variables are filled: what the bundle
/// records of the job (see the module documentation for why not the resolved plan).
pub fn merged_spec_yaml(
    base: &LayerText,
    overlays: &[LayerText],
    sets: &[String],
) -> Result<String, String> {
    let mut diagnostics = Diagnostics::default();
    let loaded = crate::spec::load::load(base, overlays, sets, &mut diagnostics)
        .ok_or_else(|| diagnostics.render())?;
    serde_yaml::to_string(&loaded.merged).map_err(|e| format!("cannot write the merged spec: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> BundleInputs {
        BundleInputs {
            binary: b"\x7fELF...".to_vec(),
            binary_mode: 0o644,
            spec_yaml: "name: x\n".into(),
            driver: Some("print('hi')\n".into()),
            job_files: vec![("a.conf".into(), b"a=1\n".to_vec(), 0o640)],
        }
    }

    #[test]
    fn the_binary_is_always_executable_and_job_files_keep_their_mode() {
        let bundle = build(&inputs()).unwrap();
        assert_eq!(
            bundle.entries,
            vec![
                ("driver.py".to_string(), 0o644),
                ("emrship-job".to_string(), 0o755),
                ("files/a.conf".to_string(), 0o640),
                ("spec.yaml".to_string(), 0o644),
            ]
        );
        assert_eq!(bundle.digest, Digest256::of(&bundle.zip));
    }

    #[test]
    fn same_inputs_same_digest_and_any_change_a_new_one() {
        let base = build(&inputs()).unwrap().digest;
        assert_eq!(build(&inputs()).unwrap().digest, base);
        let mut file_changed = inputs();
        file_changed.job_files[0].1 = b"a=2\n".to_vec();
        let mut mode_changed = inputs();
        mode_changed.job_files[0].2 = 0o600;
        let mut binary_mode_changed = inputs();
        binary_mode_changed.binary_mode = 0o775;
        for changed in [file_changed, mode_changed, binary_mode_changed] {
            assert_ne!(build(&changed).unwrap().digest, base);
        }
    }

    #[test]
    fn merged_spec_keeps_run_variables_unfilled_and_applies_overlays() {
        let base = LayerText {
            name: "spec.yaml".into(),
            text: "name: a\njob:\n  args:\n    views: s3://b/dt={{date}}/\n".into(),
        };
        let overlay = LayerText {
            name: "dev.yaml".into(),
            text: "name: b\n".into(),
        };
        let yaml = merged_spec_yaml(&base, &[overlay], &["job.args.extra=1".into()]).unwrap();
        assert!(yaml.contains("name: b"), "{yaml}");
        assert!(yaml.contains("dt={{date}}/"), "{yaml}");
        assert!(yaml.contains("extra: 1"), "{yaml}");
    }
}
