//! Several runners draining one queue on the embedded local bus, and how `queue` scales with
//! the number of finished requests.
//!
//! Part 1: N requests of a trivial preset (`sleep` with ms=0) pushed as fast as two client
//! threads can, served by R real `macbridge-runner serve` processes. A watcher polls the bus's
//! refs every 10 ms to time request→claim and request→result. A post-receive hook on the bus
//! counts pushes. Afterwards every runner's `work_dir/jobs/*/out/sleep.json` is counted: each
//! request must have run exactly once.
//!
//! Part 2: synthetic finished requests (signed request and result commits) are added to the
//! bus in bulk, and `macbridge queue --json` is timed at several sizes, then again after one
//! `macbridge-runner cleanup` pass archived them.
//!
//! Run: `cargo build --release --workspace && cargo bench -p macbridge --bench bus_drain`
//! Env: BENCH_N (200), BENCH_RUNNERS (4), BENCH_POLL (0.2), BENCH_FINISHED ("1000,2500,5000"),
//! BENCH_OUT (JSON, default target/bench/bus_drain.json).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/common.rs"]
mod common;
#[path = "support/synthetic.rs"]
mod synthetic;

use common::{Client, Stopped, binaries_dir, env_or, quantile};

fn main() {
    let n: usize = env_or("BENCH_N", 200);
    let runners: usize = env_or("BENCH_RUNNERS", 4);
    let poll: f64 = env_or("BENCH_POLL", 0.2);
    let sizes: Vec<usize> = std::env::var("BENCH_FINISHED")
        .unwrap_or_else(|_| "1000,2500,5000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let bin = binaries_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let bus = root.join("bus.git");
    let cache = root.join("cache");
    let macbridge = bin.join("macbridge");
    let client = Client {
        bin: macbridge.clone(),
        cache: cache.clone(),
    };
    let mb = |args: &[&str]| client.run(args);
    let bus_s = bus.display().to_string();
    mb(&["init", "--bus", &bus_s]);
    let hook = bus.join("hooks").join("post-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nn=$(wc -l)\necho \"$n\" >> \"$GIT_DIR/push-log\"\n",
    )
    .expect("hook");
    set_exec(&hook);
    let requester = root.join("requester").display().to_string();
    mb(&["keygen", "--out", &requester]);
    let public = std::fs::read_to_string(format!("{requester}.pub")).expect("pub");
    let allowed = root.join("allowed_signers");
    std::fs::write(&allowed, format!("bench {public}")).expect("allowed");
    let mut children = Vec::new();
    let mut work_dirs = Vec::new();
    for i in 0..runners {
        let key = root.join(format!("runner-{i}")).display().to_string();
        mb(&["keygen", "--out", &key]);
        let work = root.join(format!("work-{i}"));
        let config = root.join(format!("runner-{i}.yaml"));
        std::fs::write(
            &config,
            format!(
                "remote: {bus_s}\nrunner_id: runner-{i}\nkey: {key}\nallowed_signers: {}\nwork_dir: {}\npoll_seconds: {poll}\nheartbeat_seconds: 5\nlease_seconds: 60\npresence_seconds: 3600\ncleanup_seconds: 86400\nretention_seconds: 0\nengine: {}\n",
                allowed.display(),
                work.display(),
                bin.join("kakeya").display()
            ),
        )
        .expect("config");
        work_dirs.push((work, config));
    }
    let pushes_before_runners = push_count(&bus);
    for (_, config) in &work_dirs {
        children.push(Stopped(
            Command::new(bin.join("macbridge-runner"))
                .args(["serve", "--config"])
                .arg(config)
                .env("MACBRIDGE_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("runner"),
        ));
    }
    // Let the runners announce themselves before the clock starts.
    std::thread::sleep(Duration::from_secs(1));
    let presence_pushes = push_count(&bus) - pushes_before_runners;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(Mutex::new(false));
    let watcher = {
        let (seen, stop, bus) = (seen.clone(), stop.clone(), bus.clone());
        std::thread::spawn(move || watch(&bus, &seen, &stop))
    };
    let pushes_before = push_count(&bus);
    let t0 = Instant::now();
    let submit = |count: usize| {
        let mb = &mb;
        let requester = &requester;
        let bus_s = &bus_s;
        move || {
            for _ in 0..count {
                mb(&[
                    "request", "--remote", bus_s, "--key", requester, "--preset", "sleep",
                    "--param", "ms=0", "--json",
                ]);
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(submit(n / 2));
        s.spawn(submit(n - n / 2));
    });
    let submitted = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let done = seen.lock().map(|s| s.result.len()).unwrap_or(0);
        if done >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drain did not finish: {done}/{n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    *stop.lock().expect("stop") = true;
    let _ = watcher.join();
    drop(children);
    let pushes = push_count(&bus) - pushes_before;
    let seen = seen.lock().expect("seen").clone();

    // Exactly once: every request id has one sleep.json across all runners' job folders.
    let mut executions: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_runner = Vec::new();
    for (work, _) in &work_dirs {
        let mut count = 0;
        if let Ok(entries) = std::fs::read_dir(work.join("jobs")) {
            for e in entries.filter_map(Result::ok) {
                if e.path().join("out").join("sleep.json").is_file() {
                    let id = e
                        .file_name()
                        .to_string_lossy()
                        .split('.')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    *executions.entry(id).or_default() += 1;
                    count += 1;
                }
            }
        }
        per_runner.push(count);
    }
    let duplicated = executions.values().filter(|c| **c > 1).count();
    let lost = n.saturating_sub(executions.len());
    let first = seen.request.values().copied().fold(f64::INFINITY, f64::min);
    let last = seen.result.values().copied().fold(0.0, f64::max);
    let mut claim = Vec::new();
    let mut result = Vec::new();
    let mut overhead = Vec::new();
    for (branch, t_req) in &seen.request {
        let (Some(t_res), Some(id)) = (seen.result.get(branch), seen.ids.get(branch)) else {
            continue;
        };
        let Some(t_claim) = seen.claim.get(id) else {
            continue;
        };
        claim.push(t_claim - t_req);
        result.push(t_res - t_req);
        let run = run_seconds(&bus, branch).unwrap_or(0.0);
        overhead.push(t_res - t_claim - run);
    }
    let drain = last - first;
    println!("\n## Drain: {n} requests (sleep ms=0), {runners} runners, poll {poll} s\n");
    println!("| measure | value |\n|---|---|");
    println!(
        "| submit time (2 client threads) | {:.1} s |",
        submitted.as_secs_f64()
    );
    println!(
        "| drain time (first request seen → last result) | {drain:.1} s ({:.1} requests/s) |",
        n as f64 / drain
    );
    for (name, v) in [
        ("request → claim", &claim),
        ("request → result", &result),
        (
            "runner overhead per job (claim → result − run time)",
            &overhead,
        ),
    ] {
        let s = stats(v);
        println!("| {name} p50 / p95 | {:.3} s / {:.3} s |", s.0, s.1);
    }
    println!(
        "| pushes per job (all, incl. the request) | {:.2} |",
        pushes as f64 / n as f64
    );
    println!("| executions per runner | {per_runner:?} |");
    println!("| lost / duplicated | {lost} / {duplicated} |");

    // Part 2: queue time against the number of finished requests.
    println!("\n## `macbridge queue` against finished requests\n");
    println!(
        "| finished requests on the bus | live refs | queue --json median of 3 |\n|---|---|---|"
    );
    let mut queue_rows = Vec::new();
    let mut total = n;
    let mut time_queue = |label: &str, finished: usize| {
        let refs = ref_count(&bus);
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            mb(&["queue", "--remote", &bus_s, "--json"]);
            times.push(t.elapsed().as_secs_f64());
        }
        let median = stats(&times).0;
        println!("| {label} | {refs} | {median:.2} s |");
        queue_rows.push(serde_json::json!({"label": label, "finished": finished, "live_refs": refs, "queue_s": median}));
    };
    time_queue(&n.to_string(), n);
    for size in sizes {
        if size > total {
            synthetic::add_finished(&bus, &root, &requester, size - total);
            total = size;
            time_queue(&total.to_string(), total);
        }
    }
    let cleanup = Instant::now();
    let out = Command::new(bin.join("macbridge-runner"))
        .args(["cleanup", "--json", "--config"])
        .arg(&work_dirs[0].1)
        .output()
        .expect("cleanup");
    assert!(
        out.status.success(),
        "cleanup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cleanup_s = cleanup.elapsed().as_secs_f64();
    println!(
        "\ncleanup pass: {} in {cleanup_s:.1} s (200 per pass)",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    // One pass archives a batch; run until the bus is clean to show the end state.
    for _ in 0..(total / 200 + 1) {
        let _ = Command::new(bin.join("macbridge-runner"))
            .args(["cleanup", "--config"])
            .arg(&work_dirs[0].1)
            .output();
    }
    time_queue(&format!("{total} after archiving"), total);

    let report = serde_json::json!({
        "benchmark": "bus_drain", "requests": n, "runners": runners, "poll_seconds": poll,
        "submit_s": submitted.as_secs_f64(), "drain_s": drain, "requests_per_s": n as f64 / drain,
        "claim_p50_s": stats(&claim).0, "claim_p95_s": stats(&claim).1,
        "result_p50_s": stats(&result).0, "result_p95_s": stats(&result).1,
        "overhead_p50_s": stats(&overhead).0, "overhead_p95_s": stats(&overhead).1,
        "pushes_per_job": pushes as f64 / n as f64, "presence_pushes": presence_pushes,
        "executions_per_runner": per_runner, "lost": lost, "duplicated": duplicated,
        "queue": queue_rows, "cleanup_pass_s": cleanup_s,
        "host": {"os": std::env::consts::OS, "arch": std::env::consts::ARCH,
                 "cpus": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(1)},
    });
    let path = std::env::var("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            bin.parent()
                .map(|t| t.join("bench"))
                .unwrap_or_default()
                .join("bus_drain.json")
        });
    if let Some(p) = path.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&report).expect("json")).expect("write");
    eprintln!("wrote {}", path.display());
    assert_eq!((lost, duplicated), (0, 0), "requests lost or run twice");
}

#[derive(Default, Clone)]
struct Seen {
    /// branch → seconds when first seen (relative to the watcher's start).
    request: BTreeMap<String, f64>,
    /// branch → request tip
    tips: BTreeMap<String, String>,
    /// branch → request id (from the claim's lease is not needed: read once from the manifest)
    ids: BTreeMap<String, String>,
    /// request id → first seen claim
    claim: BTreeMap<String, f64>,
    /// branch → first time its tip moved (the result)
    result: BTreeMap<String, f64>,
}

fn watch(bus: &Path, seen: &Mutex<Seen>, stop: &Mutex<bool>) {
    let start = Instant::now();
    let mut known_ids = BTreeSet::new();
    while !*stop.lock().expect("stop") {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(bus)
            .args([
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/heads/mac-bridge",
                "refs/mac-bridge/claims",
            ])
            .output();
        let now = start.elapsed().as_secs_f64();
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut s = seen.lock().expect("seen");
            for line in text.lines() {
                let Some((name, oid)) = line.split_once(' ') else {
                    continue;
                };
                if let Some(id) = name.strip_prefix("refs/mac-bridge/claims/") {
                    s.claim.entry(id.to_string()).or_insert(now);
                } else if !s.tips.contains_key(name) {
                    s.request.insert(name.to_string(), now);
                    s.tips.insert(name.to_string(), oid.to_string());
                } else if s.tips.get(name).is_some_and(|t| t != oid) {
                    s.result.entry(name.to_string()).or_insert(now);
                }
                if !known_ids.contains(name)
                    && name.starts_with("refs/heads/")
                    && let Some(id) = request_id(bus, name)
                {
                    s.ids.insert(name.to_string(), id);
                    known_ids.insert(name.to_string());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn request_id(bus: &Path, branch: &str) -> Option<String> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(bus)
        .args(["show", &format!("{branch}:.mac-bridge/request.json")])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["request_id"].as_str().map(str::to_string)
}

fn run_seconds(bus: &Path, branch: &str) -> Option<f64> {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(bus)
        .args(["show", &format!("{branch}:.mac-bridge/result.json")])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["timings"]["run_seconds"].as_f64()
}

fn push_count(bus: &Path) -> usize {
    std::fs::read_to_string(bus.join("push-log"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn ref_count(bus: &Path) -> usize {
    Command::new("git")
        .arg("--git-dir")
        .arg(bus)
        .args(["for-each-ref", "--format=x"])
        .output()
        .map(|o| o.stdout.iter().filter(|b| **b == b'\n').count())
        .unwrap_or(0)
}

fn set_exec(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755));
}

/// (p50, p95)
fn stats(values: &[f64]) -> (f64, f64) {
    (quantile(values, 0.5), quantile(values, 0.95))
}
