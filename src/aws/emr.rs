//! A thin adapter over aws-sdk-emr: launch a cluster from a rendered plan, find clusters by
//! run-key tag or name, add steps, read cluster and step states, terminate.
//!
//! Results come back as plain data ([`ClusterView`], [`StepView`], [`ClusterSummary`]) so the
//! commands and the watch logic never touch SDK types.

use aws_sdk_emr::types::{ClusterState, StepState};
use aws_sdk_emr::Client;

use super::emr_request;
use super::error::{sdk_error, AwsError};
use crate::render::run_job_flow::RunJobFlowRequest;
use crate::render::steps::StepConfig;

/// Clusters that may still run steps: everything before TERMINATING.
pub const ACTIVE_CLUSTER_STATES: &[&str] = &["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepView {
    pub id: String,
    pub name: String,
    pub state: String,
    /// Why it is in this state (EMR's FailureDetails or StateChangeReason message), if said.
    pub reason: Option<String>,
    /// When it started and ended, in seconds since the epoch (`None` until it does).
    pub started: Option<i64>,
    pub ended: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub id: String,
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    /// Every step of the cluster, newest first (as ListSteps returns them).
    pub steps: Vec<StepView>,
    /// `Ec2InstanceAttributes.AdditionalMasterSecurityGroups`: the UI group, when attached.
    pub additional_master_security_groups: Vec<String>,
}

/// A cluster as ListClusters shows it, with its creation time for "which came first".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSummary {
    pub id: String,
    pub name: String,
    pub state: String,
    /// Seconds and nanoseconds since the epoch (0 when EMR did not say).
    pub created: (i64, u32),
}

/// Sends of AddJobFlowSteps before giving up (each preceded by a check that EMR did not
/// already act on the previous one).
const ADD_STEPS_ATTEMPTS: u32 = 6;

/// The ids of `wanted`, in order, among the steps that appeared since `before` (`now` is newest
/// first, as ListSteps returns it); `None` when EMR shows no such steps.
fn added_by_us(
    before: &std::collections::HashSet<String>,
    now: &[StepView],
    wanted: &[StepConfig],
) -> Option<Vec<String>> {
    let mut new_oldest_first = now.iter().rev().filter(|step| !before.contains(&step.id));
    let mut ids = Vec::with_capacity(wanted.len());
    for step in wanted {
        let found = new_oldest_first.find(|candidate| candidate.name == step.name)?;
        ids.push(found.id.clone());
    }
    Some(ids)
}

pub struct Emr {
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

impl Emr {
    pub fn new(config: &aws_config::SdkConfig) -> Emr {
        Emr {
            client: Client::new(config),
        }
    }

    /// RunJobFlow with exactly the rendered request; returns the new cluster's id.
    pub async fn run_job_flow(&self, request: &RunJobFlowRequest) -> Result<String, AwsError> {
        let input = emr_request::run_job_flow_input(request)
            .map_err(|e| invalid("RunJobFlow", e.to_string()))?;
        let output = emr_request::apply_run_job_flow(self.client.run_job_flow(), input)
            .send()
            .await
            .map_err(sdk_error("RunJobFlow"))?;
        output
            .job_flow_id()
            .map(str::to_string)
            .ok_or_else(|| invalid("RunJobFlow", "EMR returned no JobFlowId".into()))
    }

    /// Active clusters (not terminating or terminated), every page.
    pub async fn active_clusters(&self) -> Result<Vec<ClusterSummary>, AwsError> {
        self.clusters_in(ACTIVE_CLUSTER_STATES).await
    }

    /// Clusters in one of `states`, every page. (EMR lists ended clusters for two months.)
    pub async fn clusters_in(&self, states: &[&str]) -> Result<Vec<ClusterSummary>, AwsError> {
        let states: Vec<ClusterState> = states.iter().map(|s| ClusterState::from(*s)).collect();
        let mut pages = self
            .client
            .list_clusters()
            .set_cluster_states(Some(states))
            .into_paginator()
            .items()
            .send();
        let mut clusters = Vec::new();
        while let Some(item) = pages.next().await {
            let cluster = item.map_err(sdk_error("ListClusters"))?;
            let status = cluster.status();
            let created = status
                .and_then(|s| s.timeline())
                .and_then(|t| t.creation_date_time())
                .map_or((0, 0), |t| (t.secs(), t.subsec_nanos()));
            clusters.push(ClusterSummary {
                id: cluster.id().unwrap_or_default().to_string(),
                name: cluster.name().unwrap_or_default().to_string(),
                state: status
                    .and_then(|s| s.state())
                    .map_or_else(String::new, |s| s.as_str().to_string()),
                created,
            });
        }
        Ok(clusters)
    }

    /// Active clusters carrying the tag `key=value`, oldest first. ListClusters does not show
    /// tags, so each active cluster is described (accounts rarely run more than a few dozen).
    pub async fn active_clusters_tagged(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ClusterSummary>, AwsError> {
        self.clusters_tagged(ACTIVE_CLUSTER_STATES, key, value)
            .await
    }

    /// Clusters in one of `states` carrying the tag `key=value`, oldest first.
    pub async fn clusters_tagged(
        &self,
        states: &[&str],
        key: &str,
        value: &str,
    ) -> Result<Vec<ClusterSummary>, AwsError> {
        let mut tagged = Vec::new();
        for cluster in self.clusters_in(states).await? {
            let described = self
                .client
                .describe_cluster()
                .cluster_id(&cluster.id)
                .send()
                .await
                .map_err(sdk_error("DescribeCluster"))?;
            let carries = described.cluster().is_some_and(|c| {
                c.tags()
                    .iter()
                    .any(|t| t.key() == Some(key) && t.value() == Some(value))
            });
            if carries {
                tagged.push(cluster);
            }
        }
        tagged.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(tagged)
    }

    /// The cluster's state and every step's state.
    pub async fn cluster_view(&self, cluster_id: &str) -> Result<ClusterView, AwsError> {
        let described = self
            .client
            .describe_cluster()
            .cluster_id(cluster_id)
            .send()
            .await
            .map_err(sdk_error("DescribeCluster"))?;
        let cluster = described
            .cluster()
            .ok_or_else(|| invalid("DescribeCluster", format!("no cluster {cluster_id}")))?;
        let status = cluster.status();
        Ok(ClusterView {
            id: cluster.id().unwrap_or(cluster_id).to_string(),
            name: cluster.name().unwrap_or_default().to_string(),
            state: status
                .and_then(|s| s.state())
                .map_or_else(String::new, |s| s.as_str().to_string()),
            reason: status
                .and_then(|s| s.state_change_reason())
                .and_then(|r| r.message())
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            steps: self.steps(cluster_id, &[]).await?,
            additional_master_security_groups: cluster
                .ec2_instance_attributes()
                .map(|a| a.additional_master_security_groups().to_vec())
                .unwrap_or_default(),
        })
    }

    /// The cluster's steps, newest first; only those in `states` unless it is empty.
    pub async fn steps(
        &self,
        cluster_id: &str,
        states: &[&str],
    ) -> Result<Vec<StepView>, AwsError> {
        let mut pages = self
            .client
            .list_steps()
            .cluster_id(cluster_id)
            .set_step_states(
                (!states.is_empty()).then(|| states.iter().map(|s| StepState::from(*s)).collect()),
            )
            .into_paginator()
            .items()
            .send();
        let mut steps = Vec::new();
        while let Some(item) = pages.next().await {
            let step = item.map_err(sdk_error("ListSteps"))?;
            let status = step.status();
            // FailureDetails says why a step failed (and where its log is); the state change
            // reason is all there is for cancellations.
            let failure = status
                .and_then(|s| s.failure_details())
                .and_then(|f| f.message().or(f.reason()))
                .filter(|m| !m.is_empty());
            let change = status
                .and_then(|s| s.state_change_reason())
                .and_then(|r| r.message())
                .filter(|m| !m.is_empty());
            let timeline = status.and_then(|s| s.timeline());
            steps.push(StepView {
                id: step.id().unwrap_or_default().to_string(),
                name: step.name().unwrap_or_default().to_string(),
                state: status
                    .and_then(|s| s.state())
                    .map_or_else(String::new, |s| s.as_str().to_string()),
                reason: failure.or(change).map(str::to_string),
                started: timeline.and_then(|t| t.start_date_time()).map(|t| t.secs()),
                ended: timeline.and_then(|t| t.end_date_time()).map(|t| t.secs()),
            });
        }
        Ok(steps)
    }

    /// AddJobFlowSteps, at most once; returns the new steps' ids in order.
    ///
    /// AddJobFlowSteps takes no idempotency token: when EMR adds the steps but the answer is
    /// lost (a dropped connection, a timeout), an SDK retry adds them again and the job runs
    /// twice. So the call goes out with the SDK's retries off, and after any failure the
    /// cluster's steps are listed: new steps (absent from the listing taken before the call)
    /// with our names are what our call added. Only when EMR shows none is the call sent
    /// again, with backoff, and only for errors that may pass.
    pub async fn add_steps(
        &self,
        cluster_id: &str,
        steps: &[StepConfig],
    ) -> Result<Vec<String>, AwsError> {
        let configs = emr_request::step_configs(steps)
            .map_err(|e| invalid("AddJobFlowSteps", e.to_string()))?;
        let before: std::collections::HashSet<String> = self
            .steps(cluster_id, &[])
            .await?
            .into_iter()
            .map(|step| step.id)
            .collect();
        let mut delay = std::time::Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            let sent = self
                .client
                .add_job_flow_steps()
                .job_flow_id(cluster_id)
                .set_steps(Some(configs.clone()))
                .customize()
                .config_override(
                    aws_sdk_emr::config::Builder::default()
                        .retry_config(aws_sdk_emr::config::retry::RetryConfig::disabled()),
                )
                .send()
                .await;
            let err = match sent {
                Ok(output) => return Ok(output.step_ids().to_vec()),
                Err(err) => AwsError::from_sdk("AddJobFlowSteps", err),
            };
            let added = added_by_us(&before, &self.steps(cluster_id, &[]).await?, steps);
            if let Some(ids) = added {
                return Ok(ids);
            }
            if !err.transient || attempt >= ADD_STEPS_ATTEMPTS {
                return Err(err);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
            attempt += 1;
        }
    }

    pub async fn terminate(&self, cluster_ids: &[String]) -> Result<(), AwsError> {
        self.client
            .terminate_job_flows()
            .set_job_flow_ids(Some(cluster_ids.to_vec()))
            .send()
            .await
            .map_err(sdk_error("TerminateJobFlows"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::steps::HadoopJarStep;

    fn step(id: &str, name: &str) -> StepView {
        StepView {
            id: id.into(),
            name: name.into(),
            state: "PENDING".into(),
            ..StepView::default()
        }
    }

    fn config(name: &str) -> StepConfig {
        StepConfig {
            name: name.into(),
            action_on_failure: "CONTINUE",
            hadoop_jar_step: HadoopJarStep {
                jar: "command-runner.jar".into(),
                args: vec!["true".into()],
            },
        }
    }

    #[test]
    fn steps_added_since_the_listing_are_ours_in_order() {
        let before = ["s-OLD".to_string()].into_iter().collect();
        // Newest first, as ListSteps answers; an older step of the same name is not ours.
        let now = [
            step("s-B", "second"),
            step("s-A", "first"),
            step("s-OLD", "first"),
        ];
        assert_eq!(
            added_by_us(&before, &now, &[config("first"), config("second")]),
            Some(vec!["s-A".to_string(), "s-B".to_string()])
        );
        assert_eq!(
            added_by_us(&before, &now[2..], &[config("first")]),
            None,
            "nothing new: the call must be sent again"
        );
    }
}
