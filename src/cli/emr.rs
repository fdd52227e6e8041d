//! `emrship provision | submit | status | terminate | down`: the cluster's life on EMR.
//!
//! Each command reads the plan (spec errors exit 2 before any AWS call), checks credentials
//! once, then calls EMR through `aws::emr`. `--dry-run` prints the request it would send and
//! makes no AWS call at all. `--wait` follows the cluster and steps (`watch`), and explains a
//! failed step from its logs.

mod launch;
pub(super) mod watch;

pub use launch::{backfill, run_day};

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use self::watch::{Backoff, Jitter, Outcome, Subject, Target, Watch};
use super::plan::{load_plan, LoadedPlan};
use super::preflight::refuse_pending;
use super::{
    block_on, AwsArgs, CliError, CommandResult, DownArgs, ExitStatus, OutputFormat, Printer,
    ProvisionArgs, StatusArgs, SubmitArgs, TerminateArgs, WaitArgs,
};
use crate::aws::ec2::{Ec2, GroupView};
use crate::aws::emr::{ClusterView, Emr, ACTIVE_CLUSTER_STATES};
use crate::aws::error::AwsError;
use crate::aws::sdk::require_credentials;
use crate::aws::{iam, sdk};
use crate::render::artifacts::Upload;
use crate::render::run_job_flow::{RunJobFlowRequest, RUN_KEY_TAG};
use crate::render::security_group::UI_ACCESS_TAG;

/// How long to let IAM changes reach EMR and EC2 after IAM itself shows them (see
/// `aws::iam::await_propagation`).
const IAM_SETTLE: Duration = Duration::from_secs(10);
/// How long IAM may take to show roles it just created before we give up.
const IAM_VISIBLE_WITHIN: Duration = Duration::from_secs(60);

/// The SDK config of this run and the EMR client on it.
struct Session {
    sdk: aws_config::SdkConfig,
    options: sdk::AwsOptions,
    emr: Emr,
    out: Printer,
}

impl Session {
    async fn connect(
        aws: &AwsArgs,
        spec_region: Option<&str>,
        out: Printer,
    ) -> Result<Session, CliError> {
        let options = aws.options(spec_region);
        let config = sdk::load(&options).await;
        if config.region().is_none() {
            return Err(CliError::failure("no AWS region")
                .with_hint("pass --region, set AWS_REGION, or name one in the profile"));
        }
        require_credentials(&config)
            .await
            .map_err(CliError::failure)?;
        Ok(Session {
            emr: Emr::new(&config),
            sdk: config,
            options,
            out,
        })
    }

    fn region(&self) -> String {
        self.sdk
            .region()
            .map_or_else(|| "?".into(), |r| r.to_string())
    }

    /// The cluster, or an error saying it does not exist here and how to find it.
    async fn cluster(&self, cluster_id: &str) -> Result<ClusterView, CliError> {
        self.emr.cluster_view(cluster_id).await.map_err(|e| {
            if e.is_code("InvalidRequestException") || e.is_code("ResourceNotFoundException") {
                CliError::failure(format!(
                    "no cluster {cluster_id} in region {}: {} — check the id (`aws emr \
                     list-clusters --active`) and --region",
                    self.region(),
                    e.message
                ))
            } else {
                CliError::from(e)
            }
        })
    }
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("plan parts always serialize")
}

/// Parsed `--poll` and `--timeout`.
struct WaitSettings {
    poll: Duration,
    timeout: Duration,
    timeout_text: String,
}

fn wait_settings(args: &WaitArgs) -> Result<WaitSettings, CliError> {
    let timeout = watch::parse_wait_duration(&args.timeout)
        .map_err(|e| CliError::invalid(format!("--timeout: {e}")))?;
    let poll = watch::parse_wait_duration(&args.poll)
        .map_err(|e| CliError::invalid(format!("--poll: {e}")))?;
    Ok(WaitSettings {
        // Faster than this only loads the API (and gets throttled).
        poll: poll.max(Duration::from_millis(50)),
        timeout,
        timeout_text: args.timeout.clone(),
    })
}

/// Every upload the plan's requests point at must be in S3 with the plan's size, or the
/// cluster would start and fail in its bootstrap action minutes later.
async fn check_uploads(session: &Session, uploads: &[Upload]) -> Result<(), CliError> {
    let s3 = crate::aws::s3::client(&session.sdk, sdk::endpoint_overridden(&session.options));
    let problems = crate::aws::s3::missing_uploads(&s3, uploads).await?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::failure(format!(
        "the plan's uploads are not all in S3:\n  - {}",
        problems.join("\n  - ")
    ))
    .with_hint("run `emrship deploy` for this spec (same overlays, --set values and --date) first"))
}

// ---------------------------------------------------------------------------------------------
// provision

pub fn provision(args: ProvisionArgs, out: Printer) -> CommandResult {
    let loaded = load_plan(&args.spec, out)?;
    block_on(provision_async(args, loaded, out))
}

async fn provision_async(args: ProvisionArgs, loaded: LoadedPlan, out: Printer) -> CommandResult {
    let wait = wait_settings(&args.wait)?;
    let plan = &loaded.plan;
    refuse_pending(
        plan,
        &args.spec.spec.display().to_string(),
        args.dry_run,
        out,
    )?;
    if args.dry_run {
        print_provision_dry_run(&args, &loaded, out)?;
        return Ok(ExitStatus::Success);
    }
    let session = Session::connect(&args.aws, Some(&loaded.job.region), out).await?;
    check_uploads(&session, &plan.uploads).await?;
    if args.create_roles {
        create_roles(&session, &plan.iam).await?;
    }
    let ui_groups = ensure_ui_groups(&session, plan).await?;
    let mut request = plan.run_job_flow.clone();
    request.instances.additional_master_security_groups =
        ui_groups.iter().map(|g| g.id.clone()).collect();
    let (cluster_id, reused) = find_or_start_cluster(&session, &args, &loaded, &request).await?;
    let view = session.cluster(&cluster_id).await?;
    let mut result = json!({
        "cluster_id": cluster_id,
        "run_key": loaded.job.run_key(),
        "reused": reused,
        "state": view.state,
        "step_ids": view.steps.iter().rev().map(|s| s.id.clone()).collect::<Vec<_>>(),
    });
    if !ui_groups.is_empty() {
        result["ui_security_groups"] = json!(ui_groups
            .iter()
            .map(|g| json!({
                "group_id": g.id,
                "group_name": g.name,
                "vpc_id": g.vpc_id,
                "created": g.created,
                "changes": g.changes,
            }))
            .collect::<Vec<_>>());
    }
    if args.wait.wait {
        let step_ids: Vec<String> = view.steps.iter().map(|s| s.id.clone()).collect();
        let target = if step_ids.is_empty() {
            Target::Cluster
        } else {
            Target::Steps(step_ids)
        };
        let followed = follow(&session, &cluster_id, view, target, &wait).await?;
        followed.merge_into(&mut result);
        out.result(args.stdout.format, &result, &followed.text())?;
        return Ok(followed.exit);
    }
    let how = if reused { "reused" } else { "started" };
    let text = format!("{cluster_id} {} ({how})", view.state);
    out.result(args.stdout.format, &result, &text)?;
    Ok(ExitStatus::Success)
}

/// The spec's UI security group (`ui_access_cidr`): found by its tag in the cluster's VPC or
/// created there, its ingress made exactly the plan's rules. Its id goes into the launch's
/// `AdditionalMasterSecurityGroups`.
async fn ensure_ui_groups(
    session: &Session,
    plan: &crate::plan::Plan,
) -> Result<Vec<crate::aws::ec2::EnsuredGroup>, CliError> {
    let mut ensured = Vec::new();
    if plan.security_groups.is_empty() {
        return Ok(ensured);
    }
    let ec2 = Ec2::new(&session.sdk);
    for request in &plan.security_groups {
        let group = ec2.ensure_group(request).await.map_err(|e| {
            let denied = e.is_code("UnauthorizedOperation") || e.is_code("AccessDenied");
            let error = CliError::from(e);
            if denied {
                error.with_hint(
                    "`ui_access_cidr` needs ec2:DescribeSubnets, ec2:DescribeVpcs, \
                     ec2:DescribeSecurityGroups, ec2:CreateSecurityGroup, ec2:CreateTags, \
                     ec2:AuthorizeSecurityGroupIngress and ec2:RevokeSecurityGroupIngress \
                     (docs/aws-permissions.md), or remove `ui_access_cidr`",
                )
            } else {
                error
            }
        })?;
        let how = if group.created { "created" } else { "found" };
        session.out.info(&format!(
            "security group {} ({}) {how} in {}; attached to the primary node",
            group.id, group.name, group.vpc_id
        ));
        for change in &group.changes {
            session
                .out
                .info(&format!("security group {}: {change}", group.id));
        }
        ensured.push(group);
    }
    Ok(ensured)
}

/// What `down` and `terminate` say about the UI groups of the clusters they end: kept, since
/// every run of the spec shares the group, it costs nothing, and EC2 refuses to delete it
/// while the terminating primary node still holds it.
fn kept_ui_groups(groups: &[GroupView], out: Printer) -> Value {
    for group in groups {
        out.info(&format!(
            "security group {} ({}) is kept for the spec's next cluster; once no cluster of \
             the spec runs, `aws ec2 delete-security-group --group-id {}` removes it",
            group.id, group.name, group.id
        ));
    }
    json!(groups
        .iter()
        .map(|g| json!({ "group_id": g.id, "group_name": g.name, "kept": true }))
        .collect::<Vec<_>>())
}

/// The UI groups among a cluster's primary-node groups, looked up best-effort: ending a
/// cluster must not fail because the caller may not read EC2.
async fn ui_groups_of(session: &Session, group_ids: &[String]) -> Vec<GroupView> {
    match Ec2::new(&session.sdk).ui_groups_among(group_ids).await {
        Ok(groups) => groups,
        Err(e) => {
            session.out.info(&format!(
                "could not tell which of {} is emrship's UI security group ({e}); it is kept \
                 either way",
                group_ids.join(", ")
            ));
            Vec::new()
        }
    }
}

/// What a provision would do: the reuse rule, the IAM documents (with --create-roles) and the
/// RunJobFlow request.
fn print_provision_dry_run(
    args: &ProvisionArgs,
    loaded: &LoadedPlan,
    out: Printer,
) -> Result<(), CliError> {
    let plan = &loaded.plan;
    let run_key = loaded.job.run_key();
    let mut would = json!({
        "dry_run": true,
        "run_key": run_key,
        "reuse": format!(
            "an active cluster tagged {RUN_KEY_TAG}={run_key} is reused{}",
            if args.no_reuse { " (refused: --no-reuse)" } else { "" }
        ),
        "run_job_flow": plan.run_job_flow,
    });
    if args.create_roles {
        would["iam"] = serde_json::to_value(&plan.iam).expect("IAM documents serialize");
    }
    if !plan.security_groups.is_empty() {
        would["security_groups"] =
            serde_json::to_value(&plan.security_groups).expect("security groups serialize");
    }
    if args.stdout.format == OutputFormat::Json {
        return out.json(&would);
    }
    for group in &plan.security_groups {
        let ports: Vec<String> = group.ingress.iter().map(|r| r.port.to_string()).collect();
        let spec_name = &loaded.job.name;
        out.data(&format!(
            "Would find the security group tagged {UI_ACCESS_TAG}={spec_name} in the VPC of {} \
             (or create {} there), make its ingress exactly tcp {} from {}, and put its id in \
             Instances.AdditionalMasterSecurityGroups\n",
            group
                .subnet
                .as_deref()
                .unwrap_or("the default VPC's subnet"),
            group.group_name,
            ports.join(", "),
            group.ingress.first().map_or("", |r| r.cidr.as_str())
        ))?;
    }
    if args.create_roles {
        out.data(&format!(
            "Would create or update these IAM roles and policies:\n{}\n",
            pretty(&plan.iam)
        ))?;
    }
    out.data(&format!(
        "Would look for an active cluster tagged {RUN_KEY_TAG}={run_key} and reuse it{}; \
         otherwise RunJobFlow:\n{}",
        if args.no_reuse {
            " (with --no-reuse: refuse)"
        } else {
            ""
        },
        pretty(&plan.run_job_flow)
    ))
}

/// `--create-roles`: the plan's roles, policies and instance profile, then (when anything
/// changed) the wait until EMR can see them.
async fn create_roles(
    session: &Session,
    roles: &crate::render::iam::IamPlan,
) -> Result<(), CliError> {
    let out = session.out;
    let changes = iam::ensure_roles(&session.sdk, roles).await?;
    if changes.is_empty() {
        out.info("IAM roles already match the plan");
        return Ok(());
    }
    for change in &changes {
        out.info(&format!("IAM: {change}"));
    }
    let settle = if sdk::endpoint_overridden(&session.options) {
        Duration::ZERO
    } else {
        IAM_SETTLE
    };
    out.info("waiting for the IAM changes to propagate…");
    iam::await_propagation(&session.sdk, roles, settle, IAM_VISIBLE_WITHIN).await?;
    Ok(())
}

/// The run key's active cluster (refused with --no-reuse), or one started now: its id, and
/// whether it was already there.
async fn find_or_start_cluster(
    session: &Session,
    args: &ProvisionArgs,
    loaded: &LoadedPlan,
    request: &RunJobFlowRequest,
) -> Result<(String, bool), CliError> {
    let run_key = loaded.job.run_key();
    let existing = session
        .emr
        .active_clusters_tagged(RUN_KEY_TAG, &run_key)
        .await?;
    if let Some(oldest) = existing.first() {
        if args.no_reuse {
            return Err(CliError::failure(format!(
                "cluster {} ({}) is already active for run key {run_key}; with --no-reuse \
                 emrship does not start another",
                oldest.id, oldest.state,
            ))
            .with_hint(format!(
                "terminate it first (`emrship down {} --date {}`) or drop --no-reuse to reuse it",
                args.spec.spec.display(),
                loaded.job.date.format("%Y-%m-%d")
            )));
        }
        session.out.info(&format!(
            "reusing cluster {} ({}), already active for run key {run_key}",
            oldest.id, oldest.state
        ));
        return Ok((oldest.id.clone(), true));
    }
    let started = session.emr.run_job_flow(request).await.map_err(|e| {
        let about_roles = e.message.contains("role") || e.message.contains("InstanceProfile");
        let error = CliError::from(e);
        if !args.create_roles && about_roles {
            error.with_hint("does the plan's IAM role exist? `--create-roles` creates it")
        } else {
            error
        }
    })?;
    session
        .out
        .info(&format!("started cluster {started} for run key {run_key}"));
    keep_oldest(session, &run_key, started).await
}

/// Race safety for two provisions of the same run key at once (a retried command, a double
/// click): both found no cluster, both launched. Each then lists the run key's clusters again
/// and keeps the oldest; the one that started a younger cluster terminates its own. Only the
/// cluster this process started is ever terminated, so a cluster someone else is using is
/// never touched; both processes end up reporting the same, oldest cluster.
async fn keep_oldest(
    session: &Session,
    run_key: &str,
    started: String,
) -> Result<(String, bool), CliError> {
    let kept = crate::aws::launch::keep_oldest(&session.emr, run_key, started).await?;
    if let Some(duplicate) = &kept.terminated_duplicate {
        session.out.info(&format!(
            "another provision started cluster {} for run key {run_key} first; \
             terminated the duplicate {duplicate} and reusing {}",
            kept.cluster_id, kept.cluster_id
        ));
    }
    Ok((kept.cluster_id, kept.terminated_duplicate.is_some()))
}

// ---------------------------------------------------------------------------------------------
// submit

pub fn submit(args: SubmitArgs, out: Printer) -> CommandResult {
    let loaded = load_plan(&args.spec, out)?;
    block_on(submit_async(args, loaded, out))
}

async fn submit_async(args: SubmitArgs, loaded: LoadedPlan, out: Printer) -> CommandResult {
    let wait = wait_settings(&args.wait)?;
    let steps = &loaded.plan.add_job_flow_steps.steps;
    refuse_pending(
        &loaded.plan,
        &args.spec.spec.display().to_string(),
        args.dry_run,
        out,
    )?;
    if args.dry_run {
        let cluster = args
            .cluster_id
            .clone()
            .or_else(|| {
                args.cluster_name
                    .as_ref()
                    .map(|n| format!("(the cluster named {n})"))
            })
            .unwrap_or_default();
        let would = json!({
            "dry_run": true,
            "JobFlowId": cluster,
            "Steps": steps,
        });
        out.result(
            args.stdout.format,
            &would,
            &format!("Would AddJobFlowSteps:\n{}", pretty(&would)),
        )?;
        return Ok(ExitStatus::Success);
    }

    let session = Session::connect(&args.aws, Some(&loaded.job.region), out).await?;
    check_uploads(&session, &loaded.plan.uploads).await?;
    let cluster_id = match (&args.cluster_id, &args.cluster_name) {
        (Some(id), _) => id.clone(),
        (None, Some(name)) => cluster_by_name(&session, name).await?,
        (None, None) => unreachable!("clap requires --cluster-id or --cluster-name"),
    };
    let view = session.cluster(&cluster_id).await?;
    if !ACTIVE_CLUSTER_STATES.contains(&view.state.as_str()) {
        return Err(CliError::failure(format!(
            "cluster {cluster_id} is {}: steps go only to an active cluster",
            view.state
        ))
        .with_hint("start one with `emrship provision`"));
    }
    let active = watch::active_step_count(&view.steps);
    if active + steps.len() > watch::MAX_ACTIVE_STEPS {
        return Err(CliError::failure(format!(
            "cluster {cluster_id} has {active} pending or running steps; {} more would pass \
             EMR's limit of {} — wait for some to finish or use another cluster",
            steps.len(),
            watch::MAX_ACTIVE_STEPS
        )));
    }
    let step_ids = session.emr.add_steps(&cluster_id, steps).await?;
    out.info(&format!(
        "added {} step(s) to cluster {cluster_id}: {}",
        step_ids.len(),
        step_ids.join(", ")
    ));
    let mut result = json!({ "cluster_id": cluster_id, "step_ids": step_ids });
    if args.wait.wait {
        let view = session.cluster(&cluster_id).await?;
        let followed = follow(
            &session,
            &cluster_id,
            view,
            Target::Steps(step_ids.clone()),
            &wait,
        )
        .await?;
        followed.merge_into(&mut result);
        out.result(args.stdout.format, &result, &followed.text())?;
        return Ok(followed.exit);
    }
    out.result(args.stdout.format, &result, &step_ids.join("\n"))?;
    Ok(ExitStatus::Success)
}

/// The one active cluster named exactly `name`.
async fn cluster_by_name(session: &Session, name: &str) -> Result<String, CliError> {
    let active = session.emr.active_clusters().await?;
    let named: Vec<_> = active.iter().filter(|c| c.name == name).collect();
    match named.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => {
            let names: Vec<String> = active
                .iter()
                .take(20)
                .map(|c| format!("{} `{}` ({})", c.id, c.name, c.state))
                .collect();
            Err(CliError::failure(if names.is_empty() {
                format!(
                    "no active cluster is named `{name}` in region {} (there are no active \
                     clusters); start one with `emrship provision`",
                    session.region()
                )
            } else {
                format!(
                    "no active cluster is named `{name}` in region {}; active clusters:\n  {}",
                    session.region(),
                    names.join("\n  ")
                )
            }))
        }
        many => Err(CliError::failure(format!(
            "{} active clusters are named `{name}`; pick one with --cluster-id:\n  {}",
            many.len(),
            many.iter()
                .map(|c| format!("{} ({})", c.id, c.state))
                .collect::<Vec<_>>()
                .join("\n  ")
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// status and --wait

pub fn status(args: StatusArgs, out: Printer) -> CommandResult {
    block_on(status_async(args, out))
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(seconds: Option<i64>) -> Option<String> {
    seconds
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339())
}

fn view_json(view: &ClusterView, now: i64) -> Value {
    json!({
        "cluster_id": view.id,
        "name": view.name,
        "state": view.state,
        "reason": view.reason,
        "steps": view.steps.iter().map(|s| json!({
            "id": s.id, "name": s.name, "state": s.state, "reason": s.reason,
            "started": rfc3339(s.started),
            "ended": rfc3339(s.ended),
            "run_seconds": watch::step_run_time(s, now).map(|(d, _)| d.as_secs()),
        })).collect::<Vec<_>>(),
    })
}

fn view_text(view: &ClusterView, now: i64) -> String {
    let mut lines = vec![format!(
        "cluster {} `{}`: {}{}",
        view.id,
        view.name,
        view.state,
        view.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )];
    for step in &view.steps {
        lines.push(format!(
            "  step {} `{}`: {}{}{}",
            step.id,
            step.name,
            step.state,
            watch::step_run_time(step, now)
                .map(|t| format!(", {}", watch::describe_run_time(t)))
                .unwrap_or_default(),
            step.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    lines.join("\n")
}

async fn status_async(args: StatusArgs, out: Printer) -> CommandResult {
    let wait = wait_settings(&args.wait)?;
    let session = Session::connect(&args.aws, None, out).await?;
    let view = session.cluster(&args.cluster).await?;
    if let Some(step) = &args.step {
        if !view.steps.iter().any(|s| &s.id == step) {
            return Err(CliError::failure(format!(
                "cluster {} has no step {step}; its steps: {}",
                view.id,
                view.steps
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if !args.wait.wait {
        let mut shown = view.clone();
        if let Some(step) = &args.step {
            shown.steps.retain(|s| &s.id == step);
        }
        let now = now_seconds();
        out.result(
            args.stdout.format,
            &view_json(&shown, now),
            &view_text(&shown, now),
        )?;
        return Ok(ExitStatus::Success);
    }
    let target = watch::status_target(args.step.as_deref(), &view.steps);
    let cluster_id = view.id.clone();
    let followed = follow(&session, &cluster_id, view, target, &wait).await?;
    let mut result = json!({ "cluster_id": cluster_id });
    followed.merge_into(&mut result);
    out.result(args.stdout.format, &result, &followed.text())?;
    Ok(followed.exit)
}

/// How a watch ended, with the last snapshot.
struct Followed {
    exit: ExitStatus,
    outcome: &'static str,
    summary: String,
    last: ClusterView,
    failed_steps: Vec<String>,
}

impl Followed {
    fn merge_into(&self, result: &mut Value) {
        let view = view_json(&self.last, now_seconds());
        result["outcome"] = json!(self.outcome);
        result["summary"] = json!(self.summary);
        result["state"] = view["state"].clone();
        result["steps"] = view["steps"].clone();
        result["failed_steps"] = json!(self.failed_steps);
    }

    fn text(&self) -> String {
        format!(
            "{}: {}\n{}",
            self.outcome,
            self.summary,
            view_text(&self.last, now_seconds())
        )
    }
}

/// Polls the cluster until the watch ends or `--timeout` passes, printing each transition with
/// the elapsed time on stderr. Throttling and dropped connections (after the SDK's own
/// retries) only slow the polling down; the timeout still bounds the whole wait.
async fn follow(
    session: &Session,
    cluster_id: &str,
    first: ClusterView,
    target: Target,
    settings: &WaitSettings,
) -> Result<Followed, CliError> {
    let out = session.out;
    let started = Instant::now();
    let deadline = started + settings.timeout;
    let mut backoff = Backoff::new(settings.poll);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut jitter = Jitter::new(seed);
    let mut watch = Watch::new(target);
    let mut snapshot = Some(first);
    let mut last = None;
    loop {
        let view = match snapshot.take() {
            Some(view) => view,
            None => match session.emr.cluster_view(cluster_id).await {
                Ok(view) => view,
                Err(e) if e.transient => {
                    out.info(&format!("{e}; polling again later"));
                    let delay = backoff.throttled(jitter.next());
                    let now = Instant::now();
                    if now >= deadline {
                        return timed_out(cluster_id, last, settings, out);
                    }
                    tokio::time::sleep(delay.min(deadline - now)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
        };
        let (transitions, outcome) = watch.observe(&view);
        for t in &transitions {
            out.info(&watch::format_transition(started.elapsed(), t));
        }
        // A step's logs explain its failure: for steps we follow, or any step that failed
        // while we watched the cluster (not failures from before).
        let follows_steps = matches!(watch.target(), Target::Steps(_));
        for t in &transitions {
            if let Subject::Step { id, .. } = &t.subject {
                if t.to == "FAILED" && (follows_steps || t.from.is_some()) {
                    super::logs::print_failure_diagnosis(&session.sdk, cluster_id, id, out).await;
                }
            }
        }
        match outcome {
            Some(Outcome::Completed(summary)) => {
                out.info(&format!("completed: {summary}"));
                return Ok(Followed {
                    exit: ExitStatus::Success,
                    outcome: "completed",
                    summary,
                    last: view,
                    failed_steps: Vec::new(),
                });
            }
            Some(Outcome::Failed {
                summary,
                failed_steps,
            }) => {
                out.info(&format!("failed: {summary}"));
                return Ok(Followed {
                    exit: ExitStatus::RunFailed,
                    outcome: "failed",
                    summary,
                    last: view,
                    failed_steps,
                });
            }
            None => {}
        }
        let changed = !transitions.is_empty();
        last = Some(view);
        let now = Instant::now();
        if now >= deadline {
            return timed_out(cluster_id, last, settings, out);
        }
        let delay = backoff.next(changed, jitter.next());
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}

fn timed_out(
    cluster_id: &str,
    last: Option<ClusterView>,
    settings: &WaitSettings,
    out: Printer,
) -> Result<Followed, CliError> {
    let state = last.as_ref().map_or("unknown", |v| v.state.as_str());
    let summary = format!(
        "gave up waiting after {} (--timeout); cluster {cluster_id} is {state} and still goes \
         on: `emrship status {cluster_id} --wait` follows it again",
        settings.timeout_text
    );
    out.info(&format!("timeout: {summary}"));
    Ok(Followed {
        exit: ExitStatus::TimedOut,
        outcome: "timeout",
        summary,
        last: last.unwrap_or_else(|| ClusterView {
            id: cluster_id.to_string(),
            ..ClusterView::default()
        }),
        failed_steps: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// terminate and down

pub fn terminate(args: TerminateArgs, out: Printer) -> CommandResult {
    block_on(terminate_async(args, out))
}

async fn terminate_async(args: TerminateArgs, out: Printer) -> CommandResult {
    let session = Session::connect(&args.aws, None, out).await?;
    let view = session.cluster(&args.cluster).await?;
    if !ACTIVE_CLUSTER_STATES.contains(&view.state.as_str()) {
        let text = format!("cluster {} is already {}", view.id, view.state);
        out.info(&text);
        out.result(
            args.stdout.format,
            &json!({ "cluster_id": view.id, "state": view.state, "terminated": false }),
            &text,
        )?;
        return Ok(ExitStatus::Success);
    }
    if args.dry_run {
        out.result(
            args.stdout.format,
            &json!({ "dry_run": true, "would_terminate": [view.id], "state": view.state }),
            &format!("would terminate cluster {} ({})", view.id, view.state),
        )?;
        return Ok(ExitStatus::Success);
    }
    session
        .emr
        .terminate(std::slice::from_ref(&view.id))
        .await
        .map_err(termination_failure)?;
    let after = session.cluster(&view.id).await?;
    let ui_groups = ui_groups_of(&session, &view.additional_master_security_groups).await;
    let mut result = json!({ "cluster_id": after.id, "state": after.state, "terminated": true });
    if !ui_groups.is_empty() {
        result["ui_security_groups"] = kept_ui_groups(&ui_groups, out);
    }
    out.result(
        args.stdout.format,
        &result,
        &format!("cluster {} {}", after.id, after.state),
    )?;
    Ok(ExitStatus::Success)
}

fn termination_failure(e: AwsError) -> CliError {
    let protected = e.message.contains("termination protected");
    let error = CliError::from(e);
    if protected {
        error.with_hint(
            "turn termination protection off first: `aws emr modify-cluster-attributes \
             --cluster-id <id> --no-termination-protected`",
        )
    } else {
        error
    }
}

pub fn down(args: DownArgs, out: Printer) -> CommandResult {
    let loaded = load_plan(&args.spec, out)?;
    block_on(down_async(args, loaded, out))
}

async fn down_async(args: DownArgs, loaded: LoadedPlan, out: Printer) -> CommandResult {
    let run_key = loaded.job.run_key();
    let session = Session::connect(&args.aws, Some(&loaded.job.region), out).await?;
    let tagged = session
        .emr
        .active_clusters_tagged(RUN_KEY_TAG, &run_key)
        .await?;
    let ids: Vec<String> = tagged.iter().map(|c| c.id.clone()).collect();
    if ids.is_empty() {
        let text = format!("no active cluster for run key {run_key}");
        out.info(&text);
        out.result(
            args.stdout.format,
            &json!({ "run_key": run_key, "terminated": [] }),
            &text,
        )?;
        return Ok(ExitStatus::Success);
    }
    if args.dry_run {
        out.result(
            args.stdout.format,
            &json!({ "dry_run": true, "run_key": run_key, "would_terminate": ids }),
            &format!("would terminate {} (run key {run_key})", ids.join(", ")),
        )?;
        return Ok(ExitStatus::Success);
    }
    session
        .emr
        .terminate(&ids)
        .await
        .map_err(termination_failure)?;
    let mut result = json!({ "run_key": run_key, "terminated": ids });
    if !loaded.plan.security_groups.is_empty() {
        // Every group of the spec, whichever VPC it is in: `down` ends the spec's run.
        let groups = match Ec2::new(&session.sdk)
            .ui_groups(&loaded.job.name, None)
            .await
        {
            Ok(groups) => groups,
            Err(e) => {
                out.info(&format!(
                    "could not look up the spec's UI security group ({e}); it is kept either way"
                ));
                Vec::new()
            }
        };
        result["ui_security_groups"] = kept_ui_groups(&groups, out);
    }
    out.result(
        args.stdout.format,
        &result,
        &format!("terminated {} (run key {run_key})", ids.join(", ")),
    )?;
    Ok(ExitStatus::Success)
}
