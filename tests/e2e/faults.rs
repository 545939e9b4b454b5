//! A runner killed with SIGKILL mid-job: another runner re-claims after the lease expires
//! (attempt 2) and its run is the one published; a runner frozen past its lease stops its job
//! and publishes nothing; a restarted runner stops the job its dead predecessor left running and
//! gives its unfinished claim back; `max_attempts` closes a request nobody could finish.
//!
//! What happens to the killed runner's job: every job runs in its own process group led by a
//! supervisor that kills the group as soon as its runner is gone (runner/src/watchdog.rs), so
//! the job dies with its runner. Should anything survive, a restarted runner stops its
//! predecessor's jobs before anything else. Nothing an orphan writes is published: results are pushed only together with the lease moving to
//! `done`, and the dead runner's lease has moved on. Every job group a test sees is handed to
//! a `GroupReaper`, so none outlives its test.

use std::time::Duration;

use macbridge_e2e::RunnerOpts;
use macbridge_e2e::fleet::{FINAL, sleep_pids, wait_gone, wait_running};
use macbridge_e2e::proc;
use serde_json::Value;

use crate::harness::*;

const LIMIT: Duration = Duration::from_secs(60);

/// The published `results/sleep.json` of `branch`.
fn published_sleep_report(w: &World, branch: &str) -> Vec<u8> {
    gitx::read_file(&w.bus, &full_branch(branch), "results/sleep.json")
        .expect("results/sleep.json published")
}

#[test]
fn a_killed_runners_job_is_rerun_by_another_runner_and_only_its_run_is_published() {
    let w = World::new();
    let reaper = w.reaper();
    let a = w.add_runner("mac-a", &RunnerOpts::short_lease());
    let b = w.add_runner("mac-b", &RunnerOpts::short_lease());
    let (branch, id) = w.request("sleep", &["--param", "ms=4000", "--param", "children=1"]);

    let server_a = a.serve(&w);
    let a_report = wait_running(&w, &a, &id, &reaper);
    let (a_pid, _) = sleep_pids(&a_report);
    server_a.kill();

    let mut server_b = b.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["attempt"], 2, "{status}");
    assert_eq!(status["runner"], "mac-b", "{status}");
    assert!(server_b.is_running(), "{}", server_b.log_text());
    server_b.stop(LIMIT);

    // The lease chain: A's attempt 1, then B's attempt 2 ending `done`; one epoch per commit.
    let chain = gitx::lease_chain(&w.bus, &id);
    for (i, lease) in chain.iter().enumerate() {
        assert_eq!(lease["epoch"], i + 1, "{chain:?}");
        let owner = if lease["attempt"] == 1 {
            "mac-a"
        } else {
            "mac-b"
        };
        assert_eq!(lease["runner_id"], owner, "{chain:?}");
        assert!(lease["attempt"] == 1 || lease["attempt"] == 2, "{chain:?}");
    }
    assert!(
        chain
            .iter()
            .any(|l| l["runner_id"] == "mac-a" && l["state"] == "running")
    );
    let last = chain.last().unwrap();
    assert_eq!(
        (&last["runner_id"], &last["attempt"], &last["state"]),
        (&"mac-b".into(), &2.into(), &"done".into()),
        "{chain:?}"
    );

    // The published result is B's, signed by B, and its report is B's run's own file.
    let (result, sig) = w.result_on_bus(&branch).unwrap();
    assert!(
        b.signed(&w, &result, &sig.unwrap()),
        "result not signed by mac-b"
    );
    let record: Value = serde_json::from_slice(&result).unwrap();
    assert_eq!(record["attempt"], 2, "{record}");
    let published = published_sleep_report(&w, &branch);
    let b_file = std::fs::read(b.job_dir(&id).join("out/sleep.json")).unwrap();
    assert_eq!(published, b_file, "the published report is not B's run");
    let published: Value = serde_json::from_slice(&published).unwrap();
    assert_ne!(published["pid"], a_pid, "A's run was published");
    assert_eq!(b.job_dirs(), [id.as_str()]);
    // A's partial work stays in A's own folder only.
    assert_eq!(a.job_dirs(), [id.as_str()]);

    // A comes back (its orphaned job killed first, as a reboot would): it publishes nothing.
    reaper.reap();
    let tips = w.tips(&branch, &id);
    let handled = a.once(&w);
    assert!(
        handled.iter().all(|h| h["outcome"] != "ran"),
        "restarted A ran something: {handled:?}"
    );
    assert_eq!(
        w.tips(&branch, &id),
        tips,
        "restarted A moved the branch or claim"
    );
    assert_eq!(
        a.job_dirs(),
        [id.as_str()],
        "restarted A started the job again"
    );
}

#[test]
fn a_restarted_runner_releases_its_unfinished_claim_and_runs_it_again() {
    let w = World::new();
    let reaper = w.reaper();
    // A long lease: the second attempt must come from the release, not from expiry.
    let a = w.add_runner("mac-a", &RunnerOpts::default());
    let (branch, id) = w.request("sleep", &["--param", "ms=2000", "--param", "children=1"]);

    let first = a.serve(&w);
    let report1 = wait_running(&w, &a, &id, &reaper);
    first.kill();
    // The Mac "reboots": the orphaned job dies with it (the next test leaves it running).
    reaper.reap();
    let (pid, children) = sleep_pids(&report1);
    wait_gone(&[vec![pid], children].concat(), LIMIT);

    let mut second = a.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["attempt"], 2, "{status}");
    assert!(second.is_running(), "{}", second.log_text());
    second.stop(LIMIT);

    let chain = gitx::lease_chain(&w.bus, &id);
    let released = chain
        .iter()
        .position(|l| l["state"] == "released")
        .unwrap_or_else(|| panic!("no released lease: {chain:?}"));
    let lease = &chain[released];
    assert_eq!(lease["attempt"], 1, "{chain:?}");
    assert_eq!(lease["runner_id"], "mac-a", "{chain:?}");
    assert!(
        lease["note"].as_str().unwrap_or("").contains("restart"),
        "{lease}"
    );
    let next = &chain[released + 1];
    assert_eq!(
        (&next["state"], &next["attempt"]),
        (&"claimed".into(), &2.into()),
        "{chain:?}"
    );
    assert!(chain.iter().all(|l| l["runner_id"] == "mac-a"), "{chain:?}");
    assert_eq!(chain.last().unwrap()["state"], "done", "{chain:?}");

    // The first attempt's folder is kept aside; the published report is the second run's.
    let aside = format!("{id}.attempt-1");
    assert_eq!(a.job_dirs(), [id.clone(), aside.clone()]);
    let published: Value = serde_json::from_slice(&published_sleep_report(&w, &branch)).unwrap();
    let report2 = a.sleep_report(&id).unwrap();
    assert_eq!(published["pid"], report2["pid"], "{published}");
    assert_eq!(published["completed"], true);
    assert_ne!(published["pid"], pid, "the killed attempt was published");
    let record: Value = serde_json::from_slice(&w.result_on_bus(&branch).unwrap().0).unwrap();
    assert_eq!(record["attempt"], 2, "{record}");
}

#[test]
fn max_attempts_closes_the_request_as_failed_without_running_it() {
    let w = World::new();
    let reaper = w.reaper();
    let a = w.add_runner("mac-a", &RunnerOpts::short_lease());
    let b = w.add_runner(
        "mac-b",
        &RunnerOpts {
            max_attempts: Some(1),
            ..RunnerOpts::short_lease()
        },
    );
    let (branch, id) = w.request("sleep", &["--param", "ms=60000", "--param", "children=1"]);

    let server_a = a.serve(&w);
    let report = wait_running(&w, &a, &id, &reaper);
    let (pid, children) = sleep_pids(&report);
    server_a.kill();
    // The watchdog: the job's whole process group dies with its SIGKILLed runner.
    wait_gone(
        &[vec![pid], children.clone()].concat(),
        Duration::from_secs(5),
    );

    let mut server_b = b.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    assert_eq!(status["state"], "failed", "{status}");
    let reason = status["reason"].as_str().unwrap_or("");
    assert!(reason.contains("attempt"), "{status}");
    assert_eq!(status["runner"], "mac-b", "{status}");
    assert!(server_b.is_running(), "{}", server_b.log_text());
    server_b.stop(LIMIT);

    assert!(b.job_dirs().is_empty(), "mac-b ran it: {:?}", b.job_dirs());
    let record: Value = serde_json::from_slice(&w.result_on_bus(&branch).unwrap().0).unwrap();
    assert_eq!(record["exit_code"], Value::Null, "{record}");
    assert_eq!(record["artifacts"], serde_json::json!([]), "{record}");
    let last = gitx::lease_chain(&w.bus, &id).pop().unwrap();
    assert_eq!(last["state"], "done", "{last}");
    assert_eq!(last["runner_id"], "mac-b", "{last}");

    reaper.reap();
}

#[test]
fn a_runner_that_lost_its_lease_while_frozen_stops_its_job_and_publishes_nothing() {
    let w = World::new();
    let reaper = w.reaper();
    let a = w.add_runner("mac-a", &RunnerOpts::short_lease());
    let b = w.add_runner("mac-b", &RunnerOpts::short_lease());
    let (branch, id) = w.request("sleep", &["--param", "ms=8000", "--param", "children=1"]);

    let mut server_a = a.serve(&w);
    let a_report = wait_running(&w, &a, &id, &reaper);
    let (a_pid, a_children) = sleep_pids(&a_report);
    // Frozen (a laptop lid closed): no renewals; its job, in its own group, runs on.
    assert!(proc::signal(server_a.pid, "STOP"));
    let mut server_b = b.serve(&w);
    let b_report = wait_running(&w, &b, &id, &reaper);
    assert!(proc::signal(server_a.pid, "CONT"));

    // Thawed, A sees on its own monotonic clock that its lease lapsed while it was frozen
    // (fencing), or its next renewal is rejected (B's epoch is the tip): either way it stops
    // its job's whole group and publishes nothing.
    wait_gone(&[vec![a_pid], a_children].concat(), LIMIT);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["runner"], "mac-b", "{status}");
    assert_eq!(status["attempt"], 2, "{status}");
    let published: Value = serde_json::from_slice(&published_sleep_report(&w, &branch)).unwrap();
    assert_eq!(published["pid"], b_report["pid"], "{published}");
    let chain = gitx::lease_chain(&w.bus, &id);
    let takeover = chain
        .iter()
        .position(|l| l["runner_id"] == "mac-b")
        .unwrap();
    assert!(
        chain[takeover..].iter().all(|l| l["runner_id"] == "mac-b"),
        "A wrote to the claim after losing it: {chain:?}"
    );
    let a_log = server_a.log_text();
    assert!(
        a_log.contains("lease lost") || a_log.contains("fencing"),
        "{a_log}"
    );
    for server in [&mut server_a, &mut server_b] {
        assert!(server.is_running(), "{}", server.log_text());
    }
    server_a.stop(LIMIT);
    server_b.stop(LIMIT);
}

#[test]
fn a_restarted_runner_stops_the_job_its_killed_predecessor_left_running() {
    let w = World::new();
    let reaper = w.reaper();
    let a = w.add_runner("mac-a", &RunnerOpts::default());
    let (branch, id) = w.request("sleep", &["--param", "ms=60000", "--param", "children=1"]);

    let first = a.serve(&w);
    let report1 = wait_running(&w, &a, &id, &reaper);
    let (pid1, children1) = sleep_pids(&report1);
    first.kill();
    let second = a.serve(&w);
    // The second attempt starts in a fresh folder (the first one's is moved aside).
    let report2 = proc::poll(LIMIT, || {
        let report = a.sleep_report(&id)?;
        reaper.watch(sleep_pids(&report).0);
        (report["pid"] != pid1).then_some(report)
    })
    .expect("no second attempt");
    // Exactly one execution at a time: the restarted runner stopped the first run (which
    // would otherwise sleep for another minute) before it released the claim.
    wait_gone(&[vec![pid1], children1].concat(), Duration::from_secs(10));
    assert_ne!(report2["pid"], pid1);
    let out = w.cancel(&branch, &w.requester).expect_code(0);
    assert_eq!(out.json()["cancel"], "requested", "{out}");
    w.wait_state(&branch, FINAL, LIMIT);
    second.stop(LIMIT);
}
