//! One test per spec validation rule: each starts from the valid [`BASE`] spec, changes only what
//! the rule needs, and snapshots the rendered report a user sees (message, `[file:line:col]`,
//! caret and help). A plain assertion on the rule's code keeps a snapshot from silently
//! accepting a report from the wrong rule.

use chrono::NaiveDate;
use emrship::spec::{load_and_resolve, Diagnostics, JobPlan, LayerText, RunContext, Severity};

const FILE: &str = "job-specs/match-rate.yaml";

/// A valid spec; every test below derives its input from this one.
const BASE: &str = r#"name: match-rate
region: us-east-1
release: emr-7.5.0
log_uri: s3://example-ads-data/emr-logs/
artifacts: s3://example-ads-data/emrship/
cluster:
  master: { instance_type: m5.xlarge }
  core: { instance_type: r5.2xlarge, count: 4 }
  idle_timeout: 1h
  tags: { team: ads }
spark:
  deploy_mode: cluster
  executors: auto
  conf: { spark.speculation: "true" }
  env: { APP_NAMESPACE: dynamic-ads }
job:
  engine: spark
  command: match-rate
  args:
    views: s3://example-ads-logs/product-views/dt={{date}}/
    catalog: dynamodb://product-catalog
    sink: postgres://emrship@ads-db.internal:5432/ads
  secrets: { PGPASSWORD: "arn:aws:secretsmanager:us-east-1:123456789012:secret:ads-db" }
schedule: { cron: "cron(0 6 * * ? *)", date: yesterday }
"#;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn layer(name: &str, text: &str) -> LayerText {
    LayerText {
        name: name.into(),
        text: text.into(),
    }
}

fn context() -> RunContext {
    RunContext {
        date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    }
}

fn resolve_layers(
    spec: &str,
    overlays: &[(&str, &str)],
    sets: &[&str],
) -> Result<(JobPlan, Diagnostics), Diagnostics> {
    let overlays: Vec<LayerText> = overlays
        .iter()
        .map(|(name, text)| layer(name, text))
        .collect();
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    load_and_resolve(&layer(FILE, spec), &overlays, &sets, context())
}

/// What a failed (or warned) resolution reported.
struct Report {
    rendered: String,
    /// The code of every diagnostic, sorted, duplicates kept.
    codes: Vec<&'static str>,
}

impl Report {
    fn new(diagnostics: &Diagnostics) -> Report {
        let mut codes: Vec<&'static str> = diagnostics.iter().map(|d| d.code).collect();
        codes.sort_unstable();
        Report {
            rendered: diagnostics.render(),
            codes,
        }
    }

    /// Asserts the report holds this code and prints it.
    #[track_caller]
    fn assert_has(&self, code: &str) {
        assert!(
            self.codes.contains(&code),
            "`{code}` not reported; got {:?}:\n{}",
            self.codes,
            self.rendered
        );
        assert!(
            self.rendered.contains(code),
            "`{code}` missing from the rendered report:\n{}",
            self.rendered
        );
    }

    /// Asserts the report holds exactly these codes (any order, each as often as listed), and
    /// that each code is printed in the rendered text.
    #[track_caller]
    fn assert_codes(&self, expected: &[&str]) {
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        assert_eq!(self.codes, expected, "rendered:\n{}", self.rendered);
        for code in expected {
            assert!(
                self.rendered.contains(code),
                "`{code}` missing from the rendered report:\n{}",
                self.rendered
            );
        }
    }
}

/// Resolves a spec that must fail and returns its report.
#[track_caller]
fn check(spec: &str) -> Report {
    check_layers(spec, &[], &[])
}

#[track_caller]
fn check_layers(spec: &str, overlays: &[(&str, &str)], sets: &[&str]) -> Report {
    match resolve_layers(spec, overlays, sets) {
        Ok((_, warnings)) => panic!(
            "expected the spec to be rejected, but it resolved; warnings:\n{}",
            warnings.render()
        ),
        Err(diagnostics) => {
            assert!(diagnostics.has_errors(), "Err without an error");
            Report::new(&diagnostics)
        }
    }
}

/// Resolves a spec that must succeed and returns the report of its warnings.
#[track_caller]
fn resolves(spec: &str) -> (JobPlan, Report) {
    match resolve_layers(spec, &[], &[]) {
        Ok((plan, warnings)) => {
            assert!(!warnings.has_errors());
            let report = Report::new(&warnings);
            (plan, report)
        }
        Err(diagnostics) => panic!(
            "expected the spec to resolve, but it failed:\n{}",
            diagnostics.render()
        ),
    }
}

/// BASE with `from` (which must occur exactly once) replaced by `to`.
#[track_caller]
fn base_with(from: &str, to: &str) -> String {
    edit(BASE, from, to)
}

#[track_caller]
fn edit(spec: &str, from: &str, to: &str) -> String {
    assert_eq!(
        spec.matches(from).count(),
        1,
        "`{from}` must occur exactly once in the spec"
    );
    spec.replacen(from, to, 1)
}

/// BASE with several replacements applied in order.
#[track_caller]
fn base_with_all(edits: &[(&str, &str)]) -> String {
    edits
        .iter()
        .fold(BASE.to_string(), |spec, (from, to)| edit(&spec, from, to))
}

const CORE: &str = "  core: { instance_type: r5.2xlarge, count: 4 }\n";
const EXECUTORS: &str = "  executors: auto\n";
const ENGINE: &str = "  engine: spark\n";
const CONF: &str = "  conf: { spark.speculation: \"true\" }\n";
const SPARK_ENV: &str = "  env: { APP_NAMESPACE: dynamic-ads }\n";
const TAGS: &str = "  tags: { team: ads }\n";

// ---------------------------------------------------------------------------------------------
// The base spec
// ---------------------------------------------------------------------------------------------

#[test]
fn base_spec_resolves_without_errors() {
    let (plan, warnings) = resolves(BASE);
    warnings.assert_codes(&[]);
    assert_eq!(warnings.rendered, "");
    assert_eq!(plan.name, "match-rate");
    assert_eq!(
        plan.job.args,
        [
            "--date",
            "2026-11-20",
            "--views",
            "s3://example-ads-logs/product-views/dt=2026-11-20/",
            "--catalog",
            "dynamodb://product-catalog",
            "--sink",
            "postgres://emrship@ads-db.internal:5432/ads",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Loading: YAML syntax, document shape, unknown keys, wrong types, layers and --set
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_yaml() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_type: r5.2xlarge, count: 4\n",
    ));
    report.assert_codes(&["spec::yaml-syntax"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn malformed_yaml_is_reported_for_every_layer() {
    let report = check_layers(
        &base_with(TAGS, "  tags: { team: ads\n"),
        &[("job-specs/envs/prod.yaml", "cluster:\n  core:\n count: 8\n")],
        &[],
    );
    report.assert_codes(&["spec::yaml-syntax", "spec::yaml-syntax"]);
    assert!(report.rendered.contains("[job-specs/envs/prod.yaml:"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn document_that_is_not_a_mapping() {
    let report = check("- name: match-rate\n- region: us-east-1\n");
    report.assert_codes(&["spec::not-a-mapping"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_key_suggests_the_closest_key() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_typ: r5.2xlarge, count: 4 }\n",
    ));
    report.assert_has("spec::unknown-key");
    assert!(report.rendered.contains("did you mean `instance_type`?"));
    // With the unknown key taken out, the group also lacks `instance_type`, which is reported
    // too (a follow-on error; see the report).
    report.assert_codes(&["spec::unknown-key", "spec::missing-key"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_key_without_a_close_match_lists_the_keys() {
    let report = check(&base_with(TAGS, &format!("{TAGS}  colour: blue\n")));
    report.assert_codes(&["spec::unknown-key"]);
    assert!(report.rendered.contains("expected one of:"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_enum_value_suggests_the_closest() {
    let report = check(&base_with(ENGINE, "  engine: sprak\n"));
    report.assert_codes(&["spec::unknown-value"]);
    assert!(report.rendered.contains("did you mean `spark`?"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn wrong_type() {
    let report = check(&base_with(
        "  deploy_mode: cluster\n",
        "  deploy_mode: cluster\n  dynamic_allocation: maybe\n",
    ));
    report.assert_codes(&["spec::wrong-type"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn wrong_typed_count_is_reported_alone() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_type: r5.2xlarge, count: four }\n",
    ));
    report.assert_codes(&["spec::wrong-type"]);
}

#[test]
fn missing_required_key() {
    let report = check(&base_with("region: us-east-1\n", ""));
    report.assert_codes(&["spec::missing-key"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn missing_required_nested_key() {
    let report = check(&base_with("  command: match-rate\n", ""));
    report.assert_codes(&["spec::missing-key"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn set_without_equals() {
    let report = check_layers(BASE, &[], &["cluster.core.count"]);
    report.assert_codes(&["spec::set-syntax"]);
    assert!(report.rendered.contains("[--set:1:1]"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn set_with_an_empty_key_segment() {
    let report = check_layers(BASE, &[], &["cluster..core.count=6"]);
    report.assert_codes(&["spec::set-syntax"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn set_value_error_points_at_the_set_argument() {
    let report = check_layers(BASE, &[], &["cluster.core.instance_type=r5.2xlarg"]);
    report.assert_codes(&["spec::unknown-instance-type"]);
    assert!(report.rendered.contains("[--set:1:28]"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn overlay_value_wins_and_the_error_points_at_the_overlay() {
    let overlay =
        "# production sizes\ncluster:\n  core:\n    instance_type: r5.4xlarg\n    count: 8\n";
    let report = check_layers(BASE, &[("job-specs/envs/prod.yaml", overlay)], &[]);
    report.assert_codes(&["spec::unknown-instance-type"]);
    assert!(
        report.rendered.contains("[job-specs/envs/prod.yaml:4:20]"),
        "{}",
        report.rendered
    );
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn overlay_value_replaces_a_bad_base_value() {
    let spec = base_with(CORE, "  core: { instance_type: r5.2xlage, count: 4 }\n");
    let overlay = "cluster:\n  core: { instance_type: r5.4xlarge }\n";
    let (plan, report) = match resolve_layers(&spec, &[("job-specs/envs/prod.yaml", overlay)], &[])
    {
        Ok((plan, warnings)) => (plan, Report::new(&warnings)),
        Err(diagnostics) => panic!("{}", diagnostics.render()),
    };
    report.assert_codes(&[]);
    let sizing = plan.spark.sizing.expect("auto sizing");
    assert_eq!(sizing.instance_type, "r5.4xlarge");
    assert_eq!(sizing.nodes, 4, "the base count stays");
}

#[test]
fn set_into_a_free_form_map_points_at_the_set_argument() {
    let report = check_layers(BASE, &[], &["spark.conf.spark.executor.memory=8g"]);
    report.assert_codes(&["spec::conf-sizing"]);
    assert!(report.rendered.contains("[--set:1:1]"));
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// Top-level values
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_name() {
    let report = check(&base_with("name: match-rate\n", "name: Match_Rate\n"));
    report.assert_codes(&["spec::name"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bad_region() {
    let report = check(&base_with("region: us-east-1\n", "region: us-east\n"));
    report.assert_codes(&["spec::region"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_release_label() {
    let report = check(&base_with("release: emr-7.5.0\n", "release: emr-7.50.0\n"));
    report.assert_codes(&["spec::unknown-release"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bad_s3_uri() {
    let report = check(&base_with(
        "log_uri: s3://example-ads-data/emr-logs/\n",
        "log_uri: s3a://example-ads-data/emr-logs/\n",
    ));
    report.assert_codes(&["spec::bad-s3-uri"]);
    assert!(report.rendered.contains("s3a://"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bad_account_id() {
    let report = check(&base_with(
        "region: us-east-1\n",
        "region: us-east-1\naccount_id: 12345678901\n",
    ));
    report.assert_codes(&["spec::account-id"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bad_role_name() {
    let report = check(&base_with(
        "region: us-east-1\n",
        "region: us-east-1\nroles: { service: \"emr service role\" }\n",
    ));
    report.assert_codes(&["spec::role-name"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn two_roles_with_one_name() {
    let report = check(&base_with(
        "region: us-east-1\n",
        "region: us-east-1\nroles: { service: emrship-shared, instance_profile: emrship-shared }\n",
    ));
    report.assert_codes(&["spec::role-name-reused"]);
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// Cluster shape
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_instance_type_suggests_the_closest() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_type: r5.2xlage, count: 4 }\n",
    ));
    report.assert_codes(&["spec::unknown-instance-type"]);
    assert!(report.rendered.contains("did you mean `r5.2xlarge`?"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn groups_and_fleets_together() {
    let report = check(&base_with(
        CORE,
        &format!("{CORE}  fleets:\n    master: {{ on_demand: 1, instance_types: [{{ instance_type: m5.xlarge }}] }}\n    core: {{ on_demand: 4, instance_types: [{{ instance_type: r5.2xlarge }}] }}\n"),
    ));
    report.assert_codes(&["spec::groups-and-fleets"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn engine_spark_without_workers() {
    let report = check(&base_with(CORE, ""));
    report.assert_codes(&["spec::no-workers"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn task_group_without_core_group() {
    let report = check(&base_with(
        CORE,
        "  task: { instance_type: r5.2xlarge, count: 4 }\n",
    ));
    report.assert_codes(&["spec::task-without-core"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn primary_group_count() {
    let report = check(&base_with(
        "  master: { instance_type: m5.xlarge }\n",
        "  master: { instance_type: m5.xlarge, count: 2 }\n",
    ));
    report.assert_codes(&["spec::master-count"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn core_group_with_zero_nodes() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_type: r5.2xlarge, count: 0 }\n",
    ));
    report.assert_has("spec::zero-count");
    // The sizing then finds no worker nodes: a follow-on error (see the report).
    report.assert_codes(&["spec::zero-count", "spec::no-workers"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bid_price_without_spot() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_type: r5.2xlarge, count: 4, bid_price: \"0.30\" }\n",
    ));
    report.assert_codes(&["spec::bid-without-spot"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bid_price_that_is_not_an_amount() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_type: r5.2xlarge, count: 4, market: spot, bid_price: \"$0.30\" }\n",
    ));
    report.assert_codes(&["spec::bid-price"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn spot_primary_node_warns() {
    let (_, report) = resolves(&base_with(
        "  master: { instance_type: m5.xlarge }\n",
        "  master: { instance_type: m5.xlarge, market: spot }\n",
    ));
    report.assert_codes(&["spec::spot-master"]);
    insta::assert_snapshot!(report.rendered);
}

/// The fleets that replace the groups in the fleet tests; `{core}` is the core fleet's body.
fn base_with_fleets(master: &str, core: &str) -> String {
    base_with(
        &format!("  master: {{ instance_type: m5.xlarge }}\n{CORE}"),
        &format!("  fleets:\n    master: {master}\n    core: {core}\n"),
    )
}

const MASTER_FLEET: &str = "{ on_demand: 1, instance_types: [{ instance_type: m5.xlarge }] }";

#[test]
fn fleets_resolve() {
    resolves(&base_with_fleets(
        MASTER_FLEET,
        "{ spot: 4, instance_types: [{ instance_type: r5.2xlarge }] }",
    ));
}

#[test]
fn fleet_without_instance_types() {
    let report = check(&base_with_fleets(MASTER_FLEET, "{ spot: 4 }"));
    report.assert_has("spec::empty-fleet");
    // A core fleet without instance types also trips the `engine: spark` no-workers check,
    // whose message ("only a primary node") is wrong here (see the report).
    report.assert_codes(&["spec::empty-fleet", "spec::no-workers"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn fleet_without_capacity() {
    // A core fleet with no capacity has no nodes, so the sizing also reports
    // SizingProblem::NoWorkerNodes (its only way to surface; see the report).
    let report = check(&base_with_fleets(
        MASTER_FLEET,
        "{ instance_types: [{ instance_type: r5.2xlarge }] }",
    ));
    report.assert_codes(&["spec::fleet-capacity", "spec::no-workers"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn primary_fleet_capacity() {
    let report = check(&base_with_fleets(
        "{ on_demand: 2, instance_types: [{ instance_type: m5.xlarge }] }",
        "{ spot: 4, instance_types: [{ instance_type: r5.2xlarge }] }",
    ));
    report.assert_codes(&["spec::master-fleet-capacity"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn fleet_weight_of_zero() {
    let report = check(&base_with_fleets(
        MASTER_FLEET,
        "{ spot: 4, instance_types: [{ instance_type: r5.2xlarge, weight: 0 }] }",
    ));
    report.assert_codes(&["spec::fleet-weight"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn fleet_bid_percent_out_of_range() {
    let report = check(&base_with_fleets(
        MASTER_FLEET,
        "{ spot: 4, instance_types: [{ instance_type: r5.2xlarge, bid_price_percent: 150 }] }",
    ));
    report.assert_codes(&["spec::bid-percent"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn fleet_spot_timeout_out_of_range() {
    let report = check(&base_with_fleets(
        MASTER_FLEET,
        "{ spot: 4, spot_timeout: 2m, instance_types: [{ instance_type: r5.2xlarge }] }",
    ));
    report.assert_codes(&["spec::spot-timeout"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn graviton_on_an_old_release() {
    let report = check(&base_with_all(&[
        ("release: emr-7.5.0\n", "release: emr-6.0.0\n"),
        (CORE, "  core: { instance_type: r6g.2xlarge, count: 4 }\n"),
        (
            "  master: { instance_type: m5.xlarge }\n",
            "  master: { instance_type: m6g.xlarge }\n",
        ),
    ]));
    report.assert_codes(&["spec::graviton-release"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bad_subnet_id() {
    let report = check(&base_with(TAGS, &format!("{TAGS}  subnet: subnet-xyz\n")));
    report.assert_codes(&["spec::subnet"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn subnet_and_subnets() {
    let report = check(&base_with(
        TAGS,
        &format!(
            "{TAGS}  subnet: subnet-0123456789abcdef0\n  subnets: [subnet-0123456789abcdef1]\n"
        ),
    ));
    report.assert_has("spec::subnet-and-subnets");
    // `subnet` and `subnets` count together as two subnets on instance groups.
    report.assert_codes(&["spec::subnet-and-subnets", "spec::subnets-need-fleets"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn several_subnets_with_instance_groups() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  subnets: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]\n"),
    ));
    report.assert_codes(&["spec::subnets-need-fleets"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn idle_timeout_out_of_range() {
    let report = check(&base_with("  idle_timeout: 1h\n", "  idle_timeout: 30s\n"));
    report.assert_codes(&["spec::idle-timeout"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn idle_timeout_that_is_not_a_duration() {
    let report = check(&base_with(
        "  idle_timeout: 1h\n",
        "  idle_timeout: 1 hour\n",
    ));
    report.assert_codes(&["spec::idle-timeout"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn long_running_cluster_without_idle_timeout_warns() {
    let (_, report) = resolves(&base_with("  idle_timeout: 1h\n", "  keep_alive: true\n"));
    report.assert_codes(&["spec::no-idle-timeout"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn terminate_on_failure_on_a_long_running_cluster_warns() {
    let (_, report) = resolves(&base_with_all(&[
        (
            "  idle_timeout: 1h\n",
            "  idle_timeout: 1h\n  keep_alive: true\n",
        ),
        (
            ENGINE,
            "  engine: spark\n  action_on_failure: TERMINATE_CLUSTER\n",
        ),
    ]));
    report.assert_codes(&["spec::terminate-long-running"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn ui_cidr_open_to_the_world() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  ui_access_cidr: 0.0.0.0/0\n"),
    ));
    report.assert_codes(&["spec::cidr-open-to-world"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn ui_cidr_that_is_not_a_cidr() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  ui_access_cidr: 10.0.0.0\n"),
    ));
    report.assert_codes(&["spec::cidr"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn reserved_tag() {
    let report = check(&base_with(
        TAGS,
        "  tags: { team: ads, \"aws:createdBy\": me }\n",
    ));
    report.assert_codes(&["spec::reserved-tag"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn tag_value_too_long() {
    let long = "x".repeat(257);
    let report = check(&base_with(TAGS, &format!("  tags: {{ team: {long} }}\n")));
    report.assert_codes(&["spec::tag-length"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_application_suggests_the_closest() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  applications: [Hadoop, Spark, Livey]\n"),
    ));
    report.assert_codes(&["spec::unknown-application"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn engine_spark_without_the_spark_application() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  applications: [Hadoop, Hive]\n"),
    ));
    report.assert_codes(&["spec::spark-not-installed"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn bootstrap_action_with_a_joined_arg() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  bootstrap:\n    - name: install-tools\n      path: s3://example-ads-data/bootstrap/install.sh\n      args: [\"--version 1.2\"]\n"),
    ));
    report.assert_codes(&["spec::joined-arg"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn mixed_worker_types_warn() {
    let (_, report) = resolves(&base_with(
        CORE,
        &format!("{CORE}  task: {{ instance_type: r5.4xlarge, count: 2 }}\n"),
    ));
    report.assert_codes(&["spec::mixed-worker-types"]);
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// Configuration classifications
// ---------------------------------------------------------------------------------------------

#[test]
fn env_vars_exported_in_spark_env_under_engine_spark() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  configurations: [{{classification: spark-env, configurations: [{{classification: export, properties: {{APP_NAMESPACE: x}}}}]}}]\n"),
    ));
    report.assert_codes(&["spec::env-driver-only"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn env_classification_with_properties() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  configurations:\n    - classification: hadoop-env\n      properties: {{ HADOOP_HEAPSIZE: \"2048\" }}\n"),
    ));
    report.assert_codes(&["spec::env-classification"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn duplicate_classifications_warn_and_resolve() {
    let spec = base_with(
        TAGS,
        &format!(
            "{TAGS}  configurations:\n    - classification: yarn-site\n      properties: {{ yarn.log-aggregation-enable: \"true\", yarn.nodemanager.vmem-check-enabled: \"false\" }}\n    - classification: yarn-site\n      properties: {{ yarn.nodemanager.vmem-check-enabled: \"true\" }}\n"
        ),
    );
    let (plan, report) = resolves(&spec);
    report.assert_codes(&["spec::duplicate-classification"]);
    assert!(report
        .rendered
        .contains("yarn.nodemanager.vmem-check-enabled"));
    // Later entries win per property.
    let yarn = &plan.cluster.configurations[0];
    assert_eq!(plan.cluster.configurations.len(), 1);
    assert_eq!(
        yarn.properties["yarn.nodemanager.vmem-check-enabled"],
        "true"
    );
    assert_eq!(yarn.properties["yarn.log-aggregation-enable"], "true");
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn plain_text_secret_in_a_classification() {
    let report = check(&base_with(
        TAGS,
        &format!("{TAGS}  configurations:\n    - classification: hive-site\n      properties: {{ javax.jdo.option.ConnectionPassword: hunter2 }}\n"),
    ));
    report.assert_codes(&["spec::plain-text-secret"]);
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// Spark settings and executor sizing
// ---------------------------------------------------------------------------------------------

#[test]
fn conf_key_that_is_not_a_spark_property() {
    let report = check(&base_with(
        CONF,
        "  conf: { spark.speculation: \"true\", yarn.scheduler.capacity.maximum-am-resource-percent: \"0.5\" }\n",
    ));
    report.assert_codes(&["spec::conf-key"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn conf_key_that_is_sizing() {
    let report = check(&base_with(
        CONF,
        "  conf: { spark.speculation: \"true\", spark.executor.memory: 8g }\n",
    ));
    report.assert_codes(&["spec::conf-sizing"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn conf_key_for_the_deploy_mode() {
    let report = check(&base_with(
        CONF,
        "  conf: { spark.speculation: \"true\", spark.submit.deployMode: client }\n",
    ));
    report.assert_codes(&["spec::conf-deploy"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn conf_key_for_dynamic_allocation() {
    let report = check(&base_with(
        CONF,
        "  conf: { spark.speculation: \"true\", spark.dynamicAllocation.enabled: \"false\" }\n",
    ));
    report.assert_codes(&["spec::conf-dynamic-allocation"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn env_name_that_is_not_a_variable_name() {
    let report = check(&base_with(
        SPARK_ENV,
        "  env: { APP_NAMESPACE: dynamic-ads, APP-REGION: us }\n",
    ));
    report.assert_codes(&["spec::env-name"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn plain_text_password_in_spark_env() {
    let report = check(&base_with(
        SPARK_ENV,
        "  env: { APP_NAMESPACE: dynamic-ads, PASSWORD: hunter2 }\n",
    ));
    report.assert_codes(&["spec::plain-text-secret"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn plain_text_secret_check_ignores_switches_and_numbers() {
    let (_, report) = resolves(&base_with_all(&[
        (
            CONF,
            "  conf: { spark.speculation: \"true\", spark.security.credentials.hive.enabled: \"false\" }\n",
        ),
        (
            SPARK_ENV,
            "  env: { APP_NAMESPACE: dynamic-ads, TOKEN_TTL_SECONDS: 3600 }\n",
        ),
    ]));
    report.assert_codes(&[]);
}

#[test]
fn empty_step_arg() {
    let report = check(&base_with(
        SPARK_ENV,
        &format!("{SPARK_ENV}  submit_args: [\"--verbose\", \"\"]\n"),
    ));
    report.assert_codes(&["spec::empty-arg"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn joined_flag_and_value_in_submit_args() {
    let report = check(&base_with(
        SPARK_ENV,
        &format!("{SPARK_ENV}  submit_args: [\"--master yarn\"]\n"),
    ));
    report.assert_codes(&["spec::joined-arg"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn submit_arg_that_the_step_sets() {
    let report = check(&base_with(
        SPARK_ENV,
        &format!("{SPARK_ENV}  submit_args: [\"--num-executors\", \"8\"]\n"),
    ));
    report.assert_codes(&["spec::submit-arg-rendered"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn executor_memory_that_is_not_a_size() {
    let report = check(&base_with(
        EXECUTORS,
        "  executors: { instances: 4, cores: 4, memory: 1.5g }\n",
    ));
    report.assert_codes(&["spec::memory"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn zero_executors() {
    let report = check(&base_with(
        EXECUTORS,
        "  executors: { instances: 0, cores: 4, memory: 2g }\n",
    ));
    report.assert_has("spec::zero-executors");
    // Reported twice today, by the spec check and by the sizing (see the report).
    report.assert_codes(&["spec::zero-executors", "spec::zero-executors"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn executor_memory_plus_overhead_larger_than_yarn_memory() {
    // An r5.2xlarge gives YARN 57344 MiB; 40g + 20g of overhead is 61440 MiB.
    let report = check(&base_with(
        EXECUTORS,
        "  executors: { instances: 3, cores: 4, memory: 40g, memory_overhead: 20g }\n",
    ));
    report.assert_has("spec::executor-too-large");
    // A container larger than a node also means no executor fits (a follow-on error).
    report.assert_codes(&["spec::executor-too-large", "spec::executors-do-not-fit"]);
    assert!(
        report.rendered.contains("at most 36864m"),
        "{}",
        report.rendered
    );
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn more_executor_cores_than_vcpus() {
    // An r5.2xlarge has 8 vCPUs.
    let report = check(&base_with(
        EXECUTORS,
        "  executors: { instances: 4, cores: 9, memory: 2g }\n",
    ));
    report.assert_codes(&["spec::executor-cores"]);
    insta::assert_snapshot!(report.rendered);
}

/// `engine: local` (a JVM workload) on 6 × m5.4xlarge with the given executor instances:
/// 11600m + 1160m overhead = 12760 MiB per container, 4 per node (57344 MiB), 24 slots, one of
/// which the cluster-mode driver takes.
fn local_engine_on_six_m5_4xlarge(instances: u32) -> String {
    base_with_all(&[
        (ENGINE, "  engine: local\n"),
        (CORE, "  core: { instance_type: m5.4xlarge, count: 6 }\n"),
        (
            EXECUTORS,
            &format!("  executors: {{ instances: {instances}, cores: 6, memory: 11600m }}\n"),
        ),
    ])
}

#[test]
fn executors_that_do_not_fit_once_the_driver_takes_a_container() {
    let report = check(&local_engine_on_six_m5_4xlarge(24));
    report.assert_codes(&["spec::executors-do-not-fit"]);
    assert!(
        report.rendered.contains("only 23 fit"),
        "{}",
        report.rendered
    );
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn executors_that_fit_beside_the_driver() {
    let (plan, report) = resolves(&local_engine_on_six_m5_4xlarge(23));
    report.assert_codes(&[]);
    let sizing = plan.spark.sizing.expect("explicit sizing");
    assert_eq!(sizing.executor_instances, 23);
    assert_eq!(sizing.executors_per_node, 4);
    assert_eq!(sizing.executor_memory_overhead_mib, 1160);
}

#[test]
fn auto_sizing_on_one_small_node_puts_the_driver_beside_an_executor() {
    // One c5.xlarge (4 vCPU): the 1-vCPU driver's container sits beside a 3-core executor
    // instead of taking the node's only executor slot.
    let (plan, report) = resolves(&base_with(
        CORE,
        "  core: { instance_type: c5.xlarge, count: 1 }\n",
    ));
    report.assert_codes(&[]);
    let sizing = plan.spark.sizing.expect("auto sizing");
    assert_eq!(sizing.executor_instances, 1);
    assert_eq!(sizing.executor_cores, 3);
    assert_eq!(sizing.driver_cores, 1);
    assert_eq!(sizing.utilization.executor_vcpu, 3);
}

#[test]
fn dynamic_allocation_with_pinned_instances() {
    let report = check(&base_with(
        EXECUTORS,
        "  dynamic_allocation: true\n  executors: { instances: 8, cores: 4, memory: 2g }\n",
    ));
    report.assert_codes(&["spec::dynamic-allocation-pinned"]);
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// The job
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_job_command_suggests_the_closest() {
    let report = check(&base_with(
        "  command: match-rate\n",
        "  command: match_rate\n",
    ));
    report.assert_codes(&["spec::unknown-command"]);
    assert!(report.rendered.contains("did you mean `match-rate`?"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_job_arg_suggests_the_closest() {
    let report = check(&base_with(
        "    views: s3://example-ads-logs/product-views/dt={{date}}/\n",
        "    view: s3://example-ads-logs/product-views/dt={{date}}/\n",
    ));
    // The typo also leaves the required `views` unset.
    report.assert_codes(&["spec::unknown-job-arg", "spec::missing-job-arg"]);
    assert!(report.rendered.contains("did you mean `views`?"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn missing_job_arg() {
    let report = check(&base_with("    catalog: dynamodb://product-catalog\n", ""));
    report.assert_codes(&["spec::missing-job-arg"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn empty_named_job_arg() {
    let report = check(&base_with(
        "    catalog: dynamodb://product-catalog\n",
        "    catalog: \"\"\n",
    ));
    report.assert_codes(&["spec::empty-arg"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn joined_flag_and_value_in_job_args_list() {
    let report = check(&base_with(
        "  args:\n    views: s3://example-ads-logs/product-views/dt={{date}}/\n    catalog: dynamodb://product-catalog\n    sink: postgres://emrship@ads-db.internal:5432/ads\n",
        "  args: [\"--views s3://example-ads-logs/product-views/dt={{date}}/\", \"--catalog\", \"dynamodb://product-catalog\", \"--sink\", \"postgres://emrship@ads-db.internal:5432/ads\"]\n",
    ));
    report.assert_codes(&["spec::joined-arg"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn input_that_is_not_an_s3_location() {
    let report = check(&base_with(
        "    views: s3://example-ads-logs/product-views/dt={{date}}/\n",
        "    views: /data/product-views/dt={{date}}/\n",
    ));
    report.assert_codes(&["spec::input-uri"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn catalog_that_is_not_a_catalog_location() {
    let report = check(&base_with(
        "    catalog: dynamodb://product-catalog\n",
        "    catalog: dynamo://product-catalog\n",
    ));
    report.assert_codes(&["spec::catalog-uri"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn sink_that_is_not_a_sink() {
    let report = check(&base_with(
        "    sink: postgres://emrship@ads-db.internal:5432/ads\n",
        "    sink: mysql://emrship@ads-db.internal:3306/ads\n",
    ));
    report.assert_codes(&["spec::sink-uri"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn postgres_url_with_a_password() {
    let report = check(&base_with(
        "    sink: postgres://emrship@ads-db.internal:5432/ads\n",
        "    sink: postgres://emrship:hunter2@ads-db.internal:5432/ads\n",
    ));
    report.assert_codes(&["spec::plain-text-secret"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn plain_text_value_in_job_secrets() {
    let report = check(&base_with(
        "  secrets: { PGPASSWORD: \"arn:aws:secretsmanager:us-east-1:123456789012:secret:ads-db\" }\n",
        "  secrets: { PGPASSWORD: hunter2 }\n",
    ));
    report.assert_codes(&["spec::plain-text-secret"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn job_file_that_cannot_be_shipped() {
    let report = check(&base_with(ENGINE, "  engine: spark\n  files: [config/]\n"));
    report.assert_codes(&["spec::job-file"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn job_files_with_the_same_name() {
    let report = check(&base_with(
        ENGINE,
        "  engine: spark\n  files: [config/prod/rates.toml, config/dev/rates.toml]\n",
    ));
    report.assert_codes(&["spec::job-file-duplicate"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn job_arch_that_does_not_match_the_nodes() {
    let report = check(&base_with_all(&[
        (ENGINE, "  engine: spark\n  arch: x86_64\n"),
        (
            "  master: { instance_type: m5.xlarge }\n",
            "  master: { instance_type: m7g.xlarge }\n",
        ),
        (CORE, "  core: { instance_type: r6g.2xlarge, count: 4 }\n"),
    ]));
    report.assert_codes(&["spec::arch-mismatch"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn nodes_that_mix_architectures() {
    let report = check(&base_with(
        CORE,
        "  core: { instance_type: r6g.2xlarge, count: 4 }\n",
    ));
    report.assert_codes(&["spec::mixed-arch"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_run_variable() {
    let report = check(&base_with("dt={{date}}/", "dt={{dat}}/"));
    report.assert_codes(&["spec::run-variable"]);
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// Schedule
// ---------------------------------------------------------------------------------------------

#[test]
fn cron_with_both_day_fields_set() {
    let report = check(&base_with("cron(0 6 * * ? *)", "cron(0 6 * * * *)"));
    report.assert_codes(&["spec::cron"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn cron_with_five_fields() {
    let report = check(&base_with("cron(0 6 * * ? *)", "cron(0 6 * * ?)"));
    report.assert_codes(&["spec::cron"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn cron_field_out_of_range() {
    let report = check(&base_with("cron(0 6 * * ? *)", "cron(0 25 * * ? *)"));
    report.assert_codes(&["spec::cron"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_date_rule() {
    let report = check(&base_with("date: yesterday", "date: last week"));
    report.assert_codes(&["spec::date-rule"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_time_zone() {
    let report = check(&base_with(
        "date: yesterday }",
        "date: yesterday, timezone: Europe/Pariss }",
    ));
    report.assert_codes(&["spec::timezone"]);
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// The rendered step
// ---------------------------------------------------------------------------------------------

#[test]
fn step_too_long() {
    // EMR refuses a step whose arguments exceed 10,240 characters in all.
    let options = format!("\"-Dapp.note={}\"", "x".repeat(10_300));
    let report = check(&base_with(
        CONF,
        &format!(
            "  conf: {{ spark.speculation: \"true\", spark.driver.extraJavaOptions: {options} }}\n"
        ),
    ));
    report.assert_codes(&["spec::step-too-long"]);
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// Everything at once
// ---------------------------------------------------------------------------------------------

#[test]
fn many_errors_are_reported_at_once() {
    let spec = base_with_all(&[
        ("release: emr-7.5.0\n", "release: emr-7.50.0\n"),
        (
            "log_uri: s3://example-ads-data/emr-logs/\n",
            "log_uri: s3a://example-ads-data/emr-logs/\n",
        ),
        (
            TAGS,
            "  tags: { team: ads, \"aws:createdBy\": me }\n  ui_access_cidr: 0.0.0.0/0\n",
        ),
        (
            SPARK_ENV,
            "  env: { APP_NAMESPACE: dynamic-ads, PASSWORD: hunter2 }\n",
        ),
        ("  command: match-rate\n", "  command: match_rate\n"),
        ("cron(0 6 * * ? *)", "cron(0 6 * * * *)"),
        ("dt={{date}}/", "dt={{dat}}/"),
    ]);
    let report = check(&spec);
    let mut distinct = report.codes.clone();
    distinct.dedup();
    assert!(distinct.len() >= 5, "{distinct:?}");
    report.assert_codes(&[
        "spec::bad-s3-uri",
        "spec::cidr-open-to-world",
        "spec::cron",
        "spec::plain-text-secret",
        "spec::reserved-tag",
        "spec::run-variable",
        "spec::unknown-command",
        "spec::unknown-release",
    ]);
    assert!(
        report
            .rendered
            .ends_with("8 errors and 0 warnings in the spec; nothing was sent or uploaded.\n"),
        "{}",
        report.rendered
    );
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn empty_spec_reports_every_missing_key() {
    let report = check("");
    report.assert_codes(&["spec::missing-key"; 7]);
    assert!(report
        .rendered
        .ends_with("7 errors and 0 warnings in the spec; nothing was sent or uploaded.\n"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn cluster_errors_do_not_hide_spark_and_job_errors() {
    let report = check(&base_with_all(&[
        (CORE, "  core: { instance_type: r5.2xlage, count: 4 }\n"),
        (
            SPARK_ENV,
            "  env: { APP_NAMESPACE: dynamic-ads, PASSWORD: hunter2 }\n",
        ),
        ("  command: match-rate\n", "  command: match_rate\n"),
    ]));
    report.assert_codes(&[
        "spec::plain-text-secret",
        "spec::unknown-command",
        "spec::unknown-instance-type",
    ]);
}

#[test]
fn an_error_in_every_section_is_reported_at_once_with_its_position() {
    let spec = base_with_all(&[
        // top level
        ("region: us-east-1\n", "region: us-east\n"),
        // cluster
        (CORE, "  core: { instance_type: r5.2xlage, count: 4 }\n"),
        // spark
        (CONF, "  conf: { speculation: \"true\" }\n"),
        // job
        ("  command: match-rate\n", "  command: match_rate\n"),
        // schedule
        ("cron(0 6 * * ? *)", "cron(0 6 * * *)"),
        // roles
        (
            "name: match-rate\n",
            "name: match-rate\nroles: { service: \"not a role!\" }\n",
        ),
    ]);
    let report = check(&spec);
    report.assert_codes(&[
        "spec::conf-key",
        "spec::cron",
        "spec::region",
        "spec::role-name",
        "spec::unknown-command",
        "spec::unknown-instance-type",
    ]);
    // Each error points at the line and column of its value in the spec file.
    let Err(diagnostics) = resolve_layers(&spec, &[], &[]) else {
        unreachable!("checked above")
    };
    for (code, line, column) in [
        ("spec::role-name", 2, 19),
        ("spec::region", 3, 9),
        ("spec::unknown-instance-type", 9, 26),
        ("spec::conf-key", 15, 11),
        ("spec::unknown-command", 19, 12),
        ("spec::cron", 25, 19),
    ] {
        let rendered: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.code == code)
            .map(|d| d.render())
            .collect();
        assert_eq!(rendered.len(), 1, "{code}: {rendered:?}");
        assert!(
            rendered[0].contains(&format!("[{FILE}:{line}:{column}]")),
            "{code} does not point at {line}:{column}:\n{}",
            rendered[0]
        );
    }
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn unknown_keys_do_not_hide_other_errors() {
    let report = check(&base_with_all(&[
        (TAGS, &format!("{TAGS}  colour: blue\n")),
        ("region: us-east-1\n", "region: us-east\n"),
        ("  command: match-rate\n", "  command: match_rate\n"),
    ]));
    report.assert_codes(&["spec::region", "spec::unknown-command", "spec::unknown-key"]);
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn warnings_are_listed_after_errors() {
    let spec = base_with_all(&[
        (
            "  master: { instance_type: m5.xlarge }\n",
            "  master: { instance_type: m5.xlarge, market: spot }\n",
        ),
        ("region: us-east-1\n", "region: us-east\n"),
    ]);
    let report = check(&spec);
    report.assert_codes(&["spec::region", "spec::spot-master"]);
    let error_at = report.rendered.find("spec::region").unwrap();
    let warning_at = report.rendered.find("spec::spot-master").unwrap();
    assert!(error_at < warning_at, "{}", report.rendered);
    assert!(report
        .rendered
        .ends_with("1 error and 1 warning in the spec; nothing was sent or uploaded.\n"));
    let diagnostics = resolve_layers(&spec, &[], &[]).err().unwrap();
    assert_eq!(diagnostics.errors().count(), 1);
    assert_eq!(
        diagnostics.warnings().next().map(|w| w.severity),
        Some(Severity::Warning)
    );
    insta::assert_snapshot!(report.rendered);
}

// ---------------------------------------------------------------------------------------------
// Streaming: the `stream` command and a user application's `job.kinesis`
// ---------------------------------------------------------------------------------------------

/// The job section of BASE, replaced by the streaming jobs below.
const BASE_JOB: &str = r#"job:
  engine: spark
  command: match-rate
  args:
    views: s3://example-ads-logs/product-views/dt={{date}}/
    catalog: dynamodb://product-catalog
    sink: postgres://emrship@ads-db.internal:5432/ads
  secrets: { PGPASSWORD: "arn:aws:secretsmanager:us-east-1:123456789012:secret:ads-db" }
"#;

const STREAM_JOB: &str = r#"job:
  engine: local
  command: stream
  args:
    stream: page-events
    output: s3://example-ads-data/windows/
    window: 5m
"#;

fn stream_spec() -> String {
    base_with(BASE_JOB, STREAM_JOB)
}

/// The stream spec with one argument line replaced (or added after `window`).
fn stream_with(from: &str, to: &str) -> String {
    edit(&stream_spec(), from, to)
}

#[test]
fn stream_command_fills_its_lease_table_and_region_and_keeps_running_on_failure() {
    let (plan, warnings) = resolves(&stream_spec());
    warnings.assert_codes(&[]);
    assert_eq!(
        plan.job.args,
        [
            "--stream",
            "page-events",
            "--output",
            "s3://example-ads-data/windows/",
            "--window",
            "5m",
            "--lease_table",
            "match-rate-leases",
            "--region",
            "us-east-1",
        ]
    );
    // BASE's cluster is not long-running: the stream's step is, all the same.
    assert!(!plan.cluster.keep_alive);
    assert_eq!(
        plan.job.action_on_failure,
        emrship::spec::raw::ActionOnFailure::Continue
    );
    let kinesis = plan.job.kinesis.expect("the stream is granted");
    assert_eq!(
        kinesis.stream_arn,
        "arn:aws:kinesis:us-east-1:*:stream/page-events"
    );
    assert_eq!(kinesis.stream_name, "page-events");
    assert_eq!(kinesis.lease_table, "match-rate-leases");
    assert_eq!(kinesis.metrics_namespace, None);
    assert_eq!(plan.job.writes.len(), 1);
}

#[test]
fn stream_takes_a_stream_arn_and_a_lease_table_as_given() {
    let (plan, _) = resolves(&stream_with(
        "    stream: page-events\n",
        "    stream: \"arn:aws:kinesis:us-east-1:210987654321:stream/page-events\"\n    lease_table: clicks.leases\n    position: latest\n    lateness: 1h\n",
    ));
    let kinesis = plan.job.kinesis.unwrap();
    assert_eq!(
        kinesis.stream_arn,
        "arn:aws:kinesis:us-east-1:210987654321:stream/page-events"
    );
    assert_eq!(kinesis.lease_table, "clicks.leases");
    let args = plan.job.args.join(" ");
    assert!(args.contains("--lease_table clicks.leases"), "{args}");
    assert_eq!(args.matches("--lease_table").count(), 1, "{args}");
}

#[test]
fn stream_window_must_divide_an_hour() {
    let report = check(&stream_with("    window: 5m\n", "    window: 7m\n"));
    report.assert_codes(&["spec::stream-window"]);
    insta::assert_snapshot!(report.rendered);
    for window in ["30s", "2h", "5 minutes"] {
        check(&stream_with(
            "    window: 5m\n",
            &format!("    window: {window}\n"),
        ))
        .assert_codes(&["spec::stream-window"]);
    }
    for window in ["1m", "90s", "15m", "1h"] {
        resolves(&stream_with(
            "    window: 5m\n",
            &format!("    window: {window}\n"),
        ));
    }
}

#[test]
fn stream_lateness_and_position() {
    let report = check(&stream_with(
        "    window: 5m\n",
        "    window: 5m\n    lateness: 2h\n    position: trim-horizon\n",
    ));
    report.assert_codes(&["spec::stream-lateness", "spec::stream-position"]);
    assert!(report.rendered.contains("did you mean `trim_horizon`?"));
    insta::assert_snapshot!(report.rendered);
}

#[test]
fn stream_writes_to_s3_only() {
    let report = check(&stream_with(
        "    output: s3://example-ads-data/windows/\n",
        "    output: postgres://emrship@ads-db.internal:5432/ads\n",
    ));
    report.assert_codes(&["spec::stream-output"]);
    insta::assert_snapshot!(report.rendered);
    check(&stream_with(
        "    output: s3://example-ads-data/windows/\n",
        "    output: sqlite://windows.db\n",
    ))
    .assert_codes(&["spec::stream-output"]);
}

#[test]
fn stream_names_and_arns_are_checked() {
    let report = check(&stream_with(
        "    stream: page-events\n",
        "    stream: \"arn:aws:kinesis:eu-west-1:210987654321:stream/page-events\"\n    lease_table: ab\n",
    ));
    report.assert_codes(&["spec::kinesis-stream-region", "spec::lease-table"]);
    insta::assert_snapshot!(report.rendered);
    for stream in [
        "page events",
        "arn:aws:kinesis:us-east-1:2109:stream/x",
        "arn:aws:sqs:us-east-1:210987654321:stream/x",
    ] {
        check(&stream_with(
            "    stream: page-events\n",
            &format!("    stream: \"{stream}\"\n"),
        ))
        .assert_codes(&["spec::kinesis-stream"]);
    }
}

#[test]
fn stream_args_by_name_only_and_no_job_kinesis_on_built_in_commands() {
    let list = base_with(
        BASE_JOB,
        "job:\n  engine: local\n  command: stream\n  args: [--stream, page-events]\n",
    );
    check(&list).assert_codes(&["spec::stream-args-by-name"]);

    let report = check(&stream_with(
        "    window: 5m\n",
        "    window: 5m\n  kinesis: { stream: page-events }\n",
    ));
    report.assert_codes(&["spec::kinesis-built-in"]);
    insta::assert_snapshot!(report.rendered);
    let on_match_rate = base_with(
        "  secrets:",
        "  kinesis: { stream: page-events }\n  secrets:",
    );
    check(&on_match_rate).assert_codes(&["spec::kinesis-built-in"]);
}

#[test]
fn stream_that_terminates_the_cluster_on_failure_warns() {
    let (_, warnings) = resolves(&stream_with(
        "    window: 5m\n",
        "    window: 5m\n  action_on_failure: TERMINATE_CLUSTER\n",
    ));
    warnings.assert_codes(&["spec::terminate-long-running"]);
}

/// A PySpark application reading Kinesis with receivers on 16 executors × 2 cores (seed 004).
fn receiver_app(kinesis: &str, spark: &str) -> String {
    base_with_all(&[
        (CORE, "  core: { instance_type: r5.2xlarge, count: 8 }\n"),
        (EXECUTORS, spark),
        (
            BASE_JOB,
            &format!("job:\n  pyspark: {{ main: main.py }}\n  kinesis: {kinesis}\n"),
        ),
    ])
}

const SIXTEEN_BY_TWO: &str = "  executors: { instances: 16, cores: 2, memory: 4g }\n";

#[test]
fn kinesis_receivers_must_leave_executor_cores_free() {
    let report = check(&receiver_app(
        "{ stream: page-events, shards: 36 }",
        SIXTEEN_BY_TWO,
    ));
    report.assert_codes(&["spec::kinesis-receivers"]);
    assert!(
        report.rendered.contains("4 wait for a core"),
        "{}",
        report.rendered
    );
    insta::assert_snapshot!(report.rendered);
    // As many receivers as cores: still nothing left to process.
    check(&receiver_app(
        "{ stream: page-events, receivers: 32 }",
        SIXTEEN_BY_TWO,
    ))
    .assert_codes(&["spec::kinesis-receivers"]);
}

#[test]
fn kinesis_receivers_fewer_than_the_cores_resolve_with_kcl_grants() {
    let (plan, warnings) = resolves(&receiver_app(
        "{ stream: page-events, shards: 36, receivers: 16 }",
        SIXTEEN_BY_TWO,
    ));
    warnings.assert_codes(&[]);
    let kinesis = plan.job.kinesis.unwrap();
    // The KCL's application name is the lease table's and the metrics namespace's.
    assert_eq!(kinesis.lease_table, "match-rate");
    assert_eq!(kinesis.metrics_namespace.as_deref(), Some("match-rate"));
}

#[test]
fn kinesis_receivers_under_dynamic_allocation() {
    let dynamic = "  executors: auto\n  dynamic_allocation: true\n";
    let (_, warnings) = resolves(&receiver_app(
        "{ stream: page-events, shards: 36 }",
        dynamic,
    ));
    warnings.assert_codes(&["spec::kinesis-receivers-unchecked"]);
    // A known minimum is checked: 2 executors' cores are too few for 36 receivers.
    let minimum = base_with(
        CONF,
        "  conf: { spark.speculation: \"true\", spark.dynamicAllocation.minExecutors: \"2\" }\n",
    );
    let minimum = edit(&minimum, EXECUTORS, dynamic);
    let minimum = edit(
        &minimum,
        CORE,
        "  core: { instance_type: r5.2xlarge, count: 8 }\n",
    );
    let minimum = edit(
        &minimum,
        BASE_JOB,
        "job:\n  pyspark: { main: main.py }\n  kinesis: { stream: page-events, shards: 36 }\n",
    );
    check(&minimum).assert_codes(&["spec::kinesis-receivers"]);
}
