//! Interoperability of `macbridge_bus::sig` with the real OpenSSH `ssh-keygen`,
//! in both directions: keys, fingerprints and SSHSIG signatures.
//!
//! These tests need `ssh-keygen`; without it they fail (not skip), because
//! interop is the whole point of using OpenSSH formats.

use std::error::Error;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use macbridge_bus::sig::{
    REQUEST_NAMESPACE, RESULT_NAMESPACE, SigError, fingerprint, generate_ed25519, load_private_key,
    load_public_key, public_key_line, sign, verify, write_keypair,
};

type TestResult = Result<(), Box<dyn Error>>;

const MESSAGE: &[u8] = b"{\"schema_version\":1,\"preset\":\"env-probe\"}\n";

fn ssh_keygen_path() -> PathBuf {
    let fixed = Path::new("/usr/bin/ssh-keygen");
    if fixed.exists() {
        fixed.to_path_buf()
    } else {
        PathBuf::from("ssh-keygen")
    }
}

/// Runs `ssh-keygen` with `args`, feeding `stdin`; panics loudly if it cannot start.
fn ssh_keygen(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(ssh_keygen_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ssh-keygen is required for the interop tests: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // A refused signature may make ssh-keygen exit before reading stdin.
        let _ = input.write_all(stdin);
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for ssh-keygen: {e}"))
}

fn ok(output: &Output) -> Result<String, Box<dyn Error>> {
    if output.status.success() {
        Ok(String::from_utf8(output.stdout.clone())?)
    } else {
        Err(format!(
            "ssh-keygen failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

fn path_str(path: &Path) -> Result<&str, Box<dyn Error>> {
    path.to_str().ok_or_else(|| "non-UTF-8 temp path".into())
}

/// Generates an unencrypted key with ssh-keygen itself.
fn keygen_key(
    dir: &Path,
    name: &str,
    kind: &str,
    extra: &[&str],
) -> Result<PathBuf, Box<dyn Error>> {
    let path = dir.join(name);
    let mut args = vec!["-q", "-t", kind, "-N", "", "-C", "made-by-ssh-keygen", "-f"];
    args.push(path_str(&path)?);
    args.extend_from_slice(extra);
    ok(&ssh_keygen(&args, b""))?;
    Ok(path)
}

/// `ssh-keygen -Y verify` against an allowed_signers file holding `line`.
fn keygen_verify(
    dir: &Path,
    line: &str,
    principal: &str,
    ns: &str,
    sig: &str,
    msg: &[u8],
) -> Result<Output, Box<dyn Error>> {
    let allowed = dir.join("allowed_signers");
    fs::write(&allowed, format!("{line}\n"))?;
    let sig_path = dir.join("message.sig");
    fs::write(&sig_path, sig)?;
    Ok(ssh_keygen(
        &[
            "-Y",
            "verify",
            "-f",
            path_str(&allowed)?,
            "-I",
            principal,
            "-n",
            ns,
            "-s",
            path_str(&sig_path)?,
        ],
        msg,
    ))
}

#[test]
fn ssh_keygen_signatures_verify_with_ours() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key_path = keygen_key(dir.path(), "id_ed25519", "ed25519", &[])?;
    let msg_path = dir.path().join("request.json");
    fs::write(&msg_path, MESSAGE)?;
    ok(&ssh_keygen(
        &[
            "-Y",
            "sign",
            "-f",
            path_str(&key_path)?,
            "-n",
            REQUEST_NAMESPACE,
            path_str(&msg_path)?,
        ],
        b"",
    ))?;
    let armored = fs::read_to_string(dir.path().join("request.json.sig"))?;

    let signer = verify(&armored, REQUEST_NAMESPACE, MESSAGE)?;
    let expected = load_public_key(&key_path.with_extension("pub"))?;
    assert_eq!(signer.key_data(), expected.key_data());

    match verify(&armored, RESULT_NAMESPACE, MESSAGE) {
        Err(SigError::NamespaceMismatch { found, .. }) => assert_eq!(found, REQUEST_NAMESPACE),
        other => panic!("wrong namespace accepted or misreported: {other:?}"),
    }
    let mut tampered = MESSAGE.to_vec();
    tampered[3] ^= 1;
    assert!(matches!(
        verify(&armored, REQUEST_NAMESPACE, &tampered),
        Err(SigError::BadSignature)
    ));

    // ed25519 is deterministic: signing the same bytes with the same key must
    // reproduce ssh-keygen's file byte for byte.
    let private = load_private_key(&key_path)?;
    assert_eq!(sign(&private, REQUEST_NAMESPACE, MESSAGE)?, armored);
    Ok(())
}

#[test]
fn ssh_keygen_sha256_signatures_verify_with_ours() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key_path = keygen_key(dir.path(), "k", "ed25519", &[])?;
    let msg_path = dir.path().join("m");
    fs::write(&msg_path, MESSAGE)?;
    ok(&ssh_keygen(
        &[
            "-Y",
            "sign",
            "-f",
            path_str(&key_path)?,
            "-n",
            RESULT_NAMESPACE,
            "-O",
            "hashalg=sha256",
            path_str(&msg_path)?,
        ],
        b"",
    ))?;
    let armored = fs::read_to_string(dir.path().join("m.sig"))?;
    verify(&armored, RESULT_NAMESPACE, MESSAGE)?;
    Ok(())
}

#[test]
fn our_signatures_verify_with_ssh_keygen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = generate_ed25519("runner-1")?;
    let armored = sign(&key, REQUEST_NAMESPACE, MESSAGE)?;
    let line = format!(
        "alice@example.com namespaces=\"{REQUEST_NAMESPACE}\" {}",
        public_key_line(key.public_key())
    );
    let good = keygen_verify(
        dir.path(),
        &line,
        "alice@example.com",
        REQUEST_NAMESPACE,
        &armored,
        MESSAGE,
    )?;
    let stdout = ok(&good)?;
    assert!(stdout.contains(&fingerprint(key.public_key())), "{stdout}");

    let wrong_ns = keygen_verify(
        dir.path(),
        &line,
        "alice@example.com",
        RESULT_NAMESPACE,
        &armored,
        MESSAGE,
    )?;
    assert!(
        !wrong_ns.status.success(),
        "ssh-keygen accepted the wrong namespace"
    );

    let wrong_ns_unrestricted = keygen_verify(
        dir.path(),
        &format!("alice@example.com {}", public_key_line(key.public_key())),
        "alice@example.com",
        RESULT_NAMESPACE,
        &armored,
        MESSAGE,
    )?;
    assert!(
        !wrong_ns_unrestricted.status.success(),
        "namespace is part of the signature"
    );

    let tampered = keygen_verify(
        dir.path(),
        &line,
        "alice@example.com",
        REQUEST_NAMESPACE,
        &armored,
        b"{}",
    )?;
    assert!(
        !tampered.status.success(),
        "ssh-keygen accepted a tampered message"
    );

    // find-principals maps our signature back to its principal.
    let sig_path = dir.path().join("message.sig");
    let allowed = dir.path().join("allowed_signers");
    let found = ok(&ssh_keygen(
        &[
            "-Y",
            "find-principals",
            "-f",
            path_str(&allowed)?,
            "-s",
            path_str(&sig_path)?,
        ],
        b"",
    ))?;
    assert_eq!(found.trim(), "alice@example.com");
    Ok(())
}

#[test]
fn our_key_files_are_read_by_ssh_keygen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("id_macbridge");
    let key = generate_ed25519("runner@mac-mini")?;
    write_keypair(&path, &key)?;

    let pub_text = fs::read_to_string(dir.path().join("id_macbridge.pub"))?;
    assert_eq!(
        pub_text,
        format!("{} runner@mac-mini\n", public_key_line(key.public_key()))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    }

    // ssh-keygen derives the same public key from our private key file.
    let derived = ok(&ssh_keygen(&["-y", "-f", path_str(&path)?], b""))?;
    assert_eq!(derived.trim_end(), pub_text.trim_end());

    // Fingerprints match `ssh-keygen -lf`, for the private and the public file.
    for file in [path.clone(), dir.path().join("id_macbridge.pub")] {
        let listed = ok(&ssh_keygen(&["-lf", path_str(&file)?], b""))?;
        let fp = listed.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(fp, fingerprint(key.public_key()), "{listed}");
    }

    // And our loaders read back what we wrote.
    let loaded = load_private_key(&path)?;
    assert_eq!(loaded.public_key().key_data(), key.public_key().key_data());
    assert_eq!(
        load_public_key(&path)?.key_data(),
        key.public_key().key_data()
    );
    Ok(())
}

#[test]
fn ssh_keygen_key_fingerprint_matches_ours() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key_path = keygen_key(dir.path(), "k", "ed25519", &[])?;
    let listed = ok(&ssh_keygen(&["-lf", path_str(&key_path)?], b""))?;
    let ours = fingerprint(&load_public_key(&key_path)?);
    assert_eq!(listed.split_whitespace().nth(1), Some(ours.as_str()));
    assert_eq!(
        fingerprint(&load_public_key(&key_path.with_extension("pub"))?),
        ours
    );
    Ok(())
}

#[test]
fn write_keypair_never_overwrites() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("k");
    write_keypair(&path, &generate_ed25519("first")?)?;
    let before = fs::read(&path)?;
    let second = write_keypair(&path, &generate_ed25519("second")?);
    assert!(
        matches!(second, Err(SigError::AlreadyExists { .. })),
        "{second:?}"
    );
    assert_eq!(fs::read(&path)?, before);

    // An existing .pub alone is also refused, and no private key is left behind.
    let other = dir.path().join("other");
    fs::write(dir.path().join("other.pub"), "x")?;
    let res = write_keypair(&other, &generate_ed25519("x")?);
    assert!(
        matches!(res, Err(SigError::AlreadyExists { .. })),
        "{res:?}"
    );
    assert!(!other.exists());
    Ok(())
}

#[test]
fn encrypted_keys_are_refused_with_advice_but_their_public_half_loads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("locked");
    ok(&ssh_keygen(
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "correct horse",
            "-C",
            "locked",
            "-f",
            path_str(&path)?,
        ],
        b"",
    ))?;
    match load_private_key(&path) {
        Err(e @ SigError::Encrypted { .. }) => {
            let text = e.to_string();
            assert!(text.contains("is passphrase-protected"), "{text}");
            assert!(text.contains("ssh-agent"), "{text}");
        }
        other => panic!("expected an Encrypted error, got {other:?}"),
    }
    let public = load_public_key(&path)?;
    assert_eq!(
        public.key_data(),
        load_public_key(&dir.path().join("locked.pub"))?.key_data()
    );
    Ok(())
}

#[test]
fn unsupported_key_types_and_signatures_are_refused_clearly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p521 = keygen_key(dir.path(), "ec", "ecdsa", &["-b", "521"])?;
    for result in [
        load_private_key(&p521).map(|_| ()),
        load_public_key(&dir.path().join("ec.pub")).map(|_| ()),
    ] {
        match result {
            Err(e @ SigError::UnsupportedKey { .. }) => {
                assert!(
                    e.to_string()
                        .contains("ecdsa-sha2-nistp521 key; macbridge accepts ssh-ed25519"),
                    "{e}"
                );
            }
            other => panic!("expected UnsupportedKey, got {other:?}"),
        }
    }

    let msg_path = dir.path().join("m");
    fs::write(&msg_path, MESSAGE)?;
    ok(&ssh_keygen(
        &[
            "-Y",
            "sign",
            "-f",
            path_str(&p521)?,
            "-n",
            REQUEST_NAMESPACE,
            path_str(&msg_path)?,
        ],
        b"",
    ))?;
    let armored = fs::read_to_string(dir.path().join("m.sig"))?;
    match verify(&armored, REQUEST_NAMESPACE, MESSAGE) {
        Err(e @ SigError::UnsupportedSignatureKey { .. }) => {
            assert!(e.to_string().contains("ecdsa-sha2-nistp521"), "{e}");
        }
        other => panic!("expected UnsupportedSignatureKey, got {other:?}"),
    }

    // Legacy PEM private keys are named as such.
    let pem = keygen_key(dir.path(), "pem", "ecdsa", &["-m", "PEM"])?;
    let err = load_private_key(&pem)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("-----BEGIN EC PRIVATE KEY----- is not supported"),
        "{err}"
    );
    Ok(())
}

#[test]
fn loader_errors_name_the_problem() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key_path = keygen_key(dir.path(), "k", "ed25519", &[])?;
    let pub_path = dir.path().join("k.pub");
    let err = load_private_key(&pub_path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("this is a public key"), "{err}");

    let missing = load_private_key(&dir.path().join("nope")).err();
    assert!(matches!(missing, Some(SigError::Io { .. })), "{missing:?}");

    let empty = dir.path().join("empty.pub");
    fs::write(&empty, "\n# nothing\n")?;
    let err = load_public_key(&empty)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("the file is empty"), "{err}");

    // A group-readable key still loads (with a warning in the log).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644))?;
        load_private_key(&key_path)?;
    }
    Ok(())
}
