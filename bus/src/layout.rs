//! Where things live on the bus: ref names and file paths inside commits.
//!
//! ```text
//! refs/heads/mac-bridge/<preset>-<nonce>   request branch: request commit, then cancel and
//!                                          result commits fast-forwarded on top
//! refs/mac-bridge/claims/<request_id>      lease chain: the claim and each renewal, a commit
//!                                          each; its existence is the replay ledger
//! refs/mac-bridge/runners/<runner_id>      presence: labels and last-seen time of a runner
//! refs/mac-bridge/archive                  finished requests moved off the live refs
//! refs/mac-bridge/bus-id                   the bus's random id (a manifest's `audience`)
//! ```

/// Glob for every request branch.
pub const REQUEST_GLOB: &str = "refs/heads/mac-bridge/*";
/// Prefix of runner presence refs (`<prefix><runner_id>`).
pub const RUNNER_PREFIX: &str = "refs/mac-bridge/runners/";
/// Glob for every runner presence ref.
pub const RUNNER_GLOB: &str = "refs/mac-bridge/runners/*";
/// The bus's identity: a commit holding `bus.json` with a random id that manifests name as their
/// audience, so a request signed for one bus is refused on another.
pub const BUS_ID_REF: &str = "refs/mac-bridge/bus-id";
pub const BUS_JSON: &str = "bus.json";
/// The archive of finished requests: one commit chain, one folder per request.
pub const ARCHIVE_REF: &str = "refs/mac-bridge/archive";
pub const RUNNER_JSON: &str = "runner.json";
pub const RUNNER_SIG: &str = "runner.sig";

/// Prefix of claim (lease) refs.
pub const CLAIM_PREFIX: &str = "refs/mac-bridge/claims/";
/// Glob for every claim ref.
pub const CLAIM_GLOB: &str = "refs/mac-bridge/claims/*";

pub const REQUEST_JSON: &str = ".mac-bridge/request.json";
pub const REQUEST_SIG: &str = ".mac-bridge/request.sig";
pub const CANCEL_JSON: &str = ".mac-bridge/cancel.json";
pub const CANCEL_SIG: &str = ".mac-bridge/cancel.sig";
pub const RESULT_JSON: &str = ".mac-bridge/result.json";
pub const RESULT_SIG: &str = ".mac-bridge/result.sig";
pub const LOGS_DIR: &str = ".mac-bridge/logs";
pub const REPORTS_DIR: &str = "results";

pub const LEASE_JSON: &str = "lease.json";
pub const LEASE_SIG: &str = "lease.sig";
pub const LEASE_LOG_TAIL: &str = "log-tail.txt";

/// Largest signature file read.
pub const MAX_SIG_BYTES: usize = 16 * 1024;
/// Largest record (lease, cancel, result) read.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The claim ref of a request.
pub fn claim_ref(request_id: &str) -> String {
    format!("{CLAIM_PREFIX}{request_id}")
}

/// Accepts a branch given as `mac-bridge/x`, `heads/mac-bridge/x` or the full ref, and
/// returns the full ref name, or `None` if it is outside the request namespace.
pub fn normalize_branch(branch: &str) -> Option<String> {
    let full = if branch.starts_with("refs/") {
        branch.to_string()
    } else if let Some(rest) = branch.strip_prefix("heads/") {
        format!("refs/heads/{rest}")
    } else {
        format!("refs/heads/{branch}")
    };
    let name = full.strip_prefix("refs/heads/mac-bridge/")?;
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.')
        && !name.ends_with(".lock");
    ok.then_some(full)
}

/// `refs/heads/mac-bridge/x` → `mac-bridge/x`, the form people type.
pub fn short_branch(full: &str) -> &str {
    full.strip_prefix("refs/heads/").unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_normalise_and_stay_in_the_namespace() {
        assert_eq!(
            normalize_branch("mac-bridge/sleep-ab").as_deref(),
            Some("refs/heads/mac-bridge/sleep-ab")
        );
        assert_eq!(
            normalize_branch("refs/heads/mac-bridge/sleep-ab").as_deref(),
            Some("refs/heads/mac-bridge/sleep-ab")
        );
        assert!(normalize_branch("main").is_none());
        assert!(normalize_branch("mac-bridge/../x").is_none());
        assert!(normalize_branch("mac-bridge/a b").is_none());
        assert!(normalize_branch("refs/mac-bridge/claims/x").is_none());
    }
}
