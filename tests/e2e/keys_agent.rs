//! Signing as developers hold their keys: passphrase-protected keys in a real `ssh-agent`
//! (started per test, socket in the test's folder), named by their `.pub` or by the encrypted
//! file; cancels signed the same way; clear refusals (exit 2, nothing pushed) when the agent
//! lacks the key or no agent runs; git's own SSH signing config; `doctor` saying which key
//! signs and how. Every request.sig is checked with `ssh-keygen -Y verify` and by a runner.

use std::ffi::OsStr;
use std::path::Path;

use macbridge_e2e::Finished;
use macbridge_e2e::agent::{self, Agent, SshKey};
use serde_json::Value;

use crate::harness::*;

const PASS_ED: &str = "correct horse";
const PASS_EC: &str = "battery staple";

/// Add `key` for principal `alice` in the request and cancel namespaces.
pub fn allow(w: &World, public_line: &str) {
    let mut text = std::fs::read_to_string(&w.allowed_signers).unwrap();
    text.push_str(&format!(
        "{REQUESTER} namespaces=\"{REQUEST_NAMESPACE},macbridge-cancel-v1\" {public_line}\n"
    ));
    std::fs::write(&w.allowed_signers, text).unwrap();
}

/// `macbridge request --key KEY --preset sleep --param ms=1 --json` with `env`.
pub fn request_with(w: &World, key: Option<&Path>, env: &[(&str, &OsStr)]) -> Finished {
    let remote = w.remote();
    let mut args = vec!["request", "--remote", &remote];
    let key_text = key.map(|k| k.display().to_string());
    if let Some(k) = &key_text {
        args.extend(["--key", k]);
    }
    args.extend(["--preset", "sleep", "--param", "ms=1", "--json"]);
    w.mb_env(&args, env)
}

/// The request on `branch` was signed by `key`: `requested_by` names it and `ssh-keygen -Y
/// verify -n macbridge-request-v1` accepts request.sig against allowed_signers.
#[track_caller]
pub fn assert_signed_by(w: &World, branch: &str, key_fingerprint: &str) {
    let rev = full_branch(branch);
    let json = gitx::read_file(&w.bus, &rev, ".mac-bridge/request.json").expect("request.json");
    let sig = gitx::read_file(&w.bus, &rev, ".mac-bridge/request.sig").expect("request.sig");
    let manifest: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(manifest["requested_by"], key_fingerprint, "{manifest}");
    assert!(
        craft::ssh_verify(
            &w.allowed_signers,
            REQUESTER,
            REQUEST_NAMESPACE,
            &json,
            &sig,
            &w.files
        ),
        "ssh-keygen -Y verify refused request.sig on {branch}"
    );
}

/// Two passphrase-protected keys (ed25519, ECDSA P-384) loaded into a fresh agent and
/// allowed as `alice`.
fn agent_world() -> (World, Agent, SshKey, SshKey) {
    let w = World::new();
    let agent = Agent::start(&w.root);
    let dir = w.root.join("keys");
    let ed = agent::ssh_keygen(&dir, "enc_ed", "ed25519", None, PASS_ED);
    let ec = agent::ssh_keygen(&dir, "enc_ec", "ecdsa", Some(384), PASS_EC);
    agent.add(&ed.path, Some(PASS_ED));
    agent.add(&ec.path, Some(PASS_EC));
    allow(&w, &ed.public_line);
    allow(&w, &ec.public_line);
    (w, agent, ed, ec)
}

fn branch_of(out: &Finished) -> String {
    out.json()["branch"].as_str().expect("branch").to_string()
}

#[test]
fn passphrase_keys_in_the_agent_sign_requests_that_runners_run() {
    let (w, agent, ed, ec) = agent_world();
    let sock = agent.socket.as_os_str();
    let env = [("SSH_AUTH_SOCK", sock)];
    // The ed25519 key named by its .pub, the ECDSA key by its encrypted private file.
    let by_pub = branch_of(&request_with(&w, Some(&ed.public), &env).ok());
    let by_private = branch_of(&request_with(&w, Some(&ec.path), &env).ok());
    assert_signed_by(&w, &by_pub, &ed.fingerprint);
    assert_signed_by(&w, &by_private, &ec.fingerprint);

    // `run` (request + wait) through the agent, against a serving runner.
    let runner = w.serve();
    let (remote, key) = (w.remote(), ed.public.display().to_string());
    let signers = w.runner_signers.display().to_string();
    let run = w
        .mb_env(
            &[
                "run",
                "--remote",
                &remote,
                "--key",
                &key,
                "--preset",
                "sleep",
                "--param",
                "ms=1",
                "--runner-signers",
                &signers,
                "--timeout",
                "120",
                "--json",
            ],
            &env,
        )
        .ok();
    let report = run.json();
    assert_eq!(report["state"], "done", "{report}");
    assert_eq!(report["signature"]["trusted"], true, "{report}");
    for branch in [&by_pub, &by_private] {
        macbridge_e2e::proc::wait_for("the runner to finish", CMD_LIMIT, || {
            (w.status(branch)["state"] == "done").then_some(())
        });
    }
    drop(runner);
}

#[test]
fn cancel_is_signed_through_the_agent_too() {
    let (w, agent, ed, _) = agent_world();
    let env = [("SSH_AUTH_SOCK", agent.socket.as_os_str())];
    let branch = branch_of(&request_with(&w, Some(&ed.public), &env).ok());
    let (remote, key) = (w.remote(), ed.public.display().to_string());
    let out = w
        .mb_env(
            &[
                "cancel", "--remote", &remote, "--branch", &branch, "--key", &key, "--json",
            ],
            &env,
        )
        .ok();
    assert_eq!(out.json()["cancel"], "requested", "{out}");
    let rev = full_branch(&branch);
    let record = gitx::read_file(&w.bus, &rev, ".mac-bridge/cancel.json").expect("cancel.json");
    let sig = gitx::read_file(&w.bus, &rev, ".mac-bridge/cancel.sig").expect("cancel.sig");
    assert!(craft::ssh_verify(
        &w.allowed_signers,
        REQUESTER,
        "macbridge-cancel-v1",
        &record,
        &sig,
        &w.files
    ));
    w.runner_once();
    assert_eq!(w.status(&branch)["state"], "cancelled");
}

#[test]
fn keys_the_agent_cannot_sign_with_are_refused_before_anything_is_pushed() {
    let (w, agent, ed, _) = agent_world();
    let dir = w.root.join("keys");
    // A second agent holding only the ECDSA key.
    let other_dir = w.root.join("other-agent");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = Agent::start(&other_dir);
    let lone = agent::ssh_keygen(&dir, "lone", "ed25519", None, "");
    other.add(&lone.path, None);
    let other_env = [("SSH_AUTH_SOCK", other.socket.as_os_str())];

    // The encrypted key's .pub, its private file next to it, and an agent without it.
    let out = request_with(&w, Some(&ed.public), &other_env).expect_code(2);
    for text in [
        "passphrase-protected",
        "not in ssh-agent",
        "not this one",
        "ssh-add",
    ] {
        assert!(out.stderr.contains(text), "missing {text:?}:\n{out}");
    }
    // A .pub alone (no private file beside it): only the agent could sign.
    let alone = w.files.join("alone.pub");
    std::fs::copy(&ed.public, &alone).unwrap();
    let out = request_with(&w, Some(&alone), &other_env).expect_code(2);
    for text in ["is a public key", &ed.fingerprint, "not in ssh-agent"] {
        assert!(out.stderr.contains(text), "missing {text:?}:\n{out}");
    }
    // The encrypted key with no agent at all, and no terminal to ask on.
    let out = request_with(&w, Some(&ed.path), &[]).expect_code(2);
    for text in [
        "passphrase-protected",
        "SSH_AUTH_SOCK is not set",
        "ssh-add",
    ] {
        assert!(out.stderr.contains(text), "missing {text:?}:\n{out}");
    }
    // Cancel refuses the same way (its branch need not even exist: the key is checked first).
    let remote = w.remote();
    let key = ed.path.display().to_string();
    let out = w
        .mb(&[
            "cancel",
            "--remote",
            &remote,
            "--branch",
            "mac-bridge/sleep-0123456789abcdef0123456789abcdef",
            "--key",
            &key,
        ])
        .expect_code(2);
    assert!(out.stderr.contains("passphrase-protected"), "{out}");
    assert!(w.bus_branches().is_empty(), "something was pushed");
    drop(agent);
}

#[test]
fn git_ssh_signing_config_is_the_default_key() {
    let (w, agent, ed, _) = agent_world();
    let dir = w.root.join("keys");
    let plain = agent::ssh_keygen(&dir, "plain_ec", "ecdsa", Some(256), "");
    allow(&w, &plain.public_line);
    let gitconfig = w.root.join("gitconfig");
    let sock = agent.socket.as_os_str();

    // A path (with ~ expanded against HOME), an unencrypted ECDSA key: signs in process.
    let home_key = w.home.join(".ssh");
    std::fs::create_dir_all(&home_key).unwrap();
    for ext in ["", ".pub"] {
        std::fs::copy(
            format!("{}{ext}", plain.path.display()),
            home_key.join(format!("id_ecdsa{ext}")),
        )
        .unwrap();
    }
    std::fs::write(
        &gitconfig,
        "[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = ~/.ssh/id_ecdsa\n",
    )
    .unwrap();
    let env = [("GIT_CONFIG_GLOBAL", gitconfig.as_os_str())];
    let branch = branch_of(&request_with(&w, None, &env).ok());
    assert_signed_by(&w, &branch, &plain.fingerprint);

    // A literal public key (`key::`), held by the agent.
    std::fs::write(
        &gitconfig,
        format!(
            "[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = key::{}\n",
            ed.public_line
        ),
    )
    .unwrap();
    let env = [
        ("GIT_CONFIG_GLOBAL", gitconfig.as_os_str()),
        ("SSH_AUTH_SOCK", sock),
    ];
    let branch = branch_of(&request_with(&w, None, &env).ok());
    assert_signed_by(&w, &branch, &ed.fingerprint);
    let remote = w.remote();
    let doctor = w.mb_env(&["doctor", "--remote", &remote, "--json"], &env);
    let report = doctor.json();
    assert_eq!(report["signing"]["source"]["from"], "git", "{doctor}");
    assert_eq!(report["signing"]["path"], "ssh-agent", "{doctor}");

    // git signing with openpgp is not something macbridge can use: a clear usage error.
    std::fs::write(&gitconfig, "[user]\n\tsigningkey = ABCDEF\n").unwrap();
    let env = [("GIT_CONFIG_GLOBAL", gitconfig.as_os_str())];
    let out = request_with(&w, None, &env).expect_code(2);
    assert!(out.stderr.contains("gpg.format"), "{out}");

    let help = w.mb(&["request", "--help"]).ok();
    for text in ["gpg.format=ssh", "user.signingkey", "ssh-agent", ".pub"] {
        assert!(
            help.stdout.contains(text),
            "--help lacks {text:?}:\n{}",
            help.stdout
        );
    }
    w.runner_once();
    for b in w.bus_branches() {
        assert_eq!(w.status(&b)["state"], "done", "{b}");
    }
}

#[test]
fn doctor_names_the_key_and_how_it_signs() {
    let (w, agent, ed, ec) = agent_world();
    let remote = w.remote();
    let env = [("SSH_AUTH_SOCK", agent.socket.as_os_str())];
    let cases: [(&Path, &str, &str); 3] = [
        (&ed.public, "ssh-agent", &ed.fingerprint),
        (&ec.path, "ssh-agent", &ec.fingerprint),
        (&w.requester.path, "file", &w.requester.fingerprint),
    ];
    for (key, path, fingerprint) in cases {
        let key_arg = key.display().to_string();
        let out = w.mb_env(
            &["doctor", "--remote", &remote, "--key", &key_arg, "--json"],
            &env,
        );
        let report = out.json();
        assert_eq!(report["signing"]["path"], path, "{out}");
        assert_eq!(report["signing"]["fingerprint"], fingerprint, "{out}");
        assert_eq!(report["signing"]["source"]["from"], "--key", "{out}");
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "key")
            .cloned()
            .unwrap();
        assert_eq!(check["status"], "ok", "{check}");
        assert!(
            check["detail"]
                .as_str()
                .unwrap()
                .contains("trial signature verified"),
            "{check}"
        );
    }
    // The encrypted key without its agent: doctor fails the key check and says why.
    let key_arg = ed.path.display().to_string();
    let out = w
        .mb(&["doctor", "--remote", &remote, "--key", &key_arg, "--json"])
        .expect_code(1);
    assert_eq!(out.json()["signing"], Value::Null, "{out}");
    assert!(out.stdout.contains("passphrase-protected"), "{out}");
}
