//! Bad input to `macbridge request` exits 2 and pushes nothing.

use std::process::Command;

fn macbridge(args: &[&str], cache: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_macbridge"))
        .args(args)
        .env("MACBRIDGE_CACHE", cache)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    bus: String,
    key: String,
    cache: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let bus = dir.path().join("bus.git").display().to_string();
    let key = dir.path().join("key").display().to_string();
    assert_eq!(macbridge(&["init", "--bus", &bus], &cache).0, 0);
    assert_eq!(macbridge(&["keygen", "--out", &key], &cache).0, 0);
    Setup {
        _dir: dir,
        bus,
        key,
        cache,
    }
}

fn branches(bus: &str) -> String {
    let out = Command::new("git")
        .args(["--git-dir", bus, "for-each-ref", "refs/heads/"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bad_params_labels_and_expiry_exit_2_without_pushing() {
    let s = setup();
    let cases: &[&[&str]] = &[
        &["--preset", "sleep", "--param", "ms=+5"],
        &["--preset", "sleep", "--param", "ms=5_0"],
        &["--preset", "sleep", "--param", "ms= 5"],
        &["--preset", "sleep", "--param", "ms=1e3"],
        &["--preset", "sleep", "--param", "ms=５"],
        &["--preset", "sleep", "--param", "ms=600001"],
        &["--preset", "sleep", "--param", "nope=1"],
        &["--preset", "sleep", "--param", "ms"],
        &["--preset", "no-such-preset"],
        &["--preset", "sleep", "--label", "Bad Label"],
        &["--preset", "sleep", "--expires-in", "0"],
        &["--preset", "sleep", "--expires-in", "604801"],
        &["--preset", "cargo-test"],
        &["--preset", "env-probe", "--workload", "HEAD"],
    ];
    for extra in cases {
        let mut args = vec!["request", "--remote", &s.bus, "--key", &s.key];
        args.extend_from_slice(extra);
        let (code, _, err) = macbridge(&args, &s.cache);
        assert_eq!(code, 2, "{extra:?} gave {code}: {err}");
        assert!(err.contains("error"), "{extra:?}: {err}");
    }
    assert_eq!(branches(&s.bus), "", "something was pushed");
}

#[test]
fn a_good_request_prints_branch_and_request_id() {
    let s = setup();
    let (code, out, err) = macbridge(
        &[
            "request", "--remote", &s.bus, "--key", &s.key, "--preset", "sleep", "--param", "ms=5",
            "--json",
        ],
        &s.cache,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let branch = v["branch"].as_str().unwrap();
    assert!(branch.starts_with("mac-bridge/sleep-"), "{branch}");
    assert_eq!(v["request_id"].as_str().unwrap().len(), 64);
    assert!(branches(&s.bus).contains(&format!("refs/heads/{branch}")));
    let (code, out, _) = macbridge(
        &["status", "--remote", &s.bus, "--branch", branch, "--json"],
        &s.cache,
    );
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["state"], "pending");
    assert!(status["reason"].is_null());
    assert!(status["verdict"].is_null());
}

#[test]
fn a_missing_key_is_bad_input() {
    let s = setup();
    let (code, _, err) = macbridge(
        &[
            "request",
            "--remote",
            &s.bus,
            "--key",
            "/nonexistent/key",
            "--preset",
            "sleep",
        ],
        &s.cache,
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn doctor_json_checks_the_bus_and_the_key() {
    let s = setup();
    let (code, out, err) = macbridge(
        &["doctor", "--remote", &s.bus, "--key", &s.key, "--json"],
        &s.cache,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let find = |n: &str| checks.iter().find(|c| c["name"] == n).unwrap()["status"].clone();
    assert_eq!(find("git_reachable"), "ok");
    assert_eq!(find("compare_and_swap"), "ok");
    assert_eq!(find("key"), "ok");
    // No runner has served this bus yet.
    assert_eq!(find("runners"), "warn");
    let (code, out, _) = macbridge(
        &["doctor", "--remote", "/nonexistent/bus.git", "--json"],
        &s.cache,
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["checks"][0]["name"], "git_reachable");
    assert_eq!(v["checks"][0]["status"], "fail");
}

#[test]
fn docs_presets_md_is_generated_from_the_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = macbridge(&["presets", "--markdown"], dir.path());
    assert_eq!(code, 0, "{err}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PRESETS.md");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == out,
        "docs/PRESETS.md is stale: run `cargo run --release -p macbridge -- presets --markdown > docs/PRESETS.md`"
    );
}
