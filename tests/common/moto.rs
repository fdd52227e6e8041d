//! A real AWS API emulator for integration tests: moto's server mode from the project's pinned
//! Python test environment (scripts/python-env.sh), on a free loopback port, stopped on drop.
//!
//! Use one per test binary (or per test when state must not be shared):
//!
//! ```ignore
//! let moto = common::moto::Moto::start();
//! let mut cmd = moto.command(env!("CARGO_BIN_EXE_emrship"));
//! ```

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python of the project's test environment: EMRSHIP_TEST_PYTHON (set by scripts/test.sh),
/// else whatever scripts/python-env.sh creates.
pub fn test_python() -> PathBuf {
    if let Some(path) = std::env::var_os("EMRSHIP_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join("scripts/python-env.sh"))
        .arg("--print-python")
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/python-env.sh");
    assert!(output.status.success(), "scripts/python-env.sh failed");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A free loopback port that no other emulator of this test process was given. The OS may
/// hand out a port again right after `bind(0)` released it, before the first emulator binds
/// it: two tests would then share one server (the loser's wait connects to the winner's), and
/// see each other's state or a server that vanishes with the other test.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

/// Credentials the emulator accepts (any non-empty pair); tests never see real ones.
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

impl Moto {
    pub fn start() -> Moto {
        Moto::start_python(&["-m", "moto.server"])
    }

    /// As [`Moto::start`], serving with a script from tests/python that wraps moto's server
    /// (e.g. `moto_emr_server.py`, which adds EMR state changes on request).
    pub fn start_script(script: &str) -> Moto {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(script);
        Moto::start_python(&[path.to_str().expect("a UTF-8 path")])
    }

    /// Runs the test Python with `args` followed by `-H 127.0.0.1 -p <free port>`.
    fn start_python(args: &[&str]) -> Moto {
        let python = test_python();
        let port = free_port();
        let child = Command::new(&python)
            .args(args)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", python.display()));
        let mut moto = Moto {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            // A server that exited (its port taken by another process) never listens.
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited ({status}) before listening on port {port}");
            }
            assert!(
                Instant::now() < deadline,
                "moto did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Environment that points the AWS SDKs (ours, boto3, the AWS CLI) at this emulator with
    /// dummy credentials, isolated from the user's ~/.aws files.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_CONFIG_FILE", "/dev/null".to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// A command for `program` with [`Moto::env`] applied and AWS_PROFILE removed.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env_remove("AWS_PROFILE").envs(self.env());
        command
    }

    /// An SDK config for asserting on emulator state from the test itself.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_in(REGION).await
    }

    /// As [`Moto::sdk_config`], in another region (moto keeps each region's state apart).
    pub async fn sdk_config_in(&self, region: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "moto",
            ))
            .load()
            .await
    }

    /// An S3 client for this emulator (path-style addressing: loopback has no bucket hosts).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = self.sdk_config().await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The S3 objects under `prefix` of `bucket`, with their bodies.
pub async fn s3_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> std::collections::BTreeMap<String, String> {
    let listing = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for object in listing.contents() {
        let key = object.key().unwrap().to_string();
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let bytes = body.body.collect().await.unwrap().into_bytes();
        out.insert(key, String::from_utf8(bytes.to_vec()).unwrap());
    }
    out
}
