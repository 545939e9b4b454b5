//! `quickstart`: the main job, end to end, on one machine. A real bare repository as the bus,
//! real keys, a real runner process, a real signed request, a real engine run, an
//! evidence-gated and signed result. Exits 0 only if all of it worked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::common;
use crate::request::{self, RequestArgs};
use crate::wait::{self, WaitOptions};

/// The preset the quickstart runs: the codec evaluation, small enough for a laptop CPU.
const PRESET: &str = "codec-eval";
const PRESET_PARAMS: &[&str] = &["rows=2048", "seed=7"];

#[derive(clap::Args)]
pub struct Args {
    /// Work here instead of a temporary folder (kept afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temporary folder for inspection.
    #[arg(long)]
    keep: bool,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    #[arg(long)]
    json: bool,
}

struct RunnerProcess(Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        // SAFETY: sending SIGTERM to our own child; it shuts down between polls.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    // Removed on return unless the user asked to keep the folder.
    let mut _cleanup = None;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            std::fs::canonicalize(d)?
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("macbridge-quickstart-")
                .tempdir()?;
            let path = temp.path().to_path_buf();
            if args.keep {
                let _ = temp.keep();
            } else {
                _cleanup = Some(temp);
            }
            path
        }
    };
    step(&format!("working in {}", dir.display()));
    let (runner_bin, engine_bin) = find_binaries()?;

    let bus = dir.join("bus.git");
    let repo =
        git2::Repository::init_bare(&bus).with_context(|| format!("creating {}", bus.display()))?;
    repo.config()?
        .set_bool("receive.denyNonFastForwards", true)?;
    step(&format!("bus: bare repository {}", bus.display()));

    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let requester = keys.join("requester");
    let runner_key = keys.join("runner");
    for (path, comment) in [
        (&requester, "quickstart-requester"),
        (&runner_key, "quickstart-runner"),
    ] {
        if !path.exists() {
            let key = macbridge_bus::sig::generate_ed25519(comment)?;
            macbridge_bus::sig::write_keypair(path, &key)?;
        }
    }
    let requester_pub = macbridge_bus::sig::load_public_key(&requester)?;
    let runner_pub = macbridge_bus::sig::load_public_key(&runner_key)?;
    let allowed = dir.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "requester@quickstart namespaces=\"macbridge-request-v1,macbridge-cancel-v1\" {}\n",
            macbridge_bus::sig::public_key_line(&requester_pub)
        ),
    )?;
    let runner_signers = dir.join("runner_signers");
    std::fs::write(
        &runner_signers,
        format!(
            "quickstart-runner namespaces=\"macbridge-result-v1\" {}\n",
            macbridge_bus::sig::public_key_line(&runner_pub)
        ),
    )?;
    step(&format!(
        "keys: requester {} / runner {}",
        macbridge_bus::sig::fingerprint(&requester_pub),
        macbridge_bus::sig::fingerprint(&runner_pub)
    ));

    let config = dir.join("runner.yaml");
    let config_text = serde_json::json!({
        "remote": bus.display().to_string(),
        "runner_id": "quickstart-runner",
        "key": runner_key.display().to_string(),
        "allowed_signers": allowed.display().to_string(),
        "work_dir": dir.join("runner-work").display().to_string(),
        "labels": ["quickstart"],
        "poll_seconds": 0.2,
        "heartbeat_seconds": 2.0,
        "lease_seconds": 30.0,
        "engine": engine_bin.display().to_string(),
    });
    // JSON is valid YAML; the runner reads it with its YAML parser like any config.
    std::fs::write(&config, serde_json::to_string_pretty(&config_text)?)?;
    let log_path = dir.join("runner.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(&runner_bin)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", runner_bin.display()))?;
    let runner = RunnerProcess(child);
    step(&format!(
        "runner: {} serve (pid {}, log {})",
        runner_bin.display(),
        runner.0.id(),
        log_path.display()
    ));

    let (bus_handle, lock) = common::open_bus(&bus.display().to_string())?;
    let submitted = request::submit_request(
        &bus_handle,
        &RequestArgs {
            key: Some(&requester),
            preset: PRESET,
            params: &PRESET_PARAMS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            labels: &[],
            expires_in: 600,
            workload: None,
        },
    )?;
    step(&format!(
        "request: {} signed and pushed as {}",
        PRESET, submitted.branch
    ));
    let branch = common::branch_arg(&submitted.branch)?;
    let out = dir.join("result");
    let report = wait::wait(
        &bus_handle,
        &lock,
        &branch,
        &WaitOptions {
            timeout: Duration::from_secs_f64(args.timeout.clamp(1.0, 86_400.0)),
            out: Some(&out),
            runner_signers: Some(&runner_signers),
            progress: true,
        },
    )?;
    drop(runner);
    if args.json {
        common::print_json(&report)?;
    } else {
        println!();
        wait::print_summary(&report);
        if let Some(lines) = report_summary(&out) {
            for line in lines {
                println!("{line}");
            }
        }
    }
    let code = report.exit_code();
    if code == 0 {
        step("quickstart succeeded: the job ran, the gate passed, the runner's signature verified");
    } else {
        step(&format!(
            "quickstart FAILED (state {}); runner log: {}",
            report.status.state,
            log_path.display()
        ));
        if args.dir.is_none() && !args.keep {
            // Keep the evidence of a failure.
            eprintln!("hint: rerun with --keep or --dir DIR to inspect the files");
        }
    }
    Ok(code)
}

fn step(msg: &str) {
    eprintln!("==> {msg}");
}

/// What the engine measured, from the codec-eval report: provenance and one line per arm
/// on the Gaussian source.
fn report_summary(out: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(out.join("results").join("codec_eval.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let p = &v["provenance"];
    let mut lines = vec![format!(
        "engine:     kakeya {} on {} ({} {}, {} cpus), D={} rows={} seed={}",
        p["engine_version"].as_str().unwrap_or("?"),
        p["device"].as_str().unwrap_or("?"),
        p["host"]["os"].as_str().unwrap_or("?"),
        p["host"]["arch"].as_str().unwrap_or("?"),
        p["host"]["cpus"],
        v["dim"],
        v["rows"],
        v["seed"],
    )];
    let source = v["sources"].as_array()?.first()?;
    lines.push(format!(
        "            {:<12} {:>10} {:>10} {:>11}  (source: {})",
        "arm",
        "bits/val",
        "packed",
        "rel-MSE",
        source["source"].as_str().unwrap_or("?")
    ));
    for arm in source["arms"].as_array()? {
        lines.push(format!(
            "            {:<12} {:>10.3} {:>10.3} {:>11.3e}",
            arm["arm"].as_str().unwrap_or("?"),
            arm["accounted_bits_per_value"].as_f64().unwrap_or(f64::NAN),
            arm["packed_bits_per_value"].as_f64().unwrap_or(f64::NAN),
            arm["rel_mse"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    Some(lines)
}

/// The runner and engine binaries beside this one. Under `cargo run` they may not be built
/// yet: build them with the same profile, so a fresh clone needs only the one command.
fn find_binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe
        .parent()
        .context("executable has no folder")?
        .to_path_buf();
    let runner = dir.join("macbridge-runner");
    let engine = dir.join("kakeya");
    if runner.is_file() && engine.is_file() {
        return Ok((runner, engine));
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        bail!(
            "macbridge-runner and kakeya must be installed next to {} (build them with `cargo build --release --workspace`)",
            exe.display()
        );
    };
    let release = dir.file_name().is_some_and(|n| n == "release");
    step("building macbridge-runner and kakeya (first run only; a few minutes)");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "macbridge-runner",
        "-p",
        "kakeya-engine",
        "--bins",
    ]);
    if release {
        cmd.arg("--release");
    }
    if let Some(manifest_dir) = option_env!("CARGO_MANIFEST_DIR") {
        cmd.current_dir(manifest_dir);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() || !runner.is_file() || !engine.is_file() {
        bail!("building the runner and engine failed ({status})");
    }
    Ok((runner, engine))
}
