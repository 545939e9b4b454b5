//! Moving finished requests off the live refs. Every push lists every ref of the remote, so
//! thousands of finished branches slow everyone down; after a retention period a runner folds
//! them into one archive commit chain (`refs/mac-bridge/archive`, a folder per request with its
//! request and signed result) and deletes their branches, in one atomic push.

use git2::Oid;

use crate::git::{Bus, GitError, PushOutcome, PushUpdate, TreeChange, read_blob, write_commit};
use crate::layout::{self, MAX_RECORD_BYTES, MAX_SIG_BYTES};

/// A finished request ready to be archived.
#[derive(Debug, Clone)]
pub struct Finished {
    pub branch: String,
    pub tip: Oid,
    /// Folder name in the archive: the request id, or a digest of the branch name when the
    /// manifest was too broken to have one.
    pub key: String,
    /// The claim ref to delete with the branch (only once the manifest has expired, so the
    /// claim is no longer needed as a replay ledger).
    pub claim: Option<(String, Oid)>,
}

/// Archive `finished` and delete their branches (and the given stale claim refs) atomically.
/// `Rejected` means another runner changed something first; try again on a later pass.
pub fn archive_and_prune(
    bus: &Bus,
    finished: &[Finished],
    stale_claims: &[(String, Oid)],
) -> Result<PushOutcome, GitError> {
    if finished.is_empty() && stale_claims.is_empty() {
        return Ok(PushOutcome::Accepted);
    }
    let mut deletions: Vec<(String, Oid)> = stale_claims.to_vec();
    let mut updates = Vec::new();
    if !finished.is_empty() {
        let current = bus
            .ls_remote(&[layout::ARCHIVE_REF])?
            .into_iter()
            .find(|(name, _)| name == layout::ARCHIVE_REF)
            .map(|(_, oid)| oid);
        if let Some(oid) = current
            && bus.fetched(layout::ARCHIVE_REF) != Some(oid)
        {
            bus.fetch(&[layout::ARCHIVE_REF.to_string()])?;
        }
        let mut changes = Vec::new();
        for f in finished {
            let folder = format!("{}/{}", &f.key[..2.min(f.key.len())], f.key);
            for (path, limit, name) in [
                (layout::REQUEST_JSON, MAX_RECORD_BYTES, "request.json"),
                (layout::REQUEST_SIG, MAX_SIG_BYTES, "request.sig"),
                (layout::CANCEL_JSON, MAX_RECORD_BYTES, "cancel.json"),
                (layout::RESULT_JSON, MAX_RECORD_BYTES, "result.json"),
                (layout::RESULT_SIG, MAX_SIG_BYTES, "result.sig"),
            ] {
                if let Ok(Some(bytes)) = read_blob(bus.repo(), f.tip, path, limit) {
                    changes.push(TreeChange::put(format!("{folder}/{name}"), bytes));
                }
            }
            changes.push(TreeChange::put(
                format!("{folder}/branch.txt"),
                format!("{}\n{}\n", f.branch, f.tip).into_bytes(),
            ));
            deletions.push((f.branch.clone(), f.tip));
            if let Some(claim) = &f.claim {
                deletions.push(claim.clone());
            }
        }
        let parents: Vec<Oid> = current.into_iter().collect();
        let commit = write_commit(
            bus.repo(),
            &parents,
            current,
            &changes,
            &format!(
                "macbridge archive: {} finished request(s)\n",
                finished.len()
            ),
        )?;
        updates.push(PushUpdate {
            src: commit,
            dst: layout::ARCHIVE_REF.to_string(),
        });
    }
    bus.push_and_delete(&updates, &deletions)
}
