//! emrship: infrastructure as code for Spark jobs on Amazon EMR.
//!
//! `spec`, `sizing`, `render` and `plan` are pure: no I/O, no AWS SDK, so `emrship plan` works
//! offline and every artifact it renders is deterministic and snapshot-tested. `cli` is the
//! edge that reads files and prints; `edge` is what both binaries show their user (one error
//! type, one printer, the exit statuses).

#[cfg(any(feature = "aws", feature = "lambda"))]
pub mod aws;
#[cfg(feature = "aws")]
pub mod bundle;
#[cfg(all(feature = "aws", feature = "job"))]
pub mod cli;
pub mod diagnose;
pub mod edge;
#[cfg(feature = "job")]
pub mod job;
pub mod plan;
pub mod render;
pub mod schedule;
pub mod sizing;
pub mod spec;
