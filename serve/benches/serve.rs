//! `cargo bench -p kakeya-serve --bench serve`: the server under streaming load, next to the
//! engine alone. Spawns the real `kakeya serve` on loopback with a synthetic tiny model
//! (written by `kakeya make-tiny-model`, or `BENCH_MODEL=DIR`), then measures
//! 1. TTFT and inter-token latency p50/p95 and total tokens/s at 1, 4 and 16 concurrent
//!    streaming clients (`BENCH_CLIENTS`, default "1,4,16");
//! 2. server overhead at one client: request latency vs `kakeya generate` on the same prompt
//!    and token count, alternating, medians of `BENCH_REPEATS` (default 5);
//! 3. KV memory at a long prompt (`BENCH_LONG_TOKENS`, default 3000) with raw vs e8-q10:
//!    bytes held from `x_kakeya` and each server's peak RSS (VmHWM; Linux only).
//!
//! Prints a table and writes JSON to `BENCH_OUT` (default target/bench-serve.json).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

fn bin(name: &str) -> PathBuf {
    // target/release/deps/serve-HASH → target/release/NAME
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(args: &[String]) -> Server {
        let mut child = Command::new(bin("kakeya"))
            .arg("serve")
            .args(args)
            .args(["--port", "0", "--max-queue", "64"])
            .env("KAKEYA_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn kakeya serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("address line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let s = Server { child, port };
        let t0 = Instant::now();
        while post(s.port, "/health", None).map(|r| r.0) != Some(200) {
            assert!(t0.elapsed() < Duration::from_secs(300), "server not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET (body None) or POST; returns status and body (non-streaming).
fn post(port: u16, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    let method = if body.is_some() { "POST" } else { "GET" };
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// One streaming request: time to first content, gaps between content events, tokens.
struct StreamTiming {
    ttft_s: f64,
    gaps_s: Vec<f64>,
    tokens: u64,
}

fn stream(port: u16, body: &Value) -> StreamTiming {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let b = body.to_string();
    write!(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()).expect("write");
    let mut r = BufReader::new(s);
    let (mut first, mut last, mut gaps, mut tokens) = (None, None::<Instant>, Vec::new(), 0);
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(d) = line.trim().strip_prefix("data: ") {
            if d == "[DONE]" {
                break;
            }
            let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
            if let Some(u) = v["usage"]["completion_tokens"].as_u64() {
                tokens = u;
            }
            if v["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
            {
                let now = Instant::now();
                first.get_or_insert(now);
                if let Some(l) = last {
                    gaps.push((now - l).as_secs_f64());
                }
                last = Some(now);
            }
        }
        line.clear();
    }
    StreamTiming {
        ttft_s: first.map_or(0.0, |f| (f - t0).as_secs_f64()),
        gaps_s: gaps,
        tokens,
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    pct(&mut v, 0.5)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for b in ["kakeya", "kakeya-serve"] {
        assert!(
            bin(b).is_file(),
            "{} missing: cargo build --release -p kakeya-engine -p kakeya-serve",
            bin(b).display()
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = match std::env::var("BENCH_MODEL") {
        Ok(d) => PathBuf::from(d),
        Err(_) => {
            let d = tmp.path().join("model");
            run(Command::new(bin("kakeya"))
                .args([
                    "make-tiny-model",
                    "--arch",
                    "qwen3",
                    "--layers",
                    "4",
                    "--hidden",
                    "256",
                    "--vocab",
                    "2048",
                    "--seed",
                    "11",
                    "--out",
                ])
                .arg(&d));
            d
        }
    };
    let max_tokens: u64 = env_or("BENCH_TOKENS", "128").parse().expect("BENCH_TOKENS");
    let repeats: usize = env_or("BENCH_REPEATS", "5").parse().expect("BENCH_REPEATS");
    let long: usize = env_or("BENCH_LONG_TOKENS", "3000")
        .parse()
        .expect("BENCH_LONG_TOKENS");
    let prompt = "the cache stores the next word. the draft verifies one more block.";
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let m = model.display().to_string();
    let server = Server::start(&[
        "--model".into(),
        m.clone(),
        "--model-id".into(),
        "m".into(),
        "--kv".into(),
        "raw,e8-q10".into(),
    ]);
    let req = |stream: bool| {
        json!({"model": "m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": stream, "stream_options": {"include_usage": true}, "kakeya": {"ignore_eos": true}})
    };
    stream(server.port, &req(true)); // warm-up

    println!(
        "kakeya-serve bench: model {m} (synthetic tiny), {max_tokens} tokens/request, load {}",
        load.trim()
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "clients", "ttft_p50", "ttft_p95", "itl_p50", "itl_p95", "total_tok/s"
    );
    let mut levels = Vec::new();
    for c in env_or("BENCH_CLIENTS", "1,4,16")
        .split(',')
        .filter_map(|x| x.trim().parse::<usize>().ok())
    {
        let t0 = Instant::now();
        let port = server.port;
        let rounds = (8 / c).max(2);
        let handles: Vec<_> = (0..c)
            .map(|_| {
                let body = req(true);
                std::thread::spawn(move || {
                    (0..rounds).map(|_| stream(port, &body)).collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<StreamTiming> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect();
        let wall = t0.elapsed().as_secs_f64();
        let mut ttft: Vec<f64> = all.iter().map(|t| t.ttft_s).collect();
        let mut itl: Vec<f64> = all.iter().flat_map(|t| t.gaps_s.clone()).collect();
        let tokens: u64 = all.iter().map(|t| t.tokens).sum();
        let row = json!({"clients": c, "requests": all.len(), "ttft_p50_s": pct(&mut ttft, 0.5), "ttft_p95_s": pct(&mut ttft, 0.95),
            "itl_p50_s": pct(&mut itl, 0.5), "itl_p95_s": pct(&mut itl, 0.95), "tokens": tokens, "wall_s": wall,
            "tokens_per_s": tokens as f64 / wall});
        println!(
            "{:>8} {:>9.1}ms {:>9.1}ms {:>9.2}ms {:>9.2}ms {:>12.1}",
            c,
            row["ttft_p50_s"].as_f64().unwrap_or(0.0) * 1e3,
            row["ttft_p95_s"].as_f64().unwrap_or(0.0) * 1e3,
            row["itl_p50_s"].as_f64().unwrap_or(0.0) * 1e3,
            row["itl_p95_s"].as_f64().unwrap_or(0.0) * 1e3,
            row["tokens_per_s"].as_f64().unwrap_or(0.0)
        );
        levels.push(row);
    }

    // Overhead at one client: same prompt, same tokens, alternating order.
    let (mut srv, mut eng, mut srv_engine) = (Vec::new(), Vec::new(), Vec::new());
    let mut gen_tokens = 0;
    for i in 0..repeats {
        let mut one_server = || {
            let t0 = Instant::now();
            let (st, v) = post(server.port, "/v1/completions", Some(&json!({"model": "m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}))).expect("request");
            assert_eq!(st, 200, "{v}");
            srv.push(t0.elapsed().as_secs_f64());
            srv_engine.push(v["x_kakeya"]["total_s"].as_f64().unwrap_or(0.0));
            v["usage"]["completion_tokens"].as_u64().unwrap_or(0)
        };
        let mut one_engine = || {
            let out = run(Command::new(bin("kakeya"))
                .args(["generate", "--json", "--model"])
                .arg(&model)
                .args([
                    "--prompt",
                    prompt,
                    "--max-new-tokens",
                    &max_tokens.to_string(),
                ]));
            let v: Value = serde_json::from_slice(&out).expect("generate json");
            eng.push(v["timings_s"]["total"].as_f64().unwrap_or(0.0));
            v["tokens"].as_array().map_or(0, |a| a.len() as u64)
        };
        let (a, b) = if i % 2 == 0 {
            (one_server(), one_engine())
        } else {
            (one_engine(), one_server())
        };
        gen_tokens = a.max(b);
    }
    let (ms, me, mse) = (
        median(srv.clone()),
        median(eng.clone()),
        median(srv_engine.clone()),
    );
    let overhead = json!({"repeats": repeats, "tokens": gen_tokens, "server_request_s_median": ms, "server_engine_s_median": mse,
        "kakeya_generate_s_median": me, "overhead_vs_generate": ms / me - 1.0, "server_request_s": srv, "kakeya_generate_s": eng});
    println!(
        "overhead at 1 client: server request {:.1} ms (engine part {:.1} ms) vs kakeya generate {:.1} ms → {:+.1} % ({} tokens, medians of {repeats})",
        ms * 1e3,
        mse * 1e3,
        me * 1e3,
        (ms / me - 1.0) * 100.0,
        gen_tokens
    );
    drop(server);

    // KV memory at a long prompt: one server per channel so peak RSS is per channel.
    // Corpus words merge well in the tiny BPE: about 3 tokens per sentence.
    let long_prompt = "the cache stores the next word. ".repeat(long / 3);
    let mut memory = Vec::new();
    println!(
        "{:>8} {:>14} {:>14} {:>10} {:>14}",
        "kv", "prompt_tok", "kv_held_MiB", "held/raw", "peak_rss_MiB"
    );
    for kv in ["raw", "e8-q10"] {
        let s = Server::start(&[
            "--model".into(),
            m.clone(),
            "--model-id".into(),
            "m".into(),
            "--kv".into(),
            kv.into(),
        ]);
        let (st, v) = post(
            s.port,
            "/v1/completions",
            Some(&json!({"model": "m", "prompt": long_prompt, "max_tokens": 16, "temperature": 0})),
        )
        .expect("long request");
        if st != 200 {
            println!("{kv}: long prompt refused ({st}): {v}");
            continue;
        }
        let x = &v["x_kakeya"];
        let (held, raw) = (
            x["kv_bytes_held"].as_f64().unwrap_or(0.0),
            x["kv_bytes_raw"].as_f64().unwrap_or(1.0),
        );
        let rss = s.peak_rss_kib();
        println!(
            "{:>8} {:>14} {:>14.2} {:>10.3} {:>14}",
            kv,
            v["usage"]["prompt_tokens"],
            held / 1048576.0,
            held / raw,
            rss.map_or("n/a".to_string(), |r| format!("{:.1}", r as f64 / 1024.0))
        );
        memory.push(json!({"kv": kv, "prompt_tokens": v["usage"]["prompt_tokens"], "kv_bytes_held": held, "kv_bytes_raw": raw,
            "held_over_raw": held / raw, "peak_rss_kib": rss, "prefill_s": x["prefill_s"]}));
    }
    let report = json!({"kind": "serve_bench", "synthetic_model": std::env::var("BENCH_MODEL").is_err(), "model": m,
        "max_tokens": max_tokens, "load_before": load.trim(), "load_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "levels": levels, "overhead": overhead, "memory": memory});
    let out = env_or("BENCH_OUT", "target/bench-serve.json");
    let out = if Path::new(&out).is_absolute() {
        PathBuf::from(out)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(out)
    };
    std::fs::write(&out, serde_json::to_vec_pretty(&report).expect("json")).expect("write report");
    println!("wrote {}", out.display());
}
