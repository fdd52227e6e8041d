//! `emrship size`: executor sizing for one instance type, with the arithmetic.

use std::process::ExitCode;

use super::{DeployModeArg, OutputFormat, SizeArgs, EXIT_SPEC_ERROR};
use crate::sizing::{self, DeployMode, Workload};
use crate::spec::diagnostics::did_you_mean;

pub fn run(args: SizeArgs) -> ExitCode {
    if args.list {
        for t in sizing::catalog::all() {
            println!(
                "{:<14} {:>3} vCPU {:>4} GiB  YARN {:>7} MiB  {}",
                t.name, t.vcpu, t.memory_gib, t.yarn_memory_mib, t.arch
            );
        }
        return ExitCode::SUCCESS;
    }
    let name = args.instance_type.unwrap_or_default();
    let Some(instance) = sizing::catalog::lookup(&name) else {
        let hint = did_you_mean(&name, sizing::catalog::all().iter().map(|t| t.name))
            .map(|s| format!(" Did you mean `{s}`?"))
            .unwrap_or_default();
        eprintln!("error: unknown instance type `{name}`.{hint} `emrship size --list` shows the known types.");
        return ExitCode::from(EXIT_SPEC_ERROR);
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
    match sizing::size_auto(instance, args.count, deploy_mode, workload) {
        Ok(result) => {
            match args.format {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&result).expect("sizing always serializes")
                ),
                OutputFormat::Text => {
                    for line in &result.arithmetic {
                        println!("{line}");
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("error: {problem}");
            ExitCode::from(EXIT_SPEC_ERROR)
        }
    }
}
