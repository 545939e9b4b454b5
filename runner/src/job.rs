//! Running a claimed request's job: prepare its folder and argv, then run it with heartbeats
//! that renew the lease, watch for a cancel, the disk filling up, and the lease lapsing (the
//! runner fences itself off when it cannot renew; see `fence`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use macbridge_bus::clock;
use macbridge_bus::git::Oid;
use macbridge_bus::lease::LeaseHandle;
use macbridge_bus::records::{LeaseState, ResultState};
use macbridge_bus::verify::VerifiedRequest;
use macbridge_bus::view::{self, RequestOnBus};
use macbridge_presets::{PresetClass, RenderContext};
use tracing::{info, warn};

use crate::exec::{self, Ending, JobSpec, Tick};
use crate::fence::{self, LeaseClock};
use crate::gate;
use crate::runner::Runner;
use crate::sandbox::{Confinement, Rules, SandboxError};

/// In a job folder while its job runs: the job's process-group id.
pub const JOB_PID_FILE: &str = "job.pid";

/// Bytes of log tail carried by each heartbeat.
const HEARTBEAT_TAIL_BYTES: u64 = 4096;

/// A job ready to start.
pub struct Prepared {
    pub job_dir: PathBuf,
    pub out: PathBuf,
    pub tmp: PathBuf,
    pub spec: JobSpec,
    pub claimed_at: String,
    /// The sandbox a workload runs in (none for engine presets or when the operator opted out).
    pub confinement: Option<Confinement>,
}

/// Why a claimed request cannot start: it ends with this result.
pub struct NotStarted {
    pub state: ResultState,
    pub reason: String,
}

/// A job that ran to its end (by itself, or stopped by a timeout, a cancel, an output cap
/// or a full disk) while this runner still held the lease.
pub struct Ended {
    pub outcome: exec::Outcome,
    pub handle: LeaseHandle,
    pub started_at: String,
    pub finished_at: String,
    /// Free bytes in the work folder when the job was stopped for lack of space.
    pub disk_full: Option<u64>,
}

/// How running a job ended.
pub enum JobEnd {
    Ended(Box<Ended>),
    /// The job could not be started at all (its lease is still held: a result is due).
    NotStarted(LeaseHandle, NotStarted),
    /// A renewal was rejected: someone else holds the request now.
    LeaseLost,
    /// Renewals kept failing and the lease was about to lapse: the job was stopped.
    Fenced,
    /// The runner is shutting down: the job was stopped; give the request back.
    Released(LeaseHandle),
}

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

/// Make the job folder, check out a workload, render the argv and record `job.json`.
pub fn prepare(
    runner: &Runner,
    req: &RequestOnBus,
    verified: &VerifiedRequest,
    handle: &LeaseHandle,
) -> Result<Prepared, NotStarted> {
    let failed = |e: anyhow::Error| NotStarted {
        state: ResultState::Failed,
        reason: format!("could not prepare the job folder: {e:#}"),
    };
    let request_id = verified.manifest.request_id.clone();
    let job_dir = prepare_job_dir(runner, &request_id, handle.lease.attempt).map_err(failed)?;
    let out = job_dir.join("out");
    let tmp = job_dir.join("tmp");
    for dir in [&out, &tmp] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))
            .map_err(failed)?;
    }
    let workspace = prepare_workspace(runner, verified, &job_dir).map_err(|e| NotStarted {
        state: ResultState::Rejected,
        reason: format!("bad_workload: {e:#}"),
    })?;
    let argv =
        render_argv(runner, verified, &out, workspace.as_deref()).map_err(|e| NotStarted {
            state: ResultState::Rejected,
            reason: format!("{}: {e}", e.code()),
        })?;
    let confinement =
        confine(runner, verified, workspace.as_deref(), &out, &tmp).map_err(|e| NotStarted {
            state: ResultState::Failed,
            reason: format!("sandbox_unavailable: {e}"),
        })?;
    let cwd = workspace.clone().unwrap_or_else(|| job_dir.clone());
    let claimed_at = handle.lease.claimed_at.clone();
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
    .with_context(|| format!("writing {}", job_dir.join("job.json").display()))
    .map_err(failed)?;
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
    Ok(Prepared {
        job_dir,
        out,
        tmp,
        spec,
        claimed_at,
        confinement,
    })
}

/// Run a prepared job to its end. `sent_at` is when the push that wrote `handle` was sent:
/// the lease is counted from then.
pub fn execute(
    runner: &Runner,
    req: &RequestOnBus,
    verified: &VerifiedRequest,
    handle: LeaseHandle,
    sent_at: Instant,
    prepared: &Prepared,
) -> JobEnd {
    let request_id = verified.manifest.request_id.as_str();
    let spec = &prepared.spec;
    let attempt = handle.lease.attempt;
    let mut handle = handle;
    let heartbeat = Duration::from_secs_f64(runner.config.heartbeat_seconds);
    let margin = fence::margin(
        runner.config.lease_seconds,
        runner.config.kill_grace_seconds,
        spec.tick_every,
    );
    let mut lease = LeaseClock::new(runner.config.lease_seconds, margin, sent_at);
    // The lease stays `claimed` until the first heartbeat marks it `running`: one push per job
    // saved, which matters on a hosted remote's push budget. That first renewal comes early,
    // so `status` says `running` within a couple of seconds.
    let mut next_renewal = Instant::now() + heartbeat.min(Duration::from_secs(2));
    let (mut lost, mut fenced, mut disk_full) = (false, false, None);
    let started_at = clock::format(clock::now());
    info!(request_id, argv = ?spec.argv, "starting job");
    let fence_now = |lease: &LeaseClock, fenced: &mut bool| -> bool {
        let Some(why) = lease.must_stop(Instant::now()) else {
            return false;
        };
        warn!(
            request_id,
            attempt,
            failing_for_s = format!("{:.1}", why.failing_for),
            lapses_in_s = format!("{:.1}", why.lapses_in),
            "fencing: the lease cannot be renewed and lapses soon; stopping the job now, \
             nothing will be published for this attempt"
        );
        *fenced = true;
        true
    };
    let ran = exec::run_confined(spec, prepared.confinement.as_ref(), || {
        if fence_now(&lease, &mut fenced) {
            return Tick::Abandon;
        }
        if let Some(free) = gate::low_disk(runner) {
            warn!(
                request_id,
                free_bytes = free,
                "the work folder is full: stopping the job"
            );
            disk_full = Some(free);
            return Tick::Cancel;
        }
        // Renewals are pushes and cost a hosted remote's push budget: only every heartbeat,
        // or every tick while they fail. Cancel checks are fetches and cheap: every tick.
        if Instant::now() >= next_renewal || lease.failing() {
            let tail = exec::tail(&spec.stderr_path, HEARTBEAT_TAIL_BYTES / 2)
                + &exec::tail(&spec.stdout_path, HEARTBEAT_TAIL_BYTES / 2);
            let sent = Instant::now();
            let renewal = runner.bus.within(lease.call_limit(sent), |_| {
                runner.renew(&handle, LeaseState::Running, Some(&tail))
            });
            match renewal {
                Ok(Some(renewed)) => {
                    if lease.failing() {
                        info!(request_id, "lease renewed again after failures");
                    }
                    handle = renewed;
                    lease.renewed(sent);
                    next_renewal = Instant::now() + heartbeat;
                }
                Ok(None) => match runner
                    .bus
                    .within(lease.call_limit(Instant::now()), |_| runner.adopt(&handle))
                {
                    // Our previous renewal went through after all: renew on top of it next tick.
                    Ok(Some(ours)) => {
                        handle = ours;
                        lease.renewal_failed(sent);
                    }
                    Ok(None) => {
                        warn!(
                            request_id,
                            "lease lost: stopping the job, publishing nothing"
                        );
                        lost = true;
                        return Tick::Abandon;
                    }
                    Err(e) => {
                        lease.renewal_failed(sent);
                        warn!(request_id, error = %format!("{e:#}"), "heartbeat rejected and the claim unreadable");
                    }
                },
                Err(e) => {
                    lease.renewal_failed(sent);
                    warn!(request_id, error = %format!("{e:#}"), "heartbeat failed; the lease is not extended");
                }
            }
            if fence_now(&lease, &mut fenced) {
                return Tick::Abandon;
            }
        }
        // While renewals fail the remote is unreachable: a cancel could not be read either.
        if !lease.failing()
            && runner.bus.within(lease.call_limit(Instant::now()), |_| {
                cancel_requested(runner, &req.branch)
            })
        {
            info!(request_id, "cancel requested: stopping the job");
            return Tick::Cancel;
        }
        if crate::stop_requested() {
            info!(request_id, "runner stopping: releasing the job");
            return Tick::Release;
        }
        Tick::Continue
    });
    let outcome = match ran {
        Ok(outcome) => outcome,
        Err(e) => {
            let reason = format!("could not start {:?}: {e}", spec.argv.first());
            return JobEnd::NotStarted(
                handle,
                NotStarted {
                    state: ResultState::Failed,
                    reason,
                },
            );
        }
    };
    match outcome.ending {
        Ending::Abandoned if fenced => {
            warn!(
                request_id,
                attempt, "job stopped by fencing; its output stays in the job folder"
            );
            JobEnd::Fenced
        }
        Ending::Abandoned => {
            if !lost {
                warn!(request_id, "job abandoned");
            }
            JobEnd::LeaseLost
        }
        Ending::Released => JobEnd::Released(handle),
        _ => JobEnd::Ended(Box::new(Ended {
            outcome,
            handle,
            started_at,
            finished_at: clock::format(clock::now()),
            disk_full,
        })),
    }
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
