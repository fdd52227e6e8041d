//! A thin adapter over aws-sdk-ec2 for the UI security group: the VPC of a subnet, groups by
//! tag, creating a tagged group, and converging its ingress to a rendered request.
//!
//! What the group must hold and the difference from what EC2 shows are worked out in
//! `render::security_group` (pure); this module only reads and applies.

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup, Tag,
    TagSpecification, UserIdGroupPair,
};
use aws_sdk_ec2::Client;

use super::error::{sdk_error, AwsError};
use crate::render::security_group::{
    ingress_diff, ExistingIngress, IngressRule, IngressSource, SecurityGroupRequest, UI_ACCESS_TAG,
};

/// A security group as EC2 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    /// The value of [`UI_ACCESS_TAG`], when the group carries it.
    pub ui_access_of: Option<String>,
    pub ingress: Vec<ExistingIngress>,
}

/// What `ensure_group` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsuredGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    pub created: bool,
    /// One line per rule authorized or revoked.
    pub changes: Vec<String>,
}

pub struct Ec2 {
    client: Client,
}

fn invalid(operation: &'static str, message: String) -> AwsError {
    AwsError {
        operation,
        code: None,
        message,
        transient: false,
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn group_view(group: &SecurityGroup) -> GroupView {
    let mut ingress = Vec::new();
    for permission in group.ip_permissions() {
        let protocol = permission.ip_protocol().unwrap_or("-1").to_string();
        let mut push = |source| {
            ingress.push(ExistingIngress {
                protocol: protocol.clone(),
                from_port: permission.from_port(),
                to_port: permission.to_port(),
                source,
            })
        };
        for range in permission.ip_ranges() {
            push(IngressSource::Ipv4(
                range.cidr_ip().unwrap_or_default().into(),
            ));
        }
        for range in permission.ipv6_ranges() {
            push(IngressSource::Ipv6(
                range.cidr_ipv6().unwrap_or_default().into(),
            ));
        }
        for list in permission.prefix_list_ids() {
            push(IngressSource::PrefixList(
                list.prefix_list_id().unwrap_or_default().into(),
            ));
        }
        for pair in permission.user_id_group_pairs() {
            push(IngressSource::Group(
                pair.group_id().unwrap_or_default().into(),
            ));
        }
    }
    GroupView {
        id: group.group_id().unwrap_or_default().to_string(),
        name: group.group_name().unwrap_or_default().to_string(),
        vpc_id: group.vpc_id().unwrap_or_default().to_string(),
        ui_access_of: group
            .tags()
            .iter()
            .find(|t| t.key() == Some(UI_ACCESS_TAG))
            .and_then(|t| t.value())
            .map(str::to_string),
        ingress,
    }
}

/// The permission that adds (or removes) exactly one rule.
fn permission_for_rule(rule: &IngressRule) -> IpPermission {
    let port = i32::from(rule.port);
    let builder = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port);
    if rule.cidr.contains(':') {
        builder
            .ipv6_ranges(
                Ipv6Range::builder()
                    .cidr_ipv6(&rule.cidr)
                    .description(&rule.description)
                    .build(),
            )
            .build()
    } else {
        builder
            .ip_ranges(
                IpRange::builder()
                    .cidr_ip(&rule.cidr)
                    .description(&rule.description)
                    .build(),
            )
            .build()
    }
}

fn permission_for_existing(existing: &ExistingIngress) -> IpPermission {
    let builder = IpPermission::builder()
        .ip_protocol(&existing.protocol)
        .set_from_port(existing.from_port)
        .set_to_port(existing.to_port);
    match &existing.source {
        IngressSource::Ipv4(cidr) => builder.ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
        IngressSource::Ipv6(cidr) => {
            builder.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build())
        }
        IngressSource::PrefixList(id) => {
            builder.prefix_list_ids(PrefixListId::builder().prefix_list_id(id).build())
        }
        IngressSource::Group(id) => {
            builder.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
        }
    }
    .build()
}

impl Ec2 {
    pub fn new(config: &aws_config::SdkConfig) -> Ec2 {
        Ec2 {
            client: Client::new(config),
        }
    }

    /// The VPC the subnet belongs to.
    pub async fn subnet_vpc(&self, subnet: &str) -> Result<String, AwsError> {
        let output = self
            .client
            .describe_subnets()
            .subnet_ids(subnet)
            .send()
            .await
            .map_err(sdk_error("DescribeSubnets"))?;
        output
            .subnets()
            .first()
            .and_then(|s| s.vpc_id())
            .map(str::to_string)
            .ok_or_else(|| invalid("DescribeSubnets", format!("no subnet {subnet}")))
    }

    /// The region's default VPC, where EMR launches a cluster that names no subnet.
    pub async fn default_vpc(&self) -> Result<Option<String>, AwsError> {
        let output = self
            .client
            .describe_vpcs()
            .filters(filter("is-default", "true"))
            .send()
            .await
            .map_err(sdk_error("DescribeVpcs"))?;
        Ok(output
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id())
            .map(str::to_string))
    }

    /// Groups matching every filter, every page.
    async fn groups(&self, filters: Vec<Filter>) -> Result<Vec<GroupView>, AwsError> {
        let mut pages = self
            .client
            .describe_security_groups()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(sdk_error("DescribeSecurityGroups"))?;
            groups.extend(page.security_groups().iter().map(group_view));
        }
        Ok(groups)
    }

    /// The UI groups of spec `spec_name`: in `vpc_id`, or in any VPC of the region.
    pub async fn ui_groups(
        &self,
        spec_name: &str,
        vpc_id: Option<&str>,
    ) -> Result<Vec<GroupView>, AwsError> {
        let mut filters = vec![filter(&format!("tag:{UI_ACCESS_TAG}"), spec_name)];
        if let Some(vpc_id) = vpc_id {
            filters.push(filter("vpc-id", vpc_id));
        }
        self.groups(filters).await
    }

    /// The groups among `ids` that are emrship UI groups.
    pub async fn ui_groups_among(&self, ids: &[String]) -> Result<Vec<GroupView>, AwsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut id_filter = Filter::builder().name("group-id");
        for id in ids {
            id_filter = id_filter.values(id);
        }
        self.groups(vec![id_filter.build(), filter("tag-key", UI_ACCESS_TAG)])
            .await
    }

    async fn create(
        &self,
        request: &SecurityGroupRequest,
        vpc_id: &str,
    ) -> Result<String, AwsError> {
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::SecurityGroup)
            .set_tags(Some(
                request
                    .tags
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        let output = self
            .client
            .create_security_group()
            .group_name(&request.group_name)
            .description(&request.description)
            .vpc_id(vpc_id)
            .tag_specifications(tags)
            .send()
            .await
            .map_err(sdk_error("CreateSecurityGroup"))?;
        output
            .group_id()
            .map(str::to_string)
            .ok_or_else(|| invalid("CreateSecurityGroup", "EC2 returned no GroupId".into()))
    }

    /// Finds the spec's UI group in the VPC of the request's subnet (by its tag) or creates it,
    /// then makes its ingress exactly the request's rules: missing rules are authorized, any
    /// other ingress is revoked. Running it again changes nothing.
    pub async fn ensure_group(
        &self,
        request: &SecurityGroupRequest,
    ) -> Result<EnsuredGroup, AwsError> {
        let spec_name =
            request.tags.get(UI_ACCESS_TAG).cloned().ok_or_else(|| {
                invalid("CreateSecurityGroup", "the request has no UI tag".into())
            })?;
        let vpc_id = match &request.subnet {
            Some(subnet) => self.subnet_vpc(subnet).await?,
            None => self.default_vpc().await?.ok_or_else(|| {
                invalid(
                    "DescribeVpcs",
                    "the spec names no subnet and the region has no default VPC; set \
                     `cluster.subnet`"
                        .into(),
                )
            })?,
        };
        let found = self.ui_groups(&spec_name, Some(&vpc_id)).await?;
        let (group, created) = match found.as_slice() {
            [one] => (one.clone(), false),
            [] => match self.create(request, &vpc_id).await {
                Ok(id) => (
                    GroupView {
                        id,
                        name: request.group_name.clone(),
                        vpc_id: vpc_id.clone(),
                        ui_access_of: Some(spec_name.clone()),
                        ingress: Vec::new(),
                    },
                    true,
                ),
                // Another provision created it since we looked (names are unique per VPC).
                Err(e) if e.is_code("InvalidGroup.Duplicate") => {
                    let named = self
                        .groups(vec![
                            filter("group-name", &request.group_name),
                            filter("vpc-id", &vpc_id),
                        ])
                        .await?;
                    match named.into_iter().next() {
                        Some(group) if group.ui_access_of.as_deref() == Some(&spec_name) => {
                            (group, false)
                        }
                        Some(group) => {
                            return Err(invalid(
                                "CreateSecurityGroup",
                                format!(
                                    "{vpc_id} already has a security group named {} ({}) that \
                                     emrship did not create (it lacks the tag {UI_ACCESS_TAG}={spec_name}); \
                                     tag it so emrship manages its ingress, or delete it",
                                    request.group_name, group.id
                                ),
                            ))
                        }
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            },
            many => {
                return Err(invalid(
                    "DescribeSecurityGroups",
                    format!(
                        "{} security groups in {vpc_id} carry the tag {UI_ACCESS_TAG}={spec_name} \
                         ({}); delete all but one",
                        many.len(),
                        many.iter()
                            .map(|g| g.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        };
        let diff = ingress_diff(&request.ingress, &group.ingress);
        let mut changes = Vec::new();
        if !diff.authorize.is_empty() {
            self.client
                .authorize_security_group_ingress()
                .group_id(&group.id)
                .set_ip_permissions(Some(
                    diff.authorize.iter().map(permission_for_rule).collect(),
                ))
                .send()
                .await
                .map_err(sdk_error("AuthorizeSecurityGroupIngress"))?;
            changes.extend(
                diff.authorize
                    .iter()
                    .map(|r| format!("opened tcp port {} from {}", r.port, r.cidr)),
            );
        }
        if !diff.revoke.is_empty() {
            self.client
                .revoke_security_group_ingress()
                .group_id(&group.id)
                .set_ip_permissions(Some(
                    diff.revoke.iter().map(permission_for_existing).collect(),
                ))
                .send()
                .await
                .map_err(sdk_error("RevokeSecurityGroupIngress"))?;
            changes.extend(diff.revoke.iter().map(|r| format!("revoked {r}")));
        }
        Ok(EnsuredGroup {
            id: group.id,
            name: group.name,
            vpc_id,
            created,
            changes,
        })
    }
}
