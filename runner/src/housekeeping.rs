//! What a runner does besides jobs: give back claims a previous run of itself left behind,
//! keep its presence record fresh, and move old finished requests off the live refs.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use macbridge_bus::archive::{self, Finished};
use macbridge_bus::git::PushOutcome;
use macbridge_bus::lease::{self, LeaseHandle};
use macbridge_bus::manifest::MAX_LIFETIME_SECS;
use macbridge_bus::records::LeaseState;
use macbridge_bus::{clock, layout, presence, view};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::runner::Runner;

/// Most finished requests archived in one push.
const ARCHIVE_BATCH: usize = 200;

/// Release every claim this runner (same id and key) still holds from an earlier life: the
/// process died or the Mac rebooted mid-job. Released requests are claimed again at once
/// (by any runner) instead of waiting for their leases to expire.
pub fn recover(runner: &Runner) -> anyhow::Result<usize> {
    reap_orphans(runner);
    let claims = runner.bus.ls_remote(&[layout::CLAIM_GLOB])?;
    let stale: Vec<String> = claims
        .iter()
        .filter(|(name, oid)| runner.bus.fetched(name) != Some(*oid))
        .map(|(name, _)| name.clone())
        .collect();
    runner.bus.fetch(&stale)?;
    let me = runner.identity.fingerprint();
    let mut released = 0;
    for (name, _) in &claims {
        let Some(request_id) = name.strip_prefix(layout::CLAIM_PREFIX) else {
            continue;
        };
        let Some(on_bus) = view::read_lease(&runner.bus, request_id)? else {
            continue;
        };
        let Ok(lease) = &on_bus.lease else { continue };
        let mine = lease.runner_id == runner.identity.id && lease.runner_key == me;
        if !mine || !matches!(lease.state, LeaseState::Claimed | LeaseState::Running) {
            continue;
        }
        let handle = LeaseHandle {
            claim_ref: name.clone(),
            tip: on_bus.tip,
            lease: lease.clone(),
        };
        // A job that ended before the restart is published, not run again. Should that
        // fail (the bus unreachable), the claim is not given back: it lapses, and as its end
        // was announced the others wait `ended_grace_seconds` before running it again.
        let mut tries = 0;
        let resumed = loop {
            tries += 1;
            match crate::ended::resume(runner, handle.clone()) {
                Err(e) if tries < 3 => {
                    warn!(request_id, tries, error = %format!("{e:#}"), "could not publish a job an earlier run finished; retrying");
                    std::thread::sleep(crate::publish::backoff(tries));
                }
                other => break other,
            }
        };
        match resumed {
            Ok(Some(handled)) => {
                info!(request_id, outcome = ?handled, "finished a job an earlier run left unpublished");
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                warn!(request_id, error = %format!("{e:#}"), "could not publish a job an earlier run finished");
                continue;
            }
        }
        match lease::renew(
            &runner.bus,
            &runner.identity,
            &handle,
            LeaseState::Released,
            runner.config.lease_seconds,
            None,
            Some("runner restarted before the job finished".to_string()),
        )? {
            lease::LeaseOutcome::Held(_) => {
                info!(
                    request_id,
                    attempt = lease.attempt,
                    "released a claim left by an earlier run"
                );
                released += 1;
            }
            lease::LeaseOutcome::Lost => {}
        }
    }
    Ok(released)
}

/// Stop jobs an earlier life of this runner left running (their process groups outlive a
/// runner killed with SIGKILL), so the machine is free before anything new starts.
fn reap_orphans(runner: &Runner) {
    let Ok(entries) = std::fs::read_dir(runner.config.jobs_dir()) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let pid_file = entry.path().join(crate::job::JOB_PID_FILE);
        if !pid_file.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let request_id = name.split('.').next().unwrap_or(&name).to_string();
        if crate::exec::reap_orphan(&pid_file, &request_id) {
            warn!(
                request_id,
                "stopped a job left running by an earlier run of this runner"
            );
        }
    }
}

/// Refresh this runner's presence record.
pub fn announce(runner: &Runner, started_at: &str) {
    if let Err(e) = presence::announce(
        &runner.bus,
        &runner.identity,
        started_at,
        runner.config.presence_seconds,
    ) {
        warn!(error = %e, "could not refresh the presence record");
    }
}

/// What one clean-up pass did.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub archived: usize,
    pub claims_deleted: usize,
    pub job_dirs_removed: usize,
}

/// Archive finished requests older than the retention period, delete claim refs no longer
/// needed as a replay ledger, and remove old job folders.
pub fn cleanup(runner: &Runner) -> anyhow::Result<Cleaned> {
    let mut cleaned = Cleaned {
        job_dirs_removed: remove_old_job_dirs(runner),
        ..Default::default()
    };
    let refs = runner
        .bus
        .ls_remote(&[layout::REQUEST_GLOB, layout::CLAIM_GLOB])
        .context("listing the bus for clean-up")?;
    let stale: Vec<String> = refs
        .iter()
        .filter(|(name, oid)| runner.bus.fetched(name) != Some(*oid))
        .map(|(name, _)| name.clone())
        .collect();
    runner.bus.fetch(&stale)?;
    let now = clock::now();
    let retention = runner.config.retention_seconds;
    let claim_of = |id: &str| {
        let name = layout::claim_ref(id);
        refs.iter()
            .find(|(n, _)| *n == name)
            .map(|(n, oid)| (n.clone(), *oid))
    };
    let mut finished = Vec::new();
    let mut live_branches = std::collections::BTreeSet::new();
    for (name, oid) in refs.iter().filter(|(n, _)| n.starts_with("refs/heads/")) {
        let Some(request) = view::read_request(&runner.bus, name)? else {
            continue;
        };
        let published = request
            .result
            .as_ref()
            .and_then(|r| r.record.as_ref().ok())
            .and_then(|r| clock::parse(&r.published_at));
        let old = published.is_some_and(|t| clock::seconds_between(t, now) > retention);
        if !old || finished.len() >= ARCHIVE_BATCH {
            live_branches.insert(name.clone());
            continue;
        }
        let manifest = request.manifest.as_ref().ok();
        let key = match manifest {
            Some(m) => m.request_id.clone(),
            None => hex::encode(Sha256::digest(name.as_bytes())),
        };
        let expired = manifest.and_then(|m| m.expires()).is_none_or(|t| t < now);
        finished.push(Finished {
            branch: name.clone(),
            tip: *oid,
            claim: manifest
                .filter(|_| expired)
                .and_then(|m| claim_of(&m.request_id)),
            key,
        });
    }
    // Claims whose branch is gone and whose request must have expired by now.
    let mut stale_claims = Vec::new();
    let in_batch: std::collections::BTreeSet<String> = finished
        .iter()
        .filter_map(|f| f.claim.as_ref().map(|c| c.0.clone()))
        .collect();
    for (name, oid) in refs
        .iter()
        .filter(|(n, _)| n.starts_with(layout::CLAIM_PREFIX))
    {
        if in_batch.contains(name) {
            continue;
        }
        let Some(id) = name.strip_prefix(layout::CLAIM_PREFIX) else {
            continue;
        };
        let Some(on_bus) = view::read_lease(&runner.bus, id)? else {
            continue;
        };
        let Ok(l) = &on_bus.lease else { continue };
        let quiet_for = clock::parse(&l.renewed_at).map(|t| clock::seconds_between(t, now));
        let branch_gone =
            !live_branches.contains(&l.branch) && !refs.iter().any(|(n, _)| *n == l.branch);
        if branch_gone && quiet_for.is_some_and(|s| s > retention + MAX_LIFETIME_SECS as f64) {
            stale_claims.push((name.clone(), *oid));
        }
    }
    let present: Vec<String> = refs.iter().map(|(n, _)| n.clone()).collect();
    for prefix in ["refs/heads/mac-bridge/", layout::CLAIM_PREFIX] {
        if let Err(e) = runner.bus.prune_cache(prefix, &present) {
            warn!(error = %e, "could not prune the local git cache");
        }
    }
    if let Err(e) = runner.bus.gc_auto() {
        warn!(error = %e, "git gc of the local cache failed");
    }
    if finished.is_empty() && stale_claims.is_empty() {
        return Ok(cleaned);
    }
    match archive::archive_and_prune(&runner.bus, &finished, &stale_claims)? {
        PushOutcome::Accepted => {
            cleaned.archived = finished.len();
            cleaned.claims_deleted =
                stale_claims.len() + finished.iter().filter(|f| f.claim.is_some()).count();
            info!(
                archived = cleaned.archived,
                claims_deleted = cleaned.claims_deleted,
                "archived finished requests"
            );
        }
        PushOutcome::Rejected { .. } => {
            info!("another runner changed the bus during clean-up; will retry later");
        }
    }
    Ok(cleaned)
}

fn remove_old_job_dirs(runner: &Runner) -> usize {
    let retention = Duration::from_secs_f64(runner.config.retention_seconds);
    let Ok(entries) = std::fs::read_dir(runner.config.jobs_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|a| a > retention) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
