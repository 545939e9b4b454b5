//! Pieces every client command shares: opening the bus, reading a request's status, and
//! checking a result's signature.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use macbridge_bus::git::Bus;
use macbridge_bus::sig::{self, AllowedSigners};
use macbridge_bus::status::{self, Status};
use macbridge_bus::view::{self, LeaseOnBus, RequestOnBus};
use macbridge_bus::{clock, layout};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Exit code for bad input (flags, params, files): nothing was pushed.
pub const EXIT_USAGE: u8 = 2;

/// An error that should exit with code 2 (bad input) rather than 1.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// A submit error as the CLI reports it: a key that cannot sign is bad input (exit 2, nothing
/// was pushed); git and push problems are failures (exit 1).
pub fn submit_error(e: macbridge_bus::submit::SubmitError) -> anyhow::Error {
    match e {
        macbridge_bus::submit::SubmitError::Sig(e) => usage(format!("cannot sign: {e}")),
        other => other.into(),
    }
}

/// A remote as git should see it: local paths made absolute so the cache key is stable.
pub fn normalize_remote(remote: &str) -> String {
    let path = Path::new(remote);
    if !remote.contains("://")
        && !remote.contains('@')
        && path.exists()
        && let Ok(abs) = std::fs::canonicalize(path)
    {
        return abs.display().to_string();
    }
    remote.to_string()
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("MACBRIDGE_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("macbridge");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("macbridge"),
        None => std::env::temp_dir().join("macbridge-cache"),
    }
}

/// Open the client's cache repository for `remote`.
pub fn open_bus(remote: &str) -> anyhow::Result<(Bus, ClientLock)> {
    let remote = normalize_remote(remote);
    let key = hex::encode(&Sha256::digest(remote.as_bytes())[..8]);
    let root = cache_root().join("repos");
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let lock_path = root.join(format!("{key}.lock"));
    let lock = File::create(&lock_path)
        .with_context(|| format!("creating lock {}", lock_path.display()))?;
    let lock = ClientLock(lock);
    // Two clients starting at once must not both create the cache repository.
    let bus = lock
        .with(|| Bus::open(&remote, &root.join(format!("{key}.git"))))
        .with_context(|| format!("opening the cache for {remote}"))?;
    Ok((bus, lock))
}

/// Serialises fetches into one cache between concurrent client processes.
pub struct ClientLock(File);

impl ClientLock {
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        let _ = self.0.lock();
        let out = f();
        let _ = self.0.unlock();
        out
    }
}

/// Fetch one request branch (and its lease) and read it.
pub fn fetch_request(
    bus: &Bus,
    lock: &ClientLock,
    branch: &str,
) -> anyhow::Result<(RequestOnBus, Option<LeaseOnBus>)> {
    let request = lock.with(|| -> anyhow::Result<Option<RequestOnBus>> {
        let found = bus.ls_remote(&[branch])?;
        if !found.iter().any(|(name, _)| name == branch) {
            return Ok(None);
        }
        bus.fetch(&[branch.to_string()])?;
        Ok(view::read_request(bus, branch)?)
    })?;
    let Some(request) = request else {
        bail!(
            "no request branch {} on {}",
            layout::short_branch(branch),
            bus.remote()
        );
    };
    let lease = match request.request_id() {
        Some(id) if request.result.is_none() => lock.with(|| -> anyhow::Result<_> {
            let claim = layout::claim_ref(id);
            if bus.ls_remote(&[claim.as_str()])?.is_empty() {
                return Ok(None);
            }
            bus.fetch(&[claim])?;
            Ok(view::read_lease(bus, id)?)
        })?,
        _ => None,
    };
    Ok((request, lease))
}

/// The status of one branch right now.
pub fn current_status(
    bus: &Bus,
    lock: &ClientLock,
    branch: &str,
) -> anyhow::Result<(Status, RequestOnBus)> {
    let (request, lease) = fetch_request(bus, lock, branch)?;
    Ok((
        status::status_of(&request, lease.as_ref(), clock::now()),
        request,
    ))
}

/// A full branch ref from what the user typed.
pub fn branch_arg(branch: &str) -> anyhow::Result<String> {
    layout::normalize_branch(branch).ok_or_else(|| {
        usage(format!(
            "{branch:?} is not a request branch (expected mac-bridge/<preset>-<nonce>)"
        ))
    })
}

/// The runner signers file to use: the one given, else `~/.config/macbridge/runner_signers`
/// (or under `$XDG_CONFIG_HOME`) when it exists.
pub fn runner_signers_path(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let default = config.join("macbridge").join("runner_signers");
    default.is_file().then_some(default)
}

/// What we could establish about a result's signature.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureCheck {
    /// The signature verifies over result.json with the key the result names.
    pub valid: bool,
    /// The signing key is listed in the runner signers file given.
    pub trusted: Option<bool>,
    pub signer: Option<String>,
    pub principals: Vec<String>,
    pub problem: Option<String>,
}

/// Check the runner's signature on the result of `request`, and whether it answers this
/// very request. `runner_signers` (allowed_signers format) decides trust.
pub fn check_result_signature(
    request: &RequestOnBus,
    runner_signers: Option<&Path>,
) -> SignatureCheck {
    let mut check = SignatureCheck {
        valid: false,
        trusted: None,
        signer: None,
        principals: Vec::new(),
        problem: None,
    };
    let Some(result) = &request.result else {
        check.problem = Some("no result yet".into());
        return check;
    };
    let Some(signature) = result.signature.as_deref() else {
        check.problem = Some("result.sig is missing".into());
        return check;
    };
    let key = match std::str::from_utf8(signature)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            sig::verify(s, sig::RESULT_NAMESPACE, &result.bytes).map_err(|e| e.to_string())
        }) {
        Ok(key) => key,
        Err(e) => {
            check.problem = Some(format!("signature does not verify: {e}"));
            return check;
        }
    };
    check.signer = Some(sig::fingerprint(&key));
    let record = match &result.record {
        Ok(r) => r,
        Err(e) => {
            check.problem = Some(format!("result.json does not parse: {e}"));
            return check;
        }
    };
    if record.runner.key != sig::public_key_line(&key) {
        check.problem = Some("result was signed by a key other than the runner it names".into());
        return check;
    }
    if record.request_commit != request.request_commit.to_string()
        || record.request_id.as_deref() != request.request_id()
        || record.branch != request.branch
    {
        check.problem =
            Some("result does not answer this request (commit, id or branch differ)".into());
        return check;
    }
    check.valid = true;
    let runner_signers = runner_signers_path(runner_signers);
    if runner_signers.is_none() {
        check.problem = Some(
            "no runner signers file: the signature is valid and answers this request, but who signed it was not checked (pass --runner-signers or create ~/.config/macbridge/runner_signers)"
                .into(),
        );
    }
    if let Some(path) = runner_signers.as_deref() {
        match AllowedSigners::from_file(path)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                s.authorize(&key, sig::RESULT_NAMESPACE, clock::now())
                    .map_err(|e| e.to_string())
            }) {
            Ok(principals) => {
                check.trusted = Some(true);
                check.principals = principals;
            }
            Err(e) => {
                check.trusted = Some(false);
                check.problem = Some(format!("runner key is not trusted: {e}"));
            }
        }
    }
    check
}

/// Print JSON to stdout.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
