//! The state of a request as a requester sees it, derived from the branch and its lease.

use serde::Serialize;
use time::OffsetDateTime;

use crate::clock;
use crate::layout;
use crate::records::{LeaseState, ResultRecord};
use crate::view::{LeaseOnBus, RequestOnBus};

/// Everything `macbridge status` reports about one request.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub branch: String,
    pub request_id: Option<String>,
    pub preset: Option<String>,
    /// pending, claimed, running, done, failed, rejected, cancelled, expired, timed_out
    pub state: String,
    pub reason: Option<String>,
    pub verdict: Option<evidence_gate::Verdict>,
    pub runner: Option<String>,
    pub attempt: Option<u32>,
    pub lease_expires_at: Option<String>,
    /// Seconds since the lease was last renewed.
    pub lease_age_s: Option<f64>,
    pub cancel_requested: bool,
    pub expires_at: Option<String>,
    pub request_commit: String,
    pub tip: String,
    pub log_tail: Option<String>,
    pub result: Option<ResultRecord>,
}

impl Status {
    /// Whether the request has reached a final state.
    pub fn is_final(&self) -> bool {
        !matches!(self.state.as_str(), "pending" | "claimed" | "running")
    }
}

/// Derive the status of `request` given its lease (if any) at time `now`.
pub fn status_of(
    request: &RequestOnBus,
    lease: Option<&LeaseOnBus>,
    now: OffsetDateTime,
) -> Status {
    let manifest = request.manifest.as_ref().ok();
    let mut status = Status {
        branch: layout::short_branch(&request.branch).to_string(),
        request_id: manifest.map(|m| m.request_id.clone()),
        preset: manifest.map(|m| m.preset.clone()),
        state: "pending".to_string(),
        reason: None,
        verdict: None,
        runner: None,
        attempt: None,
        lease_expires_at: None,
        lease_age_s: None,
        cancel_requested: request.has_valid_cancel(),
        expires_at: manifest.map(|m| m.expires_at.clone()),
        request_commit: request.request_commit.to_string(),
        tip: request.tip.to_string(),
        log_tail: None,
        result: None,
    };
    if let Some(result) = &request.result {
        match &result.record {
            Ok(record) => {
                status.state = record.state.as_str().to_string();
                status.reason = record.reason.clone();
                status.verdict = record.verdict.clone();
                status.runner = Some(record.runner.id.clone());
                status.attempt = Some(record.attempt);
                status.result = Some(record.clone());
            }
            Err(e) => {
                status.state = "failed".to_string();
                status.reason = Some(format!("result.json on the branch is unreadable: {e}"));
            }
        }
        return status;
    }
    if let Err(e) = &request.manifest {
        status.reason = Some(format!("waiting for a runner to record the refusal: {e}"));
        return status;
    }
    if let Some(lease) = lease.and_then(|l| l.lease.as_ref().ok().map(|x| (l, x)))
        && lease.1.branch == request.branch
    {
        let (on_bus, lease) = lease;
        status.runner = Some(lease.runner_id.clone());
        status.attempt = Some(lease.attempt);
        status.lease_expires_at = Some(lease.expires_at.clone());
        status.lease_age_s = clock::parse(&lease.renewed_at)
            .map(|t| (clock::seconds_between(t, now) * 10.0).round() / 10.0);
        status.log_tail = on_bus.log_tail.clone();
        let expired = clock::parse(&lease.expires_at).is_none_or(|t| t < now);
        match lease.state {
            LeaseState::Claimed | LeaseState::Running if !expired => {
                status.state = if lease.state == LeaseState::Claimed {
                    "claimed"
                } else {
                    "running"
                }
                .to_string();
                return status;
            }
            LeaseState::Claimed | LeaseState::Running => {
                status.reason = Some(format!(
                    "lease of runner {} expired at {}; waiting for another runner",
                    lease.runner_id, lease.expires_at
                ));
            }
            LeaseState::Released => {
                status.reason = Some(format!(
                    "released by runner {}{}",
                    lease.runner_id,
                    lease
                        .note
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                ));
            }
            LeaseState::Done => {
                status.state = "running".to_string();
                status.reason = Some("finishing: result is being published".to_string());
                return status;
            }
        }
    }
    if let Some(m) = manifest
        && m.expires().is_some_and(|t| t < now)
    {
        status.state = "expired".to_string();
        status.reason = Some(format!(
            "expired at {} before any runner finished it",
            m.expires_at
        ));
    }
    status
}
