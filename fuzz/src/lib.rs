//! Fuzz target bodies: one function per parser that sees bytes from outside the runner.
//! `fuzz_targets/*.rs` hand them to libFuzzer (`cargo +nightly fuzz run NAME`); the stable
//! test `tests/replay.rs` runs the same functions over the seed corpora and random mutations
//! of them, so every target runs in CI even without a nightly toolchain.
//!
//! A target never panics on any input; where a parser accepts, the target checks the
//! invariants that make acceptance safe (round trips, canonical forms) and panics when one
//! breaks, so libFuzzer reports it as a crash.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use macbridge_bus::json;
use macbridge_bus::manifest::Manifest;
use macbridge_bus::records::{CancelRecord, Lease, ResultRecord};
use macbridge_bus::sig::{self, AllowedSigners, Policy};
use serde_json::Value;

mod runner;
mod serve;

pub use serve::serve_request;

// The runner is a binary crate: its config (and the sandbox settings the config embeds) are
// compiled in from its sources, at the crate root where `crate::sandbox` resolves.
#[allow(dead_code)]
#[path = "../../runner/src/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../../runner/src/sandbox.rs"]
mod sandbox;

/// Names of every target, in the order `.ci/run` and the replay test use.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("json_strict", json_strict),
    ("manifest", manifest),
    ("sshsig", sshsig),
    ("allowed_signers", allowed_signers),
    ("policy", policy),
    ("preset_params", preset_params),
    ("records", records),
    ("runner_config", runner_config),
    ("model_config", model_config),
    ("safetensors", safetensors),
    ("evidence_report", evidence_report),
    ("serve_request", serve_request),
];

const LIMIT: usize = 1 << 20;

/// `bus::json` strict parse; accepted documents have a canonical form that is a fixed point.
pub fn json_strict(data: &[u8]) {
    let Ok(value) = json::parse_strict(data, LIMIT) else {
        return;
    };
    let canon = json::canonical(&value);
    let again = json::parse_strict(&canon, usize::MAX).expect("canonical bytes re-parse");
    assert_eq!(again, value, "canonical form changed the value");
    assert_eq!(
        json::canonical(&again),
        canon,
        "canonical form is not stable"
    );
}

/// A request manifest as a runner reads it from a branch.
pub fn manifest(data: &[u8]) {
    let Ok(m) = Manifest::parse(data) else {
        return;
    };
    let _ = m.compute_request_id();
    let _ = m.branch_ref();
    let _ = m.issued();
    let _ = m.expires();
    let _ = m.check_times(time::OffsetDateTime::UNIX_EPOCH);
    let bytes = m.to_bytes();
    let back = Manifest::parse(&bytes).expect("a parsed manifest's own bytes parse");
    assert_eq!(back, m, "manifest round trip changed it");
}

/// An SSHSIG armor (request.sig, result.sig, ...) checked against a message.
pub fn sshsig(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sig::verify(text, sig::REQUEST_NAMESPACE, b"message");
    // The armor is also tried against itself as message: both inputs are attacker bytes.
    let _ = sig::verify(text, sig::RESULT_NAMESPACE, data);
}

/// An `allowed_signers` file, then an authorization against every key it lists.
pub fn allowed_signers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(signers) = AllowedSigners::parse(text) else {
        return;
    };
    let _ = signers.principals();
    for entry in signers.entries() {
        let _ = signers.authorize(
            &entry.key,
            sig::REQUEST_NAMESPACE,
            time::OffsetDateTime::UNIX_EPOCH,
        );
        let _ = sig::fingerprint(&entry.key);
    }
}

/// The runner's policy file.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_yaml(text) else {
        return;
    };
    let principals = ["alice".to_string(), "*".to_string(), String::new()];
    for preset in ["sleep", "cargo-test", ""] {
        for key_type in ["ssh-ed25519", "ssh-rsa", "sk-ssh-ed25519@openssh.com", ""] {
            let _ = policy.allows(&principals, preset, preset == "cargo-test", key_type);
        }
    }
}

/// Manifest `params` (a JSON object) validated against every built-in preset.
pub fn preset_params(data: &[u8]) {
    let Ok(Value::Object(map)) = json::parse_strict(data, LIMIT) else {
        return;
    };
    let raw: BTreeMap<String, Value> = map.into_iter().collect();
    let Ok(catalog) = macbridge_presets::catalog() else {
        return;
    };
    for preset in catalog.iter() {
        if let Ok(valid) = preset.validate_params(&raw) {
            let _ = valid.to_strings();
            let again: BTreeMap<String, Value> = match valid.to_json() {
                Value::Object(m) => m.into_iter().collect(),
                other => panic!("validated params are not an object: {other}"),
            };
            // Validated values are canonical: validating them again is the identity.
            let twice = preset
                .validate_params(&again)
                .expect("validated params validate again");
            assert_eq!(twice.to_json(), valid.to_json());
        }
    }
}

/// `lease.json`, `result.json` and `cancel.json` as a client or another runner reads them.
pub fn records(data: &[u8]) {
    let Ok(value) = json::parse_strict(data, LIMIT) else {
        return;
    };
    if let Ok(lease) = serde_json::from_value::<Lease>(value.clone()) {
        let back: Lease = serde_json::from_slice(&macbridge_bus::records::to_bytes(&lease))
            .expect("lease re-parses");
        assert_eq!(back, lease);
    }
    if let Ok(result) = serde_json::from_value::<ResultRecord>(value.clone()) {
        let back: ResultRecord = serde_json::from_slice(&macbridge_bus::records::to_bytes(&result))
            .expect("result re-parses");
        assert_eq!(back, result);
    }
    if let Ok(cancel) = serde_json::from_value::<CancelRecord>(value) {
        let _ = macbridge_bus::records::to_bytes(&cancel);
    }
}

/// The runner's YAML config, loaded the way `macbridge-runner` loads it.
pub fn runner_config(data: &[u8]) {
    runner::load(data);
}

/// A model directory's `config.json`.
pub fn model_config(data: &[u8]) {
    if let Ok(cfg) = kakeya_engine::model::ModelConfig::from_json(data) {
        let _ = cfg.param_count();
    }
}

/// A safetensors file (header and data) as the engine's loader (candle) reads it, and a
/// `model.safetensors.index.json` naming shards.
pub fn safetensors(data: &[u8]) {
    let _ = candle_core::safetensors::load_buffer(data, &candle_core::Device::Cpu);
    let dir = scratch_dir();
    let index = dir.join("model.safetensors.index.json");
    if std::fs::write(&index, data).is_ok() {
        if let Ok(files) = kakeya_engine::model::load::weight_files(dir) {
            for f in files {
                assert!(
                    f.starts_with(dir),
                    "index pointed outside the model dir: {f:?}"
                );
            }
        }
    }
}

/// A job's report JSON judged by the evidence gate.
pub fn evidence_report(data: &[u8]) {
    let verdict = evidence_gate::check_report_bytes("report.json", data);
    let _ = serde_json::to_vec(&verdict);
}

/// A per-process scratch folder for targets that must go through files.
fn scratch_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("scratch dir"))
        .path()
}
