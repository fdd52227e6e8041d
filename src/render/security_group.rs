//! The UI security group: the primary node's web UIs (YARN ResourceManager, Spark History
//! Server, YARN web proxy) opened to the spec's `ui_access_cidr`, and nothing else.
//!
//! Pure: what the group must hold, and the difference from what EC2 shows, so that `provision`
//! converges the group to exactly that (authorize what is missing, revoke what is not wanted)
//! whatever happened to it in between.

use indexmap::IndexMap;
use serde::Serialize;

use super::run_job_flow::MANAGED_POLICY_TAG;
use crate::spec::JobPlan;

/// The tag that marks the group and names its spec: `provision` finds the group by it.
pub const UI_ACCESS_TAG: &str = "emrship:ui-access";

/// The web UIs on the primary node: YARN ResourceManager, Spark History Server, YARN proxy
/// (running Spark UIs are reached through it).
pub const UI_PORTS: &[(u16, &str)] = &[
    (8088, "YARN ResourceManager"),
    (18080, "Spark History Server"),
    (20888, "YARN web proxy (running Spark UIs)"),
];

/// A security group to find (by its tag) or create before launch; `provision` adds its id to
/// `Instances.AdditionalMasterSecurityGroups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroupRequest {
    pub group_name: String,
    pub description: String,
    /// The group goes in the VPC of this subnet (the default VPC when the spec names none).
    pub subnet: Option<String>,
    /// Key → value: [`UI_ACCESS_TAG`], the EMR managed-policy tag, then the spec's cluster tags.
    pub tags: IndexMap<String, String>,
    /// Exactly the ingress the group has once provisioned; egress is left as EC2 creates it.
    pub ingress: Vec<IngressRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressRule {
    pub port: u16,
    /// In canonical form (host bits cleared), as EC2 stores it.
    pub cidr: String,
    pub description: String,
}

/// The UI group of a spec with `ui_access_cidr`, one per spec (every run of it shares it).
pub fn ui_access_group(job: &JobPlan) -> Option<SecurityGroupRequest> {
    let cidr = job.cluster.ui_access_cidr.as_deref()?;
    let cidr = canonical_cidr(cidr).unwrap_or_else(|| cidr.to_string());
    // AmazonEMRServicePolicy_v2 lets EMR launch instances only into security groups (and
    // subnets) that carry the managed-policy tag: without it RunJobFlow's instances fail.
    let mut tags = IndexMap::from([
        (UI_ACCESS_TAG.to_string(), job.name.clone()),
        (MANAGED_POLICY_TAG.to_string(), "true".to_string()),
    ]);
    tags.extend(job.cluster.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    Some(SecurityGroupRequest {
        group_name: format!("emrship-{}-ui", job.name),
        description: format!(
            "emrship {}: web UIs on the primary node from {cidr}",
            job.name
        ),
        subnet: job.cluster.subnets.first().cloned(),
        tags,
        ingress: UI_PORTS
            .iter()
            .map(|(port, what)| IngressRule {
                port: *port,
                cidr: cidr.clone(),
                description: (*what).to_string(),
            })
            .collect(),
    })
}

/// One ingress permission as EC2 shows it, flattened to a single source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingIngress {
    /// `tcp`, `udp`, `icmp`, `-1` (all)…
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub source: IngressSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressSource {
    Ipv4(String),
    Ipv6(String),
    PrefixList(String),
    /// Another security group (user id / group pair).
    Group(String),
}

impl std::fmt::Display for ExistingIngress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports = match (self.from_port, self.to_port) {
            _ if self.protocol == "-1" => "all ports".to_string(),
            (Some(from), Some(to)) if from == to => format!("port {from}"),
            (Some(from), Some(to)) => format!("ports {from}-{to}"),
            _ => "ports ?".to_string(),
        };
        let source = match &self.source {
            IngressSource::Ipv4(c) | IngressSource::Ipv6(c) => c.clone(),
            IngressSource::PrefixList(p) => format!("prefix list {p}"),
            IngressSource::Group(g) => format!("security group {g}"),
        };
        let protocol = if self.protocol == "-1" {
            "all protocols"
        } else {
            &self.protocol
        };
        write!(f, "{protocol} {ports} from {source}")
    }
}

/// What turns the group's ingress into exactly the wanted rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressDiff {
    pub authorize: Vec<IngressRule>,
    pub revoke: Vec<ExistingIngress>,
}

impl IngressDiff {
    pub fn is_empty(&self) -> bool {
        self.authorize.is_empty() && self.revoke.is_empty()
    }
}

/// The rules to add and the permissions to remove so that the group holds `wanted` and
/// nothing else. A rule's description does not count: rewording it is no reason to touch it.
pub fn ingress_diff(wanted: &[IngressRule], existing: &[ExistingIngress]) -> IngressDiff {
    let matches = |rule: &IngressRule, have: &ExistingIngress| {
        let source = match &have.source {
            IngressSource::Ipv4(c) | IngressSource::Ipv6(c) => c,
            _ => return false,
        };
        have.protocol == "tcp"
            && have.from_port == Some(i32::from(rule.port))
            && have.to_port == Some(i32::from(rule.port))
            && canonical_cidr(source).as_deref() == Some(rule.cidr.as_str())
    };
    IngressDiff {
        authorize: wanted
            .iter()
            .filter(|rule| !existing.iter().any(|have| matches(rule, have)))
            .cloned()
            .collect(),
        revoke: existing
            .iter()
            .filter(|have| !wanted.iter().any(|rule| matches(rule, have)))
            .cloned()
            .collect(),
    }
}

/// `10.20.3.4/16` → `10.20.0.0/16` (EC2 keeps the network address); `None` when not a CIDR.
pub fn canonical_cidr(cidr: &str) -> Option<String> {
    let (address, bits) = cidr.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    match address.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            let network = std::net::Ipv4Addr::from(u32::from(v4) & mask);
            Some(format!("{network}/{bits}"))
        }
        std::net::IpAddr::V6(v6) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            Some(format!("{network}/{bits}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(cidr: &str) -> Vec<IngressRule> {
        UI_PORTS
            .iter()
            .map(|(port, what)| IngressRule {
                port: *port,
                cidr: cidr.to_string(),
                description: (*what).to_string(),
            })
            .collect()
    }

    fn tcp(port: i32, cidr: &str) -> ExistingIngress {
        ExistingIngress {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            source: IngressSource::Ipv4(cidr.into()),
        }
    }

    #[test]
    fn a_new_group_gets_the_three_ports_from_the_one_range() {
        let diff = ingress_diff(&wanted("10.20.0.0/16"), &[]);
        let ports: Vec<u16> = diff.authorize.iter().map(|r| r.port).collect();
        assert_eq!(ports, [8088, 18080, 20888]);
        assert!(diff.authorize.iter().all(|r| r.cidr == "10.20.0.0/16"));
        assert!(diff.revoke.is_empty());
    }

    #[test]
    fn a_group_that_matches_needs_nothing() {
        let existing = [
            tcp(20888, "10.20.0.0/16"),
            tcp(8088, "10.20.0.0/16"),
            tcp(18080, "10.20.0.0/16"),
        ];
        assert!(ingress_diff(&wanted("10.20.0.0/16"), &existing).is_empty());
    }

    #[test]
    fn a_changed_range_swaps_the_rules_and_strays_are_revoked() {
        let stray_ssh = tcp(22, "0.0.0.0/0");
        let all_from_group = ExistingIngress {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            source: IngressSource::Group("sg-0abc".into()),
        };
        let range = ExistingIngress {
            from_port: Some(8000),
            to_port: Some(9000),
            ..tcp(0, "10.20.0.0/16")
        };
        let existing = [
            tcp(8088, "10.20.0.0/16"),
            tcp(18080, "10.30.0.0/16"),
            tcp(20888, "10.30.0.0/16"),
            stray_ssh.clone(),
            all_from_group.clone(),
            range.clone(),
        ];
        let diff = ingress_diff(&wanted("10.30.0.0/16"), &existing);
        assert_eq!(diff.authorize.len(), 1);
        assert_eq!(diff.authorize[0].port, 8088);
        assert_eq!(
            diff.revoke,
            [existing[0].clone(), stray_ssh, all_from_group, range]
        );
        assert_eq!(
            diff.revoke[0].to_string(),
            "tcp port 8088 from 10.20.0.0/16"
        );
        assert_eq!(
            diff.revoke[2].to_string(),
            "all protocols all ports from security group sg-0abc"
        );
    }

    #[test]
    fn cidrs_compare_by_network() {
        assert_eq!(canonical_cidr("10.20.3.4/16").unwrap(), "10.20.0.0/16");
        assert_eq!(canonical_cidr("10.20.3.4/32").unwrap(), "10.20.3.4/32");
        assert_eq!(canonical_cidr("2001:db8::1/32").unwrap(), "2001:db8::/32");
        assert_eq!(canonical_cidr("0.0.0.0/0").unwrap(), "0.0.0.0/0");
        assert_eq!(canonical_cidr("10.0.0.0"), None);
        // EC2 shows the canonical form of what was authorized: no churn on the next run.
        assert!(
            ingress_diff(&wanted("10.20.0.0/16"), &[tcp(8088, "10.20.0.0/16")])
                .revoke
                .is_empty()
        );
    }
}
