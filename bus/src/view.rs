//! Reading a request's story back from fetched commits: the manifest, any cancel, any
//! result, and its lease chain. Everything read here was written by someone else and is
//! treated as untrusted input: sizes are capped and parse failures are reported, not fatal.

use git2::Oid;
use serde::de::DeserializeOwned;

use crate::git::{Bus, GitError, read_blob};
use crate::layout::{self, MAX_RECORD_BYTES, MAX_SIG_BYTES};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest};
use crate::records::{CancelRecord, Lease, ResultRecord};

/// A record with the exact bytes it was parsed from and the signature next to it.
#[derive(Debug, Clone)]
pub struct Signed<T> {
    pub record: Result<T, String>,
    pub bytes: Vec<u8>,
    pub signature: Option<Vec<u8>>,
}

/// What a request branch holds right now (as of the last fetch).
#[derive(Debug, Clone)]
pub struct RequestOnBus {
    pub branch: String,
    pub tip: Oid,
    /// The commit that introduced the manifest now on the branch.
    pub request_commit: Oid,
    pub manifest_bytes: Option<Vec<u8>>,
    /// Size of a `request.json` too large to read (its bytes are then not loaded at all).
    pub manifest_too_large: Option<usize>,
    pub signature: Option<Vec<u8>>,
    /// The manifest parsed without any trust decision; `Err` says why it does not parse.
    pub manifest: Result<Manifest, String>,
    pub cancel: Option<Signed<CancelRecord>>,
    pub result: Option<Signed<ResultRecord>>,
}

impl RequestOnBus {
    pub fn request_id(&self) -> Option<&str> {
        self.manifest.as_ref().ok().map(|m| m.request_id.as_str())
    }

    /// A cancel counts only if the requester's own key signed it for this request; anything
    /// else on the branch (pushed by whoever can push) is ignored.
    pub fn has_valid_cancel(&self) -> bool {
        let (Some(cancel), Ok(manifest)) = (&self.cancel, &self.manifest) else {
            return false;
        };
        let (Ok(record), Some(signature)) = (&cancel.record, &cancel.signature) else {
            return false;
        };
        let Ok(armored) = std::str::from_utf8(signature) else {
            return false;
        };
        match crate::sig::verify(armored, crate::sig::CANCEL_NAMESPACE, &cancel.bytes) {
            Ok(key) => {
                crate::sig::fingerprint(&key) == manifest.requested_by
                    && record.request_id == manifest.request_id
            }
            Err(_) => false,
        }
    }
}

/// The tip of a claim ref.
#[derive(Debug, Clone)]
pub struct LeaseOnBus {
    pub tip: Oid,
    pub lease: Result<Lease, String>,
    pub signature: Option<Vec<u8>>,
    pub bytes: Vec<u8>,
    pub log_tail: Option<String>,
}

/// Read the request branch `branch` (full ref) from the cache; it must have been fetched.
pub fn read_request(bus: &Bus, branch: &str) -> Result<Option<RequestOnBus>, GitError> {
    let Some(tip) = bus.fetched(branch) else {
        return Ok(None);
    };
    let repo = bus.repo();
    let read = |commit: Oid, path: &str, limit: usize| -> Result<Option<Vec<u8>>, GitError> {
        match read_blob(repo, commit, path, limit) {
            Err(GitError::TooLarge { .. }) => Ok(Some(Vec::new())),
            other => other,
        }
    };
    let (manifest_bytes, manifest_too_large) =
        match read_blob(repo, tip, layout::REQUEST_JSON, MAX_MANIFEST_BYTES) {
            Ok(bytes) => (bytes, None),
            Err(GitError::TooLarge { size, .. }) => (None, Some(size)),
            Err(e) => return Err(e),
        };
    let signature = read(tip, layout::REQUEST_SIG, MAX_SIG_BYTES)?;
    let request_commit = find_request_commit(bus, tip)?;
    let manifest = match (&manifest_bytes, manifest_too_large) {
        (Some(bytes), _) => Manifest::parse(bytes).map_err(|e| e.to_string()),
        (None, Some(size)) => Err(too_large_message(size)),
        (None, None) => Err("no .mac-bridge/request.json on the branch".to_string()),
    };
    let cancel = read_signed(bus, tip, layout::CANCEL_JSON, layout::CANCEL_SIG)?;
    let result = read_signed(bus, tip, layout::RESULT_JSON, layout::RESULT_SIG)?;
    Ok(Some(RequestOnBus {
        branch: branch.to_string(),
        tip,
        request_commit,
        manifest_bytes,
        manifest_too_large,
        signature,
        manifest,
        cancel,
        result,
    }))
}

/// Why an oversized manifest is refused.
pub fn too_large_message(size: usize) -> String {
    format!(".mac-bridge/request.json is {size} bytes, over the {MAX_MANIFEST_BYTES} byte limit")
}

/// Read the claim ref of `request_id` from the cache; it must have been fetched.
pub fn read_lease(bus: &Bus, request_id: &str) -> Result<Option<LeaseOnBus>, GitError> {
    let Some(tip) = bus.fetched(&layout::claim_ref(request_id)) else {
        return Ok(None);
    };
    let repo = bus.repo();
    let bytes = read_blob(repo, tip, layout::LEASE_JSON, MAX_RECORD_BYTES)?.unwrap_or_default();
    let lease = serde_json::from_slice::<Lease>(&bytes).map_err(|e| e.to_string());
    let signature = read_blob(repo, tip, layout::LEASE_SIG, MAX_SIG_BYTES)?;
    let log_tail = read_blob(repo, tip, layout::LEASE_LOG_TAIL, MAX_RECORD_BYTES)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(Some(LeaseOnBus {
        tip,
        lease,
        signature,
        bytes,
        log_tail,
    }))
}

fn read_signed<T: DeserializeOwned>(
    bus: &Bus,
    commit: Oid,
    json_path: &str,
    sig_path: &str,
) -> Result<Option<Signed<T>>, GitError> {
    let bytes = match read_blob(bus.repo(), commit, json_path, MAX_RECORD_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(GitError::TooLarge { size, .. }) => {
            return Ok(Some(Signed {
                record: Err(format!("{json_path} is {size} bytes, too large to read")),
                bytes: Vec::new(),
                signature: None,
            }));
        }
        Err(e) => return Err(e),
    };
    let record = crate::json::parse_strict(&bytes, MAX_RECORD_BYTES)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::from_value::<T>(v).map_err(|e| e.to_string()));
    let signature = read_blob(bus.repo(), commit, sig_path, MAX_SIG_BYTES).unwrap_or(None);
    Ok(Some(Signed {
        record,
        bytes,
        signature,
    }))
}

/// Walk first parents from the tip while the manifest blob stays the same; the last such
/// commit introduced it. Cancel and result commits sit on top of it.
fn find_request_commit(bus: &Bus, tip: Oid) -> Result<Oid, GitError> {
    let repo = bus.repo();
    let blob_at = |commit: Oid| -> Option<Oid> {
        let tree = repo.find_commit(commit).ok()?.tree().ok()?;
        let entry = tree
            .get_path(std::path::Path::new(layout::REQUEST_JSON))
            .ok()?;
        Some(entry.id())
    };
    let target = blob_at(tip);
    let mut current = tip;
    // Bounded: a request branch holds the request, maybe a cancel, and a result.
    for _ in 0..64 {
        let commit = repo.find_commit(current)?;
        let Some(parent) = commit.parent_ids().next() else {
            break;
        };
        if target.is_none() || blob_at(parent) != target {
            break;
        }
        current = parent;
    }
    Ok(current)
}
