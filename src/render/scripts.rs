//! Text a cluster runs, rendered from `templates/`: the bootstrap action and the Spark driver.

use handlebars::{handlebars_helper, Handlebars};
use serde_json::json;

use super::artifacts::{install_dir, Digest256, PENDING_DIGEST};
use crate::spec::job_plan::{AppKind, UserApp};
use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

const BOOTSTRAP_TEMPLATE: &str = include_str!("../../templates/bootstrap.sh.hbs");
const SPARK_DRIVER_TEMPLATE: &str = include_str!("../../templates/spark_driver.py.hbs");
const STREAM_DRIVER_TEMPLATE: &str = include_str!("../../templates/stream_driver.py.hbs");

/// The static node check shipped for users' applications (`bootstrap/`), as it is.
pub const NODE_CHECK_SCRIPT: &str = include_str!("../../bootstrap/check-node.sh");
pub const NODE_CHECK_NAME: &str = "check-node.sh";

/// What the node check verifies for `app`: the nodes' architecture, the interpreter its
/// dependencies were built for, the Java its classes need.
pub fn node_check_args(plan: &JobPlan, app: &UserApp, required_java: Option<u32>) -> Vec<String> {
    let mut args = vec![
        "--arch".to_string(),
        match plan.job.arch {
            crate::sizing::Arch::X86_64 => "x86_64",
            crate::sizing::Arch::Arm64 => "aarch64",
        }
        .to_string(),
    ];
    match &app.kind {
        AppKind::PySpark { python, .. } => {
            args.push("--python".into());
            args.push(format!("/usr/bin/python{}.{}", python.0, python.1));
        }
        AppKind::Jar { .. } => {
            if let Some(java) = required_java {
                args.push("--java".into());
                args.push(java.to_string());
            }
        }
        AppKind::Executable { .. } => {}
    }
    args
}

handlebars_helper!(shell_quote: |text: str| shell_words::quote(text).into_owned());
handlebars_helper!(python_string: |text: str| serde_json::to_string(text).unwrap_or_default());

fn engine() -> Handlebars<'static> {
    let mut engine = Handlebars::new();
    engine.set_strict_mode(true);
    engine.register_escape_fn(handlebars::no_escape);
    engine.register_helper("shell", Box::new(shell_quote));
    engine.register_helper("py", Box::new(python_string));
    engine
}

fn render(template: &str, data: &serde_json::Value) -> String {
    // The templates ship inside the binary and are covered by snapshot tests, so a render
    // failure is a bug in emrship, not in the user's input.
    engine()
        .render_template(template, data)
        .unwrap_or_else(|e| panic!("built-in template failed to render: {e}"))
}

/// The bootstrap action: fetch the bundle, check its sha256, unpack it to a fixed path with
/// modes kept, prove the job binary runs on this node; fail loudly otherwise.
pub fn bootstrap_script(plan: &JobPlan, bundle_uri: &S3Uri, bundle: Option<&Digest256>) -> String {
    render(
        BOOTSTRAP_TEMPLATE,
        &json!({
            "name": plan.name,
            "bundle_uri": bundle_uri.to_string(),
            "bundle_sha256": bundle.map_or(PENDING_DIGEST, |d| d.sha256.as_str()),
            "install_dir": install_dir(plan),
            "arch": plan.job.arch.to_string(),
            "uname_arch": match plan.job.arch { crate::sizing::Arch::X86_64 => "x86_64", crate::sizing::Arch::Arm64 => "aarch64" },
            "release": plan.release.label,
        }),
    )
}

/// Where the spark engine's reduce tasks stage their rows until the driver finalizes: one
/// `<run key>/` under it per run, removed by the run itself.
pub fn staging_prefix(plan: &JobPlan) -> S3Uri {
    plan.artifact_prefix().join("staging/")
}

/// The PySpark driver that fans `emrship-job` out over the executors (for `stream`: places
/// one long-running worker per executor).
pub fn spark_driver(plan: &JobPlan) -> String {
    if plan.job.command == "stream" {
        let sizing = plan.spark.sizing.as_ref();
        return render(
            STREAM_DRIVER_TEMPLATE,
            &json!({
                "name": plan.name,
                "workers": sizing.map_or(1, |s| s.executor_instances),
            }),
        );
    }
    render(
        SPARK_DRIVER_TEMPLATE,
        &json!({
            "name": plan.name,
            "command": plan.job.command,
            "parallelism": plan.spark.sizing.as_ref().map_or(2, |s| s.default_parallelism),
            "staging": staging_prefix(plan).to_string(),
        }),
    )
}
