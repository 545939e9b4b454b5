//! The scan: list the bus, read every unanswered request branch, and drive each through its
//! lifecycle, oldest first.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::Context;
use macbridge_bus::layout;
use macbridge_bus::view;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use crate::lifecycle::{self, Handled};
use crate::runner::Runner;

impl Runner {
    /// Look at every request branch (or just `only`) and handle what is pending, stopping
    /// after the first job that ran (see [`Runner::drain`] to go on until nothing is left).
    pub fn scan(&self, only: Option<&str>) -> anyhow::Result<Vec<(String, Handled)>> {
        let refs = self
            .bus
            .ls_remote(&[layout::REQUEST_GLOB, layout::CLAIM_GLOB])
            .context("listing the bus")?;
        let mut branches = Vec::new();
        let mut to_fetch = Vec::new();
        // Claims as they are on the remote right now; a claim ref deleted on the remote may
        // still linger in the cache, so the cache alone is not consulted.
        let claims: BTreeSet<String> = refs
            .iter()
            .filter(|(n, _)| n.starts_with(layout::CLAIM_PREFIX))
            .map(|(n, _)| n.clone())
            .collect();
        let listed: Vec<_> = refs
            .iter()
            .filter(|(n, _)| n.starts_with(layout::CLAIM_PREFIX))
            .cloned()
            .collect();
        self.watch(&listed, Instant::now());
        // Forget answered tips of branches that are gone (archived), so the set stays small.
        let live: BTreeSet<String> = refs.iter().map(|(n, o)| format!("{n}@{o}")).collect();
        self.finished.borrow_mut().retain(|k| live.contains(k));
        for (name, oid) in &refs {
            let is_branch = name.starts_with("refs/heads/mac-bridge/");
            if is_branch {
                if only.is_some_and(|b| b != name) {
                    continue;
                }
                let key = format!("{name}@{oid}");
                if self.finished.borrow().contains(&key) {
                    continue;
                }
                branches.push((name.clone(), *oid));
            }
            if self.bus.fetched(name) != Some(*oid) {
                to_fetch.push(name.clone());
            }
        }
        self.bus.fetch(&to_fetch).context("fetching the bus")?;
        // Oldest first, so a burst drains in order; among requests issued in the same second
        // each runner uses its own order, so racing runners spread over the burst instead of
        // all fighting for the same request.
        let mut pending = Vec::new();
        for (branch, oid) in branches {
            match view::read_request(&self.bus, &branch)? {
                Some(req) if req.result.is_some() => {
                    self.finished.borrow_mut().insert(format!("{branch}@{oid}"));
                }
                Some(req) => {
                    let issued = req
                        .manifest
                        .as_ref()
                        .map(|m| m.issued_at.clone())
                        .unwrap_or_default();
                    let spread = hex::encode(Sha256::digest(
                        format!("{}\n{branch}", self.config.runner_id).as_bytes(),
                    ));
                    pending.push(((issued, spread), req));
                }
                None => {}
            }
        }
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        let mut handled = Vec::new();
        for (_, req) in pending {
            let branch = req.branch.clone();
            let outcome = lifecycle::drive(self, req, &claims).unwrap_or_else(|e| {
                warn!(branch = %branch, error = %format!("{e:#}"), "could not handle request");
                Handled::Skipped(format!("error: {e:#}"))
            });
            debug!(branch = %branch, outcome = ?outcome, "handled");
            let ran = matches!(outcome, Handled::Ran(_) | Handled::Abandoned);
            handled.push((branch, outcome));
            // A job takes time: what this scan read about the other requests may be stale
            // now, so stop here and let the caller scan afresh.
            if ran {
                break;
            }
        }
        Ok(handled)
    }

    /// Scan repeatedly until a scan finds nothing more to do; returns everything handled.
    pub fn drain(&self, only: Option<&str>) -> anyhow::Result<Vec<(String, Handled)>> {
        let mut all = Vec::new();
        loop {
            let handled = self.scan(only)?;
            let progressed = handled.iter().any(|(_, h)| {
                matches!(
                    h,
                    Handled::Ran(_) | Handled::Refused(_) | Handled::Lost | Handled::Abandoned
                )
            });
            // A lease that lapsed by the wall clock is taken over only after watching it for
            // its whole duration: keep scanning (at the poll interval) until then.
            let watching = handled
                .iter()
                .any(|(_, h)| matches!(h, Handled::Watching(_)));
            for (branch, outcome) in handled {
                // One line per branch: a later, more decisive outcome replaces an earlier skip.
                match all
                    .iter_mut()
                    .find(|(b, _): &&mut (String, Handled)| *b == branch)
                {
                    Some(slot) => slot.1 = outcome,
                    None => all.push((branch, outcome)),
                }
            }
            if (!progressed && !watching) || crate::stop_requested() {
                return Ok(all);
            }
            if !progressed {
                std::thread::sleep(std::time::Duration::from_secs_f64(
                    self.config.poll_seconds.clamp(0.05, 10.0),
                ));
            }
        }
    }
}
