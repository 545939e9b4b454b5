//! Refusals decided after the signature checks out: the signer's policy, time, replay onto
//! another branch, and a runner that lacks an `${ENV:}` value the preset needs.

use crate::harness::*;

#[test]
fn signer_not_allowed_that_preset_is_refused() {
    let w = World::with_runner(RunnerSetup {
        policy: Some(format!(
            "principals:\n  {REQUESTER}: {{presets: [env-probe]}}\n"
        )),
        ..Default::default()
    });
    let draft = w.draft("sleep").param("ms", "1");
    let case = signed_case(&w, "policy", "not_allowed", &draft)
        .mentions(REQUESTER)
        .mentions("sleep");
    // The same signer may still run what the policy grants: the control is env-probe.
    expect_refusals(&w, "env-probe", &[case]);
}

#[test]
fn expired_and_not_yet_valid_requests_are_refused() {
    let w = World::new();
    let now = craft::unix_now();
    let expires_at = craft::rfc3339(now - 3600);
    let expired = w
        .draft("sleep")
        .param("ms", "1")
        .set("issued_at", craft::rfc3339(now - 7200).into())
        .set("expires_at", expires_at.clone().into());
    let future = w
        .draft("sleep")
        .param("ms", "1")
        .set("issued_at", craft::rfc3339(now + 3600).into())
        .set("expires_at", craft::rfc3339(now + 7200).into());
    let cases = [
        signed_case(&w, "expired", "expired", &expired)
            .state("expired")
            .mentions(&expires_at),
        signed_case(&w, "issued in the future", "not_yet_valid", &future).mentions("future"),
    ];
    expect_refusals(&w, "sleep", &cases);
}

#[test]
fn signed_manifest_replayed_on_another_branch_is_refused_and_runs_once() {
    let w = World::new();
    let (sealed, commit) = w.push_signed(&w.draft("sleep").param("ms", "1"));
    // The identical commit, pushed to a second request branch before any runner saw either.
    let early = format!("refs/heads/mac-bridge/sleep-{}", craft::nonce());
    gitx::push(&w.scratch, &w.bus, &commit, &early);
    let handled = w.runner_once();
    assert_eq!(handled.len(), 2, "{handled:?}");

    let original = w.status(sealed.short_branch());
    assert_eq!(original["state"], "done", "{original}");
    assert_eq!(original["result"]["attempt"], 1, "{original}");
    let replay = |label: &str, branch: &str| {
        Case::rejected(label, "replay", branch, &commit)
            .id(&sealed.request_id)
            .mentions(&sealed.branch)
            .may_be_claimed()
    };
    assert_refused(&w, &replay("replay before the run", &early));

    // Replays after the original finished, under the same and under another preset's name.
    let original_tip = gitx::resolve(&w.bus, &sealed.branch).unwrap();
    let late = [
        format!("refs/heads/mac-bridge/sleep-{}", craft::nonce()),
        format!("refs/heads/mac-bridge/env-probe-{}", craft::nonce()),
    ];
    for branch in &late {
        gitx::push(&w.scratch, &w.bus, &commit, branch);
    }
    let handled = w.runner_once();
    assert_eq!(
        handled.len(),
        2,
        "only the two new branches are pending: {handled:?}"
    );
    for branch in &late {
        assert_refused(&w, &replay("replay after the run", branch));
    }

    assert_eq!(gitx::resolve(&w.bus, &sealed.branch).unwrap(), original_tip);

    // The original branch deleted and the request pushed again under its own name: the
    // claim ledger, not the branch, remembers that it already ran.
    gitx::push_delete(&w.scratch, &w.bus, &sealed.branch);
    gitx::push(&w.scratch, &w.bus, &commit, &sealed.branch);
    let handled = w.runner_once();
    assert_eq!(handled.len(), 1, "{handled:?}");
    let again = Case::rejected(
        "same branch pushed again",
        "replay",
        &sealed.branch,
        &commit,
    )
    .id(&sealed.request_id)
    .mentions(&sealed.request_id)
    .may_be_claimed();
    assert_refused(&w, &again);
    assert_eq!(w.job_dirs(), vec![sealed.request_id.clone()]);
    let markers = w.files_named("sleep.json");
    assert_eq!(
        markers.len(),
        1,
        "the manifest ran more than once: {markers:?}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&markers[0]).unwrap()).unwrap();
    assert_eq!(report["kind"], "sleep", "{report}");
}

#[test]
fn missing_env_value_is_refused_before_anything_starts() {
    let w = World::new();
    // The client does not know the runner's env, so it pushes this happily.
    let (branch, request_id) = w.request("model-info", &[]);
    let commit = gitx::resolve(&w.bus, &full_branch(&branch)).unwrap();
    let case = Case::rejected("no KAKEYA_MODEL_DIR", "missing_env", &branch, &commit)
        .id(&request_id)
        .mentions("KAKEYA_MODEL_DIR")
        .mentions("model-info");
    expect_refusals(&w, "sleep", &[case]);
}

#[test]
fn empty_env_value_counts_as_missing() {
    let w = World::with_runner(RunnerSetup {
        env: vec![("KAKEYA_MODEL_DIR".into(), String::new())],
        ..Default::default()
    });
    let case = signed_case(
        &w,
        "empty KAKEYA_MODEL_DIR",
        "missing_env",
        &w.draft("model-info"),
    )
    .mentions("KAKEYA_MODEL_DIR");
    expect_refusals(&w, "env-probe", &[case]);
}

#[test]
fn an_env_value_only_some_params_need_is_required_only_for_them() {
    // spec-decode needs the draft model only for `drafter=model`: with the target alone an
    // ngram request is not refused (it runs; the target here is no model, so it fails), and a
    // model request is refused naming the variable and the param value that needs it.
    let world = || {
        World::with_runner(RunnerSetup {
            env: vec![(
                "KAKEYA_TARGET_MODEL".into(),
                "/nonexistent/target-model".into(),
            )],
            ..Default::default()
        })
    };
    let w = world();
    let (ngram, _) = w.request("spec-decode", &["--param", "drafter=ngram"]);
    w.runner_once();
    let record = w.result_record(&ngram);
    let reason = record["reason"].as_str().unwrap_or("");
    assert!(!reason.starts_with("missing_env"), "{record}");
    assert!(record["exit_code"].is_number(), "ran: {record}");

    let w = world();
    let (branch, request_id) = w.request("spec-decode", &["--param", "drafter=model"]);
    let commit = gitx::resolve(&w.bus, &full_branch(&branch)).unwrap();
    let case = Case::rejected("no KAKEYA_DRAFT_MODEL", "missing_env", &branch, &commit)
        .id(&request_id)
        .mentions("KAKEYA_DRAFT_MODEL")
        .mentions("drafter=model");
    expect_refusals(&w, "sleep", &[case]);
}
