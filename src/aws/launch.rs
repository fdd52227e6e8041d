//! One day's launch behind the run-key guard: shared by the scheduler Lambda, `emrship run
//! --date` and `emrship backfill`.
//!
//! Every cluster emrship starts carries the tag `emrship:run-key=<job>/<date>`. Before
//! RunJobFlow the run key's clusters are looked up, ended ones included:
//!
//! - one that is **active** (STARTING, BOOTSTRAPPING, RUNNING, WAITING, or TERMINATING, which
//!   may still be finishing the day's work) → nothing is launched: `already-active`;
//! - one that **completed**: TERMINATED (not TERMINATED_WITH_ERRORS) with at least one step, every
//!   step COMPLETED → nothing is launched: `already-completed`. The steps decide, not the
//!   state-change reason: EMR says ALL_STEPS_COMPLETED for a transient cluster and
//!   USER_REQUEST for a long-running one ended by `emrship down` after its step completed, and
//!   also USER_REQUEST for a cluster terminated mid-run (whose steps are CANCELLED); moto
//!   gives no reason code at all;
//! - otherwise (no cluster, or only clusters that failed or were cut short) → RunJobFlow, and
//!   the clusters that ended without completing are named in the outcome (a re-run).
//!
//! Two launches of one day at once (a retried Lambda, two backfills) can both pass the guard;
//! after RunJobFlow each lists the run key's active clusters again and keeps the oldest
//! ([`keep_oldest`]): the launch that started a younger cluster terminates its own and reports
//! the oldest as `already-active`, so the day ends with one cluster.

use serde::Serialize;

use super::emr::{ClusterSummary, Emr, ACTIVE_CLUSTER_STATES};
use super::error::AwsError;
use crate::plan::Plan;
use crate::render::run_job_flow::RUN_KEY_TAG;
use crate::spec::JobPlan;

/// Why a launch did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LaunchError {
    /// The plan still points at `pending-build`: `emrship deploy` has not run for it.
    #[error(
        "the job bundle is not deployed: the plan points at {} (`pending-build`)",
        .pending.join(", ")
    )]
    NotDeployed { pending: Vec<String> },
    /// An EMR call failed; [`AwsError::transient`] says whether trying again may help.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Another launch won the race and terminating our duplicate cluster failed.
    #[error("{source}\nthe duplicate cluster {cluster} is still running")]
    DuplicateRunning { cluster: String, source: AwsError },
}

impl LaunchError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            LaunchError::NotDeployed { .. } => {
                Some("run `emrship deploy` for this spec first".into())
            }
            LaunchError::Aws(_) => None,
            LaunchError::DuplicateRunning { cluster, .. } => {
                Some(format!("terminate it with `emrship terminate {cluster}`"))
            }
        }
    }

    /// Trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            LaunchError::NotDeployed { .. } => false,
            LaunchError::Aws(e) | LaunchError::DuplicateRunning { source: e, .. } => e.transient,
        }
    }

    /// The error and its hint on one line (the scheduler Lambda's log).
    pub fn with_hint(&self) -> String {
        match self.hint() {
            Some(hint) => format!("{self}; {hint}"),
            None => self.to_string(),
        }
    }
}

/// The states the guard looks at: active, ending, and ended.
pub const GUARD_STATES: &[&str] = &[
    "STARTING",
    "BOOTSTRAPPING",
    "RUNNING",
    "WAITING",
    "TERMINATING",
    "TERMINATED",
    "TERMINATED_WITH_ERRORS",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Launched,
    AlreadyActive,
    AlreadyCompleted,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Launched => "launched",
            Decision::AlreadyActive => "already-active",
            Decision::AlreadyCompleted => "already-completed",
        }
    }
}

/// What the guard found for a run key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// The oldest active (or terminating) cluster.
    Active(ClusterSummary),
    /// A cluster that ended with every step completed.
    Completed(ClusterSummary),
    /// Nothing blocks a launch; `ended` are the run key's clusters that ended without
    /// completing (failed, or terminated before their steps were done), oldest first.
    Clear { ended: Vec<ClusterSummary> },
}

/// The outcome of one guarded launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Launch {
    pub decision: Decision,
    pub cluster_id: String,
    pub run_key: String,
    pub date: String,
    /// The existing cluster's state when the guard saw it (`None` for one launched now).
    pub state: Option<String>,
    /// Clusters of this run key that ended without completing (a launch after them is a re-run).
    pub previous_attempts: Vec<String>,
    /// A cluster this launch started and terminated because another launch of the same run
    /// key had started one first.
    pub terminated_duplicate: Option<String>,
}

/// Looks up the run key's clusters and decides whether a launch may go ahead.
pub async fn check_guard(emr: &Emr, run_key: &str) -> Result<Guard, AwsError> {
    let tagged = emr
        .clusters_tagged(GUARD_STATES, RUN_KEY_TAG, run_key)
        .await?;
    if let Some(active) = tagged
        .iter()
        .find(|c| ACTIVE_CLUSTER_STATES.contains(&c.state.as_str()) || c.state == "TERMINATING")
    {
        return Ok(Guard::Active(active.clone()));
    }
    let mut ended = Vec::new();
    for cluster in tagged {
        if cluster.state == "TERMINATED" {
            let steps = emr.steps(&cluster.id, &[]).await?;
            if !steps.is_empty() && steps.iter().all(|s| s.state == "COMPLETED") {
                return Ok(Guard::Completed(cluster));
            }
        }
        ended.push(cluster);
    }
    Ok(Guard::Clear { ended })
}

/// The outcome of [`keep_oldest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The cluster that serves the run key: ours, or an older one.
    pub cluster_id: String,
    /// Ours, terminated because an older one exists.
    pub terminated_duplicate: Option<String>,
}

/// Race safety after RunJobFlow: lists the run key's active clusters and keeps the oldest. If
/// that is not the one this process `started`, ours is terminated. Only our own cluster is ever
/// terminated, so a cluster someone else is using is never touched; every racer ends up
/// reporting the same, oldest cluster.
pub async fn keep_oldest(emr: &Emr, run_key: &str, started: String) -> Result<Kept, LaunchError> {
    let tagged = emr.active_clusters_tagged(RUN_KEY_TAG, run_key).await?;
    match tagged.first() {
        Some(oldest) if oldest.id != started && tagged.iter().any(|c| c.id == started) => {
            emr.terminate(std::slice::from_ref(&started))
                .await
                .map_err(|source| LaunchError::DuplicateRunning {
                    cluster: started.clone(),
                    source,
                })?;
            Ok(Kept {
                cluster_id: oldest.id.clone(),
                terminated_duplicate: Some(started),
            })
        }
        _ => Ok(Kept {
            cluster_id: started,
            terminated_duplicate: None,
        }),
    }
}

/// Refuses a plan whose bundle `emrship deploy` has not built (its URI says `pending-build`).
pub fn refuse_pending(plan: &Plan) -> Result<(), LaunchError> {
    let pending: Vec<String> = plan
        .uploads
        .iter()
        .filter(|u| u.pending)
        .map(|u| u.s3_uri.to_string())
        .collect();
    if pending.is_empty() {
        Ok(())
    } else {
        Err(LaunchError::NotDeployed { pending })
    }
}

/// The guard, then RunJobFlow with the plan's request, then [`keep_oldest`].
pub async fn launch_guarded(emr: &Emr, job: &JobPlan, plan: &Plan) -> Result<Launch, LaunchError> {
    refuse_pending(plan)?;
    let run_key = job.run_key();
    let date = job.date.format("%Y-%m-%d").to_string();
    let outcome = |decision, cluster: &ClusterSummary| Launch {
        decision,
        cluster_id: cluster.id.clone(),
        run_key: run_key.clone(),
        date: date.clone(),
        state: Some(cluster.state.clone()),
        previous_attempts: Vec::new(),
        terminated_duplicate: None,
    };
    let ended = match check_guard(emr, &run_key).await? {
        Guard::Active(cluster) => return Ok(outcome(Decision::AlreadyActive, &cluster)),
        Guard::Completed(cluster) => return Ok(outcome(Decision::AlreadyCompleted, &cluster)),
        Guard::Clear { ended } => ended,
    };
    let started = emr.run_job_flow(&plan.run_job_flow).await?;
    let kept = keep_oldest(emr, &run_key, started).await?;
    Ok(Launch {
        decision: if kept.terminated_duplicate.is_some() {
            Decision::AlreadyActive
        } else {
            Decision::Launched
        },
        cluster_id: kept.cluster_id,
        run_key,
        date,
        state: None,
        previous_attempts: ended.into_iter().map(|c| c.id).collect(),
        terminated_duplicate: kept.terminated_duplicate,
    })
}
