//! Rendered EMR requests as the AWS SDK's input types.
//!
//! This is the only place a [`Plan`](crate::plan::Plan) meets `aws_sdk_emr`. The renderer
//! (`crate::render`) builds requests in the EMR API's member names with plain Rust types, so
//! `emrship plan` stays pure and offline; `provision` and `submit` send them with
//!
//! ```ignore
//! let input = emr_request::run_job_flow_input(&plan.run_job_flow)?;
//! emr_request::apply_run_job_flow(client.run_job_flow(), input).send().await?;
//!
//! client
//!     .add_job_flow_steps()
//!     .job_flow_id(cluster_id)
//!     .set_steps(Some(emr_request::step_configs(&plan.add_job_flow_steps.steps)?))
//!     .send()
//!     .await?;
//! ```
//!
//! Every member we render is mapped, and nothing else is set. The SDK's own JSON serializer
//! writes exactly what we set, so the conversions mirror our serializer on presence: a list
//! our JSON always carries (`Steps`, `Tags`, `Args`, …) is set even when empty, and one it
//! omits when empty (`InstanceGroups`, `Ec2SubnetIds`, `Properties`, …) stays unset.
//!
//! Conversions fail instead of guessing:
//! - an enum value the SDK does not know (`MarketType`, `InstanceRoleType`, `InstanceFleetType`,
//!   `SpotProvisioningTimeoutAction`, `ActionOnFailure`) would reach the SDK as its `Unknown`
//!   variant and fail only at EMR; here it is an error naming the member and the allowed values;
//! - an EBS `VolumeType` outside the types EMR documents (a plain string in the SDK model);
//! - a count above `i32::MAX` (the SDK's integers are `i32`, ours `u32`; `IdleTimeout` is `i64`,
//!   ours `u64`).
//!
//! `tests/sdk_fidelity.rs` converts every example spec's plan and reads the SDK values back into
//! JSON, which must equal our rendered JSON.

use aws_sdk_emr::error::BuildError;
use aws_sdk_emr::operation::run_job_flow::builders::RunJobFlowFluentBuilder;
use aws_sdk_emr::operation::run_job_flow::RunJobFlowInput;
use aws_sdk_emr::types as sdk;

use crate::render::configurations::Configuration;
use crate::render::run_job_flow::{
    EbsConfiguration, InstanceFleetConfig, InstanceGroupConfig, JobFlowInstances, RunJobFlowRequest,
};
use crate::render::steps::StepConfig;

/// EBS volume types EMR accepts (`VolumeSpecification.VolumeType` in the EMR API reference).
pub const EBS_VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io1", "st1", "sc1", "standard"];

/// `value` as an SDK enum, or an error if the SDK would only know it as `Unknown`: `values()`
/// lists exactly the strings `From<&str>` maps to a known variant (the SDK deprecates matching
/// on `Unknown` itself).
fn known<T>(member: &'static str, at: &str, value: &str, allowed: &[&str]) -> Result<T, BuildError>
where
    T: for<'a> From<&'a str>,
{
    if !allowed.contains(&value) {
        return Err(BuildError::invalid_field(
            member,
            format!("{at}: `{value}` is not one of {}", allowed.join(", ")),
        ));
    }
    Ok(T::from(value))
}

fn int(member: &'static str, at: &str, value: u32) -> Result<i32, BuildError> {
    i32::try_from(value).map_err(|_| {
        BuildError::invalid_field(member, format!("{at}: {value} is larger than {}", i32::MAX))
    })
}

fn some_if_not_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// A configuration classification, nested ones included. Properties become the SDK's
/// `HashMap`: JSON object members have no order, so nothing EMR sees changes.
pub fn configuration(c: &Configuration) -> sdk::Configuration {
    sdk::Configuration::builder()
        .classification(&c.classification)
        .set_properties((!c.properties.is_empty()).then(|| {
            c.properties
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }))
        .set_configurations(some_if_not_empty(
            c.configurations.iter().map(configuration).collect(),
        ))
        .build()
}

fn ebs_configuration(
    ebs: &EbsConfiguration,
    at: &str,
) -> Result<sdk::EbsConfiguration, BuildError> {
    let devices = ebs
        .ebs_block_device_configs
        .iter()
        .enumerate()
        .map(|(i, device)| {
            let at = format!("{at}.EbsConfiguration.EbsBlockDeviceConfigs[{i}]");
            let volume = &device.volume_specification;
            if !EBS_VOLUME_TYPES.contains(&volume.volume_type) {
                return Err(BuildError::invalid_field(
                    "VolumeType",
                    format!(
                        "{at}.VolumeSpecification: `{}` is not one of {}",
                        volume.volume_type,
                        EBS_VOLUME_TYPES.join(", ")
                    ),
                ));
            }
            Ok(sdk::EbsBlockDeviceConfig::builder()
                .volume_specification(
                    sdk::VolumeSpecification::builder()
                        .volume_type(volume.volume_type)
                        .size_in_gb(int("SizeInGB", &at, volume.size_in_g_b)?)
                        .build(),
                )
                .volumes_per_instance(int("VolumesPerInstance", &at, device.volumes_per_instance)?)
                .build())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sdk::EbsConfiguration::builder()
        .set_ebs_block_device_configs(Some(devices))
        .build())
}

fn instance_group(
    group: &InstanceGroupConfig,
    at: &str,
) -> Result<sdk::InstanceGroupConfig, BuildError> {
    Ok(sdk::InstanceGroupConfig::builder()
        .name(&group.name)
        .market(known(
            "Market",
            at,
            group.market,
            sdk::MarketType::values(),
        )?)
        .instance_role(known(
            "InstanceRole",
            at,
            group.instance_role,
            sdk::InstanceRoleType::values(),
        )?)
        .set_bid_price(group.bid_price.clone())
        .instance_type(&group.instance_type)
        .instance_count(int("InstanceCount", at, group.instance_count)?)
        .set_ebs_configuration(
            group
                .ebs_configuration
                .as_ref()
                .map(|ebs| ebs_configuration(ebs, at))
                .transpose()?,
        )
        .build())
}

fn instance_fleet(
    fleet: &InstanceFleetConfig,
    at: &str,
) -> Result<sdk::InstanceFleetConfig, BuildError> {
    let type_configs = fleet
        .instance_type_configs
        .iter()
        .enumerate()
        .map(|(i, choice)| {
            let at = format!("{at}.InstanceTypeConfigs[{i}]");
            Ok(sdk::InstanceTypeConfig::builder()
                .instance_type(&choice.instance_type)
                .weighted_capacity(int("WeightedCapacity", &at, choice.weighted_capacity)?)
                .set_bid_price_as_percentage_of_on_demand_price(
                    choice.bid_price_as_percentage_of_on_demand_price,
                )
                .set_ebs_configuration(
                    choice
                        .ebs_configuration
                        .as_ref()
                        .map(|ebs| ebs_configuration(ebs, &at))
                        .transpose()?,
                )
                .build())
        })
        .collect::<Result<Vec<_>, BuildError>>()?;
    let launch_specifications = match &fleet.launch_specifications {
        Some(launch) => {
            let spot = &launch.spot_specification;
            let at = format!("{at}.LaunchSpecifications.SpotSpecification");
            Some(
                sdk::InstanceFleetProvisioningSpecifications::builder()
                    .spot_specification(
                        sdk::SpotProvisioningSpecification::builder()
                            .timeout_duration_minutes(int(
                                "TimeoutDurationMinutes",
                                &at,
                                spot.timeout_duration_minutes,
                            )?)
                            .timeout_action(known(
                                "TimeoutAction",
                                &at,
                                spot.timeout_action,
                                sdk::SpotProvisioningTimeoutAction::values(),
                            )?)
                            .build(),
                    )
                    .build(),
            )
        }
        None => None,
    };
    Ok(sdk::InstanceFleetConfig::builder()
        .name(&fleet.name)
        .instance_fleet_type(known(
            "InstanceFleetType",
            at,
            fleet.instance_fleet_type,
            sdk::InstanceFleetType::values(),
        )?)
        .target_on_demand_capacity(int(
            "TargetOnDemandCapacity",
            at,
            fleet.target_on_demand_capacity,
        )?)
        .target_spot_capacity(int("TargetSpotCapacity", at, fleet.target_spot_capacity)?)
        .set_instance_type_configs(Some(type_configs))
        .set_launch_specifications(launch_specifications)
        .build())
}

/// `Instances`: instance groups or fleets, subnets, key pair, lifecycle flags.
pub fn job_flow_instances(
    instances: &JobFlowInstances,
) -> Result<sdk::JobFlowInstancesConfig, BuildError> {
    let groups = instances
        .instance_groups
        .iter()
        .enumerate()
        .map(|(i, g)| instance_group(g, &format!("Instances.InstanceGroups[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let fleets = instances
        .instance_fleets
        .iter()
        .enumerate()
        .map(|(i, f)| instance_fleet(f, &format!("Instances.InstanceFleets[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sdk::JobFlowInstancesConfig::builder()
        .set_instance_groups(some_if_not_empty(groups))
        .set_instance_fleets(some_if_not_empty(fleets))
        .keep_job_flow_alive_when_no_steps(instances.keep_job_flow_alive_when_no_steps)
        .termination_protected(instances.termination_protected)
        .set_ec2_subnet_id(instances.ec2_subnet_id.clone())
        .set_ec2_subnet_ids(some_if_not_empty(instances.ec2_subnet_ids.clone()))
        .set_ec2_key_name(instances.ec2_key_name.clone())
        .set_additional_master_security_groups(some_if_not_empty(
            instances.additional_master_security_groups.clone(),
        ))
        .build())
}

fn step_config(step: &StepConfig, at: &str) -> Result<sdk::StepConfig, BuildError> {
    Ok(sdk::StepConfig::builder()
        .name(&step.name)
        .action_on_failure(known(
            "ActionOnFailure",
            at,
            step.action_on_failure,
            sdk::ActionOnFailure::values(),
        )?)
        .hadoop_jar_step(
            sdk::HadoopJarStepConfig::builder()
                .jar(&step.hadoop_jar_step.jar)
                .set_args(Some(step.hadoop_jar_step.args.clone()))
                .build(),
        )
        .build())
}

/// Steps for `RunJobFlow.Steps` or `AddJobFlowSteps.Steps`.
pub fn step_configs(steps: &[StepConfig]) -> Result<Vec<sdk::StepConfig>, BuildError> {
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| step_config(step, &format!("Steps[{i}]")))
        .collect()
}

/// The whole `RunJobFlow` request.
pub fn run_job_flow_input(request: &RunJobFlowRequest) -> Result<RunJobFlowInput, BuildError> {
    let steps = step_configs(&request.steps)?;
    let bootstrap_actions = request
        .bootstrap_actions
        .iter()
        .map(|action| {
            sdk::BootstrapActionConfig::builder()
                .name(&action.name)
                .script_bootstrap_action(
                    sdk::ScriptBootstrapActionConfig::builder()
                        .path(&action.script_bootstrap_action.path)
                        .set_args(Some(action.script_bootstrap_action.args.clone()))
                        .build(),
                )
                .build()
        })
        .collect();
    let auto_termination_policy = match &request.auto_termination_policy {
        Some(policy) => Some(
            sdk::AutoTerminationPolicy::builder()
                .idle_timeout(i64::try_from(policy.idle_timeout).map_err(|_| {
                    BuildError::invalid_field(
                        "IdleTimeout",
                        format!(
                            "AutoTerminationPolicy: {} is larger than {}",
                            policy.idle_timeout,
                            i64::MAX
                        ),
                    )
                })?)
                .build(),
        ),
        None => None,
    };
    RunJobFlowInput::builder()
        .name(&request.name)
        .log_uri(&request.log_uri)
        .release_label(&request.release_label)
        .set_applications(Some(
            request
                .applications
                .iter()
                .map(|app| sdk::Application::builder().name(&app.name).build())
                .collect(),
        ))
        .set_configurations(Some(
            request.configurations.iter().map(configuration).collect(),
        ))
        .instances(job_flow_instances(&request.instances)?)
        .set_bootstrap_actions(Some(bootstrap_actions))
        .set_steps(Some(steps))
        .job_flow_role(&request.job_flow_role)
        .service_role(&request.service_role)
        .set_tags(Some(
            request
                .tags
                .iter()
                .map(|tag| sdk::Tag::builder().key(&tag.key).value(&tag.value).build())
                .collect(),
        ))
        .visible_to_all_users(request.visible_to_all_users)
        .set_auto_termination_policy(auto_termination_policy)
        .set_step_concurrency_level(
            request
                .step_concurrency_level
                .map(|n| int("StepConcurrencyLevel", "RunJobFlow", n))
                .transpose()?,
        )
        .set_ebs_root_volume_size(
            request
                .ebs_root_volume_size
                .map(|n| int("EbsRootVolumeSize", "RunJobFlow", n))
                .transpose()?,
        )
        .build()
}

/// Copy every member of `input` onto a client's `run_job_flow()` builder, so the call sends
/// exactly `input`. Lists every member of `RunJobFlowInput` in aws-sdk-emr 1.132; a member
/// added by a later SDK would need a line here (the struct is `#[non_exhaustive]`, so the
/// compiler cannot insist).
pub fn apply_run_job_flow(
    builder: RunJobFlowFluentBuilder,
    input: RunJobFlowInput,
) -> RunJobFlowFluentBuilder {
    let RunJobFlowInput {
        name,
        log_uri,
        log_encryption_kms_key_id,
        additional_info,
        ami_version,
        release_label,
        instances,
        steps,
        step_execution_role_arn,
        bootstrap_actions,
        supported_products,
        new_supported_products,
        applications,
        configurations,
        visible_to_all_users,
        job_flow_role,
        service_role,
        tags,
        security_configuration,
        auto_scaling_role,
        scale_down_behavior,
        custom_ami_id,
        ebs_root_volume_size,
        repo_upgrade_on_boot,
        kerberos_attributes,
        step_concurrency_level,
        managed_scaling_policy,
        placement_group_configs,
        auto_termination_policy,
        os_release_label,
        ebs_root_volume_iops,
        ebs_root_volume_throughput,
        extended_support,
        monitoring_configuration,
        session_enabled,
        ..
    } = input;
    builder
        .set_name(name)
        .set_log_uri(log_uri)
        .set_log_encryption_kms_key_id(log_encryption_kms_key_id)
        .set_additional_info(additional_info)
        .set_ami_version(ami_version)
        .set_release_label(release_label)
        .set_instances(instances)
        .set_steps(steps)
        .set_step_execution_role_arn(step_execution_role_arn)
        .set_bootstrap_actions(bootstrap_actions)
        .set_supported_products(supported_products)
        .set_new_supported_products(new_supported_products)
        .set_applications(applications)
        .set_configurations(configurations)
        .set_visible_to_all_users(visible_to_all_users)
        .set_job_flow_role(job_flow_role)
        .set_service_role(service_role)
        .set_tags(tags)
        .set_security_configuration(security_configuration)
        .set_auto_scaling_role(auto_scaling_role)
        .set_scale_down_behavior(scale_down_behavior)
        .set_custom_ami_id(custom_ami_id)
        .set_ebs_root_volume_size(ebs_root_volume_size)
        .set_repo_upgrade_on_boot(repo_upgrade_on_boot)
        .set_kerberos_attributes(kerberos_attributes)
        .set_step_concurrency_level(step_concurrency_level)
        .set_managed_scaling_policy(managed_scaling_policy)
        .set_placement_group_configs(placement_group_configs)
        .set_auto_termination_policy(auto_termination_policy)
        .set_os_release_label(os_release_label)
        .set_ebs_root_volume_iops(ebs_root_volume_iops)
        .set_ebs_root_volume_throughput(ebs_root_volume_throughput)
        .set_extended_support(extended_support)
        .set_monitoring_configuration(monitoring_configuration)
        .set_session_enabled(session_enabled)
}
