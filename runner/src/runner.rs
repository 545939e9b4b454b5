//! One runner: scan the bus, decide per request (refuse, skip, claim), run, gate, publish.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use macbridge_bus::git::Bus;
use macbridge_bus::lease::{self, LeaseHandle, LeaseOutcome, RunnerIdentity};
use macbridge_bus::records::{LeaseState, ResultState};
use macbridge_bus::sig::{self, AllowedSigners, Policy};
use macbridge_bus::verify::{self, RefusalCode, Trust};
use macbridge_bus::view::{self, RequestOnBus};
use macbridge_bus::{clock, layout};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::job;
use crate::publish;

/// What happened to one request branch during a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Already answered, or someone else holds it, or this runner cannot serve it.
    Skipped(String),
    /// Refused with a recorded result.
    Refused(String),
    /// Ran and published a result in this state.
    Ran(ResultState),
    /// Lost the claim race: another runner has it.
    Lost,
    /// Started, then lost the lease (or was told to stop): nothing published.
    Abandoned,
}

pub struct Runner {
    pub config: Config,
    pub bus: Bus,
    pub identity: RunnerIdentity,
    pub trust: Trust,
    pub engine: PathBuf,
    /// Branch tips already known to be answered, so later scans skip them cheaply.
    finished: std::cell::RefCell<BTreeSet<String>>,
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
        })
    }

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
            let outcome = self.handle(req, &claims).unwrap_or_else(|e| {
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
            if !progressed || crate::stop_requested() {
                return Ok(all);
            }
        }
    }

    fn handle(&self, req: RequestOnBus, claims: &BTreeSet<String>) -> anyhow::Result<Handled> {
        let now = clock::now();
        if let Some(size) = req.manifest_too_large {
            let reason =
                verify::Refusal::new(RefusalCode::InvalidManifest, view::too_large_message(size))
                    .reason();
            publish::refusal(self, &req, ResultState::Rejected, &reason, None)?;
            return Ok(Handled::Refused(reason));
        }
        let verified = match verify::verify_request(
            &req.branch,
            req.manifest_bytes.as_deref(),
            req.signature.as_deref(),
            &self.trust,
            now,
        ) {
            Ok(v) => v,
            Err(refusal) => {
                let state = if refusal.code == RefusalCode::Expired {
                    ResultState::Expired
                } else {
                    ResultState::Rejected
                };
                info!(branch = %req.branch, reason = %refusal, "refusing request");
                publish::refusal(self, &req, state, &refusal.reason(), None)?;
                return Ok(Handled::Refused(refusal.reason()));
            }
        };
        let mut needed = verified.manifest.labels.clone();
        needed.extend(verified.preset.labels.iter().cloned());
        if !verify::labels_satisfied(&needed, &self.config.labels) {
            return Ok(Handled::Skipped(format!(
                "needs labels {needed:?}; this runner has {:?}",
                self.config.labels
            )));
        }
        // A preset this runner cannot fill in (a model directory it was never given) is refused
        // before anything is claimed or started.
        let missing: Vec<String> = verified
            .preset
            .required_env()
            .into_iter()
            .filter(|name| self.config.env.get(name).is_none_or(|v| v.is_empty()))
            .collect();
        if !missing.is_empty() {
            let reason = format!(
                "{}: preset {} needs runner env {} (set it under `env:` in the runner config)",
                RefusalCode::MissingEnv.as_str(),
                verified.preset.name,
                missing.join(", ")
            );
            publish::refusal(self, &req, ResultState::Rejected, &reason, None)?;
            return Ok(Handled::Refused(reason));
        }
        let request_id = verified.manifest.request_id.clone();
        // The scan fetched every claim it listed. A claim made since then makes our create-only
        // push fail, and a lease renewed since then makes our re-claim fail: both are `Lost`.
        let previous = if claims.contains(&layout::claim_ref(&request_id)) {
            view::read_lease(&self.bus, &request_id)?
        } else {
            None
        };
        let mut reclaim = None;
        if let Some(prev) = &previous {
            match &prev.lease {
                Ok(lease) if lease.branch != req.branch => {
                    let reason = format!(
                        "replay: request {request_id} was already claimed for {}",
                        lease.branch
                    );
                    publish::refusal(self, &req, ResultState::Rejected, &reason, None)?;
                    return Ok(Handled::Refused(reason));
                }
                Ok(lease) if lease.state == LeaseState::Done => {
                    // Results are published atomically with `done`, so a finished claim with
                    // no result on the branch means the branch was re-created: a replay.
                    let reason = format!(
                        "replay: request {request_id} already finished (claim closed by {})",
                        lease.runner_id
                    );
                    publish::refusal(self, &req, ResultState::Rejected, &reason, None)?;
                    return Ok(Handled::Refused(reason));
                }
                Ok(lease) => {
                    let expired = clock::parse(&lease.expires_at).is_none_or(|t| t < now);
                    let open = matches!(lease.state, LeaseState::Released)
                        || (matches!(lease.state, LeaseState::Claimed | LeaseState::Running)
                            && expired);
                    if !open {
                        return Ok(Handled::Skipped(format!(
                            "held by {} until {}",
                            lease.runner_id, lease.expires_at
                        )));
                    }
                    reclaim = Some((prev, lease.attempt));
                }
                Err(e) => {
                    return Ok(Handled::Skipped(format!("unreadable lease: {e}")));
                }
            }
        }
        let handle = match lease::claim(
            &self.bus,
            &self.identity,
            &request_id,
            &req.branch,
            req.request_commit,
            reclaim.map(|(p, _)| p),
            self.config.lease_seconds,
        )? {
            LeaseOutcome::Held(h) => *h,
            LeaseOutcome::Lost => return Ok(Handled::Lost),
        };
        info!(branch = %req.branch, request_id = %request_id, attempt = handle.lease.attempt, "claimed");
        self.github_status(
            &req.request_commit.to_string(),
            macbridge_bus::github::StatusState::Pending,
            &format!(
                "claimed by {} (attempt {})",
                self.config.runner_id, handle.lease.attempt
            ),
        );
        if let Some((_, attempts)) = reclaim
            && attempts >= self.config.max_attempts
        {
            let reason = format!(
                "gave up after {attempts} attempt(s): each runner's lease expired before it finished (max_attempts {})",
                self.config.max_attempts
            );
            publish::refusal(self, &req, ResultState::Failed, &reason, Some(&handle))?;
            return Ok(Handled::Refused(reason));
        }
        if req.has_valid_cancel() {
            publish::refusal(
                self,
                &req,
                ResultState::Cancelled,
                "cancelled by the requester before it started",
                Some(&handle),
            )?;
            return Ok(Handled::Ran(ResultState::Cancelled));
        }
        job::run(self, &req, verified, handle)
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
