//! `queue`: every request on the bus with its state, oldest first.

use macbridge_bus::git::Bus;
use macbridge_bus::status::{self, Status};
use macbridge_bus::{clock, layout, view};
use serde::Serialize;

use crate::common::ClientLock;

#[derive(Debug, Serialize)]
pub struct QueueEntry {
    pub branch: String,
    pub request_id: Option<String>,
    pub preset: Option<String>,
    pub state: String,
    pub reason: Option<String>,
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
    pub requests: Vec<QueueEntry>,
    pub counts: std::collections::BTreeMap<String, usize>,
}

/// Read the whole queue (one listing, one fetch of what changed).
pub fn read(bus: &Bus, lock: &ClientLock) -> anyhow::Result<Queue> {
    let refs = lock.with(|| -> anyhow::Result<_> {
        let refs = bus.ls_remote(&[layout::REQUEST_GLOB, layout::CLAIM_GLOB])?;
        let stale: Vec<String> = refs
            .iter()
            .filter(|(name, oid)| bus.fetched(name) != Some(*oid))
            .map(|(name, _)| name.clone())
            .collect();
        bus.fetch(&stale)?;
        Ok(refs)
    })?;
    let now = clock::now();
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
        entries.push(QueueEntry {
            branch: status.branch,
            request_id: status.request_id,
            preset: status.preset,
            state: status.state,
            reason: status.reason,
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
    }
    Ok(Queue {
        remote: bus.remote().to_string(),
        requests: entries,
        counts,
    })
}

pub fn print(queue: &Queue) {
    if queue.requests.is_empty() {
        println!("no requests on {}", queue.remote);
        return;
    }
    println!("{:<10} {:<14} {:<12} {:<8} BRANCH", "STATE", "PRESET", "RUNNER", "AGE");
    for e in &queue.requests {
        println!(
            "{:<10} {:<14} {:<12} {:<8} {}",
            e.state,
            e.preset.as_deref().unwrap_or("?"),
            e.runner.as_deref().unwrap_or("-"),
            e.lease_age_s.map(|a| format!("{a:.0}s")).unwrap_or_else(|| "-".into()),
            e.branch
        );
    }
    let summary: Vec<String> = queue.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{}", summary.join(", "));
}
