//! Exactly-one claim under a race: four runner processes on one bus drain forty `sleep`
//! requests; every request runs exactly once (counted by the `sleep.json` each execution
//! leaves in its runner's `work_dir/jobs/`), none is lost, and each claim ref's lease chain is
//! one runner's single attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use macbridge_e2e::fleet::queue_entry;
use macbridge_e2e::{Member, RunnerOpts, proc};
use serde_json::{Value, json};

use crate::harness::*;

const REQUESTS: usize = 40;
const RUNNERS: usize = 4;

/// A world with `RUNNERS` runners (`mac-0` .. `mac-3`) and `REQUESTS` short sleep requests
/// submitted by the client before any runner starts. Returns `(branch, request_id)` pairs.
fn setup() -> (World, Vec<Member>, Vec<(String, String)>) {
    let w = World::new();
    let fleet: Vec<Member> = (0..RUNNERS)
        .map(|i| w.add_runner(&format!("mac-{i}"), &RunnerOpts::default()))
        .collect();
    let requests = (0..REQUESTS)
        .map(|_| w.request("sleep", &["--param", "ms=20"]))
        .collect();
    (w, fleet, requests)
}

/// Every request finished `done`, ran exactly once on exactly one runner, and was claimed
/// once: one lease chain per request, all of it one runner's attempt 1.
fn check_exactly_once(w: &World, fleet: &[Member], requests: &[(String, String)]) {
    let queue = w.queue();
    assert_eq!(queue["counts"], json!({"done": REQUESTS}), "{queue}");
    for (branch, _) in requests {
        let entry = queue_entry(&queue, branch).unwrap_or_else(|| panic!("{branch} lost"));
        assert_eq!(entry["state"], "done", "{entry}");
    }

    // Executions: one main sleep.json per job folder, across every runner's work folder.
    let mut ran_on: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for member in fleet {
        for (folder, report) in member.sleep_reports() {
            assert!(
                !folder.contains(".attempt-"),
                "{}: a second attempt on one runner: {folder}",
                member.id
            );
            assert_eq!(report["completed"], true, "{folder}: {report}");
            ran_on.entry(folder).or_default().push(&member.id);
        }
    }
    let executions: usize = ran_on.values().map(Vec::len).sum();
    assert_eq!(executions, REQUESTS, "executions per request: {ran_on:?}");
    for (branch, id) in requests {
        let runners = ran_on.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(runners.len(), 1, "{branch} ran on {runners:?}");
        let runner = runners[0];

        let chain = gitx::lease_chain(&w.bus, id);
        assert!(chain.len() >= 2, "{id}: {chain:?}");
        for (i, lease) in chain.iter().enumerate() {
            assert_eq!(lease["attempt"], 1, "{id}: {chain:?}");
            assert_eq!(lease["runner_id"], runner, "two runners on {id}: {chain:?}");
            assert_eq!(lease["epoch"], i + 1, "{id}: {chain:?}");
            assert_eq!(lease["branch"], full_branch(branch).as_str());
        }
        assert_eq!(chain[0]["state"], "claimed", "{id}: {chain:?}");
        assert_eq!(chain.last().unwrap()["state"], "done", "{id}: {chain:?}");

        let (result, sig) = w.result_on_bus(branch).expect("a result");
        let record: Value = serde_json::from_slice(&result).unwrap();
        assert_eq!(record["runner"]["id"], runner, "{record}");
        assert_eq!(record["attempt"], 1, "{record}");
        let member = fleet.iter().find(|m| m.id == runner).unwrap();
        assert!(
            member.signed(w, &result, &sig.expect("result.sig")),
            "{branch}: result not signed by {runner}"
        );
    }
    // No claim ref without a request.
    let claims = gitx::refs(&w.bus, "refs/mac-bridge/claims/");
    assert_eq!(claims.len(), REQUESTS, "{claims:?}");
}

#[test]
fn four_serving_runners_run_forty_requests_exactly_once() {
    let (w, fleet, requests) = setup();
    let mut servers: Vec<_> = fleet.iter().map(|m| m.serve(&w)).collect();
    let mut last = Value::Null;
    let drained = proc::poll(Duration::from_secs(120), || {
        last = w.queue();
        (last["counts"]["done"] == REQUESTS).then_some(())
    });
    assert!(drained.is_some(), "not drained: {last}");
    for (member, server) in fleet.iter().zip(servers.iter_mut()) {
        assert!(
            server.is_running(),
            "{} exited:\n{}",
            member.id,
            server.log_text()
        );
    }
    for server in servers {
        let log = server.log.clone();
        let status = server.stop(Duration::from_secs(30));
        assert!(
            status.success(),
            "{status}: {}",
            std::fs::read_to_string(log).unwrap()
        );
    }
    check_exactly_once(&w, &fleet, &requests);
}

#[test]
fn four_once_runners_started_together_run_forty_requests_exactly_once() {
    let (w, fleet, requests) = setup();
    let start = std::sync::Barrier::new(RUNNERS);
    let handled: Vec<Vec<Value>> = std::thread::scope(|s| {
        let threads: Vec<_> = fleet
            .iter()
            .map(|m| {
                let (w, start) = (&w, &start);
                s.spawn(move || {
                    start.wait();
                    m.once(w)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    // What each `once` says it ran agrees with the bus: each branch ran once, somewhere.
    let mut ran: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in handled.iter().flatten() {
        if entry["outcome"] == "ran" {
            assert_eq!(entry["detail"], "done", "{entry}");
            *ran.entry(entry["branch"].as_str().unwrap()).or_default() += 1;
        }
    }
    assert_eq!(ran.len(), REQUESTS, "{handled:?}");
    assert!(ran.values().all(|n| *n == 1), "{ran:?}");
    check_exactly_once(&w, &fleet, &requests);
}
