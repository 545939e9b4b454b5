//! A runner killed in the window between its job's end and the publish of its result (the
//! window the chaos soak found running jobs twice): the job must not run again while the dead
//! runner may still come back and publish what it recorded; and if it never comes back, the
//! request is still answered.
//!
//! The runner dies at an exact instant through its fault-injection point
//! (`MACBRIDGE_RUNNER_CRASH_AT`, runner/src/ended.rs): it sends itself SIGKILL right after
//! announcing the end on its lease (or right after writing `ended.json`), as a power cut
//! would. Everything else is real: two runner processes, a real bus, real `sleep` jobs.

use std::time::Duration;

use macbridge_e2e::RunnerOpts;
use macbridge_e2e::fleet::{FINAL, Member, lease_tip};
use macbridge_e2e::proc::{self, Background};
use serde_json::Value;

use crate::harness::*;

const LIMIT: Duration = Duration::from_secs(90);
const CRASH_ENV: &str = "MACBRIDGE_RUNNER_CRASH_AT";

fn opts(grace: f64) -> RunnerOpts {
    RunnerOpts {
        lease_seconds: 3.0,
        ended_grace_seconds: Some(grace),
        ..RunnerOpts::default()
    }
}

/// Start `member` with the crash point armed and wait until it has killed itself there.
fn run_until_crash(w: &World, member: &Member, point: &str) -> Background {
    let mut server = member.serve_with_env(w, &[(CRASH_ENV, point)]);
    proc::wait_for(
        "the runner to kill itself at its crash point",
        LIMIT,
        || (!server.is_running()).then_some(()),
    );
    assert!(
        server.log_text().contains("fault injection"),
        "{}",
        server.log_text()
    );
    server
}

/// Completed executions of `request_id` on `member` (one `sleep.json` per run, in the job
/// folder or an `.attempt-N` folder beside it).
fn completed_runs(member: &Member, request_id: &str) -> usize {
    member
        .sleep_reports()
        .iter()
        .filter(|(folder, report)| {
            folder.split(".attempt-").next() == Some(request_id) && report["completed"] == true
        })
        .count()
}

fn result_commits(w: &World, branch: &str) -> usize {
    gitx::git(&w.bus, &["log", "--format=%s", &full_branch(branch)])
        .lines()
        .filter(|l| l.starts_with("macbridge result"))
        .count()
}

fn chain(w: &World, request_id: &str) -> Vec<Value> {
    gitx::lease_chain(&w.bus, request_id)
}

#[test]
fn a_runner_killed_after_its_job_ended_publishes_on_restart_and_the_job_runs_once() {
    let w = World::new();
    // A long grace: the other runner must still be waiting when the dead one comes back.
    let a = w.add_runner("mac-a", &opts(120.0));
    let b = w.add_runner("mac-b", &opts(120.0));
    let (branch, id) = w.request("sleep", &["--param", "ms=200"]);

    let _dead = run_until_crash(&w, &a, "after-end-announced");
    let lease = lease_tip(&w, &id).expect("a lease");
    assert_eq!(lease["runner_id"], "mac-a", "{lease}");
    assert_eq!(lease["state"], "running", "{lease}");
    assert_eq!(lease["ended"]["state"], "done", "{lease}");
    assert_eq!(
        lease["ended"]["digest"].as_str().map(str::len),
        Some(64),
        "{lease}"
    );
    assert_eq!(completed_runs(&a, &id), 1);

    // B serves while A's lease lapses: without the grace it would take over once the lease
    // expired and it had watched it unchanged for one lease (3 s). Give it four leases.
    let mut server_b = b.serve(&w);
    std::thread::sleep(Duration::from_secs(12));
    assert!(server_b.is_running(), "{}", server_b.log_text());
    assert!(
        w.result_on_bus(&branch).is_none(),
        "answered without A: {}",
        server_b.log_text()
    );
    assert!(
        !b.job_dir(&id).exists(),
        "B ran the job: {}",
        server_b.log_text()
    );

    // A comes back: it renews its own ended lease and publishes what it recorded.
    let server_a = a.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["runner"], "mac-a", "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    assert!(server_b.is_running(), "{}", server_b.log_text());
    server_a.stop(LIMIT);
    server_b.stop(LIMIT);

    assert_eq!(result_commits(&w, &branch), 1);
    assert_eq!(completed_runs(&a, &id), 1, "A's job ran again");
    assert_eq!(completed_runs(&b, &id), 0, "B ran the job");
    assert!(!b.job_dir(&id).exists());
    let chain = chain(&w, &id);
    assert!(
        chain
            .iter()
            .all(|l| l["runner_id"] == "mac-a" && l["attempt"] == 1),
        "{chain:?}"
    );
    let last = chain.last().expect("a chain");
    assert_eq!(last["state"], "done", "{chain:?}");
    let (result, sig) = w.result_on_bus(&branch).expect("a result");
    assert!(a.signed(&w, &result, &sig.expect("a signature")));
}

#[test]
fn an_ended_job_whose_runner_never_returns_is_run_again_after_the_grace() {
    let w = World::new();
    let a = w.add_runner("mac-a", &opts(2.0));
    let b = w.add_runner("mac-b", &opts(2.0));
    let (branch, id) = w.request("sleep", &["--param", "ms=200"]);

    let _dead = run_until_crash(&w, &a, "after-end-announced");
    assert!(lease_tip(&w, &id).is_some_and(|l| l["ended"].is_object()));

    let server_b = b.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    server_b.stop(LIMIT);
    // Never left without an answer: B took over (attempt 2) and ran it.
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["runner"], "mac-b", "{status}");
    assert_eq!(status["attempt"], 2, "{status}");
    assert_eq!(result_commits(&w, &branch), 1);
    assert_eq!(completed_runs(&b, &id), 1);
}

#[test]
fn a_runner_killed_after_recording_the_end_publishes_on_restart() {
    let w = World::new();
    // The end is in `ended.json` but not yet on the lease: no extra grace, so A must be back
    // within the (ten-second) lease, which an immediate restart is.
    let a = w.add_runner("mac-a", &RunnerOpts::default());
    let b = w.add_runner("mac-b", &RunnerOpts::default());
    let (branch, id) = w.request("sleep", &["--param", "ms=200"]);

    let _dead = run_until_crash(&w, &a, "after-end-recorded");
    assert!(lease_tip(&w, &id).is_some_and(|l| l["ended"].is_null()));
    assert!(a.job_dir(&id).join("ended.json").is_file());

    let server_a = a.serve(&w);
    let server_b = b.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    server_a.stop(LIMIT);
    server_b.stop(LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["runner"], "mac-a", "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    assert_eq!(result_commits(&w, &branch), 1);
    assert_eq!(completed_runs(&a, &id), 1);
    assert_eq!(completed_runs(&b, &id), 0);
}

#[test]
fn a_runner_killed_before_it_judged_the_end_publishes_from_the_exit_status_on_restart() {
    let w = World::new();
    // The job exited, the runner saw it and died before judging: only the supervisor's
    // `job.exit` records the end.
    let a = w.add_runner("mac-a", &RunnerOpts::default());
    let b = w.add_runner("mac-b", &RunnerOpts::default());
    let (branch, id) = w.request("sleep", &["--param", "ms=200"]);

    let _dead = run_until_crash(&w, &a, "after-job-exit");
    assert!(a.job_dir(&id).join("job.exit").is_file());
    assert!(!a.job_dir(&id).join("ended.json").exists());

    let server_a = a.serve(&w);
    let server_b = b.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    server_a.stop(LIMIT);
    server_b.stop(LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["runner"], "mac-a", "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    assert_eq!(result_commits(&w, &branch), 1);
    assert_eq!(completed_runs(&a, &id), 1);
    assert_eq!(completed_runs(&b, &id), 0);
    // The published result carries the job's own exit and a judged evidence-gate verdict.
    let record = w.result_record(&branch);
    assert_eq!(record["exit_code"], 0, "{record}");
    assert!(record["timings"]["finished_at"].is_string(), "{record}");
}

#[test]
fn a_job_the_runner_was_stopping_is_not_taken_for_its_own_end() {
    let w = World::new();
    // Cancelled mid-job, the runner dies after the job exited: `job.stopping` says the exit
    // was the runner's doing, so the restarted runner gives the claim back rather than
    // publishing it as the job's end; the request still ends with exactly one result.
    let a = w.add_runner("mac-a", &RunnerOpts::default());
    let (branch, id) = w.request("sleep", &["--param", "ms=30000"]);
    let reaper = w.reaper();
    let mut server = a.serve_with_env(&w, &[(CRASH_ENV, "after-job-exit")]);
    macbridge_e2e::fleet::wait_running(&w, &a, &id, &reaper);
    w.cancel(&branch, &w.requester);
    proc::wait_for(
        "the runner to kill itself at its crash point",
        LIMIT,
        || (!server.is_running()).then_some(()),
    );
    assert!(a.job_dir(&id).join("job.stopping").is_file());
    let server = a.serve(&w);
    let status = w.wait_state(&branch, FINAL, LIMIT);
    server.stop(LIMIT);
    assert_eq!(status["state"], "cancelled", "{status}");
    assert_eq!(result_commits(&w, &branch), 1);
}
