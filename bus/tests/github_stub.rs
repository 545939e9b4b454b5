//! The GitHub calls against a local STUB of the API (see support/github_stub.rs). Built only
//! with `--features github`.
#![cfg(feature = "github")]

#[path = "support/github_stub.rs"]
mod stub;

use macbridge_bus::github::{self, GitHubConfig, GitHubError, StatusState};

fn resolved(stub: &stub::GitHubStub) -> (String, String, String) {
    ("acme/bus".into(), "test-token".into(), stub.url.clone())
}

#[test]
fn statuses_are_posted_and_read_back() {
    let stub = stub::GitHubStub::start();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    github::set_status(
        &resolved(&stub),
        sha,
        StatusState::Pending,
        "claimed by mac-1",
    )
    .unwrap();
    github::set_status(
        &resolved(&stub),
        sha,
        StatusState::Success,
        &"x".repeat(300),
    )
    .unwrap();
    let seen = stub.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, format!("/repos/acme/bus/statuses/{sha}"));
    assert_eq!(seen[0].body["state"], "pending");
    assert_eq!(seen[0].body["context"], "macbridge");
    assert_eq!(seen[1].body["description"].as_str().unwrap().len(), 140);
    assert!(
        seen[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.contains("test-token"))
    );
    let listed = github::statuses(&resolved(&stub), sha).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["state"], "success", "newest first");
}

#[test]
fn dispatch_sends_the_branch() {
    let stub = stub::GitHubStub::start();
    github::dispatch(&resolved(&stub), "mac-bridge/sleep-abc").unwrap();
    let seen = stub.requests();
    assert_eq!(seen[0].path, "/repos/acme/bus/dispatches");
    assert_eq!(seen[0].body["event_type"], "mac-bridge-request");
    assert_eq!(
        seen[0].body["client_payload"]["branch"],
        "mac-bridge/sleep-abc"
    );
}

#[test]
fn errors_from_the_api_are_reported() {
    let stub = stub::GitHubStub::start();
    let r = (
        "acme/bus".to_string(),
        "t".to_string(),
        format!("{}/nowhere", stub.url),
    );
    assert!(matches!(
        github::dispatch(&r, "b"),
        Err(GitHubError::Api(_))
    ));
}

#[test]
fn no_token_means_skip() {
    let cfg = GitHubConfig {
        repo: Some("acme/bus".into()),
        token_env: Some("MACBRIDGE_TEST_TOKEN_THAT_IS_NEVER_SET".into()),
        api_url: None,
    };
    assert!(matches!(
        cfg.resolve("/srv/bus.git"),
        Err(GitHubError::NoToken(_))
    ));
    let no_repo = GitHubConfig::default();
    assert!(matches!(
        no_repo.resolve("/srv/bus.git"),
        Err(GitHubError::NoRepo)
    ));
}
