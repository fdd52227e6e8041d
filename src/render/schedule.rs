//! Every request `emrship schedule` makes, rendered from the plan alone: the plan template
//! upload, the scheduler role and its inline policy, the Lambda function, the EventBridge rule,
//! its target and the permission that lets the rule invoke the function.
//!
//! Pure, like the rest of `render`: the adapters (`aws::lambda`, `aws::events`, `aws::iam`,
//! `aws::s3`) send exactly these values, and `schedule --dry-run` prints them. Member names are
//! the AWS APIs' own. The function's code appears as the zip's digest, never its bytes.
//!
//! EventBridge evaluates `cron(…)` in UTC. The spec's `timezone` does not move the tick; it only
//! decides which *date* a tick processes (the handler takes "today" in that zone and goes back
//! `days_back` days).

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use super::artifacts::{base64, Digest256};
use super::iam::RoleDocuments;
use crate::plan::{Plan, SchedulePlan};
use crate::spec::s3::S3Uri;

/// The Lambda runtime for a custom (Rust) runtime: the zip's `bootstrap` is the whole function.
pub const RUNTIME: &str = "provided.al2023";
/// A custom runtime ignores the handler; `bootstrap` is the conventional value.
pub const HANDLER: &str = "bootstrap";
/// Enough for one S3 read and a few EMR calls; Lambda bills by MB·s, so no more.
pub const MEMORY_MB: i32 = 256;
/// The launch is a few calls, but the guard describes every listed cluster and the SDK retries
/// each call up to 8 times with backoff under throttling: 5 minutes leaves room for both.
pub const TIMEOUT_SECONDS: i32 = 300;
/// The environment variable that tells the handler where its plan template is.
pub const PLAN_OBJECT_ENV: &str = "EMRSHIP_PLAN_OBJECT";
/// The one target of the rule and the one statement of the function's policy.
pub const TARGET_ID: &str = "emrship-scheduler";
pub const STATEMENT_ID: &str = "emrship-events-invoke";
/// The inline policy of the scheduler role (rendered by `render::iam`).
pub const SCHEDULER_POLICY: &str = "emrship-scheduler";
/// User metadata holding the template's hex sha256 (as `aws::s3` writes it for every upload):
/// a second `schedule` compares it and skips an unchanged upload.
pub const SHA256_METADATA: &str = "sha256";

/// What the renderer needs besides the plan: digests of the two local inputs, the account the
/// ARNs name, and the function's architecture.
#[derive(Debug, Clone)]
pub struct ScheduleInputs {
    /// The plan template's bytes (`PlanTemplate::to_json`).
    pub template: Digest256,
    /// The Lambda zip.
    pub code: Digest256,
    /// `x86_64` or `arm64` (Lambda's names).
    pub architecture: String,
    /// The spec's region: the function and rule live there, next to the clusters they launch.
    pub region: String,
    /// The account the calls go to; `None` (a dry run without `account_id` in the spec) puts
    /// `*` in the ARNs, as `render::iam` does.
    pub account: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRequests {
    /// When EventBridge fires and which day a run then processes, in words.
    pub summary: String,
    pub put_plan_template: PutObject,
    pub create_role: CreateRole,
    pub put_role_policy: PutRolePolicy,
    pub create_function: CreateFunction,
    pub put_rule: PutRule,
    pub put_targets: PutTargets,
    pub add_permission: AddPermission,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutObject {
    pub bucket: String,
    pub key: String,
    pub content_length: u64,
    /// `x-amz-meta-sha256`: the hex sha256 of the body; an object with the same value is
    /// left alone (no upload).
    pub metadata: IndexMap<String, String>,
    pub checksum_algorithm: String,
    /// The body's SHA256, base64, which S3 checks on arrival.
    #[serde(rename = "ChecksumSHA256")]
    pub checksum_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRole {
    pub role_name: String,
    pub assume_role_policy_document: Value,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRolePolicy {
    pub role_name: String,
    pub policy_name: String,
    pub policy_document: Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunction {
    pub function_name: String,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    pub architectures: Vec<String>,
    pub memory_size: i32,
    pub timeout: i32,
    pub environment: Environment,
    pub description: String,
    pub tags: IndexMap<String, String>,
    pub code: Code,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    pub variables: IndexMap<String, String>,
}

/// The zip by digest: `CodeSha256` is what Lambda reports back (base64 of the sha256), so
/// comparing it tells whether the deployed code is this zip.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Code {
    pub zip_file_sha256: String,
    pub zip_file_bytes: u64,
    pub code_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRule {
    pub name: String,
    pub schedule_expression: String,
    pub state: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutTargets {
    pub rule: String,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub id: String,
    pub arn: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddPermission {
    pub function_name: String,
    pub statement_id: String,
    pub action: String,
    pub principal: String,
    pub source_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_account: Option<String>,
}

/// The ARNs of what `schedule` creates (roles live on the default path `/`).
pub fn function_arn(region: &str, account: &str, function: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{function}")
}

pub fn rule_arn(region: &str, account: &str, rule: &str) -> String {
    format!("arn:aws:events:{region}:{account}:rule/{rule}")
}

pub fn role_arn(account: &str, role: &str) -> String {
    format!("arn:aws:iam::{account}:role/{role}")
}

/// When the rule fires and which day each run processes, for people: EventBridge reads the
/// cron in UTC, whatever the spec's timezone.
pub fn describe(schedule: &SchedulePlan) -> String {
    let day = match schedule.days_back {
        0 => "the tick's own date".to_string(),
        1 => "the day before the tick's date".to_string(),
        n => format!("the day {n} days before the tick's date"),
    };
    format!(
        "{} fires in UTC (EventBridge has no time zones); each run processes {day}, the date \
         taken in {}",
        schedule.expression, schedule.timezone
    )
}

/// The requests for a plan with a schedule; `None` when the spec has no `schedule:`.
pub fn schedule_requests(plan: &Plan, inputs: &ScheduleInputs) -> Option<ScheduleRequests> {
    let schedule = plan.schedule.as_ref()?;
    let role: &RoleDocuments = plan.iam.0.get(&schedule.role)?;
    let region = &inputs.region;
    let account = inputs.account.as_deref().unwrap_or("*");
    let template_uri = S3Uri::parse(&schedule.plan_object)
        .expect("the plan renders its schedule object as an s3:// URI");
    let spec_name = plan.summary.name.clone();

    let mut tags: IndexMap<String, String> = plan
        .run_job_flow
        .tags
        .iter()
        // The function outlives one run: no run key; the EMR managed-policy tag is for EMR's
        // resources only.
        .filter(|tag| {
            tag.key != super::run_job_flow::MANAGED_POLICY_TAG
                && tag.key != super::run_job_flow::RUN_KEY_TAG
        })
        .map(|tag| (tag.key.clone(), tag.value.clone()))
        .collect();
    tags.insert("emrship:spec".into(), spec_name.clone());
    tags.sort_keys();

    let function = &schedule.function_name;
    let rule = &schedule.rule_name;
    Some(ScheduleRequests {
        summary: describe(schedule),
        put_plan_template: PutObject {
            bucket: template_uri.bucket.clone(),
            key: template_uri.key.clone(),
            content_length: inputs.template.bytes,
            metadata: IndexMap::from([(
                SHA256_METADATA.to_string(),
                inputs.template.sha256.clone(),
            )]),
            checksum_algorithm: "SHA256".into(),
            checksum_sha256: code_sha256(&inputs.template.sha256),
        },
        create_role: CreateRole {
            role_name: schedule.role.clone(),
            assume_role_policy_document: role.trust_policy.clone(),
            description: role.purpose.clone(),
        },
        put_role_policy: PutRolePolicy {
            role_name: schedule.role.clone(),
            policy_name: SCHEDULER_POLICY.into(),
            policy_document: role
                .inline_policies
                .get(SCHEDULER_POLICY)
                .cloned()
                .unwrap_or(Value::Null),
        },
        create_function: CreateFunction {
            function_name: function.clone(),
            runtime: RUNTIME.into(),
            handler: HANDLER.into(),
            role: role_arn(account, &schedule.role),
            architectures: vec![inputs.architecture.clone()],
            memory_size: MEMORY_MB,
            timeout: TIMEOUT_SECONDS,
            environment: Environment {
                variables: IndexMap::from([(
                    PLAN_OBJECT_ENV.to_string(),
                    schedule.plan_object.clone(),
                )]),
            },
            // Lambda allows 256 characters; the plan object is in the environment anyway.
            description: format!(
                "emrship: launches {spec_name} on {} (UTC)",
                schedule.expression
            ),
            tags,
            code: Code {
                zip_file_sha256: inputs.code.sha256.clone(),
                zip_file_bytes: inputs.code.bytes,
                code_sha256: code_sha256(&inputs.code.sha256),
            },
        },
        put_rule: PutRule {
            name: rule.clone(),
            schedule_expression: schedule.expression.clone(),
            state: "ENABLED".into(),
            description: format!(
                "emrship: runs {spec_name} ({} UTC; the run date is taken in {})",
                schedule.expression, schedule.timezone
            ),
        },
        put_targets: PutTargets {
            rule: rule.clone(),
            targets: vec![Target {
                id: TARGET_ID.into(),
                arn: function_arn(region, account, function),
            }],
        },
        add_permission: AddPermission {
            function_name: function.clone(),
            statement_id: STATEMENT_ID.into(),
            action: "lambda:InvokeFunction".into(),
            principal: "events.amazonaws.com".into(),
            source_arn: rule_arn(region, account, rule),
            source_account: inputs.account.clone(),
        },
    })
}

/// Lambda's `CodeSha256`: the base64 of the zip's sha256 (we keep it as hex elsewhere).
pub fn code_sha256(hex_sha256: &str) -> String {
    let bytes = hex::decode(hex_sha256).unwrap_or_default();
    base64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_sha256_is_base64_of_the_digest() {
        // sha256("") in hex and in base64 (what Lambda reports for an empty zip body).
        assert_eq!(
            code_sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    /// The handler reads the variable this renderer sets.
    #[cfg(feature = "aws")]
    #[test]
    fn the_handler_reads_the_variable_the_function_gets() {
        assert_eq!(PLAN_OBJECT_ENV, crate::schedule::handler::PLAN_OBJECT_ENV);
    }

    #[test]
    fn describe_says_utc() {
        let schedule = SchedulePlan {
            expression: "cron(0 6 * * ? *)".into(),
            timezone: "Europe/Berlin".into(),
            days_back: 1,
            rule_name: "r".into(),
            function_name: "f".into(),
            role: "x".into(),
            plan_object: "s3://b/k".into(),
        };
        let text = describe(&schedule);
        assert!(text.contains("UTC"), "{text}");
        assert!(text.contains("the day before"), "{text}");
        assert!(text.contains("Europe/Berlin"), "{text}");
    }
}
