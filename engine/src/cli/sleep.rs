use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use kakeya_engine::report::{self, ReportBuilder};
use serde_json::{Map, json};

/// Longest sleep accepted, matching the `sleep` preset's bound.
const MAX_MS: u64 = 600_000;

#[derive(clap::Args)]
pub struct Args {
    /// How long to sleep, in milliseconds (0 to 600000).
    #[arg(long)]
    ms: u64,
    /// Where to write the `sleep` report.
    #[arg(long, default_value = "sleep.json")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.ms <= MAX_MS, "--ms {} is over the {MAX_MS} ms limit", args.ms);
    let mut params = Map::new();
    params.insert("ms".into(), args.ms.into());
    let started_at = evidence_gate::now_rfc3339();
    let pid = std::process::id();
    // Written first so that an execution is visible (and countable) even if the job is
    // killed before it finishes; the final write replaces it atomically.
    let pending = ReportBuilder::start("sleep", "cpu", params.clone()).finish(json!({
        "requested_ms": args.ms, "slept_ms": 0, "pid": pid, "completed": false,
        "started_at": started_at, "finished_at": null,
    }))?;
    report::write_report(&args.out, &pending)
        .with_context(|| format!("writing {}", args.out.display()))?;

    let builder = ReportBuilder::start("sleep", "cpu", params);
    let clock = Instant::now();
    std::thread::sleep(Duration::from_millis(args.ms));
    let slept_ms = clock.elapsed().as_secs_f64() * 1000.0;
    let done = builder.finish(json!({
        "requested_ms": args.ms,
        "slept_ms": (slept_ms * 1000.0).round() / 1000.0,
        "pid": pid,
        "completed": true,
        "started_at": started_at,
        "finished_at": evidence_gate::now_rfc3339(),
    }))?;
    report::write_report(&args.out, &done)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
