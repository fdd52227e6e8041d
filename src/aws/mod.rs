//! The AWS edge: where rendered requests meet the AWS SDK for Rust.
//!
//! Everything under `crate::render` and `crate::plan` stays free of the SDK so `emrship plan`
//! builds and runs without it; this module (behind the default `aws` feature) converts those
//! requests into the SDK's input types.

pub mod emr;
pub mod emr_logs;
pub mod emr_request;
pub mod error;
pub mod events;
pub mod iam;
pub mod lambda;
pub mod s3;
pub mod sdk;
