//! `emrship size`: executor sizing for one instance type, with the arithmetic.

use super::{CliError, CommandResult, DeployModeArg, ExitStatus, OutputFormat, Printer, SizeArgs};
use crate::sizing::{self, DeployMode, Workload};
use crate::spec::diagnostics::did_you_mean;

pub fn run(args: SizeArgs, out: Printer) -> CommandResult {
    if args.list {
        for t in sizing::catalog::all() {
            out.data(&format!(
                "{:<14} {:>3} vCPU {:>4} GiB  YARN {:>7} MiB  {}",
                t.name, t.vcpu, t.memory_gib, t.yarn_memory_mib, t.arch
            ))?;
        }
        return Ok(ExitStatus::Success);
    }
    let name = args.instance_type.unwrap_or_default();
    let Some(instance) = sizing::catalog::lookup(&name) else {
        let mut error = CliError::invalid(format!("unknown instance type `{name}`"));
        if let Some(near) = did_you_mean(&name, sizing::catalog::all().iter().map(|t| t.name)) {
            error = error.with_hint(format!("Did you mean `{near}`?"));
        }
        return Err(error.with_hint("`emrship size --list` shows the known types"));
    };
    let deploy_mode = match args.deploy_mode {
        DeployModeArg::Cluster => DeployMode::Cluster,
        DeployModeArg::Client => DeployMode::Client,
    };
    let workload = if args.native {
        Workload::Native
    } else {
        Workload::Jvm
    };
    let result = sizing::size_auto(instance, args.count, deploy_mode, workload)
        .map_err(|problem| CliError::invalid(problem.to_string()))?;
    match args.stdout.format {
        OutputFormat::Json => out.json(&result)?,
        OutputFormat::Text => {
            for line in &result.arithmetic {
                out.data(line)?;
            }
        }
    }
    Ok(ExitStatus::Success)
}
