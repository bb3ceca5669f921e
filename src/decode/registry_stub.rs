//! A minimal in-memory Confluent-compatible schema registry, for tests and the local demo only.
//!
//! No Confluent registry installs from the package registries this project may use, so the wire
//! format is exercised against this: `POST /subjects/{subject}/versions` with `{"schema": "..."}`
//! registers (same schema text, same id) and answers `{"id": N}`; `GET /schemas/ids/{id}` answers
//! `{"schema": "..."}` or 404. One thread, one request per connection, loopback only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    by_id: HashMap<u32, String>,
    next: u32,
}

/// A running stub; it stops when the process exits.
pub struct RegistryStub {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
}

impl RegistryStub {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// While down, every request is answered 503, as a registry behind a failing load balancer
    /// would: the fault tests use it to prove the worker retries rather than quarantines.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
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
    let down = Arc::new(AtomicBool::new(false));
    let is_down = down.clone();
    std::thread::Builder::new()
        .name("registry-stub".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = handle(conn, &state, is_down.load(Ordering::SeqCst));
            }
        })?;
    Ok(RegistryStub { addr, down })
}

fn handle(conn: TcpStream, state: &Mutex<State>, down: bool) -> std::io::Result<()> {
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
    let (status, reply) = if down {
        (
            "503 Service Unavailable",
            r#"{"error_code":50301,"message":"down for a test"}"#.to_owned(),
        )
    } else {
        route(&method, &path, &body, state)
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
