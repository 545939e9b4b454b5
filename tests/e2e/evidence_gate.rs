//! `evidence-gate check`: a real report from `kakeya env-probe` passes; tampered, mock and
//! garbage reports fail with the right violation code; `--json` has the documented shape.

use std::path::{Path, PathBuf};
use std::process::Command;

use macbridge_e2e::{Finished, bins, proc};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::CMD_LIMIT;

/// A folder holding a fresh, real env-probe report.
struct Reports {
    dir: TempDir,
    real: Value,
}

impl Reports {
    fn new() -> Reports {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env_probe.json");
        proc::run(
            Command::new(bins::kakeya())
                .arg("env-probe")
                .arg("--out")
                .arg(&path),
            CMD_LIMIT,
        )
        .ok();
        let real = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        Reports { dir, real }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write a copy of the real report changed by `edit` as `name`.
    fn tampered(&self, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut v = self.real.clone();
        edit(&mut v);
        let path = self.path(name);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        path
    }
}

fn gate(args: &[&str], paths: &[&Path]) -> Finished {
    let mut cmd = Command::new(bins::evidence_gate());
    cmd.arg("check").args(paths).args(args);
    proc::run(&mut cmd, CMD_LIMIT)
}

/// Violation codes of the single report in a `--json` verdict.
fn codes(verdict: &Value) -> Vec<String> {
    verdict["reports"][0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn real_env_probe_report_passes_with_the_documented_json_shape() {
    let r = Reports::new();
    let path = r.path("env_probe.json");
    assert_eq!(r.real["kind"], "env_probe");
    let verdict = gate(&["--json"], &[&path]).expect_code(0).json();
    assert_eq!(
        verdict,
        json!({
            "passed": true,
            "reports": [{
                "path": path.display().to_string(), "kind": "env_probe", "schema_version": 1,
                "passed": true, "violations": [],
            }],
            "missing": [],
            "violations": [],
        })
    );
    // A folder is judged by its *.json files; --expect names reports that must be there.
    let dir = gate(&["--json", "--expect", "env_probe.json"], &[r.dir.path()])
        .expect_code(0)
        .json();
    assert_eq!(dir["reports"][0]["path"], "env_probe.json", "{dir}");
    let text = gate(&[], &[&path]).expect_code(0);
    assert!(text.stdout.contains("env_probe"), "{text}");
}

#[test]
fn tampered_reports_fail_with_their_violation() {
    let r = Reports::new();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "dry run",
            r.tampered("dry.json", |v| v["dry_run"] = true.into()),
            "NOT_MEASURED",
        ),
        (
            "mock flag",
            r.tampered("mock.json", |v| v["mock"] = "yes".into()),
            "NOT_MEASURED",
        ),
        (
            "mock device",
            r.tampered("dev.json", |v| v["provenance"]["device"] = "mock".into()),
            "NOT_MEASURED",
        ),
        (
            "provenance removed",
            r.tampered("noprov.json", |v| {
                v.as_object_mut().unwrap().remove("provenance");
            }),
            "PROVENANCE_MISSING",
        ),
        (
            "engine version removed",
            r.tampered("nover.json", |v| {
                v["provenance"]
                    .as_object_mut()
                    .unwrap()
                    .remove("engine_version");
            }),
            "PROVENANCE_INCOMPLETE",
        ),
        (
            "time runs backwards",
            r.tampered("time.json", |v| {
                v["provenance"]["finished_at"] = "2000-01-01T00:00:00Z".into();
            }),
            "INCONSISTENT",
        ),
        (
            "unknown kind",
            r.tampered("kind.json", |v| v["kind"] = "frobnicate".into()),
            "UNKNOWN_KIND",
        ),
        (
            "schema_version true",
            r.tampered("sv.json", |v| v["schema_version"] = true.into()),
            "SCHEMA",
        ),
    ];
    for (label, path, code) in &cases {
        let verdict = gate(&["--json"], &[path]).expect_code(1).json();
        assert_eq!(verdict["passed"], false, "{label}: {verdict}");
        assert_eq!(verdict["reports"][0]["passed"], false, "{label}: {verdict}");
        assert!(
            codes(&verdict).iter().any(|c| c == code),
            "{label}: expected {code}: {verdict}"
        );
    }
    let garbage = r.path("garbage.json");
    std::fs::write(&garbage, b"{\"kind\": \"env_probe\", oops").unwrap();
    let verdict = gate(&["--json"], &[&garbage]).expect_code(1).json();
    assert_eq!(codes(&verdict), ["UNPARSEABLE"], "{verdict}");
    let missing = r.path("absent.json");
    let verdict = gate(&["--json"], &[&missing]).expect_code(1).json();
    assert_eq!(codes(&verdict), ["UNREADABLE"], "{verdict}");
    // Text output names the failure too.
    let text = gate(&[], &[&cases[0].1]).expect_code(1);
    assert!(
        text.stdout.contains("FAIL") && text.stdout.contains("NOT_MEASURED"),
        "{text}"
    );
}

#[test]
fn one_bad_report_fails_the_set_and_missing_reports_are_named() {
    let r = Reports::new();
    let good = r.path("env_probe.json");
    let bad = r.tampered("dry.json", |v| v["dry_run"] = true.into());
    let verdict = gate(&["--json"], &[&good, &bad]).expect_code(1).json();
    let passed: Vec<&Value> = verdict["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["passed"])
        .collect();
    assert_eq!(
        passed,
        [&Value::Bool(true), &Value::Bool(false)],
        "{verdict}"
    );
    let dir = gate(&["--json", "--expect", "sleep.json"], &[r.dir.path()])
        .expect_code(1)
        .json();
    assert_eq!(dir["missing"], json!(["sleep.json"]), "{dir}");
    assert!(
        dir["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["code"] == "MISSING_REPORT")
    );
    let empty = tempfile::tempdir().unwrap();
    let none = gate(&["--json", "--expect", "env_probe.json"], &[empty.path()])
        .expect_code(1)
        .json();
    assert_eq!(none["passed"], false, "{none}");
    // --expect with a file is bad usage.
    gate(&["--expect", "x.json"], &[&good]).expect_code(2);
}
