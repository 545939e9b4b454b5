//! Assertions shared by the e2e tests: what a refused request must look like on the bus and
//! in the runner's work folder, and a known-good "control" request that proves the runner in
//! each refusal test was able to run jobs at all.

pub use macbridge_e2e::craft::{self, REQUEST_NAMESPACE, RESULT_NAMESPACE};
pub use macbridge_e2e::gitx;
pub use macbridge_e2e::world::{CMD_LIMIT, REQUESTER, RUNNER, full_branch};
pub use macbridge_e2e::{Draft, RunnerSetup, Sealed, World};
use serde_json::Value;

/// A request that must be refused, and how.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case is about, for failure messages.
    pub label: String,
    /// Full ref of the request branch.
    pub branch: String,
    /// The request commit pushed.
    pub commit: String,
    /// The manifest's request id, when the manifest has a readable one.
    pub request_id: Option<String>,
    /// `rejected` or `expired`.
    pub state: &'static str,
    /// The refusal code the reason must start with (`unsigned`, `replay`, ...).
    pub code: &'static str,
    /// Substrings the reason must contain (what the problem is).
    pub mentions: Vec<String>,
    /// The request id was legitimately claimed (the original of a replay, or a refusal only
    /// the checkout can find), so its claim ref and job folder are not evidence of a run.
    pub may_be_claimed: bool,
}

impl Case {
    /// A rejected case with reason code `code`.
    pub fn rejected(
        label: impl Into<String>,
        code: &'static str,
        branch: &str,
        commit: &str,
    ) -> Case {
        Case {
            label: label.into(),
            branch: full_branch(branch),
            commit: commit.to_string(),
            request_id: None,
            state: "rejected",
            code,
            mentions: Vec::new(),
            may_be_claimed: false,
        }
    }

    /// The manifest's request id (checked against the result, and for absent claims).
    pub fn id(mut self, request_id: &str) -> Case {
        self.request_id = Some(request_id.to_string());
        self
    }

    /// The reason must also contain `text`.
    pub fn mentions(mut self, text: &str) -> Case {
        self.mentions.push(text.to_string());
        self
    }

    /// Skip the "never claimed, no job folder" checks (see the field of the same name).
    pub fn may_be_claimed(mut self) -> Case {
        self.may_be_claimed = true;
        self
    }

    /// The result state is `state` instead of `rejected`.
    pub fn state(mut self, state: &'static str) -> Case {
        self.state = state;
        self
    }
}

/// Sign `draft` properly, push it to its branch and describe the refusal expected for it.
pub fn signed_case(w: &World, label: &str, code: &'static str, draft: &Draft) -> Case {
    let (sealed, commit) = w.push_signed(draft);
    Case::rejected(label, code, &sealed.branch, &commit).id(&sealed.request_id)
}

/// A valid, hand-crafted request that must run: proof that crafting and the runner work.
pub struct Control {
    pub sealed: Sealed,
    pub preset: String,
}

/// Push a valid crafted control request for `preset` (`sleep` runs with `ms=1`).
pub fn push_control(w: &World, preset: &str) -> Control {
    let mut draft = w.draft(preset);
    if preset == "sleep" {
        draft = draft.param("ms", "1");
    }
    let (sealed, _) = w.push_signed(&draft);
    Control {
        sealed,
        preset: preset.to_string(),
    }
}

/// Push a control, run the runner once, and check every case was refused as described and
/// nothing but the control executed.
#[track_caller]
pub fn expect_refusals(w: &World, control_preset: &str, cases: &[Case]) {
    let control = push_control(w, control_preset);
    let handled = w.runner_once();
    for case in cases {
        let short = case.branch.trim_start_matches("refs/heads/");
        let entry = handled
            .iter()
            .find(|h| h["branch"] == short)
            .unwrap_or_else(|| {
                panic!(
                    "[{}] runner did not handle {short}: {handled:?}",
                    case.label
                )
            });
        assert_eq!(entry["outcome"], "refused", "[{}] {entry}", case.label);
    }
    for case in cases {
        assert_refused(w, case);
    }
    assert_control_ran_alone(w, &control);
}

/// The control finished `done` with a passing verdict, and it is the only job that ever
/// started: one job folder, and a `sleep.json` only if the control was a sleep.
#[track_caller]
pub fn assert_control_ran_alone(w: &World, control: &Control) {
    let status = w.status(control.sealed.short_branch());
    assert_eq!(
        status["state"], "done",
        "control request did not run: {status}"
    );
    assert_eq!(status["verdict"]["passed"], true, "{status}");
    assert_eq!(
        w.job_dirs(),
        vec![control.sealed.request_id.clone()],
        "a job folder other than the control's exists: something refused was started"
    );
    let markers = w.files_named("sleep.json");
    let expected = usize::from(control.preset == "sleep");
    assert_eq!(markers.len(), expected, "sleep.json files: {markers:?}");
}

/// Everything a refusal must leave behind: the status names the problem, a result commit
/// signed by the runner sits on top of the request commit, nothing was claimed or started.
#[track_caller]
pub fn assert_refused(w: &World, case: &Case) {
    let label = &case.label;
    let status = w.status(&case.branch);
    assert_eq!(status["state"], case.state, "[{label}] {status}");
    let reason = status["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("[{label}] no reason: {status}"));
    assert!(
        reason.starts_with(&format!("{}:", case.code)),
        "[{label}] reason should start with `{}:`: {reason}",
        case.code
    );
    for text in &case.mentions {
        assert!(
            reason.contains(text.as_str()),
            "[{label}] reason should mention {text:?}: {reason}"
        );
    }
    assert_eq!(
        status["verdict"],
        Value::Null,
        "[{label}] a refusal has no verdict"
    );

    let (json, sig) = w
        .result_on_bus(&case.branch)
        .unwrap_or_else(|| panic!("[{label}] no .mac-bridge/result.json on {}", case.branch));
    let sig = sig.unwrap_or_else(|| panic!("[{label}] no .mac-bridge/result.sig"));
    assert!(
        w.runner_signed(&json, &sig),
        "[{label}] result.sig does not verify with ssh-keygen against the runner key"
    );
    let result: Value = serde_json::from_slice(&json).expect("result.json is JSON");
    assert_eq!(result["state"], case.state, "[{label}] {result}");
    assert_eq!(result["reason"].as_str(), Some(reason), "[{label}]");
    assert_eq!(result["branch"], case.branch.as_str(), "[{label}]");
    assert_eq!(result["request_commit"], case.commit.as_str(), "[{label}]");
    assert_eq!(
        result["request_id"].as_str(),
        case.request_id.as_deref(),
        "[{label}] result names another request"
    );
    assert_eq!(
        result["runner"]["fingerprint"],
        w.runner_key.fingerprint.as_str()
    );
    assert_eq!(
        result["exit_code"],
        Value::Null,
        "[{label}] nothing ran, so no exit code"
    );
    assert_eq!(result["artifacts"], serde_json::json!([]), "[{label}]");

    let tip = gitx::resolve(&w.bus, &case.branch).expect("branch still exists");
    assert_eq!(
        gitx::parents(&w.bus, &tip),
        vec![case.commit.clone()],
        "[{label}] the result commit must sit directly on the request commit"
    );
    assert_eq!(
        gitx::read_file(&w.bus, &tip, ".mac-bridge/request.json"),
        gitx::read_file(&w.bus, &case.commit, ".mac-bridge/request.json"),
        "[{label}] the result commit must keep the request as it was"
    );
    if let Some(id) = case.request_id.as_ref().filter(|_| !case.may_be_claimed) {
        assert!(
            !w.claimed(id),
            "[{label}] a refused request must not be claimed"
        );
        assert!(
            !w.job_dirs().contains(id),
            "[{label}] a job folder exists for {id}"
        );
    }
}
