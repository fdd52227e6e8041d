//! `emrship schedule` / `emrship unschedule`: the scheduler Lambda, its role, its EventBridge
//! rule, the rule's target and invoke permission, and the plan template it reads.
//!
//! Every request comes from the pure renderer (`render::schedule`); `--dry-run` prints them
//! and makes no AWS call at all. A real run checks everything it can before its first change
//! (spec, EMR roles, the Lambda zip), then brings each resource to the rendered request,
//! touching only what differs: a second run sends no mutating call.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::plan::{load_plan, load_template, LoadedPlan};
use super::{
    block_on, CliError, CommandResult, ExitStatus, OutputFormat, Printer, ScheduleArgs,
    UnscheduleArgs,
};
use crate::aws::events::Events;
use crate::aws::lambda::{statement_id, statement_source_arn, Lambda};
use crate::aws::sdk::{self, require_credentials};
use crate::aws::{iam, s3};
use crate::bundle::elf::{self, Machine};
use crate::bundle::lambda::{build_lambda_zip, lambda_zip_bytes, LambdaArch, LambdaBuild};
use crate::bundle::zigbuild;
use crate::render::artifacts::Digest256;
use crate::render::iam::IamPlan;
use crate::render::schedule::{
    schedule_requests, ScheduleInputs, ScheduleRequests, SCHEDULER_POLICY, TARGET_ID,
};
use crate::spec::s3::S3Uri;

/// How long CreateFunction keeps trying while IAM propagates a role created moments ago.
const ROLE_PROPAGATION: Duration = Duration::from_secs(90);
/// How long a function update may take before we give up waiting for it.
const FUNCTION_READY_WITHIN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LambdaArchArg {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl LambdaArchArg {
    pub fn lambda_name(self) -> &'static str {
        match self {
            LambdaArchArg::X86_64 => "x86_64",
            LambdaArchArg::Arm64 => "arm64",
        }
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, Serialize)]
struct Change {
    resource: &'static str,
    name: String,
    /// created | updated | uploaded | unchanged | deleted | absent | kept
    action: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

fn change(resource: &'static str, name: impl Into<String>, action: &'static str) -> Change {
    Change {
        resource,
        name: name.into(),
        action,
        detail: String::new(),
    }
}

fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("rendered requests always serialize")
}

/// The spec's schedule, or the error a spec without one gets (a spec error: exit 2).
fn require_schedule(loaded: &LoadedPlan, spec: &Path, command: &str) -> Result<(), CliError> {
    if loaded.plan.schedule.is_some() {
        return Ok(());
    }
    Err(CliError::invalid(format!(
        "{}: the spec has no `schedule:`, so there is nothing to {command}",
        spec.display()
    ))
    .with_hint("add e.g. `schedule: { cron: \"cron(0 6 * * ? *)\", date: yesterday }`"))
}

/// The Lambda zip: given, zipped from a given binary, or built.
struct LambdaZip {
    bytes: Vec<u8>,
    source: String,
}

/// The zip must hold an executable `bootstrap`, or the function fails on its first tick
/// instead of now.
fn check_zip(bytes: &[u8], source: &str, arch: LambdaArchArg) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("{source} is not a zip file ({e})"))?;
    let mut entry = archive.by_name("bootstrap").map_err(|_| {
        format!(
            "{source} has no `bootstrap` at its top level; a provided.al2023 function runs the \
             file named `bootstrap` (build it with `emrship schedule` or pass --lambda-binary)"
        )
    })?;
    if entry.unix_mode().is_none_or(|mode| mode & 0o111 == 0) {
        return Err(format!(
            "`bootstrap` in {source} is not executable; Lambda cannot start it (zip it with \
             mode 0755, or pass --lambda-binary and let emrship zip it)"
        ));
    }
    let mut binary = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut binary)
        .map_err(|e| format!("cannot read `bootstrap` in {source}: {e}"))?;
    // A script `bootstrap` is legal; an executable for the other architecture never starts.
    if let Ok(facts) = elf::inspect(&binary) {
        let fits = matches!(
            (facts.machine, arch),
            (Machine::X86_64, LambdaArchArg::X86_64) | (Machine::Aarch64, LambdaArchArg::Arm64)
        );
        if !fits {
            let built_for = match facts.machine {
                Machine::X86_64 => "x86_64".to_string(),
                Machine::Aarch64 => "arm64".to_string(),
                Machine::Other(code) => format!("ELF machine {code}"),
            };
            return Err(format!(
                "`bootstrap` in {source} is built for {built_for}, but the function is {}; pass \
                 --arch to match, or a binary built for {}",
                arch.lambda_name(),
                arch.lambda_name()
            ));
        }
    }
    Ok(())
}

fn lambda_zip(args: &ScheduleArgs, name: &str) -> Result<LambdaZip, String> {
    let zip = if let Some(path) = &args.lambda_zip {
        LambdaZip {
            bytes: std::fs::read(path)
                .map_err(|e| format!("cannot read --lambda-zip {}: {e}", path.display()))?,
            source: path.display().to_string(),
        }
    } else if let Some(binary) = &args.lambda_binary {
        let bytes = std::fs::read(binary)
            .map_err(|e| format!("cannot read --lambda-binary {}: {e}", binary.display()))?;
        LambdaZip {
            bytes: lambda_zip_bytes(&bytes)?,
            source: format!("{} (zipped as bootstrap)", binary.display()),
        }
    } else {
        build_zip(args, name)?
    };
    check_zip(&zip.bytes, &zip.source, args.arch)?;
    Ok(zip)
}

/// Builds `emrship-lambda` for the chosen architecture (release profile) and zips it under
/// target/emrship/<name>/.
fn build_zip(args: &ScheduleArgs, name: &str) -> Result<LambdaZip, String> {
    let arch = match args.arch {
        LambdaArchArg::X86_64 => LambdaArch::X86_64,
        LambdaArchArg::Arm64 => LambdaArch::Arm64,
    };
    let source_dir = zigbuild::source_dir().map_err(|e| {
        format!(
            "{e}; or pass --lambda-zip FILE / --lambda-binary FILE (an emrship-lambda built \
             for provided.al2023)"
        )
    })?;
    let build = LambdaBuild {
        source_dir,
        profile: "release".into(),
        target_dir: None,
        out: PathBuf::from(format!(
            "target/emrship/{name}/lambda-{}.zip",
            arch.as_lambda_name()
        )),
    };
    let zip = build_lambda_zip(arch, &build)?;
    Ok(LambdaZip {
        bytes: std::fs::read(&zip).map_err(|e| format!("cannot read {}: {e}", zip.display()))?,
        source: zip.display().to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// schedule

pub fn schedule(args: ScheduleArgs, out: Printer) -> CommandResult {
    let (loaded, template) = load_template(&args.spec, out)?;
    require_schedule(&loaded, &args.spec.spec, "schedule")?;
    let template = template.to_json().into_bytes();
    block_on(schedule_async(args, loaded, template, out))
}

async fn schedule_async(
    args: ScheduleArgs,
    loaded: LoadedPlan,
    template: Vec<u8>,
    out: Printer,
) -> CommandResult {
    let plan = &loaded.plan;
    let schedule = plan.schedule.clone().expect("checked by require_schedule");
    let spec_hint = args.spec.spec.display().to_string();
    if plan.uploads.iter().any(|u| u.pending) {
        let message = "the job bundle is not deployed yet: every scheduled run would point at \
                       `pending-build`";
        let hint = format!(
            "run `emrship deploy {spec_hint}` (same overlays and --set values) first, then \
             `emrship schedule` from the same folder"
        );
        if !args.dry_run {
            return Err(CliError::failure(message).with_hint(hint));
        }
        out.warn(&format!("{message}; {hint}"));
    }
    let architecture = args.arch.lambda_name().to_string();
    let region = args
        .aws
        .region
        .clone()
        .unwrap_or_else(|| loaded.job.region.clone());

    if args.dry_run {
        // No AWS call, no build: the zip is shown by digest when one was given.
        let code = if args.lambda_zip.is_some() || args.lambda_binary.is_some() {
            let zip = lambda_zip(&args, &loaded.job.name).map_err(CliError::failure)?;
            Digest256::of(&zip.bytes)
        } else {
            Digest256 {
                sha256: crate::render::artifacts::PENDING_DIGEST.into(),
                bytes: 0,
            }
        };
        let inputs = ScheduleInputs {
            template: Digest256::of(&template),
            code,
            architecture,
            region,
            account: loaded.job.account_id.clone(),
        };
        let requests = schedule_requests(plan, &inputs).expect("the plan has a schedule");
        print_requests(&requests, args.format, out)?;
        return Ok(ExitStatus::Success);
    }

    let options = args.aws.options(Some(&loaded.job.region));
    let config = sdk::load(&options).await;
    require_credentials(&config)
        .await
        .map_err(CliError::failure)?;

    // Before any change: the EMR roles the function passes must exist (their ARNs also tell
    // the account), and the zip must be usable.
    out.info("checking the EMR roles the scheduled runs use…");
    let mut account = None;
    let mut missing = Vec::new();
    for role in [
        &loaded.job.roles.service,
        &loaded.job.roles.instance_profile,
    ] {
        match iam::role_arn(&config, role).await? {
            Some(arn) => account = account.or_else(|| arn.split(':').nth(4).map(str::to_string)),
            None => missing.push(role.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(CliError::failure(format!(
            "the EMR role{} {} that scheduled runs pass to EMR {} not exist. Nothing was \
             created.",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(" and "),
            if missing.len() > 1 { "do" } else { "does" }
        ))
        .with_hint(format!(
            "run `emrship provision --create-roles {spec_hint}` (or create them yourself) first"
        )));
    }
    let account = account.filter(|a| !a.is_empty());
    if let (Some(actual), Some(spec)) = (&account, &loaded.job.account_id) {
        if actual != spec {
            return Err(CliError::failure(format!(
                "the spec's account_id is {spec}, but these credentials are in account \
                 {actual}: the scheduler's policy would name the wrong account. Nothing was \
                 created."
            ))
            .with_hint(format!("fix `account_id` or use credentials for {spec}")));
        }
    }
    let zip = lambda_zip(&args, &loaded.job.name).map_err(CliError::failure)?;
    let inputs = ScheduleInputs {
        template: Digest256::of(&template),
        code: Digest256::of(&zip.bytes),
        architecture,
        region,
        account: account.clone(),
    };
    let requests = schedule_requests(plan, &inputs).expect("the plan has a schedule");
    let mut changes = Vec::new();

    // The plan template.
    let template_uri = S3Uri::parse(&schedule.plan_object).map_err(CliError::failure)?;
    let s3 = s3::client(&config, sdk::endpoint_overridden(&options));
    s3::check_bucket(&s3, &template_uri)
        .await
        .map_err(CliError::failure)?;
    let uploaded = s3::upload_once(
        &s3,
        &template_uri,
        Arc::new(template),
        &inputs.template,
        Arc::new(|_| {}),
    )
    .await
    .map_err(CliError::failure)?;
    changes.push(change(
        "plan template",
        schedule.plan_object.clone(),
        if uploaded.uploaded {
            "uploaded"
        } else {
            "unchanged"
        },
    ));

    // The scheduler role and its inline policy (nothing else of the plan's IAM).
    let role_plan = IamPlan(
        plan.iam
            .0
            .iter()
            .filter(|(name, _)| **name == schedule.role)
            .map(|(name, role)| (name.clone(), role.clone()))
            .collect(),
    );
    out.info(&format!("bringing role {} to the plan…", schedule.role));
    let role_changes = iam::ensure_roles(&config, &role_plan).await?;
    let role_created = role_changes.iter().any(|c| c.starts_with("created role"));
    changes.push(Change {
        resource: "iam role",
        name: schedule.role.clone(),
        action: if role_created {
            "created"
        } else if role_changes.is_empty() {
            "unchanged"
        } else {
            "updated"
        },
        detail: role_changes.join("; "),
    });

    // The function.
    let lambda = Lambda::new(&config);
    let wanted = &requests.create_function;
    let function_arn = match lambda.function(&wanted.function_name).await? {
        None => {
            out.info(&format!("creating function {}…", wanted.function_name));
            let arn = lambda
                .create_function(wanted, &zip.bytes, ROLE_PROPAGATION)
                .await?;
            lambda
                .wait_ready(&wanted.function_name, FUNCTION_READY_WITHIN)
                .await?;
            changes.push(change("lambda function", &wanted.function_name, "created"));
            arn
        }
        Some(current) => {
            let mut updated = Vec::new();
            if !current.code_matches(wanted) {
                out.info(&format!("updating the code of {}…", wanted.function_name));
                lambda
                    .wait_ready(&wanted.function_name, FUNCTION_READY_WITHIN)
                    .await?;
                lambda.update_code(wanted, &zip.bytes).await?;
                updated.push("code");
            }
            if !current.configuration_matches(wanted) {
                out.info(&format!(
                    "updating the configuration of {}…",
                    wanted.function_name
                ));
                lambda
                    .wait_ready(&wanted.function_name, FUNCTION_READY_WITHIN)
                    .await?;
                lambda.update_configuration(wanted).await?;
                updated.push("configuration");
            }
            let tags = current.missing_tags(wanted);
            if !tags.is_empty() {
                lambda.tag(&current.arn, tags).await?;
                updated.push("tags");
            }
            if !updated.is_empty() {
                lambda
                    .wait_ready(&wanted.function_name, FUNCTION_READY_WITHIN)
                    .await?;
            }
            changes.push(Change {
                resource: "lambda function",
                name: wanted.function_name.clone(),
                action: if updated.is_empty() {
                    "unchanged"
                } else {
                    "updated"
                },
                detail: updated.join(", "),
            });
            current.arn
        }
    };

    // The rule, its target, the permission.
    let events = Events::new(&config);
    let rule = events.rule(&requests.put_rule.name).await?;
    let rule_arn = match &rule {
        Some(found) if found.matches(&requests.put_rule) => {
            changes.push(change(
                "eventbridge rule",
                &requests.put_rule.name,
                "unchanged",
            ));
            found.arn.clone()
        }
        _ => {
            let arn = events.put_rule(&requests.put_rule).await?;
            changes.push(change(
                "eventbridge rule",
                &requests.put_rule.name,
                if rule.is_some() { "updated" } else { "created" },
            ));
            arn
        }
    };
    let mut put_targets = requests.put_targets.clone();
    for target in &mut put_targets.targets {
        target.arn = function_arn.clone();
    }
    let targets = events.targets(&put_targets.rule).await?;
    let ours = targets.iter().find(|t| t.id == TARGET_ID);
    match ours {
        Some(t) if t.arn == function_arn => {
            changes.push(change("rule target", TARGET_ID, "unchanged"));
        }
        _ => {
            events.put_targets(&put_targets).await?;
            changes.push(change(
                "rule target",
                TARGET_ID,
                if ours.is_some() { "updated" } else { "created" },
            ));
        }
    }
    let mut permission = requests.add_permission.clone();
    permission.source_arn = rule_arn.clone();
    let statements = lambda.policy_statements(&permission.function_name).await?;
    let existing = statements
        .iter()
        .find(|s| statement_id(s) == Some(permission.statement_id.as_str()));
    match existing {
        Some(s) if statement_source_arn(s) == Some(rule_arn.as_str()) => {
            changes.push(change(
                "invoke permission",
                &permission.statement_id,
                "unchanged",
            ));
        }
        Some(_) => {
            lambda
                .remove_permission(&permission.function_name, &permission.statement_id)
                .await?;
            lambda.add_permission(&permission).await?;
            changes.push(change(
                "invoke permission",
                &permission.statement_id,
                "updated",
            ));
        }
        None => {
            lambda.add_permission(&permission).await?;
            changes.push(change(
                "invoke permission",
                &permission.statement_id,
                "created",
            ));
        }
    }

    let result = json!({
        "schedule": requests.summary,
        "rule_arn": rule_arn,
        "function_arn": function_arn,
        "code": { "source": zip.source, "code_sha256": wanted.code.code_sha256 },
        "changes": changes,
    });
    print_changes(&result, &changes, args.format, out)?;
    Ok(ExitStatus::Success)
}

fn print_requests(
    requests: &ScheduleRequests,
    format: OutputFormat,
    out: Printer,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => out.json(requests),
        OutputFormat::Text => {
            let mut text = format!("Schedule (dry run; nothing sent)\n  {}\n", requests.summary);
            let value = serde_json::to_value(requests).expect("requests serialize");
            for (name, request) in value.as_object().into_iter().flatten() {
                if name == "summary" {
                    continue;
                }
                text.push_str(&format!("\n{}\n", operation_name(name)));
                for line in pretty(request).lines() {
                    text.push_str(&format!("  {line}\n"));
                }
            }
            out.data(text.trim_end())
        }
    }
}

/// `put_rule` → `PutRule` (the API operation each rendered request is for).
fn operation_name(field: &str) -> String {
    match field {
        "put_plan_template" => "PutObject (plan template)".into(),
        other => other
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |c| {
                    c.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect(),
    }
}

fn print_changes(
    result: &Value,
    changes: &[Change],
    format: OutputFormat,
    out: Printer,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => out.json(result),
        OutputFormat::Text => {
            let mut text = String::new();
            if let Some(summary) = result["schedule"].as_str() {
                text.push_str(&format!("Schedule: {summary}\n"));
            }
            for c in changes {
                text.push_str(&format!("  {:<9} {:<17} {}", c.action, c.resource, c.name));
                if !c.detail.is_empty() {
                    text.push_str(&format!(" ({})", c.detail));
                }
                text.push('\n');
            }
            out.data(text.trim_end())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// unschedule

pub fn unschedule(args: UnscheduleArgs, out: Printer) -> CommandResult {
    let loaded = load_plan(&args.spec, out)?;
    require_schedule(&loaded, &args.spec.spec, "unschedule")?;
    block_on(unschedule_async(args, loaded, out))
}

async fn unschedule_async(args: UnscheduleArgs, loaded: LoadedPlan, out: Printer) -> CommandResult {
    let schedule = loaded
        .plan
        .schedule
        .clone()
        .expect("checked by require_schedule");
    let template_uri = S3Uri::parse(&schedule.plan_object).map_err(CliError::failure)?;
    // In removal order: nothing points at a resource after it is gone.
    let steps = [
        (
            "invoke permission",
            crate::render::schedule::STATEMENT_ID.to_string(),
            "RemovePermission",
        ),
        ("rule target", TARGET_ID.to_string(), "RemoveTargets"),
        ("eventbridge rule", schedule.rule_name.clone(), "DeleteRule"),
        (
            "lambda function",
            schedule.function_name.clone(),
            "DeleteFunction",
        ),
        (
            "iam role policy",
            SCHEDULER_POLICY.to_string(),
            "DeleteRolePolicy",
        ),
        ("iam role", schedule.role.clone(), "DeleteRole"),
        (
            "plan template",
            schedule.plan_object.clone(),
            "DeleteObject",
        ),
    ];
    if args.dry_run {
        let requests: Vec<Value> = steps
            .iter()
            .map(|(resource, name, operation)| {
                json!({ "operation": operation, "resource": resource, "name": name })
            })
            .collect();
        match args.format {
            OutputFormat::Json => out.json(&json!({ "requests": requests }))?,
            OutputFormat::Text => {
                let mut text = String::from("Unschedule (dry run; nothing sent)\n");
                for (resource, name, operation) in &steps {
                    text.push_str(&format!("  {operation:<17} {resource} {name}\n"));
                }
                out.data(text.trim_end())?;
            }
        }
        return Ok(ExitStatus::Success);
    }

    let options = args.aws.options(Some(&loaded.job.region));
    let config = sdk::load(&options).await;
    require_credentials(&config)
        .await
        .map_err(CliError::failure)?;
    let lambda = Lambda::new(&config);
    let events = Events::new(&config);
    let gone = |found: bool| if found { "deleted" } else { "absent" };
    let mut changes = Vec::new();

    let removed = lambda
        .remove_permission(
            &schedule.function_name,
            crate::render::schedule::STATEMENT_ID,
        )
        .await?;
    changes.push(change(
        "invoke permission",
        crate::render::schedule::STATEMENT_ID,
        gone(removed),
    ));

    let targets = events.targets(&schedule.rule_name).await?;
    let ours = targets.iter().any(|t| t.id == TARGET_ID);
    if ours {
        events
            .remove_targets(&schedule.rule_name, &[TARGET_ID.to_string()])
            .await?;
    }
    changes.push(change("rule target", TARGET_ID, gone(ours)));
    let others: Vec<&str> = targets
        .iter()
        .filter(|t| t.id != TARGET_ID)
        .map(|t| t.id.as_str())
        .collect();
    if others.is_empty() {
        let found = events.rule(&schedule.rule_name).await?.is_some();
        if found {
            events.delete_rule(&schedule.rule_name).await?;
        }
        changes.push(change("eventbridge rule", &schedule.rule_name, gone(found)));
    } else {
        // Someone else's targets are on the rule: deleting it would break them.
        changes.push(Change {
            resource: "eventbridge rule",
            name: schedule.rule_name.clone(),
            action: "kept",
            detail: format!("it has other targets: {}", others.join(", ")),
        });
    }

    let deleted = lambda.delete_function(&schedule.function_name).await?;
    changes.push(change(
        "lambda function",
        &schedule.function_name,
        gone(deleted),
    ));

    let (policy, role) = iam::delete_role_and_policy(&config, &schedule.role, SCHEDULER_POLICY)
        .await
        .map_err(|e| {
            CliError::from(e).with_hint(format!(
                "role {} holds more than emrship's inline policy `{SCHEDULER_POLICY}`: detach \
                 or delete the rest, then run `emrship unschedule` again",
                schedule.role
            ))
        })?;
    changes.push(change("iam role policy", SCHEDULER_POLICY, gone(policy)));
    changes.push(change("iam role", &schedule.role, gone(role)));

    // Only a 404 means the template is gone: an AccessDenied HEAD is an error, not "absent".
    let s3 = s3::client(&config, sdk::endpoint_overridden(&options));
    let present = s3::delete_if_present(&s3, &template_uri).await?;
    changes.push(change(
        "plan template",
        &schedule.plan_object,
        gone(present),
    ));

    let result = json!({ "changes": changes });
    match args.format {
        OutputFormat::Json => out.json(&result)?,
        OutputFormat::Text => {
            let mut text = String::from("Unschedule\n");
            for c in &changes {
                text.push_str(&format!("  {:<9} {:<17} {}", c.action, c.resource, c.name));
                if !c.detail.is_empty() {
                    text.push_str(&format!(" ({})", c.detail));
                }
                text.push('\n');
            }
            out.data(text.trim_end())?;
        }
    }
    Ok(ExitStatus::Success)
}
