//! The `evidence-gate` binary itself: `kinds` lists what the library knows, and `check`
//! exits 1 on a report it cannot accept and 2 on a misuse of `--expect`.
//!
//! Having an integration test also makes `cargo test --workspace` build this binary, which
//! the end-to-end tests (tests/ crate) run.

use std::process::Command;

fn gate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_evidence-gate"))
        .args(args)
        .output()
        .expect("running evidence-gate")
}

#[test]
fn kinds_lists_every_known_kind() {
    let out = gate(&["kinds", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = listed["kinds"]
        .as_array()
        .expect("kinds array")
        .iter()
        .filter_map(|k| k["kind"].as_str())
        .collect();
    let known: Vec<String> = evidence_gate::known_kinds()
        .into_iter()
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(names, known);
    assert!(names.contains(&"env_probe"), "{names:?}");
}

#[test]
fn check_refuses_garbage_and_misused_expect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("r.json");
    std::fs::write(&report, b"{\"kind\": \"env-probe\"}").expect("write");
    let path = report.to_str().expect("utf-8 path");
    let out = gate(&["check", path, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(verdict["passed"], false);

    let out = gate(&["check", path, "--expect", "r.json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
