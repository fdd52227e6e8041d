//! `emrship plan`: read the spec files and local inputs, then print the rendered plan.

use super::{CliError, CommandResult, ExitStatus, OutputFormat, PlanArgs, Printer, SpecArgs};
use crate::render::artifacts::{Digest256, PlanInputs};
use crate::schedule::PlanTemplate;
use crate::spec::{self, Diagnostics, LayerText, RunContext};
use std::path::{Path, PathBuf};

/// A spec or overlay file's text, named by its path for diagnostics.
pub fn read_layer(path: &Path) -> Result<LayerText, CliError> {
    std::fs::read_to_string(path)
        .map(|text| LayerText {
            name: path.display().to_string(),
            text,
        })
        .map_err(|e| CliError::failure(format!("cannot read {}: {e}", path.display())))
}

/// A resolved spec and the plan rendered from it.
pub struct LoadedPlan {
    pub job: crate::spec::JobPlan,
    pub plan: crate::plan::Plan,
    /// The folder of the spec file: job files are relative to it.
    pub spec_dir: PathBuf,
    /// A user's application, read and packed (its bytes by sha256, for deploy).
    pub app: Option<crate::bundle::user_app::PackedApp>,
}

/// Everything `plan` needs from disk: spec layers, job files, and a built bundle if any. Spec
/// warnings are printed; spec errors are the error (exit 2).
pub fn load_plan(args: &SpecArgs, out: Printer) -> Result<LoadedPlan, CliError> {
    load_plan_with_bundle(args, None, out)
}

/// As `load_plan`, with the bundle digest known (deploy builds the bundle first); `None` looks
/// for a bundle built earlier at target/emrship/<name>/bundle.zip.
pub fn load_plan_with_bundle(
    args: &SpecArgs,
    bundle: Option<Digest256>,
    out: Printer,
) -> Result<LoadedPlan, CliError> {
    load_layers_and_plan(args, bundle, out).map(|read| read.loaded)
}

/// As `load_plan`, and the plan template that renders the same plan for any date (what
/// `emrship schedule` stores for the scheduler Lambda).
pub fn load_template(
    args: &SpecArgs,
    out: Printer,
) -> Result<(LoadedPlan, PlanTemplate), CliError> {
    let read = load_layers_and_plan(args, None, out)?;
    let template = PlanTemplate::from_layers(
        &read.base,
        &read.overlays,
        &args.layers.sets,
        &read.inputs,
        &read.loaded.job,
    );
    Ok((read.loaded, template))
}

/// The plan and what it was built from (what a plan template records).
struct LayersAndPlan {
    loaded: LoadedPlan,
    base: LayerText,
    overlays: Vec<LayerText>,
    inputs: PlanInputs,
}

fn load_layers_and_plan(
    args: &SpecArgs,
    bundle: Option<Digest256>,
    out: Printer,
) -> Result<LayersAndPlan, CliError> {
    load_layers_and_plan_with(args, bundle, None, out)
}

/// As `load_plan`, with the digest of a user application's dependency archive as `deploy`
/// just built it.
pub fn load_plan_with_dependencies(
    args: &SpecArgs,
    dependencies: Option<Digest256>,
    out: Printer,
) -> Result<LoadedPlan, CliError> {
    load_layers_and_plan_with(args, None, dependencies, out).map(|read| read.loaded)
}

fn load_layers_and_plan_with(
    args: &SpecArgs,
    bundle: Option<Digest256>,
    dependencies: Option<Digest256>,
    out: Printer,
) -> Result<LayersAndPlan, CliError> {
    let base = read_layer(&args.spec)?;
    let overlays = args
        .layers
        .overlays
        .iter()
        .map(|p| read_layer(p))
        .collect::<Result<Vec<_>, _>>()?;
    let date = args
        .date
        .unwrap_or_else(|| chrono::Utc::now().date_naive() - chrono::Days::new(1));
    let (job, diagnostics) =
        spec::load_and_resolve(&base, &overlays, &args.layers.sets, RunContext { date })
            .map_err(|diagnostics| CliError::spec(&diagnostics))?;
    if !diagnostics.is_empty() {
        out.info_text(&diagnostics.render());
    }
    let spec_dir = args
        .spec
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut inputs = PlanInputs::default();
    let mut missing = Vec::new();
    for (i, file) in job.job.files.iter().enumerate() {
        let local: PathBuf = spec_dir.join(&file.spec_path);
        match std::fs::read(&local) {
            Ok(bytes) => inputs
                .job_files
                .push((local.display().to_string(), Digest256::of(&bytes))),
            Err(e) => missing.push(format!(
                "job.files[{i}]: cannot read {} ({e}); paths are relative to the spec file's folder",
                local.display()
            )),
        }
    }
    for action in &job.cluster.bootstrap {
        if let crate::spec::job_plan::BootstrapScript::Local(path) = &action.script {
            let local = spec_dir.join(&path.path);
            match std::fs::read(&local) {
                Ok(bytes) => inputs.bootstrap_scripts.push(Digest256::of(&bytes)),
                Err(e) => missing.push(format!(
                    "{}cluster.bootstrap: cannot read {} ({e}); a local bootstrap script's path is relative to the spec file's folder",
                    path.origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default(),
                    local.display()
                )),
            }
        }
    }
    if !missing.is_empty() {
        return Err(CliError::invalid(missing.join("\n")));
    }
    let app = match &job.job.app {
        None => None,
        Some(_) => {
            let mut packed =
                crate::bundle::user_app::pack(&job, &spec_dir).map_err(|problems| {
                    let mut found = Diagnostics::default();
                    for problem in problems {
                        found.push(problem);
                    }
                    CliError::spec(&found)
                })?;
            let built = dependencies
                .clone()
                .or_else(|| crate::bundle::user_app::deployed_dependencies(&job, &packed));
            if let Some(app_inputs) = packed.inputs.as_mut() {
                app_inputs.dependencies = built;
            }
            inputs.app = packed.inputs.clone();
            Some(packed)
        }
    };
    inputs.bundle = bundle.or_else(|| {
        let built = PathBuf::from(format!("target/emrship/{}/bundle.zip", job.name));
        std::fs::read(&built)
            .ok()
            .map(|bytes| Digest256::of(&bytes))
    });
    let warnings = diagnostics.warnings().map(|d| d.one_line()).collect();
    let plan = crate::plan::build(&job, &inputs, warnings);
    Ok(LayersAndPlan {
        loaded: LoadedPlan {
            job,
            plan,
            spec_dir,
            app,
        },
        base,
        overlays,
        inputs,
    })
}

pub fn run(args: PlanArgs, out: Printer) -> CommandResult {
    let LoadedPlan { plan, .. } = load_plan(&args.spec, out)?;
    match args.stdout.format {
        OutputFormat::Text => out.data_text(&plan.to_string())?,
        OutputFormat::Json => out.json(&plan)?,
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template renders, for any date, byte for byte what `emrship plan --date` renders.
    #[test]
    fn the_template_plans_each_day_as_plan_does() {
        let spec = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/job-specs/match-rate.yaml"
        ));
        let prod = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/job-specs/envs/prod.yaml"
        ));
        let args = |date| SpecArgs {
            spec: spec.clone(),
            layers: crate::cli::SpecLayers {
                overlays: vec![prod.clone()],
                sets: vec!["cluster.core.count=5".into()],
            },
            date: Some(date),
        };
        let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let (_, template) = load_template(&args(first), Printer::new()).unwrap();
        let template = PlanTemplate::parse(&template.to_json(), "test").unwrap();
        for date in [first, chrono::NaiveDate::from_ymd_opt(2027, 2, 28).unwrap()] {
            let expected = load_plan(&args(date), Printer::new()).unwrap();
            let (job, plan) = template.plan_for(date).unwrap();
            assert_eq!(job.run_key(), expected.job.run_key());
            assert_eq!(
                serde_json::to_string_pretty(&plan).unwrap(),
                serde_json::to_string_pretty(&expected.plan).unwrap(),
                "{date}"
            );
        }
    }
}
