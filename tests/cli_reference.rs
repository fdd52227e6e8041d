//! The command-line reference, `docs/cli.md`, is generated from the clap definitions of both
//! binaries (`emrship`, `emrship-job`): every command's long `--help`, depth first. This test
//! fails when the file is stale; to rewrite it after changing a command, a flag or its help:
//!
//! ```sh
//! EMRSHIP_UPDATE_DOCS=1 cargo test --test cli_reference
//! ```
//!
//! It also holds the rule the reference depends on: every flag and argument of both binaries
//! has help text.

use std::path::PathBuf;

use clap::CommandFactory;

/// Set to rewrite docs/cli.md instead of comparing it.
const UPDATE_ENV: &str = "EMRSHIP_UPDATE_DOCS";

/// Both binaries, built (so each subcommand's usage line names its parents).
fn binaries() -> Vec<clap::Command> {
    let mut binaries = vec![
        emrship::cli::Cli::command(),
        emrship::job::cli::JobCli::command(),
    ];
    for binary in &mut binaries {
        binary.build();
    }
    binaries
}

/// The commands a user can call: clap's generated `help` subcommand and hidden ones are left
/// out.
fn visible(command: &clap::Command) -> bool {
    command.get_name() != "help" && !command.is_hide_set()
}

/// One section per command: a heading with its full name and its long help as text.
fn render(command: &mut clap::Command, name: &str, doc: &mut String) {
    let help = command.render_long_help().to_string();
    doc.push_str(&format!("## `{name}`\n\n```text\n"));
    for line in help.trim_end().lines() {
        doc.push_str(line.trim_end());
        doc.push('\n');
    }
    doc.push_str("```\n\n");
    for sub in command.get_subcommands_mut() {
        if visible(sub) {
            let sub_name = format!("{name} {}", sub.get_name());
            render(sub, &sub_name, doc);
        }
    }
}

fn reference() -> String {
    let mut doc = String::from(
        "# Command-line reference\n\n\
         <!-- Generated from the clap definitions by tests/cli_reference.rs; do not edit.\n     \
         Refresh: EMRSHIP_UPDATE_DOCS=1 cargo test --test cli_reference -->\n\n\
         Every command of `emrship` (the control plane) and `emrship-job` (the compute shipped \
         to the nodes), as `--help` shows it. Exit statuses and output conventions: \
         [commands.md](commands.md).\n\n",
    );
    for mut binary in binaries() {
        let name = binary.get_name().to_string();
        render(&mut binary, &name, &mut doc);
    }
    doc.trim_end().to_string() + "\n"
}

#[test]
fn docs_cli_md_is_the_current_help_of_every_command() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    let wanted = reference();
    if std::env::var_os(UPDATE_ENV).is_some() {
        std::fs::write(&path, &wanted).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != wanted {
        let first = current
            .lines()
            .zip(wanted.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(wanted.lines().count()));
        panic!(
            "docs/cli.md is stale: it differs from the commands' --help from line {} on \
             (now: {:?}, generated: {:?}).\nRewrite it with `{UPDATE_ENV}=1 cargo test --test \
             cli_reference` and commit it.",
            first + 1,
            current.lines().nth(first).unwrap_or("<end of file>"),
            wanted.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

/// Every argument of `command` and its subcommands without help text, as `command --flag`.
fn without_help(command: &clap::Command, name: &str, found: &mut Vec<String>, seen: &mut usize) {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        *seen += 1;
        let has_help = arg
            .get_long_help()
            .or(arg.get_help())
            .is_some_and(|h| !h.to_string().trim().is_empty());
        if !has_help {
            let shown = arg
                .get_long()
                .map_or_else(|| format!("<{id}>"), |long| format!("--{long}"));
            found.push(format!("{name} {shown}"));
        }
    }
    for sub in command.get_subcommands() {
        if sub.get_name() != "help" {
            without_help(sub, &format!("{name} {}", sub.get_name()), found, seen);
        }
    }
}

#[test]
fn every_flag_and_argument_of_both_binaries_has_help() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for binary in binaries() {
        without_help(&binary, binary.get_name(), &mut missing, &mut seen);
    }
    // Both binaries have dozens of flags: a walk that found none looked at nothing.
    assert!(seen > 100, "only {seen} arguments found");
    assert!(
        missing.is_empty(),
        "these arguments have no help text (add a `///` line above the field):\n  {}",
        missing.join("\n  ")
    );
}
