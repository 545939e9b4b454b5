//! `macbridge doctor`: can this machine request jobs on this bus?

use std::path::Path;

use macbridge_bus::doctor::{self, Check};
use macbridge_bus::git::Bus;
use macbridge_bus::sig::{self, Signer, SigningPath};
use macbridge_bus::{clock, presence};
use serde::Serialize;

use crate::common;
use crate::key::{self, KeySource};

/// Namespace of doctor's trial signature: never accepted as anything else.
const DOCTOR_NAMESPACE: &str = "macbridge-doctor-v1";

/// Which key a request would be signed with, and how (`doctor --json` → `signing`).
#[derive(Debug, Serialize)]
pub struct Signing {
    pub source: KeySource,
    pub key_type: String,
    pub fingerprint: String,
    /// `file`, `ssh-agent` or `ssh-keygen`.
    pub path: &'static str,
    pub detail: String,
}

/// Print the report (`{"checks": [...], "signing": {...} | null}` with `--json`); true when
/// no check failed.
pub fn report(checks: &[Check], signing: Option<&Signing>, json: bool) -> anyhow::Result<bool> {
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"checks": checks, "signing": signing}))?
        );
        return Ok(checks.iter().all(|c| c.status != doctor::CheckStatus::Fail));
    }
    Ok(doctor::report(checks, false))
}

/// The key check: which key, from where, signing how; a trial signature when that needs no
/// person (a passphrase prompt or a security-key touch is not tried).
fn key_check(key: Option<&Path>) -> (Check, Option<Signing>) {
    let (source, resolved) = match key::resolve(key) {
        Ok(found) => found,
        Err(e) if key.is_some() => {
            let hint = "pass an unencrypted key, or load the key into ssh-agent (`ssh-add FILE`) and pass it or its .pub";
            return (Check::fail("key", e, hint), None);
        }
        // Nothing named a key: a warning, since doctor also serves people who only watch.
        Err(e) => {
            let hint = "make one with `macbridge keygen --out ~/.ssh/macbridge` and pass --key, or configure git's SSH signing (gpg.format=ssh, user.signingkey); then ask the runner's operator to add its line to allowed_signers";
            return (Check::warn("key", e, hint), None);
        }
    };
    let public = resolved.public_key().clone();
    let signing = Signing {
        key_type: sig::key_type(public.key_data()),
        fingerprint: sig::fingerprint(&public),
        path: resolved.signing_path().as_str(),
        detail: resolved.describe(),
        source,
    };
    let detail = format!("{}: {}", signing.source, signing.detail);
    if resolved.signing_path() == SigningPath::SshKeygen {
        return (
            Check::warn(
                "key",
                detail,
                "signing will need you (a passphrase or a touch); load the key into ssh-agent for unattended use",
            ),
            Some(signing),
        );
    }
    let check = match resolved.sign(DOCTOR_NAMESPACE, b"macbridge doctor") {
        Ok(_) => Check::ok("key", format!("{detail}; a trial signature verified")),
        Err(e) => Check::fail(
            "key",
            format!("{detail}; a trial signature failed: {e}"),
            "check the agent holds the key (`ssh-add -l`) and lets it sign",
        ),
    };
    (check, Some(signing))
}

pub fn checks(
    bus: &Bus,
    key: Option<&Path>,
    runner_signers: Option<&Path>,
) -> (Vec<Check>, Option<Signing>) {
    let mut checks = Vec::new();
    let (reach, refs) = doctor::reachability(bus);
    checks.push(reach);
    if let Some(refs) = &refs {
        checks.push(doctor::compare_and_swap(bus, "client"));
        checks.push(doctor::clock_skew(bus, refs));
        checks.push(runners_seen(bus, refs));
    }
    let (key_check, signing) = key_check(key);
    checks.push(key_check);
    match common::runner_signers_path(runner_signers) {
        Some(path) => checks.push(doctor::allowed_signers(&path, "runner_signers", None)),
        None => checks.push(Check::warn(
            "runner_signers",
            "no runner signers file: results' signatures are checked but not who signed them",
            "get each runner's line (`macbridge-runner doctor` prints it) into ~/.config/macbridge/runner_signers or pass --runner-signers",
        )),
    }
    match macbridge_presets::catalog() {
        Ok(c) => checks.push(Check::ok(
            "presets",
            format!("{} presets allowlisted", c.names().len()),
        )),
        Err(e) => checks.push(Check::fail("presets", e.to_string(), "reinstall macbridge")),
    }
    (checks, signing)
}

fn runners_seen(bus: &Bus, refs: &[(String, git2::Oid)]) -> Check {
    const NAME: &str = "runners";
    let names: Vec<String> = refs
        .iter()
        .filter(|(n, _)| n.starts_with(macbridge_bus::layout::RUNNER_PREFIX))
        .map(|(n, _)| n.clone())
        .collect();
    if let Err(e) = bus.fetch(&names) {
        return Check::warn(NAME, format!("cannot fetch runner records: {e}"), "");
    }
    let runners = presence::read_all(bus, refs).unwrap_or_default();
    let now = clock::now();
    let live: Vec<String> = runners
        .iter()
        .filter(|r| r.is_fresh(now))
        .map(|r| format!("{} {:?}", r.runner_id, r.labels))
        .collect();
    if live.is_empty() {
        Check::warn(
            NAME,
            format!("no runner seen recently ({} known)", runners.len()),
            "requests will wait until a runner serves this bus (`macbridge-runner serve`)",
        )
    } else {
        Check::ok(NAME, format!("live: {}", live.join(", ")))
    }
}
