//! `emrship init [DIR]`: a starter PySpark project and its spec, which pass `emrship plan` and
//! `emrship run --local` as they are. The files come from `templates/init/`, with the project's
//! name filled in; nothing that exists is overwritten unless `--force`.

use std::path::{Path, PathBuf};

use super::{CliError, CommandResult, ExitStatus, InitArgs, Printer};

/// (path under the project, template text). `package/` becomes the Python package's name.
const FILES: &[(&str, &str)] = &[
    (
        "@NAME@.yaml",
        include_str!("../../templates/init/spec.yaml"),
    ),
    (
        "app/main.py",
        include_str!("../../templates/init/app/main.py"),
    ),
    (
        "app/@PACKAGE@/__init__.py",
        include_str!("../../templates/init/app/package/__init__.py"),
    ),
    (
        "app/@PACKAGE@/transform.py",
        include_str!("../../templates/init/app/package/transform.py"),
    ),
    (
        "app/conf/app.ini",
        include_str!("../../templates/init/app/conf/app.ini"),
    ),
    (
        "app/requirements.txt",
        include_str!("../../templates/init/app/requirements.txt"),
    ),
];

/// The names a starter project is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterNames {
    /// The spec's `name` (S3 keys, IAM roles): lowercase letters, digits and `-`.
    pub name: String,
    /// The Python package: the name with `_` for `-`.
    pub package: String,
}

impl StarterNames {
    /// From `--name`, else the folder's name, made valid; `None` when nothing usable is left.
    pub fn choose(explicit: Option<&str>, dir: &Path) -> Option<StarterNames> {
        // `.` names the current folder; a folder still to be made names itself.
        let from_dir = std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let raw = explicit.map(str::to_string).or(from_dir)?;
        let mut name: String = raw
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        name = name.trim_matches('-').to_string();
        while name.contains("--") {
            name = name.replace("--", "-");
        }
        name.truncate(40);
        let name = name.trim_end_matches('-').to_string();
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return None;
        }
        Some(StarterNames {
            package: name.replace('-', "_"),
            name,
        })
    }

    fn fill(&self, text: &str, spec_file: &str) -> String {
        text.replace("@NAME@", &self.name)
            .replace("@PACKAGE@", &self.package)
            .replace("@SPEC_FILE@", spec_file)
    }
}

pub fn run(args: InitArgs, out: Printer) -> CommandResult {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let names = StarterNames::choose(args.name.as_deref(), &dir).ok_or_else(|| {
        CliError::invalid(format!(
            "no project name can be made from {}",
            args.name.as_deref().map_or_else(|| dir.display().to_string(), str::to_string)
        ))
        .with_hint("give one with `--name my-job` (lowercase letters, digits and `-`, starting with a letter)")
    })?;
    let spec_file = dir.join(format!("{}.yaml", names.name));
    let planned: Vec<(PathBuf, String)> = FILES
        .iter()
        .map(|(path, text)| {
            (
                dir.join(names.fill(path, "")),
                names.fill(text, &format!("{}.yaml", names.name)),
            )
        })
        .collect();
    let existing: Vec<String> = planned
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(CliError::invalid(format!(
            "{} already exist{}: {}; nothing was written",
            if existing.len() == 1 {
                "a file"
            } else {
                "files"
            },
            if existing.len() == 1 { "s" } else { "" },
            existing.join(", ")
        ))
        .with_hint("choose an empty folder (`emrship init my-job`), or overwrite with --force"));
    }
    for (path, text) in &planned {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                CliError::failure(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        std::fs::write(path, text)
            .map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
        out.data(&path.display().to_string())?;
    }
    let spec = spec_file.display();
    out.info(&format!(
        "wrote the PySpark project `{}`; next:\n  emrship plan {spec}\n  emrship run {spec} --local\n  (set your buckets in {spec}, then) emrship deploy {spec} && emrship provision {spec} --wait",
        names.name
    ));
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_flag_or_the_folder_and_are_made_valid() {
        let names = StarterNames::choose(Some("My Sales_Report"), Path::new(".")).unwrap();
        assert_eq!(names.name, "my-sales-report");
        assert_eq!(names.package, "my_sales_report");
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("Daily--Totals");
        std::fs::create_dir(&folder).unwrap();
        let names = StarterNames::choose(None, &folder).unwrap();
        assert_eq!(names.name, "daily-totals");
        assert!(StarterNames::choose(Some("2024"), Path::new(".")).is_none());
    }
}
