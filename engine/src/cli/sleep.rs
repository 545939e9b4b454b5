use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use kakeya_engine::report::{self, ReportBuilder};
use serde_json::{Map, json};

/// Longest sleep accepted, matching the `sleep` preset's bound.
const MAX_MS: u64 = 600_000;
/// Most helper processes `--children` may start.
const MAX_CHILDREN: u32 = 8;

#[derive(clap::Args)]
pub struct Args {
    /// How long to sleep, in milliseconds (0 to 600000).
    #[arg(long)]
    ms: u64,
    /// Where to write the `sleep` report.
    #[arg(long, default_value = "sleep.json")]
    out: PathBuf,
    /// Also start this many child processes that sleep as long (0 to 8). Their process ids are
    /// recorded, so a runner's clean-up of the whole process group can be checked.
    #[arg(long, default_value_t = 0)]
    children: u32,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.ms <= MAX_MS,
        "--ms {} is over the {MAX_MS} ms limit",
        args.ms
    );
    anyhow::ensure!(
        args.children <= MAX_CHILDREN,
        "--children {} is over the limit of {MAX_CHILDREN}",
        args.children
    );
    let mut params = Map::new();
    params.insert("ms".into(), args.ms.into());
    params.insert("children".into(), args.children.into());
    let started_at = evidence_gate::now_rfc3339();
    let pid = std::process::id();
    let children = spawn_children(&args)?;
    let child_pids: Vec<u32> = children.iter().map(Child::id).collect();
    // Written first so that an execution is visible (and countable) even if the job is
    // killed before it finishes; the final write replaces it atomically.
    let pending = ReportBuilder::start("sleep", "cpu", params.clone()).finish(json!({
        "requested_ms": args.ms, "slept_ms": 0, "pid": pid, "child_pids": child_pids,
        "completed": false, "started_at": started_at, "finished_at": null,
    }))?;
    report::write_report(&args.out, &pending)
        .with_context(|| format!("writing {}", args.out.display()))?;

    let builder = ReportBuilder::start("sleep", "cpu", params);
    let clock = Instant::now();
    std::thread::sleep(Duration::from_millis(args.ms));
    let slept_ms = clock.elapsed().as_secs_f64() * 1000.0;
    for mut child in children {
        let status = child.wait().context("waiting for a child")?;
        anyhow::ensure!(status.success(), "child {} failed: {status}", child.id());
    }
    let done = builder.finish(json!({
        "requested_ms": args.ms,
        "slept_ms": (slept_ms * 1000.0).round() / 1000.0,
        "pid": pid,
        "child_pids": child_pids,
        "completed": true,
        "started_at": started_at,
        "finished_at": evidence_gate::now_rfc3339(),
    }))?;
    report::write_report(&args.out, &done)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}

/// Children sleep as long as the parent and write their own report beside it
/// (`<out stem>-child-<i>.json`).
fn spawn_children(args: &Args) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe().context("locating kakeya")?;
    let stem = args
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sleep".into());
    (0..args.children)
        .map(|i| {
            let out = args.out.with_file_name(format!("{stem}-child-{i}.json"));
            Command::new(&exe)
                .args(["sleep", "--ms", &args.ms.to_string(), "--out"])
                .arg(out)
                .stdin(Stdio::null())
                .spawn()
                .context("starting a child")
        })
        .collect()
}
