//! Running the real `kakeya` binary from integration tests, and reading what it wrote.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Run `kakeya ARGS`, whatever the outcome.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kakeya"))
        .args(args)
        .output()
        .expect("run kakeya")
}

/// Run `kakeya ARGS` and require success (stderr in the failure message).
pub fn kakeya(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "kakeya {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The evidence gate's violations for a report file, as `code: message` lines.
pub fn gate(path: &Path) -> Vec<String> {
    evidence_gate::check_report_file(path)
        .violations
        .into_iter()
        .map(|v| format!("{}: {}", v.code, v.message))
        .collect()
}

/// A JSON file.
pub fn read(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
}
