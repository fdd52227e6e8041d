//! The RunJobFlow request, in the EMR API's member names: what
//! `boto3.client("emr").run_job_flow(**request)` accepts.

use serde::Serialize;

use super::configurations::Configuration;
use super::steps::StepConfig;
use crate::spec::job_plan::{Fleet, InstanceGroup, Nodes};
use crate::spec::raw::Market;
use crate::spec::s3::S3Uri;
use crate::spec::JobPlan;

/// Tag that AmazonEMRServicePolicy_v2 requires on everything EMR creates for the cluster.
pub const MANAGED_POLICY_TAG: &str = "for-use-with-amazon-emr-managed-policies";
/// Tag naming one run (spec + date); launches look it up so a retry never starts two clusters.
pub const RUN_KEY_TAG: &str = "emrship:run-key";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunJobFlowRequest {
    pub name: String,
    pub log_uri: String,
    pub release_label: String,
    pub applications: Vec<Application>,
    pub configurations: Vec<Configuration>,
    pub instances: JobFlowInstances,
    pub bootstrap_actions: Vec<BootstrapActionConfig>,
    pub steps: Vec<StepConfig>,
    pub job_flow_role: String,
    pub service_role: String,
    pub tags: Vec<Tag>,
    pub visible_to_all_users: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_termination_policy: Option<AutoTerminationPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_concurrency_level: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebs_root_volume_size: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Application {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutoTerminationPolicy {
    pub idle_timeout: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobFlowInstances {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_groups: Vec<InstanceGroupConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_fleets: Vec<InstanceFleetConfig>,
    pub keep_job_flow_alive_when_no_steps: bool,
    pub termination_protected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_subnet_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ec2_subnet_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_key_name: Option<String>,
    /// The UI security group's id: unknown until `provision` finds or creates the group
    /// (`Plan::security_groups`), so empty in the plan and filled in just before launch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_master_security_groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceGroupConfig {
    pub name: String,
    pub market: &'static str,
    pub instance_role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bid_price: Option<String>,
    pub instance_type: String,
    pub instance_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebs_configuration: Option<EbsConfiguration>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceFleetConfig {
    pub name: String,
    pub instance_fleet_type: &'static str,
    pub target_on_demand_capacity: u32,
    pub target_spot_capacity: u32,
    pub instance_type_configs: Vec<InstanceTypeConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_specifications: Option<LaunchSpecifications>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceTypeConfig {
    pub instance_type: String,
    pub weighted_capacity: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bid_price_as_percentage_of_on_demand_price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebs_configuration: Option<EbsConfiguration>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LaunchSpecifications {
    pub spot_specification: SpotSpecification,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpotSpecification {
    pub timeout_duration_minutes: u32,
    pub timeout_action: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EbsConfiguration {
    pub ebs_block_device_configs: Vec<EbsBlockDeviceConfig>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EbsBlockDeviceConfig {
    pub volume_specification: VolumeSpecification,
    pub volumes_per_instance: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeSpecification {
    pub volume_type: &'static str,
    pub size_in_g_b: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BootstrapActionConfig {
    pub name: String,
    pub script_bootstrap_action: ScriptBootstrapActionConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScriptBootstrapActionConfig {
    pub path: String,
    pub args: Vec<String>,
}

fn ebs(gib: Option<u32>) -> Option<EbsConfiguration> {
    gib.map(|size| EbsConfiguration {
        ebs_block_device_configs: vec![EbsBlockDeviceConfig {
            volume_specification: VolumeSpecification {
                volume_type: "gp3",
                size_in_g_b: size,
            },
            volumes_per_instance: 1,
        }],
    })
}

fn group(role: &'static str, name: &str, group: &InstanceGroup) -> InstanceGroupConfig {
    InstanceGroupConfig {
        name: name.to_string(),
        market: match group.market {
            Market::OnDemand => "ON_DEMAND",
            Market::Spot => "SPOT",
        },
        instance_role: role,
        bid_price: group.bid_price.clone(),
        instance_type: group.instance_type.name.to_string(),
        instance_count: group.count,
        ebs_configuration: ebs(group.ebs_gib),
    }
}

fn fleet(kind: &'static str, name: &str, fleet: &Fleet) -> InstanceFleetConfig {
    InstanceFleetConfig {
        name: name.to_string(),
        instance_fleet_type: kind,
        target_on_demand_capacity: fleet.on_demand,
        target_spot_capacity: fleet.spot,
        instance_type_configs: fleet
            .instance_types
            .iter()
            .map(|choice| InstanceTypeConfig {
                instance_type: choice.instance_type.name.to_string(),
                weighted_capacity: choice.weight,
                bid_price_as_percentage_of_on_demand_price: choice.bid_price_percent.map(f64::from),
                ebs_configuration: ebs(choice.ebs_gib),
            })
            .collect(),
        launch_specifications: fleet.spot_timeout_minutes.filter(|_| fleet.spot > 0).map(
            |minutes| LaunchSpecifications {
                spot_specification: SpotSpecification {
                    timeout_duration_minutes: minutes,
                    timeout_action: "SWITCH_TO_ON_DEMAND",
                },
            },
        ),
    }
}

/// The tags every cluster carries: the spec's, then emrship's own.
pub fn cluster_tags(plan: &JobPlan) -> Vec<Tag> {
    let mut tags: Vec<Tag> = plan
        .cluster
        .tags
        .iter()
        .map(|(key, value)| Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    for (key, value) in [
        ("emrship:spec", plan.name.clone()),
        (RUN_KEY_TAG, plan.run_key()),
        (MANAGED_POLICY_TAG, "true".to_string()),
    ] {
        tags.push(Tag {
            key: key.to_string(),
            value,
        });
    }
    tags
}

/// The bootstrap action emrship adds before the spec's own: the bundle install for emrship-job,
/// the node check for a user's application.
#[derive(Debug, Clone)]
pub struct EmrshipBootstrap {
    pub name: String,
    pub path: S3Uri,
    pub args: Vec<String>,
}

/// `user_bootstrap`: where each `cluster.bootstrap` script runs from, in spec order.
pub fn run_job_flow(
    plan: &JobPlan,
    configurations: Vec<Configuration>,
    bootstrap: EmrshipBootstrap,
    user_bootstrap: &[S3Uri],
    steps: Vec<StepConfig>,
) -> RunJobFlowRequest {
    let (instance_groups, instance_fleets) = match &plan.cluster.nodes {
        Nodes::Groups { master, core, task } => {
            let mut groups = vec![group("MASTER", "primary", master)];
            groups.extend(core.iter().map(|g| group("CORE", "core", g)));
            groups.extend(task.iter().map(|g| group("TASK", "task", g)));
            (groups, Vec::new())
        }
        Nodes::Fleets { master, core, task } => {
            let mut fleets = vec![
                fleet("MASTER", "primary", master),
                fleet("CORE", "core", core),
            ];
            fleets.extend(task.iter().map(|f| fleet("TASK", "task", f)));
            (Vec::new(), fleets)
        }
    };
    let (ec2_subnet_id, ec2_subnet_ids) =
        match (&plan.cluster.nodes, plan.cluster.subnets.as_slice()) {
            (_, []) => (None, Vec::new()),
            (Nodes::Groups { .. }, [one, ..]) => (Some(one.clone()), Vec::new()),
            (Nodes::Fleets { .. }, many) => (None, many.to_vec()),
        };
    let mut bootstrap_actions = vec![BootstrapActionConfig {
        name: bootstrap.name,
        script_bootstrap_action: ScriptBootstrapActionConfig {
            path: bootstrap.path.to_string(),
            args: bootstrap.args,
        },
    }];
    bootstrap_actions.extend(plan.cluster.bootstrap.iter().zip(user_bootstrap).map(
        |(action, path)| BootstrapActionConfig {
            name: action.name.clone(),
            script_bootstrap_action: ScriptBootstrapActionConfig {
                path: path.to_string(),
                args: action.args.clone(),
            },
        },
    ));
    RunJobFlowRequest {
        name: format!("{} {}", plan.name, plan.date.format("%Y-%m-%d")),
        log_uri: plan.log_uri.to_string(),
        release_label: plan.release.label.clone(),
        applications: plan
            .cluster
            .applications
            .iter()
            .map(|name| Application { name: name.clone() })
            .collect(),
        configurations,
        instances: JobFlowInstances {
            instance_groups,
            instance_fleets,
            // A transient cluster ends when its steps do: nothing is left running (or billing).
            keep_job_flow_alive_when_no_steps: plan.cluster.keep_alive,
            termination_protected: false,
            ec2_subnet_id,
            ec2_subnet_ids,
            ec2_key_name: plan.cluster.key_name.clone(),
            additional_master_security_groups: Vec::new(),
        },
        bootstrap_actions,
        steps,
        job_flow_role: plan.roles.instance_profile.clone(),
        service_role: plan.roles.service.clone(),
        tags: cluster_tags(plan),
        visible_to_all_users: true,
        auto_termination_policy: plan
            .cluster
            .idle_timeout_seconds
            .map(|idle_timeout| AutoTerminationPolicy { idle_timeout }),
        step_concurrency_level: plan.cluster.step_concurrency,
        ebs_root_volume_size: plan.cluster.ebs_root_volume_gib,
    }
}
