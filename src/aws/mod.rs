//! The AWS edge: where rendered requests meet the AWS SDK for Rust.
//!
//! Everything under `crate::render` and `crate::plan` stays free of the SDK so `emrship plan`
//! builds and runs without it; this module (behind the default `aws` feature) converts those
//! requests into the SDK's input types.

pub mod change;
#[cfg(feature = "aws")]
pub mod ec2;
pub mod emr;
#[cfg(feature = "aws")]
pub mod emr_logs;
pub mod emr_request;
pub mod error;
#[cfg(feature = "aws")]
pub mod events;
#[cfg(feature = "aws")]
pub mod iam;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod launch;
pub mod s3;
pub mod sdk;
