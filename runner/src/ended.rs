//! A job that ended but is not yet published: the one window in which a runner killed at the
//! wrong moment used to make the request run twice.
//!
//! The moment a job ends and is judged, the runner records the end in the job folder
//! (`ended.json`, see `gate`) and then announces it on its lease: one renewal whose lease
//! carries `ended` (time, result state, digest of `ended.json`). From then on:
//!
//! - a runner that finds that lease lapsed waits an extra grace (`ended_grace_seconds`,
//!   default three lease lengths) on top of the usual watch before it takes over, because the
//!   holder can still publish without running anything;
//! - the holder, restarted, renews its own ended lease (so the watchers start over) and
//!   publishes from `ended.json` (`housekeeping::recover`);
//! - a holder that never comes back is replaced after the grace: the request is run again,
//!   never left without an answer.
//!
//! Before the end is judged there is a shorter window: the job exited but the runner, busy with
//! a heartbeat, has not yet seen it, or it died just before the job exited. The job's
//! supervisor writes the job's wait status to `job.exit` in the job folder the moment it reaps
//! the job (always before it would kill the group for a dead runner), and a restarted runner
//! judges that end and publishes it the same way, unless the runner had begun stopping the job
//! itself (`job.stopping`).
//!
//! Fencing is unchanged: the announcement is a renewal like any other (a compare-and-swap on
//! the claim ref), and a result is only ever pushed together with the lease moving to `done`.

use std::path::Path;

use macbridge_bus::lease::LeaseHandle;
use macbridge_bus::records::{Lease, LeaseEnded, LeaseState};
use macbridge_bus::verify::{self, VerifiedRequest};
use macbridge_bus::view::LeaseOnBus;
use macbridge_bus::{clock, layout, view};
use tracing::{info, warn};

use crate::exec;
use crate::gate::{self, Judged};
use crate::job::{Ended, Prepared};
use crate::lifecycle::{self, Handled};
use crate::runner::Runner;

/// Environment variable naming a fault-injection point at which the runner kills itself
/// with SIGKILL (tests only; see [`crash_point`]).
pub const CRASH_ENV: &str = "MACBRIDGE_RUNNER_CRASH_AT";

/// After the job exited and the runner saw it, before the end is judged.
pub const AFTER_JOB_EXIT: &str = "after-job-exit";
/// After `ended.json` is written, before the lease announces the end.
pub const AFTER_END_RECORDED: &str = "after-end-recorded";
/// After the lease announced the end, before the result is published.
pub const AFTER_END_ANNOUNCED: &str = "after-end-announced";

/// Kill this process with SIGKILL when `MACBRIDGE_RUNNER_CRASH_AT` names `point`: the end-to-end
/// tests use it to die at an exact instant of the lifecycle, as a power cut or the OOM killer
/// would, with nothing flushed or cleaned up. Unset (always, outside tests): does nothing.
pub fn crash_point(point: &str) {
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == point) {
        warn!(point, "fault injection: killing this runner with SIGKILL");
        // SAFETY: kill(2) on our own pid with a constant signal.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The `ended` part of a lease for a judged end recorded with `digest`.
pub fn lease_end(judged: &Judged, digest: &str) -> LeaseEnded {
    LeaseEnded {
        at: judged
            .timings
            .finished_at
            .clone()
            .unwrap_or_else(|| clock::format(clock::now())),
        state: judged.state,
        digest: digest.to_string(),
    }
}

/// Announce on the lease that the job ended (one renewal carrying `ended`). Without a
/// recorded end (`digest` is `None`) there is nothing a restarted runner could publish, so
/// nothing is announced. Returns the handle to publish with (the renewed lease, or the old one
/// when the bus could not be reached: the publish finds out), or `None` when another runner
/// took the lease over: publish nothing.
pub fn announce(
    runner: &Runner,
    handle: LeaseHandle,
    judged: &Judged,
    digest: Option<&str>,
) -> Option<LeaseHandle> {
    let Some(digest) = digest else {
        return Some(handle);
    };
    let request_id = handle.lease.request_id.clone();
    let mut marked = handle.clone();
    marked.lease.ended = Some(lease_end(judged, digest));
    match runner.renew(&marked, LeaseState::Running, None) {
        Ok(Some(renewed)) => Some(renewed),
        Ok(None) => match runner.adopt(&handle) {
            // Our own renewal went through and only its answer was lost.
            Ok(Some(ours)) => Some(ours),
            Ok(None) => {
                warn!(
                    request_id,
                    "lease lost right after the job ended: publishing nothing"
                );
                None
            }
            Err(e) => {
                warn!(request_id, error = %format!("{e:#}"), "could not re-read the claim after the job ended");
                Some(handle)
            }
        },
        Err(e) => {
            // The publish is a compare-and-swap on the same claim tip: it decides.
            warn!(request_id, error = %format!("{e:#}"), "could not announce the job's end on its lease");
            Some(handle)
        }
    }
}

/// Running → Gated: judge a job that ended, record the end in its folder, announce it on the
/// lease. `None`: the lease was lost meanwhile; nothing may be published.
pub fn settle(
    runner: &Runner,
    verified: &VerifiedRequest,
    prepared: &Prepared,
    ended: &Ended,
) -> Option<(LeaseHandle, Judged)> {
    crash_point(AFTER_JOB_EXIT);
    let judged = gate::judge(runner, verified, prepared, ended);
    let digest = gate::record(
        &prepared.job_dir,
        &verified.manifest.request_id,
        ended.handle.lease.attempt,
        &judged,
    );
    crash_point(AFTER_END_RECORDED);
    let handle = announce(runner, ended.handle.clone(), &judged, digest.as_deref())?;
    crash_point(AFTER_END_ANNOUNCED);
    Some((handle, judged))
}

/// Extra seconds to wait, beyond the lease's own duration, before taking over `lease`:
/// `ended_grace_seconds` (default three times `duration`) when its holder announced that
/// the job ended, else none.
pub fn take_over_grace(runner: &Runner, lease: &Lease, duration: f64) -> f64 {
    if lease.ended.is_none() {
        return 0.0;
    }
    runner
        .config
        .ended_grace_seconds
        .unwrap_or(3.0 * duration)
        .clamp(0.0, 24.0 * 3600.0)
}

/// After a restart: renew this runner's own lease that its earlier life left (so watchers
/// start over), announcing the recorded end. `None`: someone else holds it now.
pub fn reclaim(
    runner: &Runner,
    handle: &LeaseHandle,
    judged: &Judged,
    digest: &str,
) -> anyhow::Result<Option<LeaseHandle>> {
    let mut marked = handle.clone();
    marked.lease.ended = Some(lease_end(judged, digest));
    let renewed = runner.renew(&marked, LeaseState::Running, None)?;
    if renewed.is_some() {
        info!(
            request_id = %handle.lease.request_id,
            attempt = handle.lease.attempt,
            "renewed the lease of a job that ended before the restart"
        );
    }
    Ok(renewed)
}

/// The attempt and runner recorded in a job folder's `job.json`.
fn folder_attempt(job_dir: &Path) -> Option<(u32, String)> {
    let bytes = std::fs::read(job_dir.join("job.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        u32::try_from(v["attempt"].as_u64()?).ok()?,
        v["runner_id"].as_str()?.to_string(),
    ))
}

/// After a restart: a claim this runner still holds from its earlier life whose job had
/// already ended. Its end is in the job folder, judged (`ended.json`) or at least as the exit
/// status the job's supervisor wrote (then it is judged now). Renew the lease and publish, so
/// the request is not run a second time. `None`: no end of the job's own is recorded, or the
/// request no longer verifies; the caller gives the claim back instead.
pub fn resume(runner: &Runner, handle: LeaseHandle) -> anyhow::Result<Option<Handled>> {
    let request_id = handle.lease.request_id.clone();
    let attempt = handle.lease.attempt;
    let job_dir = runner.config.jobs_dir().join(&request_id);
    let recorded = gate::recorded(&job_dir, &request_id, attempt);
    let ours = folder_attempt(&job_dir) == Some((attempt, runner.config.runner_id.clone()));
    if recorded.is_none() && !(ours && exec::recorded_exit(&job_dir).is_some()) {
        return Ok(None);
    }
    let branch = handle.lease.branch.clone();
    runner.bus.fetch(std::slice::from_ref(&branch))?;
    let Some(req) = view::read_request(&runner.bus, &branch)? else {
        return Ok(None);
    };
    if req.result.is_some() {
        return Ok(Some(Handled::Skipped("already answered".to_string())));
    }
    // Verified as of when it was claimed: that is when it was accepted.
    let at = clock::parse(&handle.lease.claimed_at).unwrap_or_else(clock::now);
    let Ok(verified) = verify::verify_request(
        &req.branch,
        req.manifest_bytes.as_deref(),
        req.signature.as_deref(),
        &runner.trust,
        at,
    ) else {
        return Ok(None);
    };
    let (judged, digest) = match recorded {
        Some(found) => found,
        None => {
            let Some(judged) =
                gate::judge_recorded_exit(runner, &verified, &job_dir, &handle.lease.claimed_at)
            else {
                return Ok(None);
            };
            info!(
                request_id,
                attempt,
                state = judged.state.as_str(),
                "the job ended by itself before the restart; judged it from its recorded exit status"
            );
            let Some(digest) = gate::record(&job_dir, &request_id, attempt, &judged) else {
                return Ok(None);
            };
            (judged, digest)
        }
    };
    // The lease may have announced an end: only that very end may be published.
    if let Some(announced) = &handle.lease.ended
        && announced.digest != digest
    {
        warn!(
            request_id,
            "the recorded end differs from the one the lease announced; giving the claim back"
        );
        return Ok(None);
    }
    // Renew first: the others watching the lapsed lease start over, and a lease someone
    // else took over meanwhile is found out before anything is built.
    let Some(handle) = reclaim(runner, &handle, &judged, &digest)? else {
        return Ok(Some(Handled::Skipped(
            "another runner took the claim over".to_string(),
        )));
    };
    info!(
        request_id,
        attempt, "publishing the result of a job that ended before the restart"
    );
    lifecycle::publish_ended(runner, req, handle, verified, job_dir, judged).map(Some)
}

/// In a scan: the claim of `request_id` is this runner's own, `claimed` or `running`, from an
/// earlier life of this process (this process runs one job at a time and is not running one
/// now), e.g. because the start-up recovery did not get to it. If its job ended, publish that
/// end instead of taking the lease over for a new attempt. `None`: not ours, or no end of the
/// job's own is recorded; the usual take-over rules apply.
pub fn resume_own(runner: &Runner, on_bus: &LeaseOnBus) -> anyhow::Result<Option<Handled>> {
    let Ok(lease) = &on_bus.lease else {
        return Ok(None);
    };
    let mine = lease.runner_id == runner.identity.id
        && lease.runner_key == runner.identity.fingerprint()
        && matches!(lease.state, LeaseState::Claimed | LeaseState::Running);
    if !mine {
        return Ok(None);
    }
    let handle = LeaseHandle {
        claim_ref: layout::claim_ref(&lease.request_id),
        tip: on_bus.tip,
        lease: lease.clone(),
    };
    resume(runner, handle)
}
