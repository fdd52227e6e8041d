//! Where each artifact of a spec lives in S3, and what is uploaded.
//!
//! Keys are content-addressed (their sha256 is in the key), so an unchanged artifact is found
//! with one HEAD and never uploaded twice, and a plan names exactly the bytes it was made for.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

/// The digest placeholder for an artifact that `emrship deploy` has not built yet.
pub const PENDING_DIGEST: &str = "pending-build";

/// sha256 and size of an artifact's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    Bundle,
    BootstrapScript,
    SparkDriver,
    JobFile,
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
pub fn schedule_plan_uri(plan: &JobPlan) -> S3Uri {
    plan.artifact_prefix().join("schedule/plan.json")
}

/// Standard base64 with padding: S3's checksum headers and Lambda's `CodeSha256` carry digests
/// in it.
pub fn base64(bytes: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}
