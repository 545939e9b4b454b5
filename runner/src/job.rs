//! Running a claimed request: prepare its folder, run the preset's argv with heartbeats,
//! judge the reports, and publish the result.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use macbridge_bus::clock;
use macbridge_bus::git::Oid;
use macbridge_bus::lease::LeaseHandle;
use macbridge_bus::records::{LeaseState, ResultState, Timings};
use macbridge_bus::verify::VerifiedRequest;
use macbridge_bus::view::{self, RequestOnBus};
use macbridge_presets::{PresetClass, RenderContext};
use tracing::{info, warn};

use crate::exec::{self, Ending, JobSpec, Tick};
use crate::publish;
use crate::runner::{Handled, Runner};
use crate::sandbox::{Confinement, Rules, SandboxError};

/// In a job folder while its job runs: the job's process-group id.
pub const JOB_PID_FILE: &str = "job.pid";

/// Bytes of log tail carried by each heartbeat.
const HEARTBEAT_TAIL_BYTES: u64 = 4096;

/// The argv for a verified request, with `out` as the report folder.
fn render_argv(
    runner: &Runner,
    verified: &VerifiedRequest,
    out: &Path,
    workspace: Option<&Path>,
) -> Result<Vec<String>, macbridge_presets::PresetError> {
    verified.preset.render(
        &verified.params,
        &RenderContext {
            engine: &runner.engine,
            out_dir: out,
            workspace,
            env: &runner.config.env,
        },
    )
}

/// Run a claimed request to its end and publish the result.
pub fn run(
    runner: &Runner,
    req: &RequestOnBus,
    verified: VerifiedRequest,
    handle: LeaseHandle,
) -> anyhow::Result<Handled> {
    let claimed_at = handle.lease.claimed_at.clone();
    let request_id = verified.manifest.request_id.clone();
    let job_dir = prepare_job_dir(runner, &request_id, handle.lease.attempt)?;
    let out = job_dir.join("out");
    let tmp = job_dir.join("tmp");
    for dir in [&out, &tmp] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Anything that stops the job from starting still ends the request with a result.
    let workspace = match prepare_workspace(runner, &verified, &job_dir) {
        Ok(w) => w,
        Err(e) => {
            let reason = format!("bad_workload: {e:#}");
            publish::refusal(runner, req, ResultState::Rejected, &reason, Some(&handle))?;
            return Ok(Handled::Refused(reason));
        }
    };
    let argv = match render_argv(runner, &verified, &out, workspace.as_deref()) {
        Ok(argv) => argv,
        Err(e) => {
            let reason = format!("{}: {e}", e.code());
            publish::refusal(runner, req, ResultState::Rejected, &reason, Some(&handle))?;
            return Ok(Handled::Refused(reason));
        }
    };
    let confinement = match confine(runner, &verified, workspace.as_deref(), &out, &tmp) {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("sandbox_unavailable: {e}");
            publish::refusal(runner, req, ResultState::Failed, &reason, Some(&handle))?;
            return Ok(Handled::Refused(reason));
        }
    };
    let cwd = workspace.clone().unwrap_or_else(|| job_dir.clone());
    let job_record = serde_json::json!({
        "request_id": request_id,
        "branch": req.branch,
        "preset": verified.preset.name,
        "params": verified.params.to_json(),
        "argv": argv,
        "attempt": handle.lease.attempt,
        "runner_id": runner.config.runner_id,
        "claimed_at": claimed_at,
    });
    std::fs::write(
        job_dir.join("job.json"),
        serde_json::to_vec_pretty(&job_record).unwrap_or_default(),
    )
    .with_context(|| format!("writing {}", job_dir.join("job.json").display()))?;

    // The lease stays `claimed` until the first heartbeat marks it `running`: one push per job
    // saved, which matters on a hosted remote's push budget.
    let mut handle = handle;
    let started_at = clock::format(clock::now());
    info!(request_id = %request_id, argv = ?argv, "starting job");
    let spec = JobSpec {
        argv,
        cwd,
        env: job_env(runner, &request_id, &job_dir, &tmp),
        timeout: runner.config.job_timeout(verified.preset.timeout_seconds),
        grace: Duration::from_secs_f64(runner.config.kill_grace_seconds),
        stdout_path: job_dir.join("stdout.log"),
        stderr_path: job_dir.join("stderr.log"),
        tick_every: Duration::from_secs_f64(
            runner
                .config
                .poll_seconds
                .min(runner.config.heartbeat_seconds)
                .clamp(0.05, 10.0),
        ),
        max_output_bytes: runner
            .config
            .log_cap_bytes
            .saturating_mul(256)
            .max(64 << 20),
        pid_file: job_dir.join(JOB_PID_FILE),
    };
    let heartbeat = Duration::from_secs_f64(runner.config.heartbeat_seconds);
    // The first renewal (claimed → running) comes early, so `status` says `running` within a
    // couple of seconds; jobs shorter than that finish without spending a push on it.
    let first_renewal = heartbeat.min(Duration::from_secs(2));
    let mut next_renewal = Instant::now() + first_renewal;
    let outcome = exec::run_confined(&spec, confinement.as_ref(), || {
        // Renewals are pushes and cost a hosted remote's push budget: only every heartbeat.
        // Cancel checks are fetches and cheap: every tick.
        if Instant::now() >= next_renewal {
            let tail = exec::tail(&spec.stderr_path, HEARTBEAT_TAIL_BYTES / 2)
                + &exec::tail(&spec.stdout_path, HEARTBEAT_TAIL_BYTES / 2);
            match runner.renew(&handle, LeaseState::Running, Some(&tail)) {
                Ok(Some(renewed)) => {
                    handle = renewed;
                    next_renewal = Instant::now() + heartbeat;
                }
                Ok(None) => {
                    warn!(request_id = %request_id, "lease lost: stopping the job, publishing nothing");
                    return Tick::Abandon;
                }
                // A transport hiccup: keep going and try again at the next tick. If the lease
                // expires meanwhile and someone re-claims, the next renewal is rejected.
                Err(e) => {
                    warn!(request_id = %request_id, error = %format!("{e:#}"), "heartbeat failed")
                }
            }
        }
        if cancel_requested(runner, &req.branch) {
            info!(request_id = %request_id, "cancel requested: stopping the job");
            return Tick::Cancel;
        }
        if crate::stop_requested() {
            info!(request_id = %request_id, "runner stopping: releasing the job");
            return Tick::Release;
        }
        Tick::Continue
    })
    .with_context(|| format!("starting {:?}", spec.argv.first()))?;
    if outcome.ending == Ending::Abandoned {
        return Ok(Handled::Abandoned);
    }
    if outcome.ending == Ending::Released {
        // Give the request back so another runner (or this one, restarted) takes it at once
        // instead of waiting for the lease to expire. Its partial output is not published.
        let _ = macbridge_bus::lease::renew(
            &runner.bus,
            &runner.identity,
            &handle,
            LeaseState::Released,
            runner.config.lease_seconds,
            None,
            Some("runner shut down during the job".to_string()),
        );
        return Ok(Handled::Abandoned);
    }
    let finished_at = clock::format(clock::now());
    let timings = Timings {
        claimed_at: Some(claimed_at),
        started_at: Some(started_at),
        finished_at: Some(finished_at),
        run_seconds: Some((outcome.run_time.as_secs_f64() * 1000.0).round() / 1000.0),
    };
    let verdict = (!verified.preset.reports.is_empty() || has_json(&out))
        .then(|| evidence_gate::check_dir(&out, &verified.preset.reports));
    let (state, reason) = judge(&outcome, verdict.as_ref(), spec.timeout.as_secs_f64());
    info!(request_id = %request_id, state = state.as_str(), reason = ?reason, "job finished");
    let published = publish::job_result(
        runner,
        req,
        &verified,
        &handle,
        publish::JobFacts {
            state,
            reason,
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            timings,
            verdict,
            job_dir: &job_dir,
            out_dir: &out,
        },
    )?;
    Ok(if published {
        Handled::Ran(state)
    } else {
        Handled::Abandoned
    })
}

/// The confinement for a workload job (none for engine presets, or when the operator opted
/// out); an error when a workload cannot be confined.
fn confine(
    runner: &Runner,
    verified: &VerifiedRequest,
    workspace: Option<&Path>,
    out: &Path,
    tmp: &Path,
) -> Result<Option<Confinement>, SandboxError> {
    let (Some(workspace), PresetClass::Workload) = (workspace, verified.preset.class) else {
        return Ok(None);
    };
    let config = &runner.config;
    if !config.workload_sandbox.enabled {
        warn!(preset = %verified.preset.name, "workload_sandbox.enabled is false: running the workload unconfined");
        return Ok(None);
    }
    let rules = Rules::for_job(
        &config.workload_sandbox,
        &[workspace, out, tmp],
        &verified.preset.name,
    );
    let mut secrets = vec![
        config.key.as_path(),
        config.allowed_signers.as_path(),
        config.work_dir.as_path(),
    ];
    secrets.extend(config.policy.as_deref());
    rules.check_secrets(&secrets)?;
    let confinement = Confinement::prepare(&rules)?;
    info!(preset = %verified.preset.name, sandbox = %confinement.describe(), network = rules.network, "workload confined");
    Ok(Some(confinement))
}

fn prepare_workspace(
    runner: &Runner,
    verified: &VerifiedRequest,
    job_dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let (Some(workload), PresetClass::Workload) =
        (&verified.manifest.workload, verified.preset.class)
    else {
        return Ok(None);
    };
    let commit = Oid::from_str(&workload.commit).context("workload commit id")?;
    let dir = job_dir.join("workspace");
    macbridge_bus::git::checkout_commit(runner.bus.repo(), commit, &dir)
        .with_context(|| format!("checking out workload {commit}"))?;
    Ok(Some(dir))
}

fn judge(
    outcome: &exec::Outcome,
    verdict: Option<&evidence_gate::Verdict>,
    timeout: f64,
) -> (ResultState, Option<String>) {
    match outcome.ending {
        Ending::Exited(0) => match verdict {
            Some(v) if !v.passed => (
                ResultState::Failed,
                Some(format!("evidence gate: {}", gate_reason(v))),
            ),
            _ => (ResultState::Done, None),
        },
        Ending::Exited(code) => (ResultState::Failed, Some(format!("exit code {code}"))),
        Ending::Signalled(sig) => (ResultState::Failed, Some(format!("killed by signal {sig}"))),
        Ending::TimedOut => (
            ResultState::TimedOut,
            Some(format!("timed out after its {timeout} s limit")),
        ),
        Ending::Cancelled => (
            ResultState::Cancelled,
            Some("cancelled by the requester".to_string()),
        ),
        Ending::OutputLimit => (
            ResultState::Failed,
            Some("stopped: the job's output exceeded the runner's limit".to_string()),
        ),
        Ending::Abandoned | Ending::Released => {
            (ResultState::Failed, Some("lease lost".to_string()))
        }
    }
}

fn gate_reason(verdict: &evidence_gate::Verdict) -> String {
    let mut parts: Vec<String> = verdict
        .violations
        .iter()
        .map(|v| format!("[{}] {}", v.code, v.message))
        .collect();
    for report in verdict.reports.iter().filter(|r| !r.passed) {
        for v in &report.violations {
            parts.push(format!("{}: [{}] {}", report.path, v.code, v.message));
        }
    }
    parts.truncate(5);
    parts.join("; ")
}

fn has_json(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .unwrap_or(false)
}

/// The job's folder: `work_dir/jobs/<request_id>/`. A folder left by an earlier attempt on
/// this machine is kept beside it for inspection rather than reused.
fn prepare_job_dir(runner: &Runner, request_id: &str, attempt: u32) -> anyhow::Result<PathBuf> {
    let dir = runner.config.jobs_dir().join(request_id);
    if dir.exists() {
        let aside = runner.config.jobs_dir().join(format!(
            "{request_id}.attempt-{}",
            attempt.saturating_sub(1)
        ));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&dir, &aside).with_context(|| format!("moving aside {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn job_env(runner: &Runner, request_id: &str, job_dir: &Path, tmp: &Path) -> Vec<(String, String)> {
    let path = runner.config.job_path.clone().unwrap_or_else(|| {
        "/usr/local/bin:/opt/homebrew/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string()
    });
    let mut env = vec![
        ("PATH".to_string(), path),
        ("LANG".to_string(), "C.UTF-8".to_string()),
        ("TMPDIR".to_string(), tmp.display().to_string()),
        ("MACBRIDGE_REQUEST_ID".to_string(), request_id.to_string()),
        (
            "MACBRIDGE_JOB_DIR".to_string(),
            job_dir.display().to_string(),
        ),
    ];
    if let Some(home) = std::env::var_os("HOME") {
        env.push(("HOME".to_string(), home.to_string_lossy().into_owned()));
    }
    env.extend(
        runner
            .config
            .job_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    env
}

fn cancel_requested(runner: &Runner, branch: &str) -> bool {
    if runner.bus.fetch(&[branch.to_string()]).is_err() {
        return false;
    }
    matches!(view::read_request(&runner.bus, branch), Ok(Some(req)) if req.has_valid_cancel())
}
