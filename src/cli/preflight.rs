//! Checks a command makes before its first AWS call, shared by every command that sends a
//! plan (`provision`, `submit`, `run --date`, `backfill`, `schedule`).

use super::{CliError, Printer};
use crate::plan::Plan;

/// Refuses a plan whose bundle `emrship deploy` has not built yet (one message for every
/// command: `aws::launch::refuse_pending`, which the scheduler Lambda applies too); a dry run,
/// which sends nothing so showing the plan is still useful, only warns.
pub fn refuse_pending(
    plan: &Plan,
    spec_hint: &str,
    dry_run: bool,
    out: Printer,
) -> Result<(), CliError> {
    let Err(not_deployed) = crate::aws::launch::refuse_pending(plan) else {
        return Ok(());
    };
    let hint = format!(
        "run `emrship deploy {spec_hint}` (same overlays, --set values and --date) first, then \
         run this again from the same folder"
    );
    if dry_run {
        out.warn(&format!("{not_deployed}; {hint}"));
        Ok(())
    } else {
        Err(CliError::failure(not_deployed.to_string()).with_hint(hint))
    }
}
