//! `job.pyspark`, `job.jar`, `job.executable`: a user's own application. Checks what can be
//! checked from the spec alone (names, formats, versions, deploy mode); what needs the files
//! themselves (do they exist, is a path a folder, what a jar or a wheel holds) is checked where
//! they are read, with the positions recorded here.

use super::*;

/// The spec keys that belong to emrship-job's commands only.
const BUILT_IN_ONLY: &[&str] = &["engine", "binary", "files"];

impl Resolver<'_> {
    pub(super) fn user_app_job(
        &mut self,
        raw: RawJob,
        cluster: Option<&Cluster>,
        context: RunContext,
        release: &ReleaseLabel,
        deploy_mode: Option<DeployMode>,
        owner: Owner<'_>,
    ) -> Option<Job> {
        let _ = context;
        let kind_key = if raw.pyspark.is_some() {
            "pyspark"
        } else if raw.jar.is_some() {
            "jar"
        } else {
            "executable"
        };
        for key in BUILT_IN_ONLY {
            let set = match *key {
                "engine" => raw.engine.is_some(),
                "binary" => raw.binary.is_some(),
                _ => !raw.files.is_empty(),
            };
            if set {
                let help = if *key == "files" {
                    format!("list the application's files under `job.{kind_key}.files`")
                } else {
                    format!("remove it: `job.{kind_key}` says how the application runs")
                };
                self.key_error(
                    "spec::built-in-only",
                    &path("job").key(key),
                    format!("`job.{key}` applies to emrship-job's own commands, not to `job.{kind_key}`"),
                    help,
                );
            }
        }
        let engine = raw.runs_on().unwrap_or(Engine::Spark);
        let spark_app = raw.pyspark.is_some() || raw.jar.is_some();
        let kinesis = raw
            .kinesis
            .and_then(|kinesis| self.app_kinesis(kinesis, owner, spark_app));
        let (args, reads, writes) = self.app_args(raw.args);
        let mut names = ShippedNames::default();
        let (app, command) = match (raw.pyspark, raw.jar, raw.executable) {
            (Some(py), _, _) => self.pyspark_app(py, release, deploy_mode, &mut names)?,
            (_, Some(jar), _) => self.jar_app(jar, deploy_mode, &mut names)?,
            (_, _, Some(exe)) => self.executable_app(exe, &mut names)?,
            _ => return None,
        };
        let secrets = self.secrets(
            raw.secrets,
            "whose value the application fetches: it gets the ARN as `EMRSHIP_SECRET_<NAME>`",
        );
        let arch = cluster.and_then(|cluster| self.job_arch(raw.arch, engine, &cluster.nodes));
        let keep_alive = cluster.is_some_and(|cluster| cluster.keep_alive);
        let action_on_failure = raw.action_on_failure.unwrap_or(if keep_alive {
            ActionOnFailure::Continue
        } else {
            ActionOnFailure::TerminateCluster
        });
        Some(Job {
            engine,
            command,
            app: Some(app),
            args,
            secrets,
            files: Vec::new(),
            binary: None,
            arch: arch?,
            action_on_failure,
            reads,
            writes,
            dynamodb_tables: Vec::new(),
            kinesis,
        })
    }

    /// The application's own arguments, in order; `{input: …}` and `{output: …}` values are
    /// granted to the instance profile (read, or read and write).
    fn app_args(&mut self, raw: RawJobArgs) -> (Vec<String>, Vec<S3Uri>, Vec<S3Uri>) {
        let at = path("job.args");
        let items: Vec<(SpecPath, Option<String>, RawArg)> = match raw {
            RawJobArgs::List(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, arg)| (at.index(i), None, arg))
                .collect(),
            RawJobArgs::Named(named) => named
                .into_iter()
                .map(|(key, arg)| (at.key(&key), Some(key), arg))
                .collect(),
        };
        let mut args = Vec::new();
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        for (item_at, key, arg) in &items {
            if let Some(key) = key {
                args.push(format!("--{key}"));
            }
            args.push(arg.value().to_string());
            let value_at = arg_path(item_at, arg);
            self.check_discrete_arg(arg.value(), &value_at);
            let Some(role) = marked_role(arg) else {
                continue;
            };
            if !arg.value().starts_with("s3://") {
                self.error(
                    "spec::marked-arg",
                    &value_at,
                    format!("`{}` is marked as an {} but is not an S3 location", arg.value(), if role == ArgRole::Input { "input" } else { "output" }),
                    "mark only `s3://bucket/prefix/` values (they decide what the instance profile may read and write); write other values plainly",
                );
                continue;
            }
            let mut ignored_tables = Vec::new();
            self.classify_location(
                arg.value(),
                role,
                &value_at,
                &mut reads,
                &mut writes,
                &mut ignored_tables,
            );
        }
        (args, reads, writes)
    }

    fn pyspark_app(
        &mut self,
        raw: RawPySparkApp,
        release: &ReleaseLabel,
        deploy_mode: Option<DeployMode>,
        names: &mut ShippedNames,
    ) -> Option<(UserApp, String)> {
        let at = path("job.pyspark");
        let project = self.project_dir(raw.project, &at);
        let main_path = self.required(raw.main, &at.key("main"), "main: main.py");
        let main = main_path.and_then(|p| self.app_path(&p, &at.key("main")));
        if let Some(main) = &main {
            if !main.path.ends_with(".py") {
                self.error(
                    "spec::pyspark-main",
                    &at.key("main"),
                    format!("`{}` is not a Python script", main.path),
                    "spark-submit runs a `.py` entry script; for a jar use `job.jar`, for a program `job.executable`",
                );
            }
            names.claim(self, main, &at.key("main"));
        }
        let mut modules = Vec::new();
        for (i, module) in raw.modules.iter().enumerate() {
            let module_at = at.key("modules").index(i);
            if let Some(module) = self.app_path(module, &module_at) {
                if modules.iter().any(|m: &AppPath| m.name == module.name) {
                    self.error(
                        "spec::module-duplicate",
                        &module_at,
                        format!(
                            "two modules are named `{}`; the zip for --py-files can hold only one",
                            module.name
                        ),
                        "rename one, or list their common parent package once",
                    );
                } else {
                    modules.push(module);
                }
            }
        }
        if !modules.is_empty() {
            names.reserve(MODULES_ZIP_NAME, "the zip of `job.pyspark.modules`");
        }
        let files = self.app_files(&raw.files, &at.key("files"), names);
        let requirements = raw.requirements.and_then(|r| {
            let file = self.app_path(&r, &at.key("requirements"))?;
            let format = match file.name.as_str() {
                "pyproject.toml" => RequirementsFormat::Pyproject,
                "uv.lock" => RequirementsFormat::UvLock,
                "poetry.lock" => RequirementsFormat::PoetryLock,
                name if name.ends_with(".txt") => RequirementsFormat::RequirementsTxt,
                name => {
                    self.error("spec::requirements-format", &at.key("requirements"), format!("`{name}` is not a requirements format emrship reads"), "name a `requirements.txt` (pinned, hashes welcome), `pyproject.toml`, `uv.lock` or `poetry.lock`");
                    return None;
                }
            };
            names.reserve(DEPS_ALIAS, "the dependency archive");
            Some(Requirements { file, format })
        });
        let runtime = &release.runtime;
        let python = match raw.python {
            None => Some(runtime.default_python),
            Some(text) => {
                let parsed = text
                    .0
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
                let offered = runtime
                    .pythons
                    .iter()
                    .map(|(a, b)| format!("{a}.{b}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                match parsed {
                    Some(version) if runtime.pythons.contains(&version) => Some(version),
                    _ => {
                        self.error(
                            "spec::python-version",
                            &at.key("python"),
                            format!("{} nodes have no Python {}", release.label, text.0),
                            format!("choose one the release ships ({offered}), or another release (emr-7.1.0 and later ship 3.11)"),
                        );
                        None
                    }
                }
            }
        };
        if deploy_mode == Some(DeployMode::Client) && (requirements.is_some() || !files.is_empty())
        {
            self.error(
                "spec::client-mode-archives",
                &path("spark.deploy_mode"),
                "in client deploy mode the driver runs on the primary node outside YARN: it gets neither the dependency archive nor the files in its working directory",
                "use `deploy_mode: cluster` (the default), where the driver's container gets them like every executor",
            );
        }
        let main = main?;
        let command = main.name.clone();
        Some((
            UserApp {
                project: project?,
                kind: AppKind::PySpark {
                    main,
                    modules,
                    requirements,
                    python: python?,
                },
                files,
            },
            command,
        ))
    }

    fn jar_app(
        &mut self,
        raw: RawJarApp,
        deploy_mode: Option<DeployMode>,
        names: &mut ShippedNames,
    ) -> Option<(UserApp, String)> {
        let at = path("job.jar");
        let _ = deploy_mode;
        let project = self.project_dir(raw.project, &at);
        let jar = self
            .required(raw.path, &at.key("path"), "path: build/libs/app.jar")
            .and_then(|p| self.app_path(&p, &at.key("path")));
        if let Some(jar) = &jar {
            if !jar.path.ends_with(".jar") {
                self.error("spec::jar-path", &at.key("path"), format!("`{}` is not a jar", jar.path), "build the application into a jar (an assembly jar with Spark and Hadoop as `provided`)");
            }
            names.claim(self, jar, &at.key("path"));
        }
        if let Some(class) = &raw.main_class {
            let valid = !class.is_empty()
                && class.split('.').all(|part| {
                    part.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '$')
                        && part
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                });
            if !valid {
                self.error(
                    "spec::main-class",
                    &at.key("main_class"),
                    format!("`{class}` is not a Java class name"),
                    "write the fully qualified name, e.g. `com.example.Main`",
                );
            }
        }
        let mut jars = Vec::new();
        for (i, dep) in raw.jars.iter().enumerate() {
            let dep_at = at.key("jars").index(i);
            if dep.starts_with("s3://") {
                if let Some(uri) = self.s3(dep, &dep_at) {
                    jars.push(JarRef::S3(uri));
                }
            } else if let Some(local) = self.app_path(dep, &dep_at) {
                names.claim(self, &local, &dep_at);
                jars.push(JarRef::Local(local));
            }
        }
        for (i, coordinate) in raw.packages.iter().enumerate() {
            let package_at = at.key("packages").index(i);
            if coordinate.split(':').count() != 3 || coordinate.split(':').any(str::is_empty) {
                self.error(
                    "spec::package-coordinate",
                    &package_at,
                    format!("`{coordinate}` is not a Maven coordinate"),
                    "write `group:artifact:version`, e.g. `org.postgresql:postgresql:42.7.4`",
                );
            } else {
                self.warning("spec::packages-network", &package_at, format!("`{coordinate}` is resolved from a Maven repository on every run: the cluster needs internet access (a NAT gateway for private subnets) and a repository outage fails the step"), "download the jar once and list it under `job.jar.jars` (a local path emrship ships, or an `s3://` URI)");
            }
        }
        let files = self.app_files(&raw.files, &at.key("files"), names);
        let jar = jar?;
        let command = jar.name.clone();
        Some((
            UserApp {
                project: project?,
                kind: AppKind::Jar {
                    jar,
                    main_class: raw.main_class,
                    jars,
                    packages: raw.packages,
                },
                files,
            },
            command,
        ))
    }

    fn executable_app(
        &mut self,
        raw: RawExecutableApp,
        names: &mut ShippedNames,
    ) -> Option<(UserApp, String)> {
        let at = path("job.executable");
        let project = self.project_dir(raw.project, &at);
        let program = self
            .required(raw.path, &at.key("path"), "path: target/release/my-job")
            .and_then(|p| self.app_path(&p, &at.key("path")));
        if let Some(program) = &program {
            names.claim(self, program, &at.key("path"));
        }
        let files = self.app_files(&raw.files, &at.key("files"), names);
        let program = program?;
        let command = program.name.clone();
        Some((
            UserApp {
                project: project?,
                kind: AppKind::Executable { program },
                files,
            },
            command,
        ))
    }

    fn app_files(
        &mut self,
        raw: &[String],
        at: &SpecPath,
        names: &mut ShippedNames,
    ) -> Vec<AppPath> {
        let mut files = Vec::new();
        for (i, file) in raw.iter().enumerate() {
            let file_at = at.index(i);
            if let Some(file) = self.app_path(file, &file_at) {
                if names.claim(self, &file, &file_at) {
                    files.push(file);
                }
            }
        }
        files
    }

    /// `project`, relative to the spec file's folder; `""` when not set.
    fn project_dir(&mut self, raw: Option<String>, at: &SpecPath) -> Option<String> {
        match raw {
            None => Some(String::new()),
            Some(dir) => {
                let at = at.key("project");
                self.check_relative(&dir, &at)
                    .then(|| dir.trim_end_matches('/').to_string())
            }
        }
    }

    pub(super) fn app_path(&mut self, text: &str, at: &SpecPath) -> Option<AppPath> {
        if !self.check_relative(text, at) {
            return None;
        }
        let trimmed = text.trim_end_matches('/');
        let name = trimmed.rsplit('/').next().unwrap_or_default().to_string();
        if name.is_empty() || name == "." || name == ".." {
            self.error(
                "spec::app-path",
                at,
                format!("`{text}` names no file or folder"),
                "name the file or folder itself, e.g. `conf/app.ini` or `conf`",
            );
            return None;
        }
        if trimmed.contains(',') || trimmed.contains('#') {
            self.error("spec::app-path", at, format!("`{text}` cannot be shipped: spark-submit lists are separated by `,` and `#` starts an alias"), "rename the file or folder without `,` and `#`");
            return None;
        }
        Some(AppPath {
            path: trimmed.to_string(),
            name,
            origin: self.loaded.origin(at),
        })
    }

    fn check_relative(&mut self, text: &str, at: &SpecPath) -> bool {
        if text.is_empty() {
            self.error(
                "spec::app-path",
                at,
                "empty path",
                "write a path relative to the spec file's folder",
            );
            false
        } else if text.starts_with('/') || text.starts_with('~') || text.contains("://") {
            self.error("spec::app-path", at, format!("`{text}` is not a relative path"), "paths of the application are relative to the spec file's folder (and `project`), so the spec works from any checkout");
            false
        } else {
            true
        }
    }
}

/// The names things get in a container's working directory: YARN links every distributed file
/// there by its base name and silently keeps only one of two with the same name.
#[derive(Default)]
struct ShippedNames {
    taken: Vec<(String, String)>,
}

impl ShippedNames {
    fn reserve(&mut self, name: &str, what: &str) {
        self.taken.push((name.to_string(), what.to_string()));
    }

    /// Takes `path`'s name; reports a clash and returns false when something has it already.
    fn claim(&mut self, resolver: &mut Resolver<'_>, path: &AppPath, at: &SpecPath) -> bool {
        if let Some((_, holder)) = self.taken.iter().find(|(name, _)| *name == path.name) {
            resolver.error(
                "spec::shipped-name-clash",
                at,
                format!("`{}` would land in the container's working directory as `{}`, which {holder} already has; YARN keeps only one of two files with one name", path.path, path.name),
                "rename one of them, or ship their folders (a folder lands as `name/…`)",
            );
            return false;
        }
        self.taken
            .push((path.name.clone(), format!("`{}`", path.path)));
        true
    }
}
