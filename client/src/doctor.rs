//! `macbridge doctor`: can this machine request jobs on this bus?

use std::path::Path;

use macbridge_bus::doctor::{self, Check};
use macbridge_bus::git::Bus;
use macbridge_bus::{clock, presence};

use crate::common;

pub fn checks(bus: &Bus, key: Option<&Path>, runner_signers: Option<&Path>) -> Vec<Check> {
    let mut checks = Vec::new();
    let (reach, refs) = doctor::reachability(bus);
    checks.push(reach);
    if let Some(refs) = &refs {
        checks.push(doctor::compare_and_swap(bus, "client"));
        checks.push(doctor::clock_skew(bus, refs));
        checks.push(runners_seen(bus, refs));
    }
    match key {
        Some(path) => checks.push(doctor::key_readable(path).0),
        None => checks.push(Check::warn(
            "key",
            "no --key given (or MACBRIDGE_KEY)",
            "make one with `macbridge keygen --out ~/.ssh/macbridge` and ask the runner's operator to add its line to allowed_signers",
        )),
    }
    match common::runner_signers_path(runner_signers) {
        Some(path) => checks.push(doctor::allowed_signers(&path, "runner_signers", None)),
        None => checks.push(Check::warn(
            "runner_signers",
            "no runner signers file: results' signatures are checked but not who signed them",
            "get each runner's line (`macbridge-runner doctor` prints it) into ~/.config/macbridge/runner_signers or pass --runner-signers",
        )),
    }
    match macbridge_presets::catalog() {
        Ok(c) => checks.push(Check::ok(
            "presets",
            format!("{} presets allowlisted", c.names().len()),
        )),
        Err(e) => checks.push(Check::fail("presets", e.to_string(), "reinstall macbridge")),
    }
    checks
}

fn runners_seen(bus: &Bus, refs: &[(String, git2::Oid)]) -> Check {
    const NAME: &str = "runners";
    let names: Vec<String> = refs
        .iter()
        .filter(|(n, _)| n.starts_with(macbridge_bus::layout::RUNNER_PREFIX))
        .map(|(n, _)| n.clone())
        .collect();
    if let Err(e) = bus.fetch(&names) {
        return Check::warn(NAME, format!("cannot fetch runner records: {e}"), "");
    }
    let runners = presence::read_all(bus, refs).unwrap_or_default();
    let now = clock::now();
    let live: Vec<String> = runners
        .iter()
        .filter(|r| r.is_fresh(now))
        .map(|r| format!("{} {:?}", r.runner_id, r.labels))
        .collect();
    if live.is_empty() {
        Check::warn(
            NAME,
            format!("no runner seen recently ({} known)", runners.len()),
            "requests will wait until a runner serves this bus (`macbridge-runner serve`)",
        )
    } else {
        Check::ok(NAME, format!("live: {}", live.join(", ")))
    }
}
