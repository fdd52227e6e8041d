//! Scheduled runs: the plan template `emrship schedule` stores and the scheduler Lambda reads.
//!
//! `template` is pure (no I/O, no AWS SDK), like `spec` and `plan`; `handler` is the Lambda's
//! logic on the AWS SDK.

pub mod template;

pub use template::{run_date, PlanTemplate};
#[cfg(any(feature = "aws", feature = "lambda"))]
pub mod handler;
