//! The runner's context: its config, bus, identity and trust, shared by every stage of a
//! request's lifecycle (`lifecycle`), the scan (`scan`), jobs (`job`) and publishing
//! (`publish`). It depends on none of them, so those modules form no import circle.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use macbridge_bus::git::{Bus, Oid};
use macbridge_bus::lease::{self, LeaseHandle, LeaseOutcome, RunnerIdentity};
use macbridge_bus::records::LeaseState;
use macbridge_bus::sig::{self, AllowedSigners, Policy};
use macbridge_bus::verify::Trust;
use macbridge_bus::view;
use tracing::{debug, warn};

use crate::config::Config;

pub struct Runner {
    pub config: Config,
    pub bus: Bus,
    pub identity: RunnerIdentity,
    pub trust: Trust,
    pub engine: PathBuf,
    /// Branch tips already known to be answered, so later scans skip them cheaply.
    pub(crate) finished: RefCell<BTreeSet<String>>,
    /// Each claim ref's tip as listed by the scans, and since when (this process's monotonic
    /// clock) it has been that tip: a lease is taken over only after watching it unchanged
    /// for its whole duration, which no wall-clock offset can shorten.
    pub(crate) watched: RefCell<BTreeMap<String, (Oid, Instant)>>,
}

impl Runner {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let key = sig::load_private_key(&config.key)
            .with_context(|| format!("loading runner key {}", config.key.display()))?;
        let allowed_signers = AllowedSigners::from_file(&config.allowed_signers)
            .with_context(|| format!("loading {}", config.allowed_signers.display()))?;
        let policy = match &config.policy {
            Some(path) => Policy::from_file(path)
                .with_context(|| format!("loading policy {}", path.display()))?,
            None => Policy::default_engine_only(),
        };
        std::fs::create_dir_all(config.jobs_dir())
            .with_context(|| format!("creating {}", config.jobs_dir().display()))?;
        let bus = Bus::open(&config.remote, &config.cache_dir())
            .with_context(|| format!("opening the bus cache {}", config.cache_dir().display()))?;
        let identity = RunnerIdentity {
            id: config.runner_id.clone(),
            key,
            labels: config.labels.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        // The runner names the bus it serves; a bus without an id gets one now.
        let bus_id = macbridge_bus::busid::read_or_create(&bus)
            .with_context(|| format!("reading the bus id of {}", config.remote))?;
        let engine = config.engine_path();
        Ok(Runner {
            config,
            bus,
            identity,
            trust: Trust {
                allowed_signers,
                policy,
                bus_id,
            },
            engine,
            finished: Default::default(),
            watched: Default::default(),
        })
    }

    /// Best effort: set the GitHub commit status of a request commit, when configured.
    pub fn github_status(
        &self,
        sha: &str,
        state: macbridge_bus::github::StatusState,
        description: &str,
    ) {
        let Some(cfg) = &self.config.github else {
            return;
        };
        match cfg.resolve(&self.config.remote) {
            Ok(resolved) => {
                if let Err(e) =
                    macbridge_bus::github::set_status(&resolved, sha, state, description)
                {
                    warn!(sha, error = %e, "could not set the GitHub commit status");
                }
            }
            Err(e) => debug!(error = %e, "GitHub statuses skipped"),
        }
    }

    /// Record the claim tips a scan listed; forget claims that are gone.
    pub(crate) fn watch(&self, claims: &[(String, Oid)], now: Instant) {
        let mut watched = self.watched.borrow_mut();
        watched.retain(|name, _| claims.iter().any(|(n, _)| n == name));
        for (name, oid) in claims {
            match watched.get(name) {
                Some((seen, _)) if seen == oid => {}
                _ => {
                    watched.insert(name.clone(), (*oid, now));
                }
            }
        }
    }

    /// How long this process has seen `claim_ref` at `tip` without a change, in seconds.
    pub(crate) fn watched_for(&self, claim_ref: &str, tip: Oid) -> f64 {
        match self.watched.borrow().get(claim_ref) {
            Some((seen, since)) if *seen == tip => since.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }

    /// After a renewal or publish was rejected because the claim ref moved: whether it moved
    /// to a lease this runner wrote itself (a push that went through but whose answer was
    /// lost on a flaky link). Only the same runner, key and attempt counts: a take-over by
    /// anyone else raises the attempt. Returns the handle to go on with.
    pub fn adopt(&self, handle: &LeaseHandle) -> anyhow::Result<Option<LeaseHandle>> {
        let claim_ref = handle.claim_ref.clone();
        let tip = self
            .bus
            .ls_remote(&[claim_ref.as_str()])?
            .into_iter()
            .find(|(name, _)| *name == claim_ref)
            .map(|(_, oid)| oid);
        let Some(tip) = tip.filter(|t| *t != handle.tip) else {
            return Ok(None);
        };
        self.bus.fetch(std::slice::from_ref(&claim_ref))?;
        let Some(on_bus) = view::read_lease(&self.bus, &handle.lease.request_id)? else {
            return Ok(None);
        };
        let ours = match &on_bus.lease {
            Ok(lease) => {
                on_bus.tip == tip
                    && lease.runner_id == self.identity.id
                    && lease.runner_key == self.identity.fingerprint()
                    && lease.attempt == handle.lease.attempt
                    && lease.epoch > handle.lease.epoch
                    && matches!(lease.state, LeaseState::Claimed | LeaseState::Running)
            }
            Err(_) => false,
        };
        Ok(ours.then(|| {
            debug!(claim_ref = %claim_ref, "the claim moved to our own renewal; going on with it");
            LeaseHandle {
                claim_ref,
                tip,
                lease: on_bus
                    .lease
                    .clone()
                    .unwrap_or_else(|_| handle.lease.clone()),
            }
        }))
    }

    /// Renew `handle`, reporting whether the lease is still ours.
    pub fn renew(
        &self,
        handle: &LeaseHandle,
        state: LeaseState,
        log_tail: Option<&str>,
    ) -> anyhow::Result<Option<LeaseHandle>> {
        Ok(
            match lease::renew(
                &self.bus,
                &self.identity,
                handle,
                state,
                self.config.lease_seconds,
                log_tail,
                None,
            )? {
                LeaseOutcome::Held(h) => Some(*h),
                LeaseOutcome::Lost => None,
            },
        )
    }
}
