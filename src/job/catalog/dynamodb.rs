//! The product catalog as a DynamoDB table: `dynamodb://TABLE` (optionally
//! `dynamodb://TABLE?region=eu-west-1`).
//!
//! The table must be keyed by the pair: HASH `advertiser_id` + RANGE `product_id` (the natural
//! shape), or HASH `product_id` + RANGE `advertiser_id`, both strings. Lookups send only the
//! distinct viewed pairs, 100 per BatchGetItem (the API's limit), many requests in flight at
//! once, and fetch only the key attributes so responses stay small. Keys a response leaves
//! unprocessed (the table ran out of read capacity for a moment) are sent again after an
//! exponential, fully jittered backoff, a bounded number of times.
//!
//! The job is synchronous (rayon kernels, blocking sinks), so the catalog owns a small tokio
//! runtime for the SDK and blocks on it.
//!
//! Environment: the standard AWS credential chain and region (AWS_REGION / AWS_DEFAULT_REGION;
//! on EMR the instance profile), AWS_ENDPOINT_URL(_DYNAMODB), and
//! EMRSHIP_DYNAMODB_CONCURRENCY (requests in flight, default 32) /
//! EMRSHIP_DYNAMODB_MAX_ATTEMPTS (tries per batch for unprocessed keys, default 10).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeyType, KeysAndAttributes};
use aws_sdk_dynamodb::Client;

use crate::job::model::{Catalog, JobError, PairRef};

/// BatchGetItem's limit on keys per request.
pub const KEYS_PER_REQUEST: usize = 100;
pub const ADVERTISER_ATTRIBUTE: &str = "advertiser_id";
pub const PRODUCT_ATTRIBUTE: &str = "product_id";
/// DynamoDB's limits on key values (UTF-8 bytes). A longer id cannot be in the table, and
/// sending it would fail the whole batch with a ValidationException.
pub const HASH_KEY_MAX_BYTES: usize = 2048;
pub const RANGE_KEY_MAX_BYTES: usize = 1024;

pub const CONCURRENCY_ENV: &str = "EMRSHIP_DYNAMODB_CONCURRENCY";
pub const MAX_ATTEMPTS_ENV: &str = "EMRSHIP_DYNAMODB_MAX_ATTEMPTS";
const DEFAULT_CONCURRENCY: usize = 32;
const MAX_CONCURRENCY: usize = 1024;
const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Attempts per HTTP call inside the SDK (errors, throttling), first included. Adaptive mode
/// also slows the whole client down while DynamoDB throttles.
const SDK_MAX_ATTEMPTS: u32 = 8;
/// How often a long lookup reports progress on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// Which key attribute is the partition (HASH) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrder {
    /// HASH `advertiser_id` + RANGE `product_id`.
    AdvertiserFirst,
    /// HASH `product_id` + RANGE `advertiser_id`.
    ProductFirst,
}

impl KeyOrder {
    /// Longest (advertiser_id, product_id) the table can hold, in bytes.
    pub fn max_bytes(self) -> (usize, usize) {
        match self {
            KeyOrder::AdvertiserFirst => (HASH_KEY_MAX_BYTES, RANGE_KEY_MAX_BYTES),
            KeyOrder::ProductFirst => (RANGE_KEY_MAX_BYTES, HASH_KEY_MAX_BYTES),
        }
    }

    /// Whether the pair can exist in such a table at all (non-empty, within the size limits).
    pub fn storable(self, (advertiser_id, product_id): PairRef<'_>) -> bool {
        let (advertiser_max, product_max) = self.max_bytes();
        !advertiser_id.is_empty()
            && !product_id.is_empty()
            && advertiser_id.len() <= advertiser_max
            && product_id.len() <= product_max
    }
}

/// What `dynamodb://…` names: the table, and the region if the URI gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLocation {
    pub table: String,
    pub region: Option<String>,
}

/// Parses what follows `dynamodb://`: `TABLE` or `TABLE?region=REGION`.
pub fn parse_location(spec: &str) -> Result<TableLocation, String> {
    let (table, query) = match spec.split_once('?') {
        Some((table, query)) => (table, Some(query)),
        None => (spec, None),
    };
    let valid_name = (3..=255).contains(&table.len())
        && table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !valid_name {
        return Err(format!(
            "`{table}` is not a DynamoDB table name (3 to 255 characters of a-z, A-Z, 0-9, `_`, `-`, `.`); write dynamodb://TABLE or dynamodb://TABLE?region=REGION"
        ));
    }
    let mut region = None;
    for parameter in query.into_iter().flat_map(|q| q.split('&')) {
        match parameter.split_once('=') {
            Some(("region", value))
                if !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
            {
                region = Some(value.to_string())
            }
            _ => {
                return Err(format!(
                    "unknown or malformed parameter `{parameter}`; the only one is `region=REGION` (e.g. dynamodb://{table}?region=us-east-1)"
                ))
            }
        }
    }
    Ok(TableLocation {
        table: table.to_string(),
        region,
    })
}

/// Checks the table's key schema. `hash` and `range` are (attribute name, attribute type).
pub fn key_order(
    table: &str,
    hash: Option<(&str, &str)>,
    range: Option<(&str, &str)>,
) -> Result<KeyOrder, String> {
    let order = match (hash.map(|h| h.0), range.map(|r| r.0)) {
        (Some(ADVERTISER_ATTRIBUTE), Some(PRODUCT_ATTRIBUTE)) => Some(KeyOrder::AdvertiserFirst),
        (Some(PRODUCT_ATTRIBUTE), Some(ADVERTISER_ATTRIBUTE)) => Some(KeyOrder::ProductFirst),
        _ => None,
    };
    let expected = format!(
        "the catalog needs HASH `{ADVERTISER_ATTRIBUTE}` + RANGE `{PRODUCT_ATTRIBUTE}` (or HASH `{PRODUCT_ATTRIBUTE}` + RANGE `{ADVERTISER_ATTRIBUTE}`), both of type S (string)"
    );
    let describe = |part: Option<(&str, &str)>, role: &str| match part {
        Some((name, kind)) => format!("{role} `{name}` ({kind})"),
        None => format!("no {role} key"),
    };
    let actual = format!("{} + {}", describe(hash, "HASH"), describe(range, "RANGE"));
    match order {
        Some(order) if hash.map(|h| h.1) == Some("S") && range.map(|r| r.1) == Some("S") => {
            Ok(order)
        }
        _ => Err(format!(
            "table `{table}` is keyed by {actual}; {expected}. Use or create a table with that key schema"
        )),
    }
}

/// Bounds and shape of the backoff between retries of unprocessed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests per batch, first included.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The longest wait before retry number `retry` (1 = the first retry): base·2^(retry-1),
    /// at most `cap`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// "Full jitter": a uniformly random wait in [0, ceiling], `unit` being uniform in [0, 1).
    /// Spreads the retries of many concurrent batches instead of having them collide again.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A random number in [0, 1) from std's randomly keyed hasher (no RNG crate needed for jitter).
fn random_unit() -> f64 {
    (RandomState::new().hash_one(Instant::now()) >> 11) as f64 / (1u64 << 53) as f64
}

/// What one request returns: the items found and the keys left unprocessed.
pub struct BatchReply<K, I> {
    pub items: Vec<I>,
    pub unprocessed: Vec<K>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct BatchDone<I> {
    pub items: Vec<I>,
    /// Requests sent, first included.
    pub requests: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum BatchFailure<E> {
    /// A request failed (after the SDK's own retries).
    Request(E),
    /// Keys were still unprocessed after `requests` requests.
    GaveUp { unprocessed: usize, requests: u32 },
}

/// Sends `keys`, then whatever the replies leave unprocessed, until nothing is left or the
/// policy's attempts are used up; sleeps `policy.delay(retry, jitter())` between requests.
pub async fn send_until_processed<K, I, E, Send, SendFut, Sleep, SleepFut>(
    keys: Vec<K>,
    policy: &RetryPolicy,
    mut jitter: impl FnMut() -> f64,
    mut send: Send,
    mut sleep: Sleep,
) -> Result<BatchDone<I>, BatchFailure<E>>
where
    Send: FnMut(Vec<K>) -> SendFut,
    SendFut: Future<Output = Result<BatchReply<K, I>, E>>,
    Sleep: FnMut(Duration) -> SleepFut,
    SleepFut: Future<Output = ()>,
{
    let mut items = Vec::new();
    let mut pending = keys;
    let mut requests = 0;
    loop {
        requests += 1;
        let reply = send(pending).await.map_err(BatchFailure::Request)?;
        items.extend(reply.items);
        if reply.unprocessed.is_empty() {
            return Ok(BatchDone { items, requests });
        }
        if requests >= policy.max_attempts.max(1) {
            return Err(BatchFailure::GaveUp {
                unprocessed: reply.unprocessed.len(),
                requests,
            });
        }
        sleep(policy.delay(requests, jitter())).await;
        pending = reply.unprocessed;
    }
}

/// Splits key positions into request-sized groups, leaving out keys the table cannot hold.
pub struct RequestChunks<'k, 'a> {
    keys: &'k [PairRef<'a>],
    order: KeyOrder,
    size: usize,
    next: usize,
}

impl<'k, 'a> RequestChunks<'k, 'a> {
    pub fn new(keys: &'k [PairRef<'a>], order: KeyOrder, size: usize) -> Self {
        RequestChunks {
            keys,
            order,
            size: size.max(1),
            next: 0,
        }
    }
}

impl Iterator for RequestChunks<'_, '_> {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let mut chunk = Vec::with_capacity(self.size);
        while self.next < self.keys.len() && chunk.len() < self.size {
            if self.order.storable(self.keys[self.next]) {
                chunk.push(self.next);
            }
            self.next += 1;
        }
        (!chunk.is_empty()).then_some(chunk)
    }
}

/// One request's keys, owned (the request runs on the runtime's worker threads).
type OwnedChunk = Vec<(usize, String, String)>;
type Item = HashMap<String, AttributeValue>;

/// Positions (in the caller's key list) of the chunk's keys that came back as items. Items
/// are matched by their key values (a hash set of the returned pairs), so the order of the
/// reply does not matter, a key repeated in the chunk is marked at every position, and an
/// item matching no key of the chunk is ignored.
pub fn found_positions(chunk: &[(usize, String, String)], items: &[Item]) -> Vec<usize> {
    let returned: HashSet<(&str, &str)> = items
        .iter()
        .filter_map(|item| {
            let advertiser = item.get(ADVERTISER_ATTRIBUTE)?.as_s().ok()?;
            let product = item.get(PRODUCT_ATTRIBUTE)?.as_s().ok()?;
            Some((advertiser.as_str(), product.as_str()))
        })
        .collect();
    chunk
        .iter()
        .filter(|(_, a, p)| returned.contains(&(a.as_str(), p.as_str())))
        .map(|(position, _, _)| *position)
        .collect()
}

/// The request keys of a chunk, each pair once: BatchGetItem rejects a request that names a
/// key twice ("Provided list of item keys contains duplicates").
fn request_keys(chunk: &[(usize, String, String)]) -> Vec<Item> {
    let mut seen = HashSet::with_capacity(chunk.len());
    chunk
        .iter()
        .filter(|(_, a, p)| seen.insert((a.as_str(), p.as_str())))
        .map(|(_, a, p)| key_item(a, p))
        .collect()
}

fn key_item(advertiser_id: &str, product_id: &str) -> Item {
    HashMap::from([
        (
            ADVERTISER_ATTRIBUTE.to_string(),
            AttributeValue::S(advertiser_id.to_string()),
        ),
        (
            PRODUCT_ATTRIBUTE.to_string(),
            AttributeValue::S(product_id.to_string()),
        ),
    ])
}

/// Parses a positive count from the environment variable `name`, or `default` when unset.
pub fn env_count(
    name: &str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, JobError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(JobError::Usage(format!(
            "{name}={value:?} is not a whole number from 1 to {max}; unset it for the default ({default})"
        ))),
    }
}

/// A failed DynamoDB call, as far as it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The service's error code; none when the call got no answer (no credentials, no
    /// network, timeout) or the answer could not be read.
    pub code: Option<String>,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub message: String,
}

impl Failure {
    /// A service answer. A 403 whose body is not DynamoDB's JSON (a proxy, an endpoint
    /// policy, an emulator answering in XML) is still a refusal of access.
    pub fn answered(code: Option<&str>, status: u16, message: &str) -> Failure {
        let code = match code {
            None if status == 403 => Some("AccessDeniedException"),
            code => code,
        };
        Failure {
            code: code.map(str::to_string),
            status: Some(status),
            message: message.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }

    pub fn unanswered(message: impl Into<String>) -> Failure {
        Failure {
            code: None,
            status: None,
            message: message.into(),
        }
    }
}

/// Explains a failed DynamoDB call: what happened to which table, and what to do about it.
pub fn explain_failure(
    operation: &str,
    failure: &Failure,
    table: &str,
    region: &str,
    table_arn: Option<&str>,
) -> String {
    let arn = table_arn
        .map(str::to_string)
        .unwrap_or_else(|| format!("arn:aws:dynamodb:{region}:<account>:table/{table}"));
    let message = &failure.message;
    let code = failure.code.as_deref();
    match code {
        Some("ResourceNotFoundException") => format!(
            "table `{table}` does not exist in region {region} (or these credentials cannot see it); create it, or fix the table name or region (AWS_REGION, or dynamodb://{table}?region=REGION)"
        ),
        Some("AccessDeniedException") => format!(
            "access denied: the job's IAM role needs dynamodb:{operation} on {arn} (emrship's generated role grants dynamodb:BatchGetItem and dynamodb:DescribeTable on the catalog table). AWS said: {message}"
        ),
        Some(
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "MissingAuthenticationTokenException",
        ) => format!(
            "{operation}: the AWS credentials were rejected ({}: {message}); check AWS_PROFILE / AWS_ACCESS_KEY_ID or, on EMR, the instance profile",
            code.unwrap_or_default()
        ),
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => format!(
            "{operation}: DynamoDB kept throttling after {SDK_MAX_ATTEMPTS} attempts ({}: {message}); switch table `{table}` to on-demand capacity (PAY_PER_REQUEST) or raise its read capacity, or lower {CONCURRENCY_ENV}",
            code.unwrap_or_default()
        ),
        Some(code) => format!("{operation} on table `{table}` failed: {code}: {message}"),
        None => match failure.status {
            Some(status) => format!(
                "{operation} on table `{table}` failed with HTTP {status}: {message}"
            ),
            None => format!(
                "{operation} on table `{table}` in region {region} got no answer: {message}; check the network, the endpoint (AWS_ENDPOINT_URL) and the credentials (on EMR: the instance profile)"
            ),
        },
    }
}

fn sdk_failure<E>(error: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let message = match service.err().message() {
                Some(message) => message.to_string(),
                None => raw
                    .body()
                    .bytes()
                    .map(|body| String::from_utf8_lossy(&body[..body.len().min(1000)]).into_owned())
                    .unwrap_or_else(|| DisplayErrorContext(error).to_string()),
            };
            Failure::answered(service.err().code(), raw.status().as_u16(), &message)
        }
        _ => Failure::unanswered(DisplayErrorContext(error).to_string()),
    }
}

/// What every request task needs, shared.
struct Lookup {
    client: Client,
    table: String,
    region: String,
    table_arn: Option<String>,
    policy: RetryPolicy,
}

#[derive(Debug, Default, Clone, Copy)]
struct LookupStats {
    keys: usize,
    unstorable: usize,
    batches: u64,
    requests: u64,
    found: u64,
}

impl Lookup {
    async fn send(&self, keys: Vec<Item>) -> Result<BatchReply<Item, Item>, String> {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .projection_expression("#a, #p")
            .expression_attribute_names("#a", ADVERTISER_ATTRIBUTE)
            .expression_attribute_names("#p", PRODUCT_ATTRIBUTE)
            .build()
            .map_err(|e| format!("cannot build the BatchGetItem request: {e}"))?;
        let output = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map_err(|error| {
                explain_failure(
                    "BatchGetItem",
                    &sdk_failure(&error),
                    &self.table,
                    &self.region,
                    self.table_arn.as_deref(),
                )
            })?;
        let items = output
            .responses
            .and_then(|mut tables| tables.remove(&self.table))
            .unwrap_or_default();
        let unprocessed = output
            .unprocessed_keys
            .and_then(|mut tables| tables.remove(&self.table))
            .map(|request| request.keys)
            .unwrap_or_default();
        Ok(BatchReply { items, unprocessed })
    }

    /// Looks up one chunk; returns the found positions and the requests it took.
    async fn chunk(self: Arc<Self>, chunk: OwnedChunk) -> Result<(Vec<usize>, u32), String> {
        let keys = request_keys(&chunk);
        let done = send_until_processed(
            keys,
            &self.policy,
            random_unit,
            |keys| self.send(keys),
            tokio::time::sleep,
        )
        .await
        .map_err(|failure| match failure {
            BatchFailure::Request(message) => message,
            BatchFailure::GaveUp {
                unprocessed,
                requests,
            } => format!(
                "{unprocessed} of {} keys were still unprocessed after {requests} BatchGetItem requests with backoff: table `{}` does not have the read capacity for this job; switch it to on-demand capacity (PAY_PER_REQUEST) or raise its read capacity, or lower {CONCURRENCY_ENV} (now at most that many requests in flight) / raise {MAX_ATTEMPTS_ENV}",
                chunk.len(),
                self.table
            ),
        })?;
        Ok((found_positions(&chunk, &done.items), done.requests))
    }
}

pub struct DynamoDbCatalog {
    uri: String,
    order: KeyOrder,
    concurrency: usize,
    lookup: Arc<Lookup>,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for DynamoDbCatalog {
    /// Dropping a runtime the usual way blocks, which panics inside another async runtime;
    /// no lookup is in flight once `contains_all` has returned, so nothing needs waiting for.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl DynamoDbCatalog {
    /// Connects to the table `spec` names (what follows `dynamodb://`) and checks its key
    /// schema with one DescribeTable.
    pub fn connect(spec: &str) -> Result<Self, JobError> {
        let uri = format!("dynamodb://{spec}");
        let location =
            parse_location(spec).map_err(|m| JobError::Usage(format!("catalog {uri}: {m}")))?;
        let concurrency = env_count(
            CONCURRENCY_ENV,
            std::env::var(CONCURRENCY_ENV).ok().as_deref(),
            DEFAULT_CONCURRENCY,
            MAX_CONCURRENCY,
        )?;
        let max_attempts = env_count(
            MAX_ATTEMPTS_ENV,
            std::env::var(MAX_ATTEMPTS_ENV).ok().as_deref(),
            DEFAULT_MAX_ATTEMPTS as usize,
            100,
        )? as u32;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("emrship-dynamodb")
            .enable_all()
            .build()
            .map_err(|e| {
                JobError::Other(format!(
                    "catalog {uri}: cannot start the async runtime: {e}"
                ))
            })?;
        let (client, region, description) = outside_async(&runtime, async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .retry_config(
                    RetryConfig::adaptive()
                        .with_max_attempts(SDK_MAX_ATTEMPTS)
                        .with_initial_backoff(Duration::from_millis(100))
                        .with_max_backoff(Duration::from_secs(20)),
                )
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10))
                        .operation_attempt_timeout(Duration::from_secs(60))
                        .build(),
                );
            if let Some(region) = &location.region {
                loader = loader.region(Region::new(region.clone()));
            }
            let config = loader.load().await;
            let Some(region) = config.region().map(|r| r.to_string()) else {
                return Err(JobError::catalog(
                    &uri,
                    format!("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or name it in the URI: dynamodb://{}?region=us-east-1", location.table),
                ));
            };
            let client = Client::new(&config);
            let description = client
                .describe_table()
                .table_name(&location.table)
                .send()
                .await
                .map_err(|error| {
                    JobError::catalog(
                        &uri,
                        explain_failure(
                            "DescribeTable",
                            &sdk_failure(&error),
                            &location.table,
                            &region,
                            None,
                        ),
                    )
                })?
                .table
                .ok_or_else(|| {
                    JobError::catalog(&uri, "DescribeTable returned no table description")
                })?;
            Ok((client, region, description))
        })?;

        let attribute_type = |name: &str| {
            description
                .attribute_definitions()
                .iter()
                .find(|d| d.attribute_name() == name)
                .map(|d| d.attribute_type().as_str())
                .unwrap_or("?")
        };
        let key = |wanted: KeyType| {
            description
                .key_schema()
                .iter()
                .find(|k| *k.key_type() == wanted)
                .map(|k| (k.attribute_name(), attribute_type(k.attribute_name())))
        };
        let order = key_order(&location.table, key(KeyType::Hash), key(KeyType::Range))
            .map_err(|m| JobError::catalog(&uri, m))?;
        let table_arn = description.table_arn().map(str::to_string);
        Ok(DynamoDbCatalog {
            uri,
            order,
            concurrency,
            lookup: Arc::new(Lookup {
                client,
                table: location.table,
                region,
                table_arn,
                policy: RetryPolicy {
                    max_attempts,
                    ..RetryPolicy::default()
                },
            }),
            runtime: Some(runtime),
        })
    }

    /// The table's key order, as found by DescribeTable.
    pub fn key_order(&self) -> KeyOrder {
        self.order
    }

    async fn lookup_all(&self, keys: &[PairRef<'_>]) -> Result<(Vec<bool>, LookupStats), JobError> {
        let mut found = vec![false; keys.len()];
        let mut stats = LookupStats {
            keys: keys.len(),
            unstorable: keys.iter().filter(|k| !self.order.storable(**k)).count(),
            ..LookupStats::default()
        };
        let total_batches = (keys.len() - stats.unstorable).div_ceil(KEYS_PER_REQUEST);
        let mut chunks = RequestChunks::new(keys, self.order, KEYS_PER_REQUEST);
        let mut tasks = tokio::task::JoinSet::new();
        let started = Instant::now();
        let mut last_report = started;
        loop {
            while tasks.len() < self.concurrency {
                let Some(positions) = chunks.next() else {
                    break;
                };
                let chunk: OwnedChunk = positions
                    .into_iter()
                    .map(|i| (i, keys[i].0.to_string(), keys[i].1.to_string()))
                    .collect();
                tasks.spawn(self.lookup.clone().chunk(chunk));
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            // Returning early drops `tasks`, which cancels the requests still in flight.
            let (positions, requests) = joined
                .map_err(|e| JobError::catalog(&self.uri, format!("a lookup task failed: {e}")))?
                .map_err(|m| JobError::catalog(&self.uri, m))?;
            stats.batches += 1;
            stats.requests += u64::from(requests);
            stats.found += positions.len() as u64;
            for position in positions {
                found[position] = true;
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                eprintln!(
                    "catalog {}: {}/{} batches looked up, {:.0} s",
                    self.uri,
                    stats.batches,
                    total_batches,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        Ok((found, stats))
    }
}

/// Blocks on `future` with `runtime`, from a plain thread even if the caller is itself inside
/// an async runtime (where blocking in place would panic).
fn outside_async<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    } else {
        runtime.block_on(future)
    }
}

impl Catalog for DynamoDbCatalog {
    fn contains_all(&self, keys: &[PairRef<'_>]) -> Result<Vec<bool>, JobError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        let (found, stats) = outside_async(runtime, self.lookup_all(keys))?;
        let seconds = started.elapsed().as_secs_f64();
        let unstorable = if stats.unstorable > 0 {
            format!(
                " ({} empty or longer than DynamoDB keys can be, counted as absent)",
                stats.unstorable
            )
        } else {
            String::new()
        };
        eprintln!(
            "catalog {}: {} keys{unstorable}, {} found; {} BatchGetItem requests ({} retries of unprocessed keys) in {seconds:.1} s ({:.0} requests/s)",
            self.uri,
            stats.keys,
            stats.found,
            stats.requests,
            stats.requests - stats.batches,
            stats.requests as f64 / seconds.max(1e-9),
        );
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_a_table_name_and_an_optional_region() {
        assert_eq!(
            parse_location("product-catalog").unwrap(),
            TableLocation {
                table: "product-catalog".into(),
                region: None
            }
        );
        assert_eq!(
            parse_location("catalog.v2_x?region=eu-west-1").unwrap(),
            TableLocation {
                table: "catalog.v2_x".into(),
                region: Some("eu-west-1".into())
            }
        );
        assert!(parse_location("")
            .unwrap_err()
            .contains("is not a DynamoDB table name"));
        assert!(parse_location("ab").is_err());
        assert!(parse_location("a/b/c").is_err());
        assert!(parse_location("table?consistent=true")
            .unwrap_err()
            .contains("`consistent=true`"));
        assert!(parse_location("table?region=").is_err());
    }

    #[test]
    fn key_schema_in_either_order_of_strings() {
        let s = |name| Some((name, "S"));
        assert_eq!(
            key_order("t", s("advertiser_id"), s("product_id")),
            Ok(KeyOrder::AdvertiserFirst)
        );
        assert_eq!(
            key_order("t", s("product_id"), s("advertiser_id")),
            Ok(KeyOrder::ProductFirst)
        );
        let wrong = key_order("t", s("id"), None).unwrap_err();
        assert!(
            wrong.contains("table `t` is keyed by HASH `id` (S) + no RANGE key"),
            "{wrong}"
        );
        assert!(
            wrong.contains("HASH `advertiser_id` + RANGE `product_id`"),
            "{wrong}"
        );
        let numeric = key_order("t", s("advertiser_id"), Some(("product_id", "N"))).unwrap_err();
        assert!(numeric.contains("RANGE `product_id` (N)"), "{numeric}");
    }

    #[test]
    fn storable_keys_respect_dynamodb_size_limits_per_key_role() {
        let long_1024 = "é".repeat(512);
        let long_1025 = format!("{long_1024}x");
        let long_2048 = "x".repeat(2048);
        let order = KeyOrder::AdvertiserFirst;
        assert!(order.storable(("a", "p")));
        assert!(!order.storable(("", "p")));
        assert!(!order.storable(("a", "")));
        assert!(order.storable((&long_2048, &long_1024)));
        assert!(!order.storable(("a", &long_1025)));
        assert!(!KeyOrder::ProductFirst.storable((&long_1025, "p")));
        assert!(KeyOrder::ProductFirst.storable(("a", &long_2048)));
    }

    #[test]
    fn chunks_hold_at_most_the_size_and_skip_unstorable_keys() {
        let keys: Vec<(String, String)> = (0..250)
            .map(|i| {
                (
                    "a".to_string(),
                    if i % 50 == 7 {
                        String::new()
                    } else {
                        format!("p{i}")
                    },
                )
            })
            .collect();
        let refs: Vec<PairRef<'_>> = keys.iter().map(|(a, p)| (a.as_str(), p.as_str())).collect();
        let chunks: Vec<Vec<usize>> =
            RequestChunks::new(&refs, KeyOrder::AdvertiserFirst, 100).collect();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 45]
        );
        let all: Vec<usize> = chunks.concat();
        let expected: Vec<usize> = (0..250).filter(|i| i % 50 != 7).collect();
        assert_eq!(all, expected);
        assert_eq!(
            RequestChunks::new(&[], KeyOrder::AdvertiserFirst, 100).count(),
            0
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_below_the_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(1),
        };
        let ceilings: Vec<u64> = (1..=7)
            .map(|r| policy.ceiling(r).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(1));
        assert_eq!(policy.delay(3, 0.0), Duration::ZERO);
        assert_eq!(policy.delay(3, 0.5), Duration::from_millis(100));
        assert!(policy.delay(3, 0.999_999) < Duration::from_millis(200));
        for _ in 0..1000 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit));
        }
    }

    fn item(a: &str, p: &str) -> Item {
        key_item(a, p)
    }

    #[test]
    fn returned_items_map_back_to_their_positions() {
        let chunk: OwnedChunk = vec![
            (7, "a1".into(), "p1".into()),
            (9, "a1".into(), "p2".into()),
            (12, "ä2".into(), "p1".into()),
        ];
        let mut stray = item("a9", "p9");
        stray.insert("extra".into(), AttributeValue::N("1".into()));
        let items = vec![item("ä2", "p1"), stray, item("a1", "p1")];
        let mut positions = found_positions(&chunk, &items);
        positions.sort();
        assert_eq!(positions, [7, 12]);
        let repeated: OwnedChunk = vec![(0, "a".into(), "p".into()), (5, "a".into(), "p".into())];
        assert_eq!(request_keys(&repeated).len(), 1);
        assert_eq!(found_positions(&repeated, &[item("a", "p")]), [0, 5]);
        let numeric = HashMap::from([
            ("advertiser_id".to_string(), AttributeValue::N("1".into())),
            ("product_id".to_string(), AttributeValue::S("p1".into())),
        ]);
        assert!(found_positions(&chunk, &[numeric]).is_empty());
    }

    /// Replies processing `share` of each request's keys (the first ones), the rest unprocessed.
    fn scripted(
        shares: Vec<f64>,
        sent: &std::cell::RefCell<Vec<Vec<u32>>>,
    ) -> impl FnMut(Vec<u32>) -> std::future::Ready<Result<BatchReply<u32, u32>, String>> + '_ {
        let mut shares = shares.into_iter();
        move |keys: Vec<u32>| {
            sent.borrow_mut().push(keys.clone());
            let share = shares.next().unwrap_or(1.0);
            let processed = (keys.len() as f64 * share).round() as usize;
            let (done, rest) = keys.split_at(processed);
            std::future::ready(Ok(BatchReply {
                items: done.to_vec(),
                unprocessed: rest.to_vec(),
            }))
        }
    }

    fn run<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn unprocessed_keys_are_resent_until_done_with_growing_backoff() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(10),
            cap: Duration::from_secs(1),
        };
        let sent = std::cell::RefCell::new(Vec::new());
        let slept = std::cell::RefCell::new(Vec::new());
        let done = run(send_until_processed(
            (0..100).collect(),
            &policy,
            || 1.0,
            scripted(vec![0.6, 0.5, 0.0, 1.0], &sent),
            |d| {
                slept.borrow_mut().push(d);
                std::future::ready(())
            },
        ))
        .unwrap();
        let mut items = done.items;
        items.sort();
        assert_eq!(items, (0..100).collect::<Vec<u32>>());
        assert_eq!(done.requests, 4);
        let sizes: Vec<usize> = sent.borrow().iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 40, 20, 20]);
        // Each retry sends exactly what the previous reply left unprocessed.
        assert_eq!(sent.borrow()[1], (60..100).collect::<Vec<u32>>());
        let waits: Vec<u64> = slept
            .borrow()
            .iter()
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40]);
    }

    #[test]
    fn gives_up_after_the_attempt_bound_saying_how_many_keys_remain() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
        };
        let sent = std::cell::RefCell::new(Vec::new());
        let result = run(send_until_processed(
            (0..100).collect(),
            &policy,
            || 0.5,
            scripted(vec![0.5, 0.5, 0.5, 0.5], &sent),
            |_| std::future::ready(()),
        ));
        assert_eq!(
            result,
            Err(BatchFailure::GaveUp {
                unprocessed: 12,
                requests: 3
            })
        );
        assert_eq!(sent.borrow().len(), 3);
    }

    #[test]
    fn a_failed_request_stops_the_batch() {
        let calls = std::cell::Cell::new(0);
        let result: Result<BatchDone<u32>, _> = run(send_until_processed(
            vec![1u32, 2],
            &RetryPolicy::default(),
            || 0.0,
            |_keys| {
                calls.set(calls.get() + 1);
                std::future::ready(Err::<BatchReply<u32, u32>, _>("boom".to_string()))
            },
            |_| std::future::ready(()),
        ));
        assert_eq!(result, Err(BatchFailure::Request("boom".to_string())));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn concurrency_comes_from_the_environment_within_bounds() {
        assert_eq!(env_count(CONCURRENCY_ENV, None, 32, 1024).unwrap(), 32);
        assert_eq!(
            env_count(CONCURRENCY_ENV, Some(" 8 "), 32, 1024).unwrap(),
            8
        );
        for bad in ["0", "-1", "many", "5000"] {
            let error = env_count(CONCURRENCY_ENV, Some(bad), 32, 1024).unwrap_err();
            assert!(
                error.to_string().contains("EMRSHIP_DYNAMODB_CONCURRENCY"),
                "{error}"
            );
        }
    }

    #[test]
    fn failures_name_the_table_the_permission_and_the_fix() {
        let answer = |code, status, message| Failure::answered(code, status, message);
        let missing = explain_failure(
            "DescribeTable",
            &answer(
                Some("ResourceNotFoundException"),
                400,
                "Requested resource not found",
            ),
            "catalog",
            "eu-west-1",
            None,
        );
        assert!(
            missing.contains("table `catalog` does not exist in region eu-west-1"),
            "{missing}"
        );
        let arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/catalog";
        let denied = explain_failure(
            "BatchGetItem",
            &answer(Some("AccessDeniedException"), 400, "not authorized"),
            "catalog",
            "eu-west-1",
            Some(arn),
        );
        assert!(
            denied.contains(&format!("needs dynamodb:BatchGetItem on {arn}")),
            "{denied}"
        );
        assert!(denied.ends_with("AWS said: not authorized"), "{denied}");
        // A bare 403 (a body that is not DynamoDB's JSON) is a refusal too.
        let forbidden = answer(None, 403, "<Error>\n  <Code>AccessDenied</Code>\n</Error>");
        assert_eq!(forbidden.code.as_deref(), Some("AccessDeniedException"));
        assert_eq!(
            forbidden.message,
            "<Error> <Code>AccessDenied</Code> </Error>"
        );
        let denied_unknown_arn =
            explain_failure("DescribeTable", &forbidden, "catalog", "eu-west-1", None);
        assert!(
            denied_unknown_arn.contains(
                "needs dynamodb:DescribeTable on arn:aws:dynamodb:eu-west-1:<account>:table/catalog"
            ),
            "{denied_unknown_arn}"
        );
        let throttled = explain_failure(
            "BatchGetItem",
            &answer(
                Some("ProvisionedThroughputExceededException"),
                400,
                "slow down",
            ),
            "catalog",
            "eu-west-1",
            None,
        );
        assert!(throttled.contains("on-demand capacity"), "{throttled}");
        let server = explain_failure("BatchGetItem", &answer(None, 500, "oops"), "c", "r", None);
        assert!(server.contains("failed with HTTP 500: oops"), "{server}");
        let offline = explain_failure(
            "DescribeTable",
            &Failure::unanswered("connection refused"),
            "c",
            "r",
            None,
        );
        assert!(
            offline.contains("got no answer: connection refused"),
            "{offline}"
        );
    }
}
