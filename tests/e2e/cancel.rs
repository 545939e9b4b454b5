//! `macbridge cancel`: a running job's whole process group is stopped and the result is
//! `cancelled` with its logs; a cancel before any claim runs nothing; a cancel after the end
//! is refused; a cancel signed by anyone but the requester is ignored.

use macbridge_e2e::fleet::{FINAL, RUN_LIMIT, sleep_pids, wait_gone, wait_running};
use macbridge_e2e::{KeyPair, RunnerOpts};
use serde_json::{Value, json};

use crate::harness::*;

/// `macbridge cancel --json` as `key`, expecting exit `code` and JSON `cancel: word`.
#[track_caller]
fn cancel_expect(w: &World, branch: &str, key: &KeyPair, code: i32, word: &str) {
    let out = w.cancel(branch, key).expect_code(code);
    let v = out.json();
    assert_eq!(v["cancel"], word, "{out}");
    assert_eq!(v["branch"], branch, "{out}");
}

#[test]
fn cancelling_a_running_job_stops_its_whole_process_group() {
    let w = World::new();
    let reaper = w.reaper();
    let runner = w.add_runner("mac-1", &RunnerOpts::default());
    let (branch, id) = w.request("sleep", &["--param", "ms=60000", "--param", "children=2"]);
    let mut server = runner.serve(&w);
    let report = wait_running(&w, &runner, &id, &reaper);
    let (pid, children) = sleep_pids(&report);
    assert_eq!(children.len(), 2, "{report}");

    cancel_expect(&w, &branch, &w.requester, 0, "requested");
    // A second cancel is not pushed again.
    cancel_expect(&w, &branch, &w.requester, 0, "already_requested");
    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "cancelled", "{status}");
    assert_eq!(status["cancel_requested"], true, "{status}");
    wait_gone(&[vec![pid], children].concat(), RUN_LIMIT);
    w.assert_logs_published(&branch);
    let record = w.result_record(&branch);
    assert_eq!(record["runner"]["id"], "mac-1", "{record}");
    // The job never finished: its report is still the one written at the start.
    assert_eq!(runner.sleep_report(&id).unwrap()["completed"], false);

    assert!(server.is_running(), "{}", server.log_text());
    server.stop(RUN_LIMIT);
}

#[test]
fn cancel_before_any_claim_runs_nothing() {
    let w = World::new();
    let runner = w.add_runner("mac-1", &RunnerOpts::default());
    let (branch, id) = w.request("sleep", &["--param", "ms=1000"]);
    cancel_expect(&w, &branch, &w.requester, 0, "requested");
    assert_eq!(w.status(&branch)["state"], "pending");

    let handled = runner.once(&w);
    assert_eq!(
        handled,
        [json!({"branch": branch, "outcome": "ran", "detail": "cancelled"})]
    );
    let status = w.status(&branch);
    assert_eq!(status["state"], "cancelled", "{status}");
    assert!(
        status["reason"].as_str().unwrap_or("").contains("before"),
        "{status}"
    );
    assert!(runner.job_dirs().is_empty(), "{:?}", runner.job_dirs());
    let record = w.result_record(&branch);
    assert_eq!(record["exit_code"], Value::Null, "{record}");
    assert_eq!(record["request_id"], id.as_str());
}

#[test]
fn cancel_after_the_end_reports_already_finished() {
    let w = World::new();
    let runner = w.add_runner("mac-1", &RunnerOpts::default());
    let (branch, _) = w.request("sleep", &["--param", "ms=1"]);
    runner.once(&w);
    assert_eq!(w.status(&branch)["state"], "done");
    let tip = gitx::resolve(&w.bus, &full_branch(&branch));
    cancel_expect(&w, &branch, &w.requester, 1, "already_finished");
    assert_eq!(gitx::resolve(&w.bus, &full_branch(&branch)), tip);
}

#[test]
fn a_cancel_signed_by_another_key_is_ignored() {
    let w = World::new();
    let runner = w.add_runner("mac-1", &RunnerOpts::default());
    let stranger = w.keygen("stranger");
    let (branch, id) = w.request("sleep", &["--param", "ms=50"]);
    // Names the requester's key, but is signed by the stranger's.
    w.push_cancel(&branch, &id, &w.requester.fingerprint, &stranger);
    // status counts only cancels the runner would honour.
    assert_eq!(w.status(&branch)["cancel_requested"], false);

    let handled = runner.once(&w);
    assert_eq!(
        handled,
        [json!({"branch": branch, "outcome": "ran", "detail": "done"})]
    );
    assert_eq!(w.status(&branch)["state"], "done");
    assert_eq!(runner.sleep_report(&id).unwrap()["completed"], true);
}

#[test]
fn a_forged_cancel_while_running_is_ignored() {
    let w = World::new();
    let reaper = w.reaper();
    let runner = w.add_runner("mac-1", &RunnerOpts::default());
    let stranger = w.keygen("stranger");
    let (branch, id) = w.request("sleep", &["--param", "ms=3000"]);
    let mut server = runner.serve(&w);
    wait_running(&w, &runner, &id, &reaper);
    w.push_cancel(&branch, &id, &stranger.fingerprint, &stranger);
    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(runner.sleep_report(&id).unwrap()["completed"], true);
    assert!(server.is_running(), "{}", server.log_text());
    server.stop(RUN_LIMIT);
}

#[test]
fn a_forged_cancel_does_not_block_the_requesters_cancel() {
    let w = World::new();
    let reaper = w.reaper();
    let runner = w.add_runner("mac-1", &RunnerOpts::default());
    let stranger = w.keygen("stranger");
    let (branch, id) = w.request("sleep", &["--param", "ms=60000"]);
    let mut server = runner.serve(&w);
    let report = wait_running(&w, &runner, &id, &reaper);
    w.push_cancel(&branch, &id, &w.requester.fingerprint, &stranger);

    cancel_expect(&w, &branch, &w.requester, 0, "requested");
    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "cancelled", "{status}");
    wait_gone(&[sleep_pids(&report).0], RUN_LIMIT);
    assert!(server.is_running(), "{}", server.log_text());
    server.stop(RUN_LIMIT);
}
