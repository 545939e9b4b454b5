//! `macbridge-runner`: the daemon on each Mac. It polls the bus, verifies and claims signed
//! requests, runs their allowlisted preset, passes the reports through the evidence gate and
//! publishes a signed result for every request it sees, refused ones included.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{info, warn};

mod config;
mod exec;
mod housekeeping;
mod job;
mod publish;
mod runner;

use runner::{Handled, Runner};

#[derive(Parser)]
#[command(
    name = "macbridge-runner",
    version,
    about = "Serve macbridge requests from a git bus: verify, claim, run, gate, publish signed results",
    long_about = "Serve macbridge requests from a git bus.\n\n\
        Every request branch under refs/heads/mac-bridge/ ends with a signed result: the job's \
        outcome, or the reason it was refused. Logs go to stderr; set MACBRIDGE_LOG=debug for more."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Poll the bus and serve requests until stopped (SIGINT/SIGTERM).
    Serve {
        /// Runner config (YAML).
        #[arg(long, env = "MACBRIDGE_RUNNER_CONFIG")]
        config: PathBuf,
    },
    /// Handle every pending request once, then exit.
    Once {
        /// Runner config (YAML).
        #[arg(long, env = "MACBRIDGE_RUNNER_CONFIG")]
        config: PathBuf,
        /// Only this request branch (e.g. mac-bridge/sleep-<nonce>).
        #[arg(long)]
        branch: Option<String>,
        /// Print what happened to each request as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Archive finished requests past retention_seconds and remove old job folders, now.
    Cleanup {
        /// Runner config (YAML).
        #[arg(long, env = "MACBRIDGE_RUNNER_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM asked the runner to stop.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MACBRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Once {
            config,
            branch,
            json,
        } => once(&config, branch.as_deref(), json),
        Command::Cleanup { config, json } => cleanup(&config, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("macbridge-runner: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(config: &std::path::Path) -> anyhow::Result<Runner> {
    let config = config::Config::load(config)?;
    Runner::new(config)
}

fn once(config: &std::path::Path, branch: Option<&str>, json: bool) -> anyhow::Result<()> {
    let runner = load(config)?;
    let only = match branch {
        Some(b) => Some(
            macbridge_bus::layout::normalize_branch(b)
                .with_context(|| format!("{b} is not a request branch (mac-bridge/...)"))?,
        ),
        None => None,
    };
    let started_at = macbridge_bus::clock::format(macbridge_bus::clock::now());
    housekeeping::recover(&runner)?;
    housekeeping::announce(&runner, &started_at);
    let handled = runner.drain(only.as_deref())?;
    if json {
        let list: Vec<_> = handled
            .iter()
            .map(|(branch, h)| {
                let (outcome, detail) = describe(h);
                serde_json::json!({"branch": macbridge_bus::layout::short_branch(branch), "outcome": outcome, "detail": detail})
            })
            .collect();
        println!("{}", serde_json::json!({ "handled": list }));
    } else {
        for (branch, h) in &handled {
            let (outcome, detail) = describe(h);
            println!(
                "{}\t{outcome}\t{detail}",
                macbridge_bus::layout::short_branch(branch)
            );
        }
    }
    Ok(())
}

fn cleanup(config: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let runner = load(config)?;
    let cleaned = housekeeping::cleanup(&runner)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "archived": cleaned.archived,
                "claims_deleted": cleaned.claims_deleted,
                "job_dirs_removed": cleaned.job_dirs_removed,
            })
        );
    } else {
        println!(
            "archived {} finished request(s), deleted {} claim ref(s), removed {} job folder(s)",
            cleaned.archived, cleaned.claims_deleted, cleaned.job_dirs_removed
        );
    }
    Ok(())
}

fn describe(h: &Handled) -> (&'static str, String) {
    match h {
        Handled::Skipped(why) => ("skipped", why.clone()),
        Handled::Refused(why) => ("refused", why.clone()),
        Handled::Ran(state) => ("ran", state.as_str().to_string()),
        Handled::Lost => ("lost", "another runner claimed it first".to_string()),
        Handled::Abandoned => (
            "abandoned",
            "the lease was lost or the runner stopped mid-job; nothing published".to_string(),
        ),
    }
}

fn serve(config: &std::path::Path) -> anyhow::Result<()> {
    install_signal_handlers();
    let runner = load(config)?;
    let poll = Duration::from_secs_f64(runner.config.poll_seconds);
    info!(
        runner = %runner.config.runner_id,
        remote = %runner.config.remote,
        labels = ?runner.config.labels,
        "serving"
    );
    let started_at = macbridge_bus::clock::format(macbridge_bus::clock::now());
    match housekeeping::recover(&runner) {
        Ok(0) => {}
        Ok(n) => info!(released = n, "gave back claims left by an earlier run"),
        Err(e) => {
            warn!(error = %format!("{e:#}"), "could not check for claims left by an earlier run")
        }
    }
    let presence_every = Duration::from_secs_f64(runner.config.presence_seconds);
    let cleanup_every = Duration::from_secs_f64(runner.config.cleanup_seconds);
    let mut last_presence: Option<std::time::Instant> = None;
    let mut last_cleanup = std::time::Instant::now();
    let mut failures = 0u32;
    while !STOP.load(Ordering::SeqCst) {
        if last_presence.is_none_or(|t| t.elapsed() >= presence_every) {
            housekeeping::announce(&runner, &started_at);
            last_presence = Some(std::time::Instant::now());
        }
        if last_cleanup.elapsed() >= cleanup_every {
            if let Err(e) = housekeeping::cleanup(&runner) {
                warn!(error = %format!("{e:#}"), "clean-up failed");
            }
            last_cleanup = std::time::Instant::now();
        }
        match runner.scan(None) {
            Ok(handled) => {
                failures = 0;
                // Work was done: look again at once, so a burst drains without poll gaps.
                if handled.iter().any(|(_, h)| {
                    matches!(h, Handled::Ran(_) | Handled::Refused(_) | Handled::Lost)
                }) {
                    continue;
                }
            }
            Err(e) => {
                failures += 1;
                warn!(error = %format!("{e:#}"), failures, "scan failed; backing off");
                sleep_unless_stopped(publish::backoff(failures));
                continue;
            }
        }
        sleep_unless_stopped(poll);
    }
    info!("stopping");
    Ok(())
}

fn sleep_unless_stopped(total: Duration) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !STOP.load(Ordering::SeqCst) {
        let d = step.min(total - slept);
        std::thread::sleep(d);
        slept += d;
    }
}
