//! A minimal in-memory Confluent-compatible schema registry, for tests and the local demo only.
//!
//! No Confluent registry installs from the package registries this project may use, so the wire
//! format is exercised against this: `POST /subjects/{subject}/versions` with `{"schema": "..."}`
//! registers (same schema text, same id) and answers `{"id": N}`; `GET /schemas/ids/{id}` answers
//! `{"schema": "..."}` or 404. One thread, one request per connection, loopback only.
//!
//! Tests can make it fail: [`RegistryStub::fail_with`] answers every request with a given status
//! (401, 429, 503, ...) for a while or until told otherwise.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failure the stub is told to answer with: the status, until when (`None`: until cleared).
type Failure = Option<(u16, Option<Instant>)>;

#[derive(Default)]
struct State {
    by_id: HashMap<u32, String>,
    next: u32,
}

/// A running stub; it stops when the process exits.
pub struct RegistryStub {
    pub addr: SocketAddr,
    failure: Arc<Mutex<Failure>>,
    /// Requests answered with the injected failure status.
    failed: Arc<AtomicU64>,
}

impl RegistryStub {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While down, every request is answered 503, as a registry behind a failing load balancer
    /// would: the fault tests use it to prove the worker retries rather than quarantines.
    pub fn set_down(&self, down: bool) {
        if down {
            self.fail_with(503, None);
        } else {
            self.recover();
        }
    }

    /// Answers every request with `status` (e.g. 401, 429, 503) for `lasting` (`None`: until
    /// [`RegistryStub::recover`]).
    pub fn fail_with(&self, status: u16, lasting: Option<Duration>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((status, lasting.map(|d| Instant::now() + d)));
    }

    /// Answers normally again.
    pub fn recover(&self) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// How many requests were answered with an injected failure so far.
    pub fn failed_requests(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
}

fn current_failure(failure: &Mutex<Failure>) -> Option<u16> {
    match *failure.lock().unwrap_or_else(|p| p.into_inner()) {
        Some((status, None)) => Some(status),
        Some((status, Some(until))) if Instant::now() < until => Some(status),
        _ => None,
    }
}

fn status_line(status: u16) -> String {
    let text = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected Failure",
    };
    format!("{status} {text}")
}

/// Starts the stub on `127.0.0.1:port` (0 = any free port).
///
/// # Errors
/// The port cannot be bound.
pub fn serve(port: u16) -> std::io::Result<RegistryStub> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Mutex::new(State {
        next: 1,
        ..Default::default()
    }));
    let failure: Arc<Mutex<Failure>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let (fail, count) = (failure.clone(), failed.clone());
    std::thread::Builder::new()
        .name("registry-stub".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let injected = current_failure(&fail);
                if injected.is_some() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let _ = handle(conn, &state, injected);
            }
        })?;
    Ok(RegistryStub {
        addr,
        failure,
        failed,
    })
}

fn handle(conn: TcpStream, state: &Mutex<State>, failure: Option<u16>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len.min(16 << 20)];
    reader.read_exact(&mut body)?;
    let (status, reply) = match failure {
        Some(code) => (
            status_line(code),
            format!(r#"{{"error_code":{code}01,"message":"failing for a test"}}"#),
        ),
        None => {
            let (status, reply) = route(&method, &path, &body, state);
            (status.to_owned(), reply)
        }
    };
    let mut out = conn;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    out.flush()
}

fn route(method: &str, path: &str, body: &[u8], state: &Mutex<State>) -> (&'static str, String) {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    if method == "GET" {
        if let Some(id) = path
            .strip_prefix("/schemas/ids/")
            .and_then(|s| s.split('?').next())
            .and_then(|s| s.parse::<u32>().ok())
        {
            if let Some(schema) = st.by_id.get(&id) {
                return (
                    "200 OK",
                    serde_json::json!({ "schema": schema }).to_string(),
                );
            }
        }
        return (
            "404 Not Found",
            r#"{"error_code":40403,"message":"Schema not found"}"#.into(),
        );
    }
    if method == "POST" && path.starts_with("/subjects/") && path.ends_with("/versions") {
        let schema = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("schema").and_then(|s| s.as_str()).map(str::to_owned));
        let Some(schema) = schema else {
            return (
                "422 Unprocessable Entity",
                r#"{"error_code":42201,"message":"Invalid schema"}"#.into(),
            );
        };
        if let Some((id, _)) = st.by_id.iter().find(|(_, s)| **s == schema) {
            return ("200 OK", format!(r#"{{"id":{id}}}"#));
        }
        let id = st.next;
        st.next += 1;
        st.by_id.insert(id, schema);
        return ("200 OK", format!(r#"{{"id":{id}}}"#));
    }
    (
        "404 Not Found",
        r#"{"error_code":404,"message":"Not found"}"#.into(),
    )
}
