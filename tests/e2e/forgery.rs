//! The requester's side of trust: `macbridge wait` must not accept a result that an attacker
//! with push access wrote — signed by an unknown key, altered after the runner signed it, or
//! a genuine runner result copied from another request.

use serde_json::Value;

use crate::harness::*;

/// `macbridge wait --json` on `branch`, trusting only this world's runner key.
fn wait(w: &World, branch: &str, out: &str) -> macbridge_e2e::Finished {
    let out_dir = w.root.join(out);
    w.mb(&[
        "wait",
        "--remote",
        &w.remote(),
        "--branch",
        branch,
        "--timeout",
        "30",
        "--out",
        out_dir.to_str().unwrap(),
        "--runner-signers",
        w.runner_signers.to_str().unwrap(),
        "--json",
    ])
}

/// Put `files` (name under `.mac-bridge/` → bytes) on top of the tip of `branch`, keeping the
/// request files, and push it as a fast-forward, as anyone with push access could.
fn push_on_top(w: &World, branch: &str, files: &[(&str, &[u8])]) {
    let full = full_branch(branch);
    gitx::fetch(&w.scratch, &w.bus, &format!("+{full}:{full}"));
    let tip = gitx::resolve(&w.scratch, &full).unwrap();
    let request = gitx::read_file(&w.scratch, &tip, ".mac-bridge/request.json").unwrap();
    let sig = gitx::read_file(&w.scratch, &tip, ".mac-bridge/request.sig").unwrap();
    let mut all: Vec<(&str, &[u8])> = vec![("request.json", &request), ("request.sig", &sig)];
    all.extend_from_slice(files);
    w.push_files(&full, &all, Some(&tip));
}

fn request_commit(w: &World, branch: &str) -> String {
    gitx::resolve(&w.bus, &full_branch(branch)).unwrap()
}

#[test]
fn forged_or_altered_results_are_not_accepted() {
    let w = World::new();
    let (genuine, _) = w.request("env-probe", &[]);
    let (altered, _) = w.request("env-probe", &[]);
    let handled = w.runner_once();
    assert_eq!(handled.len(), 2, "{handled:?}");
    // Requests no runner will see: their results come from the attacker.
    let (forged, forged_id) = w.request("env-probe", &[]);
    let (copied, _) = w.request("env-probe", &[]);

    let control = wait(&w, &genuine, "genuine").expect_code(0).json();
    assert_eq!(control["signature"]["trusted"], true, "{control}");
    let (real_json, real_sig) = w.result_on_bus(&genuine).unwrap();
    let real_sig = real_sig.unwrap();

    // 1. Mallory answers a request herself, consistently, with her own key.
    let mallory = w.keygen("mallory");
    let mut record: Value = serde_json::from_slice(&real_json).unwrap();
    record["request_id"] = forged_id.as_str().into();
    record["branch"] = full_branch(&forged).into();
    record["request_commit"] = request_commit(&w, &forged).into();
    record["runner"]["key"] = mallory.public_line.as_str().into();
    record["runner"]["fingerprint"] = mallory.fingerprint.as_str().into();
    let mut bytes = serde_json::to_vec_pretty(&record).unwrap();
    bytes.push(b'\n');
    let sig = craft::ssh_sign(&mallory.path, RESULT_NAMESPACE, &bytes, &w.files);
    push_on_top(
        &w,
        &forged,
        &[("result.json", &bytes), ("result.sig", &sig)],
    );
    let v = wait(&w, &forged, "forged").expect_code(1).json();
    assert_eq!(
        v["signature"]["valid"], true,
        "self-consistent forgery: {v}"
    );
    assert_eq!(v["signature"]["trusted"], false, "{v}");
    assert_eq!(v["signature"]["signer"], mallory.fingerprint.as_str());

    // 2. The runner's own result, one byte changed after signing.
    let (json, sig) = w.result_on_bus(&altered).unwrap();
    let text = String::from_utf8(json).unwrap();
    assert!(text.contains("\"exit_code\": 0"), "{text}");
    let changed = text.replacen("\"exit_code\": 0", "\"exit_code\": 1", 1);
    push_on_top(
        &w,
        &altered,
        &[
            ("result.json", changed.as_bytes()),
            ("result.sig", &sig.unwrap()),
        ],
    );
    let v = wait(&w, &altered, "altered").expect_code(1).json();
    assert_eq!(v["signature"]["valid"], false, "{v}");
    assert!(
        v["signature"]["problem"]
            .as_str()
            .unwrap()
            .contains("verify"),
        "{v}"
    );

    // 3. A genuine, validly signed result copied onto another request's branch.
    push_on_top(
        &w,
        &copied,
        &[("result.json", &real_json), ("result.sig", &real_sig)],
    );
    let v = wait(&w, &copied, "copied").expect_code(1).json();
    assert_eq!(v["signature"]["valid"], false, "{v}");
    assert!(
        v["signature"]["problem"]
            .as_str()
            .unwrap()
            .contains("does not answer"),
        "{v}"
    );
}

#[test]
fn wait_on_a_refused_request_fetches_the_signed_refusal() {
    let w = World::new();
    let sealed = w.draft("sleep").param("ms", "1").seal();
    w.push_files(&sealed.branch, &[("request.json", &sealed.bytes)], None);
    w.runner_once();
    let v = wait(&w, sealed.short_branch(), "refused")
        .expect_code(1)
        .json();
    assert_eq!(v["state"], "rejected", "{v}");
    assert!(
        v["reason"].as_str().unwrap().starts_with("unsigned:"),
        "{v}"
    );
    assert_eq!(v["signature"]["valid"], true, "{v}");
    assert_eq!(v["signature"]["trusted"], true, "{v}");
    let mut files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["result.json", "result.sig"]);
    let dir = w.root.join("refused");
    let json = std::fs::read(dir.join("result.json")).unwrap();
    let sig = std::fs::read(dir.join("result.sig")).unwrap();
    assert!(w.runner_signed(&json, &sig));
    assert!(w.job_dirs().is_empty(), "{:?}", w.job_dirs());
}
