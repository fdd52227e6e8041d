//! Snapshots of every artifact `emrship plan` renders for every example spec. A change here is
//! a change to what emrship sends to AWS or runs on a cluster: review each one.

mod common;

use common::{plan_example, EXAMPLES};

#[test]
fn every_example_renders_every_artifact() {
    for (case, spec, overlays) in EXAMPLES {
        let plan = plan_example(spec, overlays);
        insta::with_settings!({ snapshot_suffix => *case, omit_expression => true }, {
            insta::assert_json_snapshot!("run_job_flow", plan.run_job_flow);
            insta::assert_json_snapshot!("add_job_flow_steps", plan.add_job_flow_steps);
            insta::assert_json_snapshot!("iam", plan.iam);
            insta::assert_json_snapshot!("uploads", plan.uploads);
            insta::assert_json_snapshot!("security_groups", plan.security_groups);
            insta::assert_json_snapshot!("schedule", plan.schedule);
            insta::assert_json_snapshot!("warnings", plan.warnings);
            insta::assert_snapshot!("summary", plan.to_string());
            for file in &plan.rendered_files {
                insta::assert_snapshot!(file.name, file.text);
            }
        });
    }
}

#[test]
fn same_inputs_give_byte_identical_json() {
    for (_, spec, overlays) in EXAMPLES {
        let first = serde_json::to_string_pretty(&plan_example(spec, overlays)).unwrap();
        let second = serde_json::to_string_pretty(&plan_example(spec, overlays)).unwrap();
        assert_eq!(first, second, "{spec}");
    }
}

#[test]
fn plan_json_has_the_documented_top_level_keys() {
    let plan = plan_example("job-specs/match-rate.yaml", &[]);
    let json = serde_json::to_value(&plan).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "run_job_flow",
            "add_job_flow_steps",
            "iam",
            "uploads",
            "security_groups",
            "sizing",
            "schedule",
            "warnings"
        ]
    );
}

#[test]
fn the_step_submit_args_match_spark_defaults_sizing() {
    // The step passes sizing explicitly and spark-defaults carries it for interactive use:
    // both must say the same thing.
    let plan = plan_example("job-specs/match-rate.yaml", &["job-specs/envs/prod.yaml"]);
    let args = &plan.add_job_flow_steps.steps[0].hadoop_jar_step.args;
    let defaults = plan
        .run_job_flow
        .configurations
        .iter()
        .find(|c| c.classification == "spark-defaults")
        .unwrap();
    let value_after = |flag: &str| {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1].clone()
    };
    assert_eq!(
        value_after("--num-executors"),
        defaults.properties["spark.executor.instances"]
    );
    assert_eq!(
        value_after("--executor-memory"),
        defaults.properties["spark.executor.memory"]
    );
    assert_eq!(
        value_after("--executor-cores"),
        defaults.properties["spark.executor.cores"]
    );
    assert!(
        args.iter().all(|a| !a.is_empty()),
        "command-runner.jar drops empty args"
    );
}

#[test]
fn the_bootstrap_script_is_valid_bash() {
    for (_, spec, overlays) in EXAMPLES {
        let plan = plan_example(spec, overlays);
        let scripts: Vec<_> = plan
            .rendered_files
            .iter()
            .filter(|f| f.name.ends_with(".sh"))
            .collect();
        assert!(!scripts.is_empty(), "{spec} has no bootstrap script");
        for script in scripts {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(script.name);
            std::fs::write(&path, &script.text).unwrap();
            let status = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .status()
                .unwrap();
            assert!(
                status.success(),
                "bash -n rejects the bootstrap script {} of {spec}",
                script.name
            );
        }
    }
}
