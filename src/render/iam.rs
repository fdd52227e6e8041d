//! IAM documents for a job: the roles emrship creates, their trust policies, managed policy
//! attachments and least-privilege inline policies.
//!
//! Pure: the documents are rendered from the [`JobPlan`] alone. Every document uses
//! `"Version": "2012-10-17"`, keys in a fixed order (`Version`, `Statement`; `Sid`, `Effect`,
//! `Action`, `Resource`, `Condition`), actions and resources sorted and without duplicates, so
//! the output is stable and snapshot-testable.
//!
//! ARNs use the `aws` partition. Without `account_id` in the spec the account position of
//! every ARN emrship builds is `*`.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::artifacts::schedule_plan_uri;
use super::run_job_flow::{MANAGED_POLICY_TAG, RUN_KEY_TAG};
use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

/// The managed policy for the EMR service role (replaces `AmazonElasticMapReduceRole`).
pub const EMR_SERVICE_POLICY_V2: &str =
    "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2";

const POLICY_VERSION: &str = "2012-10-17";

/// Every role emrship manages for one job: role name → its documents, in creation order
/// (service role, instance profile role, then the scheduler role when the job is scheduled).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct IamPlan(pub IndexMap<String, RoleDocuments>);

#[derive(Debug, Clone, Serialize)]
pub struct RoleDocuments {
    /// One line for humans: what the role is for.
    pub purpose: String,
    /// The `AssumeRolePolicyDocument`.
    pub trust_policy: Value,
    pub managed_policy_arns: Vec<String>,
    /// Policy name → policy document.
    pub inline_policies: IndexMap<String, Value>,
    /// `Some(name)` for the EC2 role: its instance profile, which has the same name as the role
    /// (EMR rejects a profile whose name differs from its role's).
    pub instance_profile: Option<String>,
}

/// Renders the IAM roles and policies the job needs.
pub fn iam_documents(plan: &JobPlan) -> IamPlan {
    let mut roles = IndexMap::new();
    roles.insert(plan.roles.service.clone(), service_role(plan));
    roles.insert(plan.roles.instance_profile.clone(), instance_role(plan));
    if plan.schedule.is_some() {
        roles.insert(plan.roles.scheduler.clone(), scheduler_role(plan));
    }
    IamPlan(roles)
}

/// The name of the Lambda function that launches scheduled runs.
pub fn scheduler_function_name(plan: &JobPlan) -> String {
    format!("emrship-{}-scheduler", plan.name)
}

/// `arn:aws:iam::<account or *>:role/<name>` (roles are created on the default path `/`).
pub fn role_arn(plan: &JobPlan, role_name: &str) -> String {
    format!("arn:aws:iam::{}:role/{role_name}", account(plan))
}

fn account(plan: &JobPlan) -> &str {
    plan.account_id.as_deref().unwrap_or("*")
}

// ---------------------------------------------------------------------------------------------
// The three roles

fn service_role(plan: &JobPlan) -> RoleDocuments {
    // Confused-deputy guard: only EMR acting for this account (and region) may assume the role.
    let condition = plan.account_id.as_ref().map(|account| {
        json!({
            "StringEquals": { "aws:SourceAccount": account },
            "ArnLike": {
                "aws:SourceArn": format!("arn:aws:elasticmapreduce:{}:{account}:*", plan.region)
            },
        })
    });
    // AmazonEMRServicePolicy_v2 passes only `EMR_EC2_DefaultRole`; our instance profile role
    // has its own name, so the service role needs its own PassRole for it.
    let pass_instance_role = vec![Statement::new(
        "PassInstanceProfileRole",
        &["iam:PassRole"],
        [role_arn(plan, &plan.roles.instance_profile)],
    )
    .when(passed_to("ec2.amazonaws.com*"))];
    RoleDocuments {
        purpose:
            "EMR service role: EMR assumes it to create and manage the cluster's EC2 resources"
                .to_string(),
        trust_policy: trust_policy("elasticmapreduce.amazonaws.com", condition),
        managed_policy_arns: vec![EMR_SERVICE_POLICY_V2.to_string()],
        inline_policies: IndexMap::from([(
            "emrship-pass-instance-role".to_string(),
            policy_document(pass_instance_role),
        )]),
        instance_profile: None,
    }
}

fn instance_role(plan: &JobPlan) -> RoleDocuments {
    RoleDocuments {
        purpose: "EC2 instance profile role: the cluster's nodes (EMRFS, the job, log archiving) \
                  act with it"
            .to_string(),
        trust_policy: trust_policy("ec2.amazonaws.com", None),
        managed_policy_arns: Vec::new(),
        inline_policies: IndexMap::from([(
            "emrship-job-data".to_string(),
            policy_document(job_data_statements(plan)),
        )]),
        instance_profile: Some(plan.roles.instance_profile.clone()),
    }
}

fn scheduler_role(plan: &JobPlan) -> RoleDocuments {
    let account = account(plan);
    let region = &plan.region;
    let function = scheduler_function_name(plan);
    let log_group = format!("arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{function}");
    let schedule_plan = schedule_plan_uri(plan);
    let statements =
        vec![
        // RunJobFlow has no resource ARN; the tag condition keeps the Lambda to clusters that
        // carry the EMR managed-policy tag (which the v2 service policy needs anyway).
        Statement::new(
            "RunJobFlowWithEmrManagedTag",
            &["elasticmapreduce:RunJobFlow", "elasticmapreduce:AddTags"],
            ["*".to_string()],
        )
        .when(json!({
            "StringEquals": { format!("aws:RequestTag/{MANAGED_POLICY_TAG}"): "true" }
        })),
        // The run-key guard: find a cluster already launched for the day before launching.
        Statement::new(
            "ListClusters",
            &["elasticmapreduce:ListClusters"],
            ["*".to_string()],
        ),
        // A run key's ended cluster counts as done when its steps all completed.
        Statement::new(
            "DescribeClusters",
            &["elasticmapreduce:DescribeCluster", "elasticmapreduce:ListSteps"],
            [format!(
                "arn:aws:elasticmapreduce:{region}:{account}:cluster/*"
            )],
        ),
        // Two launches of one day at once: the younger cluster is terminated (only this job's).
        Statement::new(
            "TerminateDuplicateCluster",
            &["elasticmapreduce:TerminateJobFlows"],
            [format!(
                "arn:aws:elasticmapreduce:{region}:{account}:cluster/*"
            )],
        )
        .when(json!({
            "StringLike": { format!("aws:ResourceTag/{RUN_KEY_TAG}"): format!("{}/*", plan.name) }
        })),
        Statement::new(
            "PassServiceRole",
            &["iam:PassRole"],
            [role_arn(plan, &plan.roles.service)],
        )
        .when(passed_to("elasticmapreduce.amazonaws.com*")),
        Statement::new(
            "PassInstanceProfileRole",
            &["iam:PassRole"],
            [role_arn(plan, &plan.roles.instance_profile)],
        )
        .when(passed_to("ec2.amazonaws.com*")),
        Statement::new(
            "ReadSchedulePlan",
            &["s3:GetObject"],
            [format!(
                "arn:aws:s3:::{}/{}",
                schedule_plan.bucket, schedule_plan.key
            )],
        ),
        Statement::new(
            "CreateLogGroup",
            &["logs:CreateLogGroup"],
            [log_group.clone()],
        ),
        Statement::new(
            "WriteLogs",
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            [format!("{log_group}:*")],
        ),
    ];
    RoleDocuments {
        purpose: format!(
            "Scheduler Lambda role: `{function}` assumes it to launch the scheduled runs"
        ),
        trust_policy: trust_policy("lambda.amazonaws.com", None),
        managed_policy_arns: Vec::new(),
        inline_policies: IndexMap::from([(
            "emrship-scheduler".to_string(),
            policy_document(statements),
        )]),
        instance_profile: None,
    }
}

/// What the cluster's nodes touch: inputs, outputs, artifacts, logs, tables and secrets.
fn job_data_statements(plan: &JobPlan) -> Vec<Statement> {
    let job = &plan.job;
    let artifacts = plan.artifact_prefix();
    let mut write_objects: BTreeSet<String> = job.writes.iter().map(S3Uri::objects_arn).collect();
    if job.engine == crate::spec::raw::Engine::Spark && job.app.is_none() {
        // The spark engine's reduce tasks stage their rows there; the run removes them.
        write_objects.insert(super::scripts::staging_prefix(plan).objects_arn());
    }

    // Read-only objects: inputs, the artifact prefix (bundle, scripts, config files) and the
    // spec's own bootstrap scripts outside it (exact keys): nodes fetch those with this role.
    // Anything also written is granted by the read-write statement instead.
    let bootstrap_scripts = plan
        .cluster
        .bootstrap
        .iter()
        .filter_map(|action| match &action.script {
            crate::spec::job_plan::BootstrapScript::S3(uri) => Some(uri),
            // Uploaded under the artifact prefix, which the role reads already.
            crate::spec::job_plan::BootstrapScript::Local(_) => None,
        })
        .filter(|path| !(path.bucket == artifacts.bucket && path.key.starts_with(&artifacts.key)))
        .map(exact_object_arn);
    let read_objects = job
        .reads
        .iter()
        .chain([&artifacts])
        .map(S3Uri::objects_arn)
        .chain(bootstrap_scripts)
        .filter(|arn| !write_objects.contains(arn));

    // ListBucket per bucket, limited to the prefixes the job uses there.
    let mut list_prefixes: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for uri in job.reads.iter().chain(&job.writes).chain([&artifacts]) {
        list_prefixes
            .entry(uri.bucket.as_str())
            .or_default()
            .insert(format!("{}*", uri.key));
    }

    let mut statements = vec![
        Statement::new("ReadObjects", &["s3:GetObject"], read_objects),
        // DeleteObject: committers write temporary objects and remove them.
        Statement::new(
            "ReadWriteObjects",
            &[
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            write_objects.iter().cloned(),
        ),
    ];
    let mut sids = BTreeSet::new();
    for (bucket, prefixes) in &list_prefixes {
        let sid = unique_sid(&mut sids, format!("ListBucket{}", camel_case(bucket)));
        statements.push(
            Statement::new(&sid, &["s3:ListBucket"], [bucket_arn(bucket)])
                .when(json!({ "StringLike": { "s3:prefix": prefixes } })),
        );
    }
    // ListBucketMultipartUploads has no `s3:prefix` condition key (a condition on it would
    // never match), so it is granted on the written buckets without one.
    statements.push(Statement::new(
        "ListMultipartUploads",
        &["s3:ListBucketMultipartUploads"],
        job.writes.iter().map(S3Uri::bucket_arn),
    ));
    // EMR archives the nodes' logs under `<LogUri>/<cluster-id>/`.
    statements.push(Statement::new(
        "WriteLogs",
        &["s3:PutObject"],
        [plan.log_uri.as_prefix().objects_arn()],
    ));
    statements.push(Statement::new(
        "ReadDynamoDbTables",
        &["dynamodb:BatchGetItem", "dynamodb:DescribeTable"],
        job.dynamodb_tables.iter().map(|table| {
            format!(
                "arn:aws:dynamodb:{}:{}:table/{table}",
                plan.region,
                account(plan)
            )
        }),
    ));

    statements.extend(kinesis_statements(plan));

    // Secrets are named by ARN. A secret's full ARN ends in `-` and six random characters;
    // a spec may give the ARN without them, so `-??????` is granted beside the ARN as written.
    // Secrets or SecureString parameters encrypted with a customer managed KMS key also need
    // `kms:Decrypt` on that key; emrship does not know the key, so that is left to the user.
    let mut secret_arns = BTreeSet::new();
    let mut parameter_arns = BTreeSet::new();
    for reference in job.secrets.values() {
        match reference.split(':').nth(2) {
            Some("secretsmanager") => {
                secret_arns.insert(reference.clone());
                if !reference.ends_with("-??????") {
                    secret_arns.insert(format!("{reference}-??????"));
                }
            }
            Some("ssm") => {
                parameter_arns.insert(reference.clone());
            }
            _ => {}
        }
    }
    statements.push(Statement::new(
        "ReadSecrets",
        &["secretsmanager:GetSecretValue"],
        secret_arns,
    ));
    statements.push(Statement::new(
        "ReadParameters",
        &["ssm:GetParameter"],
        parameter_arns,
    ));
    statements
}

/// A Kinesis consumer: read on its one stream, its lease table (created on first start), and
/// for a KCL-based application the CloudWatch metrics it publishes under its own namespace.
/// emrship-job's `stream` publishes no metrics, so it is granted no CloudWatch action.
fn kinesis_statements(plan: &JobPlan) -> Vec<Statement> {
    let Some(kinesis) = &plan.job.kinesis else {
        return Vec::new();
    };
    let mut statements = vec![
        // ListStreams is not needed: the consumer names its stream.
        Statement::new(
            "ReadKinesisStream",
            &[
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetRecords",
                "kinesis:GetShardIterator",
                "kinesis:ListShards",
            ],
            [kinesis.stream_arn.clone()],
        ),
        Statement::new(
            "KinesisLeaseTable",
            &[
                "dynamodb:CreateTable",
                "dynamodb:DescribeTable",
                "dynamodb:Scan",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ],
            [format!(
                "arn:aws:dynamodb:{}:{}:table/{}",
                plan.region,
                account(plan),
                kinesis.lease_table
            )],
        ),
    ];
    if let Some(namespace) = &kinesis.metrics_namespace {
        // PutMetricData has no resource ARN; the namespace condition keeps it to the KCL's own.
        statements.push(
            Statement::new(
                "KinesisConsumerMetrics",
                &["cloudwatch:PutMetricData"],
                ["*".to_string()],
            )
            .when(json!({ "StringEquals": { "cloudwatch:namespace": namespace } })),
        );
    }
    statements
}

// ---------------------------------------------------------------------------------------------
// Documents

#[derive(Debug, Clone)]
struct Statement {
    sid: String,
    actions: BTreeSet<&'static str>,
    resources: BTreeSet<String>,
    condition: Option<Value>,
}

impl Statement {
    fn new(
        sid: &str,
        actions: &[&'static str],
        resources: impl IntoIterator<Item = String>,
    ) -> Statement {
        Statement {
            sid: sid.to_string(),
            actions: actions.iter().copied().collect(),
            resources: resources.into_iter().collect(),
            condition: None,
        }
    }

    fn when(mut self, condition: Value) -> Statement {
        self.condition = Some(condition);
        self
    }

    fn to_json(&self) -> Value {
        let mut statement = Map::new();
        statement.insert("Sid".into(), json!(self.sid));
        statement.insert("Effect".into(), json!("Allow"));
        statement.insert("Action".into(), json!(self.actions));
        statement.insert("Resource".into(), json!(self.resources));
        if let Some(condition) = &self.condition {
            statement.insert("Condition".into(), condition.clone());
        }
        Value::Object(statement)
    }
}

/// A policy document from statements: those without resources are dropped, and statements
/// with the same actions and condition are merged into the first of them (keeping its `Sid`
/// and position).
fn policy_document(statements: Vec<Statement>) -> Value {
    let mut merged: Vec<Statement> = Vec::new();
    for statement in statements {
        if statement.resources.is_empty() {
            continue;
        }
        match merged
            .iter_mut()
            .find(|m| m.actions == statement.actions && m.condition == statement.condition)
        {
            Some(existing) => existing.resources.extend(statement.resources),
            None => merged.push(statement),
        }
    }
    json!({
        "Version": POLICY_VERSION,
        "Statement": merged.iter().map(Statement::to_json).collect::<Vec<_>>(),
    })
}

fn trust_policy(service: &str, condition: Option<Value>) -> Value {
    let mut statement = Map::new();
    statement.insert("Effect".into(), json!("Allow"));
    statement.insert("Principal".into(), json!({ "Service": service }));
    statement.insert("Action".into(), json!("sts:AssumeRole"));
    if let Some(condition) = condition {
        statement.insert("Condition".into(), condition);
    }
    json!({ "Version": POLICY_VERSION, "Statement": [statement] })
}

fn passed_to(service_pattern: &str) -> Value {
    json!({ "StringLike": { "iam:PassedToService": service_pattern } })
}

fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// One object, no wildcard.
fn exact_object_arn(uri: &S3Uri) -> String {
    format!("arn:aws:s3:::{}/{}", uri.bucket, uri.key)
}

/// `example-ads-data` → `ExampleAdsData`: a `Sid` may hold only letters and digits.
fn camel_case(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `sid`, or `sid2`, `sid3`, … when taken (`a-b` and `a.b` camel-case alike).
fn unique_sid(taken: &mut BTreeSet<String>, sid: String) -> String {
    let mut candidate = sid.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{sid}{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::spec::{load_and_resolve, LayerText, RunContext};

    const SPEC: &str = r#"
name: match-rate
region: us-east-1
release: emr-7.5.0
log_uri: s3://example-ads-data/emr-logs/
artifacts: s3://example-ads-data/emrship/
account_id: "123456789012"
cluster:
  master: { instance_type: m5.xlarge }
  core: { instance_type: r5.2xlarge, count: 4 }
job:
  engine: spark
  command: match-rate
  args:
    views: s3://example-ads-logs/product-views/dt={{date}}/
    catalog: dynamodb://product-catalog
    sink: s3://example-ads-data/match-rates/
  secrets: { PGPASSWORD: "arn:aws:secretsmanager:us-east-1:123456789012:secret:ads-db" }
schedule: { cron: "cron(0 6 * * ? *)", date: yesterday }
"#;

    fn plan(text: &str) -> JobPlan {
        let layer = LayerText {
            name: "match-rate.yaml".to_string(),
            text: text.to_string(),
        };
        let context = RunContext {
            date: NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
        };
        match load_and_resolve(&layer, &[], &[], context) {
            Ok((plan, _warnings)) => plan,
            Err(diagnostics) => panic!("the spec did not resolve:\n{}", diagnostics.render()),
        }
    }

    fn without_line(text: &str, starting: &str) -> String {
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with(starting))
            .collect();
        kept.join("\n")
    }

    fn statements<'a>(iam: &'a IamPlan, role: &str, policy: &str) -> &'a Vec<Value> {
        iam.0[role].inline_policies[policy]["Statement"]
            .as_array()
            .unwrap()
    }

    fn statement<'a>(statements: &'a [Value], sid: &str) -> &'a Value {
        statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid} in {statements:#?}"))
    }

    fn strings(value: &Value) -> Vec<&str> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    }

    fn actions(statement: &Value) -> Vec<&str> {
        strings(&statement["Action"])
    }

    fn resources(statement: &Value) -> Vec<&str> {
        strings(&statement["Resource"])
    }

    #[test]
    fn renders_the_three_roles() {
        let plan = plan(SPEC);
        let iam = iam_documents(&plan);
        let names: Vec<&str> = iam.0.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "emrship-match-rate-service",
                "emrship-match-rate-ec2",
                "emrship-match-rate-scheduler"
            ]
        );
        let service = &iam.0["emrship-match-rate-service"];
        assert_eq!(service.managed_policy_arns, [EMR_SERVICE_POLICY_V2]);
        assert_eq!(service.instance_profile, None);
        assert_eq!(
            service.trust_policy,
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": "elasticmapreduce.amazonaws.com" },
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": { "aws:SourceAccount": "123456789012" },
                        "ArnLike": {
                            "aws:SourceArn": "arn:aws:elasticmapreduce:us-east-1:123456789012:*"
                        }
                    }
                }]
            })
        );
        let ec2 = &iam.0["emrship-match-rate-ec2"];
        assert_eq!(
            ec2.instance_profile.as_deref(),
            Some("emrship-match-rate-ec2")
        );
        assert_eq!(
            ec2.trust_policy["Statement"][0]["Principal"]["Service"],
            "ec2.amazonaws.com"
        );
        let scheduler = &iam.0["emrship-match-rate-scheduler"];
        assert_eq!(
            scheduler.trust_policy["Statement"][0]["Principal"]["Service"],
            "lambda.amazonaws.com"
        );
        // Every document has the version, every statement a Sid, with keys in the fixed order.
        for role in iam.0.values() {
            for document in role.inline_policies.values() {
                assert_eq!(document["Version"], "2012-10-17");
                for statement in document["Statement"].as_array().unwrap() {
                    let keys: Vec<&str> = statement
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    assert_eq!(keys[..4], ["Sid", "Effect", "Action", "Resource"]);
                    let actions = actions(statement);
                    let mut sorted = actions.clone();
                    sorted.sort();
                    sorted.dedup();
                    assert_eq!(actions, sorted);
                }
            }
        }
        // Transparent: the JSON is the map of roles.
        let json = serde_json::to_value(&iam).unwrap();
        assert!(json["emrship-match-rate-ec2"]["inline_policies"]["emrship-job-data"].is_object());
    }

    #[test]
    fn instance_role_is_least_privilege() {
        let plan = plan(SPEC);
        let iam = iam_documents(&plan);
        let statements = statements(&iam, "emrship-match-rate-ec2", "emrship-job-data");

        for statement in statements {
            let s3 = actions(statement).iter().any(|a| a.starts_with("s3:"));
            if s3 {
                assert!(
                    resources(statement).iter().all(|r| *r != "*"),
                    "{statement:#}"
                );
            }
            assert!(!actions(statement).contains(&"cloudwatch:PutMetricData"));
        }

        let read = statement(statements, "ReadObjects");
        assert_eq!(actions(read), ["s3:GetObject"]);
        assert_eq!(
            resources(read),
            [
                "arn:aws:s3:::example-ads-data/emrship/match-rate/*",
                "arn:aws:s3:::example-ads-logs/product-views/dt=*",
            ]
        );
        let write = statement(statements, "ReadWriteObjects");
        assert!(actions(write).contains(&"s3:DeleteObject"));
        assert!(actions(write).contains(&"s3:PutObject"));
        // The sink, and the spark engine's staging prefix (reduce tasks stage rows there).
        assert_eq!(
            resources(write),
            [
                "arn:aws:s3:::example-ads-data/emrship/match-rate/staging/*",
                "arn:aws:s3:::example-ads-data/match-rates/*"
            ]
        );
        // No statement grants DeleteObject on what is only read (of the artifacts, only the
        // staging prefix is written).
        for statement in statements {
            if actions(statement).contains(&"s3:DeleteObject") {
                assert!(!resources(statement)
                    .iter()
                    .any(|r| r.contains("product-views")
                        || (r.contains("emrship/") && !r.ends_with("/staging/*"))));
            }
        }

        let list_data = statement(statements, "ListBucketExampleAdsData");
        assert_eq!(actions(list_data), ["s3:ListBucket"]);
        assert_eq!(resources(list_data), ["arn:aws:s3:::example-ads-data"]);
        assert_eq!(
            list_data["Condition"],
            json!({ "StringLike": { "s3:prefix": ["emrship/match-rate/*", "match-rates/*"] } })
        );
        let list_logs = statement(statements, "ListBucketExampleAdsLogs");
        assert_eq!(
            list_logs["Condition"],
            json!({ "StringLike": { "s3:prefix": ["product-views/dt=*"] } })
        );
        assert_eq!(
            resources(statement(statements, "ListMultipartUploads")),
            ["arn:aws:s3:::example-ads-data"]
        );
        let logs = statement(statements, "WriteLogs");
        assert_eq!(actions(logs), ["s3:PutObject"]);
        assert_eq!(
            resources(logs),
            ["arn:aws:s3:::example-ads-data/emr-logs/*"]
        );

        let tables = statement(statements, "ReadDynamoDbTables");
        assert_eq!(
            actions(tables),
            ["dynamodb:BatchGetItem", "dynamodb:DescribeTable"]
        );
        assert_eq!(
            resources(tables),
            ["arn:aws:dynamodb:us-east-1:123456789012:table/product-catalog"]
        );
        let secrets = statement(statements, "ReadSecrets");
        assert_eq!(
            resources(secrets),
            [
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:ads-db",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:ads-db-??????",
            ]
        );
        // No SSM parameter in the spec: no statement for it.
        assert!(statements.iter().all(|s| s["Sid"] != "ReadParameters"));
    }

    #[test]
    fn pass_role_names_exact_roles_for_one_service() {
        let plan = plan(SPEC);
        let iam = iam_documents(&plan);

        let service = statements(
            &iam,
            "emrship-match-rate-service",
            "emrship-pass-instance-role",
        );
        assert_eq!(
            service,
            &[json!({
                "Sid": "PassInstanceProfileRole",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": ["arn:aws:iam::123456789012:role/emrship-match-rate-ec2"],
                "Condition": { "StringLike": { "iam:PassedToService": "ec2.amazonaws.com*" } }
            })]
        );

        let scheduler = statements(&iam, "emrship-match-rate-scheduler", "emrship-scheduler");
        let pass: Vec<&Value> = scheduler
            .iter()
            .filter(|s| actions(s).contains(&"iam:PassRole"))
            .collect();
        assert_eq!(pass.len(), 2);
        assert_eq!(
            resources(pass[0]),
            ["arn:aws:iam::123456789012:role/emrship-match-rate-service"]
        );
        assert_eq!(
            pass[0]["Condition"]["StringLike"]["iam:PassedToService"],
            "elasticmapreduce.amazonaws.com*"
        );
        assert_eq!(
            resources(pass[1]),
            ["arn:aws:iam::123456789012:role/emrship-match-rate-ec2"]
        );
        assert_eq!(
            pass[1]["Condition"]["StringLike"]["iam:PassedToService"],
            "ec2.amazonaws.com*"
        );
        for statement in &pass {
            assert_eq!(actions(statement), ["iam:PassRole"]);
        }
    }

    #[test]
    fn scheduler_policy() {
        let plan = plan(SPEC);
        assert_eq!(
            scheduler_function_name(&plan),
            "emrship-match-rate-scheduler"
        );
        let iam = iam_documents(&plan);
        let statements = statements(&iam, "emrship-match-rate-scheduler", "emrship-scheduler");
        let run = statement(statements, "RunJobFlowWithEmrManagedTag");
        assert_eq!(
            actions(run),
            ["elasticmapreduce:AddTags", "elasticmapreduce:RunJobFlow"]
        );
        assert_eq!(resources(run), ["*"]);
        assert_eq!(
            run["Condition"],
            json!({ "StringEquals": {
                "aws:RequestTag/for-use-with-amazon-emr-managed-policies": "true"
            } })
        );
        assert_eq!(
            resources(statement(statements, "DescribeClusters")),
            ["arn:aws:elasticmapreduce:us-east-1:123456789012:cluster/*"]
        );
        let terminate = statement(statements, "TerminateDuplicateCluster");
        assert_eq!(actions(terminate), ["elasticmapreduce:TerminateJobFlows"]);
        assert_eq!(
            terminate["Condition"],
            json!({ "StringLike": { "aws:ResourceTag/emrship:run-key": "match-rate/*" } })
        );
        assert_eq!(
            resources(statement(statements, "ReadSchedulePlan")),
            ["arn:aws:s3:::example-ads-data/emrship/match-rate/schedule/plan.json"]
        );
        assert_eq!(
            resources(statement(statements, "CreateLogGroup")),
            ["arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/emrship-match-rate-scheduler"]
        );
        let logs = statement(statements, "WriteLogs");
        assert_eq!(actions(logs), ["logs:CreateLogStream", "logs:PutLogEvents"]);
        assert_eq!(
            resources(logs),
            ["arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/emrship-match-rate-scheduler:*"]
        );
    }

    #[test]
    fn no_schedule_no_scheduler_role() {
        let plan = plan(&without_line(SPEC, "schedule:"));
        let iam = iam_documents(&plan);
        assert_eq!(iam.0.len(), 2);
        assert!(!iam.0.contains_key("emrship-match-rate-scheduler"));
    }

    #[test]
    fn no_account_id_puts_a_wildcard_in_the_account() {
        let plan = plan(&without_line(SPEC, "account_id:"));
        let iam = iam_documents(&plan);
        let service = &iam.0["emrship-match-rate-service"];
        assert!(service.trust_policy["Statement"][0]
            .get("Condition")
            .is_none());
        assert_eq!(
            resources(&service.inline_policies["emrship-pass-instance-role"]["Statement"][0]),
            ["arn:aws:iam::*:role/emrship-match-rate-ec2"]
        );
        let job = statements(&iam, "emrship-match-rate-ec2", "emrship-job-data");
        assert_eq!(
            resources(statement(job, "ReadDynamoDbTables")),
            ["arn:aws:dynamodb:us-east-1:*:table/product-catalog"]
        );
        let scheduler = statements(&iam, "emrship-match-rate-scheduler", "emrship-scheduler");
        assert_eq!(
            resources(statement(scheduler, "PassServiceRole")),
            ["arn:aws:iam::*:role/emrship-match-rate-service"]
        );
        assert_eq!(
            resources(statement(scheduler, "DescribeClusters")),
            ["arn:aws:elasticmapreduce:us-east-1:*:cluster/*"]
        );
        assert_eq!(
            resources(statement(scheduler, "CreateLogGroup")),
            ["arn:aws:logs:us-east-1:*:log-group:/aws/lambda/emrship-match-rate-scheduler"]
        );
    }

    #[test]
    fn bootstrap_scripts_parameters_and_overlaps() {
        let text = SPEC
            .replace(
                "  core: { instance_type: r5.2xlarge, count: 4 }\n",
                "  core: { instance_type: r5.2xlarge, count: 4 }\n  bootstrap:\n    \
                 - { name: tools, path: s3://example-ops/bootstrap/tools.sh }\n    \
                 - { name: mine, path: s3://example-ads-data/emrship/match-rate/own.sh }\n",
            )
            .replace(
                "secrets: { PGPASSWORD:",
                "secrets: { API_KEY: \"arn:aws:ssm:us-east-1:123456789012:parameter/ads/api-key\", PGPASSWORD:",
            )
            .replace(
                "views: s3://example-ads-logs/product-views/dt={{date}}/",
                "views: s3://example-ads-data/match-rates/",
            );
        let plan = plan(&text);
        let iam = iam_documents(&plan);
        let statements = statements(&iam, "emrship-match-rate-ec2", "emrship-job-data");
        // The script outside the artifact prefix is readable by its exact key; the one inside is
        // already covered; the input that is also the output is only in the read-write grant.
        assert_eq!(
            resources(statement(statements, "ReadObjects")),
            [
                "arn:aws:s3:::example-ads-data/emrship/match-rate/*",
                "arn:aws:s3:::example-ops/bootstrap/tools.sh",
            ]
        );
        assert_eq!(
            resources(statement(statements, "ReadWriteObjects")),
            [
                "arn:aws:s3:::example-ads-data/emrship/match-rate/staging/*",
                "arn:aws:s3:::example-ads-data/match-rates/*"
            ]
        );
        let parameters = statement(statements, "ReadParameters");
        assert_eq!(actions(parameters), ["ssm:GetParameter"]);
        assert_eq!(
            resources(parameters),
            ["arn:aws:ssm:us-east-1:123456789012:parameter/ads/api-key"]
        );
        assert!(!resources(statement(statements, "ReadSecrets"))
            .iter()
            .any(|r| r.contains(":ssm:")));
    }

    #[test]
    fn statements_with_the_same_actions_merge() {
        let merged = policy_document(vec![
            Statement::new("A", &["s3:GetObject"], ["arn:b".to_string()]),
            Statement::new("Empty", &["s3:PutObject"], Vec::new()),
            Statement::new(
                "B",
                &["s3:GetObject"],
                ["arn:a".to_string(), "arn:b".to_string()],
            ),
            Statement::new("C", &["s3:GetObject"], ["arn:c".to_string()]).when(json!({})),
        ]);
        let statements = merged["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0]["Sid"], "A");
        assert_eq!(resources(&statements[0]), ["arn:a", "arn:b"]);
        assert_eq!(statements[1]["Sid"], "C");
        assert_eq!(camel_case("my.bucket-1"), "MyBucket1");
        let mut taken = BTreeSet::new();
        assert_eq!(unique_sid(&mut taken, "X".into()), "X");
        assert_eq!(unique_sid(&mut taken, "X".into()), "X2");
    }

    /// The `SPEC` spec with its job replaced by `job` (YAML at the `job:` key's level).
    fn with_job(job: &str) -> String {
        let head = SPEC.split("job:\n").next().unwrap();
        format!("{head}job:\n{job}")
    }

    #[test]
    fn stream_command_reads_its_stream_and_owns_its_lease_table_only() {
        let plan = plan(&with_job(
            "  engine: local\n  command: stream\n  args:\n    stream: page-events\n    output: s3://example-ads-data/windows/\n",
        ));
        let iam = iam_documents(&plan);
        let statements = statements(&iam, "emrship-match-rate-ec2", "emrship-job-data");
        let stream = statement(statements, "ReadKinesisStream");
        assert_eq!(
            actions(stream),
            [
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetRecords",
                "kinesis:GetShardIterator",
                "kinesis:ListShards",
            ]
        );
        assert_eq!(
            resources(stream),
            ["arn:aws:kinesis:us-east-1:123456789012:stream/page-events"]
        );
        let leases = statement(statements, "KinesisLeaseTable");
        assert_eq!(
            resources(leases),
            ["arn:aws:dynamodb:us-east-1:123456789012:table/match-rate-leases"]
        );
        assert!(actions(leases).contains(&"dynamodb:CreateTable"));
        assert!(!actions(leases).contains(&"dynamodb:DeleteTable"));
        // The worker publishes no metrics: no CloudWatch, and nothing on `*`.
        for statement in statements {
            assert!(actions(statement)
                .iter()
                .all(|a| !a.starts_with("cloudwatch:")));
            assert!(
                resources(statement).iter().all(|r| *r != "*"),
                "{statement:#}"
            );
        }
        // The output: a create-only PutObject that loses reads the winner back (GetObject).
        let write = statement(statements, "ReadWriteObjects");
        assert!(actions(write).contains(&"s3:GetObject"));
        assert_eq!(
            resources(write),
            ["arn:aws:s3:::example-ads-data/windows/*"]
        );
        assert_eq!(
            statement(statements, "ListBucketExampleAdsData")["Condition"],
            json!({ "StringLike": { "s3:prefix": ["emrship/match-rate/*", "windows/*"] } })
        );
    }

    #[test]
    fn a_spark_application_reading_kinesis_gets_its_kcl_grants() {
        let plan = plan(&with_job(
            "  pyspark: { main: main.py }\n  kinesis: { stream: \"arn:aws:kinesis:us-east-1:210987654321:stream/clicks\", shards: 4 }\n",
        ));
        let iam = iam_documents(&plan);
        let statements = statements(&iam, "emrship-match-rate-ec2", "emrship-job-data");
        assert_eq!(
            resources(statement(statements, "ReadKinesisStream")),
            ["arn:aws:kinesis:us-east-1:210987654321:stream/clicks"]
        );
        // The KCL names its lease table and metrics namespace after the application.
        assert_eq!(
            resources(statement(statements, "KinesisLeaseTable")),
            ["arn:aws:dynamodb:us-east-1:123456789012:table/match-rate"]
        );
        let metrics = statement(statements, "KinesisConsumerMetrics");
        assert_eq!(actions(metrics), ["cloudwatch:PutMetricData"]);
        assert_eq!(
            metrics["Condition"],
            json!({ "StringEquals": { "cloudwatch:namespace": "match-rate" } })
        );
    }
}
