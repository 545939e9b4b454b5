//! `macbridge`: the requester's command line. Ask a remote Mac to run an allowlisted preset
//! over a git bus, follow it, and fetch its signed, evidence-gated result.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod common;
mod doctor;
mod key;
mod presets_doc;
mod queue;
mod quickstart;
mod request;
mod wait;

use common::{EXIT_USAGE, UsageError};

#[derive(Parser)]
#[command(
    name = "macbridge",
    version,
    about = "Run allowlisted presets on remote Apple-Silicon Macs over a signed git bus",
    long_about = "Run allowlisted presets on remote Apple-Silicon Macs over a signed git bus.\n\n\
        A request is a signed manifest pushed to refs/heads/mac-bridge/<preset>-<nonce>; a runner \
        verifies it, runs the preset, and commits a signed, evidence-gated result back to the branch.\n\n\
        Exit codes: 0 success; 1 the request failed or was refused; 2 bad input (nothing pushed); \
        3 timed out waiting.\n\nTry `macbridge quickstart` to see the whole loop on this machine."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct RemoteArg {
    /// The bus: any git remote URL or a local bare repository path.
    #[arg(long, env = "MACBRIDGE_REMOTE")]
    remote: String,
}

#[derive(clap::Args, Clone)]
struct RequestFlags {
    /// Your SSH signing key: an unencrypted private key file; a passphrase-protected one
    /// (signed by ssh-agent when loaded there, else ssh-keygen asks for the passphrase on an
    /// interactive terminal); or a public key file (.pub) whose private half is in ssh-agent
    /// (SSH_AUTH_SOCK). Types: ed25519, ECDSA P-256/P-384, RSA 2048-4096 bits, and security
    /// keys (sk-ssh-ed25519, sk-ecdsa-sha2-nistp256). Default: git's signing key when git
    /// signs with SSH (`gpg.format=ssh` and `user.signingkey`, a path or `key::ssh-...`).
    #[arg(long, env = "MACBRIDGE_KEY", value_name = "PATH")]
    key: Option<PathBuf>,
    /// Preset to run (see `macbridge presets`).
    #[arg(long)]
    preset: String,
    /// A preset parameter, KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A runner label the request needs, e.g. metal or mem>=64 (repeatable).
    #[arg(long = "label", value_name = "LABEL")]
    labels: Vec<String>,
    /// Seconds until the request expires if no runner took it (1 to 604800).
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    expires_in: i64,
    /// For workload presets: the commit to run (any revision of --repo).
    #[arg(long, value_name = "REV")]
    workload: Option<String>,
    /// Repository holding --workload (default: the current folder).
    #[arg(long, default_value = ".")]
    repo: String,
    /// Also start the GitHub Actions workflow for this request (repository_dispatch; needs a
    /// build with --features github and MACBRIDGE_GITHUB_TOKEN or GITHUB_TOKEN).
    #[arg(long, value_name = "github")]
    trigger: Option<Trigger>,
    /// GitHub repository (owner/name) for --trigger; default: parsed from a github.com remote.
    #[arg(long)]
    github_repo: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Github,
}

#[derive(clap::Args, Clone)]
struct WaitFlags {
    /// Give up after this many seconds (exit 3).
    #[arg(long, default_value_t = 3600.0)]
    timeout: f64,
    /// Write result.json, result.sig, logs/ and results/ here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// allowed_signers file listing trusted runner keys; results by other keys fail.
    #[arg(long, env = "MACBRIDGE_RUNNER_SIGNERS")]
    runner_signers: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create an embedded bus: a local bare git repository usable as --remote.
    Init {
        /// Folder for the bare repository (created if missing).
        #[arg(long)]
        bus: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Make an ed25519 SSH key pair (PATH and PATH.pub) for signing requests or results.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Comment stored in the public key.
        #[arg(long, default_value = "macbridge")]
        comment: String,
        #[arg(long)]
        json: bool,
    },
    /// Sign and push a request; prints its branch and request id.
    Request {
        #[command(flatten)]
        remote: RemoteArg,
        #[command(flatten)]
        request: RequestFlags,
        #[arg(long)]
        json: bool,
    },
    /// Show the state of one request.
    Status {
        #[command(flatten)]
        remote: RemoteArg,
        /// The request branch (mac-bridge/<preset>-<nonce>).
        #[arg(long)]
        branch: String,
        /// allowed_signers file listing trusted runner keys.
        #[arg(long, env = "MACBRIDGE_RUNNER_SIGNERS")]
        runner_signers: Option<PathBuf>,
        /// Also list the GitHub commit statuses of the request commit.
        #[arg(long)]
        github: bool,
        #[arg(long)]
        json: bool,
    },
    /// Wait for a request's result, verify the runner's signature, and save it.
    Wait {
        #[command(flatten)]
        remote: RemoteArg,
        #[arg(long)]
        branch: String,
        #[command(flatten)]
        wait: WaitFlags,
        #[arg(long)]
        json: bool,
    },
    /// Request and wait in one go, with progress.
    Run {
        #[command(flatten)]
        remote: RemoteArg,
        #[command(flatten)]
        request: RequestFlags,
        #[command(flatten)]
        wait: WaitFlags,
        #[arg(long)]
        json: bool,
    },
    /// Ask the runner to stop a request (signed with the requester's key).
    Cancel {
        #[command(flatten)]
        remote: RemoteArg,
        #[arg(long)]
        branch: String,
        /// The key that signed the request, in any form `request --key` takes (default:
        /// git's SSH signing key, `gpg.format=ssh` + `user.signingkey`).
        #[arg(long, env = "MACBRIDGE_KEY", value_name = "PATH")]
        key: Option<PathBuf>,
        /// Why, recorded with the cancel.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List every request on the bus with its state.
    Queue {
        #[command(flatten)]
        remote: RemoteArg,
        #[arg(long)]
        json: bool,
    },
    /// Check this machine can use the bus: reachability, compare-and-swap, clock, keys,
    /// runner signers, live runners. Exits 1 if any check fails.
    Doctor {
        #[command(flatten)]
        remote: RemoteArg,
        /// Your signing key, as `request --key` takes it; without it, git's SSH signing key
        /// (`gpg.format=ssh` + `user.signingkey`). Doctor reports which key signs, and how.
        #[arg(long, env = "MACBRIDGE_KEY", value_name = "PATH")]
        key: Option<PathBuf>,
        #[arg(long, env = "MACBRIDGE_RUNNER_SIGNERS")]
        runner_signers: Option<PathBuf>,
        /// Print {"checks": [{"name", "status", "hint", ...}]}.
        #[arg(long)]
        json: bool,
    },
    /// List the allowlisted presets with their parameters and bounds.
    Presets {
        #[arg(long)]
        json: bool,
        /// Print the Markdown reference (docs/PRESETS.md).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
    /// Run the whole loop on this machine: bus, keys, a runner process, a signed request.
    Quickstart(quickstart::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MACBRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("macbridge: error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Init { bus, json } => init(&bus, json),
        Command::Keygen { out, comment, json } => keygen(&out, &comment, json),
        Command::Request {
            remote,
            request,
            json,
        } => {
            let (bus, _lock) = common::open_bus(&remote.remote)?;
            let submitted = request::submit_request(&bus, &request_args(&request))?;
            trigger(&remote.remote, &request, &submitted.branch)?;
            if json {
                common::print_json(&submitted)?;
            } else {
                println!("{}", submitted.branch);
                eprintln!(
                    "request_id {} pushed to {}",
                    submitted.request_id, submitted.remote
                );
            }
            Ok(0)
        }
        Command::Status {
            remote,
            branch,
            runner_signers,
            github,
            json,
        } => {
            let branch = common::branch_arg(&branch)?;
            let (bus, lock) = common::open_bus(&remote.remote)?;
            let (status, request) = common::current_status(&bus, &lock, &branch)?;
            let signature = request
                .result
                .as_ref()
                .map(|_| common::check_result_signature(&request, runner_signers.as_deref()));
            let github_statuses = if github {
                let cfg = macbridge_bus::github::GitHubConfig {
                    api_url: std::env::var("MACBRIDGE_GITHUB_API").ok(),
                    ..Default::default()
                };
                let resolved = cfg.resolve(&remote.remote)?;
                Some(macbridge_bus::github::statuses(
                    &resolved,
                    &status.request_commit,
                )?)
            } else {
                None
            };
            let report = wait::WaitReport {
                status,
                signature,
                out: None,
                files: Vec::new(),
                waited_s: 0.0,
                timed_out: false,
            };
            if json {
                let mut value = serde_json::to_value(&report)?;
                if let Some(statuses) = github_statuses {
                    value["github_statuses"] = serde_json::Value::Array(statuses);
                }
                common::print_json(&value)?;
            } else {
                wait::print_summary(&report);
                for s in github_statuses.unwrap_or_default() {
                    println!(
                        "github:     {} {} ({})",
                        s["context"].as_str().unwrap_or("?"),
                        s["state"].as_str().unwrap_or("?"),
                        s["description"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(0)
        }
        Command::Wait {
            remote,
            branch,
            wait: flags,
            json,
        } => {
            let branch = common::branch_arg(&branch)?;
            let (bus, lock) = common::open_bus(&remote.remote)?;
            finish_wait(&bus, &lock, &branch, &flags, json)
        }
        Command::Run {
            remote,
            request,
            wait: flags,
            json,
        } => {
            let (bus, lock) = common::open_bus(&remote.remote)?;
            let submitted = request::submit_request(&bus, &request_args(&request))?;
            eprintln!(
                "pushed {} (request_id {})",
                submitted.branch, submitted.request_id
            );
            trigger(&remote.remote, &request, &submitted.branch)?;
            let branch = common::branch_arg(&submitted.branch)?;
            finish_wait(&bus, &lock, &branch, &flags, json)
        }
        Command::Cancel {
            remote,
            branch,
            key,
            reason,
            json,
        } => cancel(&remote.remote, &branch, key.as_deref(), reason, json),
        Command::Queue { remote, json } => {
            let (bus, lock) = common::open_bus(&remote.remote)?;
            let q = queue::read(&bus, &lock)?;
            if json {
                common::print_json(&q)?;
            } else {
                queue::print(&q);
            }
            Ok(0)
        }
        Command::Presets { json, markdown } => presets(json, markdown),
        Command::Doctor {
            remote,
            key,
            runner_signers,
            json,
        } => {
            let (bus, lock) = common::open_bus(&remote.remote)?;
            let (checks, signing) =
                lock.with(|| doctor::checks(&bus, key.as_deref(), runner_signers.as_deref()));
            Ok(if doctor::report(&checks, signing.as_ref(), json)? {
                0
            } else {
                1
            })
        }
        Command::Quickstart(args) => quickstart::run(args),
    }
}

/// Start the Actions workflow for a pushed request when asked to. The request is on the bus
/// already; a failed dispatch is reported (a scheduled sweep will still pick it up).
fn trigger(remote: &str, flags: &RequestFlags, branch: &str) -> anyhow::Result<()> {
    if flags.trigger != Some(Trigger::Github) {
        return Ok(());
    }
    let cfg = macbridge_bus::github::GitHubConfig {
        repo: flags.github_repo.clone(),
        token_env: None,
        api_url: std::env::var("MACBRIDGE_GITHUB_API").ok(),
    };
    let resolved = cfg.resolve(remote)?;
    macbridge_bus::github::dispatch(&resolved, branch)
        .with_context(|| format!("request {branch} is pushed, but starting the workflow failed"))?;
    eprintln!(
        "started the mac-bridge workflow on {} for {branch}",
        resolved.0
    );
    Ok(())
}

fn request_args(flags: &RequestFlags) -> request::RequestArgs<'_> {
    request::RequestArgs {
        key: flags.key.as_deref(),
        preset: &flags.preset,
        params: &flags.params,
        labels: &flags.labels,
        expires_in: flags.expires_in,
        workload: flags
            .workload
            .as_deref()
            .map(|rev| (flags.repo.as_str(), rev)),
    }
}

fn finish_wait(
    bus: &macbridge_bus::git::Bus,
    lock: &common::ClientLock,
    branch: &str,
    flags: &WaitFlags,
    json: bool,
) -> anyhow::Result<u8> {
    if !(flags.timeout.is_finite() && flags.timeout >= 0.0) {
        return Err(common::usage(
            "--timeout must be a non-negative number of seconds",
        ));
    }
    let report = wait::wait(
        bus,
        lock,
        branch,
        &wait::WaitOptions {
            timeout: Duration::from_secs_f64(flags.timeout.min(1e9)),
            out: flags.out.as_deref(),
            runner_signers: flags.runner_signers.as_deref(),
            progress: true,
        },
    )?;
    if json {
        common::print_json(&report)?;
    } else {
        wait::print_summary(&report);
    }
    Ok(report.exit_code())
}

fn init(dir: &std::path::Path, json: bool) -> anyhow::Result<u8> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        match git2::Repository::open_bare(dir) {
            Ok(_) => {}
            Err(_) => {
                return Err(common::usage(format!(
                    "{} exists and is not an empty folder or a bare git repository",
                    dir.display()
                )));
            }
        }
    } else {
        git2::Repository::init_bare(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let repo = git2::Repository::open_bare(dir)?;
    let mut config = repo.config()?;
    // The protocol never rewrites history; make the bus refuse it too.
    config.set_bool("receive.denyNonFastForwards", true)?;
    config.set_bool("core.logAllRefUpdates", false)?;
    let abs = std::fs::canonicalize(dir)?;
    // Give the bus its id now, so every request made on it names its audience.
    let (bus, lock) = common::open_bus(&abs.display().to_string())?;
    let bus_id = lock
        .with(|| macbridge_bus::busid::read_or_create(&bus))
        .context("writing the bus id")?;
    if json {
        common::print_json(&serde_json::json!({"bus": abs, "remote": abs, "bus_id": bus_id}))?;
    } else {
        println!("{}", abs.display());
        eprintln!("bus ready: use --remote {}", abs.display());
    }
    Ok(0)
}

fn keygen(out: &std::path::Path, comment: &str, json: bool) -> anyhow::Result<u8> {
    if out.exists() {
        return Err(common::usage(format!(
            "{} already exists; not overwriting a key",
            out.display()
        )));
    }
    let key = macbridge_bus::sig::generate_ed25519(comment)?;
    macbridge_bus::sig::write_keypair(out, &key)?;
    let fingerprint = macbridge_bus::sig::fingerprint(key.public_key());
    let public = macbridge_bus::sig::public_key_line(key.public_key());
    if json {
        common::print_json(&serde_json::json!({
            "private_key": out, "public_key": format!("{}.pub", out.display()),
            "fingerprint": fingerprint, "public": public,
        }))?;
    } else {
        println!("{fingerprint}");
        eprintln!(
            "wrote {0} and {0}.pub; add this line to a runner's allowed_signers:\n  <you@example.com> namespaces=\"macbridge-request-v1,macbridge-cancel-v1\" {public}",
            out.display()
        );
    }
    Ok(0)
}

fn cancel(
    remote: &str,
    branch: &str,
    key: Option<&std::path::Path>,
    reason: Option<String>,
    json: bool,
) -> anyhow::Result<u8> {
    let branch = common::branch_arg(branch)?;
    let key = key::requester_key(key)?;
    let (bus, lock) = common::open_bus(remote)?;
    let (request, _) = common::fetch_request(&bus, &lock, &branch)?;
    let request_id = request
        .request_id()
        .ok_or_else(|| common::usage("the request's manifest is unreadable; nothing to cancel"))?
        .to_string();
    let outcome = lock
        .with(|| macbridge_bus::submit::cancel(&bus, &branch, &request_id, &key, reason))
        .map_err(common::submit_error)?;
    let (word, code) = match outcome {
        macbridge_bus::submit::CancelOutcome::Requested(_) => ("requested", 0),
        macbridge_bus::submit::CancelOutcome::AlreadyRequested => ("already_requested", 0),
        macbridge_bus::submit::CancelOutcome::AlreadyFinished => ("already_finished", 1),
        macbridge_bus::submit::CancelOutcome::NoSuchBranch => ("no_such_branch", 1),
    };
    if json {
        common::print_json(
            &serde_json::json!({"branch": macbridge_bus::layout::short_branch(&branch), "request_id": request_id, "cancel": word}),
        )?;
    } else {
        println!("cancel {word}");
    }
    Ok(code)
}

fn presets(json: bool, markdown: bool) -> anyhow::Result<u8> {
    let catalog = macbridge_presets::catalog()?;
    if markdown {
        print!("{}", presets_doc::markdown(&catalog.to_json()));
        return Ok(0);
    }
    if json {
        common::print_json(&catalog.to_json())?;
        return Ok(0);
    }
    for preset in catalog.iter() {
        println!(
            "{} ({}, timeout {} s)",
            preset.name, preset.class, preset.timeout_seconds
        );
        println!("    {}", preset.description);
        for (name, spec) in &preset.params {
            let default = spec
                .default
                .as_ref()
                .map(|d| format!(" = {d}"))
                .unwrap_or_else(|| " (required)".to_string());
            println!("    --param {name}=<{}>{default}", spec.kind.type_name());
        }
    }
    Ok(0)
}
