//! The spec of a user's own application (`job.pyspark`, `job.jar`, `job.executable`): what it
//! resolves to, and one test per rule with its exact message and position.

use chrono::NaiveDate;
use emrship::spec::job_plan::{AppKind, JarRef};
use emrship::spec::{load_and_resolve, Diagnostics, JobPlan, LayerText, RunContext};

const FILE: &str = "job-specs/app.yaml";

const HEAD: &str = r#"name: sales
region: us-east-1
release: emr-7.5.0
log_uri: s3://example-analytics/emr-logs/
artifacts: s3://example-analytics/emrship/
cluster:
  master: { instance_type: m5.xlarge }
  core: { instance_type: m5.2xlarge, count: 2 }
"#;

fn resolve(text: &str) -> Result<(JobPlan, Diagnostics), Diagnostics> {
    load_and_resolve(
        &LayerText {
            name: FILE.into(),
            text: text.into(),
        },
        &[],
        &[],
        RunContext {
            date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        },
    )
}

fn spec(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

/// The error codes, sorted, and each error as one line (`file:line:col: message (help: …)`);
/// panics when the spec resolves.
fn errors(text: &str) -> (Vec<&'static str>, String) {
    let diagnostics = resolve(text).expect_err("the spec should not resolve");
    let mut codes: Vec<&'static str> = diagnostics.errors().map(|d| d.code).collect();
    codes.sort_unstable();
    let lines: Vec<String> = diagnostics.errors().map(|d| d.one_line()).collect();
    (codes, lines.join("\n"))
}

const PYSPARK: &str = r#"job:
  pyspark:
    project: app
    main: main.py
    modules: [sales, helpers.py]
    files: [conf, data/lookup.csv]
    requirements: requirements.txt
  args:
    - --date
    - "{{date}}"
    - --input
    - input: s3://example-raw/orders/dt={{date}}/
    - --output
    - output: s3://example-analytics/reports/dt={{date}}/
"#;

#[test]
fn a_pyspark_application_resolves_with_its_pieces_args_and_grants() {
    let (plan, _) = resolve(&spec(PYSPARK)).unwrap_or_else(|d| panic!("{}", d.render()));
    let app = plan.job.app.as_ref().expect("a user application");
    assert_eq!(app.project, "app");
    let AppKind::PySpark {
        main,
        modules,
        requirements,
        python,
    } = &app.kind
    else {
        panic!("not pyspark: {:?}", app.kind)
    };
    assert_eq!(main.path, "main.py");
    let module_names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(module_names, ["sales", "helpers.py"]);
    let file_names: Vec<&str> = app.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(file_names, ["conf", "lookup.csv"]);
    assert_eq!(requirements.as_ref().unwrap().file.path, "requirements.txt");
    // emr-7.5.0's python3 is 3.9.
    assert_eq!(*python, (3, 9));
    assert_eq!(
        plan.job.args,
        [
            "--date",
            "2026-11-20",
            "--input",
            "s3://example-raw/orders/dt=2026-11-20/",
            "--output",
            "s3://example-analytics/reports/dt=2026-11-20/"
        ]
    );
    // The grants are the stable part of each marked location.
    let reads: Vec<String> = plan.job.reads.iter().map(|u| u.to_string()).collect();
    let writes: Vec<String> = plan.job.writes.iter().map(|u| u.to_string()).collect();
    assert_eq!(reads, ["s3://example-raw/orders/dt="]);
    assert_eq!(writes, ["s3://example-analytics/reports/dt="]);
    assert_eq!(plan.job.command, "main.py");
}

#[test]
fn the_spec_may_choose_a_python_the_release_ships() {
    let (plan, _) = resolve(&spec(&PYSPARK.replace(
        "    requirements: requirements.txt\n",
        "    requirements: requirements.txt\n    python: \"3.11\"\n",
    )))
    .unwrap_or_else(|d| panic!("{}", d.render()));
    let Some(AppKind::PySpark { python, .. }) = plan.job.app.map(|a| a.kind) else {
        panic!("not pyspark")
    };
    assert_eq!(python, (3, 11));
}

#[test]
fn a_python_the_release_does_not_ship_is_an_error() {
    let text = spec(&PYSPARK.replace(
        "    requirements: requirements.txt\n",
        "    requirements: requirements.txt\n    python: \"3.11\"\n",
    ))
    .replace("emr-7.5.0", "emr-7.0.0");
    let (codes, rendered) = errors(&text);
    assert_eq!(codes, ["spec::python-version"]);
    assert!(
        rendered.contains("emr-7.0.0 nodes have no Python 3.11"),
        "{rendered}"
    );
    assert!(
        rendered.contains("job-specs/app.yaml:16:13: "),
        "{rendered}"
    );
    assert!(
        rendered.contains("choose one the release ships (3.9)"),
        "{rendered}"
    );
}

#[test]
fn a_job_runs_one_application() {
    let text = spec(&PYSPARK.replace("job:\n", "job:\n  command: rollup\n"));
    let (codes, rendered) = errors(&text);
    assert_eq!(codes, ["spec::job-kinds"]);
    assert!(
        rendered.contains("`job` sets `command` and `pyspark`; a job runs one application"),
        "{rendered}"
    );
}

#[test]
fn built_in_keys_are_refused_for_an_application() {
    let text = spec(&PYSPARK.replace("job:\n", "job:\n  engine: spark\n  files: [x.ini]\n"));
    let (codes, rendered) = errors(&text);
    assert_eq!(codes, ["spec::built-in-only", "spec::built-in-only"]);
    assert!(
        rendered
            .contains("`job.engine` applies to emrship-job's own commands, not to `job.pyspark`"),
        "{rendered}"
    );
    assert!(
        rendered.contains("list the application's files under `job.pyspark.files`"),
        "{rendered}"
    );
}

#[test]
fn client_mode_cannot_carry_the_dependency_archive() {
    let text = spec(&format!("spark:\n  deploy_mode: client\n{PYSPARK}"));
    let (codes, rendered) = errors(&text);
    assert_eq!(codes, ["spec::client-mode-archives"]);
    assert!(rendered.contains("in client deploy mode the driver runs on the primary node outside YARN: it gets neither the dependency archive nor the files in its working directory"), "{rendered}");
}

#[test]
fn two_shipped_files_with_one_name_clash() {
    let text = spec(&PYSPARK.replace(
        "files: [conf, data/lookup.csv]",
        "files: [conf/app.ini, prod/app.ini]",
    ));
    let (codes, rendered) = errors(&text);
    assert_eq!(codes, ["spec::shipped-name-clash"]);
    assert!(rendered.contains("`prod/app.ini` would land in the container's working directory as `app.ini`, which `conf/app.ini` already has; YARN keeps only one of two files with one name"), "{rendered}");
}

#[test]
fn a_file_may_not_take_a_name_the_step_uses() {
    let text = spec(&PYSPARK.replace(
        "files: [conf, data/lookup.csv]",
        "files: [x/modules.zip, main.py]",
    ));
    let (codes, rendered) = errors(&text);
    assert_eq!(
        codes,
        ["spec::shipped-name-clash", "spec::shipped-name-clash"]
    );
    assert!(
        rendered.contains("which the zip of `job.pyspark.modules` already has"),
        "{rendered}"
    );
    assert!(
        rendered.contains("which `main.py` already has"),
        "{rendered}"
    );
}

#[test]
fn only_s3_locations_can_be_marked() {
    let text = spec(&PYSPARK.replace(
        "output: s3://example-analytics/reports/dt={{date}}/",
        "output: /tmp/reports",
    ));
    let (codes, rendered) = errors(&text);
    assert_eq!(codes, ["spec::marked-arg"]);
    assert!(
        rendered.contains("`/tmp/reports` is marked as an output but is not an S3 location"),
        "{rendered}"
    );
}

#[test]
fn unknown_requirements_formats_and_absolute_paths_are_errors_all_at_once() {
    let text = spec(
        &PYSPARK
            .replace("requirements: requirements.txt", "requirements: Pipfile")
            .replace("main: main.py", "main: /home/me/app/main.py")
            .replace("modules: [sales, helpers.py]", "modules: [sales, sales]"),
    );
    let (codes, rendered) = errors(&text);
    assert_eq!(
        codes,
        [
            "spec::app-path",
            "spec::module-duplicate",
            "spec::requirements-format"
        ]
    );
    assert!(
        rendered.contains("`/home/me/app/main.py` is not a relative path"),
        "{rendered}"
    );
    assert!(
        rendered.contains("`Pipfile` is not a requirements format emrship reads"),
        "{rendered}"
    );
    assert!(
        rendered.contains("two modules are named `sales`"),
        "{rendered}"
    );
}

#[test]
fn a_jar_application_with_dependencies_and_packages() {
    let text = spec(
        r#"job:
  jar:
    path: build/app.jar
    main_class: com.example.sales.Report
    jars: [lib/postgresql.jar, "s3://example-libs/delta-spark_2.12-3.2.0.jar"]
    packages: ["org.apache.hadoop:hadoop-aws:3.3.4"]
  args: [--date, "{{date}}"]
"#,
    );
    let (plan, diagnostics) = resolve(&text).unwrap_or_else(|d| panic!("{}", d.render()));
    let warnings: Vec<&str> = diagnostics.warnings().map(|d| d.code).collect();
    assert_eq!(warnings, ["spec::packages-network"]);
    let Some(AppKind::Jar {
        jar,
        main_class,
        jars,
        packages,
    }) = plan.job.app.map(|a| a.kind)
    else {
        panic!("not a jar")
    };
    assert_eq!(jar.name, "app.jar");
    assert_eq!(main_class.as_deref(), Some("com.example.sales.Report"));
    assert!(matches!(&jars[0], JarRef::Local(p) if p.name == "postgresql.jar"));
    assert!(
        matches!(&jars[1], JarRef::S3(u) if u.to_string().ends_with("delta-spark_2.12-3.2.0.jar"))
    );
    assert_eq!(packages, ["org.apache.hadoop:hadoop-aws:3.3.4"]);
}

#[test]
fn a_bad_main_class_and_coordinate_are_errors() {
    let text = spec(
        r#"job:
  jar:
    path: build/app.txt
    main_class: com.example.9Report
    packages: ["hadoop-aws"]
"#,
    );
    let (codes, rendered) = errors(&text);
    assert_eq!(
        codes,
        [
            "spec::jar-path",
            "spec::main-class",
            "spec::package-coordinate"
        ]
    );
    assert!(
        rendered.contains("`com.example.9Report` is not a Java class name"),
        "{rendered}"
    );
    assert!(
        rendered.contains("`hadoop-aws` is not a Maven coordinate"),
        "{rendered}"
    );
}

#[test]
fn an_executable_runs_on_the_primary_node() {
    let text = spec(
        r#"job:
  executable:
    path: target/release/sales-report
    files: [conf/report.toml]
  args: [--date, "{{date}}", --output, {output: "s3://example-analytics/out/"}]
"#,
    );
    let (plan, _) = resolve(&text).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(plan.job.engine, emrship::spec::raw::Engine::Local);
    assert_eq!(plan.job.command, "sales-report");
    let writes: Vec<String> = plan.job.writes.iter().map(|u| u.to_string()).collect();
    assert_eq!(writes, ["s3://example-analytics/out/"]);
}

#[test]
fn a_job_with_neither_command_nor_application_says_what_it_can_be() {
    let (codes, rendered) = errors(&spec("job:\n  args: [--x]\n"));
    assert_eq!(codes, ["spec::missing-key"]);
    assert!(
        rendered
            .contains("`job` says neither which emrship-job command nor which application to run"),
        "{rendered}"
    );
}

#[test]
fn a_bootstrap_script_may_be_a_local_path() {
    let text = spec(PYSPARK)
    .replace(
        "  core: { instance_type: m5.2xlarge, count: 2 }\n",
        "  core: { instance_type: m5.2xlarge, count: 2 }\n  bootstrap:\n    - name: tools\n      path: bootstrap/tools.sh\n    - name: remote\n      path: s3://example-analytics/bootstrap/remote.sh\n    - name: bad\n      path: /etc/tools.sh\n",
    );
    let (codes, rendered) = errors(&text);
    assert_eq!(codes, ["spec::app-path"]);
    assert!(
        rendered.contains("`/etc/tools.sh` is not a relative path"),
        "{rendered}"
    );
    let ok = text.replace("    - name: bad\n      path: /etc/tools.sh\n", "");
    let (plan, _) = resolve(&ok).unwrap_or_else(|d| panic!("{}", d.render()));
    use emrship::spec::job_plan::BootstrapScript;
    assert!(
        matches!(&plan.cluster.bootstrap[0].script, BootstrapScript::Local(p) if p.path == "bootstrap/tools.sh")
    );
    assert!(matches!(
        &plan.cluster.bootstrap[1].script,
        BootstrapScript::S3(_)
    ));
}
