//! Running one job: argv only (never a shell), a scrubbed environment, its own process group,
//! output to files, and a stop ladder (SIGINT, SIGTERM, SIGKILL) for timeouts, cancels and
//! lost leases. When the job's main process ends, whatever it left in its group is killed,
//! so no orphan outlives its job. A supervisor leads the group and kills it when the runner
//! dies, even by SIGKILL (`watchdog`); workload jobs may be confined (`sandbox`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sandbox::Confinement;

/// How to run a job.
pub struct JobSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub grace: Duration,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// How often `tick` is called while the job runs.
    pub tick_every: Duration,
    /// A job whose stdout or stderr file grows past this is stopped (protects the disk).
    pub max_output_bytes: u64,
    /// Holds the job's process-group id while it runs, so a restarted runner can stop a job
    /// its previous life left behind.
    pub pid_file: PathBuf,
}

/// Beside the pid file: the job's raw wait status, written by its supervisor the moment the
/// job ends while the runner is still alive (`watchdog`). A runner killed before it could
/// record the end finds it on restart and publishes instead of running the job again.
pub const EXIT_FILE: &str = "job.exit";
/// Beside the pid file: written by the runner *before* it starts stopping the job (timeout,
/// cancel, fencing, shutdown, output limit), so an exit status written after it is known
/// not to be the job's own end.
pub const STOPPING_FILE: &str = "job.stopping";

/// What the runner wants after a heartbeat.
pub enum Tick {
    Continue,
    /// The requester cancelled: stop the job, publish a cancelled result.
    Cancel,
    /// The lease was lost: stop the job, publish nothing.
    Abandon,
    /// The runner is shutting down: stop the job and give the request back.
    Release,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    Cancelled,
    Abandoned,
    Released,
    OutputLimit,
}

pub struct Outcome {
    pub ending: Ending,
    /// Exit code or signal of the main process, whatever ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub run_time: Duration,
}

/// Mark the job as being stopped by the runner, then send the first signal of the ladder.
fn begin_stop(stopping_file: &Path, pgid: i32) {
    let _ = std::fs::write(stopping_file, b"");
    signal_group(pgid, libc::SIGINT);
}

/// The raw wait status a supervisor recorded in `job_dir` for a job that ended by itself,
/// and when; `None` when there is none or the runner had begun stopping the job.
pub fn recorded_exit(job_dir: &Path) -> Option<(std::process::ExitStatus, std::time::SystemTime)> {
    if job_dir.join(STOPPING_FILE).exists() {
        return None;
    }
    let path = job_dir.join(EXIT_FILE);
    let raw: i32 = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
    let at = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    Some((std::process::ExitStatus::from_raw(raw), at))
}

/// Start the job and wait for it, calling `tick` every `tick_every`.
#[allow(dead_code)] // The unconfined entry point; job.rs goes through `run_confined`.
pub fn run(spec: &JobSpec, tick: impl FnMut() -> Tick) -> std::io::Result<Outcome> {
    run_confined(spec, None, tick)
}

/// [`run`], with the job entering `confinement` (if any) before it execs.
pub fn run_confined(
    spec: &JobSpec,
    confinement: Option<&Confinement>,
    mut tick: impl FnMut() -> Tick,
) -> std::io::Result<Outcome> {
    let argv = match confinement {
        Some(c) => c.wrap_argv(&spec.argv),
        None => spec.argv.clone(),
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty argv"))?;
    let stdout = File::create(&spec.stdout_path)?;
    let stderr = File::create(&spec.stderr_path)?;
    let started = Instant::now();
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    if let Some(c) = confinement {
        // SAFETY: the hook makes only async-signal-safe system calls on prepared data.
        unsafe {
            command.pre_exec(c.hook());
        }
    }
    // SAFETY: getpid cannot fail; the watchdog split is async-signal-safe (see watchdog.rs)
    // and runs after the process group is set and after the sandbox hook.
    let runner_pid = unsafe { libc::getpid() };
    let exit_file = spec.pid_file.with_file_name(EXIT_FILE);
    let stopping_file = spec.pid_file.with_file_name(STOPPING_FILE);
    let _ = std::fs::remove_file(&exit_file);
    let _ = std::fs::remove_file(&stopping_file);
    let exit_file = std::ffi::CString::new(exit_file.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    unsafe {
        command.pre_exec(move || crate::watchdog::split(runner_pid, &exit_file));
    }
    let mut child = command.spawn()?;
    let pgid = child.id() as i32;
    // Best effort: without the file only orphan clean-up after a runner crash is lost.
    let _ = std::fs::write(&spec.pid_file, format!("{pgid}\n"));
    let mut next_tick = started + spec.tick_every;
    let mut stop: Option<(Ending, Instant, u8)> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let now = Instant::now();
        if stop.is_none() {
            if now.duration_since(started) >= spec.timeout {
                stop = Some((Ending::TimedOut, now, 0));
                begin_stop(&stopping_file, pgid);
            } else if output_too_large(spec) {
                stop = Some((Ending::OutputLimit, now, 0));
                begin_stop(&stopping_file, pgid);
            } else if now >= next_tick {
                next_tick = now + spec.tick_every;
                match tick() {
                    Tick::Continue => {}
                    Tick::Cancel => {
                        stop = Some((Ending::Cancelled, now, 0));
                        begin_stop(&stopping_file, pgid);
                    }
                    Tick::Abandon => {
                        stop = Some((Ending::Abandoned, now, 0));
                        begin_stop(&stopping_file, pgid);
                    }
                    Tick::Release => {
                        stop = Some((Ending::Released, now, 0));
                        begin_stop(&stopping_file, pgid);
                    }
                }
            }
        } else if let Some((ending, since, step)) = stop
            && now.duration_since(since) >= spec.grace
        {
            // Climb the ladder: SIGINT was sent; then SIGTERM; then SIGKILL.
            let (signal, next_step) = if step == 0 {
                (libc::SIGTERM, 1)
            } else {
                (libc::SIGKILL, 2)
            };
            signal_group(pgid, signal);
            stop = Some((ending, now, next_step));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Anything the job left behind in its group goes with it.
    signal_group(pgid, libc::SIGKILL);
    let _ = std::fs::remove_file(&spec.pid_file);
    let run_time = started.elapsed();
    let exit_code = status.code();
    let signal = status.signal();
    let ending = match stop {
        Some((ending, _, _)) => ending,
        None => match (exit_code, signal) {
            (Some(code), _) => Ending::Exited(code),
            (None, Some(sig)) => Ending::Signalled(sig),
            (None, None) => Ending::Exited(-1),
        },
    };
    Ok(Outcome {
        ending,
        exit_code,
        signal,
        run_time,
    })
}

fn output_too_large(spec: &JobSpec) -> bool {
    [&spec.stdout_path, &spec.stderr_path].iter().any(|p| {
        std::fs::metadata(p)
            .map(|m| m.len() > spec.max_output_bytes)
            .unwrap_or(false)
    })
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: killpg only sends a signal; a stale group id yields ESRCH, which is fine.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// Stop a job left running by an earlier life of this runner (it crashed or was killed with
/// SIGKILL, so its job's process group survived). `marker` must appear in the group leader's
/// command line or environment — the job folder's request id — so that a recycled process id
/// belonging to something else is never signalled.
pub fn reap_orphan(pid_file: &Path, marker: &str) -> bool {
    let Some(pgid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        let _ = std::fs::remove_file(pid_file);
        return false;
    };
    let ours = process_mentions(pgid, marker);
    if ours {
        signal_group(pgid, libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(200));
        signal_group(pgid, libc::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file);
    ours
}

/// Whether any process in group `pgid` carries `marker` in its environment or command line.
/// The group leader is the job's supervisor, a fork of the runner, so the members count.
fn process_mentions(pgid: i32, marker: &str) -> bool {
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised command: state ppid pgrp ...
            let pgrp = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(2))
                .and_then(|s| s.parse::<i32>().ok());
            if pgrp != Some(pgid) {
                continue;
            }
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if String::from_utf8_lossy(&environ).contains(marker) {
                return true;
            }
        }
    }
    Command::new("ps")
        .args(["-ww", "-A", "-o", "pgid=,command="])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).lines().any(|line| {
                let line = line.trim_start();
                line.split_once(' ')
                    .is_some_and(|(g, cmd)| g.parse::<i32>() == Ok(pgid) && cmd.contains(marker))
            })
        })
        .unwrap_or(false)
}

/// The last `max` bytes of a log file, as text (for heartbeats).
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = file.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A log capped at `cap` bytes: the head and the tail, with a marker saying how much of the
/// middle was left out. Returns the bytes and whether anything was dropped.
pub fn capped(path: &Path, cap: u64) -> (Vec<u8>, bool) {
    let Ok(mut file) = File::open(path) else {
        return (Vec::new(), false);
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len <= cap {
        let mut buf = Vec::new();
        let _ = file.read_to_end(&mut buf);
        return (buf, false);
    }
    let half = cap / 2;
    let mut head = Vec::new();
    let _ = (&mut file).take(half).read_to_end(&mut head);
    let mut tail_bytes = Vec::new();
    if file.seek(SeekFrom::Start(len - half)).is_ok() {
        let _ = file.take(half).read_to_end(&mut tail_bytes);
    }
    let mut out = head;
    out.extend_from_slice(
        format!(
            "\n[macbridge: {} bytes omitted; log is {len} bytes, capped at {cap}]\n",
            len - 2 * half
        )
        .as_bytes(),
    );
    out.extend_from_slice(&tail_bytes);
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, argv: &[&str], timeout_ms: u64) -> JobSpec {
        JobSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            cwd: dir.to_path_buf(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            timeout: Duration::from_millis(timeout_ms),
            grace: Duration::from_millis(200),
            stdout_path: dir.join("stdout.log"),
            stderr_path: dir.join("stderr.log"),
            tick_every: Duration::from_millis(50),
            max_output_bytes: 1 << 20,
            pid_file: dir.join("job.pid"),
        }
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn a_timeout_stops_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let script = "sleep 30 & echo $! > child.pid; echo started; sleep 30";
        let s = spec(dir.path(), &["sh", "-c", script], 500);
        let out = run(&s, || Tick::Continue).unwrap();
        assert_eq!(out.ending, Ending::TimedOut);
        let child: i32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background child was killed with its group (it may linger as a zombie of init
        // for a moment, so poll).
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(child) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(child), "orphan {child} survived");
        assert!(!s.pid_file.exists(), "pid file left behind");
        assert_eq!(
            std::fs::read_to_string(&s.stdout_path).unwrap(),
            "started\n"
        );
    }

    #[test]
    fn exit_codes_cancel_and_the_environment_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(
            dir.path(),
            &["sh", "-c", "echo $PATH:$HOME; exit 7"],
            10_000,
        );
        let out = run(&s, || Tick::Continue).unwrap();
        assert_eq!(out.ending, Ending::Exited(7));
        // Scrubbed: HOME is not inherited.
        assert_eq!(
            std::fs::read_to_string(&s.stdout_path).unwrap(),
            "/usr/bin:/bin:\n"
        );
        let s = spec(dir.path(), &["sleep", "30"], 10_000);
        let out = run(&s, || Tick::Cancel).unwrap();
        assert_eq!(out.ending, Ending::Cancelled);
        assert!(out.run_time < Duration::from_secs(5));
    }

    #[test]
    fn runaway_output_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), &["yes"], 30_000);
        s.max_output_bytes = 64 * 1024;
        let out = run(&s, || Tick::Continue).unwrap();
        assert_eq!(out.ending, Ending::OutputLimit);
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(dir.path(), &["/nonexistent/program"], 1000);
        assert!(run(&s, || Tick::Continue).is_err());
        let s = spec(dir.path(), &[], 1000);
        assert!(run(&s, || Tick::Continue).is_err());
    }

    #[test]
    fn capped_logs_keep_head_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (0..200).map(|i| format!("line {i:03}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let (bytes, truncated) = capped(&path, 200);
        let out = String::from_utf8(bytes).unwrap();
        assert!(truncated);
        assert!(out.starts_with("line 000\n"));
        assert!(out.ends_with("line 199\n"));
        assert!(out.contains("bytes omitted"));
        let (bytes, truncated) = capped(&path, 10_000);
        assert!(!truncated);
        assert_eq!(bytes, text.as_bytes());
        assert_eq!(tail(&path, 9), "line 199\n");
        assert_eq!(capped(&dir.path().join("missing"), 10), (Vec::new(), false));
    }
}
