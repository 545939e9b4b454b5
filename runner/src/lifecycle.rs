//! The lifecycle of one request, as one typed state machine:
//!
//! ```text
//!  Found ──▶ Verified ──▶ Claimed ──▶ Running ──▶ Gated ──┐
//!    │           │            │           │               ├──▶ publish ──▶ Done
//!    └───────────┴────────────┴───────────┴─▶ Refused ────┘
//!                 (Skipped, Lost, Abandoned: Done without publishing)
//! ```
//!
//! Each stage is a value holding exactly what that stage knows; [`advance`] makes one
//! transition. Publishing is the single exit that writes to the request branch: only
//! `Refused` and `Gated` reach it. Each fault the runner survives maps to one transition:
//! a forged or expired request (Found → Refused), a lost claim race (Verified → Lost), a
//! dead holder's lease (Verified → Claimed, after watching it lapse), a cancel (Claimed →
//! Refused, or Running → Gated as `cancelled`), a cut network (Running → Abandoned by
//! fencing), a full disk (Running → Gated as `failed`), a lost lease (Gated → Abandoned).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use macbridge_bus::lease::{self, LeaseHandle, LeaseOutcome};
use macbridge_bus::records::{Lease, LeaseState, ResultState};
use macbridge_bus::verify::{self, RefusalCode, VerifiedRequest};
use macbridge_bus::view::{self, LeaseOnBus, RequestOnBus};
use macbridge_bus::{clock, layout};
use tracing::{debug, info};

use crate::gate;
use crate::job::{self, JobEnd, Prepared};
use crate::publish;
use crate::runner::Runner;

/// What happened to one request branch during a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Already answered, or someone else holds it, or this runner cannot serve it.
    Skipped(String),
    /// Refused with a recorded result.
    Refused(String),
    /// Ran and published a result in this state.
    Ran(ResultState),
    /// Lost the claim race: another runner has it.
    Lost,
    /// Its lease looks lapsed by the wall clock; this runner is watching it stay unchanged
    /// for its whole duration before taking it over.
    Watching(String),
    /// Started, then lost the lease (or was told to stop, or fenced itself): nothing published.
    Abandoned,
}

/// A request that passed verification.
pub struct Verified {
    req: RequestOnBus,
    verified: VerifiedRequest,
}

/// A request this runner holds the lease of; `sent_at` is when the claim push was sent.
pub struct Claimed {
    req: RequestOnBus,
    verified: VerifiedRequest,
    handle: LeaseHandle,
    sent_at: Instant,
    /// The attempt number of the lease this claim took over, if any.
    took_over: Option<u32>,
}

/// A claimed request whose job folder and argv are ready.
pub struct Running {
    req: RequestOnBus,
    verified: VerifiedRequest,
    handle: LeaseHandle,
    sent_at: Instant,
    prepared: Prepared,
}

/// A job that ended while this runner still held the lease, with its verdict.
pub struct Gated {
    req: RequestOnBus,
    handle: LeaseHandle,
    verified: VerifiedRequest,
    job_dir: PathBuf,
    out: PathBuf,
    judged: gate::Judged,
}

/// A decision not to run (or to stop trying): a result is published for it.
pub struct Refused {
    req: RequestOnBus,
    state: ResultState,
    reason: String,
    handle: Option<LeaseHandle>,
}

/// Where a request is in its lifecycle.
pub enum Stage {
    Found(Box<RequestOnBus>),
    Verified(Box<Verified>),
    Claimed(Box<Claimed>),
    Running(Box<Running>),
    Gated(Box<Gated>),
    Refused(Box<Refused>),
    Done(Handled),
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Found(_) => "found",
            Stage::Verified(_) => "verified",
            Stage::Claimed(_) => "claimed",
            Stage::Running(_) => "running",
            Stage::Gated(_) => "gated",
            Stage::Refused(_) => "refused",
            Stage::Done(_) => "done",
        }
    }
}

fn refused(
    req: RequestOnBus,
    state: ResultState,
    reason: String,
    handle: Option<LeaseHandle>,
) -> Stage {
    Stage::Refused(Box::new(Refused {
        req,
        state,
        reason,
        handle,
    }))
}

/// Drive a request found by a scan from `Found` to `Done`. `claims` are the claim refs the
/// scan listed (and fetched).
pub fn drive(
    runner: &Runner,
    req: RequestOnBus,
    claims: &BTreeSet<String>,
) -> anyhow::Result<Handled> {
    let branch = req.branch.clone();
    let mut stage = Stage::Found(Box::new(req));
    loop {
        if let Stage::Done(handled) = stage {
            return Ok(handled);
        }
        let from = stage.name();
        stage = advance(runner, stage, claims)?;
        debug!(branch = %branch, from, to = stage.name(), "transition");
    }
}

/// One transition.
pub fn advance(runner: &Runner, stage: Stage, claims: &BTreeSet<String>) -> anyhow::Result<Stage> {
    Ok(match stage {
        Stage::Found(req) => verify(runner, *req),
        Stage::Verified(v) => claim(runner, *v, claims)?,
        Stage::Claimed(c) => prepare(runner, *c)?,
        Stage::Running(r) => run(runner, *r)?,
        Stage::Gated(g) => publish_result(runner, *g)?,
        Stage::Refused(r) => publish_refusal(runner, *r)?,
        done @ Stage::Done(_) => done,
    })
}

/// Found → Verified, or Refused (oversized, unsigned, forged, expired, not allowed), or
/// Skipped (labels this runner lacks).
fn verify(runner: &Runner, req: RequestOnBus) -> Stage {
    if let Some(size) = req.manifest_too_large {
        let reason =
            verify::Refusal::new(RefusalCode::InvalidManifest, view::too_large_message(size))
                .reason();
        return refused(req, ResultState::Rejected, reason, None);
    }
    let verified = match verify::verify_request(
        &req.branch,
        req.manifest_bytes.as_deref(),
        req.signature.as_deref(),
        &runner.trust,
        clock::now(),
    ) {
        Ok(v) => v,
        Err(refusal) => {
            let state = if refusal.code == RefusalCode::Expired {
                ResultState::Expired
            } else {
                ResultState::Rejected
            };
            info!(branch = %req.branch, reason = %refusal, "refusing request");
            return refused(req, state, refusal.reason(), None);
        }
    };
    let mut needed = verified.manifest.labels.clone();
    needed.extend(verified.preset.labels.iter().cloned());
    if !verify::labels_satisfied(&needed, &runner.config.labels) {
        return Stage::Done(Handled::Skipped(format!(
            "needs labels {needed:?}; this runner has {:?}",
            runner.config.labels
        )));
    }
    // A preset this runner cannot fill in (a model directory it was never given, for these
    // params) is refused before anything is claimed or started.
    let missing: Vec<String> = verified
        .preset
        .required_env_for(&verified.params)
        .into_iter()
        .filter(|(name, _)| runner.config.env.get(name).is_none_or(|v| v.is_empty()))
        .map(|(name, because)| match because {
            Some(because) => format!("{name} (for {because})"),
            None => name,
        })
        .collect();
    if !missing.is_empty() {
        let reason = format!(
            "{}: preset {} needs runner env {} (set it under `env:` in the runner config)",
            RefusalCode::MissingEnv.as_str(),
            verified.preset.name,
            missing.join(", ")
        );
        return refused(req, ResultState::Rejected, reason, None);
    }
    Stage::Verified(Box::new(Verified { req, verified }))
}

/// Whether a held lease may be taken over now: it has lapsed by the wall clock *and* this
/// process has watched its claim ref stay at the same tip for the lease's whole duration on
/// its own monotonic clock. The second condition makes take-over safe whatever the offset
/// between the holder's clock and ours: a holder whose clock runs minutes behind writes an
/// `expires_at` that is already past, but its renewals keep moving the tip. `Err` says how
/// much longer to watch.
fn lapsed(runner: &Runner, on_bus: &LeaseOnBus, lease: &Lease) -> Result<bool, f64> {
    let now = clock::now();
    let Some(expires) = clock::parse(&lease.expires_at) else {
        return Ok(true);
    };
    if expires >= now {
        return Ok(false);
    }
    let duration = clock::parse(&lease.renewed_at)
        .map(|renewed| clock::seconds_between(renewed, expires))
        .unwrap_or(runner.config.lease_seconds)
        .clamp(0.0, 24.0 * 3600.0);
    // A holder that announced its job's end may still publish it: give it longer.
    let duration = duration + crate::ended::take_over_grace(runner, lease, duration);
    let claim_ref = layout::claim_ref(&lease.request_id);
    let watched = runner.watched_for(&claim_ref, on_bus.tip);
    if watched >= duration {
        Ok(true)
    } else {
        Err(duration - watched)
    }
}

/// Verified → Claimed, or Refused (a replay), Skipped (held by another runner), Lost (the
/// claim race went to another runner).
fn claim(runner: &Runner, v: Verified, claims: &BTreeSet<String>) -> anyhow::Result<Stage> {
    let Verified { req, verified } = v;
    let request_id = verified.manifest.request_id.clone();
    // The scan fetched every claim it listed. A claim made since then makes our create-only
    // push fail, and a lease renewed since then makes our re-claim fail: both are `Lost`.
    let previous = if claims.contains(&layout::claim_ref(&request_id)) {
        view::read_lease(&runner.bus, &request_id)?
    } else {
        None
    };
    if let Some(prev) = &previous
        && let Some(handled) = crate::ended::resume_own(runner, prev)?
    {
        return Ok(Stage::Done(handled));
    }
    let mut took_over = None;
    if let Some(prev) = &previous {
        match &prev.lease {
            Ok(lease) if lease.branch != req.branch => {
                let reason = format!(
                    "replay: request {request_id} was already claimed for {}",
                    lease.branch
                );
                return Ok(refused(req, ResultState::Rejected, reason, None));
            }
            Ok(lease) if lease.state == LeaseState::Done => {
                // Results are published atomically with `done`, so a finished claim with
                // no result on the branch means the branch was re-created: a replay.
                let reason = format!(
                    "replay: request {request_id} already finished (claim closed by {})",
                    lease.runner_id
                );
                return Ok(refused(req, ResultState::Rejected, reason, None));
            }
            Ok(lease) => {
                let open = match lease.state {
                    LeaseState::Released => true,
                    LeaseState::Claimed | LeaseState::Running => {
                        match lapsed(runner, prev, lease) {
                            Ok(open) => open,
                            Err(left) => {
                                let ended = if lease.ended.is_some() {
                                    " (its job ended: waiting for it to publish)"
                                } else {
                                    ""
                                };
                                return Ok(Stage::Done(Handled::Watching(format!(
                                    "lease of {} lapsed by the wall clock{ended}; watching it {left:.1} s more before taking over",
                                    lease.runner_id
                                ))));
                            }
                        }
                    }
                    _ => false,
                };
                if !open {
                    return Ok(Stage::Done(Handled::Skipped(format!(
                        "held by {} until {}",
                        lease.runner_id, lease.expires_at
                    ))));
                }
                took_over = Some(lease.attempt);
            }
            Err(e) => {
                return Ok(Stage::Done(Handled::Skipped(format!(
                    "unreadable lease: {e}"
                ))));
            }
        }
    }
    let sent_at = Instant::now();
    let handle = match lease::claim(
        &runner.bus,
        &runner.identity,
        &request_id,
        &req.branch,
        req.request_commit,
        previous.as_ref().filter(|_| took_over.is_some()),
        runner.config.lease_seconds,
    )? {
        LeaseOutcome::Held(h) => *h,
        LeaseOutcome::Lost => return Ok(Stage::Done(Handled::Lost)),
    };
    info!(branch = %req.branch, request_id = %request_id, attempt = handle.lease.attempt, "claimed");
    runner.github_status(
        &req.request_commit.to_string(),
        macbridge_bus::github::StatusState::Pending,
        &format!(
            "claimed by {} (attempt {})",
            runner.config.runner_id, handle.lease.attempt
        ),
    );
    Ok(Stage::Claimed(Box::new(Claimed {
        req,
        verified,
        handle,
        sent_at,
        took_over,
    })))
}

/// Claimed → Running, or Refused (too many attempts, cancelled before it started, a workload
/// or argv that cannot be prepared).
fn prepare(runner: &Runner, c: Claimed) -> anyhow::Result<Stage> {
    let Claimed {
        req,
        verified,
        handle,
        sent_at,
        took_over,
    } = c;
    if let Some(attempts) = took_over
        && attempts >= runner.config.max_attempts
    {
        let reason = format!(
            "gave up after {attempts} attempt(s): each runner's lease expired before it finished (max_attempts {})",
            runner.config.max_attempts
        );
        return Ok(refused(req, ResultState::Failed, reason, Some(handle)));
    }
    if req.has_valid_cancel() {
        let reason = "cancelled by the requester before it started".to_string();
        return Ok(refused(req, ResultState::Cancelled, reason, Some(handle)));
    }
    match job::prepare(runner, &req, &verified, &handle) {
        Ok(prepared) => Ok(Stage::Running(Box::new(Running {
            req,
            verified,
            handle,
            sent_at,
            prepared,
        }))),
        Err(job::NotStarted { state, reason }) => Ok(refused(req, state, reason, Some(handle))),
    }
}

/// Running → Gated (the job ended while the lease held), Refused (it could not start), or
/// Done(Abandoned): the lease was lost, the runner fenced itself off after renewals failed,
/// or the runner is shutting down (it then gives the request back).
fn run(runner: &Runner, r: Running) -> anyhow::Result<Stage> {
    let Running {
        req,
        verified,
        handle,
        sent_at,
        prepared,
    } = r;
    let end = job::execute(runner, &req, &verified, handle, sent_at, &prepared);
    Ok(match end {
        JobEnd::Ended(ended) => {
            let Some((handle, judged)) = crate::ended::settle(runner, &verified, &prepared, &ended)
            else {
                return Ok(Stage::Done(Handled::Abandoned));
            };
            Stage::Gated(Box::new(Gated {
                req,
                handle,
                verified,
                job_dir: prepared.job_dir,
                out: prepared.out,
                judged,
            }))
        }
        JobEnd::NotStarted(handle, why) => refused(req, why.state, why.reason, Some(handle)),
        JobEnd::LeaseLost | JobEnd::Fenced => Stage::Done(Handled::Abandoned),
        JobEnd::Released(handle) => {
            // Give the request back so another runner (or this one, restarted) takes it at
            // once instead of waiting for the lease to expire. Partial output stays local.
            let _ = lease::renew(
                &runner.bus,
                &runner.identity,
                &handle,
                LeaseState::Released,
                runner.config.lease_seconds,
                None,
                Some("runner shut down during the job".to_string()),
            );
            Stage::Done(Handled::Abandoned)
        }
    })
}

/// Gated → Done: the single exit for a job that ran.
fn publish_result(runner: &Runner, g: Gated) -> anyhow::Result<Stage> {
    let Gated {
        req,
        handle,
        verified,
        job_dir,
        out,
        judged,
    } = g;
    let state = judged.state;
    info!(request_id = %verified.manifest.request_id, state = state.as_str(), reason = ?judged.reason, "job finished");
    let published = publish::job_result(
        runner,
        &req,
        &verified,
        &handle,
        publish::JobFacts {
            state,
            reason: judged.reason,
            exit_code: judged.exit_code,
            signal: judged.signal,
            timings: judged.timings,
            verdict: judged.verdict,
            job_dir: &job_dir,
            out_dir: &out,
        },
    )?;
    Ok(Stage::Done(if published {
        Handled::Ran(state)
    } else {
        Handled::Abandoned
    }))
}

/// Refused → Done: the single exit for a request that did not run.
fn publish_refusal(runner: &Runner, r: Refused) -> anyhow::Result<Stage> {
    let Refused {
        req,
        state,
        reason,
        handle,
    } = r;
    publish::refusal(runner, &req, state, &reason, handle.as_ref())?;
    Ok(Stage::Done(if state == ResultState::Cancelled {
        Handled::Ran(ResultState::Cancelled)
    } else {
        Handled::Refused(reason)
    }))
}

/// Gated → Done for a job an earlier life of this runner finished (see
/// `housekeeping::recover`): the same single exit as a job that ran now.
pub(crate) fn publish_ended(
    runner: &Runner,
    req: RequestOnBus,
    handle: LeaseHandle,
    verified: VerifiedRequest,
    job_dir: PathBuf,
    judged: gate::Judged,
) -> anyhow::Result<Handled> {
    let gated = Gated {
        req,
        handle,
        verified,
        out: job_dir.join("out"),
        job_dir,
        judged,
    };
    Ok(match publish_result(runner, gated)? {
        Stage::Done(handled) => handled,
        _ => Handled::Abandoned,
    })
}
