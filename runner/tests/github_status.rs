//! With `--features github` and a token, the runner sets commit statuses on the request commit
//! (pending at claim, success/failure with the result) — against a local STUB of the API.
#![cfg(feature = "github")]

#[path = "../../bus/tests/support/github_stub.rs"]
mod stub;

use std::collections::BTreeMap;
use std::process::Command;

use macbridge_bus::git::Bus;
use macbridge_bus::submit::{self, RequestSpec};
use macbridge_bus::{clock, sig};

#[test]
fn runner_posts_pending_then_success_on_the_request_commit() {
    let stub = stub::GitHubStub::start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bus_path = root.join("bus.git");
    git2::Repository::init_bare(&bus_path).unwrap();
    let requester = sig::generate_ed25519("requester").unwrap();
    let runner = sig::generate_ed25519("runner").unwrap();
    sig::write_keypair(&root.join("runner"), &runner).unwrap();
    std::fs::write(
        root.join("allowed"),
        format!("alice {}\n", sig::public_key_line(requester.public_key())),
    )
    .unwrap();
    let engine = macbridge_e2e::bins::kakeya();
    std::fs::write(
        root.join("runner.yaml"),
        format!(
            "remote: {}\nrunner_id: gh-1\nkey: runner\nallowed_signers: allowed\nwork_dir: work\nengine: {}\ngithub: {{repo: acme/bus, token_env: STUB_GITHUB_TOKEN, api_url: \"{}\"}}\n",
            bus_path.display(),
            engine.display(),
            stub.url
        ),
    )
    .unwrap();
    let client = Bus::open(&bus_path.display().to_string(), &root.join("client.git")).unwrap();
    let catalog = macbridge_presets::catalog().unwrap();
    let spec = RequestSpec {
        preset: catalog.get("sleep").unwrap(),
        params: BTreeMap::from([("ms".to_string(), serde_json::Value::from("1"))]),
        labels: vec![],
        expires_in_secs: 600,
        workload: None,
        audience: None,
    };
    let manifest = submit::build_manifest(&spec, &requester, clock::now()).unwrap();
    let commit = submit::submit(&client, &manifest, &requester).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_macbridge-runner"))
        .args(["once", "--config"])
        .arg(root.join("runner.yaml"))
        .env("STUB_GITHUB_TOKEN", "stub-token")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let posted: Vec<_> = stub
        .requests()
        .into_iter()
        .filter(|r| r.path == format!("/repos/acme/bus/statuses/{commit}"))
        .collect();
    let states: Vec<&str> = posted
        .iter()
        .map(|r| r.body["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "success"], "{posted:?}");
    assert!(
        posted[1].body["description"]
            .as_str()
            .unwrap()
            .contains("PASS")
    );
    assert!(
        posted.iter().all(|r| r
            .authorization
            .as_deref()
            .is_some_and(|a| a.contains("stub-token"))),
        "the token from token_env is sent"
    );

    // Without the token nothing is sent, and the job still runs.
    let manifest = submit::build_manifest(&spec, &requester, clock::now()).unwrap();
    submit::submit(&client, &manifest, &requester).unwrap();
    let before = stub.requests().len();
    let out = Command::new(env!("CARGO_BIN_EXE_macbridge-runner"))
        .args(["once", "--json", "--config"])
        .arg(root.join("runner.yaml"))
        .env_remove("STUB_GITHUB_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ran\""));
    assert_eq!(stub.requests().len(), before);
}
