//! Every accepted key type end to end: ECDSA P-256/P-384 and RSA-2048 requests signed by the
//! client (in process and through the agent) and run; RSA-1024 refused by the client and by
//! the runner; security-key (`sk-`) signatures made in software and run; a forged signature by
//! each type refused; a policy restricting a principal's key types.

use macbridge_e2e::agent::{self, Agent, SshKey};
use macbridge_e2e::sk::{SkType, SoftSk, USER_PRESENT};

use crate::harness::*;
use crate::keys_agent::{allow, assert_signed_by, request_with};

fn branch_of(out: &macbridge_e2e::Finished) -> String {
    out.json()["branch"].as_str().expect("branch").to_string()
}

/// Software security keys with fixed seeds (distinct from the fixture's).
fn soft_keys() -> [SoftSk; 2] {
    [
        SoftSk::new(SkType::Ed25519, [7; 32]),
        SoftSk::new(SkType::EcdsaP256, [9; 32]),
    ]
}

#[test]
fn ecdsa_and_rsa_2048_sign_requests_that_runners_run() {
    let w = World::new();
    let dir = w.root.join("keys");
    let keys: Vec<SshKey> = vec![
        agent::ssh_keygen(&dir, "p256", "ecdsa", Some(256), ""),
        agent::ssh_keygen(&dir, "p384", "ecdsa", Some(384), ""),
        agent::ssh_keygen(&dir, "rsa2048", "rsa", Some(2048), ""),
    ];
    let mut branches = Vec::new();
    for key in &keys {
        allow(&w, &key.public_line);
        let branch = branch_of(&request_with(&w, Some(&key.path), &[]).ok());
        assert_signed_by(&w, &branch, &key.fingerprint);
        branches.push(branch);
    }
    // RSA through the agent: the agent must make rsa-sha2-512, not SHA-1, signatures.
    let agent = Agent::start(&w.root);
    let rsa = &keys[2];
    let alone = w.files.join("rsa-only.pub");
    std::fs::copy(&rsa.public, &alone).unwrap();
    agent.add(&rsa.path, None);
    let env = [("SSH_AUTH_SOCK", agent.socket.as_os_str())];
    let branch = branch_of(&request_with(&w, Some(&alone), &env).ok());
    assert_signed_by(&w, &branch, &rsa.fingerprint);
    branches.push(branch);

    w.runner_once();
    for branch in &branches {
        let status = w.status(branch);
        assert_eq!(status["state"], "done", "{branch}: {status}");
    }
}

#[test]
fn rsa_under_2048_bits_is_refused_by_client_and_runner() {
    let w = World::new();
    let weak = agent::ssh_keygen(&w.root.join("keys"), "rsa1024", "rsa", Some(1024), "");
    allow(&w, &weak.public_line);
    let out = request_with(&w, Some(&weak.path), &[]).expect_code(2);
    assert!(out.stderr.contains("1024-bit RSA key"), "{out}");
    assert!(w.bus_branches().is_empty());

    // ssh-keygen signs with it happily; the runner must not accept it.
    let sealed = Draft::new("sleep", &weak.fingerprint)
        .param("ms", "1")
        .seal();
    let sig = craft::ssh_sign(&weak.path, REQUEST_NAMESPACE, &sealed.bytes, &w.files);
    let commit = w.push_files(
        &sealed.branch,
        &[("request.json", &sealed.bytes), ("request.sig", &sig)],
        None,
    );
    let case = Case::rejected("rsa-1024", "bad_signature", &sealed.branch, &commit)
        .id(&sealed.request_id)
        .mentions("1024-bit RSA");
    expect_refusals(&w, "sleep", &[case]);
}

#[test]
fn security_key_signatures_verify_and_run_and_need_a_touch() {
    let w = World::new();
    let mut done = Vec::new();
    let mut cases = Vec::new();
    for sk in soft_keys() {
        allow(&w, &sk.public_line());
        let sealed = Draft::new("sleep", &sk.fingerprint())
            .param("ms", "1")
            .seal();
        let sig = sk.sign(REQUEST_NAMESPACE, &sealed.bytes, USER_PRESENT, 42);
        assert!(
            craft::ssh_verify(
                &w.allowed_signers,
                REQUESTER,
                REQUEST_NAMESPACE,
                &sealed.bytes,
                sig.as_bytes(),
                &w.files
            ),
            "ssh-keygen -Y verify refused the {} signature",
            sk.type_name()
        );
        w.push_files(
            &sealed.branch,
            &[
                ("request.json", &sealed.bytes),
                ("request.sig", sig.as_bytes()),
            ],
            None,
        );
        done.push(sealed.branch.clone());

        // The same key, not touched (flags 0): the runner refuses it (OpenSSH's -Y verify
        // does not check the flag; macbridge does).
        let untouched = Draft::new("sleep", &sk.fingerprint())
            .param("ms", "1")
            .seal();
        let sig = sk.sign(REQUEST_NAMESPACE, &untouched.bytes, 0, 43);
        let commit = w.push_files(
            &untouched.branch,
            &[
                ("request.json", &untouched.bytes),
                ("request.sig", sig.as_bytes()),
            ],
            None,
        );
        cases.push(
            Case::rejected(
                format!("{} untouched", sk.type_name()),
                "bad_signature",
                &untouched.branch,
                &commit,
            )
            .id(&untouched.request_id)
            .mentions("user-presence"),
        );
    }
    w.runner_once();
    for branch in &done {
        assert_eq!(w.status(branch)["state"], "done", "{branch}");
    }
    for case in &cases {
        assert_refused(&w, case);
    }
}

/// A signature over other bytes (the manifest changed after signing), by `sign`.
fn forged_case(w: &World, label: &str, fingerprint: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> Case {
    let sealed = Draft::new("sleep", fingerprint).param("ms", "1").seal();
    let sig = sign(&sealed.bytes);
    let text = String::from_utf8(sealed.bytes.clone()).unwrap();
    let tampered = text
        .replacen("\"ms\":\"1\"", "\"ms\":\"7\"", 1)
        .into_bytes();
    assert_ne!(tampered, sealed.bytes);
    let commit = w.push_files(
        &sealed.branch,
        &[("request.json", &tampered), ("request.sig", &sig)],
        None,
    );
    Case::rejected(label, "bad_signature", &sealed.branch, &commit)
        .mentions("signature verification failed")
}

#[test]
fn a_forged_signature_by_each_key_type_is_refused() {
    let w = World::new();
    let dir = w.root.join("keys");
    let mut cases = Vec::new();
    for (name, key_type, bits) in [
        ("f_ed", "ed25519", None),
        ("f_p256", "ecdsa", Some(256)),
        ("f_p384", "ecdsa", Some(384)),
        ("f_rsa", "rsa", Some(2048)),
    ] {
        let key = agent::ssh_keygen(&dir, name, key_type, bits, "");
        allow(&w, &key.public_line);
        let files = w.files.clone();
        cases.push(forged_case(&w, name, &key.fingerprint, |bytes| {
            craft::ssh_sign(&key.path, REQUEST_NAMESPACE, bytes, &files)
        }));
    }
    for sk in soft_keys() {
        allow(&w, &sk.public_line());
        cases.push(forged_case(
            &w,
            sk.type_name(),
            &sk.fingerprint(),
            |bytes| {
                sk.sign(REQUEST_NAMESPACE, bytes, USER_PRESENT, 1)
                    .into_bytes()
            },
        ));
    }
    expect_refusals(&w, "sleep", &cases);
}

#[test]
fn policy_can_restrict_a_principals_key_types() {
    let w = World::with_runner(RunnerSetup {
        policy: Some(
            "principals:\n  alice: {presets: ['*'], key_types: [ssh-ed25519, sk-ssh-ed25519@openssh.com]}\n"
                .to_string(),
        ),
        ..RunnerSetup::default()
    });
    let dir = w.root.join("keys");
    let ec = agent::ssh_keygen(&dir, "alice_ec", "ecdsa", Some(256), "");
    allow(&w, &ec.public_line);
    let [sk_ed, sk_ec] = soft_keys();
    allow(&w, &sk_ed.public_line());
    allow(&w, &sk_ec.public_line());

    let ecdsa = Draft::new("sleep", &ec.fingerprint).param("ms", "1");
    let (sealed, commit) = {
        let sealed = ecdsa.seal();
        let sig = craft::ssh_sign(&ec.path, REQUEST_NAMESPACE, &sealed.bytes, &w.files);
        let commit = w.push_files(
            &sealed.branch,
            &[("request.json", &sealed.bytes), ("request.sig", &sig)],
            None,
        );
        (sealed, commit)
    };
    let sk_refused = Draft::new("sleep", &sk_ec.fingerprint())
        .param("ms", "1")
        .seal();
    let sig = sk_ec.sign(REQUEST_NAMESPACE, &sk_refused.bytes, USER_PRESENT, 5);
    let sk_commit = w.push_files(
        &sk_refused.branch,
        &[
            ("request.json", &sk_refused.bytes),
            ("request.sig", sig.as_bytes()),
        ],
        None,
    );
    let cases = [
        Case::rejected("ecdsa by alice", "not_allowed", &sealed.branch, &commit)
            .id(&sealed.request_id)
            .mentions("ecdsa-sha2-nistp256")
            .mentions("key_types"),
        Case::rejected(
            "sk-ecdsa by alice",
            "not_allowed",
            &sk_refused.branch,
            &sk_commit,
        )
        .id(&sk_refused.request_id)
        .mentions("sk-ecdsa-sha2-nistp256@openssh.com"),
    ];
    // The ed25519 control is allowed (checked by expect_refusals), and so is sk-ed25519.
    let allowed = Draft::new("sleep", &sk_ed.fingerprint())
        .param("ms", "1")
        .seal();
    let sig = sk_ed.sign(REQUEST_NAMESPACE, &allowed.bytes, USER_PRESENT, 6);
    w.push_files(
        &allowed.branch,
        &[
            ("request.json", &allowed.bytes),
            ("request.sig", sig.as_bytes()),
        ],
        None,
    );
    let handled = w.runner_once();
    assert!(
        handled
            .iter()
            .any(|h| h["branch"] == allowed.short_branch())
    );
    for case in &cases {
        assert_refused(&w, case);
    }
    assert_eq!(w.status(allowed.short_branch())["state"], "done");
}
