//! Every accepted key type against the real `ssh-keygen`, both ways: ECDSA P-256/P-384 and
//! RSA-2048 signatures made here verify with `ssh-keygen -Y verify`, and ssh-keygen's verify
//! here; RSA under 2048 bits is refused at load, sign and verify; security-key signatures
//! (the software-made fixture in tests/data/sk, see its README) verify, and refuse tampering,
//! another namespace and a missing user-presence flag.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use macbridge_bus::sig::{
    REQUEST_NAMESPACE, SigError, fingerprint, key_type, load_private_key, load_public_key, sign,
    verify,
};

type TestResult = Result<(), Box<dyn Error>>;

const MESSAGE: &[u8] = b"{\"schema_version\":1,\"preset\":\"sleep\"}\n";

fn run(cmd: &mut Command) -> Result<std::process::Output, Box<dyn Error>> {
    Ok(cmd.stdin(Stdio::null()).output()?)
}

fn keygen(dir: &Path, name: &str, kind: &str, bits: &str) -> Result<PathBuf, Box<dyn Error>> {
    let path = dir.join(name);
    let out = run(Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-b", bits, "-N", "", "-C", name, "-f"])
        .arg(&path))?;
    assert!(out.status.success(), "{out:?}");
    Ok(path)
}

/// `ssh-keygen -Y verify` of `sig` over MESSAGE for a signer line `public`.
fn openssh_accepts(dir: &Path, public: &str, sig: &str) -> Result<bool, Box<dyn Error>> {
    let signers = dir.join("allowed_signers");
    fs::write(&signers, format!("someone {public}\n"))?;
    let sig_path = dir.join("check.sig");
    fs::write(&sig_path, sig)?;
    let msg = dir.join("check.msg");
    fs::write(&msg, MESSAGE)?;
    let out = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-I",
            "someone",
            "-n",
            REQUEST_NAMESPACE,
            "-f",
        ])
        .arg(&signers)
        .arg("-s")
        .arg(&sig_path)
        .stdin(fs::File::open(&msg)?)
        .output()?;
    Ok(out.status.success())
}

fn openssh_sign(key: &Path, dir: &Path) -> Result<String, Box<dyn Error>> {
    let msg = dir.join("to-sign");
    fs::write(&msg, MESSAGE)?;
    let _ = fs::remove_file(dir.join("to-sign.sig"));
    let out = run(Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", REQUEST_NAMESPACE, "-f"])
        .arg(key)
        .arg(&msg))?;
    assert!(out.status.success(), "{out:?}");
    Ok(fs::read_to_string(dir.join("to-sign.sig"))?)
}

#[test]
fn ecdsa_and_rsa_sign_and_verify_both_ways_with_openssh() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (name, kind, bits, expected) in [
        ("p256", "ecdsa", "256", "ecdsa-sha2-nistp256"),
        ("p384", "ecdsa", "384", "ecdsa-sha2-nistp384"),
        ("rsa2048", "rsa", "2048", "ssh-rsa"),
        ("rsa4096", "rsa", "4096", "ssh-rsa"),
    ] {
        let path = keygen(dir.path(), name, kind, bits)?;
        let public = load_public_key(&path.with_extension("pub"))?;
        assert_eq!(key_type(public.key_data()), expected);
        let line = public.to_openssh()?;

        let ours = sign(&load_private_key(&path)?, REQUEST_NAMESPACE, MESSAGE)?;
        assert!(
            openssh_accepts(dir.path(), &line, &ours)?,
            "{name}: ssh-keygen refused ours"
        );
        if kind == "rsa" {
            assert!(ours.len() > 500, "{name}");
        }
        let theirs = openssh_sign(&path, dir.path())?;
        let signer = verify(&theirs, REQUEST_NAMESPACE, MESSAGE)?;
        assert_eq!(fingerprint(&signer), fingerprint(&public), "{name}");
        assert!(matches!(
            verify(&theirs, REQUEST_NAMESPACE, b"other bytes"),
            Err(SigError::BadSignature)
        ));
    }
    Ok(())
}

#[test]
fn rsa_under_2048_bits_is_refused_everywhere() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = keygen(dir.path(), "rsa1024", "rsa", "1024")?;
    for err in [
        load_private_key(&path).err(),
        load_public_key(&path.with_extension("pub")).err(),
    ] {
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("1024-bit RSA key"), "{text}");
    }
    let theirs = openssh_sign(&path, dir.path())?;
    match verify(&theirs, REQUEST_NAMESPACE, MESSAGE) {
        Err(e @ SigError::RsaKeySize { bits: 1024, .. }) => {
            assert!(e.to_string().contains("2048 to 4096 bits"), "{e}");
        }
        other => panic!("expected RsaKeySize, got {other:?}"),
    }
    Ok(())
}

fn fixture(name: &str) -> Result<String, Box<dyn Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sk")
        .join(name);
    Ok(fs::read_to_string(path)?)
}

#[test]
fn security_key_fixture_signatures_verify_and_need_user_presence() -> TestResult {
    let message = fixture("message.json")?;
    for (stem, expected) in [
        ("sk-ed25519", "sk-ssh-ed25519@openssh.com"),
        ("sk-ecdsa", "sk-ecdsa-sha2-nistp256@openssh.com"),
    ] {
        let public =
            macbridge_bus::sig::parse_public_text(stem, &fixture(&format!("{stem}.pub"))?)?;
        assert_eq!(key_type(public.key_data()), expected);
        let sig = fixture(&format!("{stem}.sig"))?;
        let signer = verify(&sig, REQUEST_NAMESPACE, message.as_bytes())?;
        assert_eq!(signer.key_data(), public.key_data(), "{stem}");
        assert!(matches!(
            verify(&sig, REQUEST_NAMESPACE, b"tampered"),
            Err(SigError::BadSignature)
        ));
        assert!(matches!(
            verify(&sig, "macbridge-result-v1", message.as_bytes()),
            Err(SigError::NamespaceMismatch { .. })
        ));
        let untouched = fixture(&format!("{stem}.untouched.sig"))?;
        match verify(&untouched, REQUEST_NAMESPACE, message.as_bytes()) {
            Err(e @ SigError::NoUserPresence { flags: 0 }) => {
                assert!(e.to_string().contains("user-presence"), "{e}");
            }
            other => panic!("{stem}: expected NoUserPresence, got {other:?}"),
        }
    }
    Ok(())
}
