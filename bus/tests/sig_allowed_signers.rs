//! Cross-checks of our allowed_signers handling against `ssh-keygen -Y verify`:
//! for each file and verification time, both must reach the same decision.
//! `-Overify-time` pins OpenSSH's clock so the validity windows are tested at
//! their boundaries, and every time carries `Z` (OpenSSH reads times without
//! it as local time; we read them as UTC).

use std::error::Error;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use macbridge_bus::sig::{
    AllowedSigners, REQUEST_NAMESPACE, RESULT_NAMESPACE, generate_ed25519, public_key_line, sign,
    verify,
};
use time::OffsetDateTime;
use time::macros::{datetime, format_description};

type TestResult = Result<(), Box<dyn Error>>;

const MESSAGE: &[u8] = b"{\"preset\":\"codec-eval\"}";

/// What `ssh-keygen -Y verify` decides (true = "Good signature").
fn keygen_accepts(
    dir: &Path,
    file: &str,
    principal: &str,
    ns: &str,
    sig: &str,
    at: OffsetDateTime,
) -> Result<bool, Box<dyn Error>> {
    let allowed = dir.join("allowed_signers");
    let sig_path = dir.join("msg.sig");
    fs::write(&allowed, file)?;
    fs::write(&sig_path, sig)?;
    let when = at.format(format_description!(
        "[year][month][day][hour][minute][second]Z"
    ))?;
    let mut child = Command::new("/usr/bin/ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(&allowed)
        .args(["-I", principal, "-n", ns, "-s"])
        .arg(&sig_path)
        .arg(format!("-Overify-time={when}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("/usr/bin/ssh-keygen is required for these tests: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(MESSAGE);
    }
    Ok(child.wait()?.success())
}

/// What we decide: parse, verify the signature, authorize the key, and
/// check that `principal` is among the principals returned.
fn we_accept(file: &str, principal: &str, ns: &str, sig: &str, at: OffsetDateTime) -> bool {
    let Ok(signers) = AllowedSigners::parse(file) else {
        return false;
    };
    let Ok(key) = verify(sig, ns, MESSAGE) else {
        return false;
    };
    signers
        .authorize(&key, ns, at)
        .is_ok_and(|principals| principals.iter().any(|p| p == principal))
}

#[test]
fn decisions_agree_with_ssh_keygen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let key = generate_ed25519("cross-check")?;
    let other = generate_ed25519("other")?;
    let k = public_key_line(key.public_key());
    let o = public_key_line(other.public_key());
    let sig = sign(&key, REQUEST_NAMESPACE, MESSAGE)?;
    let req = REQUEST_NAMESPACE;
    let now = datetime!(2026-06-01 12:00 UTC);

    // (allowed_signers text, -I principal, -n namespace, time, expected decision)
    let cases: Vec<(String, &str, &str, OffsetDateTime, bool)> = vec![
        (format!("alice {k}\n"), "alice", req, now, true),
        (
            format!("alice {k}\n"),
            "alice",
            RESULT_NAMESPACE,
            now,
            false,
        ),
        (format!("alice {o}\n"), "alice", req, now, false),
        (format!("carol {k}\n"), "alice", req, now, false),
        (format!("alice,bob {k}\n"), "bob", req, now, true),
        (format!("\"alice,bob\" {k}\n"), "bob", req, now, true),
        (
            format!("# comment\n\n  alice {k} laptop key\n"),
            "alice",
            req,
            now,
            true,
        ),
        (
            format!("alice namespaces=\"{req}\" {k}\n"),
            "alice",
            req,
            now,
            true,
        ),
        (
            format!("alice namespaces=\"{RESULT_NAMESPACE}\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        (
            format!("alice namespaces=\"git,macbridge-*\" {k}\n"),
            "alice",
            req,
            now,
            true,
        ),
        (
            format!("alice namespaces=\"macbridge-request-v?\" {k}\n"),
            "alice",
            req,
            now,
            true,
        ),
        (
            format!("alice namespaces=\"!macbridge-request-*,macbridge-*\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        (
            format!("alice NAMESPACES=\"{req}\" {k}\n"),
            "alice",
            req,
            now,
            true,
        ),
        (
            format!("alice valid-before=\"20200101Z\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        (
            format!("alice valid-after=\"20990101Z\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        (
            format!(
                "alice namespaces=\"{req}\",valid-after=\"20250101Z\",valid-before=\"20270101Z\" {k}\n"
            ),
            "alice",
            req,
            now,
            true,
        ),
        // Boundaries: both ends inclusive.
        (
            format!("alice valid-before=\"20260601120000Z\" {k}\n"),
            "alice",
            req,
            now,
            true,
        ),
        (
            format!("alice valid-before=\"20260601115959Z\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        (
            format!("alice valid-after=\"20260601120000Z\" {k}\n"),
            "alice",
            req,
            now,
            true,
        ),
        (
            format!("alice valid-after=\"20260601120001Z\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        (
            format!("alice valid-after=\"202606011201Z\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        // The key on two lines: the unrestricted line authorizes its principal only.
        (
            format!("alice namespaces=\"git\" {k}\nbob {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
        (
            format!("alice namespaces=\"git\" {k}\nbob {k}\n"),
            "bob",
            req,
            now,
            true,
        ),
        (
            format!("alice valid-before=\"20200101Z\" {k}\nalice {k}\n"),
            "alice",
            req,
            now,
            true,
        ),
        // Lines both refuse to use.
        (format!("alice foo=\"bar\" {k}\n"), "alice", req, now, false),
        (
            format!("alice valid-after=\"2026\" {k}\n"),
            "alice",
            req,
            now,
            false,
        ),
    ];
    for (file, principal, ns, at, expected) in cases {
        let theirs = keygen_accepts(dir.path(), &file, principal, ns, &sig, at)?;
        let ours = we_accept(&file, principal, ns, &sig, at);
        assert_eq!(
            theirs, expected,
            "ssh-keygen decided {theirs} for -I {principal} -n {ns} on {file:?}"
        );
        assert_eq!(
            ours, expected,
            "we decided {ours} for -I {principal} -n {ns} on {file:?}"
        );
    }
    Ok(())
}

#[test]
fn refusal_reasons_match_the_case() -> TestResult {
    // Same files as above, checking that our error says why.
    let key = generate_ed25519("why")?;
    let k = public_key_line(key.public_key());
    let now = datetime!(2026-06-01 12:00 UTC);
    let reason = |file: String| -> Result<String, Box<dyn Error>> {
        let signers = AllowedSigners::parse(&file)?;
        Ok(signers
            .authorize(key.public_key(), REQUEST_NAMESPACE, now)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default())
    };
    assert!(
        reason(format!("a valid-before=\"20200101Z\" {k}"))?
            .contains("expired at 2020-01-01T00:00:00Z")
    );
    assert!(
        reason(format!("a valid-after=\"20990101Z\" {k}"))?
            .contains("is not valid until 2099-01-01")
    );
    assert!(reason(format!("a namespaces=\"git\" {k}"))?.contains("may not sign in namespace"));
    let stranger = generate_ed25519("stranger")?;
    assert!(
        reason(format!("a {}", public_key_line(stranger.public_key())))?
            .contains("is not listed in allowed_signers")
    );
    Ok(())
}
