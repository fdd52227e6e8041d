//! The page-view rollup job (Parse.ly's hourly rollup): events → one document per
//! (customer, url, hour) with page views, distinct visitors and referrer counts.
//!
//! - [`gen`]: `emrship-job gen rollup`, the synthetic events.

pub mod gen;
