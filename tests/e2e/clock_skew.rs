//! Clock skew, with libfaketime (Debian `faketime`) shifting one runner's wall clock (its git
//! commits included; its monotonic clock is left alone, as real skew leaves it).
//!
//! A runner four minutes *behind* (within the 5 minutes of skew a request's `issued_at` may
//! show, so it serves) writes leases whose `expires_at` is already minutes past for everyone
//! else. Another runner must still not take the request over while the lease keeps
//! moving: take-over needs the lease unchanged for its whole duration on the taker's own
//! monotonic clock. The skewed runner's `doctor` reports the skew. A runner ten minutes
//! *ahead* serves normally. Skipped (with a message) where libfaketime is not installed.

use std::path::PathBuf;
use std::time::Duration;

use macbridge_e2e::RunnerOpts;
use macbridge_e2e::fleet::{FINAL, RUN_LIMIT, wait_running};

use crate::harness::*;

fn libfaketime() -> Option<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu/faketime/libfaketime.so.1"),
        "/usr/lib/faketime/libfaketime.so.1".to_string(),
        "/usr/local/lib/faketime/libfaketime.so.1".to_string(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn skewed(lib: &std::path::Path, offset: &str, base: RunnerOpts) -> RunnerOpts {
    RunnerOpts {
        wrap: vec![
            "env".into(),
            format!("LD_PRELOAD={}", lib.display()),
            format!("FAKETIME={offset}"),
            "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
        ],
        ..base
    }
}

#[test]
fn a_runner_minutes_behind_keeps_its_lease_and_doctor_reports_the_skew() {
    let Some(lib) = libfaketime() else {
        println!(
            "SKIPPED clock-skew test: libfaketime is not installed (apt-get install faketime)"
        );
        return;
    };
    let w = World::new();
    let reaper = w.reaper();
    let lease = RunnerOpts {
        lease_seconds: 5.0,
        kill_grace_seconds: Some(1.0),
        ..RunnerOpts::default()
    };
    let behind = w.add_runner("mac-behind", &skewed(&lib, "-4m", lease.clone()));
    let honest = w.add_runner("mac-honest", &lease);
    let (branch, id) = w.request("sleep", &["--param", "ms=12000"]);

    let server_behind = behind.serve(&w);
    let report = wait_running(&w, &behind, &id, &reaper);
    let lease_now = macbridge_e2e::fleet::lease_tip(&w, &id).expect("a lease");
    let expires = macbridge_e2e::census::parse_utc(lease_now["expires_at"].as_str().unwrap())
        .expect("expires_at");
    assert!(
        expires < craft::unix_now() - 200,
        "the skewed runner's lease should look long expired: {lease_now}"
    );
    let server_honest = honest.serve(&w);

    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["runner"], "mac-behind", "{status}");
    assert_eq!(status["attempt"], 1, "{status}");
    assert!(
        honest.sleep_reports().is_empty(),
        "the honest runner ran it too: {:?}",
        honest.job_dirs()
    );
    let chain = gitx::lease_chain(&w.bus, &id);
    assert!(
        chain.iter().all(|l| l["runner_id"] == "mac-behind"),
        "{chain:?}"
    );
    assert_eq!(
        behind.sleep_report(&id).unwrap()["pid"],
        report["pid"],
        "one execution"
    );
    server_honest.stop(Duration::from_secs(60));
    server_behind.stop(Duration::from_secs(60));

    // Its doctor sees the bus's commits (the requester's, the honest runner's) in its future.
    let checks = behind.doctor(&w);
    let skew = checks
        .iter()
        .find(|c| c["name"] == "clock_skew")
        .unwrap_or_else(|| panic!("no clock_skew check: {checks:?}"));
    assert_eq!(skew["status"], "warn", "{skew}");
    assert!(
        skew["detail"].as_str().unwrap_or("").contains("future"),
        "{skew}"
    );
    let honest_checks = honest.doctor(&w);
    let honest_skew = honest_checks.iter().find(|c| c["name"] == "clock_skew");
    println!("clock skew: behind runner's doctor: {skew}; honest runner's doctor: {honest_skew:?}");
}

#[test]
fn a_runner_minutes_ahead_serves_normally() {
    let Some(lib) = libfaketime() else {
        println!(
            "SKIPPED clock-skew test: libfaketime is not installed (apt-get install faketime)"
        );
        return;
    };
    let w = World::new();
    let ahead = w.add_runner("mac-ahead", &skewed(&lib, "+10m", RunnerOpts::default()));
    let (branch, _) = w.request("sleep", &["--param", "ms=100"]);
    let handled = ahead.once(&w);
    assert!(handled.iter().any(|h| h["outcome"] == "ran"), "{handled:?}");
    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "done", "{status}");
}
