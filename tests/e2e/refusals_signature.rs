//! Refusals decided by the signature: missing, not over these bytes, by an unknown key, in the
//! wrong namespace, or by a key other than the one the manifest names. Each is crafted with
//! `git` plumbing and `ssh-keygen`, refused with a signed result, and nothing runs.

use crate::harness::*;

#[test]
fn unsigned_request_is_refused() {
    let w = World::new();
    let sealed = w.draft("sleep").param("ms", "1").seal();
    let commit = w.push_files(&sealed.branch, &[("request.json", &sealed.bytes)], None);
    let case = Case::rejected("unsigned", "unsigned", &sealed.branch, &commit)
        .id(&sealed.request_id)
        .mentions("request.sig");
    expect_refusals(&w, "sleep", &[case]);
}

#[test]
fn manifest_tampered_after_signing_is_refused() {
    let w = World::new();
    let sealed = w.draft("sleep").param("ms", "1").seal();
    let sig = w.sign(&sealed, &w.requester, REQUEST_NAMESPACE);
    // One byte changed after ssh-keygen signed: still valid JSON, but not what was signed.
    let text = String::from_utf8(sealed.bytes.clone()).unwrap();
    assert!(text.contains("\"ms\":\"1\""));
    let tampered = text
        .replacen("\"ms\":\"1\"", "\"ms\":\"9\"", 1)
        .into_bytes();
    assert_eq!(tampered.len(), sealed.bytes.len());
    let commit = w.push_files(
        &sealed.branch,
        &[("request.json", &tampered), ("request.sig", &sig)],
        None,
    );
    // The signature is checked before the bytes are believed, so the reason is the signature
    // (not the request_id the change also broke). The manifest no longer parses, so the
    // result names no request id.
    let case = Case::rejected("tampered", "bad_signature", &sealed.branch, &commit);
    expect_refusals(&w, "sleep", &[case]);
}

#[test]
fn key_not_in_allowed_signers_is_refused() {
    let w = World::new();
    let mallory = w.keygen("mallory");
    let sealed = Draft::new("sleep", &mallory.fingerprint)
        .param("ms", "1")
        .seal();
    let sig = w.sign(&sealed, &mallory, REQUEST_NAMESPACE);
    let commit = w.push_files(
        &sealed.branch,
        &[("request.json", &sealed.bytes), ("request.sig", &sig)],
        None,
    );
    let case = Case::rejected("unknown key", "unknown_signer", &sealed.branch, &commit)
        .id(&sealed.request_id)
        .mentions(&mallory.fingerprint);
    expect_refusals(&w, "sleep", &[case]);
}

#[test]
fn signature_in_the_wrong_namespace_is_refused() {
    let w = World::new();
    let mut cases = Vec::new();
    for namespace in ["git", RESULT_NAMESPACE, "macbridge-cancel-v1"] {
        let sealed = w.draft("sleep").param("ms", "1").seal();
        let sig = w.sign(&sealed, &w.requester, namespace);
        let commit = w.push_files(
            &sealed.branch,
            &[("request.json", &sealed.bytes), ("request.sig", &sig)],
            None,
        );
        cases.push(
            Case::rejected(
                format!("namespace {namespace}"),
                "bad_signature",
                &sealed.branch,
                &commit,
            )
            .id(&sealed.request_id)
            .mentions("namespace")
            .mentions(namespace),
        );
    }
    expect_refusals(&w, "sleep", &cases);
}

#[test]
fn manifest_naming_another_key_is_refused() {
    let w = World::new();
    let other = w.keygen("other");
    // Signed by the allowed requester, but claiming to come from another key.
    let draft = Draft::new("sleep", &other.fingerprint).param("ms", "1");
    let case = signed_case(&w, "requested_by mismatch", "signer_mismatch", &draft)
        .mentions(&other.fingerprint)
        .mentions(&w.requester.fingerprint);
    expect_refusals(&w, "sleep", &[case]);
}

#[test]
fn garbage_signature_file_is_refused() {
    let w = World::new();
    let sealed = w.draft("sleep").param("ms", "1").seal();
    let commit = w.push_files(
        &sealed.branch,
        &[
            ("request.json", &sealed.bytes),
            (
                "request.sig",
                b"-----BEGIN SSH SIGNATURE-----\nbm9wZQ==\n-----END SSH SIGNATURE-----\n",
            ),
        ],
        None,
    );
    let case = Case::rejected("garbage sig", "bad_signature", &sealed.branch, &commit)
        .id(&sealed.request_id);
    expect_refusals(&w, "sleep", &[case]);
}
