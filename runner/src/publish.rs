//! Building signed results and getting them onto the request branch.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use macbridge_bus::git::TreeChange;
use macbridge_bus::github::StatusState;
use macbridge_bus::lease::{self, LeaseHandle, PublishOutcome};
use macbridge_bus::records::{Artifact, ResultRecord, ResultState, RunnerInfo, Timings};
use macbridge_bus::verify::VerifiedRequest;
use macbridge_bus::view::{self, RequestOnBus};
use macbridge_bus::{clock, layout, sig};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::exec;
use crate::runner::Runner;

/// Largest single report file published with a result.
const MAX_REPORT_BYTES: u64 = 8 * 1024 * 1024;

/// Facts about a finished job that go into its result.
pub struct JobFacts<'a> {
    pub state: ResultState,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timings: Timings,
    pub verdict: Option<evidence_gate::Verdict>,
    pub job_dir: &'a Path,
    pub out_dir: &'a Path,
}

fn runner_info(runner: &Runner) -> RunnerInfo {
    let public = runner.identity.key.public_key();
    RunnerInfo {
        id: runner.identity.id.clone(),
        key: sig::public_key_line(public),
        fingerprint: sig::fingerprint(public),
        labels: runner.identity.labels.clone(),
        version: runner.identity.version.clone(),
    }
}

fn base_record(
    runner: &Runner,
    req: &RequestOnBus,
    state: ResultState,
    reason: Option<String>,
) -> ResultRecord {
    let manifest = req.manifest.as_ref().ok();
    ResultRecord {
        schema_version: 1,
        request_id: manifest.map(|m| m.request_id.clone()),
        branch: req.branch.clone(),
        request_commit: req.request_commit.to_string(),
        state,
        reason,
        preset: manifest.map(|m| m.preset.clone()),
        preset_digest: manifest.map(|m| m.preset_digest.clone()),
        params: None,
        exit_code: None,
        signal: None,
        attempt: 0,
        runner: runner_info(runner),
        engine_version: None,
        timings: Timings::default(),
        verdict: None,
        artifacts: Vec::new(),
        logs_truncated: false,
        published_at: String::new(),
    }
}

/// Publish a result for a request that never ran (refused, expired, cancelled early, or given
/// up on). With a lease, the lease closes in the same push.
pub fn refusal(
    runner: &Runner,
    req: &RequestOnBus,
    state: ResultState,
    reason: &str,
    handle: Option<&LeaseHandle>,
) -> anyhow::Result<bool> {
    let mut record = base_record(runner, req, state, Some(reason.to_string()));
    record.attempt = handle.map(|h| h.lease.attempt).unwrap_or(0);
    push_with_retries(runner, req, handle, record, Vec::new())
}

/// Publish the result of a job that ran, with its logs and reports.
pub fn job_result(
    runner: &Runner,
    req: &RequestOnBus,
    verified: &VerifiedRequest,
    handle: &LeaseHandle,
    facts: JobFacts<'_>,
) -> anyhow::Result<bool> {
    let mut record = base_record(runner, req, facts.state, facts.reason);
    record.params = Some(verified.params.to_json());
    record.exit_code = facts.exit_code;
    record.signal = facts.signal;
    record.attempt = handle.lease.attempt;
    record.engine_version = Some(env!("CARGO_PKG_VERSION").to_string());
    record.timings = facts.timings;
    record.verdict = facts.verdict;
    let mut files = Vec::new();
    for name in ["stdout.log", "stderr.log"] {
        let (bytes, truncated) =
            exec::capped(&facts.job_dir.join(name), runner.config.log_cap_bytes);
        record.logs_truncated |= truncated;
        files.push(TreeChange::put(
            format!("{}/{name}", layout::LOGS_DIR),
            bytes,
        ));
    }
    files.extend(collect_reports(facts.out_dir)?);
    record.artifacts = files
        .iter()
        .filter_map(|f| {
            f.contents.as_ref().map(|c| Artifact {
                path: f.path.clone(),
                sha256: hex::encode(Sha256::digest(c)),
                bytes: c.len() as u64,
            })
        })
        .collect();
    push_with_retries(runner, req, Some(handle), record, files)
}

fn collect_reports(out: &Path) -> anyhow::Result<Vec<TreeChange>> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if size > MAX_REPORT_BYTES {
            warn!(file = %name, size, "report too large to publish; left in the job folder");
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        files.push(TreeChange::put(
            format!("{}/{name}", layout::REPORTS_DIR),
            bytes,
        ));
    }
    Ok(files)
}

/// Push a result, re-reading the branch when it moved and backing off on transport errors.
/// Returns false when the result must not (or need not) be published any more.
fn push_with_retries(
    runner: &Runner,
    req: &RequestOnBus,
    handle: Option<&LeaseHandle>,
    mut record: ResultRecord,
    files: Vec<TreeChange>,
) -> anyhow::Result<bool> {
    let mut tip = req.tip;
    let mut held = handle.cloned();
    let mut failures = 0u32;
    for _ in 0..64 {
        record.published_at = clock::format(clock::now());
        match lease::publish(
            &runner.bus,
            &runner.identity,
            &req.branch,
            tip,
            held.as_ref(),
            &record,
            files.clone(),
        ) {
            Ok(PublishOutcome::Published(commit)) => {
                info!(branch = %req.branch, state = record.state.as_str(), commit = %commit, "result published");
                let (state, mut description) = match record.state {
                    ResultState::Done => (StatusState::Success, "done".to_string()),
                    other => (StatusState::Failure, other.as_str().to_string()),
                };
                if let Some(v) = &record.verdict {
                    description.push_str(&format!("; gate {}", v.summary()));
                } else if let Some(reason) = &record.reason {
                    description.push_str(&format!(": {reason}"));
                }
                runner.github_status(&req.request_commit.to_string(), state, &description);
                return Ok(true);
            }
            Ok(PublishOutcome::LeaseLost) => {
                // The claim may have moved to our own last renewal (its answer lost).
                match held
                    .as_ref()
                    .map(|h| runner.adopt(h))
                    .transpose()?
                    .flatten()
                {
                    Some(ours) => held = Some(ours),
                    None => {
                        warn!(branch = %req.branch, "lease lost before publishing; result dropped");
                        return Ok(false);
                    }
                }
            }
            Ok(PublishOutcome::BranchMoved) => {
                runner.bus.fetch(std::slice::from_ref(&req.branch))?;
                match view::read_request(&runner.bus, &req.branch)? {
                    Some(now) if now.result.is_none() => tip = now.tip,
                    _ => return Ok(false),
                }
            }
            Err(e) => {
                failures += 1;
                // Keep trying while our lease still protects the request (nobody else may
                // publish until it expires); a refusal without a lease tries a few times.
                let lease_left = held
                    .as_ref()
                    .and_then(|h| clock::parse(&h.lease.expires_at))
                    .map(|t| clock::seconds_between(clock::now(), t))
                    .unwrap_or(0.0);
                if failures > 5 && lease_left < backoff(failures).as_secs_f64() + 2.0 {
                    return Err(e).context("publishing the result (transport kept failing)");
                }
                warn!(branch = %req.branch, error = %e, "publish failed; retrying");
                std::thread::sleep(backoff(failures));
            }
        }
    }
    anyhow::bail!("{} kept moving; result not published", req.branch)
}

/// Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, ... capped at 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let base = 0.5f64 * 2f64.powi(attempt.saturating_sub(1).min(6) as i32);
    let mut b = [0u8; 2];
    let jitter = if getrandom_fill(&mut b) {
        f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
    } else {
        0.5
    };
    Duration::from_secs_f64((base * (0.75 + 0.5 * jitter)).min(30.0))
}

fn getrandom_fill(buf: &mut [u8]) -> bool {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, buf))
        .is_ok()
}
