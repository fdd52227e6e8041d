//! Every member emrship renders exists in the AWS SDK's EMR model and carries over unchanged.
//!
//! For each example spec (and overlay), the plan's RunJobFlow request and AddJobFlowSteps steps
//! go through `emrship::aws::emr_request` into `aws_sdk_emr` input types; those are read back
//! into JSON with the AWS member names by hand-written code below, and must equal the JSON the
//! plan renders. A member we render but fail to map, map under the wrong name, or change on the
//! way (type, value, presence of an empty list) makes the two differ.
#![cfg(feature = "aws")]

use aws_sdk_emr::operation::run_job_flow::RunJobFlowInput;
use aws_sdk_emr::types as sdk;
use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use emrship::aws::emr_request::{apply_run_job_flow, run_job_flow_input, step_configs};
use emrship::plan::Plan;
use emrship::render::artifacts::PlanInputs;
use emrship::spec::{load_and_resolve, LayerText, RunContext};

// ---- plans ---------------------------------------------------------------------------------

fn layer(path: &str) -> LayerText {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    LayerText {
        name: path.to_string(),
        text: std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {full}: {e}")),
    }
}

fn plan(base: LayerText, overlays: &[LayerText]) -> Plan {
    let context = RunContext {
        date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    };
    let (job, diagnostics) = load_and_resolve(&base, overlays, &[], context)
        .unwrap_or_else(|d| panic!("{} does not resolve:\n{}", base.name, d.render()));
    let warnings = diagnostics.warnings().map(|d| d.one_line()).collect();
    emrship::plan::build(&job, &PlanInputs::default(), warnings)
}

/// Every optional member of the renderer in use: instance groups with spot bids and EBS, extra
/// bootstrap actions with arguments, a key pair, step concurrency, a root volume size.
const GROUPS_EVERYTHING: &str = r#"
cluster:
  master: { instance_type: m5.xlarge, ebs_gib: 64 }
  core: { instance_type: r5.2xlarge, count: 3, ebs_gib: 256 }
  task: { instance_type: r5.2xlarge, count: 5, market: spot, bid_price: "0.25", ebs_gib: 128 }
  key_name: ops-key
  step_concurrency: 2
  ebs_root_volume_gib: 30
  bootstrap:
    - name: install agent
      path: s3://example-ads-data/bootstrap/agent.sh
      args: [--region, us-east-1]
  configurations:
    - classification: hadoop-env
      configurations:
        - classification: export
          properties: { JAVA_TOOL_OPTIONS: -Xss4m }
"#;

/// Instance fleets: several subnets, weighted instance types with spot bids and EBS, a spot
/// timeout that switches to on-demand.
const FLEETS_EVERYTHING: &str = r#"
cluster:
  master: ~
  core: ~
  subnet: ~
  subnets: [subnet-0123456789abcdef0, subnet-0fedcba987654321f]
  fleets:
    master:
      on_demand: 1
      instance_types: [{ instance_type: m5.xlarge }]
    core:
      on_demand: 2
      spot: 6
      spot_timeout: 20m
      instance_types:
        - { instance_type: r5.2xlarge, weight: 1, bid_price_percent: 60, ebs_gib: 200 }
        - { instance_type: r5.4xlarge, weight: 2, bid_price_percent: 60, ebs_gib: 400 }
    task:
      spot: 4
      spot_timeout: 15m
      instance_types:
        - { instance_type: r5.2xlarge, weight: 1 }
"#;

fn inline(name: &str, text: &str) -> LayerText {
    LayerText {
        name: name.to_string(),
        text: text.to_string(),
    }
}

/// (label, plan) for every spec in job-specs/, and the two inline overlays above.
fn all_plans() -> Vec<(&'static str, Plan)> {
    vec![
        ("match-rate", plan(layer("job-specs/match-rate.yaml"), &[])),
        (
            "match-rate + dev",
            plan(
                layer("job-specs/match-rate.yaml"),
                &[layer("job-specs/envs/dev.yaml")],
            ),
        ),
        (
            "match-rate + prod",
            plan(
                layer("job-specs/match-rate.yaml"),
                &[layer("job-specs/envs/prod.yaml")],
            ),
        ),
        (
            "streaming-events",
            plan(layer("job-specs/streaming-events.yaml"), &[]),
        ),
        (
            "match-rate + groups (every member)",
            plan(
                layer("job-specs/match-rate.yaml"),
                &[inline("groups-everything.yaml", GROUPS_EVERYTHING)],
            ),
        ),
        (
            "match-rate + fleets (every member)",
            plan(
                layer("job-specs/match-rate.yaml"),
                &[inline("fleets-everything.yaml", FLEETS_EVERYTHING)],
            ),
        ),
    ]
}

// ---- SDK values back to JSON ---------------------------------------------------------------
//
// Scalars are read through the SDK's getters. Lists and maps are read from the public `Option`
// fields, because the getters turn an unset list into `&[]` and so could not tell an omitted
// member from an empty one — the SDK's serializer can, and so must this.

struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Obj(Map::new())
    }
    fn put(mut self, member: &str, value: Option<Value>) -> Self {
        if let Some(value) = value {
            self.0.insert(member.to_string(), value);
        }
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn string(v: Option<&str>) -> Option<Value> {
    v.map(|s| json!(s))
}

fn list<T>(items: &Option<Vec<T>>, f: impl Fn(&T) -> Value) -> Option<Value> {
    items
        .as_ref()
        .map(|items| Value::Array(items.iter().map(f).collect()))
}

fn strings(items: &Option<Vec<String>>) -> Option<Value> {
    list(items, |s| json!(s))
}

fn configuration_json(c: &sdk::Configuration) -> Value {
    Obj::new()
        .put("Classification", string(c.classification()))
        .put(
            "Properties",
            c.properties.as_ref().map(|p| {
                let mut sorted: Vec<_> = p.iter().collect();
                sorted.sort();
                Value::Object(
                    sorted
                        .into_iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect(),
                )
            }),
        )
        .put(
            "Configurations",
            list(&c.configurations, configuration_json),
        )
        .done()
}

fn ebs_json(e: &sdk::EbsConfiguration) -> Value {
    Obj::new()
        .put(
            "EbsBlockDeviceConfigs",
            list(&e.ebs_block_device_configs, |d| {
                Obj::new()
                    .put(
                        "VolumeSpecification",
                        d.volume_specification().map(|v| {
                            Obj::new()
                                .put("VolumeType", string(v.volume_type()))
                                .put("SizeInGB", v.size_in_gb().map(|n| json!(n)))
                                .put("Iops", v.iops().map(|n| json!(n)))
                                .put("Throughput", v.throughput().map(|n| json!(n)))
                                .done()
                        }),
                    )
                    .put(
                        "VolumesPerInstance",
                        d.volumes_per_instance().map(|n| json!(n)),
                    )
                    .done()
            }),
        )
        .put("EbsOptimized", e.ebs_optimized().map(|b| json!(b)))
        .done()
}

fn group_json(g: &sdk::InstanceGroupConfig) -> Value {
    Obj::new()
        .put("Name", string(g.name()))
        .put("Market", g.market().map(|m| json!(m.as_str())))
        .put("InstanceRole", g.instance_role().map(|r| json!(r.as_str())))
        .put("BidPrice", string(g.bid_price()))
        .put("InstanceType", string(g.instance_type()))
        .put("InstanceCount", g.instance_count().map(|n| json!(n)))
        .put("EbsConfiguration", g.ebs_configuration().map(ebs_json))
        .put(
            "Configurations",
            list(&g.configurations, configuration_json),
        )
        .put("CustomAmiId", string(g.custom_ami_id()))
        .done()
}

fn fleet_json(f: &sdk::InstanceFleetConfig) -> Value {
    Obj::new()
        .put("Name", string(f.name()))
        .put(
            "InstanceFleetType",
            f.instance_fleet_type().map(|t| json!(t.as_str())),
        )
        .put(
            "TargetOnDemandCapacity",
            f.target_on_demand_capacity().map(|n| json!(n)),
        )
        .put(
            "TargetSpotCapacity",
            f.target_spot_capacity().map(|n| json!(n)),
        )
        .put(
            "InstanceTypeConfigs",
            list(&f.instance_type_configs, |t| {
                Obj::new()
                    .put("InstanceType", string(t.instance_type()))
                    .put("WeightedCapacity", t.weighted_capacity().map(|n| json!(n)))
                    .put("BidPrice", string(t.bid_price()))
                    .put(
                        "BidPriceAsPercentageOfOnDemandPrice",
                        t.bid_price_as_percentage_of_on_demand_price()
                            .map(|p| json!(p)),
                    )
                    .put("EbsConfiguration", t.ebs_configuration().map(ebs_json))
                    .put(
                        "Configurations",
                        list(&t.configurations, configuration_json),
                    )
                    .put("CustomAmiId", string(t.custom_ami_id()))
                    .put("Priority", t.priority().map(|p| json!(p)))
                    .done()
            }),
        )
        .put(
            "LaunchSpecifications",
            f.launch_specifications().map(|l| {
                Obj::new()
                    .put(
                        "SpotSpecification",
                        l.spot_specification().map(|s| {
                            Obj::new()
                                .put(
                                    "TimeoutDurationMinutes",
                                    s.timeout_duration_minutes().map(|n| json!(n)),
                                )
                                .put(
                                    "TimeoutAction",
                                    s.timeout_action().map(|a| json!(a.as_str())),
                                )
                                .put(
                                    "BlockDurationMinutes",
                                    s.block_duration_minutes().map(|n| json!(n)),
                                )
                                .put(
                                    "AllocationStrategy",
                                    s.allocation_strategy().map(|a| json!(a.as_str())),
                                )
                                .done()
                        }),
                    )
                    .put(
                        "OnDemandSpecification",
                        l.on_demand_specification().map(|o| json!(format!("{o:?}"))),
                    )
                    .done()
            }),
        )
        .put(
            "ResizeSpecifications",
            f.resize_specifications().map(|r| json!(format!("{r:?}"))),
        )
        .put("Context", string(f.context()))
        .done()
}

fn instances_json(i: &sdk::JobFlowInstancesConfig) -> Value {
    Obj::new()
        .put("InstanceGroups", list(&i.instance_groups, group_json))
        .put("InstanceFleets", list(&i.instance_fleets, fleet_json))
        .put(
            "KeepJobFlowAliveWhenNoSteps",
            i.keep_job_flow_alive_when_no_steps().map(|b| json!(b)),
        )
        .put(
            "TerminationProtected",
            i.termination_protected().map(|b| json!(b)),
        )
        .put("Ec2SubnetId", string(i.ec2_subnet_id()))
        .put("Ec2SubnetIds", strings(&i.ec2_subnet_ids))
        .put("Ec2KeyName", string(i.ec2_key_name()))
        // Members we never set: any value here would show up as a difference.
        .put("MasterInstanceType", string(i.master_instance_type()))
        .put("SlaveInstanceType", string(i.slave_instance_type()))
        .put("InstanceCount", i.instance_count().map(|n| json!(n)))
        .put("Placement", i.placement().map(|p| json!(format!("{p:?}"))))
        .put(
            "UnhealthyNodeReplacement",
            i.unhealthy_node_replacement().map(|b| json!(b)),
        )
        .put("HadoopVersion", string(i.hadoop_version()))
        .put(
            "EmrManagedMasterSecurityGroup",
            string(i.emr_managed_master_security_group()),
        )
        .put(
            "EmrManagedSlaveSecurityGroup",
            string(i.emr_managed_slave_security_group()),
        )
        .put(
            "ServiceAccessSecurityGroup",
            string(i.service_access_security_group()),
        )
        .put(
            "AdditionalMasterSecurityGroups",
            strings(&i.additional_master_security_groups),
        )
        .put(
            "AdditionalSlaveSecurityGroups",
            strings(&i.additional_slave_security_groups),
        )
        .done()
}

fn step_json(s: &sdk::StepConfig) -> Value {
    Obj::new()
        .put("Name", string(s.name()))
        .put(
            "ActionOnFailure",
            s.action_on_failure().map(|a| json!(a.as_str())),
        )
        .put(
            "HadoopJarStep",
            s.hadoop_jar_step().map(|h| {
                Obj::new()
                    .put(
                        "Properties",
                        h.properties.as_ref().map(|p| json!(format!("{p:?}"))),
                    )
                    .put("Jar", string(h.jar()))
                    .put("MainClass", string(h.main_class()))
                    .put("Args", strings(&h.args))
                    .done()
            }),
        )
        .put(
            "StepMonitoringConfiguration",
            s.step_monitoring_configuration()
                .map(|m| json!(format!("{m:?}"))),
        )
        .done()
}

fn debug<T: std::fmt::Debug>(v: Option<&T>) -> Option<Value> {
    v.map(|v| json!(format!("{v:?}")))
}

fn input_json(r: &RunJobFlowInput) -> Value {
    Obj::new()
        .put("Name", string(r.name()))
        .put("LogUri", string(r.log_uri()))
        .put("ReleaseLabel", string(r.release_label()))
        .put(
            "Applications",
            list(&r.applications, |a| {
                Obj::new()
                    .put("Name", string(a.name()))
                    .put("Version", string(a.version()))
                    .put("Args", strings(&a.args))
                    .put("AdditionalInfo", debug(a.additional_info.as_ref()))
                    .done()
            }),
        )
        .put(
            "Configurations",
            list(&r.configurations, configuration_json),
        )
        .put("Instances", r.instances().map(instances_json))
        .put(
            "BootstrapActions",
            list(&r.bootstrap_actions, |b| {
                Obj::new()
                    .put("Name", string(b.name()))
                    .put(
                        "ScriptBootstrapAction",
                        b.script_bootstrap_action().map(|s| {
                            Obj::new()
                                .put("Path", string(s.path()))
                                .put("Args", strings(&s.args))
                                .done()
                        }),
                    )
                    .done()
            }),
        )
        .put("Steps", list(&r.steps, step_json))
        .put("JobFlowRole", string(r.job_flow_role()))
        .put("ServiceRole", string(r.service_role()))
        .put(
            "Tags",
            list(&r.tags, |t| {
                Obj::new()
                    .put("Key", string(t.key()))
                    .put("Value", string(t.value()))
                    .done()
            }),
        )
        .put(
            "VisibleToAllUsers",
            r.visible_to_all_users().map(|b| json!(b)),
        )
        .put(
            "AutoTerminationPolicy",
            r.auto_termination_policy().map(|p| {
                Obj::new()
                    .put("IdleTimeout", p.idle_timeout().map(|n| json!(n)))
                    .done()
            }),
        )
        .put(
            "StepConcurrencyLevel",
            r.step_concurrency_level().map(|n| json!(n)),
        )
        .put(
            "EbsRootVolumeSize",
            r.ebs_root_volume_size().map(|n| json!(n)),
        )
        // Members we never set: any value here would show up as a difference.
        .put(
            "LogEncryptionKmsKeyId",
            string(r.log_encryption_kms_key_id()),
        )
        .put("AdditionalInfo", string(r.additional_info()))
        .put("AmiVersion", string(r.ami_version()))
        .put("StepExecutionRoleArn", string(r.step_execution_role_arn()))
        .put("SupportedProducts", strings(&r.supported_products))
        .put(
            "NewSupportedProducts",
            debug(r.new_supported_products.as_ref()),
        )
        .put("SecurityConfiguration", string(r.security_configuration()))
        .put("AutoScalingRole", string(r.auto_scaling_role()))
        .put(
            "ScaleDownBehavior",
            r.scale_down_behavior().map(|s| json!(s.as_str())),
        )
        .put("CustomAmiId", string(r.custom_ami_id()))
        .put(
            "RepoUpgradeOnBoot",
            r.repo_upgrade_on_boot().map(|s| json!(s.as_str())),
        )
        .put("KerberosAttributes", debug(r.kerberos_attributes()))
        .put("ManagedScalingPolicy", debug(r.managed_scaling_policy()))
        .put(
            "PlacementGroupConfigs",
            debug(r.placement_group_configs.as_ref()),
        )
        .put("OSReleaseLabel", string(r.os_release_label()))
        .put(
            "EbsRootVolumeIops",
            r.ebs_root_volume_iops().map(|n| json!(n)),
        )
        .put(
            "EbsRootVolumeThroughput",
            r.ebs_root_volume_throughput().map(|n| json!(n)),
        )
        .put("ExtendedSupport", r.extended_support().map(|b| json!(b)))
        .put(
            "MonitoringConfiguration",
            debug(r.monitoring_configuration()),
        )
        .put("SessionEnabled", r.session_enabled().map(|b| json!(b)))
        .done()
}

/// Our JSON with every `Properties` object's members sorted, as `configuration_json` sorts the
/// SDK's `HashMap` (member order means nothing in JSON, and the SDK does not keep it).
fn sorted_properties(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get_mut("Properties") {
                    props.sort_keys();
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn run_job_flow_carries_over_to_the_sdk_without_loss() {
    for (label, plan) in all_plans() {
        let input = run_job_flow_input(&plan.run_job_flow)
            .unwrap_or_else(|e| panic!("{label}: RunJobFlow does not convert: {e}"));
        let ours = sorted_properties(serde_json::to_value(&plan.run_job_flow).unwrap());
        let sdk = input_json(&input);
        // Compare text, so member order counts too and a failure prints a readable diff.
        assert_eq!(
            pretty(&sdk),
            pretty(&ours),
            "{label}: RunJobFlow differs after the SDK"
        );
    }
}

#[test]
fn add_job_flow_steps_carry_over_to_the_sdk_without_loss() {
    for (label, plan) in all_plans() {
        let steps = step_configs(&plan.add_job_flow_steps.steps)
            .unwrap_or_else(|e| panic!("{label}: steps do not convert: {e}"));
        let ours = serde_json::to_value(&plan.add_job_flow_steps).unwrap();
        let sdk = json!({ "Steps": steps.iter().map(step_json).collect::<Vec<_>>() });
        assert_eq!(
            pretty(&sdk),
            pretty(&ours),
            "{label}: AddJobFlowSteps differs after the SDK"
        );
    }
}

#[test]
fn the_inline_overlays_exercise_every_optional_member() {
    let plans = all_plans();
    let json = |label: &str| {
        let (_, plan) = plans.iter().find(|(l, _)| *l == label).unwrap();
        serde_json::to_string(&plan.run_job_flow).unwrap()
    };
    let groups = json("match-rate + groups (every member)");
    for member in [
        "\"BidPrice\":\"0.25\"",
        "\"SizeInGB\":256",
        "\"Ec2KeyName\":\"ops-key\"",
        "\"StepConcurrencyLevel\":2",
        "\"EbsRootVolumeSize\":30",
        "\"Args\":[\"--region\",\"us-east-1\"]",
    ] {
        assert!(
            groups.contains(member),
            "groups overlay lacks {member}: {groups}"
        );
    }
    let fleets = json("match-rate + fleets (every member)");
    for member in [
        "\"InstanceFleetType\":\"TASK\"",
        "\"Ec2SubnetIds\":[",
        "\"BidPriceAsPercentageOfOnDemandPrice\":60.0",
        "\"SizeInGB\":400",
        "\"TimeoutDurationMinutes\":20",
        "\"TimeoutAction\":\"SWITCH_TO_ON_DEMAND\"",
    ] {
        assert!(
            fleets.contains(member),
            "fleets overlay lacks {member}: {fleets}"
        );
    }
}

#[test]
fn an_unknown_enum_value_does_not_convert() {
    let plans = all_plans();
    let (_, plan) = &plans[0];
    let mut request = plan.run_job_flow.clone();
    request.instances.instance_groups[1].market = "SPOTT";
    let err = run_job_flow_input(&request).expect_err("SPOTT is no market");
    let message = format!("{err}");
    assert!(message.contains("Market"), "{message}");
    assert!(message.contains("Instances.InstanceGroups[1]"), "{message}");
    assert!(message.contains("SPOTT"), "{message}");

    let mut request = plan.run_job_flow.clone();
    request.instances.instance_groups[0].instance_role = "PRIMARY";
    assert!(
        run_job_flow_input(&request).is_err(),
        "PRIMARY is no instance role"
    );

    let mut steps = plan.add_job_flow_steps.steps.clone();
    steps[0].action_on_failure = "TERMINATE";
    let err = step_configs(&steps).expect_err("TERMINATE is no action on failure");
    assert!(format!("{err}").contains("Steps[0]"), "{err}");

    let (_, fleets) = plans.iter().find(|(l, _)| l.contains("fleets")).unwrap();
    let mut request = fleets.run_job_flow.clone();
    request.instances.instance_fleets[0].instance_fleet_type = "PRIMARY";
    assert!(
        run_job_flow_input(&request).is_err(),
        "PRIMARY is no fleet type"
    );
    let mut request = fleets.run_job_flow.clone();
    let spot = &mut request.instances.instance_fleets[1]
        .launch_specifications
        .as_mut()
        .unwrap()
        .spot_specification;
    spot.timeout_action = "SWITCH_TO_ONDEMAND";
    assert!(
        run_job_flow_input(&request).is_err(),
        "a misspelt timeout action"
    );
    let mut request = fleets.run_job_flow.clone();
    request.instances.instance_fleets[1].instance_type_configs[0]
        .ebs_configuration
        .as_mut()
        .unwrap()
        .ebs_block_device_configs[0]
        .volume_specification
        .volume_type = "gp4";
    assert!(
        run_job_flow_input(&request).is_err(),
        "gp4 is no EBS volume type"
    );
}

#[test]
fn a_count_beyond_the_sdk_integer_does_not_convert() {
    let plans = all_plans();
    let mut request = plans[0].1.run_job_flow.clone();
    request.instances.instance_groups[1].instance_count = u32::MAX;
    let err = run_job_flow_input(&request).expect_err("u32::MAX is no i32");
    assert!(format!("{err}").contains("InstanceCount"), "{err}");
}

/// `apply_run_job_flow` copies every member onto the client's builder, unmapped ones too.
#[test]
fn apply_run_job_flow_sends_exactly_the_input() {
    let config = aws_sdk_emr::Config::builder()
        .behavior_version(aws_sdk_emr::config::BehaviorVersion::latest())
        .region(aws_sdk_emr::config::Region::new("us-east-1"))
        .build();
    let client = aws_sdk_emr::Client::from_conf(config);
    for (label, plan) in all_plans() {
        let input = run_job_flow_input(&plan.run_job_flow).unwrap();
        let applied = apply_run_job_flow(client.run_job_flow(), input.clone());
        assert_eq!(
            applied.as_input().clone().build().unwrap(),
            input,
            "{label}"
        );
    }

    // Every member of RunJobFlowInput set, so a member `apply_run_job_flow` forgot shows.
    let base = run_job_flow_input(&all_plans()[0].1.run_job_flow).unwrap();
    let full = RunJobFlowInput::builder()
        .set_name(base.name.clone())
        .set_log_uri(base.log_uri.clone())
        .log_encryption_kms_key_id("kms-key")
        .additional_info("{}")
        .ami_version("3.11.0")
        .set_release_label(base.release_label.clone())
        .set_instances(base.instances.clone())
        .set_steps(base.steps.clone())
        .step_execution_role_arn("arn:aws:iam::123456789012:role/step")
        .set_bootstrap_actions(base.bootstrap_actions.clone())
        .supported_products("mapr-m3")
        .new_supported_products(sdk::SupportedProductConfig::builder().name("mapr").build())
        .set_applications(base.applications.clone())
        .set_configurations(base.configurations.clone())
        .visible_to_all_users(true)
        .set_job_flow_role(base.job_flow_role.clone())
        .set_service_role(base.service_role.clone())
        .set_tags(base.tags.clone())
        .security_configuration("sec-config")
        .auto_scaling_role("EMR_AutoScaling_DefaultRole")
        .scale_down_behavior(sdk::ScaleDownBehavior::TerminateAtTaskCompletion)
        .custom_ami_id("ami-0123456789abcdef0")
        .ebs_root_volume_size(30)
        .repo_upgrade_on_boot(sdk::RepoUpgradeOnBoot::None)
        .kerberos_attributes(
            sdk::KerberosAttributes::builder()
                .realm("EC2.INTERNAL")
                .kdc_admin_password("x")
                .build(),
        )
        .step_concurrency_level(3)
        .managed_scaling_policy(sdk::ManagedScalingPolicy::builder().build())
        .placement_group_configs(
            sdk::PlacementGroupConfig::builder()
                .instance_role(sdk::InstanceRoleType::Master)
                .build(),
        )
        .set_auto_termination_policy(base.auto_termination_policy.clone())
        .os_release_label("2.0.20241001.0")
        .ebs_root_volume_iops(3000)
        .ebs_root_volume_throughput(125)
        .extended_support(false)
        .monitoring_configuration(sdk::MonitoringConfiguration::builder().build())
        .session_enabled(false)
        .build()
        .unwrap();
    let applied = apply_run_job_flow(client.run_job_flow(), full.clone());
    assert_eq!(applied.as_input().clone().build().unwrap(), full);
}
