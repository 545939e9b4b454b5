//! The security-key signature fixture in `bus/tests/data/sk/` (see its README): it is exactly
//! what [`macbridge_e2e::sk`] makes from the recorded seeds, and OpenSSH's own
//! `ssh-keygen -Y verify` accepts its signatures (the format is OpenSSH's, not just ours).
//! The untouched signatures are well-formed too (OpenSSH 9.2's `-Y verify` accepts them);
//! macbridge refuses them for lacking the user-presence flag (bus/tests/sig_sk_fixture.rs).
//!
//! Regenerate with:
//! `cargo test --release -p macbridge-e2e --test e2e -- --ignored write_sk_fixture`

use std::path::PathBuf;

use macbridge_e2e::sk::{SkType, SoftSk, USER_PRESENT};
use sha2::{Digest, Sha256};

use crate::harness::*;

/// The signed message.
const MESSAGE: &[u8] = b"{\"fixture\":\"macbridge sk signature\",\"schema_version\":1}\n";

fn fixture_dir() -> PathBuf {
    macbridge_e2e::bins::workspace_root().join("bus/tests/data/sk")
}

/// Every fixture file: name and content.
fn fixture_files() -> Vec<(String, Vec<u8>)> {
    let mut files = vec![("message.json".to_string(), MESSAGE.to_vec())];
    let mut signers = String::new();
    for (stem, kind) in [
        ("sk-ed25519", SkType::Ed25519),
        ("sk-ecdsa", SkType::EcdsaP256),
    ] {
        let seed: [u8; 32] = Sha256::digest(format!("macbridge sk fixture: {stem}")).into();
        let sk = SoftSk::new(kind, seed);
        files.push((
            format!("{stem}.pub"),
            format!("{} {stem}\n", sk.public_line()).into_bytes(),
        ));
        files.push((
            format!("{stem}.sig"),
            sk.sign(REQUEST_NAMESPACE, MESSAGE, USER_PRESENT, 1)
                .into_bytes(),
        ));
        files.push((
            format!("{stem}.untouched.sig"),
            sk.sign(REQUEST_NAMESPACE, MESSAGE, 0, 2).into_bytes(),
        ));
        signers.push_str(&format!(
            "fixture namespaces=\"{REQUEST_NAMESPACE}\" {}\n",
            sk.public_line()
        ));
    }
    files.push(("allowed_signers".to_string(), signers.into_bytes()));
    files
}

#[test]
#[ignore = "writes bus/tests/data/sk; run on purpose to regenerate the fixture"]
fn write_sk_fixture() {
    let dir = fixture_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in fixture_files() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn sk_fixture_is_reproducible_and_openssh_agrees() {
    let dir = fixture_dir();
    for (name, bytes) in fixture_files() {
        let on_disk = std::fs::read(dir.join(&name))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(&name).display()));
        assert_eq!(on_disk, bytes, "{name} differs from what its recipe makes");
    }
    let scratch = tempfile::tempdir().unwrap();
    let signers = dir.join("allowed_signers");
    for stem in ["sk-ed25519", "sk-ecdsa"] {
        let sig = std::fs::read(dir.join(format!("{stem}.sig"))).unwrap();
        assert!(
            craft::ssh_verify(
                &signers,
                "fixture",
                REQUEST_NAMESPACE,
                MESSAGE,
                &sig,
                scratch.path()
            ),
            "ssh-keygen -Y verify refused {stem}.sig"
        );
        assert!(
            !craft::ssh_verify(
                &signers,
                "fixture",
                REQUEST_NAMESPACE,
                b"other",
                &sig,
                scratch.path()
            ),
            "ssh-keygen -Y verify accepted {stem}.sig over other bytes"
        );
    }
}
