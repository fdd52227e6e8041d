//! Pure renderers: checked job plan → configurations, step args, scripts, RunJobFlow, IAM.
//! No I/O and no AWS SDK here; adapters turn these values into SDK calls.

pub mod app_steps;
pub mod artifacts;
pub mod configurations;
pub mod iam;
pub mod run_job_flow;
pub mod schedule;
pub mod scripts;
pub mod security_group;
pub mod steps;
