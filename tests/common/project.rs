//! A spec in its own folder, as `deploy`, `provision` and the fault tests use it: the spec text,
//! a job file and a test binary beside it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A match-rate spec on `bucket` (spark engine, one job file `job_file`) whose views are
/// templated by the run date, as `tests/deploy.rs` and `tests/faults.rs` deploy it.
pub fn match_rate_spec(name: &str, release: &str, bucket: &str, job_file: &str) -> String {
    format!(
        "name: {name}\n\
         region: us-east-1\n\
         release: {release}\n\
         log_uri: s3://{bucket}/logs/\n\
         artifacts: s3://{bucket}/emrship/\n\
         cluster:\n  master: {{ instance_type: m5.xlarge }}\n  core: {{ instance_type: m5.xlarge, count: 2 }}\n\
         job:\n  engine: spark\n  command: match-rate\n  files: [{job_file}]\n  args:\n\
         \x20   views: s3://{bucket}/views/dt={{{{date}}}}/\n\
         \x20   catalog: s3://{bucket}/catalog/\n\
         \x20   sink: s3://{bucket}/match-rates/\n"
    )
}

/// Sets a file's Unix mode (bundles keep modes: a test sets them to know what to expect).
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
