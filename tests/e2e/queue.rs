//! Labels and `macbridge queue`: a request no live runner can serve stays pending, is never
//! claimed by a runner without its labels, and is shown `unservable` until a runner with them
//! arrives; running requests show their runner and lease age, finished ones their state.

use std::time::Duration;

use macbridge_e2e::fleet::{FINAL, RUN_LIMIT, queue_entry};
use macbridge_e2e::{RunnerOpts, proc};
use serde_json::{Value, json};

use crate::harness::*;

#[test]
fn a_request_needing_labels_waits_unservable_for_a_runner_that_has_them() {
    let w = World::new();
    let linux = w.add_runner("mac-linux", &RunnerOpts::default().labels(&["linux"]));
    let metal = w.add_runner("mac-metal", &RunnerOpts::default().labels(&["metal"]));
    let (branch, id) = w.request("sleep", &["--param", "ms=1", "--label", "metal"]);

    let handled = linux.once(&w);
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0]["branch"], branch.as_str());
    assert_eq!(handled[0]["outcome"], "skipped", "{handled:?}");
    assert!(
        handled[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("needs labels"),
        "{handled:?}"
    );
    assert!(!w.claimed(&id), "a runner without the label claimed it");
    assert_eq!(w.status(&branch)["state"], "pending");

    let q = w.queue();
    let runners: Vec<&Value> = q["runners"].as_array().unwrap().iter().collect();
    assert_eq!(runners.len(), 1, "{q}");
    assert_eq!(runners[0]["runner_id"], "mac-linux", "{q}");
    assert_eq!(runners[0]["labels"], json!(["linux"]), "{q}");
    let entry = queue_entry(&q, &branch).expect("listed");
    assert_eq!(entry["state"], "pending", "{entry}");
    assert_eq!(entry["unservable"], true, "{entry}");
    assert_eq!(entry["servable_by"], json!([]), "{entry}");
    assert_eq!(entry["labels"], json!(["metal"]), "{entry}");
    assert!(
        entry["reason"].as_str().unwrap_or("").contains("metal"),
        "{entry}"
    );
    assert_eq!(q["counts"]["unservable"], 1, "{q}");

    // Both runners serve now: only the one with the label takes it.
    let mut servers = [linux.serve(&w), metal.serve(&w)];
    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["runner"], "mac-metal", "{status}");
    assert!(linux.job_dirs().is_empty(), "{:?}", linux.job_dirs());
    assert_eq!(metal.job_dirs(), [id]);
    let chain = gitx::lease_chain(&w.bus, &metal.job_dirs()[0]);
    assert!(
        chain.iter().all(|l| l["runner_id"] == "mac-metal"),
        "{chain:?}"
    );
    let q = w.queue();
    let entry = queue_entry(&q, &branch).expect("listed");
    assert_eq!(
        (&entry["state"], &entry["unservable"]),
        (&json!("done"), &json!(false)),
        "{entry}"
    );
    for server in servers.iter_mut() {
        assert!(server.is_running(), "{}", server.log_text());
    }
    for server in servers {
        server.stop(RUN_LIMIT);
    }
}

#[test]
fn queue_shows_running_requests_with_runner_and_lease_age_and_finished_ones() {
    let w = World::new();
    let runner = w.add_runner("mac-1", &RunnerOpts::default());
    let mut server = runner.serve(&w);
    // One after the other (requests issued in the same second may run in either order).
    let (short, _) = w.request("sleep", &["--param", "ms=1"]);
    w.wait_state(&short, FINAL, RUN_LIMIT);
    let (long, long_id) = w.request("sleep", &["--param", "ms=60000"]);

    let mut q = Value::Null;
    let seen = proc::poll(RUN_LIMIT, || {
        q = w.queue();
        (queue_entry(&q, &long)?["state"] == "running").then_some(())
    });
    assert!(seen.is_some(), "never saw it running: {q}");
    assert_eq!(queue_entry(&q, &short).unwrap()["state"], "done", "{q}");
    let entry = queue_entry(&q, &long).unwrap();
    assert_eq!(entry["runner"], "mac-1", "{entry}");
    assert_eq!(entry["attempt"], 1, "{entry}");
    assert_eq!(entry["request_id"], long_id.as_str(), "{entry}");
    assert_eq!(entry["unservable"], false, "{entry}");
    let age = entry["lease_age_s"].as_f64().expect("lease_age_s");
    assert!(age >= 0.0, "{entry}");
    assert_eq!(queue_entry(&q, &short).unwrap()["runner"], "mac-1");
    assert_eq!(q["counts"], json!({"done": 1, "running": 1}), "{q}");

    let out = w.cancel(&long, &w.requester).expect_code(0);
    assert_eq!(out.json()["cancel"], "requested", "{out}");
    w.wait_state(&long, FINAL, RUN_LIMIT);
    let q = w.queue();
    assert_eq!(queue_entry(&q, &long).unwrap()["state"], "cancelled", "{q}");
    assert_eq!(q["counts"], json!({"cancelled": 1, "done": 1}), "{q}");
    assert!(server.is_running(), "{}", server.log_text());
    server.stop(Duration::from_secs(30));
}
