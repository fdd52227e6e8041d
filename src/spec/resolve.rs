//! Raw spec → [`JobPlan`]: apply defaults, fill run variables, and check everything that can be
//! checked before a cluster is paid for. Every problem is reported, each with its position.

use chrono::NaiveDate;
use handlebars::Handlebars;
use indexmap::IndexMap;
use serde_yaml::Value;

use super::commands::{self, ArgRole};
use super::diagnostics::{did_you_mean, Diagnostics, SpecDiagnostic};
use super::duration::parse_duration_seconds;
use super::job_plan::*;
use super::load::LoadedSpec;
use super::raw::*;
use super::release::ReleaseLabel;
use super::s3::S3Uri;
use super::schedule;
use super::source::SpecPath;
use crate::sizing::{self, Arch, DeployMode, ExplicitExecutors, Workload};

mod app;
mod kinesis;

use kinesis::Owner;

/// What a run adds to the spec: the day it processes.
#[derive(Debug, Clone, Copy)]
pub struct RunContext {
    pub date: NaiveDate,
}

/// Spark settings that emrship derives from `spark.executors`; setting them in `spark.conf`
/// would silently fight the sizing.
const SIZING_KEYS: &[&str] = &[
    "spark.executor.instances",
    "spark.executor.cores",
    "spark.executor.memory",
    "spark.executor.memoryOverhead",
    "spark.yarn.executor.memoryOverhead",
    "spark.driver.cores",
    "spark.driver.memory",
    "spark.driver.memoryOverhead",
];

/// spark-submit flags that the rendered step sets itself.
const RENDERED_SUBMIT_FLAGS: &[(&str, &str)] = &[
    ("--master", "the step always runs on YARN"),
    ("--deploy-mode", "set `spark.deploy_mode`"),
    ("--num-executors", "set `spark.executors.instances`"),
    ("--executor-cores", "set `spark.executors.cores`"),
    ("--executor-memory", "set `spark.executors.memory`"),
    ("--driver-memory", "the driver is sized with the executors"),
    ("--driver-cores", "the driver is sized with the executors"),
    ("--archives", "the bundle is passed as an archive already"),
];

const KNOWN_APPLICATIONS: &[&str] = &[
    "Flink",
    "Ganglia",
    "HBase",
    "HCatalog",
    "Hadoop",
    "Hive",
    "Hue",
    "JupyterEnterpriseGateway",
    "JupyterHub",
    "Livy",
    "MXNet",
    "Oozie",
    "Phoenix",
    "Pig",
    "Presto",
    "Spark",
    "Sqoop",
    "TensorFlow",
    "Tez",
    "Trino",
    "Zeppelin",
    "ZooKeeper",
];

/// Checks and resolves a loaded spec. Returns the plan and its warnings, or every problem.
pub fn resolve(
    loaded: &mut LoadedSpec,
    context: RunContext,
    diagnostics: &mut Diagnostics,
) -> Option<JobPlan> {
    fill_run_variables(loaded, context, diagnostics);
    let (raw, removed) = super::load::deserialize(loaded, diagnostics);
    let mut resolver = Resolver {
        loaded,
        diagnostics,
        removed,
        user_app: false,
        kinesis_receivers: None,
    };
    let raw = raw?;
    let plan = resolver.resolve(raw, context);
    if resolver.diagnostics.has_errors() {
        None
    } else {
        plan
    }
}

/// Replaces `{{date}}` and the other run variables in every string of the merged spec. An
/// unknown variable is an error at its position, so a typo is caught before launch instead of
/// reaching S3 as a literal `{{dat}}`.
fn fill_run_variables(loaded: &mut LoadedSpec, context: RunContext, diagnostics: &mut Diagnostics) {
    let mut engine = Handlebars::new();
    engine.set_strict_mode(true);
    engine.register_escape_fn(handlebars::no_escape);
    let name = loaded
        .merged
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let variables = serde_json::json!({
        "date": context.date.format("%Y-%m-%d").to_string(),
        "date_nodash": context.date.format("%Y%m%d").to_string(),
        "year": context.date.format("%Y").to_string(),
        "month": context.date.format("%m").to_string(),
        "day": context.date.format("%d").to_string(),
        "name": name,
    });
    let mut problems = Vec::new();
    let mut templates = std::collections::HashMap::new();
    let mut merged = std::mem::take(&mut loaded.merged);
    walk_strings(&mut merged, &SpecPath::root(), &mut |path, text| {
        if !text.contains("{{") {
            return;
        }
        match engine.render_template(text, &variables) {
            Ok(filled) => {
                templates.insert(path.clone(), std::mem::replace(text, filled));
            }
            Err(error) => {
                let reason = error.reason().to_string();
                // Strict mode says `Failed to access variable in strict mode Some("dat")`.
                let reason = match reason
                    .split("Some(\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                {
                    Some(name) => format!("unknown run variable `{{{{{name}}}}}`"),
                    None => reason.lines().next().unwrap_or_default().to_string(),
                };
                problems.push((path.clone(), reason))
            }
        }
    });
    loaded.merged = merged;
    loaded.templates = templates;
    for (path, reason) in problems {
        diagnostics.push(
            SpecDiagnostic::error(
                "spec::run-variable",
                format!("`{path}` uses a run variable that cannot be filled: {reason}"),
            )
            .at(loaded.origin(&path))
            .help("run variables are {{date}}, {{date_nodash}}, {{year}}, {{month}}, {{day}} and {{name}}"),
        );
    }
}

fn walk_strings(value: &mut Value, path: &SpecPath, visit: &mut dyn FnMut(&SpecPath, &mut String)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk_strings(item, &path.index(i), visit);
            }
        }
        Value::Mapping(mapping) => {
            for (key, item) in mapping.iter_mut() {
                if let Some(key) = key.as_str() {
                    walk_strings(item, &path.key(key), visit);
                }
            }
        }
        _ => {}
    }
}

struct Resolver<'a> {
    loaded: &'a LoadedSpec,
    diagnostics: &'a mut Diagnostics,
    /// Nodes already reported (unknown key, wrong type) and taken out before resolving: their
    /// absence is not reported again as a missing key.
    removed: std::collections::HashSet<SpecPath>,
    /// The job is a user's application (`job.pyspark`, `job.jar`, `job.executable`), not one of
    /// emrship-job's commands.
    user_app: bool,
    /// A Spark application's Kinesis receivers (`job.kinesis.receivers`, else `shards`) and
    /// where the spec says so: checked against the executors' cores once Spark is sized.
    kinesis_receivers: Option<(u32, SpecPath)>,
}

fn path(dotted: &str) -> SpecPath {
    SpecPath::parse_dotted(dotted)
}

impl Resolver<'_> {
    fn error(
        &mut self,
        code: &'static str,
        at: &SpecPath,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let diagnostic = SpecDiagnostic::error(code, message)
            .help(help)
            .at(self.loaded.origin(at));
        self.diagnostics.push(diagnostic);
    }

    fn key_error(
        &mut self,
        code: &'static str,
        at: &SpecPath,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let diagnostic = SpecDiagnostic::error(code, message)
            .help(help)
            .at(self.loaded.key_origin(at));
        self.diagnostics.push(diagnostic);
    }

    fn warning(
        &mut self,
        code: &'static str,
        at: &SpecPath,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let diagnostic = SpecDiagnostic::warning(code, message)
            .help(help)
            .at(self.loaded.origin(at));
        self.diagnostics.push(diagnostic);
    }

    fn required<T>(&mut self, value: Option<T>, at: &SpecPath, example: &str) -> Option<T> {
        if value.is_none() && !self.removed.contains(at) {
            let parent = at.parent().unwrap_or_default();
            let key = at.to_string();
            let place = if parent.0.is_empty() {
                "the spec".to_string()
            } else {
                format!("`{parent}`")
            };
            let diagnostic = SpecDiagnostic::error(
                "spec::missing-key",
                format!("`{key}` is required but {place} does not set it"),
            )
            .help(format!("add it, e.g. `{example}`"))
            .at(self.loaded.key_origin(&parent));
            self.diagnostics.push(diagnostic);
        }
        value
    }

    fn s3(&mut self, text: &str, at: &SpecPath) -> Option<S3Uri> {
        match S3Uri::parse(text) {
            Ok(uri) => Some(uri),
            Err(why) => {
                self.error(
                    "spec::bad-s3-uri",
                    at,
                    format!("`{text}` is not a valid S3 URI: {why}"),
                    "write it as `s3://bucket/prefix/`",
                );
                None
            }
        }
    }

    fn resolve(&mut self, raw: RawSpec, context: RunContext) -> Option<JobPlan> {
        let name = self.required(raw.name, &path("name"), "name: match-rate");
        if let Some(name) = &name {
            self.check_name(name);
        }
        let region = self.required(raw.region, &path("region"), "region: us-east-1");
        if let Some(region) = &region {
            self.check_region(region);
        }
        let release = self
            .required(raw.release, &path("release"), "release: emr-7.5.0")
            .and_then(|label| self.release(&label));
        let log_uri = self
            .required(
                raw.log_uri,
                &path("log_uri"),
                "log_uri: s3://my-bucket/emr-logs/",
            )
            .and_then(|text| self.s3(&text, &path("log_uri")))
            .map(|uri| uri.as_prefix());
        let artifacts = self
            .required(
                raw.artifacts,
                &path("artifacts"),
                "artifacts: s3://my-bucket/emrship/",
            )
            .and_then(|text| self.s3(&text, &path("artifacts")))
            .map(|uri| uri.as_prefix());
        let account_id = raw.account_id.map(|a| a.0);
        if let Some(account) = &account_id {
            if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
                self.error(
                    "spec::account-id",
                    &path("account_id"),
                    format!("`{account}` is not an AWS account id"),
                    "an account id is 12 digits; quote it so YAML keeps leading zeros",
                );
            }
        }
        let raw_job = self.required(
            raw.job,
            &path("job"),
            "job: { engine: spark, command: match-rate }",
        );
        self.user_app = raw_job.as_ref().is_some_and(RawJob::is_user_app);
        let engine = raw_job.as_ref().and_then(RawJob::runs_on);
        let cluster = self
            .required(
                raw.cluster,
                &path("cluster"),
                "cluster: { master: { instance_type: m5.xlarge } }",
            )
            .and_then(|cluster| self.cluster(cluster, engine, release.as_ref()));
        let roles = self.roles(raw.roles, name.as_deref().unwrap_or("job"));
        // Every section is checked even when the cluster did not resolve: only the checks that
        // need its nodes (sizing, the binary's architecture) wait for a valid cluster.
        let spark = self.spark(raw.spark, cluster.as_ref(), engine);
        let owner = Owner {
            name: name.as_deref().unwrap_or_default(),
            region: region.as_deref().unwrap_or("*"),
            account: account_id.as_deref().unwrap_or("*"),
        };
        let job = raw_job.and_then(|job| {
            self.job(
                job,
                cluster.as_ref(),
                context,
                release.as_ref(),
                spark.as_ref().map(|s| s.deploy_mode),
                owner,
            )
        });
        if let Some(spark) = &spark {
            self.check_kinesis_receivers(spark);
        }
        let schedule = raw.schedule.and_then(|s| self.schedule(s));
        let plan = JobPlan {
            name: name?,
            region: region?,
            release: release?,
            log_uri: log_uri?,
            artifacts: artifacts?,
            account_id,
            date: context.date,
            cluster: cluster?,
            roles,
            spark: spark?,
            job: job?,
            schedule,
        };
        self.check_step_length(&plan);
        Some(plan)
    }

    /// EMR rejects a step whose arguments exceed 10,240 characters. Content-addressed URIs
    /// have a fixed length, so rendering with placeholder digests gives the exact count.
    fn check_step_length(&mut self, plan: &JobPlan) {
        use crate::render::{artifacts, steps};
        let digest = artifacts::Digest256 {
            sha256: "0".repeat(64),
            bytes: 0,
        };
        let app = plan
            .job
            .app
            .as_ref()
            .map(|app| artifacts::app_locations(&artifacts::app_pieces(plan, app, None)));
        let locations = steps::StepLocations {
            app,
            bundle: artifacts::bundle_uri(plan, Some(&digest)),
            driver: artifacts::script_uri(plan, &digest, "driver.py"),
            job_files: plan
                .job
                .files
                .iter()
                .map(|f| artifacts::job_file_uri(plan, &digest, &f.file_name))
                .collect(),
        };
        let characters = steps::job_step(plan, &locations).characters();
        if characters > steps::MAX_STEP_CHARACTERS {
            let conf: usize = plan.spark.conf.iter().map(|(k, v)| k.len() + v.len()).sum();
            let args: usize = plan.job.args.iter().map(String::len).sum();
            let at = if conf > args {
                path("spark.conf")
            } else {
                path("job.args")
            };
            self.key_error(
                "spec::step-too-long",
                &at,
                format!(
                    "the step's arguments total {characters} characters, more than EMR's limit of {}",
                    steps::MAX_STEP_CHARACTERS
                ),
                "move long values into a config file listed under `job.files` and read it in the job",
            );
        }
    }

    fn check_name(&mut self, name: &str) {
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && name.starts_with(|c: char| c.is_ascii_lowercase());
        if !valid {
            self.error(
                "spec::name",
                &path("name"),
                format!("name `{name}` cannot be used in S3 keys, IAM role names and Lambda names"),
                "use 1 to 40 lowercase letters, digits and `-`, starting with a letter, e.g. `match-rate`",
            );
        }
    }

    fn check_region(&mut self, region: &str) {
        let parts: Vec<&str> = region.split('-').collect();
        let valid = parts.len() >= 3
            && parts[0].len() == 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
            && parts
                .last()
                .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
        if !valid {
            self.error(
                "spec::region",
                &path("region"),
                format!("`{region}` is not an AWS region name"),
                "write a region code such as `us-east-1` or `eu-west-1`",
            );
        }
    }

    fn release(&mut self, label: &str) -> Option<ReleaseLabel> {
        match ReleaseLabel::parse(label) {
            Ok(release) => Some(release),
            Err(_) => {
                let suggestion = did_you_mean(label, ReleaseLabel::known().iter().copied());
                let newest = ReleaseLabel::known()
                    .last()
                    .copied()
                    .unwrap_or("emr-7.13.0");
                let help = match suggestion {
                    Some(s) => {
                        format!("did you mean `{s}`? emrship supports emr-5.30.0 to {newest}")
                    }
                    None => {
                        format!("emrship supports emr-5.30.0 to {newest}; the newest is `{newest}`")
                    }
                };
                self.error(
                    "spec::unknown-release",
                    &path("release"),
                    format!("unknown EMR release label `{label}`"),
                    help,
                );
                None
            }
        }
    }

    fn instance_type(
        &mut self,
        name: &str,
        at: &SpecPath,
    ) -> Option<&'static sizing::InstanceType> {
        if let Some(found) = sizing::catalog::lookup(name) {
            return Some(found);
        }
        let suggestion = did_you_mean(name, sizing::catalog::all().iter().map(|t| t.name));
        let help = match suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => "use an EMR-supported type such as m5.xlarge, r5.2xlarge or m7g.2xlarge (see `emrship size --list`)".to_string(),
        };
        self.error(
            "spec::unknown-instance-type",
            at,
            format!("unknown instance type `{name}`"),
            help,
        );
        None
    }

    fn cluster(
        &mut self,
        raw: RawCluster,
        engine: Option<Engine>,
        release: Option<&ReleaseLabel>,
    ) -> Option<Cluster> {
        let has_groups = raw.master.is_some() || raw.core.is_some() || raw.task.is_some();
        let nodes = match (has_groups, raw.fleets) {
            (true, Some(_)) => {
                self.key_error("spec::groups-and-fleets", &path("cluster.fleets"), "a cluster has either instance groups (`master`/`core`/`task`) or `fleets`, not both", "remove `fleets`, or move the groups into `fleets`");
                None
            }
            (false, Some(fleets)) => self.fleets(fleets),
            (_, None) => self.groups(raw.master, raw.core, raw.task),
        };
        if let (Some(nodes), Some(Engine::Spark)) = (&nodes, engine) {
            if nodes.worker_types().is_empty() {
                self.key_error("spec::no-workers", &path("cluster"), "`engine: spark` needs core nodes for YARN executors, but the cluster has only a primary node", "add `core: { instance_type: r5.2xlarge, count: 2 }`, or use `engine: local`");
            }
        }
        if let (Some(nodes), Some(release)) = (&nodes, release) {
            self.check_graviton_release(nodes, release);
        }
        let mut subnets = Vec::new();
        if let Some(subnet) = &raw.subnet {
            subnets.push((subnet.clone(), path("cluster.subnet")));
        }
        if let Some(list) = &raw.subnets {
            if raw.subnet.is_some() {
                self.key_error(
                    "spec::subnet-and-subnets",
                    &path("cluster.subnets"),
                    "set `subnet` or `subnets`, not both",
                    "keep `subnets` for instance fleets, `subnet` otherwise",
                );
            }
            for (i, subnet) in list.iter().enumerate() {
                subnets.push((subnet.clone(), path("cluster.subnets").index(i)));
            }
        }
        for (subnet, at) in &subnets {
            let valid = subnet.strip_prefix("subnet-").is_some_and(|id| {
                (8..=17).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !valid {
                self.error(
                    "spec::subnet",
                    at,
                    format!("`{subnet}` is not a subnet id"),
                    "a subnet id looks like `subnet-0123456789abcdef0`",
                );
            }
        }
        if subnets.len() > 1 && matches!(nodes, Some(Nodes::Groups { .. })) {
            self.key_error(
                "spec::subnets-need-fleets",
                &path("cluster.subnets"),
                "several subnets need instance fleets; instance groups launch in one subnet",
                "keep one subnet, or switch to `fleets`",
            );
        }
        let idle_timeout_seconds =
            raw.idle_timeout
                .and_then(|text| match parse_duration_seconds(text.as_str()) {
                    Ok(seconds) if (60..=604_800).contains(&seconds) => Some(seconds),
                    Ok(seconds) => {
                        self.error(
                            "spec::idle-timeout",
                            &path("cluster.idle_timeout"),
                            format!("idle timeout of {seconds} s is outside what EMR accepts"),
                            "EMR's auto-termination idle timeout is 1 minute to 7 days, e.g. `1h`",
                        );
                        None
                    }
                    Err(why) => {
                        self.error(
                            "spec::idle-timeout",
                            &path("cluster.idle_timeout"),
                            format!("`{}` is not a duration", text.as_str()),
                            why,
                        );
                        None
                    }
                });
        if raw.keep_alive && idle_timeout_seconds.is_none() {
            self.warning("spec::no-idle-timeout", &path("cluster.keep_alive"), "a long-running cluster without `idle_timeout` runs (and bills) until someone terminates it", "set `cluster.idle_timeout`, e.g. `4h`");
        }
        if let Some(cidr) = &raw.ui_access_cidr {
            self.check_cidr(cidr);
        }
        let mut tags = IndexMap::new();
        for (key, value) in raw.tags {
            let at = path("cluster.tags").key(&key);
            if key.starts_with("aws:")
                || key.starts_with("emrship:")
                || key == "for-use-with-amazon-emr-managed-policies"
            {
                self.key_error("spec::reserved-tag", &at, format!("tag `{key}` is reserved"), "`aws:` tags belong to AWS; emrship sets `emrship:*` and the EMR managed-policy tag itself");
            } else if key.is_empty() || key.chars().count() > 128 || value.0.chars().count() > 256 {
                self.key_error(
                    "spec::tag-length",
                    &at,
                    format!("tag `{key}` is too long or empty"),
                    "tag keys are 1 to 128 characters, values at most 256",
                );
            }
            tags.insert(key, value.0);
        }
        let mut applications = raw
            .applications
            .unwrap_or_else(|| vec!["Hadoop".into(), "Spark".into()]);
        for (i, app) in applications.iter().enumerate() {
            if !KNOWN_APPLICATIONS.contains(&app.as_str()) {
                let help = match did_you_mean(app, KNOWN_APPLICATIONS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? application names are case-sensitive"),
                    None => format!("known applications: {}", KNOWN_APPLICATIONS.join(", ")),
                };
                self.error(
                    "spec::unknown-application",
                    &path("cluster.applications").index(i),
                    format!("unknown EMR application `{app}`"),
                    help,
                );
            }
        }
        if engine == Some(Engine::Spark) && !applications.iter().any(|a| a == "Spark") {
            self.key_error("spec::spark-not-installed", &path("cluster.applications"), "`engine: spark` needs the Spark application, which `cluster.applications` leaves out", "add `Spark` to `cluster.applications`");
        }
        applications.sort();
        applications.dedup();
        let mut bootstrap = Vec::new();
        for (i, action) in raw.bootstrap.into_iter().enumerate() {
            let at = path("cluster.bootstrap").index(i);
            let name = self.required(action.name, &at.key("name"), "name: install-tools");
            let script = self
                .required(
                    action.path,
                    &at.key("path"),
                    "path: s3://my-bucket/bootstrap/install.sh",
                )
                .and_then(|p| {
                    if p.starts_with("s3://") || p.starts_with("https://") {
                        self.s3(&p, &at.key("path")).map(BootstrapScript::S3)
                    } else {
                        // A local script, uploaded by `deploy` under its sha256.
                        self.app_path(&p, &at.key("path"))
                            .map(BootstrapScript::Local)
                    }
                });
            let args: Vec<String> = action.args.into_iter().map(|a| a.0).collect();
            self.check_discrete_args(&args, &at.key("args"));
            if let (Some(name), Some(script)) = (name, script) {
                bootstrap.push(BootstrapAction { name, script, args });
            }
        }
        let configurations = self.user_configurations(raw.configurations, engine);
        Some(Cluster {
            nodes: nodes?,
            subnets: subnets.into_iter().map(|(s, _)| s).collect(),
            idle_timeout_seconds,
            keep_alive: raw.keep_alive,
            ui_access_cidr: raw.ui_access_cidr,
            tags,
            applications,
            bootstrap,
            step_concurrency: raw.step_concurrency,
            ebs_root_volume_gib: raw.ebs_root_volume_gib,
            key_name: raw.key_name,
            configurations,
        })
    }

    fn check_graviton_release(&mut self, nodes: &Nodes, release: &ReleaseLabel) {
        // r6g/m6g/c6g arrived in emr-5.31 / 6.1; newer Graviton generations need current
        // releases. The exact first release per family is not published in one place, so
        // only the documented floor is enforced.
        let uses_graviton = nodes
            .worker_types()
            .into_iter()
            .chain(nodes.master_types())
            .any(|t| t.arch == Arch::Arm64);
        let too_old =
            (release.major == 5 && release.minor < 31) || (release.major == 6 && release.minor < 1);
        if uses_graviton && too_old {
            self.error("spec::graviton-release", &path("release"), format!("Graviton (arm64) instance types need emr-5.31.0 / emr-6.1.0 or later, not `{}`", release.label), "use a newer release, or x86_64 instance types");
        }
    }

    fn check_cidr(&mut self, cidr: &str) {
        let at = path("cluster.ui_access_cidr");
        let Some((address, bits)) = cidr.split_once('/') else {
            self.error(
                "spec::cidr",
                &at,
                format!("`{cidr}` is not a CIDR block"),
                "write an address range such as `10.0.0.0/16`",
            );
            return;
        };
        let bits: Option<u8> = bits.parse().ok();
        let valid = match address.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => bits.is_some_and(|b| b <= 32),
            Ok(std::net::IpAddr::V6(_)) => bits.is_some_and(|b| b <= 128),
            Err(_) => false,
        };
        if !valid {
            self.error(
                "spec::cidr",
                &at,
                format!("`{cidr}` is not a CIDR block"),
                "write an address range such as `10.0.0.0/16`",
            );
        } else if bits == Some(0) {
            self.error("spec::cidr-open-to-world", &at, format!("`{cidr}` opens the YARN and Spark UIs to the whole internet"), "EMR block public access rejects such a rule; use your VPN or office range, e.g. `10.0.0.0/16`");
        }
    }

    fn groups(
        &mut self,
        master: Option<RawInstanceGroup>,
        core: Option<RawInstanceGroup>,
        task: Option<RawInstanceGroup>,
    ) -> Option<Nodes> {
        let master = self.required(
            master,
            &path("cluster.master"),
            "master: { instance_type: m5.xlarge }",
        );
        let master = master.and_then(|g| self.group(g, "master"));
        let core = core.map(|g| self.group(g, "core"));
        let task = task.map(|g| self.group(g, "task"));
        if let (Some(None), _) | (_, Some(None)) = (&core, &task) {
            return None;
        }
        if task.is_some() && core.is_none() {
            self.key_error(
                "spec::task-without-core",
                &path("cluster.task"),
                "a task group needs a core group",
                "add `cluster.core`",
            );
        }
        if let Some(Some(master)) = Some(&master) {
            if master.count != 1 && master.count != 3 {
                self.error(
                    "spec::master-count",
                    &path("cluster.master.count"),
                    format!(
                        "a primary group has 1 node, or 3 for high availability, not {}",
                        master.count
                    ),
                    "remove `count` or set it to 3",
                );
            }
        }
        Some(Nodes::Groups {
            master: master?,
            core: core.flatten(),
            task: task.flatten(),
        })
    }

    fn group(&mut self, raw: RawInstanceGroup, role: &str) -> Option<InstanceGroup> {
        let at = path("cluster").key(role);
        let instance_type = self
            .required(
                raw.instance_type,
                &at.key("instance_type"),
                "instance_type: r5.2xlarge",
            )
            .and_then(|name| self.instance_type(&name, &at.key("instance_type")));
        if self.removed.contains(&at.key("count")) {
            return None;
        }
        let count = raw.count.unwrap_or(1);
        if count == 0 && role != "task" {
            self.error(
                "spec::zero-count",
                &at.key("count"),
                format!("the {role} group needs at least one node"),
                "set `count` to 1 or more, or remove the group",
            );
        }
        let market = raw.market.unwrap_or(Market::OnDemand);
        let bid_price = raw.bid_price.map(|p| p.0);
        if let Some(price) = &bid_price {
            if market != Market::Spot {
                self.error(
                    "spec::bid-without-spot",
                    &at.key("bid_price"),
                    "`bid_price` only applies to spot capacity",
                    "add `market: spot`, or remove `bid_price`",
                );
            } else if price.parse::<f64>().map_or(true, |p| p <= 0.0) {
                self.error(
                    "spec::bid-price",
                    &at.key("bid_price"),
                    format!("bid price `{price}` is not a positive amount in USD"),
                    "write the maximum hourly price, e.g. `bid_price: \"0.25\"`",
                );
            }
        }
        if role == "master" && market == Market::Spot {
            self.warning(
                "spec::spot-master",
                &at.key("market"),
                "a spot primary node ends the whole cluster when it is reclaimed",
                "keep the primary node on demand",
            );
        }
        Some(InstanceGroup {
            instance_type: instance_type?,
            count,
            market,
            bid_price,
            ebs_gib: raw.ebs_gib,
        })
    }

    fn fleets(&mut self, raw: RawFleets) -> Option<Nodes> {
        let master = self
            .required(
                raw.master,
                &path("cluster.fleets.master"),
                "master: { on_demand: 1, instance_types: [{ instance_type: m5.xlarge }] }",
            )
            .and_then(|f| self.fleet(f, "master"));
        let core = self
            .required(
                raw.core,
                &path("cluster.fleets.core"),
                "core: { spot: 4, instance_types: [{ instance_type: r5.2xlarge }] }",
            )
            .and_then(|f| self.fleet(f, "core"));
        let task = match raw.task {
            Some(f) => Some(self.fleet(f, "task")?),
            None => None,
        };
        if let Some(master) = &master {
            if master.on_demand + master.spot != 1 {
                self.key_error(
                    "spec::master-fleet-capacity",
                    &path("cluster.fleets.master"),
                    "the primary fleet must have a target capacity of exactly 1",
                    "set `on_demand: 1` (or `spot: 1`)",
                );
            }
        }
        Some(Nodes::Fleets {
            master: master?,
            core: core?,
            task,
        })
    }

    fn fleet(&mut self, raw: RawFleet, role: &str) -> Option<Fleet> {
        let at = path("cluster.fleets").key(role);
        if raw.instance_types.is_empty() {
            self.key_error(
                "spec::empty-fleet",
                &at,
                format!("the {role} fleet lists no instance types"),
                "add `instance_types: [{ instance_type: r5.2xlarge }]`",
            );
        }
        if raw.on_demand + raw.spot == 0 {
            self.key_error(
                "spec::fleet-capacity",
                &at,
                format!("the {role} fleet has no target capacity"),
                "set `on_demand` and/or `spot` to the capacity units wanted",
            );
        }
        let mut choices = Vec::new();
        let mut failed = false;
        for (i, choice) in raw.instance_types.into_iter().enumerate() {
            let at = at.key("instance_types").index(i);
            let instance_type = self
                .required(
                    choice.instance_type,
                    &at.key("instance_type"),
                    "instance_type: r5.2xlarge",
                )
                .and_then(|name| self.instance_type(&name, &at.key("instance_type")));
            if let Some(pct) = choice.bid_price_percent {
                if !(1..=100).contains(&pct) {
                    self.error(
                        "spec::bid-percent",
                        &at.key("bid_price_percent"),
                        format!("{pct}% is not a valid spot bid"),
                        "use 1 to 100 (percent of the on-demand price)",
                    );
                }
            }
            if choice.weight == Some(0) {
                self.error(
                    "spec::fleet-weight",
                    &at.key("weight"),
                    "a weight of 0 gives no capacity",
                    "weights are 1 or more",
                );
            }
            match instance_type {
                Some(instance_type) => choices.push(FleetChoice {
                    instance_type,
                    weight: choice.weight.unwrap_or(1),
                    bid_price_percent: choice.bid_price_percent,
                    ebs_gib: choice.ebs_gib,
                }),
                None => failed = true,
            }
        }
        let spot_timeout_minutes =
            raw.spot_timeout
                .and_then(|text| match parse_duration_seconds(text.as_str()) {
                    Ok(s) if (300..=86_400).contains(&s) => Some((s / 60) as u32),
                    _ => {
                        self.error(
                            "spec::spot-timeout",
                            &at.key("spot_timeout"),
                            format!("`{}` is not a spot timeout EMR accepts", text.as_str()),
                            "EMR waits 5 minutes to 24 hours for spot capacity, e.g. `20m`",
                        );
                        None
                    }
                });
        if failed {
            return None;
        }
        Some(Fleet {
            on_demand: raw.on_demand,
            spot: raw.spot,
            instance_types: choices,
            spot_timeout_minutes,
        })
    }

    /// The spec's own classifications, with duplicates merged (later wins per property, and a
    /// warning names each key that was overridden).
    fn user_configurations(
        &mut self,
        raw: Vec<RawClassification>,
        engine: Option<Engine>,
    ) -> Vec<Classification> {
        let mut merged: Vec<Classification> = Vec::new();
        for (i, item) in raw.into_iter().enumerate() {
            let at = path("cluster.configurations").index(i);
            let Some(classification) = self.classification(item, &at) else {
                continue;
            };
            if classification.classification == "spark-env" && engine == Some(Engine::Spark) {
                let exported: Vec<String> = classification
                    .configurations
                    .iter()
                    .filter(|c| c.classification == "export")
                    .flat_map(|c| c.properties.keys().cloned())
                    .collect();
                if !exported.is_empty() {
                    self.key_error(
                        "spec::env-driver-only",
                        &at,
                        format!("{} exported in spark-env reach only spark-submit on the primary node, not the YARN ApplicationMaster or the executors where `engine: spark` runs the job", exported.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")),
                        format!("move them to `spark.env` (e.g. `spark: {{ env: {{ {}: … }} }}`); emrship passes those to the driver and every executor", exported[0]),
                    );
                }
            }
            if let Some(existing) = merged
                .iter_mut()
                .find(|c| c.classification == classification.classification)
            {
                for (key, value) in &classification.properties {
                    if let Some(old) = existing.properties.get(key) {
                        if old != value {
                            let diagnostic = SpecDiagnostic::warning(
                                "spec::duplicate-classification",
                                format!("classification `{}` appears more than once; `{key}` = `{old}` is overridden by `{value}`", classification.classification),
                            )
                            .help("later entries win per property; merge the entries into one to silence this")
                            .at(self.loaded.origin(&at.key("properties").key(key)));
                            self.diagnostics.push(diagnostic);
                        }
                    }
                    existing.properties.insert(key.clone(), value.clone());
                }
                existing
                    .configurations
                    .extend(classification.configurations);
            } else {
                merged.push(classification);
            }
        }
        merged
    }

    fn classification(&mut self, raw: RawClassification, at: &SpecPath) -> Option<Classification> {
        let name = self.required(
            raw.classification,
            &at.key("classification"),
            "classification: spark-defaults",
        )?;
        let mut properties = IndexMap::new();
        for (key, value) in raw.properties {
            self.check_plain_text_secret(&key, &value.0, &at.key("properties").key(&key));
            properties.insert(key, value.0);
        }
        let mut configurations = Vec::new();
        for (i, nested) in raw.configurations.into_iter().enumerate() {
            if let Some(nested) = self.classification(nested, &at.key("configurations").index(i)) {
                configurations.push(nested);
            }
        }
        if name.ends_with("-env") && !properties.is_empty() {
            self.key_error("spec::env-classification", &at.key("properties"), format!("`{name}` takes its variables in a nested `export` classification, not in `properties`"), format!("write `{{ classification: {name}, configurations: [{{ classification: export, properties: {{ … }} }}] }}`"));
        }
        Some(Classification {
            classification: name,
            properties,
            configurations,
        })
    }

    fn roles(&mut self, raw: RawRoles, name: &str) -> Roles {
        let roles = Roles {
            service: raw
                .service
                .unwrap_or_else(|| format!("emrship-{name}-service")),
            instance_profile: raw
                .instance_profile
                .unwrap_or_else(|| format!("emrship-{name}-ec2")),
            scheduler: raw
                .scheduler
                .unwrap_or_else(|| format!("emrship-{name}-scheduler")),
        };
        for (key, value) in [
            ("service", &roles.service),
            ("instance_profile", &roles.instance_profile),
            ("scheduler", &roles.scheduler),
        ] {
            let valid = !value.is_empty()
                && value.len() <= 64
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
            if !valid {
                let at = path("roles").key(key);
                self.error(
                    "spec::role-name",
                    &at,
                    format!("`{value}` is not a valid IAM role name"),
                    "IAM role names are 1 to 64 letters, digits and `+=,.@_-`",
                );
            }
        }
        if roles.service == roles.instance_profile
            || roles.service == roles.scheduler
            || roles.instance_profile == roles.scheduler
        {
            self.key_error("spec::role-name-reused", &path("roles"), "two roles share one name; each role has its own trust policy, so one would overwrite the other", "give `service`, `instance_profile` and `scheduler` different names");
        }
        roles
    }

    fn spark(
        &mut self,
        raw: RawSpark,
        cluster: Option<&Cluster>,
        engine: Option<Engine>,
    ) -> Option<Spark> {
        let deploy_mode = raw.deploy_mode.unwrap_or(DeployMode::Cluster);
        // Under `engine: spark` the executors' work is the emrship-job child process, which
        // YARN counts against the container: size for native memory, not a JVM heap.
        let workload = if engine == Some(Engine::Spark) && !self.user_app {
            Workload::Native
        } else {
            Workload::Jvm
        };
        let mut conf = IndexMap::new();
        for (key, value) in raw.conf {
            let at = path("spark.conf").key(&key);
            if !key.starts_with("spark.") {
                self.key_error("spec::conf-key", &at, format!("`{key}` is not a Spark property"), "Spark properties start with `spark.`; other classifications go in `cluster.configurations`");
            } else if SIZING_KEYS.contains(&key.as_str()) {
                self.key_error(
                    "spec::conf-sizing",
                    &at,
                    format!("`{key}` is sizing, which emrship computes from `spark.executors`"),
                    "set `spark.executors: { instances: …, cores: …, memory: … }` instead",
                );
            } else if key == "spark.submit.deployMode" || key == "spark.master" {
                self.key_error(
                    "spec::conf-deploy",
                    &at,
                    format!("`{key}` is set by the step emrship renders"),
                    "use `spark.deploy_mode: cluster | client`",
                );
            } else if key == "spark.dynamicAllocation.enabled" {
                self.key_error(
                    "spec::conf-dynamic-allocation",
                    &at,
                    "`spark.dynamicAllocation.enabled` belongs in `spark.dynamic_allocation`",
                    "write `spark: { dynamic_allocation: false }`",
                );
            }
            self.check_plain_text_secret(&key, &value.0, &at);
            conf.insert(key, value.0);
        }
        let mut env = IndexMap::new();
        for (key, value) in raw.env {
            let at = path("spark.env").key(&key);
            self.check_env_name(&key, &at);
            self.check_plain_text_secret(&key, &value.0, &at);
            env.insert(key, value.0);
        }
        let submit_args: Vec<String> = raw.submit_args.into_iter().map(|a| a.0).collect();
        self.check_discrete_args(&submit_args, &path("spark.submit_args"));
        for (i, arg) in submit_args.iter().enumerate() {
            if let Some((flag, why)) = RENDERED_SUBMIT_FLAGS
                .iter()
                .find(|(flag, _)| arg == flag || arg.starts_with(&format!("{flag}=")))
            {
                self.error(
                    "spec::submit-arg-rendered",
                    &path("spark.submit_args").index(i),
                    format!("`{flag}` is set by the step emrship renders"),
                    *why,
                );
            }
        }
        let explicit = match raw.executors {
            RawExecutors::Auto => None,
            // Already reported; sizing something else instead would only add confusing errors.
            RawExecutors::Explicit(explicit) => Some(self.explicit_executors(explicit)?),
        };
        if raw.dynamic_allocation && explicit.is_some() {
            self.error("spec::dynamic-allocation-pinned", &path("spark.dynamic_allocation"), "dynamic allocation is on while `spark.executors.instances` pins the executor count", "set `dynamic_allocation: false` (emrship sizes executors for the nodes), or `executors: auto`");
        }
        let sizing_source = if explicit.is_some() {
            SizingSource::Explicit
        } else {
            SizingSource::Auto
        };
        let sizing = self.size(&cluster?.nodes, deploy_mode, workload, explicit.as_ref());
        if sizing.is_err() {
            return None;
        }
        Some(Spark {
            deploy_mode,
            dynamic_allocation: raw.dynamic_allocation,
            workload,
            sizing_source,
            sizing: sizing.ok().flatten(),
            conf,
            env,
            submit_args,
        })
    }

    fn explicit_executors(&mut self, raw: RawExplicitExecutors) -> Option<ExplicitExecutors> {
        let at = path("spark.executors");
        let instances = self.required(raw.instances, &at.key("instances"), "instances: 20");
        let cores = self.required(raw.cores, &at.key("cores"), "cores: 4");
        let memory = self.required(raw.memory, &at.key("memory"), "memory: 11g");
        if instances == Some(0) || cores == Some(0) {
            self.key_error(
                "spec::zero-executors",
                &at,
                "executor instances and cores must be at least 1",
                "use `executors: auto` to let emrship size them",
            );
        }
        let memory_mib = memory.and_then(|m| match sizing::memory::parse_memory_mib(m.as_str()) {
            Ok(mib) => Some(mib),
            Err(why) => {
                self.error(
                    "spec::memory",
                    &at.key("memory"),
                    format!("`{}` is not a memory size", m.as_str()),
                    why,
                );
                None
            }
        });
        let overhead = match raw.memory_overhead {
            Some(text) => match sizing::memory::parse_memory_mib(text.as_str()) {
                Ok(mib) => Some(Some(mib)),
                Err(why) => {
                    self.error(
                        "spec::memory",
                        &at.key("memory_overhead"),
                        format!("`{}` is not a memory size", text.as_str()),
                        why,
                    );
                    None
                }
            },
            None => Some(None),
        };
        Some(ExplicitExecutors {
            instances: instances?,
            cores: cores?,
            memory_mib: memory_mib?,
            memory_overhead_mib: overhead?,
        })
    }

    /// Sizes executors for the worker nodes. `Ok(None)`: no workers (single-node cluster).
    fn size(
        &mut self,
        nodes: &Nodes,
        deploy_mode: DeployMode,
        workload: Workload,
        explicit: Option<&ExplicitExecutors>,
    ) -> Result<Option<sizing::ExecutorSizing>, ()> {
        let workers = nodes.worker_types();
        let Some(smallest) = workers
            .iter()
            .copied()
            .min_by_key(|t| (t.yarn_memory_mib, t.vcpu))
        else {
            return Ok(None);
        };
        let node_count = worker_node_count(nodes);
        if workers.iter().any(|t| t.name != smallest.name) {
            self.warning(
                "spec::mixed-worker-types",
                &path("cluster"),
                format!(
                    "worker nodes mix instance types; executors are sized for the smallest, {}",
                    smallest.name
                ),
                "use one worker instance type (or weights in fleets) to use every node fully",
            );
        }
        let (at, result) = match explicit {
            None => (
                path("spark.executors"),
                sizing::size_auto(smallest, node_count, deploy_mode, workload).map_err(|p| vec![p]),
            ),
            Some(explicit) => (
                path("spark.executors"),
                sizing::check_explicit(smallest, node_count, deploy_mode, workload, explicit),
            ),
        };
        match result {
            Ok(sizing) => Ok(Some(sizing)),
            Err(problems) => {
                for problem in problems {
                    let code = match problem {
                        sizing::SizingProblem::ContainerTooLarge { .. } => {
                            "spec::executor-too-large"
                        }
                        sizing::SizingProblem::TooManyCores { .. } => "spec::executor-cores",
                        sizing::SizingProblem::DriverTooLarge { .. } => "spec::driver-too-large",
                        sizing::SizingProblem::DoesNotFit { .. } => "spec::executors-do-not-fit",
                        sizing::SizingProblem::NoWorkerNodes => "spec::no-workers",
                        sizing::SizingProblem::ZeroValue { .. } => "spec::zero-executors",
                    };
                    let message = problem.to_string();
                    let (message, help) = message
                        .split_once("; ")
                        .map_or((message.clone(), String::new()), |(m, h)| {
                            (m.to_string(), h.to_string())
                        });
                    self.error(code, &at, message, help);
                }
                Err(())
            }
        }
    }

    fn job(
        &mut self,
        raw: RawJob,
        cluster: Option<&Cluster>,
        context: RunContext,
        release: Option<&ReleaseLabel>,
        deploy_mode: Option<DeployMode>,
        owner: Owner<'_>,
    ) -> Option<Job> {
        let kinds: Vec<&str> = [
            ("command", raw.command.is_some()),
            ("pyspark", raw.pyspark.is_some()),
            ("jar", raw.jar.is_some()),
            ("executable", raw.executable.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| *key)
        .collect();
        if kinds.len() > 1 {
            self.key_error(
                "spec::job-kinds",
                &path("job"),
                format!(
                    "`job` sets {}; a job runs one application",
                    kinds
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                "keep one of `command` (emrship-job), `pyspark`, `jar` or `executable`",
            );
            return None;
        }
        if kinds.is_empty() && !self.removed.contains(&path("job.command")) {
            self.key_error(
                "spec::missing-key",
                &path("job"),
                "`job` says neither which emrship-job command nor which application to run",
                "add `command: match-rate` (emrship-job), or your own `pyspark: { main: main.py }`, `jar: { path: app.jar }` or `executable: { path: bin/job }`",
            );
            return None;
        }
        if raw.is_user_app() {
            return self.user_app_job(raw, cluster, context, release?, deploy_mode, owner);
        }
        let is_stream = raw.command.as_deref() == Some(commands::STREAM_COMMAND);
        if raw.kinesis.is_some() {
            let help = if is_stream {
                "`stream` names its stream in `job.args.stream` (and its lease table in \
                 `job.args.lease_table`): move the values there"
                    .to_string()
            } else {
                "remove it: `job.kinesis` describes the stream a user's application \
                 (`job.pyspark`, `job.jar`, `job.executable`) reads"
                    .to_string()
            };
            self.key_error(
                "spec::kinesis-built-in",
                &path("job.kinesis"),
                "`job.kinesis` applies to a user's application, not to emrship-job's commands",
                help,
            );
        }
        let engine = self.required(raw.engine, &path("job.engine"), "engine: spark")?;
        let command_name =
            self.required(raw.command, &path("job.command"), "command: match-rate")?;
        let command = commands::lookup(&command_name);
        if command.is_none() {
            let names = commands::COMMANDS.iter().map(|c| c.name);
            let help = match did_you_mean(&command_name, names.clone()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("emrship-job runs: {}", names.collect::<Vec<_>>().join(", ")),
            };
            self.error(
                "spec::unknown-command",
                &path("job.command"),
                format!("unknown job command `{command_name}`"),
                help,
            );
        }
        let mut args = Vec::new();
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        let mut dynamodb_tables = Vec::new();
        let mut stream = None;
        let mut lease_table = None;
        if let Some(command) = command {
            if command.takes_date {
                args.push("--date".to_string());
                args.push(context.date.format("%Y-%m-%d").to_string());
            }
        }
        match raw.args {
            RawJobArgs::Named(named) => {
                if let Some(command) = command {
                    for spec in command.args.iter().filter(|a| a.required) {
                        if !named.contains_key(spec.name) {
                            self.key_error(
                                "spec::missing-job-arg",
                                &path("job.args"),
                                format!("`{}` needs the argument `{}`", command.name, spec.name),
                                format!("add `{}: …` under `job.args`", spec.name),
                            );
                        }
                    }
                }
                for (key, value) in named {
                    let at = arg_path(&path("job.args").key(&key), &value);
                    let marked = marked_role(&value);
                    let value = value.value().to_string();
                    let spec = command.and_then(|c| c.args.iter().find(|a| a.name == key));
                    if let (Some(command), None) = (command, spec) {
                        let help = match did_you_mean(&key, command.args.iter().map(|a| a.name)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "`{}` takes: {}",
                                command.name,
                                command
                                    .args
                                    .iter()
                                    .map(|a| a.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        };
                        self.key_error(
                            "spec::unknown-job-arg",
                            &at,
                            format!("`{}` takes no argument `{key}`", command.name),
                            help,
                        );
                        continue;
                    }
                    if value.is_empty() {
                        self.error("spec::empty-arg", &at, format!("`job.args.{key}` is empty"), "command-runner.jar drops empty strings, which shifts every later argument; give it a value or remove it");
                        continue;
                    }
                    let role = marked.or(spec.map(|s| s.role)).unwrap_or(ArgRole::Plain);
                    match role {
                        ArgRole::KinesisStream => stream = self.kinesis_stream(&value, &at, owner),
                        ArgRole::LeaseTable => {
                            if self.check_lease_table(&value, &at) {
                                lease_table = Some(value.clone());
                            }
                        }
                        ArgRole::Sink if is_stream && !value.starts_with("s3://") => {
                            self.stream_output_not_s3(&value, &at)
                        }
                        _ => {
                            if is_stream {
                                self.check_stream_arg(&key, &value, &at);
                            }
                            self.classify_location(
                                &value,
                                role,
                                &at,
                                &mut reads,
                                &mut writes,
                                &mut dynamodb_tables,
                            );
                        }
                    }
                    args.push(format!("--{key}"));
                    args.push(value);
                }
            }
            RawJobArgs::List(_) if is_stream => {
                self.key_error(
                    "spec::stream-args-by-name",
                    &path("job.args"),
                    "`stream` takes its arguments by name, not as a list",
                    "write `args: { stream: page-events, output: s3://bucket/windows/ }`; \
                     emrship grants the stream and its lease table from those names",
                );
            }
            RawJobArgs::List(raw_list) => {
                let list: Vec<String> = raw_list.iter().map(|a| a.value().to_string()).collect();
                self.check_discrete_args(&list, &path("job.args"));
                for (i, value) in list.iter().enumerate() {
                    // The value after `--output` is written, the one after `--views` read.
                    let flag_role = marked_role(&raw_list[i]).or_else(|| {
                        i.checked_sub(1)
                            .and_then(|j| list[j].strip_prefix("--"))
                            .and_then(|name| command?.args.iter().find(|a| a.name == name))
                            .map(|a| a.role)
                    });
                    if value.starts_with("s3://") {
                        self.classify_location(
                            value,
                            flag_role.unwrap_or(ArgRole::Input),
                            &arg_path(&path("job.args").index(i), &raw_list[i]),
                            &mut reads,
                            &mut writes,
                            &mut dynamodb_tables,
                        );
                    }
                }
                args.extend(list);
            }
        }
        let secrets = self.secrets(
            raw.secrets,
            "e.g. `arn:aws:secretsmanager:us-east-1:123456789012:secret:ads-db`",
        );
        let mut files = Vec::new();
        for (i, spec_path) in raw.files.into_iter().enumerate() {
            let at = path("job.files").index(i);
            let file_name = spec_path.rsplit('/').next().unwrap_or_default().to_string();
            if file_name.is_empty() || spec_path.contains(',') || spec_path.contains('#') {
                self.error(
                    "spec::job-file",
                    &at,
                    format!("`{spec_path}` cannot be shipped with --files"),
                    "name a file (not a directory) whose path has no `,` or `#`",
                );
            } else if files.iter().any(|f: &JobFile| f.file_name == file_name) {
                self.error("spec::job-file-duplicate", &at, format!("two job files are named `{file_name}`; they would overwrite each other in the container"), "rename one of them");
            } else {
                files.push(JobFile {
                    spec_path,
                    file_name,
                });
            }
        }
        let arch = cluster.and_then(|cluster| self.job_arch(raw.arch, engine, &cluster.nodes));
        let keep_alive = cluster.is_some_and(|cluster| cluster.keep_alive);
        // A stream's step runs until it is stopped: it is long-running whatever the cluster.
        let long_running = keep_alive || is_stream;
        let action_on_failure = raw.action_on_failure.unwrap_or(if long_running {
            ActionOnFailure::Continue
        } else {
            ActionOnFailure::TerminateCluster
        });
        if action_on_failure == ActionOnFailure::TerminateCluster && long_running {
            let message = if keep_alive {
                "a failing step will terminate this long-running cluster"
            } else {
                "a failing stream step will terminate the cluster, and with it every other step"
            };
            self.warning(
                "spec::terminate-long-running",
                &path("job.action_on_failure"),
                message,
                "use `CONTINUE` or `CANCEL_AND_WAIT` for long-running clusters",
            );
        }
        let kinesis = if is_stream && command.is_some() {
            let lease_table = lease_table.unwrap_or_else(|| {
                let default = format!("{}-leases", owner.name);
                args.push("--lease_table".to_string());
                args.push(default.clone());
                default
            });
            // The worker on the node talks to Kinesis and DynamoDB in the spec's region.
            args.push("--region".to_string());
            args.push(owner.region.to_string());
            stream.map(|(stream_arn, stream_name)| KinesisAccess {
                stream_arn,
                stream_name,
                lease_table,
                metrics_namespace: None,
            })
        } else {
            None
        };
        let job = Job {
            engine,
            command: command_name,
            app: None,
            args,
            secrets,
            files,
            binary: raw.binary,
            arch: arch?,
            action_on_failure,
            reads,
            writes,
            dynamodb_tables,
            kinesis,
        };
        command?;
        Some(job)
    }

    fn job_arch(&mut self, declared: Option<Arch>, engine: Engine, nodes: &Nodes) -> Option<Arch> {
        // The job binary runs on the nodes that run it: executors on core/task nodes under
        // Spark, the primary node for `engine: local` (and the driver's side of Spark).
        let mut runners = nodes.master_types();
        if engine == Engine::Spark {
            runners.extend(nodes.worker_types());
        }
        let mut archs: Vec<Arch> = runners.iter().map(|t| t.arch).collect();
        archs.sort_by_key(|a| *a as u8);
        archs.dedup();
        if archs.len() > 1 {
            let describe = |arch: Arch| {
                runners
                    .iter()
                    .filter(|t| t.arch == arch)
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            self.key_error("spec::mixed-arch", &path("cluster"), format!("the nodes that run the job mix x86_64 ({}) and arm64 ({}); one binary cannot run on both", describe(Arch::X86_64), describe(Arch::Arm64)), "use Graviton types (…g) everywhere, or x86_64 types everywhere");
            return None;
        }
        let node_arch = archs.first().copied()?;
        match declared {
            Some(arch) if arch != node_arch => {
                self.error("spec::arch-mismatch", &path("job.arch"), format!("the job binary is {arch} but the nodes that run it are {node_arch}"), format!("build for {node_arch} (remove `job.arch` and emrship picks it), or choose {arch} instance types"));
                None
            }
            _ => Some(node_arch),
        }
    }

    fn classify_location(
        &mut self,
        value: &str,
        role: ArgRole,
        at: &SpecPath,
        reads: &mut Vec<S3Uri>,
        writes: &mut Vec<S3Uri>,
        tables: &mut Vec<String>,
    ) {
        if value.starts_with("s3") || value.starts_with("https://") {
            if let Some(uri) = self.s3(value, at) {
                // Grant the part that does not change from run to run (`dt={{date}}/` →
                // `dt=`), so the role's policy is the same every day.
                let uri = match self
                    .loaded
                    .templates
                    .get(at)
                    .and_then(|t| t.split_once("{{"))
                {
                    Some((stable, _)) => S3Uri::parse(stable).unwrap_or(uri),
                    None => uri,
                };
                match role {
                    ArgRole::Sink => writes.push(uri),
                    _ => reads.push(uri),
                }
            }
            return;
        }
        match role {
            ArgRole::Catalog => match value.strip_prefix("dynamodb://") {
                Some(table) if !table.is_empty() && table.len() <= 255 && table.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) => tables.push(table.to_string()),
                _ => self.error("spec::catalog-uri", at, format!("`{value}` is not a catalog location"), "a catalog is `s3://bucket/prefix/` (Parquet or CSV files) or `dynamodb://TABLE`"),
            },
            ArgRole::Sink => {
                if let Some(rest) = value.strip_prefix("postgres://").or_else(|| value.strip_prefix("postgresql://")) {
                    let userinfo = rest.split('@').next().filter(|_| rest.contains('@')).unwrap_or("");
                    if userinfo.contains(':') {
                        self.error("spec::plain-text-secret", at, "the PostgreSQL URL holds a password in plain text; it would show in the plan, the step and the EMR console", "remove the password from the URL and add `PGPASSWORD: <secret ARN>` under `job.secrets`");
                    }
                } else if !value.starts_with("sqlite://") {
                    self.error("spec::sink-uri", at, format!("`{value}` is not a sink emrship-job writes to"), "a sink is `postgres://user@host:5432/db`, `sqlite://PATH` or an `s3://bucket/prefix/`");
                }
            }
            ArgRole::Input => self.error("spec::input-uri", at, format!("`{value}` is not an S3 location"), "on a cluster the job reads `s3://bucket/prefix/`"),
            // Checked where they are read (`kinesis_stream`, `check_lease_table`).
            ArgRole::KinesisStream | ArgRole::LeaseTable | ArgRole::Plain => {}
        }
    }

    /// `job.secrets`: environment variable names → secret references (never values).
    fn secrets(
        &mut self,
        raw: IndexMap<String, String>,
        example: &str,
    ) -> IndexMap<String, String> {
        let mut secrets = IndexMap::new();
        for (key, value) in raw {
            let at = path("job.secrets").key(&key);
            self.check_env_name(&key, &at);
            if !is_secret_reference(&value) {
                self.error("spec::plain-text-secret", &at, format!("`job.secrets.{key}` holds a plain-text value, not a secret reference"), format!("store the value in AWS Secrets Manager or SSM Parameter Store and write its ARN, {example}"));
            }
            secrets.insert(key, value);
        }
        secrets
    }

    fn check_env_name(&mut self, name: &str, at: &SpecPath) {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.key_error(
                "spec::env-name",
                at,
                format!("`{name}` is not an environment variable name"),
                "use letters, digits and `_`, not starting with a digit",
            );
        }
    }

    /// Passwords and keys written in plain text end up in the plan, DescribeCluster and the
    /// console; they belong in a secret store, referenced from `job.secrets`.
    fn check_plain_text_secret(&mut self, key: &str, value: &str, at: &SpecPath) {
        let upper = key.to_ascii_uppercase();
        let secret_like_key = [
            "PASSWORD",
            "PASSWD",
            "SECRET",
            "TOKEN",
            "PRIVATE_KEY",
            "ACCESS_KEY",
            "API_KEY",
            "CREDENTIAL",
        ]
        .iter()
        .any(|needle| upper.replace(['.', '-'], "_").contains(needle));
        let secret_like_value =
            (value.starts_with("AKIA") || value.starts_with("ASIA")) && value.len() == 20;
        // Switches and numbers (`…credentials.enabled: false`, `TOKEN_TTL: 3600`) hold no secret.
        let is_switch_or_number = matches!(value, "true" | "false") || value.parse::<f64>().is_ok();
        if (secret_like_key
            && !value.is_empty()
            && !is_switch_or_number
            && !is_secret_reference(value))
            || secret_like_value
        {
            self.error("spec::plain-text-secret", at, format!("`{key}` looks like a secret written in plain text"), "store it in AWS Secrets Manager or SSM Parameter Store and reference it under `job.secrets` (e.g. `PGPASSWORD: arn:aws:secretsmanager:…`)");
        }
    }

    /// Each list element must be one flag or one value: command-runner.jar passes elements to
    /// the program as they are, with no shell to split `"--master yarn"`, and drops empty ones.
    fn check_discrete_args(&mut self, args: &[String], at: &SpecPath) {
        for (i, arg) in args.iter().enumerate() {
            self.check_discrete_arg(arg, &at.index(i));
        }
    }

    fn check_discrete_arg(&mut self, arg: &str, at: &SpecPath) {
        if arg.is_empty() {
            self.error("spec::empty-arg", at, "empty argument", "command-runner.jar drops empty strings, shifting every later argument; remove it or give it a value");
        } else if arg.starts_with('-')
            && arg
                .split_once(char::is_whitespace)
                .is_some_and(|(flag, _)| !flag.contains('='))
        {
            let (flag, value) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
            self.error("spec::joined-arg", at, format!("`{arg}` holds a flag and its value in one element"), format!("command-runner.jar does not split arguments: write `{flag}` and `{}` as two list elements", value.trim()));
        }
    }

    fn schedule(&mut self, raw: RawSchedule) -> Option<Schedule> {
        let at = path("schedule");
        let expression = self.required(raw.cron, &at.key("cron"), "cron: \"cron(0 6 * * ? *)\"")?;
        if let Err(why) = schedule::check_expression(&expression) {
            self.error(
                "spec::cron",
                &at.key("cron"),
                format!("`{expression}` is not an EventBridge schedule expression"),
                why,
            );
        }
        let days_back = match raw.date.as_deref().map(schedule::parse_date_rule) {
            None => 1,
            Some(Ok(days)) => days,
            Some(Err(why)) => {
                self.error("spec::date-rule", &at.key("date"), "unknown date rule", why);
                1
            }
        };
        let timezone = raw.timezone.unwrap_or_else(|| "UTC".to_string());
        if timezone.parse::<chrono_tz::Tz>().is_err() {
            self.error(
                "spec::timezone",
                &at.key("timezone"),
                format!("unknown time zone `{timezone}`"),
                "use an IANA name such as `UTC`, `Europe/Paris` or `America/New_York`",
            );
        }
        Some(Schedule {
            expression,
            days_back,
            timezone,
        })
    }
}

impl RawJob {
    pub fn is_user_app(&self) -> bool {
        self.pyspark.is_some() || self.jar.is_some() || self.executable.is_some()
    }

    /// Where the job's work runs: a user's Spark application under Spark on YARN, a user's
    /// executable on the primary node, emrship-job where `job.engine` says.
    pub fn runs_on(&self) -> Option<Engine> {
        if self.pyspark.is_some() || self.jar.is_some() {
            Some(Engine::Spark)
        } else if self.executable.is_some() {
            Some(Engine::Local)
        } else {
            self.engine
        }
    }
}

/// The role an argument was marked with in the spec (`{input: …}` or `{output: …}`).
fn marked_role(arg: &RawArg) -> Option<ArgRole> {
    match arg {
        RawArg::Plain(_) => None,
        RawArg::Input(_) => Some(ArgRole::Input),
        RawArg::Output(_) => Some(ArgRole::Sink),
    }
}

/// Where an argument's value sits in the spec: under its `input`/`output` key when marked.
fn arg_path(at: &SpecPath, arg: &RawArg) -> SpecPath {
    match arg {
        RawArg::Plain(_) => at.clone(),
        RawArg::Input(_) => at.key("input"),
        RawArg::Output(_) => at.key("output"),
    }
}

/// Names the step itself puts in every container's working directory.
pub const MODULES_ZIP_NAME: &str = "modules.zip";
pub const DEPS_ALIAS: &str = "emrship_deps";

/// How many worker nodes YARN has: group counts, or for fleets the fewest nodes their
/// target capacity can come as (each node supplies its weight in units).
fn worker_node_count(nodes: &Nodes) -> u32 {
    match nodes {
        Nodes::Groups { core, task, .. } => core.iter().chain(task.iter()).map(|g| g.count).sum(),
        Nodes::Fleets { core, task, .. } => {
            core_fleet_nodes(core) + task.as_ref().map_or(0, core_fleet_nodes)
        }
    }
}

fn core_fleet_nodes(fleet: &Fleet) -> u32 {
    let capacity = fleet.on_demand + fleet.spot;
    let heaviest = fleet
        .instance_types
        .iter()
        .map(|c| c.weight)
        .max()
        .unwrap_or(1)
        .max(1);
    capacity.div_ceil(heaviest)
}

/// A Secrets Manager secret or an SSM parameter, by ARN.
pub fn is_secret_reference(value: &str) -> bool {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && ((parts[2] == "secretsmanager" && parts[5].starts_with("secret:"))
            || (parts[2] == "ssm" && parts[5].starts_with("parameter/")))
}
