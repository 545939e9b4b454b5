//! The requester's side of the protocol: build, sign and push a request; push a cancel.

use std::collections::BTreeMap;

use git2::Oid;
use macbridge_presets::Preset;
use serde_json::Value;
use time::OffsetDateTime;

use crate::clock;
use crate::git::{Bus, GitError, PushOutcome, PushUpdate, TreeChange, write_commit};
use crate::layout;
use crate::manifest::{Manifest, SCHEMA_VERSION, new_nonce};
use crate::records::{self, CancelRecord};
use crate::sig::{self, SigError, Signer};

/// Errors while submitting.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Sig(#[from] SigError),
    #[error("cannot draw random bytes for the nonce: {0}")]
    Random(String),
    #[error("branch {0} already exists on the remote")]
    BranchExists(String),
    #[error("the remote refused the push: {0}")]
    Refused(String),
}

/// Everything a new request needs besides the key.
pub struct RequestSpec<'a> {
    pub preset: &'a Preset,
    pub params: BTreeMap<String, Value>,
    pub labels: Vec<String>,
    pub expires_in_secs: i64,
    /// A commit already present in the bus cache, for workload presets.
    pub workload: Option<Oid>,
    /// The bus id to address the request to (see [`crate::busid`]).
    pub audience: Option<String>,
}

/// Build the manifest for `spec`, signed-to-be by `key`, issued at `now`.
pub fn build_manifest(
    spec: &RequestSpec<'_>,
    key: &(impl Signer + ?Sized),
    now: OffsetDateTime,
) -> Result<Manifest, SubmitError> {
    let nonce = new_nonce().map_err(|e| SubmitError::Random(e.to_string()))?;
    let mut labels = spec.labels.clone();
    labels.sort();
    labels.dedup();
    Ok(Manifest {
        schema_version: SCHEMA_VERSION,
        request_id: String::new(),
        nonce,
        preset: spec.preset.name.clone(),
        preset_digest: spec.preset.digest(),
        params: spec.params.clone(),
        labels,
        requested_by: sig::fingerprint(key.public_key()),
        issued_at: clock::format(now),
        expires_at: clock::format(clock::plus_seconds(now, spec.expires_in_secs as f64)),
        workload: spec.workload.map(|c| crate::manifest::Workload {
            commit: c.to_string(),
        }),
        audience: spec.audience.clone(),
    }
    .seal())
}

/// Sign `manifest` and push it as a new request branch. The commit is built in the cache's
/// object database; the push creates the branch only if it does not exist.
pub fn submit(
    bus: &Bus,
    manifest: &Manifest,
    key: &(impl Signer + ?Sized),
) -> Result<Oid, SubmitError> {
    let bytes = manifest.to_bytes();
    let signature = key.sign(sig::REQUEST_NAMESPACE, &bytes)?;
    let workload = manifest
        .workload
        .as_ref()
        .and_then(|w| Oid::from_str(&w.commit).ok());
    let parents: Vec<Oid> = workload.into_iter().collect();
    let commit = write_commit(
        bus.repo(),
        &parents,
        workload,
        &[
            TreeChange::put(layout::REQUEST_JSON, bytes),
            TreeChange::put(layout::REQUEST_SIG, signature.into_bytes()),
        ],
        &format!(
            "macbridge request: {} ({})\n\nrequest_id: {}\n",
            manifest.preset, manifest.nonce, manifest.request_id
        ),
    )?;
    let branch = manifest.branch_ref();
    match bus.push(
        &[PushUpdate {
            src: commit,
            dst: branch.clone(),
        }],
        false,
    )? {
        PushOutcome::Accepted => Ok(commit),
        PushOutcome::Rejected { .. } => Err(SubmitError::BranchExists(branch)),
    }
}

/// Push a signed cancel record on top of the request branch's current tip, retrying when
/// the branch moves underneath (a result or another cancel may land first).
pub fn cancel(
    bus: &Bus,
    branch: &str,
    request_id: &str,
    key: &(impl Signer + ?Sized),
    reason: Option<String>,
) -> Result<CancelOutcome, SubmitError> {
    for _ in 0..8 {
        bus.fetch(&[branch.to_string()])?;
        let Some(request) = crate::view::read_request(bus, branch)? else {
            return Ok(CancelOutcome::NoSuchBranch);
        };
        if request.result.is_some() {
            return Ok(CancelOutcome::AlreadyFinished);
        }
        // Only a cancel the runner will honour counts; a forged one must not block ours.
        if request.has_valid_cancel() {
            return Ok(CancelOutcome::AlreadyRequested);
        }
        let record = CancelRecord {
            schema_version: 1,
            request_id: request_id.to_string(),
            requested_by: sig::fingerprint(key.public_key()),
            issued_at: clock::format(clock::now()),
            reason: reason.clone(),
        };
        let bytes = records::to_bytes(&record);
        let signature = key.sign(sig::CANCEL_NAMESPACE, &bytes)?;
        let commit = write_commit(
            bus.repo(),
            &[request.tip],
            Some(request.tip),
            &[
                TreeChange::put(layout::CANCEL_JSON, bytes),
                TreeChange::put(layout::CANCEL_SIG, signature.into_bytes()),
            ],
            &format!("macbridge cancel: {request_id}\n"),
        )?;
        let update = PushUpdate {
            src: commit,
            dst: branch.to_string(),
        };
        if bus.push(&[update], false)? == PushOutcome::Accepted {
            return Ok(CancelOutcome::Requested(commit));
        }
    }
    Err(SubmitError::Refused(format!(
        "{branch} kept moving; cancel not pushed after 8 attempts"
    )))
}

/// What became of a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Requested(Oid),
    AlreadyRequested,
    AlreadyFinished,
    NoSuchBranch,
}
