//! Which key signs for the requester, and how it signs.
//!
//! `--key PATH` (or `MACBRIDGE_KEY`) names a key file: an unencrypted private
//! key, a passphrase-protected one, a `.pub` whose private half is in
//! ssh-agent, or a security-key handle (see `macbridge_bus::sig::requester`).
//! Without it, git's own commit-signing key is used when git signs with SSH
//! (`gpg.format=ssh`): `user.signingkey` is a key file path (`~/` expanded)
//! or a literal public key (`key::ssh-ed25519 AAAA...`, or the bare line
//! older git accepted), which then signs through the agent.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use macbridge_bus::sig::{self, RequesterKey, ResolveOptions};
use serde::Serialize;

use crate::common::usage;

/// Where the key came from.
#[derive(Debug, Clone, Serialize)]
pub struct KeySource {
    /// `--key`, `git` (user.signingkey with gpg.format=ssh).
    pub from: &'static str,
    /// The path, or git's value as configured.
    pub value: String,
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.from {
            "git" => write!(f, "git's user.signingkey {:?} (gpg.format=ssh)", self.value),
            _ => write!(f, "--key {}", self.value),
        }
    }
}

/// Resolve the signing key for `run`, `request` and `cancel`; every problem is a usage
/// error (exit 2, nothing pushed).
pub fn requester_key(key: Option<&Path>) -> anyhow::Result<RequesterKey> {
    let (source, resolved) = resolve(key).map_err(usage)?;
    tracing::debug!(%source, key = %resolved.describe(), "signing key");
    Ok(resolved)
}

/// The key and where it came from, or a sentence saying why there is none.
pub fn resolve(key: Option<&Path>) -> Result<(KeySource, RequesterKey), String> {
    let options = ResolveOptions {
        interactive: std::io::stdin().is_terminal(),
    };
    if let Some(path) = key {
        let source = KeySource {
            from: "--key",
            value: path.display().to_string(),
        };
        let resolved = RequesterKey::from_file(path, options).map_err(|e| e.to_string())?;
        return Ok((source, resolved));
    }
    let configured = git_signing_key()?;
    let source = KeySource {
        from: "git",
        value: configured.clone(),
    };
    let resolved = match literal_key(&configured) {
        Some(line) => sig::parse_public_text("git's user.signingkey", line)
            .and_then(|public| RequesterKey::from_public_key(public, "git's user.signingkey")),
        None => RequesterKey::from_file(&expand_home(&configured), options),
    }
    .map_err(|e| format!("{e} (key from {source})"))?;
    Ok((source, resolved))
}

/// git's SSH signing key, or why it cannot be used.
fn git_signing_key() -> Result<String, String> {
    const NONE: &str = "no signing key: pass --key PATH (or set MACBRIDGE_KEY), or configure git to \
                        sign with SSH (`git config --global gpg.format ssh` and \
                        `git config --global user.signingkey ~/.ssh/id_ed25519.pub`)";
    let format = git_config("gpg.format").map_err(|e| format!("{NONE} ({e})"))?;
    match format.as_deref() {
        Some("ssh") => {}
        Some(other) => {
            return Err(format!(
                "{NONE}; git signs with {other:?} (gpg.format), which macbridge cannot use"
            ));
        }
        None => return Err(NONE.to_owned()),
    }
    match git_config("user.signingkey").map_err(|e| format!("{NONE} ({e})"))? {
        Some(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
        _ => Err(format!(
            "{NONE}; gpg.format is ssh but user.signingkey is not set (macbridge does not run \
             gpg.ssh.defaultKeyCommand)"
        )),
    }
}

/// `git config --get NAME` in the current folder (so a repository's own config counts, as
/// it does for `git commit -S`). `None` when unset; an error only when git cannot run.
fn git_config(name: &str) -> Result<Option<String>, String> {
    let out = Command::new("git")
        .args(["config", "--get", name])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git to read {name}: {e}"))?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// The public key line of a literal `user.signingkey`, as git recognises them: the
/// `key::` prefix, or (deprecated in git) a bare `ssh-...` line.
fn literal_key(value: &str) -> Option<&str> {
    if let Some(rest) = value.strip_prefix("key::") {
        return Some(rest.trim());
    }
    let bare = ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"];
    (bare.iter().any(|p| value.starts_with(p)) && value.contains(' ')).then_some(value)
}

/// `~/x` → `$HOME/x`, as git expands paths in its config.
fn expand_home(value: &str) -> PathBuf {
    match (value.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_keys_are_told_from_paths() {
        assert_eq!(
            literal_key("key::ssh-ed25519 AAAA x"),
            Some("ssh-ed25519 AAAA x")
        );
        assert_eq!(literal_key("ssh-ed25519 AAAA"), Some("ssh-ed25519 AAAA"));
        assert_eq!(literal_key("~/.ssh/id_ed25519.pub"), None);
        assert_eq!(literal_key("ssh-keys/id"), None);
    }

    #[test]
    fn home_is_expanded_only_at_the_start() {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(home) = home {
            assert_eq!(expand_home("~/.ssh/k"), home.join(".ssh/k"));
        }
        assert_eq!(expand_home("/a/~/b"), PathBuf::from("/a/~/b"));
    }
}
