//! `emrship schedule` / `emrship unschedule`: the scheduler Lambda, its role, its EventBridge
//! rule, the rule's target and invoke permission, and the plan template it reads.
//!
//! Every request comes from the pure renderer (`render::schedule`); `--dry-run` prints them
//! and makes no AWS call at all. A real run checks everything it can before its first change
//! (spec, EMR roles, the Lambda zip), then brings each resource to the rendered request,
//! touching only what differs: a second run sends no mutating call.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use super::plan::{load_plan, load_template, LoadedPlan};
use super::preflight::refuse_pending;
use super::{
    block_on, CliError, CommandResult, ExitStatus, OutputFormat, Printer, ScheduleArgs,
    UnscheduleArgs,
};
use crate::aws::change::Change;
use crate::aws::events::Events;
use crate::aws::lambda::Lambda;
use crate::aws::sdk::{self, require_credentials};
use crate::aws::{iam, s3};
use crate::bundle::elf::{self, Machine};
use crate::bundle::lambda::{build_lambda_zip, lambda_zip_bytes, LambdaArch, LambdaBuild};
use crate::bundle::zigbuild;
use crate::render::artifacts::Digest256;
use crate::render::iam::IamPlan;
use crate::render::schedule::{
    schedule_requests, ScheduleInputs, ScheduleRequests, SCHEDULER_POLICY, STATEMENT_ID, TARGET_ID,
};
use crate::spec::s3::S3Uri;

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
    refuse_pending(
        plan,
        &args.spec.spec.display().to_string(),
        args.dry_run,
        out,
    )?;
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
        let account = loaded.job.account_id.clone();
        let requests = requests(&args, &loaded, &template, code, account);
        print_requests(&requests, args.stdout.format, out)?;
        return Ok(ExitStatus::Success);
    }

    let options = args.aws.options(Some(&loaded.job.region));
    let config = sdk::load(&options).await;
    require_credentials(&config)
        .await
        .map_err(CliError::failure)?;
    // Before any change: the EMR roles the function passes must exist (their ARNs also tell
    // the account), and the zip must be usable.
    let account = check_emr_roles(&config, &args, &loaded, out).await?;
    let zip = lambda_zip(&args, &loaded.job.name).map_err(CliError::failure)?;
    let requests = requests(
        &args,
        &loaded,
        &template,
        Digest256::of(&zip.bytes),
        account,
    );

    let s3 = s3::client(&config, sdk::endpoint_overridden(&options));
    let template_uri = S3Uri::parse(&schedule.plan_object).map_err(CliError::failure)?;
    let template_change = s3::upsert_object(&s3, "plan template", &template_uri, template)
        .await
        .map_err(CliError::failure)?;
    out.info(&format!("bringing role {} to the plan…", schedule.role));
    let role_changes = iam::ensure_roles(&config, &scheduler_role(plan, &schedule.role)).await?;
    let role_change = iam::role_change(&schedule.role, &role_changes);

    let lambda = Lambda::new(&config);
    let report = |line: &str| out.info(line);
    let (function_arn, function_change) = lambda
        .upsert_function(&requests.create_function, &zip.bytes, &report)
        .await?;
    let events = Events::new(&config);
    let (rule_arn, rule_change) = events.upsert_rule(&requests.put_rule).await?;
    let mut put_targets = requests.put_targets.clone();
    for target in &mut put_targets.targets {
        target.arn = function_arn.clone();
    }
    let target_change = events.upsert_target(&put_targets, TARGET_ID).await?;
    let mut permission = requests.add_permission.clone();
    permission.source_arn = rule_arn.clone();
    let permission_change = lambda.upsert_permission(&permission).await?;

    let changes = [
        template_change,
        role_change,
        function_change,
        rule_change,
        target_change,
        permission_change,
    ];
    let result = json!({
        "schedule": requests.summary,
        "rule_arn": rule_arn,
        "function_arn": function_arn,
        "code": { "source": zip.source, "code_sha256": requests.create_function.code.code_sha256 },
        "changes": changes,
    });
    let heading = format!("Schedule: {}", requests.summary);
    print_changes(&result, &heading, &changes, args.stdout.format, out)?;
    Ok(ExitStatus::Success)
}

/// Every request `schedule` sends, rendered from the plan (`render::schedule`).
fn requests(
    args: &ScheduleArgs,
    loaded: &LoadedPlan,
    template: &[u8],
    code: Digest256,
    account: Option<String>,
) -> ScheduleRequests {
    let inputs = ScheduleInputs {
        template: Digest256::of(template),
        code,
        architecture: args.arch.lambda_name().to_string(),
        region: args
            .aws
            .region
            .clone()
            .unwrap_or_else(|| loaded.job.region.clone()),
        account,
    };
    schedule_requests(&loaded.plan, &inputs).expect("the plan has a schedule")
}

/// The scheduler's role and its inline policy: nothing else of the plan's IAM.
fn scheduler_role(plan: &crate::plan::Plan, role: &str) -> IamPlan {
    IamPlan(
        plan.iam
            .0
            .iter()
            .filter(|(name, _)| *name == role)
            .map(|(name, documents)| (name.clone(), documents.clone()))
            .collect(),
    )
}

/// The EMR roles the scheduled runs pass to EMR must exist, in the spec's account: returns
/// that account (from the roles' ARNs).
async fn check_emr_roles(
    config: &aws_config::SdkConfig,
    args: &ScheduleArgs,
    loaded: &LoadedPlan,
    out: Printer,
) -> Result<Option<String>, CliError> {
    out.info("checking the EMR roles the scheduled runs use…");
    let roles = &loaded.job.roles;
    let found = iam::find_roles(config, &[&roles.service, &roles.instance_profile]).await?;
    let spec_hint = args.spec.spec.display();
    if !found.missing.is_empty() {
        let many = found.missing.len() > 1;
        return Err(CliError::failure(format!(
            "the EMR role{} {} that scheduled runs pass to EMR {} not exist. Nothing was \
             created.",
            if many { "s" } else { "" },
            found.missing.join(" and "),
            if many { "do" } else { "does" }
        ))
        .with_hint(format!(
            "run `emrship provision --create-roles {spec_hint}` (or create them yourself) first"
        )));
    }
    if let (Some(actual), Some(spec)) = (&found.account, &loaded.job.account_id) {
        if actual != spec {
            return Err(CliError::failure(format!(
                "the spec's account_id is {spec}, but these credentials are in account \
                 {actual}: the scheduler's policy would name the wrong account. Nothing was \
                 created."
            ))
            .with_hint(format!("fix `account_id` or use credentials for {spec}")));
        }
    }
    Ok(found.account)
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

/// A run's report: the result as JSON, or a heading and one line per change.
fn print_changes(
    result: &Value,
    heading: &str,
    changes: &[Change],
    format: OutputFormat,
    out: Printer,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Json => out.json(result),
        OutputFormat::Text => {
            let lines: Vec<String> = changes.iter().map(Change::line).collect();
            out.data(&format!("{heading}\n{}", lines.join("\n")))
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
            STATEMENT_ID.to_string(),
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
        match args.stdout.format {
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
    let s3 = s3::client(&config, sdk::endpoint_overridden(&options));

    let mut changes = vec![
        lambda
            .remove_statement(&schedule.function_name, STATEMENT_ID)
            .await?,
    ];
    changes.extend(
        events
            .remove_target_and_rule(&schedule.rule_name, TARGET_ID)
            .await?,
    );
    changes.push(lambda.remove_function(&schedule.function_name).await?);
    let role_and_policy = iam::remove_role_and_policy(&config, &schedule.role, SCHEDULER_POLICY)
        .await
        .map_err(|e| {
            CliError::from(e).with_hint(format!(
                "role {} holds more than emrship's inline policy `{SCHEDULER_POLICY}`: detach \
                 or delete the rest, then run `emrship unschedule` again",
                schedule.role
            ))
        })?;
    changes.extend(role_and_policy);
    changes.push(s3::remove_object(&s3, "plan template", &template_uri).await?);

    let result = json!({ "changes": changes });
    print_changes(&result, "Unschedule", &changes, args.stdout.format, out)?;
    Ok(ExitStatus::Success)
}
