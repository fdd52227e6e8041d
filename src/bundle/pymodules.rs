//! The user's own Python modules, zipped for `--py-files`, and folders of config or data
//! files, zipped for `--archives data.zip#data`. Both deterministic: sorted entries, the zip
//! epoch as every timestamp, fixed modes, so unchanged code gives the same digest and no
//! upload.
//!
//! `--py-files` zips go on `sys.path` and are imported by Python's `zipimport`, which loads
//! `.py` (and `.pyc`) only: a compiled extension (`.so`) inside one cannot be imported, so it
//! is refused here rather than failing on the cluster with `ModuleNotFoundError`. Native code
//! belongs in the requirements, as a wheel built for the nodes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::app_problem::AppProblem;
use super::archive::{write_zip, ArchiveEntry};
use crate::render::artifacts::Digest256;

/// A deterministic zip held in memory (user code and config are small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZippedFiles {
    pub zip: Vec<u8>,
    pub digest: Digest256,
    /// Entry names, sorted.
    pub entries: Vec<String>,
}

impl ZippedFiles {
    fn from_entries(entries: Vec<ArchiveEntry>) -> Result<ZippedFiles, String> {
        let mut names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        names.sort();
        let zip = write_zip(entries)?;
        Ok(ZippedFiles {
            digest: Digest256::of(&zip),
            zip,
            entries: names,
        })
    }
}

/// Compiled-module suffixes zipimport cannot load.
const COMPILED: [&str; 3] = [".so", ".pyd", ".dylib"];

fn is_compiled(name: &str) -> bool {
    COMPILED.iter().any(|s| name.ends_with(s)) || name.contains(".so.")
}

/// Left out of every zip: caches, VCS and OS litter.
fn is_litter(name: &str) -> bool {
    name == "__pycache__"
        || name.ends_with(".pyc")
        || name == ".git"
        || name == ".hg"
        || name == ".svn"
        || name == ".DS_Store"
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Every file under `dir` (recursively, symlinks followed once), as (path relative to `dir`
/// with `/`, absolute path), sorted. `skip` decides on each name (file or folder).
fn walk(dir: &Path, skip: &dyn Fn(&str) -> bool) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    let mut visited = BTreeSet::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((current, prefix)) = stack.pop() {
        let canonical = current
            .canonicalize()
            .map_err(|e| format!("{}: {e}", current.display()))?;
        if !visited.insert(canonical) {
            continue;
        }
        let entries =
            std::fs::read_dir(&current).map_err(|e| format!("{}: {e}", current.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", current.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if skip(&name) {
                continue;
            }
            let path = entry.path();
            let metadata =
                std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if metadata.is_dir() {
                stack.push((path, format!("{prefix}{name}/")));
            } else {
                out.push((format!("{prefix}{name}"), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, AppProblem> {
    std::fs::read(path).map_err(|e| {
        AppProblem::new(
            path.display().to_string(),
            format!("cannot be read: {e}"),
            "check the path and its permissions",
        )
    })
}

/// The zip for `--py-files`. Each input is (local path, name in the zip): a folder goes in
/// recursively under its name (`src/mypkg` as `mypkg` gives `mypkg/__init__.py`, …; the zip's
/// root holds the top-level package), a file at the root under its name. Dot-files,
/// `__pycache__` and `.pyc` are left out; compiled modules are refused.
pub fn py_files_zip(inputs: &[(PathBuf, String)]) -> Result<ZippedFiles, Vec<AppProblem>> {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (path, name) in inputs {
        let subject = path.display().to_string();
        let module = name.strip_suffix(".py").unwrap_or(name);
        if !is_identifier(module) {
            problems.push(AppProblem::new(
                &subject,
                format!("would be shipped as `{name}`, which `import` cannot name (a module name is letters, digits and `_`, not starting with a digit)"),
                format!("rename it (e.g. `{}`) in the folder and in the app's py_files", module.replace(|c: char| !c.is_alphanumeric(), "_")),
            ));
            continue;
        }
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                problems.push(AppProblem::new(
                    &subject,
                    format!("cannot be read: {e}"),
                    "check the path in the app's py_files (relative paths are relative to the spec's folder)",
                ));
                continue;
            }
        };
        let files = if metadata.is_dir() {
            match walk(path, &|n| n.starts_with('.') || is_litter(n)) {
                Ok(files) => files
                    .into_iter()
                    .map(|(relative, p)| (format!("{name}/{relative}"), p))
                    .collect(),
                Err(e) => {
                    problems.push(AppProblem::new(
                        &subject,
                        format!("cannot be listed: {e}"),
                        "check its permissions",
                    ));
                    continue;
                }
            }
        } else {
            vec![(name.clone(), path.clone())]
        };
        for (entry_name, file) in files {
            if is_compiled(&entry_name) {
                problems.push(AppProblem::new(
                    file.display().to_string(),
                    "is a compiled module: Python cannot import compiled modules (.so, .pyd, .dylib) from a --py-files zip (zipimport loads only .py and .pyc), so it would fail on the cluster with ModuleNotFoundError",
                    "take it out of the py_files and put the package that provides it in the requirements (a wheel built for the nodes); for your own extension, build a wheel on Amazon Linux and add it with --find-links",
                ));
                continue;
            }
            match read(&file) {
                Ok(bytes) => entries.push(ArchiveEntry {
                    name: entry_name,
                    bytes,
                    mode: 0o644,
                }),
                Err(problem) => problems.push(problem),
            }
        }
    }
    if problems.is_empty() && entries.is_empty() {
        problems.push(AppProblem::new(
            "py_files",
            "hold no file to ship",
            "list the folders of your packages and your module files",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    ZippedFiles::from_entries(entries).map_err(|e| {
        vec![AppProblem::new(
            "py_files",
            e,
            "give each folder and module a different name in the zip",
        )]
    })
}

/// A folder of config or data files, zipped with its contents at the root, for
/// `--archives data.zip#data` (so `./data/x.ini` exists in every container's working
/// directory). Caches and VCS/OS litter are left out; other dot-files are kept (config folders
/// use them); modes are 0644, or 0755 for files with an execute bit.
pub fn dir_archive(dir: &Path) -> Result<ZippedFiles, AppProblem> {
    use std::os::unix::fs::PermissionsExt;
    let subject = dir.display().to_string();
    let files = walk(dir, &is_litter).map_err(|e| {
        AppProblem::new(
            &subject,
            format!("cannot be listed: {e}"),
            "check the folder's path and permissions",
        )
    })?;
    if files.is_empty() {
        return Err(AppProblem::new(
            &subject,
            "is empty: there is nothing to ship",
            "put the files the application reads in it, or remove it from the app's archives",
        ));
    }
    let mut entries = Vec::new();
    for (name, path) in files {
        let executable = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        entries.push(ArchiveEntry {
            name,
            bytes: read(&path)?,
            mode: if executable { 0o755 } else { 0o644 },
        });
    }
    ZippedFiles::from_entries(entries)
        .map_err(|e| AppProblem::new(&subject, e, "report this as a bug"))
}

/// The top-level module names a set of py-files inputs provides (`mypkg`, `util` for
/// `util.py`).
pub fn shipped_module_names(inputs: &[(PathBuf, String)]) -> Vec<String> {
    let mut names: Vec<String> = inputs
        .iter()
        .map(|(_, name)| name.strip_suffix(".py").unwrap_or(name).to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The names of the folders and `.py` files beside the entry script (folders end with `/`),
/// for [`local_imports_not_shipped`].
pub fn listing_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                format!("{name}/")
            } else {
                name
            }
        })
        .collect();
    names.sort();
    names
}

/// The top-level modules an entry script imports.
pub fn imported_top_level_names(script: &str) -> Vec<String> {
    let mut names = BTreeSet::new();
    for line in script.lines() {
        let code = line.split('#').next().unwrap_or("");
        for statement in code.split(';') {
            let statement = statement.trim();
            if let Some(rest) = statement.strip_prefix("from ") {
                let module = rest.split_whitespace().next().unwrap_or("");
                if !module.starts_with('.') {
                    if let Some(top) = module.split('.').next().filter(|t| is_identifier(t)) {
                        names.insert(top.to_string());
                    }
                }
            } else if let Some(rest) = statement.strip_prefix("import ") {
                for part in rest.trim_end_matches('\\').split(',') {
                    let module = part.split_whitespace().next().unwrap_or("");
                    if let Some(top) = module.split('.').next().filter(|t| is_identifier(t)) {
                        names.insert(top.to_string());
                    }
                }
            }
        }
    }
    names.into_iter().collect()
}

/// Top-level names the entry script imports that exist beside it (a folder or a `.py` file in
/// `beside`, see [`listing_of`]) but are not shipped: they import locally and raise
/// `ModuleNotFoundError` on the cluster, where only the entry script and the py-files are.
pub fn local_imports_not_shipped(
    entry_script: &str,
    beside: &[String],
    shipped: &[String],
) -> Vec<String> {
    let local: BTreeSet<&str> = beside
        .iter()
        .filter_map(|name| {
            name.strip_suffix('/')
                .or_else(|| name.strip_suffix(".py"))
                .filter(|n| !n.starts_with('.') && *n != "__pycache__")
        })
        .collect();
    imported_top_level_names(entry_script)
        .into_iter()
        .filter(|name| local.contains(name.as_str()) && !shipped.contains(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "src/mypkg/__init__.py", "");
        write(dir.path(), "src/mypkg/core.py", "X = 1\n");
        write(dir.path(), "src/mypkg/data/schema.json", "{}\n");
        write(
            dir.path(),
            "src/mypkg/__pycache__/core.cpython-311.pyc",
            "junk",
        );
        write(dir.path(), "src/mypkg/.hidden", "junk");
        write(dir.path(), "util.py", "def f(): pass\n");
        dir
    }

    fn names_of(zip: &[u8]) -> Vec<(String, u32)> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        (0..archive.len())
            .map(|i| {
                let file = archive.by_index(i).unwrap();
                (file.name().unwrap().into_owned(), file.unix_mode().unwrap())
            })
            .collect()
    }

    #[test]
    fn packages_go_in_under_their_name_and_modules_at_the_root_without_litter() {
        let dir = project();
        let inputs = vec![
            (dir.path().join("src/mypkg"), "mypkg".to_string()),
            (dir.path().join("util.py"), "util.py".to_string()),
        ];
        let zipped = py_files_zip(&inputs).unwrap();
        assert_eq!(
            names_of(&zipped.zip),
            vec![
                ("mypkg/__init__.py".to_string(), 0o100644),
                ("mypkg/core.py".to_string(), 0o100644),
                ("mypkg/data/schema.json".to_string(), 0o100644),
                ("util.py".to_string(), 0o100644),
            ]
        );
        assert_eq!(shipped_module_names(&inputs), ["mypkg", "util"]);
        // Deterministic: again (after the clock moved) the same bytes; a change, other bytes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write(dir.path(), "src/mypkg/__pycache__/other.pyc", "more junk");
        assert_eq!(py_files_zip(&inputs).unwrap().digest, zipped.digest);
        write(dir.path(), "src/mypkg/core.py", "X = 2\n");
        assert_ne!(py_files_zip(&inputs).unwrap().digest, zipped.digest);
    }

    #[test]
    fn compiled_modules_and_unimportable_names_are_refused() {
        let dir = project();
        write(
            dir.path(),
            "src/mypkg/_speed.cpython-39-x86_64-linux-gnu.so",
            "\x7fELF",
        );
        write(dir.path(), "my-tool.py", "");
        let problems = py_files_zip(&[
            (dir.path().join("src/mypkg"), "mypkg".to_string()),
            (dir.path().join("my-tool.py"), "my-tool.py".to_string()),
            (dir.path().join("missing"), "missing".to_string()),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0]
            .subject
            .ends_with("_speed.cpython-39-x86_64-linux-gnu.so"));
        assert!(
            problems[0]
                .message
                .contains("zipimport loads only .py and .pyc"),
            "{}",
            problems[0]
        );
        assert!(problems[0].fix.contains("requirements"), "{}", problems[0]);
        assert!(
            problems[1]
                .message
                .contains("`my-tool.py`, which `import` cannot name"),
            "{}",
            problems[1]
        );
        assert!(problems[1].fix.contains("`my_tool`"), "{}", problems[1]);
        assert!(problems[2].subject.ends_with("missing"), "{}", problems[2]);
    }

    #[test]
    fn a_config_folder_is_zipped_with_its_contents_at_the_root() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "data_source.ini", "[db]\nhost = x\n");
        write(dir.path(), "nested/.env", "A=1\n");
        write(dir.path(), "run.sh", "#!/bin/sh\n");
        write(dir.path(), ".DS_Store", "junk");
        std::fs::set_permissions(
            dir.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let zipped = dir_archive(dir.path()).unwrap();
        assert_eq!(
            names_of(&zipped.zip),
            vec![
                ("data_source.ini".to_string(), 0o100644),
                ("nested/.env".to_string(), 0o100644),
                ("run.sh".to_string(), 0o100755),
            ]
        );
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&zipped.zip)).unwrap();
        let mut text = String::new();
        archive
            .by_name("data_source.ini")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "[db]\nhost = x\n");
        let empty = tempfile::tempdir().unwrap();
        assert!(dir_archive(empty.path())
            .unwrap_err()
            .message
            .contains("empty"));
    }

    #[test]
    fn imports_of_local_modules_that_are_not_shipped() {
        let script = "import os, sys\nimport helpers.text as t  # local\nfrom jobs.daily import run\nfrom . import sibling\nfrom pyspark.sql import SparkSession\nimport numpy as np; import util\n    import lazy_local\n";
        assert_eq!(
            imported_top_level_names(script),
            [
                "helpers",
                "jobs",
                "lazy_local",
                "numpy",
                "os",
                "pyspark",
                "sys",
                "util"
            ]
        );
        let beside = [
            "helpers/",
            "jobs/",
            "util.py",
            "lazy_local.py",
            "main.py",
            "README.md",
            "numpy_notes/",
        ]
        .map(String::from);
        assert_eq!(
            local_imports_not_shipped(script, &beside, &["jobs".to_string()]),
            ["helpers", "lazy_local", "util"]
        );
        let dir = project();
        assert_eq!(listing_of(dir.path()), ["src/", "util.py"]);
    }
}
