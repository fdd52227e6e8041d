//! `emrship deploy` for a user's own application: build its Python dependencies for the nodes,
//! check everything that ships against the nodes (compiled modules, class files, the program's
//! ELF), then hand every piece's bytes to the same content-addressed upload as the bundle.
//! Every problem is found before the first byte goes up.

use std::path::Path;

use super::{failure, spec_args, Failure, PendingUpload};
use crate::bundle::app_problem::AppProblem;
use crate::bundle::python_deps::{self, DepsTarget, PythonTarget};
use crate::bundle::requirements::read_requirements;
use crate::bundle::user_app::{self, PackedApp};
use crate::bundle::wheel_check::check_deps_zip;
use crate::cli::plan::{load_plan_with_dependencies, LoadedPlan};
use crate::cli::run_app::dependency_cache;
use crate::cli::run_app::problems_failure;
use crate::cli::{DeployArgs, Printer};
use crate::render::artifacts::{Digest256, UploadKind};
use crate::spec::job_plan::AppKind;
use crate::spec::JobPlan;

/// A user application made ready to upload.
pub struct PreparedApp {
    pub region: String,
    pub uploads: Vec<PendingUpload>,
}

pub fn prepare(
    args: &DeployArgs,
    spec: &Path,
    loaded: LoadedPlan,
    out: Printer,
) -> Result<PreparedApp, Failure> {
    let job = &loaded.job;
    let app = job
        .job
        .app
        .as_ref()
        .expect("prepare is for user applications");
    let packed = loaded
        .app
        .as_ref()
        .ok_or_else(|| failure("the application was not read (an emrship bug)"))?;
    // The application's own code was checked against the nodes when it was read (`pack`).
    let mut problems = Vec::new();
    let dependencies = match &app.kind {
        AppKind::PySpark {
            requirements: Some(requirements),
            ..
        } => {
            let target = user_app::python_target(job).expect("a PySpark application");
            match build_for_nodes(job, packed, &requirements.file.path, target, out) {
                Ok((built_zip, digest)) => {
                    match check_deps_zip(&built_zip, &target) {
                        Ok(found) => problems.extend(found),
                        Err(e) => return Err(failure(e)),
                    }
                    Some((built_zip, digest))
                }
                Err(found) => {
                    problems.extend(found);
                    None
                }
            }
        }
        _ => None,
    };
    if !problems.is_empty() {
        return Err(problems_failure(problems).context(format!(
            "{}: {} cannot run on the nodes of {} ({}, {})",
            spec.display(),
            job.name,
            job.release.label,
            job.release.os,
            job.job.arch
        )));
    }
    let rendered = load_plan_with_dependencies(
        &spec_args(args, spec),
        dependencies.as_ref().map(|(_, d)| d.clone()),
        out,
    )?;
    let rendered_packed = rendered
        .app
        .as_ref()
        .ok_or_else(|| failure("the application was not read (an emrship bug)"))?;
    let mut uploads = Vec::new();
    for upload in &rendered.plan.uploads {
        let bytes = match upload.kind {
            UploadKind::UserBootstrap => Some(
                std::fs::read(rendered.spec_dir.join(&upload.source)).map_err(|e| {
                    failure(format!(
                        "cannot read the bootstrap script {}: {e}",
                        upload.source
                    ))
                })?,
            ),
            UploadKind::NodeCheck => rendered
                .plan
                .rendered_files
                .iter()
                .find(|f| f.s3_uri == upload.s3_uri.to_string())
                .map(|f| f.text.clone().into_bytes()),
            UploadKind::AppDependencies => match &dependencies {
                Some((zip, _)) => Some(
                    std::fs::read(zip)
                        .map_err(|e| failure(format!("cannot read {}: {e}", zip.display())))?,
                ),
                None => None,
            },
            _ => upload
                .sha256
                .as_ref()
                .and_then(|sha| rendered_packed.bytes_by_sha256.get(sha).cloned()),
        };
        let bytes = bytes.ok_or_else(|| {
            failure(format!(
                "the plan lists {} ({}) but deploy has no bytes for it (an emrship bug)",
                upload.s3_uri, upload.source
            ))
        })?;
        uploads.push(PendingUpload::checked(&job.name, upload, bytes)?);
    }
    Ok(PreparedApp {
        region: job.region.clone(),
        uploads,
    })
}

/// The dependencies built for the nodes, recorded so that `plan` and `provision` know their
/// digest afterwards.
fn build_for_nodes(
    job: &JobPlan,
    packed: &PackedApp,
    requirements: &str,
    target: PythonTarget,
    out: Printer,
) -> Result<(std::path::PathBuf, Digest256), Vec<AppProblem>> {
    let file = packed.project_dir.join(requirements);
    let pinned = read_requirements(&file)?;
    for note in &pinned.notes {
        out.warn(&format!(
            "{}: {} (help: {})",
            note.subject, note.message, note.fix
        ));
    }
    let python = std::env::var_os("EMRSHIP_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    out.info(&format!(
        "dependencies {}: building {} for {} …",
        job.name,
        file.display(),
        target.describe()
    ));
    let built = python_deps::build_deps(
        &pinned.text,
        DepsTarget::Cluster(target),
        &dependency_cache(),
        &python,
    )?;
    for warning in &built.warnings {
        out.warn(&format!(
            "{}: {} (help: {})",
            warning.subject, warning.message, warning.fix
        ));
    }
    out.info(&format!(
        "dependencies {}: {} ({} packages, sha256 {}{})",
        job.name,
        built.zip.display(),
        built.packages.len(),
        built.digest.sha256,
        if built.from_cache { ", cached" } else { "" }
    ));
    user_app::record_dependencies(&job.name, &pinned.text, &target.describe(), &built.digest)
        .map_err(|e| {
            vec![AppProblem::new(
                job.name.clone(),
                e,
                "check that target/emrship is writable",
            )]
        })?;
    Ok((built.zip.clone(), built.digest.clone()))
}
