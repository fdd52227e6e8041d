//! A real PostgreSQL server for integration tests, and a fresh schema per test so tests run in
//! parallel without seeing each other's tables.
//!
//! The server: EMRSHIP_TEST_PG_URL with PGPASSWORD and EMRSHIP_TEST_PG_CA (scripts/test.sh
//! exports them), else the one scripts/postgres.sh starts (user `emrship_test`, fixed test
//! password `emrship-test`, TLS with a throwaway CA).
//!
//! ```ignore
//! let db = common::postgres::TestSchema::new("round_trip");
//! let sink = PostgresSink::connect_with_env(&db.url, db.env())?;
//! let mut client = db.client();
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use postgres::{Client, Config, NoTls};

/// The password of the server scripts/postgres.sh starts.
pub const SCRIPT_PASSWORD: &str = "emrship-test";

pub struct TestServer {
    /// Without a password.
    pub url: String,
    pub password: Option<String>,
    /// The PEM CA file that verifies the server's TLS certificate, if known.
    pub ca: Option<PathBuf>,
}

/// The test server, found or started once per test binary.
pub fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("EMRSHIP_TEST_PG_URL") {
            if !url.is_empty() {
                return TestServer {
                    url,
                    password: std::env::var("PGPASSWORD").ok(),
                    ca: std::env::var_os("EMRSHIP_TEST_PG_CA")
                        .filter(|ca| !ca.is_empty())
                        .map(PathBuf::from),
                };
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let output = Command::new("bash")
            .arg(root.join("scripts/postgres.sh"))
            .args(["--print-url", "--print-ca"])
            .env_remove("EMRSHIP_TEST_PG_URL")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/postgres.sh");
        assert!(output.status.success(), "scripts/postgres.sh failed");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut lines = stdout.lines().map(str::trim);
        TestServer {
            url: lines
                .next()
                .expect("scripts/postgres.sh printed no URL")
                .to_string(),
            password: Some(SCRIPT_PASSWORD.to_string()),
            ca: lines.next().map(PathBuf::from),
        }
    })
}

/// `url` with one more query parameter.
pub fn with_param(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={value}")
}

/// A client for `url` with the test password.
pub fn connect(url: &str) -> Client {
    let mut config = Config::from_str(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    if let Some(password) = &server().password {
        config.password(password);
    }
    config
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e:?}"))
}

/// A schema of its own, dropped (with everything in it) at the end of the test.
pub struct TestSchema {
    pub name: String,
    /// The server URL with `search_path` set to this schema: what the sink under test gets.
    pub url: String,
}

impl TestSchema {
    pub fn new(label: &str) -> TestSchema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t_{label}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
        .to_ascii_lowercase();
        let mut admin = connect(&server().url);
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; CREATE SCHEMA \"{name}\""
            ))
            .unwrap_or_else(|e| panic!("cannot create schema {name}: {e:?}"));
        let url = with_param(&server().url, "options", &format!("-csearch_path%3D{name}"));
        TestSchema { name, url }
    }

    /// A client whose search_path is this schema.
    pub fn client(&self) -> Client {
        connect(&self.url)
    }

    /// The environment the sink reads its password from: the test password, nothing else.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
        let password = server().password.clone();
        move |name: &str| match name {
            "PGPASSWORD" => password.clone(),
            _ => None,
        }
    }

    /// Names of the tables in this schema (partitions included), sorted.
    pub fn tables(&self) -> Vec<String> {
        self.client()
            .query(
                "SELECT c.relname::text FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
                  ORDER BY 1",
                &[&self.name],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut config) = Config::from_str(&server().url) {
            if let Some(password) = &server().password {
                config.password(password);
            }
            if let Ok(mut client) = config.connect(NoTls) {
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
            }
        }
    }
}
