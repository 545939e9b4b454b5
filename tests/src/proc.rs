//! Running processes: every run has a deadline, and background processes are always reaped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often deadline loops look again.
const POLL: Duration = Duration::from_millis(25);

/// A finished process: exit status and captured output.
#[derive(Debug)]
pub struct Finished {
    /// What was run, for failure messages.
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the full output unless the process exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.status.success(), "{} failed:\n{self}", self.what);
        self
    }

    /// Panics with the full output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            Some(code),
            "{}: unexpected exit code:\n{self}",
            self.what
        );
        self
    }

    /// stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{self}", self.what))
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "  status: {}\n  stdout: {}\n  stderr: {}",
            self.status, self.stdout, self.stderr
        )
    }
}

fn reader(mut source: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = source.read_to_end(&mut buf);
        buf
    })
}

/// Run `cmd` to completion with stdin closed, capturing its output. Kills it and panics if it
/// is still running after `limit` (a hung process must fail the test, not hang the suite).
#[track_caller]
pub fn run(cmd: &mut Command, limit: Duration) -> Finished {
    run_with_input(cmd, None, limit)
}

/// Like [`run`], feeding `input` on stdin.
#[track_caller]
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Finished {
    let what = format!("{cmd:?}");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let Some(bytes) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let bytes = bytes.to_vec();
        // A writer thread, so a child that does not read cannot block us.
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &bytes);
        });
    }
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    match status {
        Some(status) => Finished {
            what,
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{what} still running after {limit:?}; killed.\nstdout: {stdout}\nstderr: {stderr}"
        ),
    }
}

/// Poll `probe` until it returns `Some`, panicking with `what` after `limit`.
#[track_caller]
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL * 4);
    }
}

/// A process running in the background with its output in a log file. Dropping it kills it
/// (SIGKILL) and reaps it, so a failing test leaks nothing; [`Background::stop`] asks nicely.
pub struct Background {
    child: Option<Child>,
    pub log: PathBuf,
    pub pid: u32,
}

impl Background {
    /// Start `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Background {
        let file = std::fs::File::create(log).expect("creating a log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("cloning a log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Background {
            pid: child.id(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("polling a child").is_none(),
            None => false,
        }
    }

    /// Send SIGTERM and wait (up to `limit`) for a clean exit; returns the exit status.
    /// Panics (after killing it) if the process ignores the signal.
    #[track_caller]
    pub fn stop(mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("process already stopped");
        if let Some(status) = child.try_wait().expect("polling a child") {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("polling a child") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "pid {} ignored SIGTERM for {limit:?}; killed. Log:\n{}",
                    self.pid,
                    self.log_text()
                );
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a process with this pid exists (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; `Z` is a zombie, `X` dead.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Live processes (not zombies) whose command line mentions `needle`, as `(pid, cmdline)`.
/// A test's temporary folder is in every command line it starts, so this finds leaks.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && pid_alive(*pid))
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

impl Background {
    /// SIGKILL this process only (not its children or process groups it started) and reap it:
    /// what `kill -9 <pid>` does to a runner that dies mid-job.
    pub fn kill(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("process already stopped");
        let _ = child.kill();
        child.wait().expect("reaping a killed child")
    }
}

/// Send `signal` (a name such as `STOP`) to process `pid` only; whether it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Send `signal` (a name such as `KILL`) to every process of group `pgid`; whether any
/// process received it.
pub fn signal_group(pgid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Kills whole process groups when dropped, so a job orphaned on purpose (its runner was
/// killed with SIGKILL) never outlives its test, pass or fail. Only processes of a watched
/// group whose command line or environment mention `marker` (the test's folder) are
/// signalled, so a recycled group id never hits anything else.
#[derive(Debug)]
pub struct GroupReaper {
    marker: String,
    groups: std::sync::Mutex<Vec<u32>>,
}

impl GroupReaper {
    /// A reaper for processes mentioning `marker`.
    pub fn new(marker: impl Into<String>) -> Self {
        GroupReaper {
            marker: marker.into(),
            groups: Default::default(),
        }
    }

    /// Kill group `pgid` when this reaper is dropped (or in [`GroupReaper::reap`]).
    pub fn watch(&self, pgid: u32) {
        let mut groups = self.groups.lock().expect("reaper lock");
        if !groups.contains(&pgid) {
            groups.push(pgid);
        }
    }

    /// SIGKILL every process of the watched groups now.
    pub fn reap(&self) {
        let groups: Vec<u32> = self.groups.lock().expect("reaper lock").drain(..).collect();
        if groups.is_empty() {
            return;
        }
        let all = process_groups();
        // A watched pid may be a group member rather than its leader (the runner's supervisor
        // leads each job group): its group is watched too.
        let groups: Vec<u32> = all
            .iter()
            .filter(|(pid, _)| groups.contains(pid))
            .map(|(_, pgid)| *pgid)
            .chain(groups.iter().copied())
            .collect();
        for (pid, pgid) in all {
            if groups.contains(&pgid) && mentions(pid, &self.marker) {
                signal(pid, "KILL");
            }
        }
    }
}

/// Every live process as `(pid, process group id)`.
fn process_groups() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command name: state, ppid, pgrp, ...
            let pgrp = stat.rsplit_once(')')?.1.split_whitespace().nth(2)?;
            Some((pid, pgrp.parse().ok()?))
        })
        .collect()
}

/// Whether the command line or environment of `pid` contains `marker`.
fn mentions(pid: u32, marker: &str) -> bool {
    ["cmdline", "environ"].iter().any(|f| {
        std::fs::read(format!("/proc/{pid}/{f}"))
            .is_ok_and(|raw| String::from_utf8_lossy(&raw).contains(marker))
    })
}

impl Drop for GroupReaper {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Poll `probe` until it returns `Some` or `limit` passes (then `None`), so the caller can
/// fail with its own context (the last state it saw).
pub fn poll<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL * 4);
    }
}
