//! The layering docs/design.md describes, checked on the source text so the docs cannot drift
//! from the code:
//!
//! - the pure core (`spec`, `sizing`, `render`, `plan.rs`, `diagnose`, the plan template) does no
//!   I/O, reads no clock and names no AWS SDK;
//! - AWS requests are sent (`….send()`, how every SDK call ends) only from `src/aws/` in the
//!   control plane; the compute (`src/job/`: the DynamoDB catalog, Secrets Manager for the
//!   PostgreSQL password) and the scheduler Lambda's handler (`src/schedule/handler.rs`) are the
//!   other two places, each in its own binary.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `path` (or `path` itself), relative to `src/`.
fn rust_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), found);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        found.push(path.to_path_buf());
    }
}

/// The code of a file without its comment lines and without its `#[cfg(test)]` module (tests
/// may use the disk and the clock).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &text[..tests],
        None => &text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(file, line)` of each occurrence of any of `needles` in the files.
fn occurrences(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        for line in code(file).lines() {
            if let Some(needle) = needles.iter().find(|n| line.contains(*n)) {
                let shown = file.strip_prefix(src()).unwrap_or(file).display();
                found.push(format!("src/{shown}: `{needle}` in: {}", line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_pure_core_does_no_io_reads_no_clock_and_names_no_sdk() {
    let mut files = Vec::new();
    for part in [
        "spec",
        "sizing",
        "render",
        "plan.rs",
        "diagnose",
        "schedule/template.rs",
    ] {
        rust_files(&src().join(part), &mut files);
    }
    assert!(files.len() > 20, "only {} files found", files.len());
    let forbidden = [
        "std::fs",
        "std::process",
        "std::env",
        "std::net::Tcp",
        "tokio",
        "aws_sdk_",
        "aws_config",
        "Utc::now",
        "Local::now",
        "Instant::now",
        "SystemTime::now",
    ];
    let found = occurrences(&files, &forbidden);
    assert!(
        found.is_empty(),
        "the pure core must stay pure (docs/design.md):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn aws_requests_are_sent_from_aws_the_compute_and_the_lambda_handler_only() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let allowed = [
        src().join("aws"),
        src().join("job"),
        src().join("schedule/handler.rs"),
    ];
    let outside: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| !allowed.iter().any(|a| f.starts_with(a)))
        .collect();
    assert!(outside.len() > 20, "only {} files found", outside.len());
    let found = occurrences(
        &outside,
        &[".send()", "::Client::new(", "::Client::from_conf("],
    );
    assert!(
        found.is_empty(),
        "AWS calls belong in src/aws/ (docs/design.md):\n  {}",
        found.join("\n  ")
    );
}
