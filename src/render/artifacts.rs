//! Where each artifact of a spec lives in S3, and what is uploaded.
//!
//! Keys are content-addressed (their sha256 is in the key), so an unchanged artifact is found
//! with one HEAD and never uploaded twice, and a plan names exactly the bytes it was made for.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::steps::AppLocations;
use crate::spec::job_plan::{AppKind, AppPath, BootstrapScript, JarRef, UserApp};
use crate::spec::resolve::{DEPS_ALIAS, MODULES_ZIP_NAME};
use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

/// The digest placeholder for an artifact that `emrship deploy` has not built yet.
pub const PENDING_DIGEST: &str = "pending-build";

/// sha256 and size of an artifact's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Digest256 {
    pub sha256: String,
    pub bytes: u64,
}

impl Digest256 {
    pub fn of(bytes: &[u8]) -> Digest256 {
        Digest256 {
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
        }
    }
}

/// What the renderer knows of local inputs; gathered by the caller (the only I/O).
#[derive(Debug, Clone, Default)]
pub struct PlanInputs {
    /// The job bundle, when `emrship deploy` has built it.
    pub bundle: Option<Digest256>,
    /// Each `job.files` entry, in spec order: its local path and digest.
    pub job_files: Vec<(String, Digest256)>,
    /// A user's application: what its shipped pieces hold.
    pub app: Option<AppInputs>,
    /// Each local `cluster.bootstrap` script, in spec order: its digest.
    pub bootstrap_scripts: Vec<Digest256>,
}

/// Where each `cluster.bootstrap` script is run from: an S3 script as written, a local one
/// under its sha256 (a placeholder digest when the caller read none, for the spec's checks).
pub fn bootstrap_script_uris(plan: &JobPlan, inputs: &PlanInputs) -> Vec<S3Uri> {
    let mut local = inputs.bootstrap_scripts.iter();
    plan.cluster
        .bootstrap
        .iter()
        .map(|action| match &action.script {
            BootstrapScript::S3(uri) => uri.clone(),
            BootstrapScript::Local(path) => {
                let digest = local.next().cloned().unwrap_or(Digest256 {
                    sha256: "0".repeat(64),
                    bytes: 0,
                });
                script_uri(plan, &digest, &path.name)
            }
        })
        .collect()
}

/// The digests of a user's application as the caller read and packed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AppInputs {
    /// The entry script, application jar or program.
    pub entry: Digest256,
    /// The zip of `job.pyspark.modules` (when any).
    pub modules: Option<Digest256>,
    /// Each `files` entry in spec order.
    pub files: Vec<AppFileInput>,
    /// Each local dependency jar, in spec order.
    pub jars: Vec<Digest256>,
    /// The dependency archive, once `emrship deploy` (or `run --local`) has built it.
    pub dependencies: Option<Digest256>,
    /// The Java feature version the application jar's classes need (from their class files).
    #[serde(default)]
    pub required_java: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AppFileInput {
    pub digest: Digest256,
    /// A folder travels as a zip extracted under its name (`--archives conf.zip#conf`).
    pub folder: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    Bundle,
    BootstrapScript,
    SparkDriver,
    JobFile,
    /// A user's entry script, application jar or program.
    AppEntry,
    /// The zip of a PySpark application's own modules (`--py-files`).
    AppModules,
    /// A config or data file (`--files`), or a folder's zip (`--archives`).
    AppFile,
    /// A dependency jar (`--jars`).
    AppJar,
    /// The Python dependencies built for the nodes (`--archives …#emrship_deps`).
    AppDependencies,
    /// The static node check from `bootstrap/`.
    NodeCheck,
    /// A `cluster.bootstrap` script given as a local file.
    UserBootstrap,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub kind: UploadKind,
    /// A local path, or `rendered:<name>` for text emrship renders itself.
    pub source: String,
    pub s3_uri: S3Uri,
    /// `None` while pending: the artifact is built by `emrship deploy`.
    pub sha256: Option<String>,
    pub bytes: Option<u64>,
    pub pending: bool,
}

/// The fixed path on every node where the bootstrap action unpacks the bundle.
pub fn install_dir(plan: &JobPlan) -> String {
    format!("/opt/emrship/{}", plan.name)
}

pub fn bundle_uri(plan: &JobPlan, bundle: Option<&Digest256>) -> S3Uri {
    let digest = bundle.map_or(PENDING_DIGEST, |d| d.sha256.as_str());
    plan.artifact_prefix()
        .join(&format!("bundles/{digest}.zip"))
}

pub fn script_uri(plan: &JobPlan, digest: &Digest256, file_name: &str) -> S3Uri {
    plan.artifact_prefix()
        .join(&format!("scripts/{}/{file_name}", digest.sha256))
}

pub fn job_file_uri(plan: &JobPlan, digest: &Digest256, file_name: &str) -> S3Uri {
    plan.artifact_prefix()
        .join(&format!("files/{}/{file_name}", digest.sha256))
}

/// Where `emrship schedule` stores the plan template the scheduler Lambda reads.
/// Where a PySpark application's dependency archive goes: content-addressed like the bundle,
/// `pending-build` until built.
pub fn dependencies_uri(plan: &JobPlan, digest: Option<&Digest256>) -> S3Uri {
    let digest = digest.map_or(PENDING_DIGEST, |d| d.sha256.as_str());
    plan.artifact_prefix()
        .join(&format!("deps/{digest}/{DEPS_ARCHIVE_NAME}"))
}

/// The dependency archive's file name; YARN extracts it under the alias `emrship_deps`.
pub const DEPS_ARCHIVE_NAME: &str = "emrship_deps.zip";

pub fn schedule_plan_uri(plan: &JobPlan) -> S3Uri {
    plan.artifact_prefix().join("schedule/plan.json")
}

/// Standard base64 with padding: S3's checksum headers and Lambda's `CodeSha256` carry digests
/// in it.
pub fn base64(bytes: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One shipped piece of a user's application: what it is, where it comes from and goes, and how
/// the step hands it to the application.
#[derive(Debug, Clone)]
pub struct AppPiece {
    pub kind: UploadKind,
    /// The local path, relative to the spec file's folder (or what builds it).
    pub source: String,
    pub s3_uri: S3Uri,
    /// `None` until built (the dependency archive before `emrship deploy`).
    pub digest: Option<Digest256>,
    pub role: AppPieceRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppPieceRole {
    Entry,
    PyFile,
    File,
    /// Extracted under this alias.
    Archive(String),
    Jar,
}

/// Every piece of `app`, from the digests the caller read (`inputs`). Without inputs (the spec
/// check of the step's length) every digest is a placeholder of the same length.
pub fn app_pieces(plan: &JobPlan, app: &UserApp, inputs: Option<&AppInputs>) -> Vec<AppPiece> {
    let placeholder = Digest256 {
        sha256: "0".repeat(64),
        bytes: 0,
    };
    let digest_or_placeholder = |d: Option<&Digest256>| d.cloned().unwrap_or(placeholder.clone());
    let source = |path: &AppPath| {
        if app.project.is_empty() {
            path.path.clone()
        } else {
            format!("{}/{}", app.project, path.path)
        }
    };
    let shipped = |kind: UploadKind, path: &AppPath, digest: Digest256, role: AppPieceRole| {
        let file_name = match &role {
            AppPieceRole::Archive(_) => format!("{}.zip", path.name),
            _ => path.name.clone(),
        };
        AppPiece {
            kind,
            source: source(path),
            s3_uri: job_file_uri(plan, &digest, &file_name),
            digest: Some(digest),
            role,
        }
    };
    let entry_digest = digest_or_placeholder(inputs.map(|i| &i.entry));
    let mut pieces = Vec::new();
    match &app.kind {
        AppKind::PySpark {
            main,
            modules,
            requirements,
            ..
        } => {
            pieces.push(shipped(
                UploadKind::AppEntry,
                main,
                entry_digest,
                AppPieceRole::Entry,
            ));
            if !modules.is_empty() {
                let digest = digest_or_placeholder(inputs.and_then(|i| i.modules.as_ref()));
                pieces.push(AppPiece {
                    kind: UploadKind::AppModules,
                    source: modules.iter().map(&source).collect::<Vec<_>>().join(", "),
                    s3_uri: job_file_uri(plan, &digest, MODULES_ZIP_NAME),
                    digest: Some(digest),
                    role: AppPieceRole::PyFile,
                });
            }
            pieces.extend(file_pieces(app, inputs, &placeholder, &shipped));
            if let Some(requirements) = requirements {
                let digest = match inputs {
                    Some(inputs) => inputs.dependencies.clone(),
                    None => Some(placeholder.clone()),
                };
                pieces.push(AppPiece {
                    kind: UploadKind::AppDependencies,
                    source: format!("built from {}", source(&requirements.file)),
                    s3_uri: dependencies_uri(plan, digest.as_ref()),
                    digest,
                    role: AppPieceRole::Archive(DEPS_ALIAS.to_string()),
                });
            }
        }
        AppKind::Jar { jar, jars, .. } => {
            pieces.push(shipped(
                UploadKind::AppEntry,
                jar,
                entry_digest,
                AppPieceRole::Entry,
            ));
            let mut local_jars = 0;
            for dependency in jars {
                match dependency {
                    JarRef::Local(path) => {
                        let digest =
                            digest_or_placeholder(inputs.and_then(|i| i.jars.get(local_jars)));
                        local_jars += 1;
                        pieces.push(shipped(UploadKind::AppJar, path, digest, AppPieceRole::Jar));
                    }
                    JarRef::S3(uri) => pieces.push(AppPiece {
                        kind: UploadKind::AppJar,
                        source: uri.to_string(),
                        s3_uri: uri.clone(),
                        digest: None,
                        role: AppPieceRole::Jar,
                    }),
                }
            }
            pieces.extend(file_pieces(app, inputs, &placeholder, &shipped));
        }
        AppKind::Executable { program } => {
            pieces.push(shipped(
                UploadKind::AppEntry,
                program,
                entry_digest,
                AppPieceRole::Entry,
            ));
            pieces.extend(file_pieces(app, inputs, &placeholder, &shipped));
        }
    }
    pieces
}

fn file_pieces(
    app: &UserApp,
    inputs: Option<&AppInputs>,
    placeholder: &Digest256,
    shipped: &dyn Fn(UploadKind, &AppPath, Digest256, AppPieceRole) -> AppPiece,
) -> Vec<AppPiece> {
    app.files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let input = inputs.and_then(|inputs| inputs.files.get(i));
            // Without inputs a folder is assumed: its `name.zip#name` is the longer text.
            let folder = input.is_none_or(|f| f.folder);
            let digest = input.map_or(placeholder.clone(), |f| f.digest.clone());
            let role = if folder {
                AppPieceRole::Archive(file.name.clone())
            } else {
                AppPieceRole::File
            };
            shipped(UploadKind::AppFile, file, digest, role)
        })
        .collect()
}

/// The step's view of the pieces: which spark-submit option ships each.
pub fn app_locations(pieces: &[AppPiece]) -> AppLocations {
    let mut locations = AppLocations {
        entry: pieces
            .iter()
            .find(|p| p.role == AppPieceRole::Entry)
            .map(|p| p.s3_uri.clone())
            .expect("every application has an entry piece"),
        py_files: Vec::new(),
        files: Vec::new(),
        archives: Vec::new(),
        jars: Vec::new(),
    };
    for piece in pieces {
        let uri = piece.s3_uri.clone();
        match &piece.role {
            AppPieceRole::Entry => {}
            AppPieceRole::PyFile => locations.py_files.push(uri),
            AppPieceRole::File => locations.files.push(uri),
            AppPieceRole::Archive(alias) => locations.archives.push((uri, alias.clone())),
            AppPieceRole::Jar => locations.jars.push(uri),
        }
    }
    locations
}
