//! Running the system `git` with a deadline, no prompts and captured output.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A git subprocess that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GitCommandError {
    #[error("cannot run git (is it installed and on PATH?): {0}")]
    Spawn(std::io::Error),
    #[error("git {command} timed out after {seconds} s")]
    Timeout { command: String, seconds: u64 },
    #[error("git {command} failed ({status}): {}", stderr.trim())]
    Failed {
        command: String,
        status: String,
        stdout: String,
        stderr: String,
    },
}

pub(crate) struct Output {
    pub stdout: String,
}

/// Run `git --git-dir=<git_dir> <args>`; stdin is closed and prompting is disabled so a
/// missing credential fails fast instead of hanging a daemon.
pub(crate) fn run(
    git_dir: &Path,
    args: &[&str],
    timeout: Duration,
) -> Result<Output, GitCommandError> {
    let command_label = args.first().copied().unwrap_or("").to_string();
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("GIT_PROTOCOL", "version=2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitCommandError::Spawn)?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(GitCommandError::Timeout {
                    command: command_label,
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(GitCommandError::Spawn(e)),
        }
    };
    let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    if status.success() {
        Ok(Output { stdout })
    } else {
        Err(GitCommandError::Failed {
            command: command_label,
            status: status.to_string(),
            stdout,
            stderr,
        })
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
