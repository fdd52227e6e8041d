//! A user's PySpark application could not import something: a module that was not shipped (or
//! not put on the Python path of the driver or the executors), or a shipped package whose compiled
//! modules were built for another glibc, CPU or Python than the nodes have.

use super::context::Shipped;
use super::pytrace::{self, Traceback};
use super::{mentions, regex, CauseKind, Diagnosis, Evidence, LogText, StepContext};
use crate::sizing::catalog::Arch;

const PROVE: &str = "prove the fix with `emrship run <spec> --local` (the same step arguments and zips under real Spark), then `emrship deploy` and submit again";

/// Import names whose PyPI distribution is named otherwise: what to put in the requirements.
const DISTRIBUTION_OF: [(&str, &str); 9] = [
    ("sklearn", "scikit-learn"),
    ("yaml", "PyYAML"),
    ("cv2", "opencv-python-headless"),
    ("PIL", "Pillow"),
    ("bs4", "beautifulsoup4"),
    ("dateutil", "python-dateutil"),
    ("jwt", "PyJWT"),
    ("psycopg2", "psycopg2-binary"),
    ("google.protobuf", "protobuf"),
];

fn requirement_for(module: &str) -> &str {
    DISTRIBUTION_OF
        .iter()
        .find(|(import, _)| module == *import || module.starts_with(&format!("{import}.")))
        .map(|(_, distribution)| *distribution)
        .unwrap_or_else(|| module.split('.').next().unwrap_or(module))
}

/// The archive that carries the Python dependencies: the one whose alias the Python path names
/// (emrship ships `deps-<sha12>.zip#emrship_deps` with `PYTHONPATH=./emrship_deps`).
fn deps_archive(step: &StepContext) -> Option<Shipped<'_>> {
    let submit = &step.submit;
    let on_path = |alias: &str| {
        [submit.driver_pythonpath(), submit.executor_pythonpath()]
            .iter()
            .flatten()
            .any(|path| path_names(path, alias))
    };
    submit
        .archives()
        .find(|archive| on_path(archive.link_name))
        .or_else(|| {
            submit
                .archives()
                .find(|archive| archive.link_name == "emrship_deps")
        })
}

/// Does a `PYTHONPATH` value (`./emrship_deps:{{PWD}}/x`) hold the directory `alias`?
fn path_names(pythonpath: &str, alias: &str) -> bool {
    pythonpath.split([':', ',']).any(|entry| {
        let entry = entry.trim().trim_end_matches('/');
        let entry = entry
            .strip_prefix("{{PWD}}/")
            .or_else(|| entry.strip_prefix("$PWD/"))
            .or_else(|| entry.strip_prefix("./"))
            .unwrap_or(entry);
        entry == alias
    })
}

struct MissingHit<'a> {
    traceback: Traceback<'a>,
    module: String,
    /// `cannot import name 'X' from 'pkg' (path)`: the name and where pkg was loaded from.
    name_from: Option<(String, Option<String>)>,
}

pub(super) fn find_missing_module(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let no_module = regex(r"^No module named '([^']+)'");
    let cannot_import = regex(r"^cannot import name '([^']+)' from '([^']+)'(?: \(([^)]+)\))?");
    let mut hits: Vec<MissingHit> = Vec::new();
    for log in logs {
        for traceback in pytrace::tracebacks(log) {
            if traceback.exception != "ModuleNotFoundError" && traceback.exception != "ImportError"
            {
                continue;
            }
            if let Some(c) = no_module.captures(&traceback.message) {
                let module = c[1].to_string();
                hits.push(MissingHit {
                    traceback,
                    module,
                    name_from: None,
                });
            } else if let Some(c) = cannot_import.captures(&traceback.message) {
                let name_from = Some((c[1].to_string(), c.get(3).map(|m| m.as_str().to_string())));
                let module = c[2].to_string();
                hits.push(MissingHit {
                    traceback,
                    module,
                    name_from,
                });
            }
        }
    }
    // The module the application failed on last is the one that stopped it.
    let module = hits.last()?.module.clone();
    let hits: Vec<MissingHit> = hits.into_iter().filter(|h| h.module == module).collect();
    let on_driver = hits.iter().find(|h| !h.traceback.worker);
    // An executor's own container log rather than the copy relayed into the driver's log.
    let on_executor = hits
        .iter()
        .filter(|h| h.traceback.worker)
        .min_by_key(|h| !pytrace::is_executor_container(&h.traceback.log.name));
    let top = module.split('.').next().unwrap_or(&module).to_string();
    let submit = &step.submit;
    let deps = deps_archive(step);

    let mut diagnosis = match &hits[0].name_from {
        Some((name, _)) => Diagnosis::new(
            CauseKind::PythonModuleMissing,
            format!(
                "the application's Python could not import {name} from {module} on {}: the {module} it found is a version without it",
                where_failed(on_driver.is_some(), on_executor.is_some())
            ),
        ),
        None => Diagnosis::new(
            CauseKind::PythonModuleMissing,
            format!(
                "the application's Python found no module named '{module}' on {}",
                where_failed(on_driver.is_some(), on_executor.is_some())
            ),
        ),
    };
    for hit in [on_driver, on_executor].into_iter().flatten() {
        diagnosis.evidence.extend(import_evidence(&hit.traceback));
    }

    if let Some((name, from)) = hits.iter().find_map(|h| h.name_from.clone()) {
        if let Some(from) = from.filter(|from| is_node_python_path(from)) {
            diagnosis.advice.push(format!(
                "{module} was loaded from {from}, the node's own Python packages, not from the shipped dependencies: pin {} in the requirements so the shipped copy (on PYTHONPATH, ahead of the node's) is the one imported",
                requirement_for(&module)
            ));
        } else {
            diagnosis.advice.push(format!(
                "pin a version of {} that still has {name} in the requirements (a dependency may need an older or newer one), then rebuild with `emrship deploy`",
                requirement_for(&module)
            ));
        }
        diagnosis.advice.push(PROVE.to_string());
        return Some(diagnosis);
    }

    if module.contains('.') {
        diagnosis.advice.push(format!(
            "the package {top} itself was imported, but not its module {module}: if that is a compiled module of {top} (its name starts with `_`), {top} was built for another Python than the nodes' or shipped inside a zip, from which compiled modules cannot load; if it is your own, the modules zip lacks that file"
        ));
    }
    // The archive is shipped but a Python process was not told where it is: that is the fix,
    // whatever the archive holds.
    let misplaced = deps.as_ref().and_then(|archive| {
        let alias = archive.link_name;
        let driver_path = submit.driver_pythonpath();
        let executor_path = submit.executor_pythonpath();
        if on_executor.is_some() && !executor_path.is_some_and(|p| path_names(p, alias)) {
            Some(format!(
                "the dependencies archive {} (#{alias}) reaches the driver but not the executors' Python: spark.executorEnv.PYTHONPATH is {}; it must include ./{alias} (emrship's plan sets spark.executorEnv.PYTHONPATH=./{alias}: re-render the step with `emrship plan` rather than editing it)",
                archive.base_name,
                show_setting(executor_path)
            ))
        } else if on_driver.is_some()
            && submit.is_cluster_mode()
            && !driver_path.is_some_and(|p| path_names(p, alias))
        {
            Some(format!(
                "the dependencies archive {} (#{alias}) is not on the driver's Python path: spark.yarn.appMasterEnv.PYTHONPATH is {}; it must include ./{alias} (emrship's plan sets it: re-render the step with `emrship plan`)",
                archive.base_name,
                show_setting(driver_path)
            ))
        } else {
            None
        }
    });
    if let Some(advice) = misplaced {
        diagnosis.advice.push(advice);
        diagnosis.advice.push(PROVE.to_string());
        return Some(diagnosis);
    }
    diagnosis.advice.push(shipped_modules(step, &top));
    match &deps {
        Some(archive) if on_executor.is_some() && on_driver.is_none() => {
            diagnosis.advice.push(format!(
                "the driver imported {top} but the executors did not, although both have ./{} on their Python path: a module the driver finds through its own sys.path changes, or one installed on only some nodes, does not reach the executors; ship it with the job",
                archive.link_name
            ))
        }
        Some(archive) => diagnosis.advice.push(format!(
            "the dependencies archive {} (#{}) was shipped and is on the Python path, so {top} is not in it",
            archive.base_name, archive.link_name
        )),
        None if submit.is_python_app() => diagnosis.advice.push(
            "the step shipped no dependencies archive (no --archives entry on PYTHONPATH): third-party packages come only from the node's own Python".to_string(),
        ),
        None => {}
    }
    diagnosis.advice.push(format!(
        "add it to job.pyspark.modules if '{top}' is your own code, or to the requirements if it is a package (`{}`), then {PROVE}",
        requirement_for(&module)
    ));
    Some(diagnosis)
}

fn where_failed(driver: bool, executor: bool) -> &'static str {
    match (driver, executor) {
        (true, true) => "the driver and the executors",
        (false, true) => "the executors only (the driver imported it)",
        _ => "the driver",
    }
}

fn show_setting(value: Option<&str>) -> String {
    value
        .map(|v| format!("{v:?}"))
        .unwrap_or_else(|| "not set".to_string())
}

fn is_node_python_path(path: &str) -> bool {
    ["/usr/lib/python3", "/usr/lib64/python3", "/usr/local/lib"]
        .iter()
        .any(|root| path.starts_with(root))
}

/// The exception line and where the application's code was.
fn import_evidence(traceback: &Traceback) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    if let Some(frame) = traceback.app_frame() {
        evidence.extend(traceback.frame_evidence(frame));
    }
    evidence.push(traceback.exception_evidence());
    evidence
}

/// What the step shipped of the application's own modules, as far as names tell.
fn shipped_modules(step: &StepContext, top: &str) -> String {
    let py_files: Vec<Shipped> = step.submit.py_files().collect();
    if py_files.is_empty() {
        return "the step shipped no --py-files: none of the application's own modules reached the cluster".to_string();
    }
    if let Some(named) = py_files.iter().find(|shipped| {
        shipped
            .base_name
            .strip_suffix(".py")
            .or_else(|| shipped.base_name.strip_suffix(".zip"))
            .or_else(|| shipped.base_name.strip_suffix(".egg"))
            == Some(top)
    }) {
        return format!(
            "{} was shipped with --py-files ({}): a zip must hold {top}/ (or {top}.py) at its root, not under a parent folder",
            named.base_name, named.uri
        );
    }
    let names: Vec<&str> = py_files.iter().map(|shipped| shipped.base_name).collect();
    format!(
        "the modules zip {} was shipped with --py-files (its contents are not in the logs): is '{top}' listed under job.pyspark.modules or in the requirements?",
        names.join(", ")
    )
}

/// One finding about a compiled module that does not load.
struct NativeHit {
    kind: NativeKind,
    evidence: Evidence,
    /// The shared object or program named, when the line names one.
    path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum NativeKind {
    /// Needs this glibc.
    Glibc(u32, u32),
    /// Undefined symbol.
    Symbol(String),
    /// A 32/64-bit mismatch (`wrong ELF class: ELFCLASS32`).
    ElfClass(String),
    /// The module's own file exists but does not load: another CPU.
    CannotOpen,
    /// A program run directly: `cannot execute binary file: Exec format error`.
    ExecFormat,
    /// A system library the node lacks (`libgfortran.so.5: cannot open shared object file`).
    MissingLibrary(String),
    /// numpy's own message about its C-extensions, with its original error.
    Numpy,
}

impl NativeKind {
    /// The most telling first: a glibc version names exactly what is missing; numpy's message
    /// only wraps one of the others.
    fn rank(&self) -> u8 {
        match self {
            NativeKind::Glibc(..) => 0,
            NativeKind::Symbol(_) => 1,
            NativeKind::ElfClass(_) => 2,
            NativeKind::CannotOpen => 3,
            NativeKind::MissingLibrary(_) => 4,
            NativeKind::ExecFormat => 5,
            NativeKind::Numpy => 6,
        }
    }
}

pub(super) fn find_native_module(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let glibc =
        regex(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?'? not found \(required by ([^)]+\.so(?:\.[\w.]+)?)\)");
    let cannot_open = regex(r"(\S+\.so(?:\.[\w.]+)?): cannot open shared object file");
    let elf_class = regex(r"(\S+\.so(?:\.[\w.]+)?): wrong ELF class: (ELFCLASS\d+)");
    let symbol = regex(r"(\S+\.so(?:\.[\w.]+)?): undefined symbol: (\S+)");
    let exec_format = regex(r"(?:^|: )([^\s:]+): cannot execute binary file: Exec format error");
    let mut hits: Vec<NativeHit> = Vec::new();
    let mut numpy: Vec<Evidence> = Vec::new();
    let mut numpy_original: Option<String> = None;
    let mut numpy_python: Option<String> = None;
    let mut numpy_version: Option<String> = None;
    for log in logs {
        for (number, line) in log.numbered() {
            if !mentions(
                line,
                &[
                    "GLIBC_",
                    "shared object",
                    "ELF class",
                    "undefined symbol",
                    "Exec format",
                    "numpy",
                    "NumPy",
                    "The Python version is",
                    "Original error was",
                ],
            ) || line.contains("emrship-job")
            {
                continue;
            }
            // The trailing `ImportError: ` text of numpy's message spans lines.
            if line.contains("Importing the numpy C-extensions failed") {
                numpy.push(log.evidence(number, line));
                hits.push(NativeHit {
                    kind: NativeKind::Numpy,
                    evidence: log.evidence(number, line),
                    path: None,
                });
                continue;
            }
            if let Some(rest) = line.trim().strip_prefix("* The Python version is: ") {
                numpy_python = Some(rest.to_string());
                numpy.push(log.evidence(number, line));
            } else if let Some(rest) = line.trim().strip_prefix("* The NumPy version is: ") {
                numpy_version = Some(rest.trim_matches('"').to_string());
                numpy.push(log.evidence(number, line));
            } else if let Some(rest) = line.strip_prefix("Original error was: ") {
                numpy_original = Some(rest.to_string());
                numpy.push(log.evidence(number, line));
            }
            let (kind, path) = if let Some(c) = glibc.captures(line) {
                (
                    NativeKind::Glibc(c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0)),
                    c[3].to_string(),
                )
            } else if let Some(c) = symbol.captures(line) {
                (NativeKind::Symbol(c[2].to_string()), c[1].to_string())
            } else if let Some(c) = elf_class.captures(line) {
                (NativeKind::ElfClass(c[2].to_string()), c[1].to_string())
            } else if let Some(c) = cannot_open.captures(line) {
                let path = c[1].to_string();
                if path.contains('/') {
                    (NativeKind::CannotOpen, path)
                } else {
                    (NativeKind::MissingLibrary(path.clone()), path)
                }
            } else if let Some(c) = exec_format.captures(line) {
                (NativeKind::ExecFormat, c[1].to_string())
            } else {
                continue;
            };
            hits.push(NativeHit {
                kind,
                evidence: log.evidence(number, line),
                path: Some(path),
            });
        }
    }
    if hits.is_empty() {
        return None;
    }
    let primary = hits.iter().min_by_key(|h| h.kind.rank())?;
    let path = primary.path.clone();
    let package = path
        .as_deref()
        .and_then(|path| package_of(path, step))
        .or_else(|| (!numpy.is_empty()).then(|| "numpy".to_string()));
    let what = match (&package, &numpy_version) {
        (Some(package), Some(version)) if package == "numpy" => format!("numpy {version}"),
        (Some(package), _) => package.clone(),
        (None, _) => "a shipped package".to_string(),
    };
    let (node_glibc, node_os) = step
        .node_glibc()
        .map(|((major, minor), os)| (Some((major, minor)), os))
        .unwrap_or((None, "the nodes' OS".to_string()));
    let node_python = node_python(step);
    let extension = path.as_deref().and_then(extension_tag);
    let release = step.release_label.as_deref().unwrap_or("the release's");
    let node_arch = step.node_arch.map(arch_name);

    let cause = match &primary.kind {
        NativeKind::Glibc(..) => {
            let needed = hits
                .iter()
                .filter_map(|h| match h.kind {
                    NativeKind::Glibc(major, minor) => Some((major, minor)),
                    _ => None,
                })
                .max()
                .unwrap_or((0, 0));
            let node = match node_glibc {
                Some((major, minor)) => {
                    format!("{release} nodes run {node_os} with glibc {major}.{minor}")
                }
                None => "the nodes' glibc is older".to_string(),
            };
            format!(
                "{what} has a compiled module built for a newer Linux: it needs glibc {}.{} but {node}",
                needed.0, needed.1
            )
        }
        NativeKind::Symbol(symbol) if symbol.starts_with("_Py") || symbol.starts_with("Py") => {
            let built = extension
                .as_ref()
                .map(|((major, minor), _)| format!(" (its file is tagged cpython-{major}{minor})"))
                .unwrap_or_default();
            format!(
                "{what} has a compiled module built for another Python version than the nodes' {}{built}: undefined symbol {symbol}",
                node_python
                    .map(|(major, minor)| format!("Python {major}.{minor}"))
                    .unwrap_or_else(|| "Python".to_string())
            )
        }
        NativeKind::Symbol(symbol) => format!(
            "{what} has a compiled module built against another version of a library it links: undefined symbol {symbol}"
        ),
        NativeKind::ElfClass(class) => format!(
            "{what} has a compiled module of the wrong word size ({class}): it is a {} build",
            if class.ends_with("32") { "32-bit" } else { "64-bit" }
        ),
        NativeKind::CannotOpen => {
            let built = extension
                .as_ref()
                .map(|(_, arch)| format!(" (its file is tagged {arch})"))
                .unwrap_or_default();
            format!(
                "{what} has a compiled module the node cannot load although it was shipped{built}: most likely built for another CPU architecture than the {} nodes",
                node_arch.unwrap_or("cluster's")
            )
        }
        NativeKind::MissingLibrary(library) => format!(
            "{what} needs the system library {library}, which the nodes do not have: it was not built as a self-contained manylinux wheel"
        ),
        NativeKind::ExecFormat => format!(
            "the program {} was built for another CPU architecture than the {} nodes (Exec format error)",
            path.as_deref().unwrap_or("shipped"),
            node_arch.unwrap_or("cluster's")
        ),
        NativeKind::Numpy => {
            let original = numpy_original.clone().unwrap_or_default();
            if original.contains("No module named") {
                format!(
                    "numpy's compiled modules did not load ({original}): the numpy shipped was built for another Python than the nodes' {}, or was shipped inside a zip, from which compiled modules cannot be imported",
                    numpy_python.clone().unwrap_or_else(|| "Python".to_string())
                )
            } else {
                format!("numpy's compiled modules did not load: {original}")
            }
        }
    };
    let mut diagnosis = Diagnosis::new(CauseKind::NativeModuleDoesNotFit, cause);
    let mut seen = std::collections::BTreeSet::new();
    for hit in hits
        .iter()
        .filter(|h| h.kind.rank() == primary.kind.rank())
        .take(3)
    {
        if seen.insert(hit.evidence.text.clone()) {
            diagnosis.evidence.push(hit.evidence.clone());
        }
    }
    for line in numpy.into_iter().take(4) {
        if !diagnosis.evidence.contains(&line) && seen.insert(line.text.clone()) {
            diagnosis.evidence.push(line);
        }
    }
    // In the order the lines were logged, log by log.
    let log_order: Vec<String> = logs.iter().map(|log| log.name.clone()).collect();
    diagnosis.evidence.sort_by_key(|evidence| {
        (
            log_order.iter().position(|name| *name == evidence.log),
            evidence.line,
        )
    });

    let target = target_description(step, node_python);
    let package_name = package.clone().unwrap_or_else(|| "the package".to_string());
    diagnosis.advice.push(match &primary.kind {
        NativeKind::ExecFormat => format!(
            "build the program for the nodes' CPU{}: Graviton instance types (m6g, r7g, c7gn, …) are aarch64, the others x86_64",
            node_arch.map(|arch| format!(" ({arch})")).unwrap_or_default()
        ),
        NativeKind::MissingLibrary(_) => format!(
            "pin a version of {package_name} that publishes manylinux wheels (they bundle the libraries they need), {target}"
        ),
        _ => format!(
            "pin a version of {package_name} that has a wheel the nodes support: {target}"
        ),
    });
    diagnosis.advice.push(
        "`emrship deploy` checks every wheel's glibc tag, CPU architecture and Python ABI against the release before uploading and refuses one that does not fit: let it build the dependencies from the requirements rather than shipping an environment built elsewhere; if this archive did come from `emrship deploy`, report these lines"
            .to_string(),
    );
    Some(diagnosis)
}

/// The nodes' Python: the version the step asks for (`/usr/bin/python3.11`), else the release's
/// default.
fn node_python(step: &StepContext) -> Option<(u32, u32)> {
    let asked = step.submit.pyspark_python().and_then(|python| {
        let version = python.rsplit("python").next()?;
        let (major, minor) = version.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    });
    asked.or_else(|| step.node_pythons().first().copied())
}

fn arch_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "aarch64",
    }
}

/// "manylinux_2_34 or older (Amazon Linux 2023, glibc 2.34), x86_64, cp39".
fn target_description(step: &StepContext, python: Option<(u32, u32)>) -> String {
    let mut parts = Vec::new();
    if let Some(((major, minor), os)) = step.node_glibc() {
        parts.push(format!(
            "manylinux_{major}_{minor} or older ({os}, glibc {major}.{minor})"
        ));
    }
    if let Some(arch) = step.node_arch {
        parts.push(arch_name(arch).to_string());
    }
    if let Some((major, minor)) = python {
        parts.push(format!("cp{major}{minor}"));
    }
    if parts.is_empty() {
        "the nodes' glibc, CPU and Python".to_string()
    } else {
        parts.join(", ")
    }
}

/// The Python and CPU in an extension module's file name
/// (`_x.cpython-311-aarch64-linux-gnu.so` → 3.11, aarch64).
fn extension_tag(path: &str) -> Option<((u32, u32), String)> {
    let tag = regex(r"\.cpython-(\d)(\d+)[a-z]*-([a-z0-9_]+)-linux-gnu\.so");
    let c = tag.captures(path.rsplit('/').next()?)?;
    Some(((c[1].parse().ok()?, c[2].parse().ok()?), c[3].to_string()))
}

/// The package a shared object belongs to: the directory under the dependencies folder
/// (`…/emrship_deps/numpy/core/_multiarray_umath….so` → numpy; `…/numpy.libs/libopenblas….so` →
/// numpy).
fn package_of(path: &str, step: &StepContext) -> Option<String> {
    if !path.contains('/') {
        return None;
    }
    let mut roots: Vec<String> = vec!["site-packages".into(), "dist-packages".into()];
    roots.extend(
        step.submit
            .archives()
            .map(|archive| archive.link_name.to_string()),
    );
    roots.push("emrship_deps".into());
    let components: Vec<&str> = path.split('/').collect();
    let after_root = components
        .iter()
        .rposition(|component| roots.iter().any(|root| root == component))
        .and_then(|at| components.get(at + 1).copied());
    let component = after_root.or_else(|| {
        components
            .len()
            .checked_sub(2)
            .and_then(|at| components.get(at).copied())
    })?;
    let name = component
        .trim_end_matches(".libs")
        .split(['.', '-'])
        .next()
        .unwrap_or(component);
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};
    use super::*;

    /// The step `emrship plan` renders for a PySpark application on emr-7.5.0.
    fn pyspark_step(executor_pythonpath: bool) -> StepContext {
        let mut args = vec![
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--master",
            "yarn",
            "--py-files",
            "s3://example-ads-data/emrship/sessions/modules-5e1f0c2a9b7d.zip",
            "--files",
            "s3://example-ads-data/emrship/sessions/files/3c9a/app.ini",
            "--archives",
            "s3://example-ads-data/emrship/sessions/deps-8f3e2a1b4c5d.zip#emrship_deps",
            "--conf",
            "spark.yarn.appMasterEnv.PYTHONPATH=./emrship_deps",
            "--conf",
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON=/usr/bin/python3.9",
            "--conf",
            "spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3.9",
        ];
        if executor_pythonpath {
            args.extend(["--conf", "spark.executorEnv.PYTHONPATH=./emrship_deps"]);
        }
        args.extend([
            "s3://example-ads-data/emrship/sessions/main-77aa.py",
            "--date",
            "2024-11-20",
        ]);
        let mut step =
            StepContext::from_step_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        step.release_label = Some("emr-7.5.0".to_string());
        step.node_arch = Some(Arch::X86_64);
        step
    }

    const DRIVER_STDOUT: &str = "containers/application_1732168000000_0003/container_1732168000000_0003_01_000001/stdout.gz";
    const EXECUTOR_STDERR: &str = "containers/application_1732168000000_0003/container_1732168000000_0003_01_000002/stderr.gz";

    #[test]
    fn module_missing_on_the_driver_names_it_and_the_shipped_zip() {
        let log = LogText::new(
            DRIVER_STDOUT,
            "\
Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0003/container_1732168000000_0003_01_000001/main-77aa.py\", line 4, in <module>
    from sessions.enrich import add_region
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0003/container_1732168000000_0003_01_000001/modules-5e1f0c2a9b7d.zip/sessions/enrich.py\", line 3, in <module>
    import geo_utils
ModuleNotFoundError: No module named 'geo_utils'
",
        );
        let diagnosis = diagnose(&[log], &pyspark_step(true));
        assert_eq!(diagnosis.kind, CauseKind::PythonModuleMissing);
        assert_eq!(
            diagnosis.cause,
            "the application's Python found no module named 'geo_utils' on the driver"
        );
        let lines: Vec<usize> = diagnosis.evidence.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(diagnosis.advice[0].contains(
            "the modules zip modules-5e1f0c2a9b7d.zip was shipped with --py-files (its contents are not in the logs): is 'geo_utils' listed under job.pyspark.modules or in the requirements?"
        ), "{:?}", diagnosis.advice);
        assert!(diagnosis.advice[1].contains("deps-8f3e2a1b4c5d.zip (#emrship_deps) was shipped and is on the Python path, so geo_utils is not in it"), "{:?}", diagnosis.advice);
        assert!(diagnosis.advice[2].contains("`emrship run <spec> --local`"));
        // The generic traceback finding adds nothing the module finding does not say.
        assert!(diagnosis.also.is_empty(), "{:?}", diagnosis.also);
    }

    #[test]
    fn module_missing_on_executors_only_points_at_their_pythonpath() {
        let executor = LogText::new(
            EXECUTOR_STDERR,
            "\
24/11/21 06:01:04 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)
org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0003/container_1732168000000_0003_01_000002/pyspark.zip/pyspark/serializers.py\", line 472, in loads
    return cloudpickle.loads(obj, encoding=encoding)
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0003/container_1732168000000_0003_01_000002/pyspark.zip/pyspark/cloudpickle/cloudpickle.py\", line 649, in subimport
    __import__(name)
ModuleNotFoundError: No module named 'shapely'
",
        );
        let diagnosis = diagnose(&[executor], &pyspark_step(false));
        assert_eq!(
            diagnosis.cause,
            "the application's Python found no module named 'shapely' on the executors only (the driver imported it)"
        );
        assert!(
            diagnosis.advice[0].contains("reaches the driver but not the executors' Python: spark.executorEnv.PYTHONPATH is not set; it must include ./emrship_deps"),
            "{:?}",
            diagnosis.advice
        );
        assert_eq!(diagnosis.evidence.last().unwrap().line, 7);
    }

    #[test]
    fn import_name_names_the_distribution_to_require() {
        assert_eq!(requirement_for("sklearn.ensemble"), "scikit-learn");
        assert_eq!(requirement_for("yaml"), "PyYAML");
        assert_eq!(requirement_for("geo_utils.shapes"), "geo_utils");
        assert!(path_names("./emrship_deps", "emrship_deps"));
        assert!(path_names("{{PWD}}/emrship_deps:{{PWD}}/x", "emrship_deps"));
        assert!(!path_names("./deps", "emrship_deps"));
    }

    #[test]
    fn glibc_of_a_shipped_wheel_names_the_package_and_both_versions() {
        let log = LogText::new(
            DRIVER_STDOUT,
            "\
Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0003/container_1732168000000_0003_01_000001/main-77aa.py\", line 2, in <module>
    import pyarrow
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0003/container_1732168000000_0003_01_000001/emrship_deps/pyarrow/__init__.py\", line 65, in <module>
    import pyarrow.lib as _lib
ImportError: /lib64/libc.so.6: version `GLIBC_2.38' not found (required by /mnt/yarn/usercache/hadoop/appcache/application_1732168000000_0003/container_1732168000000_0003_01_000001/emrship_deps/pyarrow/libarrow.so.1800)
",
        );
        let diagnosis = diagnose(&[log], &pyspark_step(true));
        assert_eq!(diagnosis.kind, CauseKind::NativeModuleDoesNotFit);
        assert_eq!(
            diagnosis.cause,
            "pyarrow has a compiled module built for a newer Linux: it needs glibc 2.38 but emr-7.5.0 nodes run Amazon Linux 2023 with glibc 2.34"
        );
        assert_eq!(diagnosis.evidence[0].line, 6);
        assert_eq!(
            diagnosis.advice[0],
            "pin a version of pyarrow that has a wheel the nodes support: manylinux_2_34 or older (Amazon Linux 2023, glibc 2.34), x86_64, cp39"
        );
        assert!(diagnosis.advice[1].contains("`emrship deploy` checks every wheel's glibc tag"));
    }

    #[test]
    fn python_abi_and_architecture_and_word_size() {
        let abi = LogText::new(
            EXECUTOR_STDERR,
            "ImportError: /mnt/yarn/usercache/hadoop/appcache/application_1/container_1_0003_01_000002/emrship_deps/orjson/orjson.cpython-311-x86_64-linux-gnu.so: undefined symbol: _PyUnicode_Ready\n",
        );
        let diagnosis = diagnose(&[abi], &pyspark_step(true));
        assert_eq!(
            diagnosis.cause,
            "orjson has a compiled module built for another Python version than the nodes' Python 3.9 (its file is tagged cpython-311): undefined symbol _PyUnicode_Ready"
        );

        let arch = LogText::new(
            DRIVER_STDOUT,
            "ImportError: /mnt/yarn/usercache/hadoop/appcache/application_1/container_1_0003_01_000001/emrship_deps/_cffi_backend.cpython-39-aarch64-linux-gnu.so: cannot open shared object file: No such file or directory\n",
        );
        let diagnosis = diagnose(&[arch], &pyspark_step(true));
        assert_eq!(
            diagnosis.cause,
            "_cffi_backend has a compiled module the node cannot load although it was shipped (its file is tagged aarch64): most likely built for another CPU architecture than the x86_64 nodes"
        );

        let class = LogText::new(
            DRIVER_STDOUT,
            "ImportError: /mnt/yarn/x/emrship_deps/lz4/_version.so: wrong ELF class: ELFCLASS32\n",
        );
        let diagnosis = diagnose(&[class], &pyspark_step(true));
        assert!(diagnosis.cause.starts_with("lz4 has a compiled module of the wrong word size (ELFCLASS32): it is a 32-bit build"), "{}", diagnosis.cause);

        let library = LogText::new(
            DRIVER_STDOUT,
            "ImportError: libgfortran.so.5: cannot open shared object file: No such file or directory\n",
        );
        let diagnosis = diagnose(&[library], &pyspark_step(true));
        assert!(
            diagnosis
                .cause
                .contains("needs the system library libgfortran.so.5"),
            "{}",
            diagnosis.cause
        );
    }

    #[test]
    fn exec_format_error_of_an_emrship_job_stays_with_the_binary_diagnosis() {
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "/bin/bash: ./bundle/emrship-job: cannot execute binary file: Exec format error\n",
        );
        let mut step = pyspark_step(true);
        step.native = true;
        let diagnosis = diagnose(&[log], &step);
        assert_eq!(diagnosis.kind, CauseKind::BinaryDoesNotFit);

        let log = LogText::new(
            "containers/application_1_0003/container_1_0003_01_000002/stderr.gz",
            "/bin/bash: ./tools/bin/geocode: cannot execute binary file: Exec format error\n",
        );
        let diagnosis = diagnose(&[log], &pyspark_step(true));
        assert_eq!(diagnosis.kind, CauseKind::NativeModuleDoesNotFit);
        assert_eq!(
            diagnosis.cause,
            "the program ./tools/bin/geocode was built for another CPU architecture than the x86_64 nodes (Exec format error)"
        );
    }

    #[test]
    fn package_from_a_shared_object_path() {
        let step = pyspark_step(true);
        assert_eq!(
            package_of(
                "/mnt/a/c/emrship_deps/numpy.libs/libopenblas64_p-r0-0cf96a72.3.23.dev.so",
                &step
            )
            .as_deref(),
            Some("numpy")
        );
        assert_eq!(
            package_of("/usr/local/lib64/python3.9/site-packages/pandas/_libs/interval.cpython-39-x86_64-linux-gnu.so", &step).as_deref(),
            Some("pandas")
        );
        assert_eq!(package_of("libgfortran.so.5", &step), None);
        assert_eq!(
            extension_tag("/x/_cffi_backend.cpython-311-aarch64-linux-gnu.so"),
            Some(((3, 11), "aarch64".to_string()))
        );
    }
}
