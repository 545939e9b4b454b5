//! Judging a job that ended: its exit, the evidence gate over its reports, and the state of
//! the disk it wrote to. A job stopped because the work folder filled up is `failed` with
//! that reason, and what it left in its scratch folder is removed so the runner can write the
//! result and serve the next request.

use std::path::Path;

use std::os::unix::process::ExitStatusExt;

use macbridge_bus::clock;
use macbridge_bus::records::{ResultState, Timings};
use macbridge_bus::verify::VerifiedRequest;
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::exec::Ending;
use crate::job::{Ended, Prepared};
use crate::runner::Runner;

/// In a job folder once its job ended and was judged: the result-to-be, so that a runner
/// killed between the end of the job and the publish publishes it on restart instead of the
/// request being run again.
pub const ENDED_FILE: &str = "ended.json";

/// The result-to-be of a job that ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Judged {
    pub state: ResultState,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timings: Timings,
    pub verdict: Option<evidence_gate::Verdict>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct EndedRecord {
    request_id: String,
    attempt: u32,
    judged: Judged,
}

/// Record `judged` in the job folder (atomically: temp file + rename) and return the SHA-256
/// (hex) of what was written, which the lease then announces. Best effort: `None` when it
/// could not be written; only the restart shortcut is lost then.
pub fn record(job_dir: &Path, request_id: &str, attempt: u32, judged: &Judged) -> Option<String> {
    let record = EndedRecord {
        request_id: request_id.to_string(),
        attempt,
        judged: judged.clone(),
    };
    let tmp = job_dir.join(format!("{ENDED_FILE}.partial"));
    let bytes = match serde_json::to_vec_pretty(&record) {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(dir = %job_dir.display(), error = %e, "could not record the job's end");
            return None;
        }
    };
    let written =
        std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, job_dir.join(ENDED_FILE)));
    match written {
        Ok(()) => Some(hex::encode(Sha256::digest(&bytes))),
        Err(e) => {
            warn!(dir = %job_dir.display(), error = %e, "could not record the job's end");
            None
        }
    }
}

/// The judged end of `request_id`'s attempt `attempt`, if this job folder recorded one, with
/// the SHA-256 (hex) of the record.
pub fn recorded(job_dir: &Path, request_id: &str, attempt: u32) -> Option<(Judged, String)> {
    let bytes = std::fs::read(job_dir.join(ENDED_FILE)).ok()?;
    let record: EndedRecord = serde_json::from_slice(&bytes).ok()?;
    (record.request_id == request_id && record.attempt == attempt)
        .then(|| (record.judged, hex::encode(Sha256::digest(&bytes))))
}

/// Free bytes on the filesystem holding `path` (for unprivileged users), if it can be read.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the struct we pass; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
}

/// `Some(free bytes)` when the work folder has less free space than `min_free_bytes`.
pub fn low_disk(runner: &Runner) -> Option<u64> {
    free_bytes(&runner.config.work_dir).filter(|free| *free < runner.config.min_free_bytes)
}

/// Judge a job that ended.
pub fn judge(
    runner: &Runner,
    verified: &VerifiedRequest,
    prepared: &Prepared,
    ended: &Ended,
) -> Judged {
    let outcome = &ended.outcome;
    let timings = Timings {
        claimed_at: Some(prepared.claimed_at.clone()),
        started_at: Some(ended.started_at.clone()),
        finished_at: Some(ended.finished_at.clone()),
        run_seconds: Some((outcome.run_time.as_secs_f64() * 1000.0).round() / 1000.0),
    };
    let disk_full = ended.disk_full.or_else(|| low_disk(runner));
    if let Some(free) = disk_full {
        free_space(prepared);
        let reason = format!(
            "disk_full: the work folder {} had {free} bytes free (min_free_bytes {}); {}",
            runner.config.work_dir.display(),
            runner.config.min_free_bytes,
            match outcome.ending {
                Ending::Cancelled if ended.disk_full.is_some() => "the job was stopped".to_string(),
                _ => ending_reason(outcome.ending, prepared)
                    .unwrap_or_else(|| "the job ended".to_string()),
            }
        );
        return Judged {
            state: ResultState::Failed,
            reason: Some(reason),
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            timings,
            verdict: None,
        };
    }
    let verdict = (!verified.preset.reports.is_empty() || has_json(&prepared.out))
        .then(|| evidence_gate::check_dir(&prepared.out, &verified.preset.reports));
    let (state, reason) = match (outcome.ending, &verdict) {
        (Ending::Exited(0), Some(v)) if !v.passed => (
            ResultState::Failed,
            Some(format!("evidence gate: {}", gate_reason(v))),
        ),
        (Ending::Exited(0), _) => (ResultState::Done, None),
        (Ending::TimedOut, _) => (
            ResultState::TimedOut,
            ending_reason(outcome.ending, prepared),
        ),
        (Ending::Cancelled, _) => (
            ResultState::Cancelled,
            ending_reason(outcome.ending, prepared),
        ),
        (ending, _) => (ResultState::Failed, ending_reason(ending, prepared)),
    };
    Judged {
        state,
        reason,
        exit_code: outcome.exit_code,
        signal: outcome.signal,
        timings,
        verdict,
    }
}

/// Judge the end of a job from what its folder holds after a runner restart: the exit
/// status its supervisor recorded (see `exec::recorded_exit`), its reports and the disk.
/// `None` when the folder records no end of the job's own.
pub fn judge_recorded_exit(
    runner: &Runner,
    verified: &VerifiedRequest,
    job_dir: &Path,
    claimed_at: &str,
) -> Option<Judged> {
    let (status, finished) = crate::exec::recorded_exit(job_dir)?;
    // job.json is written just before the job is spawned.
    let started = std::fs::metadata(job_dir.join("job.json"))
        .and_then(|m| m.modified())
        .ok();
    let stamp = |t: std::time::SystemTime| clock::format(time::OffsetDateTime::from(t));
    let timings = Timings {
        claimed_at: Some(claimed_at.to_string()),
        started_at: started.map(stamp),
        finished_at: Some(stamp(finished)),
        run_seconds: started
            .and_then(|s| finished.duration_since(s).ok())
            .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
    };
    let (exit_code, signal) = (status.code(), status.signal());
    if let Some(free) = low_disk(runner) {
        return Some(Judged {
            state: ResultState::Failed,
            reason: Some(format!(
                "disk_full: the work folder {} had {free} bytes free (min_free_bytes {}); the job ended",
                runner.config.work_dir.display(),
                runner.config.min_free_bytes
            )),
            exit_code,
            signal,
            timings,
            verdict: None,
        });
    }
    let out = job_dir.join("out");
    let verdict = (!verified.preset.reports.is_empty() || has_json(&out))
        .then(|| evidence_gate::check_dir(&out, &verified.preset.reports));
    let (state, reason) = match (exit_code, signal, &verdict) {
        (Some(0), _, Some(v)) if !v.passed => (
            ResultState::Failed,
            Some(format!("evidence gate: {}", gate_reason(v))),
        ),
        (Some(0), _, _) => (ResultState::Done, None),
        (Some(code), _, _) => (ResultState::Failed, Some(format!("exit code {code}"))),
        (None, Some(sig), _) => (ResultState::Failed, Some(format!("killed by signal {sig}"))),
        (None, None, _) => (ResultState::Failed, Some("exit code -1".to_string())),
    };
    Some(Judged {
        state,
        reason,
        exit_code,
        signal,
        timings,
        verdict,
    })
}

fn ending_reason(ending: Ending, prepared: &Prepared) -> Option<String> {
    Some(match ending {
        Ending::Exited(0) => return None,
        Ending::Exited(code) => format!("exit code {code}"),
        Ending::Signalled(sig) => format!("killed by signal {sig}"),
        Ending::TimedOut => format!(
            "timed out after its {} s limit",
            prepared.spec.timeout.as_secs_f64()
        ),
        Ending::Cancelled => "cancelled by the requester".to_string(),
        Ending::OutputLimit => "stopped: the job's output exceeded the runner's limit".to_string(),
        Ending::Abandoned | Ending::Released => "lease lost".to_string(),
    })
}

/// After a full disk: drop the job's scratch files, so the result commit can be written and
/// the next job has room. Logs stay (they are published capped at `log_cap_bytes`).
fn free_space(prepared: &Prepared) {
    if let Err(e) = std::fs::remove_dir_all(&prepared.tmp) {
        warn!(dir = %prepared.tmp.display(), error = %e, "could not empty the job's scratch folder");
    }
    let _ = std::fs::create_dir_all(&prepared.tmp);
}

fn gate_reason(verdict: &evidence_gate::Verdict) -> String {
    let mut parts: Vec<String> = verdict
        .violations
        .iter()
        .map(|v| format!("[{}] {}", v.code, v.message))
        .collect();
    for report in verdict.reports.iter().filter(|r| !r.passed) {
        for v in &report.violations {
            parts.push(format!("{}: [{}] {}", report.path, v.code, v.message));
        }
    }
    parts.truncate(5);
    parts.join("; ")
}

fn has_json(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .unwrap_or(false)
}
