//! `provision` with `ui_access_cidr` against moto's server mode: the UI security group is
//! created once in the subnet's VPC (found by its tag afterwards, never doubled), holds exactly
//! tcp 8088, 18080 and 20888 from the one range (drift is put back), is attached to the primary
//! node through `AdditionalMasterSecurityGroups`, and is kept by `down` and `terminate`. Every
//! assertion reads the state back through the EC2 and EMR APIs.
#![cfg(feature = "aws")]

mod common;

use std::path::PathBuf;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange};
use serde_json::{json, Value};

use common::emr::{assert_exit, block, stdout_json, MatchRateProject};

const CIDR: &str = "10.20.0.0/16";

/// One ingress rule as EC2 shows it: (protocol, from port, to port, CIDR).
type Rule = (String, i32, i32, String);

struct Env {
    project: MatchRateProject,
    ec2: aws_sdk_ec2::Client,
    spec: PathBuf,
    vpc_id: String,
}

impl Env {
    /// The match-rate example in a VPC and subnet of the emulator, with UI access.
    fn new() -> Env {
        let project = MatchRateProject::new();
        let config = block(project.moto.sdk_config());
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let (vpc_id, subnet_id) = block(async {
            let vpc = ec2
                .create_vpc()
                .cidr_block("10.0.0.0/16")
                .send()
                .await
                .unwrap();
            let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .cidr_block("10.0.1.0/24")
                .send()
                .await
                .unwrap();
            let subnet_id = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
            (vpc_id, subnet_id)
        });
        let text = std::fs::read_to_string(common::emr::match_rate_spec_path()).unwrap();
        let text = text.replace(
            "  subnet: subnet-0123456789abcdef0\n",
            &format!("  subnet: {subnet_id}\n  ui_access_cidr: {CIDR}\n"),
        );
        assert!(
            text.contains("ui_access_cidr"),
            "the example's subnet line moved"
        );
        let spec = project.dir.path().join("match-rate.yaml");
        std::fs::write(&spec, text).unwrap();
        Env {
            project,
            ec2,
            spec,
            vpc_id,
        }
    }

    fn emrship(&self, args: &[&str]) -> std::process::Output {
        self.project.emrship(args)
    }

    fn spec(&self) -> String {
        self.spec.display().to_string()
    }

    fn provision(&self, date: &str) -> Value {
        common::emr::deploy(&self.project.moto, &self.spec, date, &self.project.bundle);
        let output = self.emrship(&[
            "provision",
            &self.spec(),
            "--date",
            date,
            "--format",
            "json",
        ]);
        assert_exit(&output, 0);
        stdout_json(&output)
    }

    /// (id, vpc, ingress as (protocol, from, to, cidr) sorted) of every group of the spec.
    fn ui_groups(&self) -> Vec<(String, String, Vec<Rule>)> {
        block(async {
            let found = self
                .ec2
                .describe_security_groups()
                .filters(
                    Filter::builder()
                        .name("tag:emrship:ui-access")
                        .values("match-rate")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            found
                .security_groups()
                .iter()
                .map(|group| {
                    let mut ingress = Vec::new();
                    for permission in group.ip_permissions() {
                        for range in permission.ip_ranges() {
                            ingress.push((
                                permission.ip_protocol().unwrap().to_string(),
                                permission.from_port().unwrap(),
                                permission.to_port().unwrap(),
                                range.cidr_ip().unwrap().to_string(),
                            ));
                        }
                        assert!(permission.ipv6_ranges().is_empty());
                        assert!(permission.user_id_group_pairs().is_empty());
                        assert!(permission.prefix_list_ids().is_empty());
                    }
                    ingress.sort();
                    (
                        group.group_id().unwrap().to_string(),
                        group.vpc_id().unwrap().to_string(),
                        ingress,
                    )
                })
                .collect()
        })
    }

    fn attached(&self, cluster_id: &str) -> Vec<String> {
        block(async {
            self.project
                .emr
                .describe_cluster()
                .cluster_id(cluster_id)
                .send()
                .await
                .unwrap()
                .cluster()
                .unwrap()
                .ec2_instance_attributes()
                .unwrap()
                .additional_master_security_groups()
                .to_vec()
        })
    }
}

fn exactly_the_ui_ports() -> Vec<Rule> {
    [8088, 18080, 20888]
        .map(|port| ("tcp".to_string(), port, port, CIDR.to_string()))
        .to_vec()
}

#[test]
fn provision_creates_the_ui_group_once_attaches_it_and_keeps_it_exact() {
    let env = Env::new();

    let first = env.provision("2026-11-20");
    let groups = env.ui_groups();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let (group_id, vpc_id, ingress) = &groups[0];
    assert_eq!(vpc_id, &env.vpc_id, "the group is in the subnet's VPC");
    assert_eq!(ingress, &exactly_the_ui_ports());
    assert_eq!(first["ui_security_groups"][0]["group_id"], json!(group_id));
    assert_eq!(first["ui_security_groups"][0]["created"], json!(true));
    let tags = block(async {
        let described = env
            .ec2
            .describe_security_groups()
            .group_ids(group_id)
            .send()
            .await
            .unwrap();
        let mut tags: Vec<(String, String)> = described.security_groups()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
            .collect();
        tags.sort();
        tags
    });
    let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        tags,
        [
            tag("cost-center", "ads-analytics"),
            tag("emrship:ui-access", "match-rate"),
            tag("for-use-with-amazon-emr-managed-policies", "true"),
            tag("team", "ads"),
        ]
    );
    let first_cluster = first["cluster_id"].as_str().unwrap().to_string();
    assert_eq!(env.attached(&first_cluster), std::slice::from_ref(group_id));

    // Another run of the spec (its own cluster): the group is found, not doubled.
    let second = env.provision("2026-11-21");
    assert_eq!(second["ui_security_groups"][0]["created"], json!(false));
    assert_eq!(second["ui_security_groups"][0]["changes"], json!([]));
    let second_cluster = second["cluster_id"].as_str().unwrap().to_string();
    assert_ne!(first_cluster, second_cluster);
    assert_eq!(
        env.attached(&second_cluster),
        std::slice::from_ref(group_id)
    );
    assert_eq!(env.ui_groups().len(), 1);

    // Drift: a rule removed by hand, SSH opened to the world. The next provision (which
    // reuses the day's cluster) puts the group back to exactly the three ports.
    block(async {
        let rule = |port: i32, cidr: &str| {
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                .build()
        };
        env.ec2
            .revoke_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(rule(8088, CIDR))
            .send()
            .await
            .unwrap();
        env.ec2
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(rule(22, "0.0.0.0/0"))
            .send()
            .await
            .unwrap();
    });
    let third = env.provision("2026-11-21");
    assert_eq!(third["reused"], json!(true));
    assert_eq!(
        third["ui_security_groups"][0]["changes"],
        json!([
            format!("opened tcp port 8088 from {CIDR}"),
            "revoked tcp port 22 from 0.0.0.0/0"
        ])
    );
    assert_eq!(env.ui_groups()[0].2, exactly_the_ui_ports());

    // `down` ends the run's cluster and keeps the group (every run of the spec shares it).
    let output = env.emrship(&[
        "down",
        &env.spec(),
        "--date",
        "2026-11-20",
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let down = stdout_json(&output);
    assert_eq!(down["terminated"], json!([first_cluster]));
    assert_eq!(
        down["ui_security_groups"],
        json!([{ "group_id": group_id, "group_name": "emrship-match-rate-ui", "kept": true }])
    );
    let stderr = common::emr::stderr(&output);
    assert!(
        stderr.contains(&format!(
            "aws ec2 delete-security-group --group-id {group_id}"
        )),
        "{stderr}"
    );
    assert_eq!(env.ui_groups().len(), 1);

    // `terminate` by id finds the group among the cluster's and says the same.
    let output = env.emrship(&["terminate", &second_cluster, "--format", "json"]);
    assert_exit(&output, 0);
    let terminated = stdout_json(&output);
    assert_eq!(
        terminated["ui_security_groups"][0]["group_id"],
        json!(group_id)
    );
    assert_eq!(terminated["ui_security_groups"][0]["kept"], json!(true));
    assert_eq!(env.ui_groups()[0].2, exactly_the_ui_ports());
}

#[test]
fn dry_run_shows_the_group_and_calls_nothing() {
    let env = Env::new();
    let output = env.emrship(&[
        "provision",
        &env.spec(),
        "--date",
        "2026-11-20",
        "--dry-run",
        "--format",
        "json",
    ]);
    assert_exit(&output, 0);
    let would = stdout_json(&output);
    let group = &would["security_groups"][0];
    assert_eq!(group["group_name"], json!("emrship-match-rate-ui"));
    assert_eq!(group["tags"]["emrship:ui-access"], json!("match-rate"));
    // The EMR service role's managed policy launches only into groups with this tag.
    assert_eq!(
        group["tags"]["for-use-with-amazon-emr-managed-policies"],
        json!("true")
    );
    let ports: Vec<u64> = group["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [8088, 18080, 20888]);
    // The id is only known at launch: the rendered request carries none.
    assert!(would["run_job_flow"]["Instances"]
        .get("AdditionalMasterSecurityGroups")
        .is_none());
    assert!(env.ui_groups().is_empty());
}
