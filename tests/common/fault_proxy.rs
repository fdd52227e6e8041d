//! A small HTTP/1.1 proxy on loopback that stands between the real `emrship` binary and moto and
//! answers a share of requests with the faults AWS clients meet in real life: throttling errors
//! in each protocol's own shape, 503s, connections dropped before the request reaches the
//! service, and — the nasty one — connections dropped after the service acted but before the
//! client heard the answer (a retried RunJobFlow must not start a second cluster).
//!
//! Which request gets which fault is decided by a seeded generator, so a failing run can be
//! replayed (up to the order concurrent requests arrive in). [`Rule`]s pin a fate on matching
//! requests (e.g. refuse every UploadPart, drop the first CreateMultipartUpload's answer) ahead
//! of the random mix. Every request and its fate is recorded for the test to inspect.
//!
//! Framing: the client side keeps its connection alive across requests; each forwarded request
//! goes to moto on a fresh connection with `Connection: close`, so a response without a length
//! is simply read to its end and re-framed with one. `Expect: 100-continue` is answered by the
//! proxy itself (the service never sees it); chunked and `aws-chunked` bodies are forwarded
//! byte for byte; responses to HEAD carry no body whatever their Content-Length says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Forwarded,
    /// Answered with the protocol's throttling error; the service never saw the request.
    Throttled,
    /// Answered 503 Service Unavailable; the service never saw the request.
    Unavailable,
    /// Connection closed before forwarding.
    DroppedBefore,
    /// Forwarded, the service acted, then the connection closed without the response.
    DroppedAfter,
    /// Answered 403 AccessDenied (not retryable): for rules that make an operation fail for
    /// good. The service never saw the request.
    Refused,
    /// Answered 400 with this JSON error body (e.g. a service's own error that moto never
    /// gives, like Lambda's "role cannot be assumed" right after CreateRole). The service never
    /// saw the request.
    Answered(&'static str),
}

/// What a [`Rule`] sees of a request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target: path and query (`/bucket/key?partNumber=2&uploadId=…`).
    pub path: String,
    /// `X-Amz-Target` (JSON protocols, e.g. `ElasticMapReduce.RunJobFlow`) or the query
    /// `Action=` of form bodies (IAM), else empty (S3).
    pub operation: String,
    pub fate: Fate,
}

impl Seen {
    /// Whether the query string has parameter `name` (e.g. `uploads`, `partNumber`).
    pub fn has_query(&self, name: &str) -> bool {
        self.path.split_once('?').is_some_and(|(_, query)| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        })
    }

    /// S3 UploadPart: `PUT /bucket/key?partNumber=N&uploadId=…`.
    pub fn is_upload_part(&self) -> bool {
        self.method == "PUT" && self.has_query("partNumber") && self.has_query("uploadId")
    }

    /// S3 CreateMultipartUpload: `POST /bucket/key?uploads`.
    pub fn is_create_multipart(&self) -> bool {
        self.method == "POST" && self.has_query("uploads")
    }

    /// S3 CompleteMultipartUpload: `POST /bucket/key?uploadId=…`.
    pub fn is_complete_multipart(&self) -> bool {
        self.method == "POST" && self.has_query("uploadId")
    }
}

/// Shares of requests, in percent, given each fault; the rest is forwarded untouched.
#[derive(Debug, Clone, Copy)]
pub struct FaultMix {
    pub throttle: u32,
    pub unavailable: u32,
    pub drop_before: u32,
    pub drop_after: u32,
}

impl FaultMix {
    pub const NONE: FaultMix = FaultMix {
        throttle: 0,
        unavailable: 0,
        drop_before: 0,
        drop_after: 0,
    };
}

type Matcher = Box<dyn Fn(&Seen) -> bool + Send + Sync>;

/// Gives every request `matches` accepts the fate `fate`, ahead of the random mix — at most
/// `times` requests when limited.
pub struct Rule {
    matches: Matcher,
    fate: Fate,
    remaining: Option<AtomicUsize>,
}

impl Rule {
    /// Every matching request, for good.
    pub fn always(fate: Fate, matches: impl Fn(&Seen) -> bool + Send + Sync + 'static) -> Rule {
        Rule {
            matches: Box::new(matches),
            fate,
            remaining: None,
        }
    }

    /// The first `times` matching requests only.
    pub fn first(
        times: usize,
        fate: Fate,
        matches: impl Fn(&Seen) -> bool + Send + Sync + 'static,
    ) -> Rule {
        Rule {
            matches: Box::new(matches),
            fate,
            remaining: Some(AtomicUsize::new(times)),
        }
    }

    fn applies(&self, seen: &Seen) -> bool {
        if !(self.matches)(seen) {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

pub struct FaultProxy {
    pub endpoint: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

struct Shared {
    upstream: u16,
    mix: FaultMix,
    rules: Vec<Rule>,
    rng: Mutex<u64>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests whose path starts with one of these are always forwarded (moto's own
    /// `/moto-api`, the test emulator's `/_emrship` control routes).
    spared_paths: Vec<String>,
}

impl FaultProxy {
    /// Starts a proxy in front of `http://127.0.0.1:{upstream_port}`.
    pub fn start(upstream_port: u16, mix: FaultMix, seed: u64) -> FaultProxy {
        FaultProxy::start_with_rules(upstream_port, mix, seed, Vec::new())
    }

    /// As [`FaultProxy::start`], with `rules` deciding matching requests' fates first.
    pub fn start_with_rules(
        upstream_port: u16,
        mix: FaultMix,
        seed: u64,
        rules: Vec<Rule>,
    ) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            upstream: upstream_port,
            mix,
            rules,
            rng: Mutex::new(seed ^ 0x9E37_79B9_7F4A_7C15),
            seen: seen.clone(),
            spared_paths: vec!["/moto-api".to_string(), "/_emrship".to_string()],
        });
        let stop_flag = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            seen,
            stop,
            port,
        }
    }

    pub fn count(&self, fate: Fate) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.fate == fate)
            .count()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Shared {
    /// splitmix64: deterministic for a seed and request order.
    fn roll(&self) -> u32 {
        let mut state = self.rng.lock().unwrap();
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % 100) as u32
    }

    fn choose(&self, seen: &Seen) -> Fate {
        if self.spared_paths.iter().any(|p| seen.path.starts_with(p)) {
            return Fate::Forwarded;
        }
        if let Some(rule) = self.rules.iter().find(|rule| rule.applies(seen)) {
            return rule.fate;
        }
        let roll = self.roll();
        let m = self.mix;
        let mut edge = m.throttle;
        if roll < edge {
            return Fate::Throttled;
        }
        edge += m.unavailable;
        if roll < edge {
            return Fate::Unavailable;
        }
        edge += m.drop_before;
        if roll < edge {
            return Fate::DroppedBefore;
        }
        edge += m.drop_after;
        if roll < edge {
            return Fate::DroppedAfter;
        }
        Fate::Forwarded
    }
}

/// One HTTP message: the head lines (without the blank line) and the body bytes.
struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    fn without_headers(&mut self, names: &[&str]) {
        let first = self.head.remove(0);
        self.head.retain(|line| {
            let key = line.split(':').next().unwrap_or("").trim();
            !names.iter().any(|n| key.eq_ignore_ascii_case(n))
        });
        self.head.insert(0, first);
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        for line in &self.head {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// How a message's body is delimited.
enum Framing {
    None,
    Chunked,
    Length(usize),
    ToEnd,
}

/// Reads a message head; `None` on a clean end of stream.
fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Message>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if head.is_empty() {
                continue;
            }
            break;
        }
        head.push(line);
    }
    Ok(Some(Message {
        head,
        body: Vec::new(),
    }))
}

fn framing(message: &Message, is_response: bool, head_request: bool) -> Framing {
    if is_response {
        let status = message.head[0].split_whitespace().nth(1).unwrap_or("");
        // A response to HEAD carries the length of a body it does not send.
        if head_request || status.starts_with('1') || status == "204" || status == "304" {
            return Framing::None;
        }
    }
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        Framing::Chunked
    } else if let Some(length) = message.header("content-length") {
        Framing::Length(length.parse().unwrap_or(0))
    } else if is_response {
        Framing::ToEnd
    } else {
        Framing::None
    }
}

/// Reads the body as framed; chunked bodies are kept encoded (forwarded as is).
fn read_body(
    reader: &mut BufReader<TcpStream>,
    message: &mut Message,
    framing: Framing,
) -> std::io::Result<()> {
    match framing {
        Framing::None => {}
        Framing::Length(length) => {
            message.body = vec![0; length];
            reader.read_exact(&mut message.body)?;
        }
        Framing::ToEnd => {
            reader.read_to_end(&mut message.body)?;
        }
        Framing::Chunked => loop {
            let mut size_line = String::new();
            if reader.read_line(&mut size_line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            message.body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    message.body.extend_from_slice(trailer.as_bytes());
                    if trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            message.body.extend_from_slice(&chunk);
        },
    }
    Ok(())
}

fn operation_of(request: &Message) -> String {
    if let Some(target) = request.header("x-amz-target") {
        return target.to_string();
    }
    let form = request
        .header("content-type")
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return String::new();
    }
    let body = String::from_utf8_lossy(&request.body);
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
        .unwrap_or_default()
}

/// The throttling error in the shape the request's protocol expects.
fn throttling_response(request: &Message) -> Vec<u8> {
    if request.header("x-amz-target").is_some() {
        plain_response(
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        )
    } else if operation_of(request).is_empty() {
        // S3's throttling is a 503 SlowDown.
        plain_response(
            503,
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        )
    } else {
        plain_response(
            400,
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>",
        )
    }
}

fn refused_response(request: &Message) -> Vec<u8> {
    if request.header("x-amz-target").is_some() {
        plain_response(
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"AccessDeniedException","message":"denied by the fault proxy"}"#,
        )
    } else {
        plain_response(
            403,
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied (fault proxy)</Message></Error>",
        )
    }
}

fn plain_response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        503 => "Service Unavailable",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: fault-proxy\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends `request` to the service on its own connection; the whole response, re-framed with a
/// Content-Length so the client's connection can stay open.
fn forward(mut request: Message, upstream: u16, head_request: bool) -> std::io::Result<Message> {
    request.without_headers(&["connection", "expect"]);
    request.head.push("Connection: close".to_string());
    let mut upstream_writer = TcpStream::connect(("127.0.0.1", upstream))?;
    upstream_writer.write_all(&request.to_bytes())?;
    upstream_writer.flush()?;
    let mut upstream_reader = BufReader::new(upstream_writer.try_clone()?);
    loop {
        let Some(mut response) = read_head(&mut upstream_reader)? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        let status = response.head[0].split_whitespace().nth(1).unwrap_or("");
        if status == "100" {
            continue; // an interim answer: the final one follows
        }
        let framing = framing(&response, true, head_request);
        let read_to_end = matches!(framing, Framing::ToEnd);
        read_body(&mut upstream_reader, &mut response, framing)?;
        response.without_headers(&["connection", "keep-alive"]);
        if read_to_end {
            response
                .head
                .push(format!("Content-Length: {}", response.body.len()));
        }
        // HTTP/1.0 status lines would make the client close after each answer.
        if let Some(rest) = response.head[0].strip_prefix("HTTP/1.0") {
            response.head[0] = format!("HTTP/1.1{rest}");
        }
        return Ok(response);
    }
}

fn serve(client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut client_reader = BufReader::new(client.try_clone()?);
    let mut client_writer = client;
    while let Some(mut request) = read_head(&mut client_reader)? {
        if request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            client_writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            client_writer.flush()?;
        }
        let framing = framing(&request, false, false);
        read_body(&mut client_reader, &mut request, framing)?;
        let closes = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut parts = request.head[0].split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let head_request = method == "HEAD";
        let mut seen = Seen {
            method,
            path,
            operation: operation_of(&request),
            fate: Fate::Forwarded,
        };
        seen.fate = shared.choose(&seen);
        let fate = seen.fate;
        shared.seen.lock().unwrap().push(seen);
        match fate {
            Fate::Throttled => client_writer.write_all(&throttling_response(&request))?,
            Fate::Unavailable => client_writer.write_all(&plain_response(
                503,
                "text/plain",
                "Service Unavailable",
            ))?,
            Fate::Refused => client_writer.write_all(&refused_response(&request))?,
            Fate::Answered(body) => {
                client_writer.write_all(&plain_response(400, "application/json", body))?
            }
            Fate::DroppedBefore => {
                let _ = client_writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Fate::Forwarded | Fate::DroppedAfter => {
                let response = forward(request, shared.upstream, head_request)?;
                if fate == Fate::DroppedAfter {
                    let _ = client_writer.shutdown(Shutdown::Both);
                    return Ok(());
                }
                client_writer.write_all(&response.to_bytes())?;
            }
        }
        client_writer.flush()?;
        if closes {
            let _ = client_writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}
