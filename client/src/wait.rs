//! `status` and `wait`: follow a request until it has a result, then bring the result home.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use macbridge_bus::git::{Bus, read_dir_blobs};
use macbridge_bus::layout;
use macbridge_bus::status::Status;
use macbridge_bus::view::RequestOnBus;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::common::{self, ClientLock, SignatureCheck};

/// Exit code of `wait`/`run` when the deadline passed without a result.
pub const EXIT_TIMEOUT: u8 = 3;

/// What `wait` reports.
#[derive(Debug, Serialize)]
pub struct WaitReport {
    #[serde(flatten)]
    pub status: Status,
    pub signature: Option<SignatureCheck>,
    /// Where the result's files were written.
    pub out: Option<String>,
    pub files: Vec<String>,
    pub waited_s: f64,
    pub timed_out: bool,
}

impl WaitReport {
    /// Success: the job is done, the gate (if any) passed and the signature verifies.
    pub fn succeeded(&self) -> bool {
        self.status.state == "done"
            && self.status.verdict.as_ref().is_none_or(|v| v.passed)
            && self
                .signature
                .as_ref()
                .is_some_and(|s| s.valid && s.trusted != Some(false))
    }

    pub fn exit_code(&self) -> u8 {
        if self.timed_out {
            EXIT_TIMEOUT
        } else if self.succeeded() {
            0
        } else {
            1
        }
    }
}

pub struct WaitOptions<'a> {
    pub timeout: Duration,
    pub out: Option<&'a Path>,
    pub runner_signers: Option<&'a Path>,
    /// Print progress lines on stderr.
    pub progress: bool,
}

/// Poll `branch` until it has a result or `timeout` passes.
pub fn wait(
    bus: &Bus,
    lock: &ClientLock,
    branch: &str,
    opts: &WaitOptions<'_>,
) -> anyhow::Result<WaitReport> {
    let started = Instant::now();
    let mut interval = Duration::from_millis(200);
    let mut last_line = String::new();
    let mut last_print = Instant::now();
    let interactive = std::io::stderr().is_terminal();
    loop {
        let (status, request) = common::current_status(bus, lock, branch)?;
        let waited = started.elapsed();
        if status.is_final() || waited >= opts.timeout {
            let timed_out = !status.is_final();
            let signature = request
                .result
                .as_ref()
                .map(|_| common::check_result_signature(&request, opts.runner_signers));
            if let Some(sig) = &signature
                && sig.valid
                && sig.trusted.is_none()
                && let Some(problem) = &sig.problem
            {
                eprintln!("warning: {problem}");
            }
            let files = match (opts.out, timed_out) {
                (Some(dir), false) => write_out(bus, &request, dir)?,
                _ => Vec::new(),
            };
            if opts.progress {
                eprintln!(
                    "[{:>5.1}s] {}",
                    waited.as_secs_f64(),
                    if timed_out {
                        format!("gave up waiting: still {}", status.state)
                    } else {
                        format!("finished: {}", status.state)
                    }
                );
            }
            return Ok(WaitReport {
                status,
                signature,
                out: opts.out.map(|p| p.display().to_string()),
                files,
                waited_s: (waited.as_secs_f64() * 100.0).round() / 100.0,
                timed_out,
            });
        }
        if opts.progress {
            let line = progress_line(&status);
            let stale =
                last_print.elapsed() >= Duration::from_secs(if interactive { 5 } else { 30 });
            if line != last_line || stale {
                eprintln!("[{:>5.1}s] {line}", waited.as_secs_f64());
                last_line = line;
                last_print = Instant::now();
            }
        }
        let remaining = opts.timeout.saturating_sub(started.elapsed());
        std::thread::sleep(interval.min(remaining));
        interval = (interval * 3 / 2).min(Duration::from_secs(2));
    }
}

fn progress_line(status: &Status) -> String {
    match status.state.as_str() {
        "pending" => match &status.reason {
            Some(reason) => format!("pending: {reason}"),
            None => "pending: waiting for a runner to claim it".to_string(),
        },
        state => {
            let mut line = format!(
                "{state} on {} (attempt {})",
                status.runner.as_deref().unwrap_or("?"),
                status.attempt.unwrap_or(1)
            );
            if let Some(age) = status.lease_age_s {
                line.push_str(&format!(", lease renewed {age:.0}s ago"));
            }
            if let Some(last) = status
                .log_tail
                .as_deref()
                .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()))
            {
                let last: String = last.chars().take(100).collect();
                line.push_str(&format!(" | {last}"));
            }
            line
        }
    }
}

/// Write result.json, result.sig, logs and reports of the result commit into `dir`, and
/// check each file against the sha256 the signed result lists.
fn write_out(bus: &Bus, request: &RequestOnBus, dir: &Path) -> anyhow::Result<Vec<String>> {
    const LIMIT: usize = 64 * 1024 * 1024;
    let Some(result) = &request.result else {
        return Ok(Vec::new());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut put = |rel: PathBuf, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(rel.display().to_string());
        Ok(())
    };
    put(PathBuf::from("result.json"), &result.bytes)?;
    if let Some(sig) = &result.signature {
        put(PathBuf::from("result.sig"), sig)?;
    }
    let artifacts = result
        .record
        .as_ref()
        .map(|r| r.artifacts.clone())
        .unwrap_or_default();
    for (bus_dir, local_dir) in [(layout::LOGS_DIR, "logs"), (layout::REPORTS_DIR, "results")] {
        for (name, bytes) in read_dir_blobs(bus.repo(), request.tip, bus_dir, LIMIT)? {
            let bus_path = format!("{bus_dir}/{name}");
            let listed = artifacts.iter().find(|a| a.path == bus_path);
            let digest = hex::encode(Sha256::digest(&bytes));
            if listed.is_none_or(|a| a.sha256 != digest) {
                eprintln!(
                    "warning: {bus_path} is not listed in the signed result with this content; not written"
                );
                continue;
            }
            put(Path::new(local_dir).join(&name), &bytes)?;
        }
    }
    Ok(written)
}

/// Human-readable summary of a finished request.
pub fn print_summary(report: &WaitReport) {
    let s = &report.status;
    println!("branch:     {}", s.branch);
    if let Some(id) = &s.request_id {
        println!("request_id: {id}");
    }
    println!("state:      {}", s.state);
    if let Some(reason) = &s.reason {
        println!("reason:     {reason}");
    }
    if let Some(result) = &s.result {
        println!(
            "runner:     {} ({}), attempt {}",
            result.runner.id, result.runner.fingerprint, result.attempt
        );
        if let Some(code) = result.exit_code {
            println!("exit code:  {code}");
        }
        if let Some(secs) = result.timings.run_seconds {
            println!("run time:   {secs:.2} s");
        }
    }
    match &report.signature {
        Some(sig) if sig.valid => println!(
            "signature:  valid, by {}{}",
            sig.signer.as_deref().unwrap_or("?"),
            match sig.trusted {
                Some(true) => format!(" (trusted runner {})", sig.principals.join(",")),
                Some(false) => " (NOT a trusted runner key)".to_string(),
                None => " (key NOT checked against a runner signers file)".to_string(),
            }
        ),
        Some(sig) => println!(
            "signature:  INVALID: {}",
            sig.problem.as_deref().unwrap_or("unknown problem")
        ),
        None => {}
    }
    match &s.verdict {
        Some(v) => {
            println!("gate:       {}", v.summary());
            for r in v.reports.iter().filter(|r| !r.passed) {
                for viol in &r.violations {
                    println!("            {}: [{}] {}", r.path, viol.code, viol.message);
                }
            }
        }
        None if s.is_final() => println!("gate:       not applicable (no job reports)"),
        None => {}
    }
    if let Some(out) = &report.out
        && !report.files.is_empty()
    {
        println!("written to: {out} ({} files)", report.files.len());
    }
}
