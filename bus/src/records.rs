//! Records the runners and requesters write onto the bus besides the manifest: leases,
//! cancels and results. Each is JSON signed by its author over the exact bytes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Lease record on a claim ref. `epoch` rises by one with every commit on the chain and is
/// the fencing token: a runner may act only while its epoch is the tip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    pub schema_version: u32,
    pub request_id: String,
    /// Full ref of the request branch this claim belongs to.
    pub branch: String,
    pub request_commit: String,
    pub runner_id: String,
    /// Fingerprint of the key that signed this lease.
    pub runner_key: String,
    /// 1 for the first claim; +1 for each re-claim after an expired lease.
    pub attempt: u32,
    pub epoch: u64,
    pub state: LeaseState,
    pub claimed_at: String,
    pub renewed_at: String,
    pub expires_at: String,
    /// Why the lease ended (released or failed), when it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set by the holder the moment its job ended, before the result is published: the job
    /// must not run again. A runner that finds such a lease lapsed waits an extra grace
    /// for the holder to come back and publish before it re-runs the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<LeaseEnded>,
}

/// How the holder's job ended, as recorded on its lease before the result is published.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseEnded {
    /// When the job ended (RFC 3339, the holder's clock).
    pub at: String,
    /// The state the result will have.
    pub state: ResultState,
    /// SHA-256 (hex) of the holder's local record of the end (`ended.json`), so a restarted
    /// holder publishes exactly the end it announced.
    pub digest: String,
}

/// Where a lease chain stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Claimed, the job is starting.
    Claimed,
    /// The job is running; renewed by heartbeats.
    Running,
    /// The runner gave the job back (e.g. on shutdown); another runner may claim it.
    Released,
    /// A result was published together with this commit.
    Done,
}

/// Final states a result can record.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResultState {
    Done,
    Failed,
    Rejected,
    Cancelled,
    Expired,
    TimedOut,
}

impl ResultState {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultState::Done => "done",
            ResultState::Failed => "failed",
            ResultState::Rejected => "rejected",
            ResultState::Cancelled => "cancelled",
            ResultState::Expired => "expired",
            ResultState::TimedOut => "timed_out",
        }
    }
}

/// One file published with a result, by content hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Artifact {
    /// Path inside the result commit.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The runner that produced a result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunnerInfo {
    pub id: String,
    /// `ssh-ed25519 AAAA...` public key that signed the result.
    pub key: String,
    pub fingerprint: String,
    pub labels: Vec<String>,
    pub version: String,
}

/// Timings of a job, RFC 3339 and seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    pub claimed_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub run_seconds: Option<f64>,
}

/// `.mac-bridge/result.json`: the answer to a request, signed by the runner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultRecord {
    pub schema_version: u32,
    /// `null` when the manifest was too broken to have one.
    pub request_id: Option<String>,
    pub branch: String,
    /// The request commit this result answers.
    pub request_commit: String,
    pub state: ResultState,
    /// Why the request was refused or did not succeed; `null` on success.
    pub reason: Option<String>,
    pub preset: Option<String>,
    pub preset_digest: Option<String>,
    /// Parameters after validation, defaults filled.
    pub params: Option<Value>,
    pub exit_code: Option<i32>,
    /// Signal that ended the job, if any.
    pub signal: Option<i32>,
    pub attempt: u32,
    pub runner: RunnerInfo,
    pub engine_version: Option<String>,
    pub timings: Timings,
    /// The evidence gate's verdict, `null` when no job ran or the preset expects no reports.
    pub verdict: Option<evidence_gate::Verdict>,
    pub artifacts: Vec<Artifact>,
    pub logs_truncated: bool,
    pub published_at: String,
}

/// `.mac-bridge/cancel.json`: the requester asks the runner to stop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CancelRecord {
    pub schema_version: u32,
    pub request_id: String,
    pub requested_by: String,
    pub issued_at: String,
    pub reason: Option<String>,
}

/// Serialize a record as the bytes that get signed and committed.
pub fn to_bytes<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
