//! A STUB of the three GitHub REST endpoints macbridge uses, for tests only (GitHub's API
//! cannot be reached from here). It speaks just enough HTTP/1.1 on 127.0.0.1 to record each
//! request and answer like GitHub does:
//! - `POST /repos/{o}/{r}/statuses/{sha}` → 201 with the status,
//! - `POST /repos/{o}/{r}/dispatches` → 204,
//! - `GET /repos/{o}/{r}/commits/{sha}/statuses` → 200 with the statuses posted so far.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
}

pub struct GitHubStub {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl GitHubStub {
    /// Start serving on an ephemeral loopback port (the thread ends with the test process).
    pub fn start() -> GitHubStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &log);
                });
            }
        });
        GitHubStub { url, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn serve(stream: std::net::TcpStream, log: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        let mut authorization = None;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "authorization" => authorization = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let body: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let (status, reply) = answer(&method, &path, &body, log);
        if let Ok(mut l) = log.lock() {
            l.push(Seen {
                method,
                path,
                authorization,
                body,
            });
        }
        let mut out = stream.try_clone()?;
        write!(
            out,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
        out.flush()?;
    }
}

fn answer(
    method: &str,
    path: &str,
    body: &serde_json::Value,
    log: &Mutex<Vec<Seen>>,
) -> (&'static str, String) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["repos", _, _, "statuses", _]) => ("201 Created", body.to_string()),
        ("POST", ["repos", _, _, "dispatches"]) => ("204 No Content", String::new()),
        ("GET", ["repos", o, r, "commits", sha, "statuses"]) => {
            let posted = format!("/repos/{o}/{r}/statuses/{sha}");
            let list: Vec<serde_json::Value> = log
                .lock()
                .map(|l| {
                    l.iter()
                        .rev()
                        .filter(|s| s.method == "POST" && s.path == posted)
                        .map(|s| s.body.clone())
                        .collect()
                })
                .unwrap_or_default();
            ("200 OK", serde_json::Value::Array(list).to_string())
        }
        _ => ("404 Not Found", r#"{"message":"Not Found"}"#.to_string()),
    }
}
