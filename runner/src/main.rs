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
mod doctor;
mod ended;
mod exec;
mod fence;
mod gate;
mod housekeeping;
mod job;
mod lifecycle;
mod publish;
mod runner;
mod sandbox;
mod sandbox_probe;
mod scan;
mod selftest;
mod service;
mod watchdog;

use lifecycle::Handled;
use runner::Runner;

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
    /// Check this machine is ready to serve: config, keys, bus access and compare-and-swap,
    /// clock, engine, model env, disk, service. Exits 1 if any check fails.
    Doctor {
        #[arg(long, env = "MACBRIDGE_RUNNER_CONFIG")]
        config: PathBuf,
        /// Print {"checks": [{"name", "status", "hint", ...}]}.
        #[arg(long)]
        json: bool,
    },
    /// Run a signed request (and a forged one) through a throwaway local bus with the
    /// installed engine; exits 0 when the request succeeds and the forgery is refused.
    SelfTest {
        /// Take the engine binary from this runner config (default: next to this binary).
        #[arg(long, env = "MACBRIDGE_RUNNER_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Install the runner as a service that starts at boot (launchd on macOS, systemd on
    /// Linux). System services need sudo; --agent installs a per-user one instead.
    InstallService {
        #[arg(long, env = "MACBRIDGE_RUNNER_CONFIG")]
        config: PathBuf,
        /// Print the service file for this OS and install nothing.
        #[arg(long)]
        dry_run: bool,
        /// Per-user LaunchAgent / systemd user unit (starts at login, no sudo).
        #[arg(long)]
        agent: bool,
        /// Account the system service runs as (default: the user who ran sudo).
        #[arg(long)]
        user: Option<String>,
        /// Log file (default: <work_dir>/runner.log).
        #[arg(long)]
        log: Option<PathBuf>,
        /// Render for another OS (with --dry-run): launchd or systemd.
        #[arg(long, value_parser = ["launchd", "systemd"])]
        platform: Option<String>,
    },
    /// Stop and remove the service installed by install-service.
    UninstallService {
        #[arg(long)]
        agent: bool,
        /// Print what would be removed.
        #[arg(long)]
        dry_run: bool,
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
    let cli = Cli::parse();
    // The daemon logs what it does; one-shot checks only say what went wrong.
    let quiet = matches!(
        cli.command,
        Command::Doctor { .. } | Command::SelfTest { .. } | Command::InstallService { .. }
    );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MACBRIDGE_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })
            }),
        )
        .init();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Once {
            config,
            branch,
            json,
        } => once(&config, branch.as_deref(), json),
        Command::Cleanup { config, json } => cleanup(&config, json),
        Command::Doctor { config, json } => {
            let (checks, sandbox) = doctor::checks(&config);
            let healthy = if json {
                println!(
                    "{}",
                    serde_json::json!({ "checks": checks, "sandbox": sandbox })
                );
                checks
                    .iter()
                    .all(|c| c.status != macbridge_bus::doctor::CheckStatus::Fail)
            } else {
                macbridge_bus::doctor::report(&checks, false)
            };
            if !healthy {
                return ExitCode::FAILURE;
            }
            Ok(())
        }
        Command::SelfTest { config, json } => match self_test(config.as_deref(), json) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(e),
        },
        Command::InstallService {
            config,
            dry_run,
            agent,
            user,
            log,
            platform,
        } => install_service(&config, dry_run, agent, user, log, platform.as_deref()),
        Command::UninstallService { agent, dry_run } => {
            let platform = service::Platform::current();
            if dry_run {
                println!(
                    "would remove {}",
                    service::service_path(platform, agent).display()
                );
                Ok(())
            } else {
                service::uninstall(platform, agent).map(|p| println!("removed {}", p.display()))
            }
        }
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

fn self_test(config: Option<&std::path::Path>, json: bool) -> anyhow::Result<bool> {
    let engine = match config {
        Some(path) => Some(config::Config::load(path)?.engine_path()),
        None => None,
    };
    let report = selftest::run(engine)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "self-test {}: {} request {} (gate {}, signature {}), forged request {}, round trip {:.3} s, engine {}",
            if report.ok { "passed" } else { "FAILED" },
            report.preset,
            report.state,
            if report.verdict_passed {
                "passed"
            } else {
                "failed"
            },
            if report.signature_valid {
                "valid"
            } else {
                "INVALID"
            },
            if report.forged_request_refused {
                "refused"
            } else {
                "NOT refused"
            },
            report.round_trip_s,
            report.engine,
        );
        for p in &report.problems {
            println!("  problem: {p}");
        }
    }
    Ok(report.ok)
}

fn install_service(
    config_path: &std::path::Path,
    dry_run: bool,
    agent: bool,
    user: Option<String>,
    log: Option<PathBuf>,
    platform: Option<&str>,
) -> anyhow::Result<()> {
    let config = config::Config::load(config_path)?;
    let platform = match platform {
        Some("launchd") => service::Platform::Launchd,
        Some(_) => service::Platform::Systemd,
        None => service::Platform::current(),
    };
    if platform != service::Platform::current() && !dry_run {
        anyhow::bail!("--platform for another OS only renders the file: add --dry-run");
    }
    let runner_bin = std::env::current_exe().context("locating this binary")?;
    let spec = service::ServiceSpec {
        runner_bin: service::absolute(&runner_bin)?,
        config: service::absolute(config_path)?,
        log_file: log.unwrap_or_else(|| config.work_dir.join("runner.log")),
        user: user.unwrap_or_else(service::invoking_user),
        agent,
        path_env: config.job_path.clone().unwrap_or_else(|| {
            "/usr/local/bin:/opt/homebrew/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()
        }),
    };
    if dry_run {
        eprintln!("# {}", service::service_path(platform, agent).display());
        print!("{}", service::render(platform, &spec));
        return Ok(());
    }
    let path = service::install(platform, &spec)?;
    println!("installed and started {}", path.display());
    Ok(())
}

fn describe(h: &Handled) -> (&'static str, String) {
    match h {
        Handled::Skipped(why) => ("skipped", why.clone()),
        Handled::Refused(why) => ("refused", why.clone()),
        Handled::Ran(state) => ("ran", state.as_str().to_string()),
        Handled::Lost => ("lost", "another runner claimed it first".to_string()),
        Handled::Watching(why) => ("watching", why.clone()),
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
