//! The runner's side of the protocol: claim a request, renew the lease, give it back, and
//! publish the result — each a compare-and-swap on refs, so exactly one runner wins.

use git2::Oid;
use ssh_key::PrivateKey;

use crate::clock;
use crate::git::{Bus, GitError, PushOutcome, PushUpdate, TreeChange, write_commit};
use crate::layout;
use crate::records::{self, Lease, LeaseState, ResultRecord};
use crate::sig::{self, SigError};
use crate::view::LeaseOnBus;

/// Errors from lease operations (transport or signing; losing a race is not an error).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Sig(#[from] SigError),
}

/// Who is acting, and with which key.
pub struct RunnerIdentity {
    pub id: String,
    pub key: PrivateKey,
    pub labels: Vec<String>,
    pub version: String,
}

impl RunnerIdentity {
    pub fn fingerprint(&self) -> String {
        sig::fingerprint(self.key.public_key())
    }
}

/// A lease this runner holds: the claim ref's tip as this runner last wrote it.
#[derive(Debug, Clone)]
pub struct LeaseHandle {
    pub claim_ref: String,
    pub tip: Oid,
    pub lease: Lease,
}

/// Whether a claim or renewal went through.
#[derive(Debug)]
pub enum LeaseOutcome {
    Held(Box<LeaseHandle>),
    /// Another runner holds it (or it moved): this runner must not act on the request.
    Lost,
}

/// What became of a result push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published(Oid),
    /// The request branch moved (a cancel arrived, or another result landed): re-read it.
    BranchMoved,
    /// Our lease is no longer the tip: publish nothing.
    LeaseLost,
}

/// Claim `request_id` on `branch`. With `previous`, this is a re-claim of an expired or
/// released lease and succeeds only if that tip is still current.
pub fn claim(
    bus: &Bus,
    identity: &RunnerIdentity,
    request_id: &str,
    branch: &str,
    request_commit: Oid,
    previous: Option<&LeaseOnBus>,
    lease_secs: f64,
) -> Result<LeaseOutcome, LeaseError> {
    let now = clock::now();
    let (attempt, epoch, parent) =
        match previous.and_then(|p| p.lease.as_ref().ok().map(|l| (p, l))) {
            Some((on_bus, old)) => (old.attempt + 1, old.epoch + 1, Some(on_bus.tip)),
            None => (1, 1, None),
        };
    let lease = Lease {
        schema_version: 1,
        request_id: request_id.to_string(),
        branch: branch.to_string(),
        request_commit: request_commit.to_string(),
        runner_id: identity.id.clone(),
        runner_key: identity.fingerprint(),
        attempt,
        epoch,
        state: LeaseState::Claimed,
        claimed_at: clock::format(now),
        renewed_at: clock::format(now),
        expires_at: clock::format(clock::plus_seconds(now, lease_secs)),
        note: None,
        ended: None,
    };
    write_lease(bus, identity, parent, lease, None)
}

/// Renew (or change the state of) a held lease. `Lost` means someone else moved the claim
/// ref: the caller must stop the job and publish nothing.
pub fn renew(
    bus: &Bus,
    identity: &RunnerIdentity,
    handle: &LeaseHandle,
    state: LeaseState,
    lease_secs: f64,
    log_tail: Option<&str>,
    note: Option<String>,
) -> Result<LeaseOutcome, LeaseError> {
    let now = clock::now();
    let mut lease = handle.lease.clone();
    lease.epoch += 1;
    lease.state = state;
    lease.renewed_at = clock::format(now);
    lease.expires_at = clock::format(clock::plus_seconds(now, lease_secs));
    lease.note = note;
    write_lease(bus, identity, Some(handle.tip), lease, log_tail)
}

fn lease_commit(
    bus: &Bus,
    identity: &RunnerIdentity,
    parent: Option<Oid>,
    lease: &Lease,
    log_tail: Option<&str>,
) -> Result<Oid, LeaseError> {
    let bytes = records::to_bytes(lease);
    let signature = sig::sign(&identity.key, sig::CLAIM_NAMESPACE, &bytes)?;
    let mut changes = vec![
        TreeChange::put(layout::LEASE_JSON, bytes),
        TreeChange::put(layout::LEASE_SIG, signature.into_bytes()),
    ];
    if let Some(tail) = log_tail {
        changes.push(TreeChange::put(
            layout::LEASE_LOG_TAIL,
            tail.as_bytes().to_vec(),
        ));
    }
    let parents: Vec<Oid> = parent.into_iter().collect();
    Ok(write_commit(
        bus.repo(),
        &parents,
        parent,
        &changes,
        &format!(
            "macbridge lease: {} epoch {} ({:?}) by {}\n",
            lease.request_id, lease.epoch, lease.state, lease.runner_id
        ),
    )?)
}

fn write_lease(
    bus: &Bus,
    identity: &RunnerIdentity,
    parent: Option<Oid>,
    lease: Lease,
    log_tail: Option<&str>,
) -> Result<LeaseOutcome, LeaseError> {
    let commit = lease_commit(bus, identity, parent, &lease, log_tail)?;
    let claim_ref = layout::claim_ref(&lease.request_id);
    let update = PushUpdate {
        src: commit,
        dst: claim_ref.clone(),
    };
    Ok(match bus.push(&[update], false)? {
        PushOutcome::Accepted => LeaseOutcome::Held(Box::new(LeaseHandle {
            claim_ref,
            tip: commit,
            lease,
        })),
        PushOutcome::Rejected { .. } => LeaseOutcome::Lost,
    })
}

/// Publish `record` (with its files) on top of the branch tip `branch_tip`. With a lease,
/// the lease moves to `done` in the same atomic push, so a runner that lost its lease can
/// never publish.
pub fn publish(
    bus: &Bus,
    identity: &RunnerIdentity,
    branch: &str,
    branch_tip: Oid,
    lease: Option<&LeaseHandle>,
    record: &ResultRecord,
    files: Vec<TreeChange>,
) -> Result<PublishOutcome, LeaseError> {
    let bytes = records::to_bytes(record);
    let signature = sig::sign(&identity.key, sig::RESULT_NAMESPACE, &bytes)?;
    let mut changes = files;
    changes.push(TreeChange::put(layout::RESULT_JSON, bytes));
    changes.push(TreeChange::put(layout::RESULT_SIG, signature.into_bytes()));
    let result_commit = write_commit(
        bus.repo(),
        &[branch_tip],
        Some(branch_tip),
        &changes,
        &format!(
            "macbridge result: {} ({})\n\nrunner: {}\n",
            record.state.as_str(),
            record.request_id.as_deref().unwrap_or("no request id"),
            identity.id
        ),
    )?;
    let mut updates = vec![PushUpdate {
        src: result_commit,
        dst: branch.to_string(),
    }];
    if let Some(handle) = lease {
        let mut done = handle.lease.clone();
        done.epoch += 1;
        done.state = LeaseState::Done;
        done.renewed_at = clock::format(clock::now());
        done.note = Some(format!("result {}", record.state.as_str()));
        let commit = lease_commit(bus, identity, Some(handle.tip), &done, None)?;
        updates.push(PushUpdate {
            src: commit,
            dst: handle.claim_ref.clone(),
        });
    }
    match bus.push(&updates, true)? {
        PushOutcome::Accepted => Ok(PublishOutcome::Published(result_commit)),
        PushOutcome::Rejected { .. } => {
            // Find out which ref moved: the lease decides whether we may try again.
            if let Some(handle) = lease {
                let current = bus
                    .ls_remote(&[handle.claim_ref.as_str()])?
                    .into_iter()
                    .find(|(name, _)| name == &handle.claim_ref)
                    .map(|(_, oid)| oid);
                if current != Some(handle.tip) {
                    return Ok(PublishOutcome::LeaseLost);
                }
            }
            Ok(PublishOutcome::BranchMoved)
        }
    }
}
