//! Refusals decided by what a properly signed manifest says: an unknown or changed preset,
//! parameters out of bounds or not integers, paths escaping the workload, bytes that are not
//! JSON, and manifests breaking the schema.

use serde_json::json;

use crate::harness::*;

/// Integer spellings the strict parser refuses, and values out of the `sleep` preset's bounds.
const BAD_MS: &[&str] = &[
    "600001", "-1", "+5", "5_0", " 5", "5 ", "1e3", "0x10", "５", "", "5.0",
];

#[test]
fn client_refuses_bad_params_before_pushing() {
    let w = World::new();
    for value in BAD_MS {
        let out = w.request_cli("sleep", &["--param", &format!("ms={value}")]);
        let out = out.expect_code(2);
        assert!(
            out.stderr.contains("ms"),
            "ms={value:?}: stderr should name the param: {out}"
        );
        assert!(
            out.stdout.trim().is_empty(),
            "ms={value:?}: nothing printed on stdout: {out}"
        );
    }
    let out = w
        .request_cli("sleep", &["--param", "bogus=1"])
        .expect_code(2);
    assert!(out.stderr.contains("bogus"), "{out}");
    assert!(
        w.bus_branches().is_empty(),
        "a refused request was pushed: {:?}",
        w.bus_branches()
    );
    // The same client pushes a good value, so the refusals above were about the values.
    w.request("sleep", &["--param", "ms=600000"]);
    assert_eq!(w.bus_branches().len(), 1);
}

#[test]
fn out_of_bounds_and_malformed_params_are_refused_by_the_runner() {
    let w = World::new();
    let mut cases: Vec<Case> = BAD_MS
        .iter()
        .map(|value| {
            let draft = w.draft("sleep").param("ms", value);
            signed_case(&w, &format!("ms={value:?}"), "invalid_params", &draft).mentions("ms")
        })
        .collect();
    for (label, params) in [
        ("native 600001", json!({"ms": 600001})),
        ("native float", json!({"ms": 1.5})),
        ("native bool", json!({"ms": true})),
        ("unknown param", json!({"ms": "1", "bogus": "1"})),
    ] {
        let draft = w.draft("sleep").set("params", params);
        cases.push(signed_case(&w, label, "invalid_params", &draft));
    }
    expect_refusals(&w, "sleep", &cases);
}

#[test]
fn unknown_or_changed_preset_is_refused() {
    let w = World::new();
    let unknown = w.draft("nope");
    let changed = w.draft("sleep").param("ms", "1").set(
        "preset_digest",
        craft::preset_digest("env-probe").unwrap().into(),
    );
    let cases = [
        signed_case(&w, "unknown preset", "unknown_preset", &unknown).mentions("nope"),
        signed_case(&w, "changed preset", "preset_changed", &changed).mentions("sleep"),
    ];
    expect_refusals(&w, "sleep", &cases);
}

/// A runner whose policy lets the requester run workload presets (so only the path decides).
fn workload_world() -> World {
    World::with_runner(RunnerSetup {
        policy: Some(format!(
            "principals:\n  {REQUESTER}: {{presets: [\"*\"], workload: true}}\n"
        )),
        ..Default::default()
    })
}

/// Push a `cargo-test` request with `manifest=path` on top of `workload`; returns its case.
fn cargo_test_case(w: &World, workload: &str, path: &str, code: &'static str) -> (Case, Sealed) {
    let draft = w
        .draft("cargo-test")
        .param("manifest", path)
        .set("workload", json!({ "commit": workload }));
    let sealed = draft.seal();
    let sig = w.sign(&sealed, &w.requester, REQUEST_NAMESPACE);
    let commit = w.push_files(
        &sealed.branch,
        &[("request.json", &sealed.bytes), ("request.sig", &sig)],
        Some(workload),
    );
    let case = Case::rejected(format!("manifest={path}"), code, &sealed.branch, &commit)
        .id(&sealed.request_id)
        .mentions(path);
    (case, sealed)
}

#[test]
fn path_params_escaping_the_workload_are_refused() {
    let w = workload_world();
    let cargo_toml = b"[package]\nname = \"w\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
    let workload = gitx::plain_commit(&w.scratch, &[("Cargo.toml", cargo_toml)]);
    let cases: Vec<Case> = [
        "../x",
        "/etc/passwd",
        "~/x",
        "a/../../x",
        "sub/../../Cargo.toml",
    ]
    .iter()
    .map(|path| cargo_test_case(&w, &workload, path, "invalid_params").0)
    .collect();
    expect_refusals(&w, "sleep", &cases);
}

#[test]
fn symlink_escape_in_the_workload_is_refused_before_the_job_starts() {
    let w = workload_world();
    let link = gitx::write_blob(&w.scratch, b"/etc");
    let toml = gitx::write_blob(
        &w.scratch,
        b"[package]\nname = \"w\"\nversion = \"0.1.0\"\n",
    );
    let tree = gitx::write_tree(
        &w.scratch,
        &[
            gitx::Entry {
                mode: "100644",
                kind: "blob",
                id: toml,
                name: "Cargo.toml".into(),
            },
            gitx::Entry {
                mode: "120000",
                kind: "blob",
                id: link,
                name: "escape".into(),
            },
        ],
    );
    let workload = gitx::git(
        &w.scratch,
        &["commit-tree", &tree, "-m", "symlink workload"],
    );
    // Lexically fine, so it passes verification; the runner must catch it in the checkout.
    let (case, sealed) = cargo_test_case(&w, &workload, "escape/passwd", "path_escape");
    w.runner_once();
    assert_refused(&w, &case.may_be_claimed());
    let job = w.work_dir.join("jobs").join(&sealed.request_id);
    for started in ["job.json", "stdout.log", "stderr.log"] {
        assert!(
            !job.join(started).exists(),
            "{started} exists: the job was started"
        );
    }
    assert!(
        !job.join("workspace/target").exists(),
        "cargo ran in the workspace"
    );
}

#[test]
fn bytes_that_are_not_a_manifest_are_refused() {
    let w = World::new();
    let branch = |what: &str| format!("refs/heads/mac-bridge/sleep-{}{what}", craft::nonce());
    let sign =
        |bytes: &[u8]| craft::ssh_sign(&w.requester.path, REQUEST_NAMESPACE, bytes, &w.files);
    let mut cases = Vec::new();

    let garbage = b"{not json\n";
    let b = branch("");
    let commit = w.push_files(
        &b,
        &[("request.json", garbage), ("request.sig", &sign(garbage))],
        None,
    );
    cases.push(Case::rejected("garbage JSON", "invalid_manifest", &b, &commit).mentions("JSON"));

    let b = branch("");
    let commit = w.push_files(&b, &[("request.sig", &sign(garbage))], None);
    cases.push(
        Case::rejected("no request.json", "no_manifest", &b, &commit).mentions("request.json"),
    );

    // Duplicate key: the canonical bytes with `"labels":[]` written twice.
    let sealed = w.draft("sleep").param("ms", "1").seal();
    let text = String::from_utf8(sealed.bytes.clone()).unwrap();
    let dup = text.replacen('{', "{\"labels\":[],", 1).into_bytes();
    let commit = w.push_files(
        &sealed.branch,
        &[("request.json", &dup), ("request.sig", &sign(&dup))],
        None,
    );
    cases.push(
        Case::rejected("duplicate key", "invalid_manifest", &sealed.branch, &commit)
            .mentions("duplicate"),
    );

    // Duplicate key one level down, inside `params`.
    let sealed = w.draft("sleep").param("ms", "1").seal();
    let text = String::from_utf8(sealed.bytes.clone()).unwrap();
    let dup = text
        .replacen("\"ms\":\"1\"", "\"ms\":\"1\",\"ms\":\"2\"", 1)
        .into_bytes();
    let sig = sign(&dup);
    let commit = w.push_files(
        &sealed.branch,
        &[("request.json", &dup), ("request.sig", &sig)],
        None,
    );
    cases.push(
        Case::rejected(
            "nested duplicate key",
            "invalid_manifest",
            &sealed.branch,
            &commit,
        )
        .mentions("duplicate"),
    );
    expect_refusals(&w, "sleep", &cases);
}

/// A request.json over the 64 KiB cap is refused as too large without being read (it once
/// was read as empty bytes and refused with a misleading `bad_signature`).
#[test]
fn oversized_manifest_is_refused_as_too_large() {
    let w = World::new();
    let draft = w
        .draft("sleep")
        .param("ms", "1")
        .param("pad", &"x".repeat(70 * 1024));
    let (sealed, commit) = w.push_signed(&draft);
    // Too large to read, so the result cannot name a request id.
    let case = Case::rejected(
        "70 KiB manifest",
        "invalid_manifest",
        &sealed.branch,
        &commit,
    )
    .mentions("limit");
    expect_refusals(&w, "sleep", &[case]);
}

#[test]
fn manifests_breaking_the_schema_are_refused() {
    let w = World::new();
    let base = || w.draft("sleep").param("ms", "1");
    let push = |label: &str, sealed: Sealed, mention: &str| {
        let sig = w.sign(&sealed, &w.requester, REQUEST_NAMESPACE);
        let commit = w.push_files(
            &sealed.branch,
            &[("request.json", &sealed.bytes), ("request.sig", &sig)],
            None,
        );
        Case::rejected(label, "invalid_manifest", &sealed.branch, &commit).mentions(mention)
    };
    let cases = [
        push(
            "unknown field",
            base().set("extra", "x".into()).seal(),
            "extra",
        ),
        push(
            "wrong request_id",
            base().seal_with_id(&"0".repeat(64)),
            "request_id",
        ),
        push(
            "schema_version 2",
            base().set("schema_version", 2.into()).seal(),
            "schema_version",
        ),
        push(
            "schema_version 1.0",
            base().set("schema_version", json!(1.0)).seal(),
            "1.0",
        ),
        push(
            "lifetime over 7 days",
            {
                let now = craft::unix_now();
                base()
                    .set("expires_at", craft::rfc3339(now + 8 * 86_400).into())
                    .seal()
            },
            "expires_at",
        ),
        push(
            "bad label",
            base().set("labels", json!(["Not A Label"])).seal(),
            "labels",
        ),
    ];
    expect_refusals(&w, "sleep", &cases);
}
