//! Reads a user's application from disk and packs what ships: the entry, the modules zip, each
//! file (a folder as a zip), the local jars. Every piece is deterministic, so its sha256 names
//! it in S3 and an unchanged application uploads nothing. The Python dependencies are built
//! separately (`python_deps`): they need pip and the network, which `plan` never uses.
//!
//! Problems are reported all at once, each at the spec position that named the path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::app_problem::AppProblem;
use super::elf::{self, NodeTarget};
use super::{jar_check, pymodules};
use crate::render::artifacts::{AppFileInput, AppInputs, Digest256};
use crate::spec::job_plan::{AppKind, AppPath, JarRef, UserApp};
use crate::spec::{JobPlan, SpecDiagnostic};

/// A packed application: the digests the plan needs and the bytes deploy uploads, by sha256.
#[derive(Debug, Clone, Default)]
pub struct PackedApp {
    pub inputs: Option<AppInputs>,
    pub bytes_by_sha256: HashMap<String, Vec<u8>>,
    /// The project folder on disk (spec folder + `project`).
    pub project_dir: PathBuf,
}

impl PackedApp {
    fn keep(&mut self, bytes: Vec<u8>) -> Digest256 {
        let digest = Digest256::of(&bytes);
        self.bytes_by_sha256.insert(digest.sha256.clone(), bytes);
        digest
    }
}

/// Reads and packs the user application of `job`, whose paths are relative to `spec_dir` and
/// its `project`, and checks what can be checked from the files against the nodes: compiled
/// modules in the modules zip, local packages the entry script imports without shipping them,
/// the jar's class files and Scala version, the program's ELF.
pub fn pack(job: &JobPlan, spec_dir: &Path) -> Result<PackedApp, Vec<SpecDiagnostic>> {
    let app = job.job.app.as_ref().expect("pack is for user applications");
    let project_dir = spec_dir.join(&app.project);
    let mut packed = PackedApp {
        project_dir: project_dir.clone(),
        ..PackedApp::default()
    };
    let mut problems = Vec::new();
    let read = |path: &AppPath, problems: &mut Vec<SpecDiagnostic>| -> Option<Local> {
        Local::at(&project_dir, path, problems)
    };
    let (entry, modules, jars) = match &app.kind {
        AppKind::PySpark { main, modules, .. } => {
            let entry = read(main, &mut problems);
            let modules: Vec<Local> = modules
                .iter()
                .filter_map(|m| read(m, &mut problems))
                .collect();
            (entry, modules, Vec::new())
        }
        AppKind::Jar { jar, jars, .. } => {
            let entry = read(jar, &mut problems);
            let locals = jars
                .iter()
                .filter_map(|j| match j {
                    JarRef::Local(path) => read(path, &mut problems),
                    JarRef::S3(_) => None,
                })
                .collect();
            (entry, Vec::new(), locals)
        }
        AppKind::Executable { program } => (read(program, &mut problems), Vec::new(), Vec::new()),
    };
    let files: Vec<Local> = app
        .files
        .iter()
        .filter_map(|f| read(f, &mut problems))
        .collect();
    for local in entry.iter().chain(&jars) {
        if local.is_dir {
            problems.push(local.problem(
                "spec::app-path",
                format!("`{}` is a folder", local.path.path),
                "name the file itself",
            ));
        }
    }
    for file in files.iter().filter(|f| f.is_dir) {
        let zip_name = format!("{}.zip", file.path.name);
        if files.iter().any(|f| !f.is_dir && f.path.name == zip_name) {
            problems.push(file.problem("spec::shipped-name-clash", format!("the folder `{}` travels as `{zip_name}`, which another shipped file is named; YARN keeps only one", file.path.path), "rename one of them"));
        }
    }
    let Some(entry) = entry.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    let entry_bytes = std::fs::read(&entry.disk).map_err(|e| vec![entry.unreadable(e)])?;
    problems.extend(check_entry(job, app, &entry, &entry_bytes, &modules));
    let required_java = match &app.kind {
        AppKind::Jar { main_class, .. } => match jar_check::inspect_jar(&entry_bytes) {
            Ok(facts) => {
                if main_class.is_none() && facts.main_class.is_none() {
                    problems.push(entry.problem("app::main-class", format!("`{}` has no Main-Class in its manifest and the spec gives no `main_class`; spark-submit would not know what to run", entry.path.path), "add `main_class: com.example.Main` under `job.jar`"));
                }
                problems.extend(
                    jar_check::check_jar(&entry.path.path, &facts, &jvm_target(job))
                        .into_iter()
                        .map(|p| entry.app_problem(p)),
                );
                facts.java_release().map(u32::from)
            }
            Err(why) => {
                problems.push(entry.problem(
                    "app::jar",
                    format!("`{}` is not a jar: {why}", entry.path.path),
                    "build the application into a jar",
                ));
                None
            }
        },
        _ => None,
    };
    let entry_digest = packed.keep(entry_bytes);
    let modules_digest = if modules.is_empty() {
        None
    } else {
        let inputs: Vec<(PathBuf, String)> = modules
            .iter()
            .map(|m| (m.disk.clone(), m.path.name.clone()))
            .collect();
        match pymodules::py_files_zip(&inputs) {
            Ok(zipped) => Some(packed.keep(zipped.zip)),
            Err(found) => {
                problems.extend(found.into_iter().map(|p| modules[0].app_problem(p)));
                None
            }
        }
    };
    let mut file_inputs = Vec::new();
    for file in &files {
        let bytes = if file.is_dir {
            match pymodules::dir_archive(&file.disk) {
                Ok(zipped) => zipped.zip,
                Err(problem) => {
                    problems.push(file.app_problem(problem));
                    continue;
                }
            }
        } else {
            match std::fs::read(&file.disk) {
                Ok(bytes) => bytes,
                Err(e) => {
                    problems.push(file.unreadable(e));
                    continue;
                }
            }
        };
        file_inputs.push(AppFileInput {
            digest: packed.keep(bytes),
            folder: file.is_dir,
        });
    }
    let mut jar_digests = Vec::new();
    for jar in &jars {
        match std::fs::read(&jar.disk) {
            Ok(bytes) => jar_digests.push(packed.keep(bytes)),
            Err(e) => problems.push(jar.unreadable(e)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    packed.inputs = Some(AppInputs {
        entry: entry_digest,
        modules: modules_digest,
        files: file_inputs,
        jars: jar_digests,
        dependencies: None,
        required_java,
    });
    Ok(packed)
}

fn jvm_target(job: &JobPlan) -> jar_check::JvmTarget {
    jar_check::JvmTarget {
        java: job.release.runtime.java as u16,
        scala: job.release.runtime.scala.to_string(),
        release: job.release.label.clone(),
    }
}

/// What the entry alone shows: local packages a PySpark entry script imports without shipping
/// them, a program that is neither an ELF for the primary node nor a script.
fn check_entry(
    job: &JobPlan,
    app: &UserApp,
    entry: &Local,
    bytes: &[u8],
    modules: &[Local],
) -> Vec<SpecDiagnostic> {
    let mut problems = Vec::new();
    match &app.kind {
        AppKind::PySpark { .. } => {
            let script = String::from_utf8_lossy(bytes);
            let beside = pymodules::listing_of(entry.disk.parent().unwrap_or(Path::new(".")));
            let shipped: Vec<(PathBuf, String)> = modules
                .iter()
                .map(|m| (m.disk.clone(), m.path.name.clone()))
                .collect();
            let shipped = pymodules::shipped_module_names(&shipped);
            for name in pymodules::local_imports_not_shipped(&script, &beside, &shipped) {
                problems.push(entry.problem(
                    "app::import-not-shipped",
                    format!("`{}` imports `{name}`, which is beside it but not shipped: on the cluster only the entry script and `modules` travel, so the import fails with ModuleNotFoundError", entry.path.path),
                    &format!("add `{name}` to `job.pyspark.modules`"),
                ));
            }
        }
        AppKind::Executable { program } => {
            if bytes.starts_with(b"\x7fELF") {
                let node = NodeTarget {
                    arch: job.job.arch,
                    release: &job.release,
                    instance_types: job
                        .cluster
                        .nodes
                        .master_types()
                        .iter()
                        .map(|t| t.name)
                        .collect(),
                };
                if let Err(reason) =
                    elf::inspect(bytes).and_then(|facts| elf::check_fits(&facts, &node))
                {
                    problems.push(entry.problem(
                        "app::program",
                        format!("`{}` cannot run on the primary node: {reason}", program.path),
                        "build it for the nodes: `cargo zigbuild --target x86_64-unknown-linux-gnu.2.26` (aarch64 for Graviton), or a static musl build",
                    ));
                }
            } else if !bytes.starts_with(b"#!") {
                problems.push(entry.problem(
                    "app::program",
                    format!("`{}` is neither a Linux (ELF) program nor a script with a `#!` line; the node cannot execute it", program.path),
                    "build it for Linux, or start the script with its interpreter line (`#!/bin/bash`)",
                ));
            }
        }
        AppKind::Jar { .. } => {}
    }
    problems
}

/// A path of the application found on disk.
struct Local {
    path: AppPath,
    disk: PathBuf,
    is_dir: bool,
}

impl Local {
    /// `path` on disk; `None`, with the problem added to `problems`, when it cannot be read.
    fn at(project_dir: &Path, path: &AppPath, problems: &mut Vec<SpecDiagnostic>) -> Option<Local> {
        let disk = project_dir.join(&path.path);
        match std::fs::metadata(&disk) {
            Ok(meta) => Some(Local {
                path: path.clone(),
                disk,
                is_dir: meta.is_dir(),
            }),
            Err(e) => {
                problems.push(
                    SpecDiagnostic::error(
                        "spec::app-path-missing",
                        format!("`{}` cannot be read ({}): {e}", path.path, disk.display()),
                    )
                    .help("paths are relative to the spec file's folder and the application's `project`")
                    .at(path.origin.clone()),
                );
                None
            }
        }
    }

    fn problem(&self, code: &'static str, message: String, help: &str) -> SpecDiagnostic {
        SpecDiagnostic::error(code, message)
            .help(help)
            .at(self.path.origin.clone())
    }

    /// A packaging check's finding, at the spec position that named this path.
    fn app_problem(&self, problem: AppProblem) -> SpecDiagnostic {
        SpecDiagnostic::error(
            "app::package",
            format!("{}: {}", problem.subject, problem.message),
        )
        .help(problem.fix)
        .at(self.path.origin.clone())
    }

    fn unreadable(&self, e: impl std::fmt::Display) -> SpecDiagnostic {
        self.problem(
            "spec::app-path-missing",
            format!("cannot read {}: {e}", self.disk.display()),
            "check the file's permissions",
        )
    }
}

/// Where `deploy` records the dependency archive it built for a spec, so that `plan`,
/// `provision` and `submit` know its key afterwards without pip.
fn dependencies_record(name: &str) -> PathBuf {
    PathBuf::from(format!("target/emrship/{name}/dependencies.json"))
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DependenciesRecord {
    /// sha256 of the pinned requirements text the archive was built from.
    requirements_sha256: String,
    /// The nodes' Python, glibc and architecture.
    target: String,
    archive: Digest256,
}

/// Records the dependency archive built for `name` from `requirements_text` for `target`.
pub fn record_dependencies(
    name: &str,
    requirements_text: &str,
    target: &str,
    archive: &Digest256,
) -> Result<(), String> {
    let path = dependencies_record(name);
    let record = DependenciesRecord {
        requirements_sha256: Digest256::of(requirements_text.as_bytes()).sha256,
        target: target.to_string(),
        archive: archive.clone(),
    };
    let text = serde_json::to_string_pretty(&record).expect("a record always serializes");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let temporary = path.with_extension(format!("json.tmp.{}", std::process::id()));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The archive `deploy` built for `name`, when it was built from these requirements for this
/// target; `None` (pending) otherwise.
pub fn recorded_dependencies(
    name: &str,
    requirements_text: &str,
    target: &str,
) -> Option<Digest256> {
    let text = std::fs::read_to_string(dependencies_record(name)).ok()?;
    let record: DependenciesRecord = serde_json::from_str(&text).ok()?;
    (record.requirements_sha256 == Digest256::of(requirements_text.as_bytes()).sha256
        && record.target == target)
        .then_some(record.archive)
}

/// The nodes a PySpark application's dependencies are built for: its Python, the release's
/// glibc, the nodes' architecture. `None` for other applications.
pub fn python_target(job: &crate::spec::JobPlan) -> Option<super::python_deps::PythonTarget> {
    match &job.job.app.as_ref()?.kind {
        AppKind::PySpark { python, .. } => Some(super::python_deps::PythonTarget {
            python: (python.0 as u8, python.1 as u8),
            glibc: job.release.glibc,
            arch: job.job.arch,
        }),
        _ => None,
    }
}

/// The dependency archive `deploy` recorded for this application, if its requirements and
/// target are unchanged since.
pub fn deployed_dependencies(job: &crate::spec::JobPlan, packed: &PackedApp) -> Option<Digest256> {
    let AppKind::PySpark {
        requirements: Some(requirements),
        ..
    } = &job.job.app.as_ref()?.kind
    else {
        return None;
    };
    let target = python_target(job)?;
    let pinned =
        super::requirements::read_requirements(&packed.project_dir.join(&requirements.file.path))
            .ok()?;
    recorded_dependencies(&job.name, &pinned.text, &target.describe())
}
