//! Happy-path latency on the embedded local bus: N sequential requests served by one real
//! runner process, each arriving at a different phase of the runner's poll cycle. Measures, per request, the client's `request` command, request→claim and
//! request→result (observed by polling the bus with `git ls-remote`, as a requester would).
//!
//! Run: `cargo build --release --workspace && cargo bench -p macbridge --bench bus_latency`
//! Options (env): BENCH_N (default 20), BENCH_POLL (runner poll seconds, default 0.2),
//! BENCH_PRESET (default env-probe), BENCH_OUT (JSON path, default target/bench/bus_latency.json).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "support/common.rs"]
mod common;
use common::{Client, Stopped, binaries_dir, env_or, quantile};
use std::time::{Duration, Instant};

fn main() {
    let n: usize = env_or("BENCH_N", 20);
    let poll: f64 = env_or("BENCH_POLL", 0.2);
    let preset = std::env::var("BENCH_PRESET").unwrap_or_else(|_| "env-probe".into());
    let bin = binaries_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let macbridge = bin.join("macbridge");
    let bus = root.join("bus.git");
    let cache = root.join("cache");
    let client = Client {
        bin: macbridge.clone(),
        cache: cache.clone(),
    };
    let run = |args: &[&str]| client.run(args);
    let bus_s = bus.display().to_string();
    run(&["init", "--bus", &bus_s]);
    let requester = root.join("requester").display().to_string();
    let runner_key = root.join("runner").display().to_string();
    run(&["keygen", "--out", &requester]);
    run(&["keygen", "--out", &runner_key]);
    let public = std::fs::read_to_string(format!("{requester}.pub")).expect("pub key");
    let allowed = root.join("allowed_signers");
    std::fs::write(&allowed, format!("bench {public}")).expect("allowed_signers");
    let config = root.join("runner.yaml");
    std::fs::write(
        &config,
        format!(
            "remote: {bus_s}\nrunner_id: bench\nkey: {runner_key}\nallowed_signers: {}\nwork_dir: {}\npoll_seconds: {poll}\nheartbeat_seconds: 5\nlease_seconds: 60\nengine: {}\n",
            allowed.display(),
            root.join("work").display(),
            bin.join("kakeya").display()
        ),
    )
    .expect("config");
    let _runner = Stopped(
        Command::new(bin.join("macbridge-runner"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("MACBRIDGE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the runner"),
    );

    let mut request_s = Vec::new();
    let mut claim_s = Vec::new();
    let mut result_s = Vec::new();
    eprintln!("{n} sequential {preset} requests, runner poll {poll} s");
    for i in 0..n {
        // Requests arrive at a random phase of the runner's poll cycle, as real ones do;
        // back-to-back requests would always land just after a poll and wait a full cycle.
        std::thread::sleep(Duration::from_secs_f64(
            poll * ((i * 7919) % 20) as f64 / 20.0,
        ));
        let t0 = Instant::now();
        let out = run(&[
            "request", "--remote", &bus_s, "--key", &requester, "--preset", &preset, "--json",
        ]);
        let pushed = t0.elapsed();
        let v: serde_json::Value = serde_json::from_str(&out).expect("request json");
        let branch = format!("refs/heads/{}", v["branch"].as_str().expect("branch"));
        let claim = format!(
            "refs/mac-bridge/claims/{}",
            v["request_id"].as_str().expect("id")
        );
        let request_tip = tip(&bus, &branch).expect("branch exists");
        let claimed = wait_for(t0, || tip(&bus, &claim).is_some());
        let answered = wait_for(t0, || tip(&bus, &branch).is_some_and(|t| t != request_tip));
        request_s.push(pushed.as_secs_f64());
        claim_s.push(claimed.as_secs_f64());
        result_s.push(answered.as_secs_f64());
        eprintln!(
            "  #{i:>2}: request {:.3} s, claim {:.3} s, result {:.3} s",
            pushed.as_secs_f64(),
            claimed.as_secs_f64(),
            answered.as_secs_f64()
        );
    }
    let rows = [
        ("client request (sign + push)", &request_s),
        ("request -> claim", &claim_s),
        ("request -> result", &result_s),
    ];
    println!(
        "\n| measure (n={n}, poll {poll} s, preset {preset}) | median s | p95 s | min s | max s |"
    );
    println!("|---|---|---|---|---|");
    let mut json_rows = Vec::new();
    for (name, values) in rows {
        let s = stats(values);
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.0, s.1, s.2, s.3
        );
        json_rows.push(serde_json::json!({"measure": name, "median_s": s.0, "p95_s": s.1, "min_s": s.2, "max_s": s.3, "samples": values}));
    }
    let out = std::env::var("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            bin.parent()
                .map(|t| t.join("bench"))
                .unwrap_or_default()
                .join("bus_latency.json")
        });
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let report = serde_json::json!({
        "benchmark": "bus_latency", "n": n, "poll_seconds": poll, "preset": preset,
        "host": {"os": std::env::consts::OS, "arch": std::env::consts::ARCH,
                 "cpus": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1)},
        "rows": json_rows,
    });
    std::fs::write(&out, serde_json::to_vec_pretty(&report).expect("json")).expect("writing JSON");
    eprintln!("wrote {}", out.display());
}

fn tip(bus: &Path, reference: &str) -> Option<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(bus)
        .args(["rev-parse", "--verify", "--quiet", reference])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn wait_for(t0: Instant, mut done: impl FnMut() -> bool) -> Duration {
    let deadline = t0 + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting on the runner");
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

/// (median, p95, min, max)
fn stats(values: &[f64]) -> (f64, f64, f64, f64) {
    (
        quantile(values, 0.5),
        quantile(values, 0.95),
        quantile(values, 0.0),
        quantile(values, 1.0),
    )
}
