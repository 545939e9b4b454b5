//! `self-test` and `doctor` end to end, with the real engine binary built beside the runner.

use std::path::Path;
use std::process::Command;

fn runner() -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_macbridge-runner"));
    assert!(
        bin.with_file_name("kakeya").is_file(),
        "kakeya must be built next to macbridge-runner: run `cargo build --release --workspace` first"
    );
    Command::new(bin)
}

#[test]
fn self_test_passes_and_reports_the_round_trip() {
    let out = runner().args(["self-test", "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["state"], "done");
    assert_eq!(v["verdict_passed"], true);
    assert_eq!(v["signature_valid"], true);
    assert_eq!(v["forged_request_refused"], true);
    assert!(v["round_trip_s"].as_f64().unwrap() > 0.0);
}

fn setup(dir: &Path, key: bool) -> std::path::PathBuf {
    let bus = dir.join("bus.git");
    let repo = git2::Repository::init_bare(&bus).unwrap();
    repo.config()
        .unwrap()
        .set_bool("receive.denyNonFastForwards", true)
        .unwrap();
    let runner_key = macbridge_bus::sig::generate_ed25519("r").unwrap();
    if key {
        macbridge_bus::sig::write_keypair(&dir.join("runner"), &runner_key).unwrap();
    }
    let requester = macbridge_bus::sig::generate_ed25519("q").unwrap();
    std::fs::write(
        dir.join("allowed"),
        format!(
            "alice valid-before=\"20200101Z\" {}\nbob {}\n",
            macbridge_bus::sig::public_key_line(requester.public_key()),
            macbridge_bus::sig::public_key_line(requester.public_key())
        ),
    )
    .unwrap();
    let config = dir.join("runner.yaml");
    std::fs::write(
        &config,
        format!(
            "remote: {}\nrunner_id: doc-1\nkey: runner\nallowed_signers: allowed\nwork_dir: work\n",
            bus.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn doctor_json_lists_every_check_with_status_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), true);
    let out = runner()
        .args(["doctor", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for c in checks {
        assert!(["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap()));
        assert!(c["hint"].is_string());
    }
    assert_eq!(status("git_reachable"), "ok");
    assert_eq!(status("compare_and_swap"), "ok");
    assert_eq!(status("engine"), "ok");
    assert_eq!(status("key"), "ok");
    // alice's entry has expired: a warning with a hint, not a failure.
    assert_eq!(status("allowed_signers"), "warn");
    // model-info needs KAKEYA_MODEL_DIR, which this config does not set.
    assert_eq!(status("preset_env"), "warn");
    // The scratch ref is gone afterwards.
    let refs = Command::new("git")
        .args(["--git-dir"])
        .arg(dir.path().join("bus.git"))
        .args(["for-each-ref", "refs/mac-bridge/doctor"])
        .output()
        .unwrap();
    assert!(refs.stdout.is_empty());
}

#[test]
fn doctor_fails_without_a_key_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), false);
    let out = runner()
        .args(["doctor", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "key")
        .unwrap();
    assert_eq!(key["status"], "fail");
    assert!(key["hint"].as_str().unwrap().contains("keygen"));
}
