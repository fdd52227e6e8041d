//! The Plan: every request and upload emrship would make for one run of a spec.
//!
//! Built by pure functions from a checked [`JobPlan`] and the digests of local inputs; the same
//! inputs give byte-identical JSON. Its JSON uses the AWS API's member names.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::render::artifacts::{self, Digest256, PlanInputs, Upload, UploadKind};
use crate::render::configurations::configurations;
use crate::render::iam::{iam_documents, scheduler_function_name, IamPlan};
use crate::render::run_job_flow::{run_job_flow, EmrshipBootstrap, RunJobFlowRequest};
use crate::render::scripts;
use crate::render::security_group::ui_access_group;
pub use crate::render::security_group::{IngressRule, SecurityGroupRequest};
use crate::render::steps::{job_step, StepConfig, StepLocations};
use crate::sizing::ExecutorSizing;
use crate::spec::job_plan::{BootstrapScript, Nodes, SizingSource, UserApp};
use crate::spec::raw::Engine;
use crate::spec::JobPlan;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub run_job_flow: RunJobFlowRequest,
    pub add_job_flow_steps: AddJobFlowSteps,
    pub iam: IamPlan,
    pub uploads: Vec<Upload>,
    /// Security groups to create before launch; provision adds their ids to
    /// `Instances.AdditionalMasterSecurityGroups`.
    pub security_groups: Vec<SecurityGroupRequest>,
    pub sizing: Option<ExecutorSizing>,
    pub schedule: Option<SchedulePlan>,
    pub warnings: Vec<String>,
    /// Rendered text uploaded by deploy: bootstrap script, Spark driver. Not part of the JSON
    /// (their S3 URIs and digests are, under `uploads`).
    #[serde(skip)]
    pub rendered_files: Vec<RenderedFile>,
    #[serde(skip)]
    pub summary: Summary,
}

/// AddJobFlowSteps without its `JobFlowId`, which `submit` fills in.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddJobFlowSteps {
    pub steps: Vec<StepConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenderedFile {
    pub name: &'static str,
    pub text: String,
    pub s3_uri: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SchedulePlan {
    pub expression: String,
    pub timezone: String,
    /// Days back from the tick's date that a run processes.
    pub days_back: u32,
    pub rule_name: String,
    pub function_name: String,
    pub role: String,
    pub plan_object: String,
}

/// Facts for the text summary that the JSON carries elsewhere or not at all.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub name: String,
    pub date: String,
    pub run_key: String,
    pub release: String,
    pub os: String,
    pub engine: String,
    pub arch: String,
    pub cluster_shape: Vec<String>,
    pub sizing_source: String,
}

/// The plan for a checked job. Step length is checked in `spec::resolve`, with a position.
pub fn build(job: &JobPlan, inputs: &PlanInputs, spec_warnings: Vec<String>) -> Plan {
    let mut warnings = spec_warnings;
    let mut uploads = Vec::new();
    let mut rendered_files = Vec::new();
    let (bootstrap, step) = match &job.job.app {
        None => built_in_pieces(
            job,
            inputs,
            &mut uploads,
            &mut rendered_files,
            &mut warnings,
        ),
        Some(app) => app_pieces(
            job,
            app,
            inputs,
            &mut uploads,
            &mut rendered_files,
            &mut warnings,
        ),
    };
    let (configurations, overrides) = configurations(job);
    for o in overrides {
        warnings.push(format!(
            "cluster.configurations sets `{}` in `{}` to `{}`, overriding `{}` that emrship derived from the spec",
            o.key, o.classification, o.new, o.old
        ));
    }
    let user_bootstrap = artifacts::bootstrap_script_uris(job, inputs);
    let mut local_digests = inputs.bootstrap_scripts.iter();
    for (action, uri) in job.cluster.bootstrap.iter().zip(&user_bootstrap) {
        if let BootstrapScript::Local(path) = &action.script {
            let digest = local_digests.next();
            uploads.push(Upload {
                kind: UploadKind::UserBootstrap,
                source: path.path.clone(),
                s3_uri: uri.clone(),
                sha256: digest.map(|d| d.sha256.clone()),
                bytes: digest.map(|d| d.bytes),
                pending: false,
            });
        }
    }
    let run_job_flow = run_job_flow(
        job,
        configurations,
        bootstrap,
        &user_bootstrap,
        vec![step.clone()],
    );

    let security_groups: Vec<SecurityGroupRequest> = ui_access_group(job).into_iter().collect();

    let schedule = job.schedule.as_ref().map(|s| SchedulePlan {
        expression: s.expression.clone(),
        timezone: s.timezone.clone(),
        days_back: s.days_back,
        rule_name: format!("emrship-{}", job.name),
        function_name: scheduler_function_name(job),
        role: job.roles.scheduler.clone(),
        plan_object: artifacts::schedule_plan_uri(job).to_string(),
    });

    Plan {
        run_job_flow,
        add_job_flow_steps: AddJobFlowSteps { steps: vec![step] },
        iam: iam_documents(job),
        uploads,
        security_groups,
        sizing: job.spark.sizing.clone(),
        schedule,
        warnings,
        rendered_files,
        summary: summarize(job),
    }
}

/// emrship-job's own command: the bundle, the bootstrap action that installs it, the Spark
/// driver, the job files.
fn built_in_pieces(
    job: &JobPlan,
    inputs: &PlanInputs,
    uploads: &mut Vec<Upload>,
    rendered_files: &mut Vec<RenderedFile>,
    warnings: &mut Vec<String>,
) -> (EmrshipBootstrap, StepConfig) {
    let bundle_uri = artifacts::bundle_uri(job, inputs.bundle.as_ref());
    let bootstrap_text = scripts::bootstrap_script(job, &bundle_uri, inputs.bundle.as_ref());
    let bootstrap_digest = Digest256::of(bootstrap_text.as_bytes());
    let bootstrap_uri = artifacts::script_uri(job, &bootstrap_digest, "bootstrap.sh");
    let driver_text = scripts::spark_driver(job);
    let driver_digest = Digest256::of(driver_text.as_bytes());
    let driver_uri = artifacts::script_uri(job, &driver_digest, "driver.py");

    uploads.push(Upload {
        kind: UploadKind::Bundle,
        source: format!("target/emrship/{}/bundle.zip", job.name),
        s3_uri: bundle_uri.clone(),
        sha256: inputs.bundle.as_ref().map(|d| d.sha256.clone()),
        bytes: inputs.bundle.as_ref().map(|d| d.bytes),
        pending: inputs.bundle.is_none(),
    });
    if inputs.bundle.is_none() {
        warnings.push(format!(
            "the job bundle is not built yet: its key and checksum show as `{}` until `emrship deploy` builds it",
            artifacts::PENDING_DIGEST
        ));
    }
    uploads.push(Upload {
        kind: UploadKind::BootstrapScript,
        source: "rendered:bootstrap.sh".into(),
        s3_uri: bootstrap_uri.clone(),
        sha256: Some(bootstrap_digest.sha256.clone()),
        bytes: Some(bootstrap_digest.bytes),
        pending: false,
    });
    rendered_files.push(RenderedFile {
        name: "bootstrap.sh",
        text: bootstrap_text,
        s3_uri: bootstrap_uri.to_string(),
    });
    if job.job.engine == Engine::Spark {
        uploads.push(Upload {
            kind: UploadKind::SparkDriver,
            source: "rendered:driver.py".into(),
            s3_uri: driver_uri.clone(),
            sha256: Some(driver_digest.sha256.clone()),
            bytes: Some(driver_digest.bytes),
            pending: false,
        });
        rendered_files.push(RenderedFile {
            name: "driver.py",
            text: driver_text,
            s3_uri: driver_uri.to_string(),
        });
    }
    let mut job_file_uris = Vec::new();
    for (file, (local_path, digest)) in job.job.files.iter().zip(&inputs.job_files) {
        let uri = artifacts::job_file_uri(job, digest, &file.file_name);
        uploads.push(Upload {
            kind: UploadKind::JobFile,
            source: local_path.clone(),
            s3_uri: uri.clone(),
            sha256: Some(digest.sha256.clone()),
            bytes: Some(digest.bytes),
            pending: false,
        });
        job_file_uris.push(uri);
    }
    let step = job_step(
        job,
        &StepLocations {
            bundle: bundle_uri,
            driver: driver_uri,
            job_files: job_file_uris,
            app: None,
        },
    );
    let bootstrap = EmrshipBootstrap {
        name: "emrship: install job bundle".into(),
        path: bootstrap_uri,
        args: Vec::new(),
    };
    (bootstrap, step)
}

/// A user's application: its pieces, uploaded content-addressed, and the node check.
fn app_pieces(
    job: &JobPlan,
    app: &UserApp,
    inputs: &PlanInputs,
    uploads: &mut Vec<Upload>,
    rendered_files: &mut Vec<RenderedFile>,
    warnings: &mut Vec<String>,
) -> (EmrshipBootstrap, StepConfig) {
    let pieces = artifacts::app_pieces(job, app, inputs.app.as_ref());
    for piece in &pieces {
        if piece.source.starts_with("s3://") {
            continue; // referenced where it is, not uploaded
        }
        if piece.digest.is_none() {
            warnings.push(format!(
                "the Python dependencies are not built yet: their key and checksum show as `{}` until `emrship deploy` (or `emrship run --local`) builds them",
                artifacts::PENDING_DIGEST
            ));
        }
        uploads.push(Upload {
            kind: piece.kind,
            source: piece.source.clone(),
            s3_uri: piece.s3_uri.clone(),
            sha256: piece.digest.as_ref().map(|d| d.sha256.clone()),
            bytes: piece.digest.as_ref().map(|d| d.bytes),
            pending: piece.digest.is_none(),
        });
    }
    let check_text = scripts::NODE_CHECK_SCRIPT.to_string();
    let check_digest = Digest256::of(check_text.as_bytes());
    let check_uri = artifacts::script_uri(job, &check_digest, scripts::NODE_CHECK_NAME);
    uploads.push(Upload {
        kind: UploadKind::NodeCheck,
        source: format!("bootstrap/{}", scripts::NODE_CHECK_NAME),
        s3_uri: check_uri.clone(),
        sha256: Some(check_digest.sha256.clone()),
        bytes: Some(check_digest.bytes),
        pending: false,
    });
    rendered_files.push(RenderedFile {
        name: scripts::NODE_CHECK_NAME,
        text: check_text,
        s3_uri: check_uri.to_string(),
    });
    let step = job_step(
        job,
        &StepLocations {
            bundle: artifacts::bundle_uri(job, None),
            driver: artifacts::bundle_uri(job, None),
            job_files: Vec::new(),
            app: Some(artifacts::app_locations(&pieces)),
        },
    );
    let bootstrap = EmrshipBootstrap {
        name: format!(
            "emrship: check nodes for the {} application",
            app.kind.label()
        ),
        path: check_uri,
        args: scripts::node_check_args(job, app, inputs.app.as_ref().and_then(|i| i.required_java)),
    };
    (bootstrap, step)
}

fn summarize(job: &JobPlan) -> Summary {
    let describe = |role: &str, t: &crate::sizing::InstanceType, count: String| {
        format!(
            "{role:<8} {count} × {} ({} vCPU, {} GiB, YARN {} MiB, {})",
            t.name, t.vcpu, t.memory_gib, t.yarn_memory_mib, t.arch
        )
    };
    let cluster_shape = match &job.cluster.nodes {
        Nodes::Groups { master, core, task } => {
            let mut lines = vec![describe(
                "primary",
                master.instance_type,
                master.count.to_string(),
            )];
            lines.extend(
                core.iter()
                    .map(|g| describe("core", g.instance_type, g.count.to_string())),
            );
            lines.extend(
                task.iter()
                    .map(|g| describe("task", g.instance_type, g.count.to_string())),
            );
            lines
        }
        Nodes::Fleets { master, core, task } => {
            let mut lines = Vec::new();
            for (role, fleet) in [
                ("primary", Some(master)),
                ("core", Some(core)),
                ("task", task.as_ref()),
            ] {
                let Some(fleet) = fleet else { continue };
                for choice in &fleet.instance_types {
                    lines.push(describe(
                        role,
                        choice.instance_type,
                        format!("weight {}", choice.weight),
                    ));
                }
                lines.push(format!(
                    "{role:<8} target {} on-demand + {} spot units",
                    fleet.on_demand, fleet.spot
                ));
            }
            lines
        }
    };
    Summary {
        name: job.name.clone(),
        date: job.date.format("%Y-%m-%d").to_string(),
        run_key: job.run_key(),
        release: job.release.label.clone(),
        os: job.release.os.to_string(),
        engine: match (&job.job.app, job.job.engine) {
            (Some(app), _) => match &app.kind {
                crate::spec::job_plan::AppKind::PySpark { python, .. } => format!(
                    "your PySpark application on Spark {}.{} (YARN cluster mode), Python {}.{} on the nodes",
                    job.release.runtime.spark.0, job.release.runtime.spark.1, python.0, python.1
                ),
                crate::spec::job_plan::AppKind::Jar { .. } => format!(
                    "your JVM application on Spark {}.{}, Scala {}, Java {}",
                    job.release.runtime.spark.0,
                    job.release.runtime.spark.1,
                    job.release.runtime.scala,
                    job.release.runtime.java
                ),
                crate::spec::job_plan::AppKind::Executable { .. } => {
                    "your executable, on the primary node".to_string()
                }
            },
            (None, Engine::Spark) => "spark (Spark on YARN fans emrship-job out over the executors)".into(),
            (None, Engine::Local) => "local (one process on the primary node)".into(),
        },
        arch: job.job.arch.to_string(),
        cluster_shape,
        sizing_source: match job.spark.sizing_source {
            SizingSource::Auto => "computed from YARN memory".into(),
            SizingSource::Explicit => "from spark.executors, checked against YARN memory".into(),
        },
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        let mut out = String::new();
        let request = &self.run_job_flow;
        let _ = writeln!(
            out,
            "Plan for {} on {} (run key {})",
            s.name, s.date, s.run_key
        );
        let _ = writeln!(out, "  release  {} ({})", s.release, s.os);
        let _ = writeln!(out, "  engine   {}, job binary {}", s.engine, s.arch);
        let _ = writeln!(
            out,
            "  cluster  {}, ends {}",
            request.name,
            if request.instances.keep_job_flow_alive_when_no_steps {
                "when terminated (long-running)".to_string()
            } else {
                "after its steps".to_string()
            }
        );
        if let Some(policy) = &request.auto_termination_policy {
            let _ = writeln!(
                out,
                "           auto-terminates after {} s idle",
                policy.idle_timeout
            );
        }
        let _ = writeln!(out, "\nCluster");
        for line in &s.cluster_shape {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(sizing) = &self.sizing {
            let _ = writeln!(out, "\nExecutors ({})", s.sizing_source);
            for line in &sizing.arithmetic {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = writeln!(out, "\nSteps (command-runner.jar)");
        for step in &self.add_job_flow_steps.steps {
            let _ = writeln!(out, "  {} [{}]", step.name, step.action_on_failure);
            let _ = writeln!(out, "    {}", step.shell_line());
        }
        let _ = writeln!(out, "\nBootstrap actions");
        for action in &request.bootstrap_actions {
            let _ = writeln!(
                out,
                "  {}: {}",
                action.name, action.script_bootstrap_action.path
            );
        }
        let _ = writeln!(out, "\nRoles");
        for (name, role) in &self.iam.0 {
            let policies: Vec<&str> = role.inline_policies.keys().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "  {name}: {} (inline: {})",
                role.purpose,
                policies.join(", ")
            );
        }
        let _ = writeln!(out, "\nUploads");
        for upload in &self.uploads {
            let size = match (upload.bytes, upload.pending) {
                (Some(bytes), _) => format!("{bytes} bytes"),
                (None, _) => "pending: built by `emrship deploy`".to_string(),
            };
            let _ = writeln!(out, "  {} → {} ({size})", upload.source, upload.s3_uri);
        }
        for group in &self.security_groups {
            let ports: Vec<String> = group.ingress.iter().map(|r| r.port.to_string()).collect();
            let _ = writeln!(
                out,
                "\nSecurity group {}: ports {} from {}, nothing else\n  provision finds it by tag {}={} in {} (or creates it) and attaches it to the primary node",
                group.group_name,
                ports.join(", "),
                group.ingress.first().map_or("", |r| r.cidr.as_str()),
                group.tags.first().map_or("", |(k, _)| k.as_str()),
                group.tags.first().map_or("", |(_, v)| v.as_str()),
                group
                    .subnet
                    .as_ref()
                    .map_or("the default VPC".to_string(), |s| format!("the VPC of {s}")),
            );
        }
        if let Some(schedule) = &self.schedule {
            let _ = writeln!(
                out,
                "\nSchedule: {} (EventBridge fires in UTC; the date is taken in {}), processes \
                 the day {} day(s) before each tick; Lambda {}",
                schedule.expression, schedule.timezone, schedule.days_back, schedule.function_name
            );
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nWarnings");
            for warning in &self.warnings {
                let _ = writeln!(out, "  - {warning}");
            }
        }
        f.write_str(&out)
    }
}
