//! A Python project's dependencies, from whichever file it keeps them in, as one requirements
//! text for `pip install -r`: the text is also the dependency cache's key (with the target),
//! so it holds no absolute path of the user's checkout except `--find-links` directories.
//!
//! | source | what is taken |
//! | --- | --- |
//! | `requirements*.txt` | every line as written (`--hash` options, index options), `-r` includes inlined relative to the including file |
//! | `pyproject.toml` | `[project].dependencies` (PEP 621) |
//! | `uv.lock` | the registry packages the project needs: its dependency graph walked from the project itself, dev groups left out, `name==version` with the edge's marker |
//! | `poetry.lock` | the `main` group's packages, `name==version` with their markers |
//!
//! Refused, with the fix: editable installs, local paths and VCS URLs (pip would build them
//! from source on this machine, for this machine's platform), constraint files and
//! `--no-binary` (the cluster build takes wheels only).
//!
//! The parsers are pure: `-r` includes are read through the caller's function, so the unit
//! tests need no files. [`read_requirements`] is the one that reads from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::app_problem::AppProblem;

/// One requirements text for pip, and what the user should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedRequirements {
    /// A pip requirements file: one requirement or pip option per line, ending in a newline.
    pub text: String,
    /// The file it came from, for messages.
    pub origin: String,
    /// Things that do not stop the build but the user should know (unpinned requirements,
    /// local projects left out).
    pub notes: Vec<AppProblem>,
}

/// Which kind of file a requirements source is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequirementsKind {
    RequirementsTxt,
    PyprojectToml,
    UvLock,
    PoetryLock,
}

impl RequirementsKind {
    /// `pyproject.toml`, `uv.lock`, `poetry.lock` by exact name; any other `*.txt` or `*.in`
    /// is a pip requirements file.
    pub fn of_path(path: &Path) -> Option<RequirementsKind> {
        let name = path.file_name()?.to_str()?;
        match name {
            "pyproject.toml" => Some(RequirementsKind::PyprojectToml),
            "uv.lock" => Some(RequirementsKind::UvLock),
            "poetry.lock" => Some(RequirementsKind::PoetryLock),
            _ if name.ends_with(".txt") || name.ends_with(".in") => {
                Some(RequirementsKind::RequirementsTxt)
            }
            _ => None,
        }
    }
}

/// Reads `path` (and its `-r` includes) into one requirements text; the kind comes from the
/// file name (see [`RequirementsKind::of_path`]).
pub fn read_requirements(path: &Path) -> Result<PinnedRequirements, Vec<AppProblem>> {
    let origin = path.display().to_string();
    let kind = RequirementsKind::of_path(path).ok_or_else(|| {
        vec![AppProblem::new(
            &origin,
            "is not a requirements source emrship reads",
            "point at a requirements.txt (any *.txt), a pyproject.toml, a uv.lock or a poetry.lock",
        )]
    })?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let text = read(path).map_err(|e| vec![AppProblem::new(&origin, e, "check the path")])?;
    match kind {
        RequirementsKind::RequirementsTxt => {
            let mut read_include = read;
            from_requirements_txt(&text, path, &mut read_include)
        }
        RequirementsKind::PyprojectToml => from_pyproject(&text, &origin),
        RequirementsKind::UvLock => from_uv_lock(&text, &origin),
        RequirementsKind::PoetryLock => from_poetry_lock(&text, &origin),
    }
}

const VCS_PREFIXES: [&str; 4] = ["git+", "hg+", "svn+", "bzr+"];

/// Why a requirement cannot be installed from wheels for another platform, if it cannot.
fn refused_requirement(requirement: &str) -> Option<(&'static str, &'static str)> {
    let lower = requirement.trim().to_ascii_lowercase();
    let target = match lower.split_once(" @ ").or_else(|| lower.split_once('@')) {
        // `name @ url`; a bare `@` inside a URL's user part is rare and still a URL.
        Some((name, url)) if !name.contains("://") && !name.contains('/') => url.trim().to_string(),
        _ => lower.clone(),
    };
    if VCS_PREFIXES.iter().any(|p| target.starts_with(p)) {
        return Some((
            "is a version-control URL: pip would build it from source on this machine, for this machine's platform",
            "publish it as a wheel (or build one with `pip wheel` on Amazon Linux), put the wheel in a directory and add `--find-links <dir>` with a `name==version` line",
        ));
    }
    if target.starts_with("file:")
        || target.starts_with('.')
        || target.starts_with('/')
        || target.starts_with('~')
        || (!target.contains("://")
            && (target.ends_with(".whl")
                || target.ends_with(".tar.gz")
                || target.ends_with(".zip")))
    {
        return Some((
            "is a local path: a local project is the application's own code, not a dependency",
            "ship your own modules with the app's py_files; for a prebuilt wheel, put it in a directory, add `--find-links <dir>` and require it by `name==version`",
        ));
    }
    None
}

/// The distribution name at the start of a PEP 508 requirement.
pub fn requirement_name(requirement: &str) -> &str {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(requirement.len());
    &requirement[..end]
}

/// A requirement is pinned when it names one version (`==1.2.3` without wildcard, `===`) or a
/// URL.
fn is_pinned(requirement: &str) -> bool {
    let spec = requirement.split(';').next().unwrap_or("");
    (spec.contains("==") && !spec.contains(".*") && !spec.contains(',')) || spec.contains(" @ ")
}

fn unpinned_note(origin: &str, names: &[String]) -> Option<AppProblem> {
    if names.is_empty() {
        return None;
    }
    Some(AppProblem::new(
        origin,
        format!(
            "{} not pinned to one version ({}): the first build's versions are cached and reused until this file changes, and a fresh machine may resolve newer ones",
            if names.len() == 1 { "1 requirement is" } else { "some requirements are" },
            names.join(", ")
        ),
        "pin every requirement with `==` (e.g. `pip freeze`, `uv pip compile`, or use a uv.lock / poetry.lock)",
    ))
}

/// Splits a requirements file into logical lines: `\` continuations joined, comments removed.
/// Each line comes with its 1-based starting line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (index, raw) in text.lines().enumerate() {
        if current.is_empty() {
            start = index + 1;
        }
        // pip's comment rule: `#` at the start of a line or after whitespace.
        let without_comment = match raw
            .char_indices()
            .find(|&(i, c)| c == '#' && (i == 0 || raw[..i].ends_with(char::is_whitespace)))
        {
            Some((i, _)) => &raw[..i],
            None => raw,
        };
        if let Some(continued) = without_comment.trim_end().strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(without_comment);
        let line = current.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() {
            lines.push((start, line));
        }
        current.clear();
    }
    let line = current.split_whitespace().collect::<Vec<_>>().join(" ");
    if !line.is_empty() {
        lines.push((start, line));
    }
    lines
}

/// The value of `-x value`, `-xvalue`, `--long value` or `--long=value`, if `line` is that
/// option.
fn option_value<'a>(line: &'a str, short: &str, long: &str) -> Option<&'a str> {
    for name in [long, short] {
        if name.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix(name) {
            if let Some(value) = rest.strip_prefix('=') {
                return Some(value.trim());
            }
            if rest.starts_with(' ') {
                return Some(rest.trim());
            }
            if name == short && !rest.is_empty() && !rest.starts_with('-') {
                return Some(rest.trim());
            }
        }
    }
    None
}

/// A pip requirements file, `-r` includes inlined (read with `read`, relative to the including
/// file). `path` is the file's own path: its directory anchors includes and `--find-links`.
pub fn from_requirements_txt(
    text: &str,
    path: &Path,
    read: &mut dyn FnMut(&Path) -> Result<String, String>,
) -> Result<PinnedRequirements, Vec<AppProblem>> {
    let origin = path.display().to_string();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut unpinned = Vec::new();
    let mut seen = vec![path.to_path_buf()];
    requirements_txt_into(
        text,
        path,
        read,
        &mut seen,
        &mut out,
        &mut problems,
        &mut unpinned,
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    if !out.iter().any(|line: &String| !line.starts_with('-')) {
        return Err(vec![AppProblem::new(
            &origin,
            "names no requirement",
            "list the packages the application imports, one per line (`name==version`)",
        )]);
    }
    Ok(PinnedRequirements {
        text: out.iter().map(|l| format!("{l}\n")).collect(),
        notes: unpinned_note(&origin, &unpinned).into_iter().collect(),
        origin,
    })
}

fn requirements_txt_into(
    text: &str,
    path: &Path,
    read: &mut dyn FnMut(&Path) -> Result<String, String>,
    seen: &mut Vec<PathBuf>,
    out: &mut Vec<String>,
    problems: &mut Vec<AppProblem>,
    unpinned: &mut Vec<String>,
) {
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    for (number, line) in logical_lines(text) {
        let at = format!("{}:{number}", path.display());
        if let Some(include) = option_value(&line, "-r", "--requirement") {
            let included = lexically_normal(&dir.join(include));
            if seen.contains(&included) {
                problems.push(AppProblem::new(
                    &at,
                    format!("includes `{include}` again (an include cycle)"),
                    "remove the repeated `-r` line",
                ));
                continue;
            }
            match read(&included) {
                Ok(text) => {
                    seen.push(included.clone());
                    requirements_txt_into(&text, &included, read, seen, out, problems, unpinned);
                    seen.pop();
                }
                Err(error) => problems.push(AppProblem::new(
                    &at,
                    format!("includes `{include}`, which cannot be read ({error})"),
                    format!(
                        "`-r` paths are relative to the including file's folder ({})",
                        dir.display()
                    ),
                )),
            }
            continue;
        }
        if option_value(&line, "-c", "--constraint").is_some() {
            problems.push(AppProblem::new(
                &at,
                "is a constraints file (`-c`); emrship builds from one requirements text",
                "pin the versions in the requirements file itself (`name==version`)",
            ));
            continue;
        }
        if let Some(target) = option_value(&line, "-e", "--editable") {
            problems.push(AppProblem::new(
                &at,
                format!("`-e {target}` is an editable install: a local project is the application's own code, and pip would build it for this machine"),
                "ship your own modules with the app's py_files, and list only published dependencies here",
            ));
            continue;
        }
        if line.starts_with("--no-binary") {
            problems.push(AppProblem::new(
                &at,
                "asks for source builds (`--no-binary`); a build for the cluster takes wheels only (pip cannot compile for another platform)",
                "remove the line; for a package without wheels, build one on Amazon Linux and add its directory with `--find-links`",
            ));
            continue;
        }
        if let Some(links) = option_value(&line, "-f", "--find-links") {
            // pip reads a relative --find-links relative to the requirements file; the text is
            // pip's input from another folder, so the path is made absolute here.
            let value = if links.contains("://") || Path::new(links).is_absolute() {
                links.to_string()
            } else {
                dir.join(links).display().to_string()
            };
            out.push(format!("--find-links {value}"));
            continue;
        }
        if line.starts_with('-') {
            // Index options, --pre, --prefer-binary, --require-hashes, --only-binary: pip's.
            out.push(line);
            continue;
        }
        let requirement = line.split(" --").next().unwrap_or(&line);
        if let Some((why, fix)) = refused_requirement(requirement) {
            problems.push(AppProblem::new(&at, format!("`{requirement}` {why}"), fix));
            continue;
        }
        if !is_pinned(requirement) {
            unpinned.push(requirement_name(requirement).to_string());
        }
        out.push(line);
    }
}

/// `a/b/../c` → `a/c`, without touching the disk (the parsers are pure); enough for include
/// paths and for noticing an include cycle.
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The 1-based line of a TOML parse error, for `file:line` messages.
fn toml_error(origin: &str, text: &str, error: toml::de::Error) -> AppProblem {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let at = match line {
        Some(line) => format!("{origin}:{line}"),
        None => origin.to_string(),
    };
    AppProblem::new(
        at,
        format!("is not valid TOML: {}", error.message()),
        "fix the syntax (the file must parse as TOML 1.0)",
    )
}

fn parse_toml(origin: &str, text: &str) -> Result<toml::Table, Vec<AppProblem>> {
    text.parse::<toml::Table>()
        .map_err(|e| vec![toml_error(origin, text, e)])
}

/// `[project].dependencies` of a PEP 621 `pyproject.toml`.
pub fn from_pyproject(text: &str, origin: &str) -> Result<PinnedRequirements, Vec<AppProblem>> {
    let document = parse_toml(origin, text)?;
    let Some(project) = document.get("project").and_then(|p| p.as_table()) else {
        let fix = if document.get("tool").and_then(|t| t.get("poetry")).is_some() {
            "this is a Poetry project: point at its poetry.lock (run `poetry lock` first)"
        } else {
            "add a [project] table with `dependencies = [\"name==version\", …]`, or point at a requirements.txt"
        };
        return Err(vec![AppProblem::new(
            origin,
            "has no [project] table, so it names no dependencies",
            fix,
        )]);
    };
    let dynamic = project
        .get("dynamic")
        .and_then(|d| d.as_array())
        .is_some_and(|d| d.iter().any(|v| v.as_str() == Some("dependencies")));
    if dynamic {
        return Err(vec![AppProblem::new(
            origin,
            "declares its dependencies as dynamic (computed by the build backend), so they cannot be read",
            "list them in [project].dependencies, or point at a requirements.txt or lock file",
        )]);
    }
    let Some(dependencies) = project.get("dependencies") else {
        return Err(vec![AppProblem::new(
            origin,
            "has no [project].dependencies",
            "add `dependencies = [\"name==version\", …]` under [project]",
        )]);
    };
    let Some(dependencies) = dependencies.as_array() else {
        return Err(vec![AppProblem::new(
            origin,
            "[project].dependencies is not a list",
            "write it as `dependencies = [\"name==version\", …]`",
        )]);
    };
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut unpinned = Vec::new();
    for dependency in dependencies {
        let Some(requirement) = dependency.as_str() else {
            problems.push(AppProblem::new(
                origin,
                format!("[project].dependencies holds `{dependency:?}`, which is not a string"),
                "write each dependency as a PEP 508 string (\"name==version\")",
            ));
            continue;
        };
        let requirement = requirement.trim();
        if let Some((why, fix)) = refused_requirement(requirement) {
            problems.push(AppProblem::new(
                origin,
                format!("`{requirement}` {why}"),
                fix,
            ));
            continue;
        }
        if !is_pinned(requirement) {
            unpinned.push(requirement_name(requirement).to_string());
        }
        lines.push(requirement.to_string());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PinnedRequirements {
        text: lines.iter().map(|l| format!("{l}\n")).collect(),
        origin: origin.to_string(),
        notes: unpinned_note(origin, &unpinned).into_iter().collect(),
    })
}

/// One `[[package]]` of a uv.lock, with what the graph walk needs.
struct UvPackage<'a> {
    name: &'a str,
    version: Option<&'a str>,
    source: Option<&'a toml::Table>,
    table: &'a toml::Table,
}

impl UvPackage<'_> {
    fn source_kind(&self) -> &str {
        let Some(source) = self.source else {
            return "registry";
        };
        for kind in [
            "registry",
            "editable",
            "virtual",
            "directory",
            "path",
            "git",
            "url",
        ] {
            if source.contains_key(kind) {
                return kind;
            }
        }
        "unknown"
    }

    fn is_local_project(&self) -> bool {
        matches!(self.source_kind(), "editable" | "virtual" | "directory")
    }
}

/// Normalized distribution name (PEP 503), for matching dependency edges to packages.
fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut last_sep = false;
    for c in name.chars() {
        if c == '-' || c == '_' || c == '.' {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

/// The registry packages a uv project needs (not its dev groups), from its universal lock.
///
/// The walk starts at the project's own packages (editable or virtual sources) and follows
/// `dependencies` (and the optional-dependency groups an edge asks for with `extra`). A package
/// reached only through edges with markers keeps them (`; marker or marker`), so a
/// Windows-only or older-Python-only package stays out of the cluster's build.
pub fn from_uv_lock(text: &str, origin: &str) -> Result<PinnedRequirements, Vec<AppProblem>> {
    let document = parse_toml(origin, text)?;
    let packages: Vec<UvPackage> = document
        .get("package")
        .and_then(|p| p.as_array())
        .map(|array| {
            array
                .iter()
                .filter_map(|p| p.as_table())
                .filter_map(|table| {
                    Some(UvPackage {
                        name: table.get("name")?.as_str()?,
                        version: table.get("version").and_then(|v| v.as_str()),
                        source: table.get("source").and_then(|s| s.as_table()),
                        table,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if packages.is_empty() {
        return Err(vec![AppProblem::new(
            origin,
            "has no [[package]] entries",
            "run `uv lock` in the project and point at the result",
        )]);
    }
    let find = |name: &str, version: Option<&str>| -> Option<usize> {
        let wanted = normalize(name);
        packages.iter().position(|p| {
            normalize(p.name) == wanted && (version.is_none() || p.version == version)
        })
    };
    let roots: Vec<usize> = (0..packages.len())
        .filter(|&i| matches!(packages[i].source_kind(), "editable" | "virtual"))
        .collect();
    let mut notes = Vec::new();
    // For each reached package: the markers of the edges that reach it; `None` in the set means
    // an unconditional edge.
    let mut reached: BTreeMap<usize, BTreeSet<Option<String>>> = BTreeMap::new();
    if roots.is_empty() {
        notes.push(AppProblem::new(
            origin,
            "has no editable or virtual project package to start from, so every registry package in it is installed (dev groups included)",
            "run `uv lock` from the project folder (with a [project] table in pyproject.toml)",
        ));
        for i in 0..packages.len() {
            reached.entry(i).or_default().insert(None);
        }
    } else {
        let mut queue: Vec<(usize, Vec<String>)> = Vec::new();
        for &root in &roots {
            reached.entry(root).or_default().insert(None);
            queue.push((root, Vec::new()));
        }
        let mut expanded: BTreeSet<(usize, Vec<String>)> = BTreeSet::new();
        while let Some((index, extras)) = queue.pop() {
            if !expanded.insert((index, extras.clone())) {
                continue;
            }
            let table = packages[index].table;
            let mut edges: Vec<&toml::Value> = table
                .get("dependencies")
                .and_then(|d| d.as_array())
                .map(|d| d.iter().collect())
                .unwrap_or_default();
            if let Some(optional) = table
                .get("optional-dependencies")
                .and_then(|o| o.as_table())
            {
                for extra in &extras {
                    if let Some(group) = optional.get(extra).and_then(|g| g.as_array()) {
                        edges.extend(group.iter());
                    }
                }
            }
            for edge in edges {
                let Some(edge) = edge.as_table() else {
                    continue;
                };
                let Some(name) = edge.get("name").and_then(|n| n.as_str()) else {
                    continue;
                };
                let version = edge.get("version").and_then(|v| v.as_str());
                let Some(target) = find(name, version) else {
                    continue;
                };
                let marker = edge
                    .get("marker")
                    .and_then(|m| m.as_str())
                    .map(str::to_string);
                reached.entry(target).or_default().insert(marker);
                let extras: Vec<String> = edge
                    .get("extra")
                    .and_then(|e| e.as_array())
                    .map(|e| {
                        e.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                queue.push((target, Vec::new()));
                if !extras.is_empty() {
                    queue.push((target, extras));
                }
            }
        }
    }
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (index, markers) in reached {
        let package = &packages[index];
        let requirement = match package.source_kind() {
            "registry" => match package.version {
                Some(version) => format!("{}=={version}", package.name),
                None => package.name.to_string(),
            },
            "url" => {
                let url = package
                    .source
                    .and_then(|s| s.get("url"))
                    .and_then(|u| u.as_str())
                    .unwrap_or("");
                format!("{} @ {url}", package.name)
            }
            _ if roots.contains(&index) => continue,
            _ if package.is_local_project() => {
                notes.push(AppProblem::new(
                    format!("{origin}: {}", package.name),
                    "is a local project (a workspace member or path dependency); it is not installed with the dependencies",
                    "ship its modules with the app's py_files",
                ));
                continue;
            }
            kind => {
                problems.push(AppProblem::new(
                    format!("{origin}: {}", package.name),
                    format!("comes from a {kind} source; pip would build it from source on this machine, for this machine's platform"),
                    "publish it as a wheel (or build one on Amazon Linux), put it in a --find-links directory and depend on `name==version`",
                ));
                continue;
            }
        };
        lines.push(with_markers(requirement, &markers));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PinnedRequirements {
        text: lines.iter().map(|l| format!("{l}\n")).collect(),
        origin: origin.to_string(),
        notes,
    })
}

/// `requirement ; (m1) or (m2)` when every edge that reaches it has a marker.
fn with_markers(requirement: String, markers: &BTreeSet<Option<String>>) -> String {
    if markers.is_empty() || markers.contains(&None) {
        return requirement;
    }
    let markers: Vec<&str> = markers.iter().flatten().map(String::as_str).collect();
    if markers.len() == 1 {
        format!("{requirement} ; {}", markers[0])
    } else {
        let ored: Vec<String> = markers.iter().map(|m| format!("({m})")).collect();
        format!("{requirement} ; {}", ored.join(" or "))
    }
}

/// The `main` group of a poetry.lock, `name==version` with its markers.
///
/// Lock format 2.1 (Poetry 2) lists each package's `groups`; format 1.x has `category`. Format
/// 2.0 (Poetry 1.5–1.8) has neither, so every package is taken, with a note. Optional packages
/// (pulled only by extras) are left out.
pub fn from_poetry_lock(text: &str, origin: &str) -> Result<PinnedRequirements, Vec<AppProblem>> {
    let document = parse_toml(origin, text)?;
    let Some(packages) = document.get("package").and_then(|p| p.as_array()) else {
        return Err(vec![AppProblem::new(
            origin,
            "has no [[package]] entries",
            "run `poetry lock` in the project and point at the result",
        )]);
    };
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let mut ungrouped = 0;
    for package in packages.iter().filter_map(|p| p.as_table()) {
        let (Some(name), Some(version)) = (
            package.get("name").and_then(|n| n.as_str()),
            package.get("version").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let in_main = if let Some(groups) = package.get("groups").and_then(|g| g.as_array()) {
            groups.iter().any(|g| g.as_str() == Some("main"))
        } else if let Some(category) = package.get("category").and_then(|c| c.as_str()) {
            category == "main"
        } else {
            ungrouped += 1;
            true
        };
        if !in_main || package.get("optional").and_then(|o| o.as_bool()) == Some(true) {
            continue;
        }
        let source = package.get("source").and_then(|s| s.as_table());
        let kind = source
            .and_then(|s| s.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("registry");
        let requirement = match kind {
            "registry" | "legacy" => format!("{name}=={version}"),
            "url" => format!(
                "{name} @ {}",
                source
                    .and_then(|s| s.get("url"))
                    .and_then(|u| u.as_str())
                    .unwrap_or("")
            ),
            "directory" => {
                notes.push(AppProblem::new(
                    format!("{origin}: {name}"),
                    "is a local project (a path dependency); it is not installed with the dependencies",
                    "ship its modules with the app's py_files",
                ));
                continue;
            }
            other => {
                problems.push(AppProblem::new(
                    format!("{origin}: {name}"),
                    format!("comes from a {other} source; pip would build it from source on this machine, for this machine's platform"),
                    "publish it as a wheel (or build one on Amazon Linux), put it in a --find-links directory and depend on `name==version`",
                ));
                continue;
            }
        };
        let marker = match package.get("markers") {
            Some(toml::Value::String(marker)) => Some(marker.clone()),
            Some(toml::Value::Table(by_group)) => by_group
                .get("main")
                .and_then(|m| m.as_str())
                .map(str::to_string),
            _ => None,
        };
        lines.push(match marker {
            Some(marker) => format!("{requirement} ; {marker}"),
            None => requirement,
        });
    }
    if ungrouped > 0 {
        notes.push(AppProblem::new(
            origin,
            format!("does not say which of its packages are dev-only (lock format 2.0 has no `groups`), so all {ungrouped} are installed"),
            "lock with Poetry 2 (lock format 2.1 records each package's groups), or export the main group: `poetry export --only main -o requirements.txt`",
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if lines.is_empty() {
        return Err(vec![AppProblem::new(
            origin,
            "has no package in the main group",
            "add the application's dependencies with `poetry add` and lock again",
        )]);
    }
    Ok(PinnedRequirements {
        text: lines.iter().map(|l| format!("{l}\n")).collect(),
        origin: origin.to_string(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(text: &str, files: &[(&str, &str)]) -> Result<PinnedRequirements, Vec<AppProblem>> {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        let mut read = |p: &Path| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| "No such file or directory".to_string())
        };
        from_requirements_txt(text, Path::new("/proj/requirements.txt"), &mut read)
    }

    #[test]
    fn requirements_txt_keeps_hashes_and_options_and_inlines_includes() {
        let text = "# deps\n--index-url https://pypi.org/simple\nnumpy==2.0.2 \\\n    --hash=sha256:aaa \\\n    --hash=sha256:bbb\n-r more/base.txt  # shared\nsix==1.17.0 ; python_version >= \"3\"\n";
        let pinned = txt(
            text,
            &[
                ("/proj/more/base.txt", "pyyaml==6.0.2\n-r ../common.txt\n"),
                ("/proj/common.txt", "idna==3.10\n"),
            ],
        )
        .unwrap();
        assert_eq!(
            pinned.text,
            "--index-url https://pypi.org/simple\nnumpy==2.0.2 --hash=sha256:aaa --hash=sha256:bbb\npyyaml==6.0.2\nidna==3.10\nsix==1.17.0 ; python_version >= \"3\"\n"
        );
        assert!(pinned.notes.is_empty(), "{:?}", pinned.notes);
    }

    #[test]
    fn requirements_txt_refuses_editables_paths_vcs_and_constraints_with_their_lines() {
        let problems = txt(
            "six==1.17.0\n-e .\n./libs/mylib\nfoo @ git+https://github.com/x/foo@v1\ngit+https://github.com/x/bar\n-c constraints.txt\nbar @ file:///tmp/bar\nwheels/baz-1.0-py3-none-any.whl\n--no-binary :all:\n",
            &[],
        )
        .unwrap_err();
        let at: Vec<&str> = problems.iter().map(|p| p.subject.as_str()).collect();
        assert_eq!(
            at,
            [2, 3, 4, 5, 6, 7, 8, 9]
                .map(|n| format!("/proj/requirements.txt:{n}"))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
        assert!(problems[0].message.contains("editable"), "{}", problems[0]);
        assert!(
            problems[1].message.contains("local path"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].message.contains("version-control URL"),
            "{}",
            problems[2]
        );
        assert!(
            problems[3].message.contains("version-control URL"),
            "{}",
            problems[3]
        );
        assert!(
            problems[4].message.contains("constraints"),
            "{}",
            problems[4]
        );
        assert!(
            problems[5].message.contains("local path"),
            "{}",
            problems[5]
        );
        assert!(
            problems[6].message.contains("local path"),
            "{}",
            problems[6]
        );
        assert!(
            problems[7].message.contains("--no-binary"),
            "{}",
            problems[7]
        );
        assert!(problems.iter().all(|p| !p.fix.is_empty()));
    }

    #[test]
    fn requirements_txt_missing_include_and_cycle_are_problems() {
        let problems = txt("-r nope.txt\n", &[]).unwrap_err();
        assert_eq!(problems[0].subject, "/proj/requirements.txt:1");
        assert!(
            problems[0].message.contains("`nope.txt`"),
            "{}",
            problems[0]
        );
        let problems = txt("-r a.txt\n", &[("/proj/a.txt", "-r requirements.txt\n")]).unwrap_err();
        assert!(problems[0].message.contains("cycle"), "{}", problems[0]);
        assert_eq!(problems[0].subject, "/proj/a.txt:1");
    }

    #[test]
    fn relative_find_links_become_absolute_and_unpinned_requirements_are_noted() {
        let pinned = txt(
            "--find-links wheels\n-f https://example.org/w\nrequests>=2\nnumpy\nsix==1.*\nidna==3.10\n",
            &[],
        )
        .unwrap();
        assert!(
            pinned
                .text
                .starts_with("--find-links /proj/wheels\n--find-links https://example.org/w\n"),
            "{}",
            pinned.text
        );
        assert_eq!(pinned.notes.len(), 1);
        assert!(
            pinned.notes[0].message.contains("(requests, numpy, six)"),
            "{}",
            pinned.notes[0]
        );
    }

    #[test]
    fn a_requirements_file_with_only_options_names_nothing() {
        let problems = txt("# nothing\n--pre\n", &[]).unwrap_err();
        assert!(problems[0].message.contains("names no requirement"));
    }

    #[test]
    fn pyproject_dependencies_and_its_refusals() {
        let pinned = from_pyproject(
            "[project]\nname = \"app\"\ndependencies = [\"numpy==2.0.2\", \"tomli>=2 ; python_version < '3.11'\"]\n[project.optional-dependencies]\ndev = [\"pytest\"]\n",
            "pyproject.toml",
        )
        .unwrap();
        assert_eq!(
            pinned.text,
            "numpy==2.0.2\ntomli>=2 ; python_version < '3.11'\n"
        );
        assert!(
            pinned.notes[0].message.contains("(tomli)"),
            "{:?}",
            pinned.notes
        );

        let problems =
            from_pyproject("[tool.poetry]\nname = \"x\"\n", "pyproject.toml").unwrap_err();
        assert!(problems[0].fix.contains("poetry.lock"), "{}", problems[0]);
        let problems = from_pyproject(
            "[project]\ndynamic = [\"dependencies\"]\n",
            "pyproject.toml",
        )
        .unwrap_err();
        assert!(problems[0].message.contains("dynamic"), "{}", problems[0]);
        let problems = from_pyproject(
            "[project]\ndependencies = [\"lib @ git+https://x/lib\"]\n",
            "pyproject.toml",
        )
        .unwrap_err();
        assert!(
            problems[0].message.contains("version-control"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn toml_syntax_errors_name_the_line() {
        let problems = from_pyproject(
            "[project]\nname = \"a\"\ndependencies = [\n",
            "pyproject.toml",
        )
        .unwrap_err();
        assert!(
            problems[0].subject.starts_with("pyproject.toml:"),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].message.contains("not valid TOML"),
            "{}",
            problems[0]
        );
        let problems = from_uv_lock("version = 1\nname = = 2\n", "uv.lock").unwrap_err();
        assert_eq!(problems[0].subject, "uv.lock:2");
    }

    const UV_LOCK: &str = r#"
version = 1
requires-python = ">=3.9"
resolution-markers = ["python_full_version >= '3.10'", "python_full_version < '3.10'"]

[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "numpy", version = "2.0.2", source = { registry = "https://pypi.org/simple" }, marker = "python_full_version < '3.10'" },
    { name = "numpy", version = "2.2.6", source = { registry = "https://pypi.org/simple" }, marker = "python_full_version >= '3.10'" },
    { name = "requests", extra = ["socks"] },
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "mylib" },
]

[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "numpy"
version = "2.0.2"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "numpy"
version = "2.2.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "requests"
version = "2.32.3"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "idna" }, { name = "colorama" }]

[package.optional-dependencies]
socks = [{ name = "PySocks" }]

[[package]]
name = "idna"
version = "3.10"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pysocks"
version = "1.7.1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "mylib"
version = "0.2.0"
source = { directory = "libs/mylib" }

[[package]]
name = "pytest"
version = "8.3.4"
source = { registry = "https://pypi.org/simple" }
"#;

    #[test]
    fn uv_lock_walks_the_project_graph_without_dev_groups_and_keeps_edge_markers() {
        let pinned = from_uv_lock(UV_LOCK, "uv.lock").unwrap();
        assert_eq!(
            pinned.text,
            "numpy==2.0.2 ; python_full_version < '3.10'\n\
             numpy==2.2.6 ; python_full_version >= '3.10'\n\
             requests==2.32.3\n\
             idna==3.10\n\
             pysocks==1.7.1\n\
             colorama==0.4.6\n"
        );
        // colorama is reached unconditionally through requests, so its win32 marker goes.
        assert_eq!(pinned.notes.len(), 1);
        assert_eq!(pinned.notes[0].subject, "uv.lock: mylib");
        assert!(!pinned.text.contains("pytest"));
    }

    #[test]
    fn uv_lock_refuses_git_sources_and_falls_back_without_a_project() {
        let lock = "version = 1\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\nsource = { virtual = \".\" }\ndependencies = [{ name = \"foo\" }]\n[[package]]\nname = \"foo\"\nversion = \"1.0\"\nsource = { git = \"https://github.com/x/foo?rev=v1#abc\" }\n";
        let problems = from_uv_lock(lock, "uv.lock").unwrap_err();
        assert_eq!(problems[0].subject, "uv.lock: foo");
        assert!(
            problems[0].message.contains("git source"),
            "{}",
            problems[0]
        );

        let lock = "version = 1\n[[package]]\nname = \"six\"\nversion = \"1.17.0\"\nsource = { registry = \"https://pypi.org/simple\" }\n";
        let pinned = from_uv_lock(lock, "uv.lock").unwrap();
        assert_eq!(pinned.text, "six==1.17.0\n");
        assert!(pinned.notes[0].message.contains("dev groups included"));
    }

    #[test]
    fn poetry_lock_takes_the_main_group_with_markers() {
        let lock = r#"
[[package]]
name = "numpy"
version = "2.0.2"
optional = false
python-versions = ">=3.9"
groups = ["main"]

[[package]]
name = "pytest"
version = "8.3.4"
optional = false
groups = ["dev"]

[[package]]
name = "tomli"
version = "2.2.1"
optional = false
groups = ["main", "dev"]
markers = {main = "python_version < \"3.11\"", dev = "python_version < \"3.11\""}

[[package]]
name = "pysocks"
version = "1.7.1"
optional = true
groups = ["main"]

[[package]]
name = "old"
version = "1.0"
category = "dev"

[metadata]
lock-version = "2.1"
"#;
        let pinned = from_poetry_lock(lock, "poetry.lock").unwrap();
        assert_eq!(
            pinned.text,
            "numpy==2.0.2\ntomli==2.2.1 ; python_version < \"3.11\"\n"
        );
        assert!(pinned.notes.is_empty());

        let lock = "[[package]]\nname = \"six\"\nversion = \"1.17.0\"\noptional = false\n[[package]]\nname = \"lib\"\nversion = \"1\"\noptional = false\n[package.source]\ntype = \"git\"\nurl = \"https://x/lib\"\n";
        let problems = from_poetry_lock(lock, "poetry.lock").unwrap_err();
        assert_eq!(problems[0].subject, "poetry.lock: lib");
        let lock = "[[package]]\nname = \"six\"\nversion = \"1.17.0\"\noptional = false\n";
        let pinned = from_poetry_lock(lock, "poetry.lock").unwrap();
        assert!(pinned.notes[0].message.contains("all 1 are installed"));
    }

    #[test]
    fn kinds_by_file_name() {
        use RequirementsKind::*;
        for (name, kind) in [
            ("a/requirements.txt", Some(RequirementsTxt)),
            ("requirements-prod.in", Some(RequirementsTxt)),
            ("pyproject.toml", Some(PyprojectToml)),
            ("uv.lock", Some(UvLock)),
            ("poetry.lock", Some(PoetryLock)),
            ("Pipfile.lock", None),
        ] {
            assert_eq!(RequirementsKind::of_path(Path::new(name)), kind, "{name}");
        }
    }

    #[test]
    fn names_and_pins() {
        assert_eq!(requirement_name("numpy==2.0.2"), "numpy");
        assert_eq!(requirement_name("zope.interface>=5"), "zope.interface");
        assert_eq!(requirement_name("requests[socks] ; x"), "requests");
        assert!(is_pinned("numpy==2.0.2"));
        assert!(is_pinned("numpy==2.0.2 ; python_version < '3.10'"));
        assert!(!is_pinned("numpy==2.*"));
        assert!(!is_pinned("numpy>=2,<3"));
        assert!(!is_pinned("numpy"));
        assert_eq!(normalize("PySocks"), "pysocks");
        assert_eq!(normalize("zope.Interface__x"), "zope-interface-x");
    }
}
