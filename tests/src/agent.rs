//! A real `ssh-agent` per test, with its socket in the test's temporary folder, and OpenSSH
//! keys of every type made by the real `ssh-keygen` (optionally passphrase-protected).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::craft;
use crate::proc::{self, Background};

/// How long an OpenSSH tool may take.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// A running `ssh-agent -D -a SOCKET`; killed when dropped.
pub struct Agent {
    pub socket: PathBuf,
    _process: Background,
}

impl Agent {
    /// Start an agent whose socket lives in `dir` (which must be short enough for a Unix
    /// socket path) and wait until it answers.
    pub fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let process = Background::spawn(
            Command::new("ssh-agent").arg("-D").arg("-a").arg(&socket),
            &dir.join("agent.log"),
        );
        let agent = Agent {
            socket,
            _process: process,
        };
        proc::wait_for("ssh-agent to answer", TOOL_LIMIT, || {
            // 0: keys listed, 1: no identities; 2: cannot connect (yet).
            let out = proc::run(agent.cmd("ssh-add").arg("-L"), TOOL_LIMIT);
            matches!(out.code(), Some(0) | Some(1)).then_some(())
        });
        agent
    }

    /// `program` with `SSH_AUTH_SOCK` pointing at this agent.
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SSH_AUTH_SOCK", &self.socket);
        cmd
    }

    /// `ssh-add KEY`, answering a passphrase prompt with `passphrase` through an askpass
    /// script (ssh-add reads passphrases from a terminal or SSH_ASKPASS only).
    #[track_caller]
    pub fn add(&self, key: &Path, passphrase: Option<&str>) {
        let mut cmd = self.cmd("ssh-add");
        cmd.arg(key);
        if let Some(pass) = passphrase {
            let script = key.with_file_name(format!(
                "askpass-{}",
                key.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' '{pass}'\n"))
                .expect("writing askpass");
            make_executable(&script);
            cmd.env("SSH_ASKPASS", &script)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0");
        }
        proc::run(&mut cmd, TOOL_LIMIT).ok();
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

/// A key made by `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct SshKey {
    pub path: PathBuf,
    pub public: PathBuf,
    /// `TYPE AAAA...` without the comment.
    pub public_line: String,
    pub fingerprint: String,
}

/// `ssh-keygen -t TYPE [-b BITS] -N PASSPHRASE -f DIR/NAME`.
#[track_caller]
pub fn ssh_keygen(
    dir: &Path,
    name: &str,
    key_type: &str,
    bits: Option<u32>,
    passphrase: &str,
) -> SshKey {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", key_type, "-N", passphrase, "-C", name, "-f"])
        .arg(&path);
    if let Some(bits) = bits {
        cmd.args(["-b", &bits.to_string()]);
    }
    proc::run(&mut cmd, TOOL_LIMIT).ok();
    from_files(&path)
}

/// The [`SshKey`] for an existing `PATH` / `PATH.pub` pair.
pub fn from_files(path: &Path) -> SshKey {
    let public = PathBuf::from(format!("{}.pub", path.display()));
    let text = std::fs::read_to_string(&public).expect("reading a public key");
    SshKey {
        public_line: text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        fingerprint: craft::fingerprint(&public),
        path: path.to_path_buf(),
        public,
    }
}
