//! Unit tests for the allowed_signers parser; the cross-checks against
//! `ssh-keygen` live in `bus/tests/sig_allowed_signers.rs`.

use super::*;
use crate::sig::pattern::glob_match;
use crate::sig::{REQUEST_NAMESPACE, RESULT_NAMESPACE, generate_ed25519, public_key_line};
use time::macros::datetime;

type TestResult = Result<(), SigError>;

fn new_key() -> Result<PublicKey, SigError> {
    Ok(generate_ed25519("test")?.public_key().clone())
}

fn syntax_error(text: &str) -> (usize, String) {
    match AllowedSigners::parse(text) {
        Err(SigError::AllowedSignersSyntax { line, message, .. }) => (line, message),
        other => panic!("expected a syntax error for {text:?}, got {other:?}"),
    }
}

const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

#[test]
fn parses_principals_options_key_and_comment() -> TestResult {
    let key = new_key()?;
    let line = public_key_line(&key);
    let text = format!(
        "# header comment\n\n  alice@example.com,bob namespaces=\"macbridge-request-v1,git\",\
         valid-after=\"20250101\",VALID-BEFORE=\"20270102030405Z\" {line} alice's laptop\n"
    );
    let signers = AllowedSigners::parse(&text)?;
    let [entry] = signers.entries() else {
        panic!("expected one entry, got {:?}", signers.entries());
    };
    assert_eq!(entry.principals, ["alice@example.com", "bob"]);
    assert_eq!(
        entry.namespaces.as_deref(),
        Some(&["macbridge-request-v1".to_owned(), "git".to_owned()][..])
    );
    assert_eq!(entry.valid_after, Some(datetime!(2025-01-01 0:00 UTC)));
    assert_eq!(entry.valid_before, Some(datetime!(2027-01-02 03:04:05 UTC)));
    assert_eq!(entry.key.key_data(), key.key_data());
    assert_eq!(entry.key.comment(), "alice's laptop");
    assert_eq!(entry.line, 3);
    Ok(())
}

#[test]
fn quoted_principals_and_escaped_option_quotes() -> TestResult {
    let line = public_key_line(&new_key()?);
    let text = format!("\"alice smith,bob\"\tnamespaces=\"a\\\"b,c d\" {line}\n");
    let signers = AllowedSigners::parse(&text)?;
    let entry = &signers.entries()[0];
    assert_eq!(entry.principals, ["alice smith", "bob"]);
    assert_eq!(
        entry.namespaces.as_deref(),
        Some(&["a\"b".to_owned(), "c d".to_owned()][..])
    );
    Ok(())
}

#[test]
fn authorize_returns_principals_of_every_matching_line() -> TestResult {
    let key = new_key()?;
    let other = new_key()?;
    let (k, o) = (public_key_line(&key), public_key_line(&other));
    let text = format!(
        "alice,bob {k}\nbob,carol namespaces=\"{REQUEST_NAMESPACE}\" {k}\n\
         dave namespaces=\"git\" {k}\nerin {o}\n"
    );
    let signers = AllowedSigners::parse(&text)?;
    assert_eq!(
        signers.authorize(&key, REQUEST_NAMESPACE, NOW)?,
        ["alice", "bob", "carol"]
    );
    assert_eq!(
        signers.authorize(&key, RESULT_NAMESPACE, NOW)?,
        ["alice", "bob"]
    );
    assert_eq!(signers.authorize(&other, "anything", NOW)?, ["erin"]);
    assert_eq!(
        signers.principals(),
        ["alice", "bob", "carol", "dave", "erin"]
    );
    Ok(())
}

#[test]
fn unknown_key_is_refused() -> TestResult {
    let signers = AllowedSigners::parse(&format!("alice {}\n", public_key_line(&new_key()?)))?;
    let stranger = new_key()?;
    match signers.authorize(&stranger, REQUEST_NAMESPACE, NOW) {
        Err(SigError::UnknownKey { fingerprint: fp }) => assert_eq!(fp, fingerprint(&stranger)),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    Ok(())
}

#[test]
fn namespace_restriction_is_enforced() -> TestResult {
    let key = new_key()?;
    let text = format!(
        "alice namespaces=\"{RESULT_NAMESPACE}\" {}\n",
        public_key_line(&key)
    );
    let signers = AllowedSigners::parse(&text)?;
    match signers.authorize(&key, REQUEST_NAMESPACE, NOW) {
        Err(e @ SigError::NamespaceNotAllowed { line: 1, .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("may not sign in namespace \"macbridge-request-v1\""),
                "{text}"
            );
            assert!(
                text.contains("namespaces=\"macbridge-result-v1\""),
                "{text}"
            );
        }
        other => panic!("expected NamespaceNotAllowed, got {other:?}"),
    }
    Ok(())
}

#[test]
fn validity_window_is_inclusive_and_enforced() -> TestResult {
    let key = new_key()?;
    let text = format!(
        "alice valid-after=\"20260101Z\",valid-before=\"20261231235959Z\" {}\n",
        public_key_line(&key)
    );
    let signers = AllowedSigners::parse(&text)?;
    let ns = REQUEST_NAMESPACE;
    signers.authorize(&key, ns, datetime!(2026-01-01 0:00 UTC))?;
    signers.authorize(&key, ns, datetime!(2026-12-31 23:59:59 UTC))?;
    match signers.authorize(&key, ns, datetime!(2025-12-31 23:59:59 UTC)) {
        Err(e @ SigError::KeyNotYetValid { .. }) => {
            assert!(
                e.to_string()
                    .contains("is not valid until 2026-01-01T00:00:00Z"),
                "{e}"
            );
        }
        other => panic!("expected KeyNotYetValid, got {other:?}"),
    }
    match signers.authorize(&key, ns, datetime!(2027-01-01 0:00 UTC)) {
        Err(e @ SigError::KeyExpired { .. }) => {
            assert!(
                e.to_string().contains("expired at 2026-12-31T23:59:59Z"),
                "{e}"
            );
        }
        other => panic!("expected KeyExpired, got {other:?}"),
    }
    Ok(())
}

#[test]
fn namespace_patterns_follow_openssh() -> TestResult {
    let key = new_key()?;
    let text = format!(
        "alice namespaces=\"macbridge-*-v1,!macbridge-claim-*,file?\" {}\n",
        public_key_line(&key)
    );
    let signers = AllowedSigners::parse(&text)?;
    signers.authorize(&key, REQUEST_NAMESPACE, NOW)?;
    signers.authorize(&key, RESULT_NAMESPACE, NOW)?;
    signers.authorize(&key, "files", NOW)?;
    for refused in [
        "macbridge-claim-v1",
        "file",
        "filess",
        "git",
        "macbridge-request-v2",
    ] {
        assert!(
            matches!(
                signers.authorize(&key, refused, NOW),
                Err(SigError::NamespaceNotAllowed { .. })
            ),
            "{refused} should be refused"
        );
    }
    Ok(())
}

#[test]
fn glob_matching() {
    let cases = [
        ("*", "", true),
        ("*", "abc", true),
        ("a*c", "abbbc", true),
        ("a*c", "abcd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*@example.com", "alice@example.com", true),
        ("*b*b", "abab", true),
        ("ab", "abc", false),
        ("", "", true),
        ("**x", "yyx", true),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(
            glob_match(pattern.as_bytes(), text.as_bytes()),
            expected,
            "{pattern} vs {text}"
        );
    }
}

#[test]
fn wildcard_principals_are_kept_verbatim() -> TestResult {
    let key = new_key()?;
    let signers = AllowedSigners::parse(&format!("*@example.com {}\n", public_key_line(&key)))?;
    assert_eq!(
        signers.authorize(&key, REQUEST_NAMESPACE, NOW)?,
        ["*@example.com"]
    );
    Ok(())
}

#[test]
fn other_key_types_parse_but_are_distinct() -> TestResult {
    // A file shared with git may list non-ed25519 keys; they must not break parsing.
    let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPJ/\
                 9EUJzgtrBuxRSYysYJUtXgN7ZItpPARxrQU8jPQiMBj7aeFiNJ5BqJLVACDNN6RkI8XzBvoAHn3Zri\
                 lr734=";
    let signers = AllowedSigners::parse(&format!("bob {ecdsa}\n"))?;
    assert_eq!(signers.entries().len(), 1);
    assert!(
        signers
            .authorize(&new_key()?, REQUEST_NAMESPACE, NOW)
            .is_err()
    );
    Ok(())
}

#[test]
fn malformed_lines_name_the_line_and_the_problem() -> TestResult {
    let key = public_key_line(&new_key()?);
    let cases: Vec<(String, &str)> = vec![
        ("alice".to_owned(), "missing public key"),
        (
            format!("\"alice {key}"),
            "unterminated quote in the principals",
        ),
        (format!("alice,,bob {key}"), "empty principal"),
        (key.clone(), "principals are missing"),
        ("alice ssh-ed25519".to_owned(), "missing base64 key data"),
        (
            "alice ssh-ed25519 AAAA!!notbase64".to_owned(),
            "invalid public key",
        ),
        (
            format!("alice cert-authority {key}"),
            "cert-authority option is not supported",
        ),
        (
            format!("alice no-touch-required {key}"),
            "unsupported option",
        ),
        (
            format!("alice verify-required,namespaces=\"x\" {key}"),
            "unsupported option",
        ),
        (
            format!("alice namespaces=x {key}"),
            "value must be in double quotes",
        ),
        (
            format!("alice namespaces=\"x {key}"),
            "unterminated quote in the options",
        ),
        (format!("alice namespaces {key}"), "needs a quoted value"),
        (format!("alice namespaces=\"\" {key}"), "empty namespace"),
        (
            format!("alice namespaces=\"a,,b\" {key}"),
            "empty namespace",
        ),
        (
            format!("alice namespaces=\"a\",namespaces=\"b\" {key}"),
            "given twice",
        ),
        (format!("alice namespaces=\"a\", {key}"), "trailing comma"),
        (format!("alice namespaces=\"a\"x {key}"), "expected a comma"),
        (format!("alice valid-after=\"2026\" {key}"), "invalid time"),
        (
            format!("alice valid-after=\"20261301\" {key}"),
            "invalid time",
        ),
        (
            format!("alice valid-after=\"20260230\" {key}"),
            "invalid time",
        ),
        (
            format!("alice valid-after=\"202601012460\" {key}"),
            "invalid time",
        ),
        (
            format!("alice valid-before=\"2026010a\" {key}"),
            "invalid time",
        ),
        (
            format!("alice valid-after=\"20260102\",valid-before=\"20260101\" {key}"),
            "not later than valid-after",
        ),
        (
            "alice namespaces=\"a\"".to_owned(),
            "missing public key after the options",
        ),
    ];
    for (bad, expected) in cases {
        let text = format!("# comment\n\nok {key}\n{bad}\nok2 {key}\n");
        let (line, message) = syntax_error(&text);
        assert_eq!(line, 4, "wrong line for {bad:?}: {message}");
        assert!(
            message.contains(expected),
            "{bad:?}: {message:?} lacks {expected:?}"
        );
    }
    Ok(())
}

#[test]
fn error_display_has_origin_and_line() -> TestResult {
    let err = AllowedSigners::parse("\n\nalice cert-authority ssh-ed25519 AAAA\n").err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.starts_with("allowed_signers:3: the cert-authority option"),
        "{text}"
    );
    Ok(())
}

#[test]
fn from_file_reports_path_and_missing_files() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("allowed_signers");
    let missing = AllowedSigners::from_file(&path)
        .err()
        .map(|e| e.to_string());
    assert!(
        missing
            .unwrap_or_default()
            .starts_with("cannot read allowed_signers file")
    );
    std::fs::write(&path, "alice bogus-option\n")?;
    let text = AllowedSigners::from_file(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        text.starts_with(&format!("{}:1: ", path.display())),
        "{text}"
    );
    let key = new_key()?;
    std::fs::write(&path, format!("alice {}\n", public_key_line(&key)))?;
    let signers = AllowedSigners::from_file(&path)?;
    assert_eq!(signers.authorize(&key, REQUEST_NAMESPACE, NOW)?, ["alice"]);
    Ok(())
}

#[test]
fn empty_and_comment_only_files_have_no_entries() -> TestResult {
    let signers = AllowedSigners::parse("# nobody yet\n\n   \n")?;
    assert!(signers.entries().is_empty());
    assert!(signers.principals().is_empty());
    Ok(())
}
