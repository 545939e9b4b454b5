//! Fault scenarios shared by the e2e suite (small sizes, in CI) and the on-demand chaos
//! binary (full sizes): see docs/RELIABILITY.md.

use std::time::Duration;

use crate::census;
use crate::flaky::{Faults, Proxy};
use crate::gitd::{self, GitDaemon};
use crate::{Member, RunnerOpts, World};

/// Run `requests` sleep requests through `runners` runners behind a flaky proxy; returns the
/// figures after every request is final (or the time limit passed).
pub fn flaky_run(requests: usize, runners: usize, seed: u64) -> census::Figures {
    let w = World::new();
    let port = gitd::free_port();
    let upstream = format!("127.0.0.1:{port}").parse().expect("address");
    let _daemon = GitDaemon::start(
        &w.root,
        "127.0.0.1",
        port,
        &[],
        &w.root.join("git-daemon.log"),
        Some(upstream),
    );
    let proxy = Proxy::start(
        upstream,
        Faults {
            drop: 0.20,
            reset: 0.05,
            delay: 0.10,
            delay_by: Duration::from_millis(400),
            seed,
        },
    );
    let remote = format!("git://{}/bus.git", proxy.addr);
    let fleet: Vec<Member> = (0..runners)
        .map(|i| {
            w.add_runner(
                &format!("mac-{i}"),
                &RunnerOpts {
                    remote: Some(remote.clone()),
                    poll_seconds: 0.3,
                    ..RunnerOpts::default()
                },
            )
        })
        .collect();
    let servers: Vec<_> = fleet.iter().map(|m| m.serve(&w)).collect();
    let ids: Vec<(String, String)> = (0..requests)
        .map(|_| w.request("sleep", &["--param", "ms=50"]))
        .collect();
    let limit = Duration::from_secs(120 + 4 * requests as u64);
    let finals = census::wait_all_final(&w, &ids, limit);
    for s in servers {
        s.stop(Duration::from_secs(150));
    }
    let figures = census::take(&w, &fleet, &ids, proxy.counts.faults());
    println!(
        "flaky remote ({runners} runners, proxy connections {}, dropped {}, reset {}, delayed {}; final {finals}): {}",
        proxy
            .counts
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        proxy
            .counts
            .dropped
            .load(std::sync::atomic::Ordering::SeqCst),
        proxy.counts.reset.load(std::sync::atomic::Ordering::SeqCst),
        proxy
            .counts
            .delayed
            .load(std::sync::atomic::Ordering::SeqCst),
        figures.line()
    );
    figures
}

/// The checks every flaky run must pass.
pub fn assert_exactly_once(f: &census::Figures) {
    assert_eq!(f.lost, 0, "{}", f.line());
    assert_eq!(f.results, f.requests, "{}", f.line());
    assert_eq!(f.multiple_results, 0, "{}", f.line());
    assert_eq!(f.unsigned, 0, "{}", f.line());
    assert_eq!(f.duplicates, 0, "{}", f.line());
    assert!(f.faults > 0, "the proxy injected nothing: {}", f.line());
}
