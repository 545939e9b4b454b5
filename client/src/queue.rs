//! `queue`: every request on the bus with its state, oldest first.

use macbridge_bus::git::Bus;
use macbridge_bus::presence::{self, Presence};
use macbridge_bus::status::{self, Status};
use macbridge_bus::{clock, layout, verify, view};
use serde::Serialize;

use crate::common::ClientLock;

#[derive(Debug, Serialize)]
pub struct QueueEntry {
    pub branch: String,
    pub request_id: Option<String>,
    pub preset: Option<String>,
    pub state: String,
    pub reason: Option<String>,
    /// Pending, and no runner seen recently has the labels it needs.
    pub unservable: bool,
    /// Live runners whose labels satisfy the request.
    pub servable_by: Vec<String>,
    pub runner: Option<String>,
    pub attempt: Option<u32>,
    pub lease_age_s: Option<f64>,
    pub issued_at: Option<String>,
    pub expires_at: Option<String>,
    pub labels: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Queue {
    pub remote: String,
    pub runners: Vec<Presence>,
    pub requests: Vec<QueueEntry>,
    pub counts: std::collections::BTreeMap<String, usize>,
}

/// Read the whole queue (one listing, one fetch of what changed).
pub fn read(bus: &Bus, lock: &ClientLock) -> anyhow::Result<Queue> {
    let refs = lock.with(|| -> anyhow::Result<_> {
        let refs = bus.ls_remote(&[
            layout::REQUEST_GLOB,
            layout::CLAIM_GLOB,
            layout::RUNNER_GLOB,
        ])?;
        let stale: Vec<String> = refs
            .iter()
            .filter(|(name, oid)| bus.fetched(name) != Some(*oid))
            .map(|(name, _)| name.clone())
            .collect();
        bus.fetch(&stale)?;
        Ok(refs)
    })?;
    let now = clock::now();
    let runners: Vec<Presence> = presence::read_all(bus, &refs)?;
    let live: Vec<&Presence> = runners.iter().filter(|r| r.is_fresh(now)).collect();
    let catalog = macbridge_presets::catalog().ok();
    let mut entries = Vec::new();
    for (name, _) in refs.iter().filter(|(n, _)| n.starts_with("refs/heads/")) {
        let Some(request) = view::read_request(bus, name)? else {
            continue;
        };
        let lease = match request.request_id() {
            Some(id) if request.result.is_none() => view::read_lease(bus, id)?,
            _ => None,
        };
        let status: Status = status::status_of(&request, lease.as_ref(), now);
        let manifest = request.manifest.as_ref().ok();
        // Which runners could take it: labels of the request plus those of its preset.
        let needed: Vec<String> = manifest
            .map(|m| {
                let mut l = m.labels.clone();
                if let Some(p) = catalog.and_then(|c| c.get(&m.preset).ok()) {
                    l.extend(p.labels.iter().cloned());
                }
                l
            })
            .unwrap_or_default();
        let servable_by: Vec<String> = live
            .iter()
            .filter(|r| verify::labels_satisfied(&needed, &r.labels))
            .map(|r| r.runner_id.clone())
            .collect();
        let unservable = status.state == "pending" && manifest.is_some() && servable_by.is_empty();
        let reason = match (&status.reason, unservable) {
            (None, true) => Some(if live.is_empty() {
                "no runner has been seen recently".to_string()
            } else {
                format!("no live runner has the labels {needed:?}")
            }),
            (r, _) => r.clone(),
        };
        entries.push(QueueEntry {
            branch: status.branch,
            request_id: status.request_id,
            preset: status.preset,
            state: status.state,
            reason,
            unservable,
            servable_by,
            runner: status.runner,
            attempt: status.attempt,
            lease_age_s: status.lease_age_s,
            issued_at: manifest.map(|m| m.issued_at.clone()),
            expires_at: status.expires_at,
            labels: manifest.map(|m| m.labels.clone()).unwrap_or_default(),
        });
    }
    entries.sort_by(|a, b| a.issued_at.cmp(&b.issued_at).then(a.branch.cmp(&b.branch)));
    let mut counts = std::collections::BTreeMap::new();
    for e in &entries {
        *counts.entry(e.state.clone()).or_insert(0) += 1;
        if e.unservable {
            *counts.entry("unservable".to_string()).or_insert(0) += 1;
        }
    }
    Ok(Queue {
        remote: bus.remote().to_string(),
        runners,
        requests: entries,
        counts,
    })
}

pub fn print(queue: &Queue) {
    if queue.requests.is_empty() {
        println!("no requests on {}", queue.remote);
        return;
    }
    println!(
        "{:<10} {:<14} {:<12} {:<8} BRANCH",
        "STATE", "PRESET", "RUNNER", "AGE"
    );
    for e in &queue.requests {
        let state = if e.unservable {
            "unservable"
        } else {
            e.state.as_str()
        };
        println!(
            "{:<10} {:<14} {:<12} {:<8} {}",
            state,
            e.preset.as_deref().unwrap_or("?"),
            e.runner.as_deref().unwrap_or("-"),
            e.lease_age_s
                .map(|a| format!("{a:.0}s"))
                .unwrap_or_else(|| "-".into()),
            e.branch
        );
    }
    for r in &queue.runners {
        println!(
            "runner {} labels {:?} seen {}",
            r.runner_id, r.labels, r.seen_at
        );
    }
    let summary: Vec<String> = queue
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    println!("{}", summary.join(", "));
}
