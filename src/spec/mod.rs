//! Job specs: load the layers, check them, resolve them into a [`JobPlan`].
//!
//! Pure: callers pass file texts in, nothing here touches the disk or the network.

pub mod commands;
pub mod diagnostics;
pub mod duration;
pub mod job_plan;
pub mod load;
pub mod raw;
pub mod release;
pub mod resolve;
pub mod s3;
pub mod schedule;
pub mod source;

pub use diagnostics::{Diagnostics, Severity, SpecDiagnostic, SpecErrors};
pub use job_plan::JobPlan;
pub use load::LayerText;
pub use resolve::RunContext;

/// Loads, merges and checks a spec with its overlays and `--set` values.
///
/// On success returns the plan and the warnings; on failure every problem found.
pub fn load_and_resolve(
    base: &LayerText,
    overlays: &[LayerText],
    sets: &[String],
    context: RunContext,
) -> Result<(JobPlan, Diagnostics), Diagnostics> {
    let mut diagnostics = Diagnostics::default();
    let Some(mut loaded) = load::load(base, overlays, sets, &mut diagnostics) else {
        return Err(diagnostics);
    };
    match resolve::resolve(&mut loaded, context, &mut diagnostics) {
        Some(plan) if !diagnostics.has_errors() => Ok((plan, diagnostics)),
        _ => Err(diagnostics),
    }
}
