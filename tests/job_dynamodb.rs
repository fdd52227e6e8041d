//! The DynamoDB catalog (`dynamodb://TABLE`) against moto's server mode.
//!
//! The catalog reads its endpoint, credentials and region from the process environment, which
//! tests cannot set safely while other tests run in parallel threads. So each lookup runs in a
//! child process: this test binary re-executed with only `child_lookup` selected, the emulator's
//! environment applied, the request (catalog URI and keys) in a JSON file and the answer written
//! to another. Tables are created and filled, and the emulator's request log is read, from the
//! parent.
// moto's helpers and the IAM setup use the control-plane SDKs.
#![cfg(all(feature = "aws", feature = "job"))]

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde_json::{json, Value};

use common::moto::{self, Moto};
use emrship::job::catalog;

type Pair = (String, String);

const REQUEST_ENV: &str = "EMRSHIP_TEST_CATALOG_REQUEST";
const RESULT_ENV: &str = "EMRSHIP_TEST_CATALOG_RESULT";

// ---- the child: one catalog lookup with the environment it was started with -----------------

/// Not a test on its own: the entry point of the child processes the tests below start.
#[test]
#[ignore = "entry point of the child processes started by the other tests"]
fn child_lookup() {
    let request_path = std::env::var(REQUEST_ENV).expect("started by a test");
    let result_path = std::env::var(RESULT_ENV).expect("started by a test");
    let request: Value =
        serde_json::from_str(&std::fs::read_to_string(request_path).unwrap()).unwrap();
    let uri = request["uri"].as_str().unwrap();
    let keys: Vec<(&str, &str)> = request["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k[0].as_str().unwrap(), k[1].as_str().unwrap()))
        .collect();
    let started = Instant::now();
    let run = || catalog::open(uri).and_then(|catalog| catalog.contains_all(&keys));
    // The catalog blocks on its own runtime; it must also work when the caller is async.
    let result = if request["inside_async"] == json!(true) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { run() })
    } else {
        run()
    };
    let seconds = started.elapsed().as_secs_f64();
    let answer = match result {
        Ok(found) => json!({ "found": found, "seconds": seconds }),
        Err(error) => json!({ "error": error.to_string(), "exit_code": error.exit_code() }),
    };
    std::fs::write(result_path, answer.to_string()).unwrap();
}

struct Lookup {
    found: Result<Vec<bool>, String>,
    seconds: f64,
    stderr: String,
}

/// Runs `catalog::open(uri)?.contains_all(keys)` in a child process with `env`.
fn lookup(env: &[(&str, String)], uri: &str, keys: &[Pair]) -> Lookup {
    lookup_from(env, uri, keys, false)
}

/// [`lookup`], called from inside an async runtime when `inside_async`.
fn lookup_from(env: &[(&str, String)], uri: &str, keys: &[Pair], inside_async: bool) -> Lookup {
    let dir = tempfile::tempdir().unwrap();
    let request_path = dir.path().join("request.json");
    let result_path = dir.path().join("result.json");
    let request = json!({ "uri": uri, "inside_async": inside_async, "keys": keys.iter().map(|(a, p)| [a, p]).collect::<Vec<_>>() });
    std::fs::write(&request_path, request.to_string()).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_lookup",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("AWS_PROFILE")
        .env_remove("EMRSHIP_DYNAMODB_CONCURRENCY")
        .env_remove("EMRSHIP_DYNAMODB_MAX_ATTEMPTS")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env(REQUEST_ENV, &request_path)
        .env(RESULT_ENV, &result_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let answer: Value = match std::fs::read_to_string(&result_path) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(_) => panic!(
            "the child lookup wrote no result (status {}):\n{stderr}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        ),
    };
    let found = match answer.get("found") {
        Some(found) => Ok(found
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect()),
        None => Err(answer["error"].as_str().unwrap().to_string()),
    };
    Lookup {
        found,
        seconds: answer["seconds"].as_f64().unwrap_or(0.0),
        stderr,
    }
}

// ---- an emulator with extra settings (request log, IAM enforcement) ---------------------------

/// moto's server mode started with extra environment (e.g. its request recorder), which
/// `common::moto::Moto` does not take; stopped on drop.
struct ConfiguredMoto {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
    recording: PathBuf,
}

impl ConfiguredMoto {
    fn start(extra_env: &[(&str, &str)]) -> ConfiguredMoto {
        let dir = tempfile::tempdir().unwrap();
        let recording = dir.path().join("requests.jsonl");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(moto::test_python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        ConfiguredMoto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            recording,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        env_for(&self.endpoint)
    }

    /// The JSON bodies of the recorded requests to `operation` (e.g. "BatchGetItem").
    fn recorded(&self, operation: &str) -> Vec<Value> {
        let target = format!("DynamoDB_20120810.{operation}");
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map(|entry| entry.expect("moto's request log is JSON, one entry a line"))
            .filter(|entry| {
                entry["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-target") && v == &json!(target))
            })
            .map(|entry| {
                let body = entry["body"].as_str().unwrap();
                let bytes = if entry["body_encoded"] == json!(true) {
                    base64_decode(body)
                } else {
                    body.as_bytes().to_vec()
                };
                serde_json::from_slice(&bytes).unwrap()
            })
            .collect()
    }

    fn forget_requests(&self) {
        std::fs::write(&self.recording, "").unwrap();
    }
}

impl Drop for ConfiguredMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let mut bits = 0u32;
        for (i, d) in group.iter().enumerate() {
            bits |= u32::from(*d) << (18 - 6 * i);
        }
        out.extend_from_slice(&bits.to_be_bytes()[1..group.len()]);
    }
    out
}

/// The same environment `Moto::env` gives, for an emulator at `endpoint`.
fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY.to_string()),
        ("AWS_REGION", moto::REGION.to_string()),
        ("AWS_DEFAULT_REGION", moto::REGION.to_string()),
        ("AWS_CONFIG_FILE", "/dev/null".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
}

async fn client_for(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(moto::REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            access_key, secret_key, None, None, "test",
        ))
        .load()
        .await;
    Client::new(&config)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

// ---- tables and data -----------------------------------------------------------------------

async fn create_table(
    client: &Client,
    table: &str,
    hash: (&str, ScalarAttributeType),
    range: Option<(&str, ScalarAttributeType)>,
) {
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, kind, key_type) in [
        Some((hash.0, hash.1, KeyType::Hash)),
        range.map(|(n, t)| (n, t, KeyType::Range)),
    ]
    .into_iter()
    .flatten()
    {
        request = request
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(kind)
                    .build()
                    .unwrap(),
            );
    }
    request.send().await.unwrap();
}

/// Creates `table` keyed in `order` and stores `items` with BatchWriteItem (25 per request).
async fn create_catalog(client: &Client, table: &str, advertiser_first: bool, items: &[Pair]) {
    let (hash, range) = if advertiser_first {
        ("advertiser_id", "product_id")
    } else {
        ("product_id", "advertiser_id")
    };
    create_table(
        client,
        table,
        (hash, ScalarAttributeType::S),
        Some((range, ScalarAttributeType::S)),
    )
    .await;
    for batch in items.chunks(25) {
        let writes: Vec<WriteRequest> = batch
            .iter()
            .map(|(a, p)| {
                let item = HashMap::from([
                    ("advertiser_id".to_string(), AttributeValue::S(a.clone())),
                    ("product_id".to_string(), AttributeValue::S(p.clone())),
                    (
                        "title".to_string(),
                        AttributeValue::S(format!("a product of {a}")),
                    ),
                ]);
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build()
            })
            .collect();
        let output = client
            .batch_write_item()
            .request_items(table, writes)
            .send()
            .await
            .unwrap();
        assert!(output.unprocessed_items.unwrap_or_default().is_empty());
    }
}

/// 3,000 catalog items: ten advertisers (one with a non-ASCII id, one with a 1,024-byte id, the
/// most a RANGE key can hold) with 300 products each (non-ASCII and 1,024-byte ids among them).
fn catalog_items() -> Vec<Pair> {
    let mut advertisers: Vec<String> = (0..8).map(|i| format!("adv-{i}")).collect();
    advertisers.push("広告主-ü".to_string());
    advertisers.push(format!("{}{}", "L".repeat(1020), "-adv"));
    let mut items = Vec::new();
    for (a, advertiser) in advertisers.iter().enumerate() {
        for i in 0..300 {
            let product = match i % 50 {
                0 => format!("{}{i:04}", "P".repeat(1020)),
                1 => format!("商品-é-{i}"),
                _ => format!("p-{i}"),
            };
            // The non-ASCII advertiser's products are non-ASCII too (but the longest stay at
            // 1,024 bytes).
            let product = if a == 8 && product.len() < 1000 {
                format!("ü{product}")
            } else {
                product
            };
            items.push((advertiser.clone(), product));
        }
    }
    items
}

/// 1,346 distinct keys in a scrambled order: a third of the catalog, and absent pairs of every
/// kind (unknown product, unknown advertiser, the pair swapped, ids one byte too long for a
/// key, empty ids).
fn lookup_keys(items: &[Pair]) -> Vec<Pair> {
    let mut keys: Vec<Pair> = items.iter().step_by(3).cloned().collect();
    for a in ["adv-0", "adv-3", "広告主-ü"] {
        for i in 300..400 {
            keys.push((a.to_string(), format!("p-{i}")));
        }
    }
    for i in 0..20 {
        keys.push(("adv-unknown".to_string(), format!("p-{i}")));
        keys.push((items[i * 7].1.clone(), items[i * 7].0.clone()));
    }
    keys.push(("adv-0".to_string(), "Q".repeat(1024)));
    keys.push(("adv-0".to_string(), "p".repeat(1025)));
    keys.push(("a".repeat(1500), "p-1".to_string()));
    keys.push(("a".repeat(2049), "p-1".to_string()));
    keys.push((String::new(), "p-1".to_string()));
    keys.push(("adv-0".to_string(), String::new()));
    keys.sort_by_key(|k| {
        let mut hasher = DefaultHasher::new();
        k.hash(&mut hasher);
        hasher.finish()
    });
    let distinct: HashSet<&Pair> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len());
    keys
}

/// Whether DynamoDB can hold the pair in a table keyed this way (the documented size limits:
/// 2,048 bytes for a HASH key value, 1,024 for a RANGE key value, neither empty).
fn storable((a, p): &Pair, advertiser_first: bool) -> bool {
    let (a_max, p_max) = if advertiser_first {
        (2048, 1024)
    } else {
        (1024, 2048)
    };
    !a.is_empty() && !p.is_empty() && a.len() <= a_max && p.len() <= p_max
}

/// An id for a failure message: long ones cut to their first 30 characters.
fn short(id: &str) -> String {
    match id.char_indices().nth(30) {
        Some((at, _)) => format!("{}…({} bytes)", &id[..at], id.len()),
        None => id.to_string(),
    }
}

fn check_lookups(
    table: &str,
    advertiser_first: bool,
    extra_env: &[(&str, String)],
    inside_async: bool,
) {
    let moto = Moto::start();
    let items = catalog_items();
    block_on(async {
        let client = Client::new(&moto.sdk_config().await);
        create_catalog(&client, table, advertiser_first, &items).await;
    });
    let keys = lookup_keys(&items);
    assert_eq!(keys.len(), 1346);
    let present: HashSet<&Pair> = items.iter().collect();
    let expected: Vec<bool> = keys.iter().map(|k| present.contains(k)).collect();
    assert_eq!(expected.iter().filter(|&&b| b).count(), 1000);

    let mut env = moto.env();
    env.extend(extra_env.iter().cloned());
    let result = lookup_from(&env, &format!("dynamodb://{table}"), &keys, inside_async);
    let found = result
        .found
        .unwrap_or_else(|e| panic!("lookup failed: {e}\n{}", result.stderr));
    assert_eq!(found.len(), keys.len());
    let wrong: Vec<(String, String, bool)> = keys
        .iter()
        .zip(&found)
        .filter(|(k, &f)| f != present.contains(k))
        .map(|(k, &f)| (short(&k.0), short(&k.1), f))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} keys answered wrongly, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    assert_eq!(found, expected);
}

// ---- the tests -----------------------------------------------------------------------------

#[test]
fn lookups_match_the_catalog_for_advertiser_then_product_keys() {
    check_lookups("catalog-by-advertiser", true, &[], false);
}

#[test]
fn lookups_match_the_catalog_for_product_then_advertiser_keys_few_in_flight_from_async_code() {
    check_lookups(
        "catalog-by-product",
        false,
        &[("EMRSHIP_DYNAMODB_CONCURRENCY", "3".to_string())],
        true,
    );
}

/// What reaches DynamoDB: each storable key exactly once, in requests of at most 100 keys
/// (as few as that allows), projecting the key attributes only; an empty lookup sends none.
#[test]
fn requests_carry_each_storable_key_once_at_most_100_at_a_time() {
    let moto = ConfiguredMoto::start(&[("MOTO_ENABLE_RECORDING", "true")]);
    let items = catalog_items();
    block_on(async {
        let client = client_for(&moto.endpoint, moto::ACCESS_KEY, moto::SECRET_KEY).await;
        create_catalog(&client, "catalog", true, &items).await;
    });
    let keys = lookup_keys(&items);
    let storable: BTreeSet<&Pair> = keys.iter().filter(|k| storable(k, true)).collect();
    assert_eq!(keys.len() - storable.len(), 4);

    // moto appends each request to its log from the thread that serves it; one request at a
    // time keeps the entries whole.
    let mut env = moto.env();
    env.push(("EMRSHIP_DYNAMODB_CONCURRENCY", "1".to_string()));
    moto.forget_requests();
    let result = lookup(&env, "dynamodb://catalog", &keys);
    assert!(
        result.found.is_ok(),
        "{:?}\n{}",
        result.found,
        result.stderr
    );
    let requests = moto.recorded("BatchGetItem");
    assert_eq!(requests.len(), storable.len().div_ceil(100));
    let mut sent = Vec::new();
    for request in &requests {
        let tables = request["RequestItems"].as_object().unwrap();
        assert_eq!(tables.keys().collect::<Vec<_>>(), ["catalog"]);
        let table = &tables["catalog"];
        let request_keys = table["Keys"].as_array().unwrap();
        assert!(request_keys.len() <= 100);
        for key in request_keys {
            assert_eq!(key.as_object().unwrap().len(), 2, "{key}");
            sent.push((
                key["advertiser_id"]["S"].as_str().unwrap().to_string(),
                key["product_id"]["S"].as_str().unwrap().to_string(),
            ));
        }
        // Only the key attributes come back, however large the items are.
        let projection = table["ProjectionExpression"].as_str().unwrap();
        let names = table["ExpressionAttributeNames"].as_object().unwrap();
        let projected: BTreeSet<&str> = projection
            .split(',')
            .map(|n| names[n.trim()].as_str().unwrap())
            .collect();
        assert_eq!(projected, BTreeSet::from(["advertiser_id", "product_id"]));
    }
    assert_eq!(sent.len(), storable.len(), "a key was sent more than once");
    assert_eq!(sent.iter().collect::<BTreeSet<_>>(), storable);

    moto.forget_requests();
    let empty = lookup(&moto.env(), "dynamodb://catalog", &[]);
    assert_eq!(empty.found, Ok(vec![]));
    assert_eq!(moto.recorded("BatchGetItem").len(), 0);
    assert_eq!(moto.recorded("DescribeTable").len(), 1);
}

#[test]
fn a_missing_table_is_named_with_its_region() {
    let moto = Moto::start();
    let result = lookup(
        &moto.env(),
        "dynamodb://no-such-table",
        &[("a".into(), "p".into())],
    );
    let error = result.found.unwrap_err();
    assert!(
        error.contains("catalog dynamodb://no-such-table: table `no-such-table` does not exist in region us-east-1"),
        "{error}"
    );

    let elsewhere = lookup(
        &moto.env(),
        "dynamodb://no-such-table?region=eu-west-3",
        &[],
    );
    assert!(elsewhere
        .found
        .unwrap_err()
        .contains("does not exist in region eu-west-3"));
}

#[test]
fn a_table_keyed_otherwise_is_refused_naming_its_keys_and_the_expected_ones() {
    let moto = Moto::start();
    block_on(async {
        let client = Client::new(&moto.sdk_config().await);
        create_table(&client, "by-id", ("id", ScalarAttributeType::S), None).await;
        create_table(
            &client,
            "numeric",
            ("advertiser_id", ScalarAttributeType::S),
            Some(("product_id", ScalarAttributeType::N)),
        )
        .await;
        create_table(
            &client,
            "other-range",
            ("advertiser_id", ScalarAttributeType::S),
            Some(("sku", ScalarAttributeType::S)),
        )
        .await;
    });
    let expected = "the catalog needs HASH `advertiser_id` + RANGE `product_id` (or HASH `product_id` + RANGE `advertiser_id`)";
    for (table, actual) in [
        ("by-id", "HASH `id` (S) + no RANGE key"),
        (
            "numeric",
            "HASH `advertiser_id` (S) + RANGE `product_id` (N)",
        ),
        ("other-range", "HASH `advertiser_id` (S) + RANGE `sku` (S)"),
    ] {
        let error = lookup(&moto.env(), &format!("dynamodb://{table}"), &[])
            .found
            .unwrap_err();
        assert!(
            error.contains(&format!("table `{table}` is keyed by {actual}")),
            "{error}"
        );
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn settings_that_make_no_sense_are_refused_before_any_request() {
    let moto = Moto::start();
    let mut env = moto.env();
    env.push(("EMRSHIP_DYNAMODB_CONCURRENCY", "0".to_string()));
    let error = lookup(&env, "dynamodb://catalog", &[]).found.unwrap_err();
    assert!(
        error.contains("EMRSHIP_DYNAMODB_CONCURRENCY=\"0\""),
        "{error}"
    );

    let error = lookup(&moto.env(), "dynamodb://catalog?consistent=yes", &[])
        .found
        .unwrap_err();
    assert!(error.contains("`consistent=yes`"), "{error}");

    let no_region: Vec<(&str, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("REGION"))
        .collect();
    let error = lookup(&no_region, "dynamodb://catalog", &[])
        .found
        .unwrap_err();
    assert!(error.contains("no AWS region"), "{error}");
}

/// With IAM enforced, credentials allowed to describe the table but not to read it get an
/// error naming the missing action and the table's ARN.
#[test]
fn missing_read_permission_names_the_action_and_the_table_arn() {
    // Creating the table, the user, its policy and its key is done unauthenticated; every
    // request after that is checked against IAM.
    let moto = ConfiguredMoto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]);
    let (access_key, secret_key) = block_on(async {
        let client = client_for(&moto.endpoint, moto::ACCESS_KEY, moto::SECRET_KEY).await;
        create_table(
            &client,
            "catalog",
            ("advertiser_id", ScalarAttributeType::S),
            Some(("product_id", ScalarAttributeType::S)),
        )
        .await;
        iam_user_allowed_to_describe_only(&moto.endpoint).await
    });
    let mut env = moto.env();
    env.retain(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"));
    env.push(("AWS_ACCESS_KEY_ID", access_key));
    env.push(("AWS_SECRET_ACCESS_KEY", secret_key));
    let error = lookup(&env, "dynamodb://catalog", &[("a".into(), "p".into())])
        .found
        .unwrap_err();
    assert!(
        error.contains(
            "needs dynamodb:BatchGetItem on arn:aws:dynamodb:us-east-1:123456789012:table/catalog"
        ),
        "{error}"
    );
}

/// Four IAM calls (user, policy, access key: within INITIAL_NO_AUTH_ACTION_COUNT with the
/// CreateTable before them).
async fn iam_user_allowed_to_describe_only(endpoint: &str) -> (String, String) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(moto::REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            moto::ACCESS_KEY,
            moto::SECRET_KEY,
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&config);
    iam.create_user().user_name("job").send().await.unwrap();
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:DescribeTable", "Resource": "*"}]
    });
    iam.put_user_policy()
        .user_name("job")
        .policy_name("describe-only")
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("job")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    (key.access_key_id, key.secret_access_key)
}

/// A sanity check of throughput, not a benchmark (moto answers one request at a time in
/// Python): `cargo test --test job_dynamodb -- --ignored throughput --nocapture`.
#[test]
#[ignore = "slow; run by hand to measure"]
fn throughput_of_100k_keys() {
    let moto = Moto::start();
    let items: Vec<Pair> = (0..50_000)
        .map(|i| (format!("adv-{}", i % 100), format!("p-{i}")))
        .collect();
    let started = Instant::now();
    block_on(async {
        let client = Client::new(&moto.sdk_config().await);
        create_catalog(&client, "catalog", true, &items).await;
    });
    eprintln!(
        "loaded {} items in {:.1} s",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    let keys: Vec<Pair> = (0..100_000)
        .map(|i| (format!("adv-{}", i % 100), format!("p-{i}")))
        .collect();
    for concurrency in ["1", "8", "32"] {
        let mut env = moto.env();
        env.push(("EMRSHIP_DYNAMODB_CONCURRENCY", concurrency.to_string()));
        let result = lookup(&env, "dynamodb://catalog", &keys);
        let found = result.found.unwrap();
        assert_eq!(found.iter().filter(|&&b| b).count(), 50_000);
        eprintln!(
            "concurrency {concurrency}: 100000 keys, 1000 requests in {:.1} s = {:.0} requests/s, {:.0} keys/s\n  {}",
            result.seconds,
            1000.0 / result.seconds,
            100_000.0 / result.seconds,
            result.stderr.trim()
        );
    }
}
