//! Reads a user's application from disk and packs what ships: the entry, the modules zip, each
//! file (a folder as a zip), the local jars. Every piece is deterministic, so its sha256 names
//! it in S3 and an unchanged application uploads nothing. The Python dependencies are built
//! separately (`python_deps`): they need pip and the network, which `plan` never uses.
//!
//! Problems are reported all at once, each at the spec position that named the path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::archive::{write_zip, ArchiveEntry};
use crate::render::artifacts::{AppFileInput, AppInputs, Digest256};
use crate::spec::job_plan::{AppKind, AppPath, JarRef, UserApp};
use crate::spec::SpecDiagnostic;

/// A packed application: the digests the plan needs and the bytes deploy uploads, by sha256.
#[derive(Debug, Clone, Default)]
pub struct PackedApp {
    pub inputs: Option<AppInputs>,
    pub bytes_by_sha256: HashMap<String, Vec<u8>>,
    /// The project folder on disk (spec folder + `project`).
    pub project_dir: PathBuf,
    /// What the application jar's class files say that the nodes cannot run (checked against
    /// the release by `deploy`, before anything is uploaded).
    pub jar_problems: Vec<super::app_problem::AppProblem>,
    /// Local packages the entry script imports without shipping them.
    pub import_problems: Vec<super::app_problem::AppProblem>,
}

impl PackedApp {
    fn keep(&mut self, bytes: Vec<u8>) -> Digest256 {
        let digest = Digest256::of(&bytes);
        self.bytes_by_sha256.insert(digest.sha256.clone(), bytes);
        digest
    }
}

/// Reads and packs `app`, whose paths are relative to `spec_dir` and its `project`.
pub fn pack(app: &UserApp, spec_dir: &Path) -> Result<PackedApp, Vec<SpecDiagnostic>> {
    let project_dir = spec_dir.join(&app.project);
    let mut packed = PackedApp {
        project_dir: project_dir.clone(),
        ..PackedApp::default()
    };
    let mut problems = Vec::new();
    let read = |path: &AppPath, problems: &mut Vec<SpecDiagnostic>| -> Option<Local> {
        match Local::at(&project_dir, path) {
            Ok(local) => Some(local),
            Err(problem) => {
                problems.push(problem);
                None
            }
        }
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
    if let Some(entry) = &entry {
        if entry.is_dir {
            problems.push(entry.problem(
                "spec::app-path",
                format!("`{}` is a folder", entry.path.path),
                "name the file itself",
            ));
        }
    }
    for jar in &jars {
        if jar.is_dir {
            problems.push(jar.problem(
                "spec::app-path",
                format!("`{}` is a folder, not a jar", jar.path.path),
                "list each jar",
            ));
        }
    }
    let mut archive_names: Vec<String> = Vec::new();
    for file in &files {
        if file.is_dir {
            let zip_name = format!("{}.zip", file.path.name);
            if files.iter().any(|f| !f.is_dir && f.path.name == zip_name) {
                problems.push(file.problem("spec::shipped-name-clash", format!("the folder `{}` travels as `{zip_name}`, which another shipped file is named; YARN keeps only one", file.path.path), "rename one of them"));
            }
            archive_names.push(zip_name);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let Some(entry) = entry else {
        return Err(problems);
    };
    let entry_digest = match std::fs::read(&entry.disk) {
        Ok(bytes) => packed.keep(bytes),
        Err(e) => return Err(vec![entry.unreadable(e)]),
    };
    let modules_digest = if modules.is_empty() {
        None
    } else {
        match modules_zip(&modules) {
            Ok(bytes) => Some(packed.keep(bytes)),
            Err(problem) => return Err(vec![problem]),
        }
    };
    let mut file_inputs = Vec::new();
    for file in &files {
        let bytes = if file.is_dir {
            folder_zip(&file.disk).map_err(|e| vec![file.unreadable(e)])?
        } else {
            std::fs::read(&file.disk).map_err(|e| vec![file.unreadable(e)])?
        };
        file_inputs.push(AppFileInput {
            digest: packed.keep(bytes),
            folder: file.is_dir,
        });
    }
    let mut jar_digests = Vec::new();
    for jar in &jars {
        let bytes = std::fs::read(&jar.disk).map_err(|e| vec![jar.unreadable(e)])?;
        jar_digests.push(packed.keep(bytes));
    }
    packed.inputs = Some(AppInputs {
        entry: entry_digest,
        modules: modules_digest,
        files: file_inputs,
        jars: jar_digests,
        dependencies: None,
        required_java: None,
    });
    Ok(packed)
}

/// A path of the application found on disk.
struct Local {
    path: AppPath,
    disk: PathBuf,
    is_dir: bool,
}

impl Local {
    fn at(project_dir: &Path, path: &AppPath) -> Result<Local, SpecDiagnostic> {
        let disk = project_dir.join(&path.path);
        match std::fs::metadata(&disk) {
            Ok(meta) => Ok(Local {
                path: path.clone(),
                disk,
                is_dir: meta.is_dir(),
            }),
            Err(e) => Err(SpecDiagnostic::error(
                "spec::app-path-missing",
                format!("`{}` cannot be read ({}): {e}", path.path, disk.display()),
            )
            .help("paths are relative to the spec file's folder and the application's `project`")
            .at(path.origin.clone())),
        }
    }

    fn problem(&self, code: &'static str, message: String, help: &str) -> SpecDiagnostic {
        SpecDiagnostic::error(code, message)
            .help(help)
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

/// The application's own modules for `--py-files`: each package folder under its name at the
/// zip's root (so `import sales` finds `sales/__init__.py`), each module file at the root.
fn modules_zip(modules: &[Local]) -> Result<Vec<u8>, SpecDiagnostic> {
    let mut entries = Vec::new();
    for module in modules {
        if module.is_dir {
            for (relative, disk, mode) in walk(&module.disk).map_err(|e| module.unreadable(e))? {
                if is_compiled_module(&relative) {
                    return Err(module.problem(
                        "app::compiled-module",
                        format!("`{}/{relative}` is a compiled module; Python cannot import compiled modules from the zip that --py-files ships", module.path.path),
                        "ship native code as a dependency wheel (list it in `requirements`), and keep only pure Python under `modules`",
                    ));
                }
                let bytes = std::fs::read(&disk).map_err(|e| module.unreadable(e))?;
                entries.push(ArchiveEntry {
                    name: format!("{}/{relative}", module.path.name),
                    bytes,
                    mode,
                });
            }
        } else {
            if is_compiled_module(&module.path.name) {
                return Err(module.problem(
                    "app::compiled-module",
                    format!("`{}` is a compiled module; Python cannot import compiled modules from the zip that --py-files ships", module.path.path),
                    "ship native code as a dependency wheel (list it in `requirements`), and keep only pure Python under `modules`",
                ));
            }
            let bytes = std::fs::read(&module.disk).map_err(|e| module.unreadable(e))?;
            entries.push(ArchiveEntry {
                name: module.path.name.clone(),
                bytes,
                mode: 0o644,
            });
        }
    }
    write_zip(entries).map_err(|e| {
        modules[0].problem("app::modules-zip", e, "rename one of the clashing modules")
    })
}

fn is_compiled_module(name: &str) -> bool {
    [".so", ".pyd", ".dylib"]
        .iter()
        .any(|ext| name.ends_with(ext))
        || name.contains(".so.")
}

/// A folder as a zip whose entries are relative to the folder, so YARN extracting it under the
/// folder's name recreates `name/…` in the working directory.
pub fn folder_zip(dir: &Path) -> Result<Vec<u8>, String> {
    let entries = walk(dir)?
        .into_iter()
        .map(|(name, disk, mode)| {
            std::fs::read(&disk)
                .map(|bytes| ArchiveEntry { name, bytes, mode })
                .map_err(|e| format!("cannot read {}: {e}", disk.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    write_zip(entries)
}

/// Every file under `dir` as (relative `/` path, disk path, mode), skipping byte code caches and
/// dot-files, which differ between machines and would change the digest for nothing.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf, u32)>, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = pending.pop() {
        let listing = std::fs::read_dir(&folder)
            .map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
        for entry in listing {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "__pycache__" || name.ends_with(".pyc") {
                continue;
            }
            let relative = format!("{prefix}{name}");
            let meta = std::fs::metadata(entry.path())
                .map_err(|e| format!("cannot stat {}: {e}", entry.path().display()))?;
            if meta.is_dir() {
                pending.push((entry.path(), format!("{relative}/")));
            } else {
                out.push((relative, entry.path(), meta.permissions().mode() & 0o777));
            }
        }
    }
    out.sort();
    Ok(out)
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
