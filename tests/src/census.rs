//! After a fault-injection run: count what the bus and the runners' job folders say. Every
//! request must have exactly one result commit, signed by the runner it names; every
//! execution of the `sleep` preset left a `sleep.json` in a job folder (`<id>` or
//! `<id>.attempt-N`), so executions per request are counted from those reports.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::fleet::{FINAL, Member};
use crate::gitx;
use crate::proc;
use crate::world::{World, full_branch};

/// The figures of one run.
#[derive(Debug, Default)]
pub struct Figures {
    pub requests: usize,
    pub faults: u64,
    /// Requests with at least one result.
    pub results: usize,
    /// Requests with no result (goal 0).
    pub lost: usize,
    /// Requests with more than one result commit (goal 0).
    pub multiple_results: usize,
    /// Results whose signature does not verify as the runner they name (goal 0).
    pub unsigned: usize,
    /// Requests whose job ran to completion (reported `completed` and exited 0) more than once
    /// (goal 0).
    pub duplicates: usize,
    /// For each duplicated request: its id, the job folders (`runner/folder`) whose run
    /// completed, and the lease chain (`runner#attempt:state[+ended]`), to tell which window
    /// let it run twice.
    pub duplicate_runs: Vec<String>,
    /// Requests with more than one `sleep.json` saying `completed`, counting also runs whose
    /// process was killed after writing it and before it exited (its runner died in that
    /// instant and the supervisor took the job with it, or the runner was stopping it): no
    /// clean exit of the job's own was recorded (`job.exit` is absent or not `0`). Those are
    /// interrupted runs to the runner; `duplicates` counts only runs that also exited 0.
    pub completed_reports_twice: usize,
    /// Executions started again after a runner was killed or fenced mid-job (by design).
    pub reruns: usize,
    pub executions: usize,
    pub states: BTreeMap<String, usize>,
    /// Seconds from `issued_at` to `published_at`.
    pub p50: f64,
    pub p95: f64,
}

impl Figures {
    /// One line for logs and docs.
    pub fn line(&self) -> String {
        format!(
            "requests {} | faults injected {} | results {} | duplicates {} (completed reports twice {}) | lost {} | \
             multiple results {} | unsigned {} | executions {} (re-runs after a kill/fence {}) | \
             states {:?} | latency p50 {:.1} s, p95 {:.1} s",
            self.requests,
            self.faults,
            self.results,
            self.duplicates,
            self.completed_reports_twice,
            self.lost,
            self.multiple_results,
            self.unsigned,
            self.executions,
            self.reruns,
            self.states,
            self.p50,
            self.p95
        )
    }
}

/// Wait until every request in `requests` is in a final state (per `macbridge queue`), or
/// `limit` passes; returns how many are final.
pub fn wait_all_final(w: &World, requests: &[(String, String)], limit: Duration) -> usize {
    let mut last = 0;
    proc::poll(limit, || {
        let queue = w.queue();
        let counts = &queue["counts"];
        last = FINAL
            .iter()
            .map(|s| counts[*s].as_u64().unwrap_or(0) as usize)
            .sum();
        (last >= requests.len()).then_some(())
    });
    last
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Count everything for `requests` (branch, request id).
pub fn take(w: &World, fleet: &[Member], requests: &[(String, String)], faults: u64) -> Figures {
    let mut f = Figures {
        requests: requests.len(),
        faults,
        ..Figures::default()
    };
    // Executions per request id, from every runner's job folders.
    let mut runs: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut reports: BTreeMap<String, usize> = BTreeMap::new();
    let mut completed_in: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for member in fleet {
        for (folder, report) in member.sleep_reports() {
            let id = folder
                .split(".attempt-")
                .next()
                .unwrap_or(&folder)
                .to_string();
            let entry = runs.entry(id.clone()).or_default();
            entry.0 += 1;
            if report["completed"] == true {
                *reports.entry(id.clone()).or_default() += 1;
                let dir = member.work_dir.join("jobs").join(&folder);
                let exit = std::fs::read_to_string(dir.join("job.exit")).ok();
                let ended = dir.join("ended.json").is_file();
                // The process then exited 0 by itself (its supervisor reaped it, recorded it).
                if exit.as_deref().map(str::trim) == Some("0") {
                    entry.1 += 1;
                }
                completed_in.entry(id).or_default().push(format!(
                    "{}/{folder} (job.exit {:?}, ended.json {ended})",
                    member.id,
                    exit.as_deref().map(str::trim)
                ));
            }
        }
    }
    let mut latencies = Vec::new();
    for (branch, id) in requests {
        let (started, completed) = runs.get(id).copied().unwrap_or_default();
        f.executions += started;
        f.reruns += started.saturating_sub(1);
        let reported = reports.get(id.as_str()).copied().unwrap_or_default();
        if reported > 1 {
            f.completed_reports_twice += 1;
        }
        if completed > 1 || reported > 1 {
            if completed > 1 {
                f.duplicates += 1;
            }
            let chain: Vec<String> = crate::gitx::lease_chain(&w.bus, id)
                .iter()
                .map(|l| {
                    format!(
                        "{}#{}:{}{}",
                        l["runner_id"].as_str().unwrap_or("?"),
                        l["attempt"],
                        l["state"].as_str().unwrap_or("?"),
                        if l["ended"].is_object() { "+ended" } else { "" }
                    )
                })
                .collect();
            f.duplicate_runs.push(format!(
                "{id}: completed in {:?}; lease chain {}",
                completed_in.get(id.as_str()).cloned().unwrap_or_default(),
                chain.join(" ")
            ));
        }
        let full = full_branch(branch);
        let log = gitx::git(&w.bus, &["log", "--format=%s", &full]);
        let n = log
            .lines()
            .filter(|l| l.starts_with("macbridge result"))
            .count();
        if n == 0 {
            f.lost += 1;
            continue;
        }
        f.results += 1;
        if n > 1 {
            f.multiple_results += 1;
        }
        let Some((bytes, sig)) = w.result_on_bus(branch) else {
            f.lost += 1;
            continue;
        };
        let record: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        *f.states
            .entry(record["state"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        let signer = record["runner"]["id"].as_str().unwrap_or("");
        let ok = fleet
            .iter()
            .find(|m| m.id == signer)
            .zip(sig)
            .is_some_and(|(m, s)| m.signed(w, &bytes, &s));
        if !ok {
            f.unsigned += 1;
        }
        let issued = gitx::read_file(&w.bus, &full, ".mac-bridge/request.json")
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|m| m["issued_at"].as_str().and_then(parse_utc));
        let published = record["published_at"].as_str().and_then(parse_utc);
        if let (Some(a), Some(b)) = (issued, published) {
            latencies.push((b - a) as f64);
        }
    }
    latencies.sort_by(f64::total_cmp);
    f.p50 = percentile(&latencies, 50.0);
    f.p95 = percentile(&latencies, 95.0);
    f
}

/// `YYYY-MM-DDTHH:MM:SSZ` (as the bus writes it) to seconds since the epoch.
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Civil date to days (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_utc_inverts_rfc3339() {
        for secs in [0, 951_782_400, 1_795_132_291, 4_102_444_799] {
            assert_eq!(super::parse_utc(&crate::craft::rfc3339(secs)), Some(secs));
        }
        assert_eq!(super::parse_utc("2026-11-21T23:51:31+01:00"), None);
    }
}
