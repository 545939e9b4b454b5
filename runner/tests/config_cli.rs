//! The runner refuses a broken config before touching the bus, with a message that names the
//! problem.

use std::process::Command;

fn runner(config_text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runner.yaml");
    std::fs::write(&config, config_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_macbridge-runner"))
        .args(["once", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str =
    "remote: /nonexistent\nrunner_id: mac-1\nkey: k\nallowed_signers: a\nwork_dir: w\n";

#[test]
fn missing_required_keys_are_named() {
    let (ok, err) = runner("remote: /x\nrunner_id: mac-1\n");
    assert!(!ok);
    assert!(err.contains("key"), "{err}");
}

#[test]
fn unknown_keys_are_refused() {
    let (ok, err) = runner(&format!("{BASE}pol_icy: p\n"));
    assert!(!ok);
    assert!(err.contains("pol_icy"), "{err}");
}

#[test]
fn heartbeat_must_be_shorter_than_the_lease() {
    let (ok, err) = runner(&format!("{BASE}lease_seconds: 10\nheartbeat_seconds: 10\n"));
    assert!(!ok);
    assert!(err.contains("heartbeat_seconds"), "{err}");
}

#[test]
fn bad_runner_id_labels_and_env_names_are_refused() {
    for (extra, needle) in [
        ("", "runner_id"),
        ("labels: [Metal]\n", "label"),
        ("env: {model_dir: /x}\n", "env key"),
        ("poll_seconds: -1\n", "poll_seconds"),
        ("max_attempts: 0\n", "max_attempts"),
    ] {
        let text = if needle == "runner_id" {
            BASE.replace("mac-1", "mac 1/../x")
        } else {
            format!("{BASE}{extra}")
        };
        let (ok, err) = runner(&text);
        assert!(!ok, "{extra} accepted");
        assert!(err.contains(needle), "{extra}: {err}");
    }
}

#[test]
fn a_missing_key_file_is_reported_with_its_path() {
    let (ok, err) = runner(BASE);
    assert!(!ok);
    assert!(err.contains("runner key"), "{err}");
}
