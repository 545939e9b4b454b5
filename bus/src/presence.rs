//! Runner presence: each runner keeps a signed record of its labels and when it was last seen
//! under `refs/mac-bridge/runners/<runner_id>`, so requesters can tell a request nobody can
//! serve from one that is merely waiting.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock;
use crate::git::{Bus, GitError, PushOutcome, PushUpdate, TreeChange, read_blob, write_commit};
use crate::layout::{self, MAX_RECORD_BYTES};
use crate::lease::{LeaseError, RunnerIdentity};
use crate::sig;

/// `runner.json` on a presence ref.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Presence {
    pub schema_version: u32,
    pub runner_id: String,
    pub fingerprint: String,
    pub labels: Vec<String>,
    pub version: String,
    pub started_at: String,
    pub seen_at: String,
    /// How often this runner refreshes the record; a record older than a few of these is stale.
    pub refresh_seconds: f64,
}

impl Presence {
    /// Seen recently enough to count as alive at `now`.
    pub fn is_fresh(&self, now: OffsetDateTime) -> bool {
        clock::parse(&self.seen_at)
            .is_some_and(|t| clock::seconds_between(t, now) <= 3.0 * self.refresh_seconds + 60.0)
    }
}

/// Publish (or refresh) this runner's presence record.
pub fn announce(
    bus: &Bus,
    identity: &RunnerIdentity,
    started_at: &str,
    refresh_seconds: f64,
) -> Result<(), LeaseError> {
    let reference = format!("{}{}", layout::RUNNER_PREFIX, identity.id);
    let record = Presence {
        schema_version: 1,
        runner_id: identity.id.clone(),
        fingerprint: identity.fingerprint(),
        labels: identity.labels.clone(),
        version: identity.version.clone(),
        started_at: started_at.to_string(),
        seen_at: clock::format(clock::now()),
        refresh_seconds,
    };
    let bytes = crate::records::to_bytes(&record);
    let signature = sig::sign(&identity.key, sig::PRESENCE_NAMESPACE, &bytes)?;
    // Two attempts: if another process moved the ref in between, build on its tip once more.
    for _ in 0..2 {
        let current = bus
            .ls_remote(&[reference.as_str()])?
            .into_iter()
            .find(|(name, _)| name == &reference)
            .map(|(_, oid)| oid);
        if let Some(oid) = current
            && bus.fetched(&reference) != Some(oid)
        {
            bus.fetch(std::slice::from_ref(&reference))?;
        }
        let parents: Vec<_> = current.into_iter().collect();
        let commit = write_commit(
            bus.repo(),
            &parents,
            current,
            &[
                TreeChange::put(layout::RUNNER_JSON, bytes.clone()),
                TreeChange::put(layout::RUNNER_SIG, signature.clone().into_bytes()),
            ],
            &format!("macbridge presence: {}\n", identity.id),
        )?;
        let update = PushUpdate {
            src: commit,
            dst: reference.clone(),
        };
        if bus.push(&[update], false)? == PushOutcome::Accepted {
            return Ok(());
        }
    }
    Ok(())
}

/// Every runner's presence record (as of the last fetch of `refs/mac-bridge/runners/*`).
/// Records that do not parse, or whose signature does not verify with the key they name,
/// are left out.
pub fn read_all(bus: &Bus, refs: &[(String, git2::Oid)]) -> Result<Vec<Presence>, GitError> {
    let mut found = Vec::new();
    for (name, _) in refs
        .iter()
        .filter(|(n, _)| n.starts_with(layout::RUNNER_PREFIX))
    {
        let Some(tip) = bus.fetched(name) else {
            continue;
        };
        let Some(bytes) = read_blob(bus.repo(), tip, layout::RUNNER_JSON, MAX_RECORD_BYTES)? else {
            continue;
        };
        let Some(signature) =
            read_blob(bus.repo(), tip, layout::RUNNER_SIG, layout::MAX_SIG_BYTES)?
        else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<Presence>(&bytes) else {
            continue;
        };
        let verified = std::str::from_utf8(&signature)
            .ok()
            .and_then(|s| sig::verify(s, sig::PRESENCE_NAMESPACE, &bytes).ok())
            .is_some_and(|key| sig::fingerprint(&key) == record.fingerprint);
        if verified {
            found.push(record);
        }
    }
    Ok(found)
}
