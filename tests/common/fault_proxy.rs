//! A small HTTP/1.1 proxy on loopback that stands between the real `emrship` binary and moto and
//! answers a share of requests with the faults AWS clients meet in real life: throttling errors
//! in each protocol's own shape, 503s, connections dropped before the request reaches the
//! service, and — the nasty one — connections dropped after the service acted but before the
//! client heard the answer (a retried RunJobFlow must not start a second cluster).
//!
//! Which request gets which fault is decided by a seeded generator, so a failing run can be
//! replayed. Every request and its fate is recorded for the test to inspect.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
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
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// `X-Amz-Target` (JSON protocols, e.g. `ElasticMapReduce.RunJobFlow`) or the query
    /// `Action=` of form bodies (IAM), else empty (S3).
    pub operation: String,
    pub fate: Fate,
}

/// Shares of requests, in percent, given each fault; the rest is forwarded untouched.
#[derive(Debug, Clone, Copy)]
pub struct FaultMix {
    pub throttle: u32,
    pub unavailable: u32,
    pub drop_before: u32,
    pub drop_after: u32,
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
    rng: Mutex<u64>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests whose operation matches one of these are always forwarded (e.g. moto's own
    /// `/moto-api` used by the test itself).
    spared_paths: Vec<String>,
}

impl FaultProxy {
    /// Starts a proxy in front of `http://127.0.0.1:{upstream_port}`.
    pub fn start(upstream_port: u16, mix: FaultMix, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            upstream: upstream_port,
            mix,
            rng: Mutex::new(seed ^ 0x9E37_79B9_7F4A_7C15),
            seen: seen.clone(),
            spared_paths: vec!["/moto-api".to_string()],
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

    fn choose(&self) -> Fate {
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

/// Reads one message; `None` on a clean end of stream. Bodies are read by Content-Length or
/// chunked transfer encoding (kept encoded, forwarded as is); a response with neither and no
/// status that forbids a body is read to the end of the stream.
fn read_message(
    reader: &mut BufReader<TcpStream>,
    is_response: bool,
    head_request: bool,
) -> std::io::Result<Option<Message>> {
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
    let mut message = Message {
        head,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if head_request {
        // A response to HEAD carries the length of a body it does not send.
    } else if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            message.body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut trailer = String::new();
                    reader.read_line(&mut trailer)?;
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
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length.parse().unwrap_or(0);
        message.body = vec![0; length];
        reader.read_exact(&mut message.body)?;
    } else if is_response {
        let status = message.head[0].split_whitespace().nth(1).unwrap_or("");
        if !(status.starts_with('1') || status == "204" || status == "304") {
            reader.read_to_end(&mut message.body)?;
        }
    }
    Ok(Some(message))
}

fn operation_of(request: &Message) -> String {
    if let Some(target) = request.header("x-amz-target") {
        return target.to_string();
    }
    let body = String::from_utf8_lossy(&request.body);
    body.split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
        .unwrap_or_default()
}

/// The throttling error in the shape the request's protocol expects.
fn throttling_response(request: &Message) -> Vec<u8> {
    let (content_type, body) = if request.header("x-amz-target").is_some() {
        (
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string(),
        )
    } else if operation_of(request).is_empty() {
        // S3's throttling is a 503 SlowDown.
        return plain_response(
            503,
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        );
    } else {
        (
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>".to_string(),
        )
    };
    plain_response(400, content_type, &body)
}

fn plain_response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        503 => "Service Unavailable",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: fault-proxy\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve(client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut client_reader = BufReader::new(client.try_clone()?);
    let mut client_writer = client;
    let upstream = TcpStream::connect(("127.0.0.1", shared.upstream))?;
    let mut upstream_reader = BufReader::new(upstream.try_clone()?);
    let mut upstream_writer = upstream;
    while let Some(request) = read_message(&mut client_reader, false, false)? {
        let mut parts = request.head[0].split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let head_request = method == "HEAD";
        let spared = shared.spared_paths.iter().any(|p| path.starts_with(p));
        let fate = if spared {
            Fate::Forwarded
        } else {
            shared.choose()
        };
        shared.seen.lock().unwrap().push(Seen {
            method,
            path,
            operation: operation_of(&request),
            fate,
        });
        match fate {
            Fate::Throttled => client_writer.write_all(&throttling_response(&request))?,
            Fate::Unavailable => client_writer.write_all(&plain_response(
                503,
                "text/plain",
                "Service Unavailable",
            ))?,
            Fate::DroppedBefore => {
                let _ = client_writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Fate::Forwarded | Fate::DroppedAfter => {
                upstream_writer.write_all(&request.to_bytes())?;
                let Some(response) = read_message(&mut upstream_reader, true, head_request)? else {
                    return Ok(());
                };
                if fate == Fate::DroppedAfter {
                    let _ = client_writer.shutdown(Shutdown::Both);
                    return Ok(());
                }
                client_writer.write_all(&response.to_bytes())?;
            }
        }
        client_writer.flush()?;
    }
    Ok(())
}
