//! The shipped `emrship-job` does not run on the node: it needs a newer glibc than the release's
//! Amazon Linux, was built for the other CPU, lost its executable bit, or is not where the step
//! looks for it.

use super::{mentions, regex, CauseKind, Diagnosis, LogText, StepContext};
use crate::sizing::catalog::Arch;

const BUILD: &str =
    "cargo zigbuild --release --no-default-features --features job --bin emrship-job --target";

fn rebuild_advice(step: &StepContext) -> String {
    let suffix = step
        .node_glibc()
        .map(|((major, minor), _)| format!(".{major}.{minor}"))
        .unwrap_or_else(|| ".2.26".to_string());
    // `.2.26` runs on both Amazon Linux 2 and 2023, so it is the safe default.
    let suffix = if suffix == ".2.34" {
        ".2.26".to_string()
    } else {
        suffix
    };
    let targets: Vec<String> = match step.node_arch {
        Some(arch) => vec![format!("{}{suffix}", arch.rust_target_triple())],
        None => [Arch::X86_64, Arch::Arm64]
            .iter()
            .map(|arch| format!("{}{suffix}", arch.rust_target_triple()))
            .collect(),
    };
    let which = if targets.len() > 1 {
        " (x86_64 nodes / Graviton nodes)"
    } else {
        ""
    };
    format!(
        "rebuild for the nodes with `{BUILD} {}`{which}, or let `emrship deploy` build it (it checks the ELF architecture and glibc ceiling before uploading), then deploy and submit again",
        targets.join("` / `")
    )
}

pub(super) fn find(logs: &[LogText], step: &StepContext) -> Option<Diagnosis> {
    let glibc = regex(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?'? not found");
    let exec_format = regex(r"(?i)exec format error");
    let exit_code = regex(
        r"(?i)(?:exited with(?: code| status)?|exit (?:code|status)(?: is|:|=)?|returned non-zero exit status|exitCode:)\s*(126|127)\b",
    );
    let not_runnable = regex(
        r"(?i)emrship-job\S*'?:? (?:Permission denied|No such file or directory)|(?:Permission denied|No such file or directory): '?\S*emrship-job",
    );

    let mut glibc_hits = Vec::new();
    let mut needed: Option<(u32, u32)> = None;
    let mut format_hits = Vec::new();
    let mut exit_hits = Vec::new();
    let mut exit_126 = false;
    for log in logs {
        for (number, line) in log.numbered() {
            if !mentions(line, &["GLIBC_", "xec format", "126", "127", "emrship-job"]) {
                continue;
            }
            // Only emrship-job's own failures: a user's program or a shipped Python package's
            // compiled module (`….so`) is the native-module diagnosis, and on a step that does
            // not run emrship-job an exit code says nothing about it.
            if !line.contains("emrship-job") && (!step.native || line.contains(".so")) {
                continue;
            }
            if let Some(c) = glibc.captures(line) {
                let version = (c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0));
                needed = needed.max(Some(version));
                glibc_hits.push(log.evidence(number, line));
            } else if exec_format.is_match(line) {
                format_hits.push(log.evidence(number, line));
            } else if let Some(c) = exit_code.captures(line) {
                exit_126 |= &c[1] == "126";
                exit_hits.push(log.evidence(number, line));
            } else if not_runnable.is_match(line) {
                exit_hits.push(log.evidence(number, line));
            }
        }
    }

    if let Some((major, minor)) = needed {
        let node = match step.node_glibc() {
            Some(((node_major, node_minor), os)) => format!(
                "{} nodes run {os} with glibc {node_major}.{node_minor}",
                step.release_label.as_deref().unwrap_or("the release's")
            ),
            None => "the nodes' glibc is older".to_string(),
        };
        let mut diagnosis = Diagnosis::new(
            CauseKind::BinaryDoesNotFit,
            format!(
                "the shipped emrship-job needs glibc {major}.{minor} but {node}: the binary does not fit the node"
            ),
        );
        diagnosis.evidence = glibc_hits;
        diagnosis.evidence.truncate(6);
        diagnosis.evidence.extend(exit_hits.into_iter().take(2));
        diagnosis.advice.push(rebuild_advice(step));
        diagnosis.advice.push(
            "a binary built by plain `cargo build` on a newer Linux links against that machine's glibc; the `.2.26` target suffix pins the symbols to what Amazon Linux 2 has"
                .to_string(),
        );
        return Some(diagnosis);
    }
    if !format_hits.is_empty() {
        let node = step
            .node_arch
            .map(|arch| format!(" ({arch} nodes)"))
            .unwrap_or_default();
        let mut diagnosis = Diagnosis::new(
            CauseKind::BinaryDoesNotFit,
            format!(
                "the shipped emrship-job was built for another CPU architecture than the nodes{node} (exec format error)"
            ),
        );
        diagnosis.evidence = format_hits;
        diagnosis.evidence.truncate(6);
        diagnosis.advice.push(
            "Graviton instance types (m6g, r7g, c7gn, …) are arm64 (aarch64); the others x86_64: set job.arch to match the instance types".to_string(),
        );
        diagnosis.advice.push(rebuild_advice(step));
        return Some(diagnosis);
    }
    if !exit_hits.is_empty() {
        let mut diagnosis = if exit_126 {
            let mut d = Diagnosis::new(
                CauseKind::BinaryDoesNotFit,
                "emrship-job could not be executed on the node (exit 126: not executable, or built for another architecture)",
            );
            d.advice.push(
                "the bundle must keep the binary's mode 0755: deploy it with `emrship deploy` (its zip keeps modes) rather than a hand-made archive".to_string(),
            );
            d
        } else {
            let mut d = Diagnosis::new(
                CauseKind::BinaryDoesNotFit,
                "emrship-job or its program loader was not found on the node (exit 127)",
            );
            d.advice.push(
                "check that EMRSHIP_JOB_BIN (./bundle/emrship-job) matches the bundle's layout and that the --archives entry ends in #bundle".to_string(),
            );
            d.advice.push(
                "a binary linked for another libc or CPU also exits 127 (its loader, e.g. /lib/ld-linux-aarch64.so.1, is missing)".to_string(),
            );
            d
        };
        diagnosis.evidence = exit_hits;
        diagnosis.evidence.truncate(6);
        diagnosis.advice.push(rebuild_advice(step));
        return Some(diagnosis);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{diagnose, CauseKind, LogText, StepContext};
    use crate::sizing::catalog::Arch;

    fn step(release: &str) -> StepContext {
        StepContext {
            release_label: Some(release.to_string()),
            node_arch: Some(Arch::X86_64),
            native: true,
            ..StepContext::default()
        }
    }

    #[test]
    fn glibc_not_found_names_both_versions_and_the_build_target() {
        let log = LogText::new(
            "containers/application_1732168000000_0004/container_1732168000000_0004_01_000002/stderr.gz",
            "\
SLF4J: Class path contains multiple SLF4J bindings.
24/11/21 06:10:02 INFO Executor: Running task 0.0 in stage 0.0 (TID 0)
./bundle/emrship-job: /lib64/libc.so.6: version `GLIBC_2.28' not found (required by ./bundle/emrship-job)
./bundle/emrship-job: /lib64/libc.so.6: version `GLIBC_2.33' not found (required by ./bundle/emrship-job)
./bundle/emrship-job: /lib64/libc.so.6: version `GLIBC_2.32' not found (required by ./bundle/emrship-job)
24/11/21 06:10:02 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)
org.apache.spark.api.python.PythonException: Traceback (most recent call last):
RuntimeError: emrship-job match-rate map exited with 1
",
        );
        let diagnosis = diagnose(&[log], &step("emr-6.15.0"));
        assert_eq!(diagnosis.kind, CauseKind::BinaryDoesNotFit);
        assert_eq!(
            diagnosis.cause,
            "the shipped emrship-job needs glibc 2.33 but emr-6.15.0 nodes run Amazon Linux 2 with glibc 2.26: the binary does not fit the node"
        );
        assert_eq!(diagnosis.evidence.len(), 3);
        assert_eq!(diagnosis.evidence[0].line, 3);
        assert!(diagnosis.advice[0].contains("--target x86_64-unknown-linux-gnu.2.26"));
    }

    #[test]
    fn exec_format_error_is_the_architecture() {
        let log = LogText::new(
            "containers/application_1/container_1732168000000_0004_01_000002/stderr.gz",
            "\
24/11/21 06:10:02 INFO PythonRunner: Times: total = 41, boot = 12, init = 29, finish = 0
Traceback (most recent call last):
  File \"/mnt/yarn/usercache/hadoop/appcache/application_1/container_1/driver.py\", line 29, in run
    completed = subprocess.run(
OSError: [Errno 8] Exec format error: './bundle/emrship-job'
",
        );
        let mut context = step("emr-7.5.0");
        context.node_arch = Some(Arch::Arm64);
        let diagnosis = diagnose(&[log], &context);
        assert_eq!(diagnosis.kind, CauseKind::BinaryDoesNotFit);
        assert!(
            diagnosis.cause.contains("arm64 nodes"),
            "{}",
            diagnosis.cause
        );
        assert!(diagnosis.advice[1].contains("aarch64-unknown-linux-gnu.2.26"));
        // The traceback the driver raised after it is listed, not lost.
        assert!(diagnosis.also.iter().any(|a| a.contains("OSError")));
    }

    #[test]
    fn exit_127_and_126() {
        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "RuntimeError: emrship-job match-rate list-inputs exited with 127\n",
        );
        let diagnosis = diagnose(&[log], &step("emr-7.5.0"));
        assert_eq!(diagnosis.kind, CauseKind::BinaryDoesNotFit);
        assert!(diagnosis.cause.contains("exit 127"));

        let log = LogText::new(
            "steps/s-1/stderr.gz",
            "subprocess.CalledProcessError: Command '['./bundle/emrship-job', 'rollup']' returned non-zero exit status 126.\n",
        );
        let diagnosis = diagnose(&[log], &step("emr-7.5.0"));
        assert!(diagnosis.cause.contains("exit 126"), "{}", diagnosis.cause);
        assert!(diagnosis.advice[0].contains("0755"));
    }
}
