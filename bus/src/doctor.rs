//! Health checks shared by `macbridge doctor` and `macbridge-runner doctor`. Each check says
//! ok, warn or fail, and how to fix what it found.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::clock;
use crate::git::{Bus, PushOutcome, PushUpdate, TreeChange, write_commit};
use crate::layout;
use crate::sig::{self, AllowedSigners};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

/// One line of a doctor report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when ok).
    pub hint: String,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Self {
        Check {
            name: name.to_string(),
            status: CheckStatus::Ok,
            detail: detail.into(),
            hint: String::new(),
        }
    }
    pub fn warn(name: &str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Check {
            name: name.to_string(),
            status: CheckStatus::Warn,
            detail: detail.into(),
            hint: hint.into(),
        }
    }
    pub fn fail(name: &str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Check {
            name: name.to_string(),
            status: CheckStatus::Fail,
            detail: detail.into(),
            hint: hint.into(),
        }
    }
}

/// The remote answers `ls-remote`; returns the listing for later checks.
pub fn reachability(bus: &Bus) -> (Check, Option<Vec<(String, git2::Oid)>>) {
    match bus.ls_remote(&[
        layout::REQUEST_GLOB,
        layout::CLAIM_GLOB,
        layout::RUNNER_GLOB,
    ]) {
        Ok(refs) => (
            Check::ok(
                "git_reachable",
                format!("{} answers; {} bus refs", bus.remote(), refs.len()),
            ),
            Some(refs),
        ),
        Err(e) => (
            Check::fail(
                "git_reachable",
                format!("cannot list {}: {e}", bus.remote()),
                "check the URL, network and credentials: `git ls-remote <remote>` must work for this user (ssh-agent, ~/.ssh/config or a credential helper)",
            ),
            None,
        ),
    }
}

/// Create a scratch ref, see a second create of it rejected (the compare-and-swap every claim
/// relies on), then delete it.
pub fn compare_and_swap(bus: &Bus, who: &str) -> Check {
    const NAME: &str = "compare_and_swap";
    let nonce = crate::manifest::new_nonce().unwrap_or_else(|_| "0".repeat(32));
    let scratch = format!("refs/mac-bridge/doctor/{who}-{nonce}");
    let make = |note: &str| {
        write_commit(
            bus.repo(),
            &[],
            None,
            &[TreeChange::put("doctor.txt", note.as_bytes().to_vec())],
            "macbridge doctor probe\n",
        )
    };
    let (Ok(first), Ok(second)) = (make("first"), make("second")) else {
        return Check::fail(
            NAME,
            "cannot write probe commits in the cache",
            "check the cache folder is writable",
        );
    };
    let push = |oid| {
        bus.push(
            &[PushUpdate {
                src: oid,
                dst: scratch.clone(),
            }],
            false,
        )
    };
    let created = push(first);
    let raced = push(second);
    let cleaned = bus.push_and_delete(&[], &[(scratch.clone(), first)]);
    let deleted = match cleaned {
        Ok(PushOutcome::Accepted) => Ok(()),
        Ok(PushOutcome::Rejected { reasons }) => Err(format!("{reasons:?}")),
        Err(e) => Err(e.to_string()),
    };
    match (created, raced) {
        (Err(e), _) | (_, Err(e)) => Check::fail(
            NAME,
            format!("cannot push to {}: {e}", bus.remote()),
            "this user needs push rights on refs/heads/mac-bridge/* and refs/mac-bridge/*",
        ),
        (Ok(PushOutcome::Rejected { reasons }), _) => Check::fail(
            NAME,
            format!("creating a scratch ref was refused: {reasons:?}"),
            "this user needs push rights on refs/mac-bridge/*",
        ),
        (Ok(PushOutcome::Accepted), Ok(PushOutcome::Accepted)) => Check::fail(
            NAME,
            "a second create of the same ref was accepted: the remote allows forced or non-fast-forward updates",
            "set receive.denyNonFastForwards=true on the bus (or a rule forbidding force pushes); claims are not exclusive without it",
        ),
        (Ok(PushOutcome::Accepted), Ok(PushOutcome::Rejected { .. })) => match deleted {
            Ok(()) => Check::ok(
                NAME,
                "create-only push won once, lost once; scratch ref deleted",
            ),
            Err(why) => Check::warn(
                NAME,
                format!(
                    "compare-and-swap works, but the scratch ref {scratch} could not be deleted: {why}"
                ),
                "allow deletions under refs/mac-bridge/ (clean-up needs them)",
            ),
        },
    }
}

/// Compare this machine's clock with the newest commit other writers put on the bus.
pub fn clock_skew(bus: &Bus, refs: &[(String, git2::Oid)]) -> Check {
    const NAME: &str = "clock_skew";
    let names: Vec<String> = refs.iter().map(|(n, _)| n.clone()).collect();
    if names.is_empty() {
        return Check::ok(NAME, "no commits on the bus to compare with yet");
    }
    if let Err(e) = bus.fetch(&names) {
        return Check::warn(
            NAME,
            format!("cannot fetch bus refs: {e}"),
            "see git_reachable",
        );
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let newest = refs
        .iter()
        .filter_map(|(n, _)| bus.fetched(n))
        .filter_map(|oid| bus.repo().find_commit(oid).ok())
        .map(|c| c.time().seconds())
        .max();
    match newest {
        Some(t) if t > now + 120 => Check::warn(
            NAME,
            format!(
                "a commit on the bus is dated {} s in this machine's future",
                t - now
            ),
            "this clock (or another writer's) is off: enable NTP (macOS: System Settings > Date & Time; Linux: timedatectl set-ntp true); leases and expiry use wall-clock time",
        ),
        Some(t) => Check::ok(
            NAME,
            format!(
                "newest bus commit is {} s old; none is in the future",
                now - t
            ),
        ),
        None => Check::ok(NAME, "no readable commits on the bus"),
    }
}

/// A private key file loads (an unencrypted key of a supported type); says its fingerprint.
pub fn key_readable(path: &Path) -> (Check, Option<ssh_key::PublicKey>) {
    match sig::load_private_key(path) {
        Ok(key) => {
            let public = key.public_key().clone();
            (
                Check::ok(
                    "key",
                    format!("{} loads: {}", path.display(), sig::fingerprint(&public)),
                ),
                Some(public),
            )
        }
        Err(e) => (
            Check::fail(
                "key",
                format!("{}: {e}", path.display()),
                "make one with `macbridge keygen --out PATH` (unencrypted OpenSSH key, mode 0600)",
            ),
            None,
        ),
    }
}

/// An allowed_signers file parses; optionally `key` is in it for `namespace`, and no entry
/// expires within a week.
pub fn allowed_signers(
    path: &Path,
    name: &str,
    key_and_namespace: Option<(&ssh_key::PublicKey, &str)>,
) -> Check {
    let signers = match AllowedSigners::from_file(path) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                name,
                e.to_string(),
                "fix the line named: `principal [namespaces=\"...\"] ssh-ed25519 AAAA...`",
            );
        }
    };
    if signers.entries().is_empty() {
        return Check::fail(
            name,
            format!("{} lists no keys", path.display()),
            "add at least one signer line",
        );
    }
    let now = clock::now();
    if let Some((key, namespace)) = key_and_namespace
        && let Err(e) = signers.authorize(key, namespace, now)
    {
        return Check::fail(
            name,
            format!("{}: {e}", path.display()),
            format!(
                "add this key to {} with namespaces=\"{namespace}\"",
                path.display()
            ),
        );
    }
    let soon = clock::plus_seconds(now, 7.0 * 86400.0);
    let expiring: Vec<String> = signers
        .entries()
        .iter()
        .filter(|e| e.valid_before.is_some_and(|t| t < soon))
        .map(|e| format!("{} (line {})", e.principals.join(","), e.line))
        .collect();
    if expiring.is_empty() {
        Check::ok(
            name,
            format!(
                "{}: {} signer(s): {}",
                path.display(),
                signers.entries().len(),
                signers.principals().join(", ")
            ),
        )
    } else {
        Check::warn(
            name,
            format!(
                "entries expired or expiring within 7 days: {}",
                expiring.join("; ")
            ),
            "renew them: extend valid-before= or replace the keys",
        )
    }
}

/// Free space where `path` lives.
pub fn free_disk(path: &Path) -> Check {
    const NAME: &str = "free_disk";
    let probe = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let Ok(c_path) = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()) else {
        return Check::warn(NAME, "path is not representable", "");
    };
    // SAFETY: statvfs writes into the zeroed struct we pass and reads a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Check::warn(NAME, format!("cannot stat {}", probe.display()), "");
    }
    let free = stat.f_bavail as u64 * stat.f_frsize as u64;
    let gib = free as f64 / (1u64 << 30) as f64;
    let detail = format!("{gib:.1} GiB free at {}", probe.display());
    if gib < 1.0 {
        Check::fail(
            NAME,
            detail,
            "free space: jobs, models and the git cache need room",
        )
    } else if gib < 10.0 {
        Check::warn(
            NAME,
            detail,
            "less than 10 GiB free; model runs may fill the disk",
        )
    } else {
        Check::ok(NAME, detail)
    }
}

/// Print checks as a table, or JSON `{"checks": [...]}`; returns whether none failed.
pub fn report(checks: &[Check], json: bool) -> bool {
    if json {
        println!("{}", serde_json::json!({ "checks": checks }));
    } else {
        for c in checks {
            let mark = match c.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            println!("[{mark}] {:<18} {}", c.name, c.detail);
            if !c.hint.is_empty() {
                println!("       {:<18} fix: {}", "", c.hint);
            }
        }
        let worst = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(CheckStatus::Ok);
        println!(
            "{}",
            match worst {
                CheckStatus::Ok => "READY",
                CheckStatus::Warn => "READY (with warnings)",
                CheckStatus::Fail => "NOT READY",
            }
        );
    }
    checks.iter().all(|c| c.status != CheckStatus::Fail)
}
