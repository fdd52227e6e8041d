//! Shared by the integration tests: the example specs and how to plan them without the CLI.

#![allow(dead_code)]

#[cfg(feature = "aws")]
pub mod elf;
#[cfg(feature = "aws")]
pub mod emr;
pub mod fault_proxy;
pub mod moto;
#[cfg(feature = "job")]
pub mod postgres;
#[cfg(feature = "aws")]
pub mod project;
pub mod rng;
#[cfg(feature = "job")]
pub mod rollup_files;
#[cfg(all(feature = "aws", feature = "job"))]
pub mod spark;

use std::path::Path;

use chrono::NaiveDate;
use emrship::plan::Plan;
use emrship::render::artifacts::PlanInputs;
use emrship::spec::{self, LayerText, RunContext};

/// The run date every snapshot is taken for.
pub fn run_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

/// Each example spec, with the overlays it is documented with: (case name, spec, overlays).
pub const EXAMPLES: &[(&str, &str, &[&str])] = &[
    ("match-rate", "job-specs/match-rate.yaml", &[]),
    (
        "match-rate-dev",
        "job-specs/match-rate.yaml",
        &["job-specs/envs/dev.yaml"],
    ),
    (
        "match-rate-prod",
        "job-specs/match-rate.yaml",
        &["job-specs/envs/prod.yaml"],
    ),
    ("pageview-rollup", "job-specs/pageview-rollup.yaml", &[]),
    ("streaming-events", "job-specs/streaming-events.yaml", &[]),
    ("pyspark-app", "job-specs/pyspark-app.yaml", &[]),
];

pub fn layer(path: &str) -> LayerText {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    LayerText {
        name: path.to_string(),
        text: std::fs::read_to_string(&full)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display())),
    }
}

/// Plans an example as `emrship plan --date 2026-11-20` would before `deploy` (bundle pending).
pub fn plan_example(spec_path: &str, overlays: &[&str]) -> Plan {
    let overlays: Vec<LayerText> = overlays.iter().map(|p| layer(p)).collect();
    let (job, diagnostics) = spec::load_and_resolve(
        &layer(spec_path),
        &overlays,
        &[],
        RunContext { date: run_date() },
    )
    .unwrap_or_else(|d| panic!("{spec_path} does not resolve:\n{}", d.render()));
    let warnings = diagnostics.warnings().map(|d| d.one_line()).collect();
    // A user's application is read from disk as `emrship plan` reads it (dependencies pending).
    let app = job.job.app.as_ref().map(|_| {
        let spec_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(spec_path);
        emrship::bundle::user_app::pack(&job, spec_dir.parent().unwrap())
            .unwrap_or_else(|_| panic!("{spec_path}: its application cannot be read"))
            .inputs
            .expect("a packed application has inputs")
    });
    let inputs = PlanInputs {
        app,
        ..PlanInputs::default()
    };
    emrship::plan::build(&job, &inputs, warnings)
}
