//! Signing through OpenSSH's own tools, as git does for `gpg.format=ssh`.
//!
//! macbridge never speaks the ssh-agent protocol and never decrypts a key:
//! `ssh-add -L` tells which keys the agent (`SSH_AUTH_SOCK`) holds, and
//! `ssh-keygen -Y sign` signs with the agent, with a security key, or after
//! asking for a passphrase on the terminal. Every signature produced this way
//! is verified here before it is used (see [`super::requester`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ssh_key::PublicKey;

use super::SigError;
use super::keys::fingerprint;

/// What the agent can do for one key.
#[derive(Debug, Clone)]
pub struct AgentView {
    /// The agent holds the key.
    pub holds: bool,
    /// For messages: where the agent is and what it holds (or why we could not ask).
    pub note: String,
}

/// The agent's socket, when `SSH_AUTH_SOCK` is set and non-empty.
pub fn agent_socket() -> Option<PathBuf> {
    std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// Whether ssh-agent holds `key`. Never fails: an absent or unreachable agent
/// simply does not hold it, and the note says why.
pub fn agent_view(key: &PublicKey) -> AgentView {
    let Some(socket) = agent_socket() else {
        return AgentView {
            holds: false,
            note: "SSH_AUTH_SOCK is not set, so no ssh-agent is reachable".to_owned(),
        };
    };
    match agent_keys() {
        Ok(keys) => {
            let holds = keys.iter().any(|k| k.key_data() == key.key_data());
            AgentView {
                holds,
                note: format!(
                    "ssh-agent at {} holds {} key{}{}",
                    socket.display(),
                    keys.len(),
                    if keys.len() == 1 { "" } else { "s" },
                    if holds {
                        ", this one included"
                    } else {
                        ", not this one"
                    }
                ),
            }
        }
        Err(e) => AgentView {
            holds: false,
            note: format!("ssh-agent at {}: {e}", socket.display()),
        },
    }
}

/// The public keys ssh-agent holds (`ssh-add -L`); certificates and lines
/// that do not parse are skipped.
pub fn agent_keys() -> Result<Vec<PublicKey>, SigError> {
    let out = Command::new("ssh-add")
        .arg("-L")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SigError::External {
            action: "cannot run ssh-add (OpenSSH client tools are needed to use ssh-agent)",
            detail: e.to_string(),
        })?;
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| PublicKey::from_openssh(l.trim()).ok())
            .collect()),
        // "The agent has no identities."
        Some(1) => Ok(Vec::new()),
        _ => Err(SigError::External {
            action: "cannot list the agent's keys",
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
    }
}

/// Signs `message` in `namespace` with the agent's copy of `key`, by handing
/// `ssh-keygen -Y sign` a public key file: with nothing else to load, it can
/// only use the agent, and it never prompts.
pub fn sign_with_agent(
    key: &PublicKey,
    namespace: &str,
    message: &[u8],
) -> Result<String, SigError> {
    let dir = scratch()?;
    let public = dir.path().join("signing-key.pub");
    let line = key.to_openssh().map_err(|e| SigError::Crypto {
        action: "cannot encode the public key",
        detail: e.to_string(),
    })?;
    write(&public, format!("{line}\n").as_bytes())?;
    ssh_keygen_sign(&dir, &public, namespace, message, false).map_err(|e| match e {
        SigError::External { detail, .. } => SigError::External {
            action: "ssh-agent did not sign",
            detail: format!("key {}: {detail}", fingerprint(key)),
        },
        other => other,
    })
}

/// Signs with the key file at `key_file` through `ssh-keygen -Y sign`: a
/// passphrase-protected key (ssh-keygen asks on the terminal, so only when
/// `interactive`) or a security-key handle (ssh-keygen talks to the device).
pub fn sign_with_key_file(
    key_file: &Path,
    namespace: &str,
    message: &[u8],
    interactive: bool,
) -> Result<String, SigError> {
    let dir = scratch()?;
    ssh_keygen_sign(&dir, key_file, namespace, message, interactive)
}

fn ssh_keygen_sign(
    dir: &tempfile::TempDir,
    key_file: &Path,
    namespace: &str,
    message: &[u8],
    interactive: bool,
) -> Result<String, SigError> {
    let data = dir.path().join("message");
    write(&data, message)?;
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(key_file)
        .arg(&data);
    // A prompt needs the terminal; everything else runs with stdin closed so
    // that ssh-keygen can never wait for input nobody will type.
    if interactive {
        cmd.stdin(Stdio::inherit()).stderr(Stdio::inherit());
    } else {
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    }
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| SigError::External {
            action: "cannot run ssh-keygen (OpenSSH client tools are needed for this key)",
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(SigError::External {
            action: "ssh-keygen -Y sign failed",
            detail: if stderr.is_empty() {
                format!("exit status {}", out.status)
            } else {
                stderr
            },
        });
    }
    let sig_path = dir.path().join("message.sig");
    std::fs::read_to_string(&sig_path).map_err(|source| SigError::Io {
        action: "cannot read the signature ssh-keygen wrote",
        path: sig_path,
        source,
    })
}

fn scratch() -> Result<tempfile::TempDir, SigError> {
    tempfile::Builder::new()
        .prefix("macbridge-sign-")
        .tempdir()
        .map_err(|source| SigError::Io {
            action: "cannot create a temporary folder",
            path: std::env::temp_dir(),
            source,
        })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), SigError> {
    std::fs::write(path, bytes).map_err(|source| SigError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    })
}
