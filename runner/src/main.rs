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
}

static STOP: AtomicBool = AtomicBool::new(false);

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
    let handled = runner.scan(only.as_deref())?;
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
            println!("{}\t{outcome}\t{detail}", macbridge_bus::layout::short_branch(branch));
        }
    }
    Ok(())
}

fn describe(h: &Handled) -> (&'static str, String) {
    match h {
        Handled::Skipped(why) => ("skipped", why.clone()),
        Handled::Refused(why) => ("refused", why.clone()),
        Handled::Ran(state) => ("ran", state.as_str().to_string()),
        Handled::Lost => ("lost", "another runner holds it".to_string()),
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
    let mut failures = 0u32;
    while !STOP.load(Ordering::SeqCst) {
        match runner.scan(None) {
            Ok(handled) => {
                failures = 0;
                // Work was done: look again at once, so a burst drains without poll gaps.
                if handled
                    .iter()
                    .any(|(_, h)| matches!(h, Handled::Ran(_) | Handled::Refused(_)))
                {
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
