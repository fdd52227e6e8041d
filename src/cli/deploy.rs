//! `emrship deploy <spec>…`: build the job bundle, check its binary fits the nodes, and upload
//! it with the rendered scripts and job files to their content-addressed S3 keys.
//!
//! Everything that can fail locally (spec errors, a missing tool, a binary for the wrong
//! architecture or glibc, an unreadable file) fails for every spec before the first request is
//! sent; then missing buckets are found before the first byte is uploaded. Each object is looked
//! up with one HEAD and only uploaded when its key does not hold its bytes yet.

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::plan::{load_plan, load_plan_with_bundle, read_layer, LoadedPlan};
use super::{CliError, CommandResult, DeployArgs, ExitStatus, OutputFormat, Printer, SpecArgs};
use crate::aws::{s3, sdk};
use crate::bundle::elf::{self, NodeTarget};
use crate::bundle::{self, zigbuild, BundleInputs};
use crate::render::artifacts::{Digest256, Upload, UploadKind};
use crate::sizing::Arch;
use crate::spec::raw::Engine;
use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

mod app;

type Failure = CliError;

fn failure(message: impl Into<String>) -> Failure {
    CliError::failure(message)
}

/// One object a deploy puts in S3, with its bytes in memory.
struct PendingUpload {
    spec: String,
    kind: UploadKind,
    uri: S3Uri,
    digest: Digest256,
    bytes: Arc<Vec<u8>>,
}

impl PendingUpload {
    /// `bytes` for the plan's `upload`, once they are proven to be what its key names: a file
    /// edited while deploy runs must not be uploaded under its old digest.
    fn checked(spec: &str, upload: &Upload, bytes: Vec<u8>) -> Result<PendingUpload, Failure> {
        let digest = Digest256::of(&bytes);
        if upload.sha256.as_deref() != Some(digest.sha256.as_str()) {
            return Err(failure(format!(
                "{} changed while deploying (its key names sha256 {}, its bytes now have {}); run deploy again",
                upload.source,
                upload.sha256.as_deref().unwrap_or("none"),
                digest.sha256
            )));
        }
        Ok(PendingUpload {
            spec: spec.to_string(),
            kind: upload.kind,
            uri: upload.s3_uri.clone(),
            digest,
            bytes: Arc::new(bytes),
        })
    }
}

/// A line of deploy's output (`--format json` prints an array of these).
#[derive(Debug, Serialize)]
struct UploadReport {
    spec: String,
    kind: UploadKind,
    s3_uri: String,
    sha256: String,
    bytes: u64,
    /// True when this run sent the bytes; false when the key already held them, or on
    /// `--dry-run`.
    uploaded: bool,
    /// `uploaded`, `unchanged`, or `dry-run`.
    status: &'static str,
    /// Parts of a multipart upload (0 for a single PutObject or nothing sent).
    parts: usize,
}

pub fn run(args: DeployArgs, out: Printer) -> CommandResult {
    let reports = deploy(&args, out)?;
    match args.stdout.format {
        OutputFormat::Json => out.json(&reports)?,
        OutputFormat::Text => {
            for r in &reports {
                out.data(&format!("{:<9} {} ({} bytes)", r.status, r.s3_uri, r.bytes))?;
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn spec_args(args: &DeployArgs, spec: &Path) -> SpecArgs {
    SpecArgs {
        spec: spec.to_path_buf(),
        layers: args.layers.clone(),
        date: args.date,
    }
}

/// Bytes and Unix permission bits of a local file.
fn read_with_mode(path: &Path, what: &str) -> Result<(Vec<u8>, u32), Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| failure(format!("cannot read {what} {}: {e}", path.display())))?;
    let mode = std::fs::metadata(path)
        .map_err(|e| failure(format!("cannot stat {what} {}: {e}", path.display())))?
        .permissions()
        .mode()
        & 0o7777;
    Ok((bytes, mode))
}

/// The instance types that run the job binary (as `spec::resolve` decides its architecture).
fn runner_types(job: &JobPlan) -> Vec<&'static str> {
    let mut types = job.cluster.nodes.master_types();
    if job.job.engine == Engine::Spark {
        types.extend(job.cluster.nodes.worker_types());
    }
    let mut names: Vec<&'static str> = types.iter().map(|t| t.name).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The binary to ship for `job`: `--binary`, else `job.binary` (relative to the spec), else
/// one cargo-zigbuild builds (once per architecture per run).
fn locate_binary(
    args: &DeployArgs,
    loaded: &LoadedPlan,
    built: &mut Vec<(Arch, PathBuf)>,
) -> Result<PathBuf, Failure> {
    if let Some(path) = &args.binary {
        return Ok(path.clone());
    }
    if let Some(path) = &loaded.job.job.binary {
        return Ok(loaded.spec_dir.join(path));
    }
    let arch = loaded.job.job.arch;
    if let Some((_, path)) = built.iter().find(|(a, _)| *a == arch) {
        return Ok(path.clone());
    }
    let source = zigbuild::source_dir().map_err(failure)?;
    let path = zigbuild::build_job_binary(&source, arch).map_err(failure)?;
    built.push((arch, path.clone()));
    Ok(path)
}

/// A spec made ready to upload: its bundle built and written, its plan re-rendered with the
/// bundle's digest, every upload's bytes in hand.
struct Prepared {
    region: String,
    uploads: Vec<PendingUpload>,
}

fn prepare(
    args: &DeployArgs,
    spec: &Path,
    loaded: LoadedPlan,
    built: &mut Vec<(Arch, PathBuf)>,
    out: Printer,
) -> Result<Prepared, Failure> {
    let job = &loaded.job;
    let binary_path = locate_binary(args, &loaded, built)?;
    let (binary, binary_mode) = read_with_mode(&binary_path, "the job binary")?;
    let node = NodeTarget {
        arch: job.job.arch,
        release: &job.release,
        instance_types: runner_types(job),
    };
    elf::inspect(&binary)
        .and_then(|facts| elf::check_fits(&facts, &node))
        .map_err(|reason| {
            failure(format!(
                "{}: refusing to ship {} for `{}` ({}, {}): {reason}",
                spec.display(),
                binary_path.display(),
                job.name,
                job.release.label,
                job.release.os
            ))
        })?;

    let base = read_layer(spec)?;
    let overlays = args
        .layers
        .overlays
        .iter()
        .map(|p| read_layer(p))
        .collect::<Result<Vec<_>, _>>()?;
    let spec_yaml =
        bundle::merged_spec_yaml(&base, &overlays, &args.layers.sets).map_err(CliError::invalid)?;
    let mut job_files = Vec::new();
    for file in &job.job.files {
        let (bytes, mode) = read_with_mode(&loaded.spec_dir.join(&file.spec_path), "job file")?;
        job_files.push((file.file_name.clone(), bytes, mode));
    }
    let driver = loaded
        .plan
        .rendered_files
        .iter()
        .find(|f| f.name == bundle::DRIVER_ENTRY)
        .map(|f| f.text.clone());
    let bundle = bundle::build(&BundleInputs {
        binary,
        binary_mode,
        spec_yaml,
        driver,
        job_files,
    })
    .map_err(failure)?;

    // `emrship plan` (and provision) read the digest from here.
    let bundle_path = PathBuf::from(format!("target/emrship/{}/bundle.zip", job.name));
    write_atomically(&bundle_path, &bundle.zip)?;

    let rendered = load_plan_with_bundle(&spec_args(args, spec), Some(bundle.digest.clone()), out)?;
    let mut uploads = Vec::new();
    for upload in &rendered.plan.uploads {
        let bytes: Vec<u8> = match upload.kind {
            UploadKind::Bundle => bundle.zip.clone(),
            UploadKind::BootstrapScript | UploadKind::SparkDriver => rendered
                .plan
                .rendered_files
                .iter()
                .find(|f| f.s3_uri == upload.s3_uri.to_string())
                .map(|f| f.text.clone().into_bytes())
                .ok_or_else(|| {
                    failure(format!(
                        "the plan lists {} but rendered no text for it (an emrship bug)",
                        upload.s3_uri
                    ))
                })?,
            UploadKind::JobFile => read_with_mode(Path::new(&upload.source), "job file")?.0,
            UploadKind::UserBootstrap => {
                read_with_mode(&loaded.spec_dir.join(&upload.source), "bootstrap script")?.0
            }
            UploadKind::AppEntry
            | UploadKind::AppModules
            | UploadKind::AppFile
            | UploadKind::AppJar
            | UploadKind::AppDependencies
            | UploadKind::NodeCheck => {
                return Err(failure(format!(
                    "{} is part of a user application, which `prepare_app` ships (an emrship bug)",
                    upload.s3_uri
                )))
            }
        };
        uploads.push(PendingUpload::checked(&job.name, upload, bytes)?);
    }
    out.info(&format!(
        "bundle {}: {} ({} bytes, sha256 {}): {}",
        job.name,
        bundle_path.display(),
        bundle.digest.bytes,
        bundle.digest.sha256,
        bundle
            .entries
            .iter()
            .map(|(name, mode)| format!("{name} {mode:o}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(Prepared {
        region: job.region.clone(),
        uploads,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| failure(format!("cannot create {}: {e}", dir.display())))?;
    let temporary = path.with_extension(format!("zip.tmp.{}", std::process::id()));
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            failure(format!("cannot write {}: {e}", path.display()))
        })
}

fn deploy(args: &DeployArgs, out: Printer) -> Result<Vec<UploadReport>, Failure> {
    // Every spec is checked before anything is built: a spec error exits 2 with nothing done.
    let mut loaded = Vec::new();
    for spec in &args.specs {
        loaded.push((spec, load_plan(&spec_args(args, spec), out)?));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failure(format!("cannot start the async runtime: {e}")))?;
    // Credentials are checked before the (possibly long) build; a dry run needs none.
    let clients = if args.dry_run {
        Vec::new()
    } else {
        let regions: Vec<String> = loaded.iter().map(|(_, l)| l.job.region.clone()).collect();
        runtime.block_on(connect(args, regions))?
    };

    let mut built = Vec::new();
    let mut prepared = Vec::new();
    for (spec, plan) in loaded {
        let ready = if plan.job.job.app.is_some() {
            let ready = app::prepare(args, spec, plan, out)?;
            Prepared {
                region: ready.region,
                uploads: ready.uploads,
            }
        } else {
            prepare(args, spec, plan, &mut built, out)?
        };
        prepared.push(ready);
    }

    if args.dry_run {
        return Ok(prepared
            .iter()
            .flat_map(|p| &p.uploads)
            .map(|u| report(u, "dry-run", false, 0))
            .collect());
    }
    runtime.block_on(upload_all(&clients, &prepared, out))
}

/// One S3 client per region the specs name (normally one), after checking credentials.
async fn connect(
    args: &DeployArgs,
    regions: Vec<String>,
) -> Result<Vec<(String, aws_sdk_s3::Client)>, Failure> {
    let mut clients: Vec<(String, aws_sdk_s3::Client)> = Vec::new();
    for region in regions {
        if clients.iter().any(|(r, _)| *r == region) {
            continue;
        }
        let options = args.aws.options(Some(&region));
        let config = sdk::load(&options).await;
        crate::aws::sdk::require_credentials(&config)
            .await
            .map_err(failure)?;
        clients.push((
            region,
            s3::client(&config, sdk::endpoint_overridden(&options)),
        ));
    }
    Ok(clients)
}

fn report(
    upload: &PendingUpload,
    status: &'static str,
    uploaded: bool,
    parts: usize,
) -> UploadReport {
    UploadReport {
        spec: upload.spec.clone(),
        kind: upload.kind,
        s3_uri: upload.uri.to_string(),
        sha256: upload.digest.sha256.clone(),
        bytes: upload.digest.bytes,
        uploaded,
        status,
        parts,
    }
}

async fn upload_all(
    clients: &[(String, aws_sdk_s3::Client)],
    prepared: &[Prepared],
    out: Printer,
) -> Result<Vec<UploadReport>, Failure> {
    s3::watch_interrupts();
    let mut reports = Vec::new();
    let client_for = |region: &str| {
        clients
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, c)| c.clone())
            .expect("a client per region")
    };

    // Missing buckets stop the deploy before the first byte goes up.
    let mut checked: Vec<String> = Vec::new();
    for ready in prepared {
        for upload in &ready.uploads {
            if checked.contains(&upload.uri.bucket) {
                continue;
            }
            s3::check_bucket(&client_for(&ready.region), &upload.uri)
                .await
                .map_err(failure)?;
            checked.push(upload.uri.bucket.clone());
        }
    }

    let on_terminal = std::io::stderr().is_terminal();
    let total: usize = prepared.iter().map(|p| p.uploads.len()).sum();
    for ready in prepared {
        let client = client_for(&ready.region);
        for upload in &ready.uploads {
            let bar = on_terminal.then(|| progress_bar(upload));
            let progress: s3::Progress = match &bar {
                Some(bar) => {
                    let bar = bar.clone();
                    Arc::new(move |sent| bar.inc(sent))
                }
                None => Arc::new(|_| {}),
            };
            let outcome = s3::upload_once(
                &client,
                &upload.uri,
                upload.bytes.clone(),
                &upload.digest,
                progress,
            )
            .await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let outcome = outcome.map_err(failure)?;
            let status = if outcome.uploaded {
                "uploaded"
            } else {
                "unchanged"
            };
            if !on_terminal {
                out.info(&format!(
                    "[{}/{total}] {status} {} ({} bytes{})",
                    reports.len() + 1,
                    upload.uri,
                    upload.digest.bytes,
                    if outcome.parts > 0 {
                        format!(", {} parts", outcome.parts)
                    } else {
                        String::new()
                    }
                ));
            }
            reports.push(report(upload, status, outcome.uploaded, outcome.parts));
        }
    }
    Ok(reports)
}

fn progress_bar(upload: &PendingUpload) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(upload.digest.bytes),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let name = upload
        .uri
        .key
        .rsplit('/')
        .next()
        .unwrap_or(&upload.uri.key)
        .to_string();
    bar.set_message(name);
    bar
}
