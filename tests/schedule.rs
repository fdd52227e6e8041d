//! `emrship schedule` / `emrship unschedule` against moto's server mode.
//!
//! Each test starts its own emulator, runs the real `emrship` binary with the standard endpoint
//! override, and asserts on the resulting state through the Lambda, EventBridge, IAM and S3
//! APIs. A second `schedule` goes through a recording proxy (tests/common/fault_proxy.rs with
//! no faults) to show it sends no mutating call at all.
#![cfg(feature = "aws")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

use common::emr::{assert_exit, block, stderr, stdout_json};
use common::fault_proxy::{Fate, FaultMix, FaultProxy, Rule, Seen};
use common::moto::Moto;
use emrship::aws::iam::parse_document;
use emrship::bundle::lambda::lambda_zip_bytes;
use emrship::schedule::PlanTemplate;

const SPEC: &str = "job-specs/match-rate.yaml";
const FUNCTION: &str = "emrship-match-rate-scheduler";
const SCHEDULER_ROLE: &str = "emrship-match-rate-scheduler";
const RULE: &str = "emrship-match-rate";
const SERVICE_ROLE: &str = "emrship-match-rate-service";
const EC2_ROLE: &str = "emrship-match-rate-ec2";
const BUCKET: &str = "example-ads-data";
const PLAN_KEY: &str = "emrship/match-rate/schedule/plan.json";
const ACCOUNT: &str = "123456789012";

fn repo_spec() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(SPEC)
}

struct Env {
    moto: Moto,
    dir: tempfile::TempDir,
    /// The "emrship-lambda" the tests deploy: a small real aarch64 ELF.
    binary: PathBuf,
    lambda: aws_sdk_lambda::Client,
    events: aws_sdk_eventbridge::Client,
    iam: aws_sdk_iam::Client,
    s3: aws_sdk_s3::Client,
}

impl Env {
    /// An emulator with the bucket and the two EMR roles (as `provision --create-roles` leaves
    /// them) unless told otherwise, and a working folder holding a built job bundle (as
    /// `deploy` leaves it).
    fn new(emr_roles: &[&str], bucket: bool) -> Env {
        let moto = Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let bundle_dir = dir.path().join("target/emrship/match-rate");
        std::fs::create_dir_all(&bundle_dir).unwrap();
        std::fs::write(bundle_dir.join("bundle.zip"), b"a deployed bundle").unwrap();
        let binary = common::elf::binaries().aarch64_glibc_2_26.clone();
        let config = block(moto.sdk_config());
        let env = Env {
            lambda: aws_sdk_lambda::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            s3: block(moto.s3()),
            moto,
            dir,
            binary,
        };
        block(async {
            if bucket {
                env.s3.create_bucket().bucket(BUCKET).send().await.unwrap();
            }
            for role in emr_roles {
                env.iam
                    .create_role()
                    .role_name(*role)
                    .assume_role_policy_document(
                        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"elasticmapreduce.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
                    )
                    .send()
                    .await
                    .unwrap();
            }
        });
        env
    }

    fn with_emr_roles() -> Env {
        Env::new(&[SERVICE_ROLE, EC2_ROLE], true)
    }

    fn command(&self, endpoint: &str) -> Command {
        let mut command = self.moto.command(env!("CARGO_BIN_EXE_emrship"));
        command
            .current_dir(self.dir.path())
            .env("AWS_ENDPOINT_URL", endpoint);
        command
    }

    fn emrship(&self, args: &[&str]) -> Output {
        self.command(&self.moto.endpoint)
            .args(args)
            .output()
            .unwrap()
    }

    fn schedule_with(&self, endpoint: &str, spec: &Path, extra: &[&str]) -> Output {
        self.schedule_binary(endpoint, spec, &self.binary, extra)
    }

    fn schedule_binary(
        &self,
        endpoint: &str,
        spec: &Path,
        binary: &Path,
        extra: &[&str],
    ) -> Output {
        let spec = spec.display().to_string();
        let binary = binary.display().to_string();
        let mut args = vec![
            "schedule",
            spec.as_str(),
            "--lambda-binary",
            binary.as_str(),
            "--arch",
            "arm64",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        self.command(endpoint).args(&args).output().unwrap()
    }

    fn schedule(&self, extra: &[&str]) -> Output {
        self.schedule_with(&self.moto.endpoint, &repo_spec(), extra)
    }

    /// `emrship plan --format json` from the working folder (bundle built), with `extra`.
    fn plan_json(&self, extra: &[&str]) -> Value {
        let spec = repo_spec().display().to_string();
        let mut args = vec!["plan", spec.as_str(), "--format", "json"];
        args.extend_from_slice(extra);
        let output = self.emrship(&args);
        assert_exit(&output, 0);
        stdout_json(&output)
    }

    fn function(&self) -> Option<aws_sdk_lambda::operation::get_function::GetFunctionOutput> {
        block(self.lambda.get_function().function_name(FUNCTION).send()).ok()
    }

    fn rule(
        &self,
        name: &str,
    ) -> Option<aws_sdk_eventbridge::operation::describe_rule::DescribeRuleOutput> {
        block(self.events.describe_rule().name(name).send()).ok()
    }

    fn targets(&self, rule: &str) -> Vec<(String, String)> {
        block(self.events.list_targets_by_rule().rule(rule).send())
            .map(|out| {
                out.targets()
                    .iter()
                    .map(|t| (t.id().to_string(), t.arn().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn policy_statements(&self) -> Vec<Value> {
        match block(self.lambda.get_policy().function_name(FUNCTION).send()) {
            Ok(out) => {
                let policy: Value = serde_json::from_str(out.policy().unwrap()).unwrap();
                policy["Statement"].as_array().unwrap().clone()
            }
            Err(_) => Vec::new(),
        }
    }

    fn role_exists(&self, name: &str) -> bool {
        block(self.iam.get_role().role_name(name).send()).is_ok()
    }

    fn plan_object(&self) -> Option<String> {
        block(async {
            let object = self
                .s3
                .get_object()
                .bucket(BUCKET)
                .key(PLAN_KEY)
                .send()
                .await
                .ok()?;
            let bytes = object.body.collect().await.ok()?.into_bytes();
            Some(String::from_utf8(bytes.to_vec()).unwrap())
        })
    }

    /// Nothing `schedule` creates is there.
    fn assert_nothing_scheduled(&self) {
        assert!(self.function().is_none(), "the function exists");
        assert!(self.rule(RULE).is_none(), "the rule exists");
        assert!(
            !self.role_exists(SCHEDULER_ROLE),
            "the scheduler role exists"
        );
        assert!(self.plan_object().is_none(), "the plan object exists");
    }
}

fn base64_sha256(bytes: &[u8]) -> String {
    emrship::render::schedule::code_sha256(&hex::encode(Sha256::digest(bytes)))
}

fn actions(output: &Output) -> Vec<(String, String)> {
    stdout_json(output)["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["resource"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every change of a run's report has `action`, and there is at least one: an empty report
/// would otherwise pass any "every change is …" check.
fn assert_every_action(output: &Output, action: &str) {
    let changes = actions(output);
    assert!(!changes.is_empty(), "no changes reported");
    assert!(changes.iter().all(|(_, a)| a == action), "{changes:#?}");
}

/// Whether a request the proxy saw could change anything: Lambda's and S3's REST writes, and
/// the operations of the query and JSON protocols (IAM, EventBridge) that are not reads.
fn is_mutating(seen: &Seen) -> bool {
    let operation = seen.operation.rsplit('.').next().unwrap_or_default();
    if !operation.is_empty() {
        let reads = ["Get", "List", "Describe", "Head"];
        return !reads.iter().any(|r| operation.starts_with(r));
    }
    !matches!(seen.method.as_str(), "GET" | "HEAD")
}

#[test]
fn schedule_creates_every_piece_and_a_second_run_changes_nothing() {
    let env = Env::with_emr_roles();
    let first = FaultProxy::start(env.moto.port, FaultMix::NONE, 4);
    let output = env.schedule_with(&first.endpoint, &repo_spec(), &[]);
    assert_exit(&output, 0);
    // The recording sees the first run's writes (so its silence on the second run means
    // something).
    let writes: Vec<String> = first
        .seen()
        .iter()
        .filter(|s| is_mutating(s))
        .map(|s| format!("{} {} {}", s.method, s.path, s.operation))
        .collect();
    for expected in [
        "CreateRole",
        "PutRolePolicy",
        "AWSEvents.PutRule",
        "AWSEvents.PutTargets",
        "POST /2015-03-31/functions ",
        "/policy",
        "PUT /example-ads-data/emrship/match-rate/schedule/plan.json",
    ] {
        assert!(
            writes.iter().any(|w| w.contains(expected)),
            "no {expected} among {writes:#?}"
        );
    }
    let result = stdout_json(&output);
    assert!(
        result["schedule"].as_str().unwrap().contains("UTC"),
        "{result:#}"
    );
    assert_eq!(
        actions(&output),
        [
            ("plan template".into(), "uploaded".into()),
            ("iam role".into(), "created".into()),
            ("lambda function".into(), "created".into()),
            ("eventbridge rule".into(), "created".into()),
            ("rule target".into(), "created".into()),
            ("invoke permission".into(), "created".into()),
        ]
    );

    // The function: runtime, handler, architecture, environment, role, and our zip as code.
    let function = env.function().expect("the function exists");
    let config = function.configuration().unwrap();
    assert_eq!(config.runtime().unwrap().as_str(), "provided.al2023");
    assert_eq!(config.handler(), Some("bootstrap"));
    assert_eq!(
        config
            .architectures()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        ["arm64"]
    );
    assert_eq!(
        config.role(),
        Some(format!("arn:aws:iam::{ACCOUNT}:role/{SCHEDULER_ROLE}").as_str())
    );
    let variables = config.environment().unwrap().variables().unwrap();
    assert_eq!(
        variables.get("EMRSHIP_PLAN_OBJECT").map(String::as_str),
        Some(format!("s3://{BUCKET}/{PLAN_KEY}").as_str())
    );
    let zip = lambda_zip_bytes(&std::fs::read(&env.binary).unwrap()).unwrap();
    assert_eq!(config.code_sha256(), Some(base64_sha256(&zip).as_str()));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.clone())).unwrap();
    assert_eq!(archive.len(), 1);
    let bootstrap = archive.by_name("bootstrap").unwrap();
    assert_eq!(bootstrap.unix_mode().unwrap() & 0o777, 0o755);
    drop(bootstrap);
    let tags = function.tags().unwrap();
    assert_eq!(
        tags.get("emrship:spec").map(String::as_str),
        Some("match-rate")
    );
    assert!(!tags.contains_key("emrship:run-key"));

    // The role and its inline policy are the plan's documents.
    let plan = env.plan_json(&[]);
    let planned = &plan["iam"][SCHEDULER_ROLE];
    let role = block(env.iam.get_role().role_name(SCHEDULER_ROLE).send()).unwrap();
    assert_eq!(
        parse_document(role.role().unwrap().assume_role_policy_document().unwrap()).as_ref(),
        Some(&planned["trust_policy"])
    );
    let policy = block(
        env.iam
            .get_role_policy()
            .role_name(SCHEDULER_ROLE)
            .policy_name("emrship-scheduler")
            .send(),
    )
    .unwrap();
    assert_eq!(
        parse_document(policy.policy_document()).as_ref(),
        Some(&planned["inline_policies"]["emrship-scheduler"])
    );

    // The rule with the cron, exactly our target, exactly one statement limited to the rule.
    let rule = env.rule(RULE).expect("the rule exists");
    assert_eq!(rule.schedule_expression(), Some("cron(0 6 * * ? *)"));
    assert_eq!(rule.state().unwrap().as_str(), "ENABLED");
    let rule_arn = rule.arn().unwrap().to_string();
    assert_eq!(result["rule_arn"], rule_arn.as_str());
    assert_eq!(
        env.targets(RULE),
        [(
            "emrship-scheduler".to_string(),
            config.function_arn().unwrap().to_string()
        )]
    );
    let statements = env.policy_statements();
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert_eq!(
        statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"],
        rule_arn.as_str()
    );
    assert_eq!(
        statements[0]["Principal"]["Service"],
        "events.amazonaws.com"
    );
    assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");

    // The plan object parses and plans a day like `emrship plan --date` does.
    let text = env.plan_object().expect("the plan object exists");
    let template = PlanTemplate::parse(&text, "test").unwrap();
    let (job, _) = template
        .plan_for(chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
        .unwrap();
    assert_eq!(job.run_key(), "match-rate/2026-11-20");

    // Twice: nothing mutating is sent, and everything is as it was.
    let proxy = FaultProxy::start(env.moto.port, FaultMix::NONE, 5);
    let again = env.schedule_with(&proxy.endpoint, &repo_spec(), &[]);
    assert_exit(&again, 0);
    assert_every_action(&again, "unchanged");
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    let mutating: Vec<&Seen> = seen.iter().filter(|s| is_mutating(s)).collect();
    assert!(mutating.is_empty(), "a second run sent {mutating:#?}");
    let after = env.function().unwrap();
    let after = after.configuration().unwrap();
    assert_eq!(after.last_modified(), config.last_modified());
    assert_eq!(after.code_sha256(), config.code_sha256());
    assert_eq!(env.rule(RULE).unwrap().arn(), Some(rule_arn.as_str()));
    assert_eq!(env.targets(RULE).len(), 1);
    assert_eq!(env.policy_statements().len(), 1);
}

#[test]
fn a_changed_spec_updates_in_place() {
    let env = Env::with_emr_roles();
    assert_exit(&env.schedule(&[]), 0);
    let rule_arn = env.rule(RULE).unwrap().arn().unwrap().to_string();
    let before = env.plan_object().unwrap();

    let output = env.schedule(&["--set", "schedule.cron=cron(30 7 ? * MON-FRI *)"]);
    assert_exit(&output, 0);
    let changes = actions(&output);
    assert!(
        changes.contains(&("eventbridge rule".into(), "updated".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("plan template".into(), "uploaded".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("rule target".into(), "unchanged".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("invoke permission".into(), "unchanged".into())),
        "{changes:?}"
    );

    let rule = env.rule(RULE).unwrap();
    assert_eq!(rule.schedule_expression(), Some("cron(30 7 ? * MON-FRI *)"));
    assert_eq!(rule.arn(), Some(rule_arn.as_str()));
    assert_eq!(env.targets(RULE).len(), 1);
    assert_eq!(env.policy_statements().len(), 1);
    // The function's description names the schedule: its configuration was updated in place.
    let function = env.function().unwrap();
    assert!(function
        .configuration()
        .unwrap()
        .description()
        .unwrap()
        .contains("cron(30 7 ? * MON-FRI *)"));
    // A new binary: the code is updated in place (CodeSha256 is the new zip's).
    let rebuilt = env.dir.path().join("emrship-lambda-rebuilt");
    let mut bytes = std::fs::read(&env.binary).unwrap();
    bytes.extend_from_slice(b"\0rebuilt");
    std::fs::write(&rebuilt, &bytes).unwrap();
    let output = env.schedule_binary(
        &env.moto.endpoint,
        &repo_spec(),
        &rebuilt,
        &["--set", "schedule.cron=cron(30 7 ? * MON-FRI *)"],
    );
    assert_exit(&output, 0);
    let changes = stdout_json(&output)["changes"].clone();
    let function_change = changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["resource"] == "lambda function")
        .unwrap();
    assert_eq!(function_change["action"], "updated", "{changes:#}");
    assert_eq!(function_change["detail"], "code", "{changes:#}");
    let zip = lambda_zip_bytes(&bytes).unwrap();
    assert_eq!(
        env.function()
            .unwrap()
            .configuration()
            .unwrap()
            .code_sha256(),
        Some(base64_sha256(&zip).as_str())
    );
    assert_eq!(env.rule(RULE).unwrap().arn(), Some(rule_arn.as_str()));

    // The stored template now carries the --set value.
    let after = env.plan_object().unwrap();
    assert_ne!(before, after);
    assert!(PlanTemplate::parse(&after, "test")
        .unwrap()
        .sets
        .contains(&"schedule.cron=cron(30 7 ? * MON-FRI *)".to_string()));
}

#[test]
fn unschedule_removes_what_schedule_created_and_nothing_else() {
    let env = Env::with_emr_roles();
    // Someone else's rule, with a target, in the same account and region.
    block(async {
        env.events
            .put_rule()
            .name("someone-elses-rule")
            .schedule_expression("rate(1 hour)")
            .send()
            .await
            .unwrap();
        env.events
            .put_targets()
            .rule("someone-elses-rule")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("theirs")
                    .arn(format!(
                        "arn:aws:lambda:us-east-1:{ACCOUNT}:function:theirs"
                    ))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });
    assert_exit(&env.schedule(&[]), 0);

    let spec = repo_spec().display().to_string();
    let dry = env.emrship(&["unschedule", &spec, "--dry-run", "--format", "json"]);
    assert_exit(&dry, 0);
    assert_eq!(stdout_json(&dry)["requests"].as_array().unwrap().len(), 7);
    assert!(env.function().is_some(), "--dry-run removed the function");

    let output = env.emrship(&["unschedule", &spec, "--format", "json"]);
    assert_exit(&output, 0);
    assert_every_action(&output, "deleted");
    env.assert_nothing_scheduled();
    assert!(env.targets(RULE).is_empty());
    // What it did not create stays.
    assert!(env.role_exists(SERVICE_ROLE));
    assert!(env.role_exists(EC2_ROLE));
    assert!(env.rule("someone-elses-rule").is_some());
    assert_eq!(env.targets("someone-elses-rule").len(), 1);

    // Again: nothing left to remove is fine.
    let again = env.emrship(&["unschedule", &spec, "--format", "json"]);
    assert_exit(&again, 0);
    assert_every_action(&again, "absent");
}

#[test]
fn unschedule_fails_when_s3_denies_looking_at_the_plan_template() {
    let env = Env::with_emr_roles();
    assert_exit(&env.schedule(&[]), 0);
    assert!(env.plan_object().is_some());
    // S3 answers the template's HEAD with 403 AccessDenied: that says nothing about whether
    // the object is there, so unschedule must not report it absent and skip the delete.
    let denied = Rule::always(Fate::Refused, |seen: &Seen| {
        seen.method == "HEAD" && seen.path.contains(PLAN_KEY)
    });
    let proxy = FaultProxy::start_with_rules(env.moto.port, FaultMix::NONE, 7, vec![denied]);
    let spec = repo_spec().display().to_string();
    let output = env
        .command(&proxy.endpoint)
        .args(["unschedule", &spec])
        .output()
        .unwrap();
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("error: HeadObject failed"), "{message}");
    assert!(env.plan_object().is_some(), "the plan template was deleted");
    assert_eq!(proxy.count(Fate::Refused), 1);

    // Allowed again, the template goes.
    let spec_args = ["unschedule", spec.as_str()];
    assert_exit(&env.emrship(&spec_args), 0);
    assert!(env.plan_object().is_none());
}

#[test]
fn a_bad_cron_is_a_spec_error_with_its_line_and_nothing_is_created() {
    let env = Env::with_emr_roles();
    let text = std::fs::read_to_string(repo_spec()).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("cron: cron(0 6 * * ? *)"))
        .unwrap()
        + 1;
    let spec = env.dir.path().join("match-rate.yaml");
    std::fs::write(&spec, text.replace("cron(0 6 * * ? *)", "cron(0 6 * * *)")).unwrap();
    let output = env.schedule_with(&env.moto.endpoint, &spec, &[]);
    assert_exit(&output, 2);
    let message = stderr(&output);
    assert!(
        message.contains(&format!("match-rate.yaml:{line}")),
        "no file:line in:\n{message}"
    );
    env.assert_nothing_scheduled();
}

#[test]
fn a_spec_without_a_schedule_is_refused() {
    let env = Env::with_emr_roles();
    // The dev overlay sets `schedule: ~` (dev runs by hand).
    let overlay = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("job-specs/envs/dev.yaml");
    let output = env.schedule(&["-f", overlay.to_str().unwrap()]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("has no `schedule:`"),
        "{}",
        stderr(&output)
    );
    env.assert_nothing_scheduled();
}

#[test]
fn a_missing_emr_role_is_one_clear_error_and_nothing_is_created() {
    let env = Env::new(&[SERVICE_ROLE], true);
    let output = env.schedule(&[]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(message.contains(EC2_ROLE), "{message}");
    assert!(
        message.contains("emrship provision --create-roles"),
        "{message}"
    );
    // One progress line, then one error with its help line.
    let lines: Vec<&str> = message.trim().lines().collect();
    assert_eq!(lines.len(), 3, "{message}");
    assert!(lines[0].starts_with("checking the EMR roles"), "{message}");
    assert!(lines[1].starts_with("error: "), "{message}");
    assert!(
        lines[2].starts_with("help: run `emrship provision --create-roles"),
        "{message}"
    );
    env.assert_nothing_scheduled();
}

#[test]
fn a_binary_for_the_other_architecture_is_refused_before_any_change() {
    let env = Env::with_emr_roles();
    let x86 = common::elf::binaries().x86_64_glibc_2_26.clone();
    let output = env.schedule_binary(&env.moto.endpoint, &repo_spec(), &x86, &[]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(
        message.contains("built for x86_64, but the function is arm64"),
        "{message}"
    );
    env.assert_nothing_scheduled();
}

#[test]
fn a_missing_bucket_for_the_plan_object_is_one_clear_error() {
    let env = Env::new(&[SERVICE_ROLE, EC2_ROLE], false);
    let output = env.schedule(&[]);
    assert_exit(&output, 1);
    let message = stderr(&output);
    assert!(
        message.contains("the bucket `example-ads-data`") && message.contains("does not exist"),
        "{message}"
    );
    assert!(env.function().is_none());
    assert!(env.rule(RULE).is_none());
    assert!(!env.role_exists(SCHEDULER_ROLE));
}

#[test]
fn dry_run_prints_every_request_and_sends_nothing() {
    let env = Env::with_emr_roles();
    // Nothing listens on the discard port: any AWS call would fail the command.
    let output = env.schedule_with("http://127.0.0.1:9", &repo_spec(), &["--dry-run"]);
    assert_exit(&output, 0);
    let requests = stdout_json(&output);
    for key in [
        "put_plan_template",
        "create_role",
        "put_role_policy",
        "create_function",
        "put_rule",
        "put_targets",
        "add_permission",
    ] {
        assert!(
            requests.get(key).is_some(),
            "{key} missing from {requests:#}"
        );
    }
    let zip = lambda_zip_bytes(&std::fs::read(&env.binary).unwrap()).unwrap();
    assert_eq!(
        requests["create_function"]["Code"]["CodeSha256"],
        base64_sha256(&zip).as_str()
    );
    assert_eq!(
        requests["add_permission"]["SourceArn"],
        format!("arn:aws:events:us-east-1:{ACCOUNT}:rule/{RULE}").as_str()
    );
    env.assert_nothing_scheduled();
}

#[test]
fn a_given_zip_is_deployed_as_is_and_must_hold_an_executable_bootstrap() {
    use std::io::Write as _;
    let env = Env::with_emr_roles();
    let binary = std::fs::read(&env.binary).unwrap();
    let zip_with_mode = |mode: u32| {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        writer.start_file("bootstrap", options).unwrap();
        writer.write_all(&binary).unwrap();
        writer.finish().unwrap().into_inner()
    };
    let spec = repo_spec().display().to_string();
    let run = |zip: &[u8]| {
        let path = env.dir.path().join("given.zip");
        std::fs::write(&path, zip).unwrap();
        let args = [
            "schedule",
            spec.as_str(),
            "--lambda-zip",
            path.to_str().unwrap(),
            "--arch",
            "arm64",
            "--format",
            "json",
        ];
        env.emrship(&args)
    };

    let output = run(&zip_with_mode(0o644));
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("is not executable"),
        "{}",
        stderr(&output)
    );
    env.assert_nothing_scheduled();

    let zip = zip_with_mode(0o755);
    assert_exit(&run(&zip), 0);
    assert_eq!(
        env.function()
            .unwrap()
            .configuration()
            .unwrap()
            .code_sha256(),
        Some(base64_sha256(&zip).as_str())
    );
}

#[test]
fn create_function_waits_out_iam_propagation_of_the_new_role() {
    let env = Env::with_emr_roles();
    // Lambda's answer while a role created seconds ago has not reached it yet; moto never
    // lags, so the proxy gives it to the first two CreateFunction calls.
    let not_yet = Rule::first(
        2,
        Fate::Answered(
            r#"{"__type":"InvalidParameterValueException","message":"The role defined for the function cannot be assumed by Lambda."}"#,
        ),
        |seen: &Seen| {
            seen.method == "POST" && seen.path.trim_end_matches('/') == "/2015-03-31/functions"
        },
    );
    let proxy = FaultProxy::start_with_rules(env.moto.port, FaultMix::NONE, 6, vec![not_yet]);
    let output = env.schedule_with(&proxy.endpoint, &repo_spec(), &[]);
    assert_exit(&output, 0);
    let message = stderr(&output);
    assert_eq!(
        message.matches("not assumable by Lambda yet").count(),
        2,
        "{message}"
    );
    let answered = proxy
        .seen()
        .iter()
        .filter(|s| matches!(s.fate, Fate::Answered(_)))
        .count();
    assert_eq!(answered, 2);
    assert!(env.function().is_some());
    assert_eq!(env.policy_statements().len(), 1);
}
