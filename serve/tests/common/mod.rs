//! Shared by the server's end-to-end tests: the real `kakeya` and `kakeya-serve` binaries,
//! tiny models written by `kakeya make-tiny-model`, a spawned server on loopback, and a
//! minimal HTTP/1.1 client over `TcpStream` (so raw framing is visible).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/release/kakeya`, built if this test run did not build it.
pub fn kakeya() -> PathBuf {
    let serve = PathBuf::from(env!("CARGO_BIN_EXE_kakeya-serve"));
    let dir = serve.parent().expect("binary folder");
    let k = dir.join(format!("kakeya{}", std::env::consts::EXE_SUFFIX));
    if !k.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = dir.ends_with("release");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "kakeya-engine", "--bin", "kakeya"]);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("running cargo build for kakeya");
        assert!(st.success(), "building kakeya failed");
    }
    k
}

pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Tiny models in `dir`: `qwen` (target), `qwen-draft` (its first layer), `llama`.
pub struct Models {
    pub qwen: PathBuf,
    pub draft: PathBuf,
    pub llama: PathBuf,
}

pub fn tiny_models(dir: &Path) -> Models {
    let k = kakeya();
    let m = Models {
        qwen: dir.join("qwen"),
        draft: dir.join("qwen-draft"),
        llama: dir.join("llama"),
    };
    run_ok(
        Command::new(&k)
            .args([
                "make-tiny-model",
                "--arch",
                "qwen3",
                "--seed",
                "3",
                "--layers",
                "3",
                "--out",
            ])
            .arg(&m.qwen),
    );
    run_ok(
        Command::new(&k)
            .args([
                "make-tiny-model",
                "--keep-layers",
                "2",
                "--noise",
                "0.05",
                "--from",
            ])
            .arg(&m.qwen)
            .arg("--out")
            .arg(&m.draft),
    );
    run_ok(
        Command::new(&k)
            .args(["make-tiny-model", "--arch", "llama", "--seed", "5", "--out"])
            .arg(&m.llama),
    );
    m
}

/// A YAML config serving the qwen model (with drafter and two KV channels) and the llama.
pub fn two_model_config(dir: &Path, m: &Models) -> PathBuf {
    let path = dir.join("serve.yaml");
    let text = format!(
        "models:\n  - id: tiny-qwen\n    model: {}\n    kv: [raw, e8-q10]\n    drafter: model\n    draft: {}\n    block_size: 4\n  - id: tiny-llama\n    model: {}\n    kv: raw\n",
        m.qwen.display(),
        m.draft.display(),
        m.llama.display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// `kakeya serve ARGS --port 0`, waiting until `/health` is 200.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(kakeya());
        cmd.arg("serve").args(args).args(["--port", "0"]);
        cmd.env_remove("KAKEYA_API_KEY").env("KAKEYA_LOG", "warn");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kakeya serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let port: u16 = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let s = Server { child, port };
        let t0 = Instant::now();
        loop {
            if let Ok(r) = s.request("GET", "/health", &[], b"")
                && r.status == 200
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "server never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        request(self.port, method, path, headers, body)
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .expect("request")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection (`Connection: close`), body de-chunked.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // The server may answer (413) before reading a huge body; a failed write is fine then.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        let stop = (start + size).min(b.len());
        out.extend_from_slice(&b[start..stop]);
        b = &b[(stop + 2).min(b.len())..];
    }
    out
}

/// `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .map(str::to_string)
        })
        .collect()
}
