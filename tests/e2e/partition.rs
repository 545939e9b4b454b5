//! Network partition: two runners reach the bus (served by `git daemon` in its own network
//! namespace) over their own veth links. Runner A's link is cut mid-job: A cannot renew, so
//! it stops its job by itself before its lease can lapse, B re-claims after watching the
//! lease lapse and finishes, and when A's link comes back A publishes nothing. The request
//! has exactly one result and the two jobs never ran at the same time.
//!
//! On demand: `cargo test --release -p macbridge-e2e --test e2e partition -- --nocapture`.
//! Skipped (with a message) where network namespaces cannot be made (needs root and
//! CAP_NET_ADMIN, and `ip` from iproute2).

use std::time::{Duration, Instant};

use macbridge_e2e::RunnerOpts;
use macbridge_e2e::fleet::{FINAL, sleep_pids, wait_running};
use macbridge_e2e::gitd::GitDaemon;
use macbridge_e2e::netns::{self, Net};
use macbridge_e2e::proc;

use crate::harness::*;

const LIMIT: Duration = Duration::from_secs(120);

/// Lease for this test: long enough for heartbeats on a loaded machine, short enough to end.
const LEASE: f64 = 8.0;

fn opts(net: &Net, index: u8, bus_addr: &str) -> RunnerOpts {
    RunnerOpts {
        lease_seconds: LEASE,
        heartbeat_seconds: 1.0,
        poll_seconds: 0.3,
        kill_grace_seconds: Some(1.0),
        remote: Some(format!("git://{bus_addr}/bus.git")),
        wrap: net.wrap(index),
        ..RunnerOpts::default()
    }
}

/// Wait until `git ls-remote` over runner `index`'s link answers.
fn wait_bus(net: &Net, index: u8, url: &str) {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec"]).arg(&net.wrap(index)[3]);
    cmd.args(["git", "ls-remote", url]);
    proc::wait_for("the bus over git://", Duration::from_secs(30), || {
        cmd.output().ok().filter(|o| o.status.success()).map(|_| ())
    });
}

#[test]
fn a_runner_cut_off_mid_job_stops_it_itself_and_publishes_nothing() {
    if let Some(why) = netns::unavailable() {
        println!("SKIPPED partition test: cannot make network namespaces here ({why})");
        return;
    }
    let w = World::new();
    let reaper = w.reaper();
    let mut net = Net::new().expect("bus namespace");
    let (_, addr_a) = net.add_runner(0).expect("runner namespace A");
    let (_, addr_b) = net.add_runner(1).expect("runner namespace B");
    let _daemon = GitDaemon::start(
        &w.root,
        "0.0.0.0",
        9418,
        &net.wrap_bus(),
        &w.root.join("git-daemon.log"),
        None,
    );
    wait_bus(&net, 0, &format!("git://{addr_a}/bus.git"));
    wait_bus(&net, 1, &format!("git://{addr_b}/bus.git"));
    let a = w.add_runner("mac-a", &opts(&net, 0, &addr_a));
    let b = w.add_runner("mac-b", &opts(&net, 1, &addr_b));
    let (branch, id) = w.request("sleep", &["--param", "ms=30000"]);

    let server_a = a.serve(&w);
    let a_report = wait_running(&w, &a, &id, &reaper);
    let (a_pid, _) = sleep_pids(&a_report);
    let mut server_b = b.serve(&w);

    let cut = Instant::now();
    net.link(0, false).expect("cutting A's link");
    // Watch both at once: A must stop its job by itself (before its lease, 8 s after its last
    // renewal, can lapse), and B's job (attempt 2) must not start while A's still runs.
    let (mut a_stopped, mut b_started, mut b_report) = (None, None, None);
    let deadline = Instant::now() + LIMIT;
    while b_started.is_none() && Instant::now() < deadline {
        let b_seen = b.sleep_report(&id);
        let a_alive = proc::pid_alive(a_pid);
        assert!(
            !(a_alive && b_seen.is_some()),
            "B's job started while A's still ran; A log:\n{}",
            server_a.log_text()
        );
        if !a_alive && a_stopped.is_none() {
            a_stopped = Some(Instant::now());
        }
        if let Some(report) = b_seen {
            b_started = Some(Instant::now());
            b_report = Some(report);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let a_stopped =
        a_stopped.unwrap_or_else(|| panic!("A's job survived the cut: {}", server_a.log_text()));
    let b_started =
        b_started.unwrap_or_else(|| panic!("B never re-claimed; B log:\n{}", server_b.log_text()));
    reaper.watch(sleep_pids(&b_report.expect("B's report")).0);
    // The link comes back while B runs: A must publish nothing for its attempt.
    net.link(0, true).expect("restoring A's link");
    let restored = Instant::now();
    let status = w.wait_state(&branch, FINAL, LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["attempt"], 2, "{status}");
    assert_eq!(status["runner"], "mac-b", "{status}");
    assert!(server_b.is_running(), "{}", server_b.log_text());

    // Exactly one result commit on the branch, and A wrote nothing after B's take-over.
    let results = gitx::git(&w.bus, &["log", "--format=%s", &full_branch(&branch)]);
    let n_results = results
        .lines()
        .filter(|l| l.starts_with("macbridge result"))
        .count();
    assert_eq!(n_results, 1, "{results}");
    let chain = gitx::lease_chain(&w.bus, &id);
    let takeover = chain
        .iter()
        .position(|l| l["attempt"] == 2)
        .expect("attempt 2 in the chain");
    assert!(
        chain[takeover..].iter().all(|l| l["runner_id"] == "mac-b"),
        "{chain:?}"
    );
    // A said why.
    let a_log = server_a.log_text();
    assert!(a_log.contains("fencing"), "A's log:\n{a_log}");
    assert!(!a_log.contains("result published"), "A's log:\n{a_log}");
    let a_sleep = a.sleep_report(&id).expect("A's report");
    assert_eq!(a_sleep["completed"], false, "{a_sleep}");

    println!(
        "partition figures: requests 1, faults 1 (link cut {:.1} s), A's job stopped {:.1} s after the cut, \
         B's job started {:.1} s after the cut ({:.1} s after A's stopped; overlap 0 s), results {n_results}, \
         duplicates 0, lost 0, end-to-end {:.1} s after the cut",
        restored.duration_since(cut).as_secs_f64(),
        a_stopped.duration_since(cut).as_secs_f64(),
        b_started.duration_since(cut).as_secs_f64(),
        b_started.duration_since(a_stopped).as_secs_f64(),
        cut.elapsed().as_secs_f64(),
    );
    server_a.kill();
    server_b.stop(LIMIT);
}
