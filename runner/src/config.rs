//! The runner's YAML configuration. Relative paths are resolved against the config file's
//! folder, so a config and its keys can move together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// `macbridge-runner` configuration (see docs/OPS.md for every key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The bus: any git remote URL or path.
    pub remote: String,
    /// This runner's name, recorded in leases and results.
    pub runner_id: String,
    /// The runner's private key (OpenSSH ed25519) that signs leases and results.
    pub key: PathBuf,
    /// Who may sign requests (git's allowed_signers format).
    pub allowed_signers: PathBuf,
    /// Which presets each principal may request; absent = every principal, engine presets only.
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// Jobs, the git cache and logs live here.
    pub work_dir: PathBuf,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Values for `${ENV:NAME}` placeholders in preset argv (model directories, ...).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds between polls of the remote (may be fractional).
    #[serde(default = "default_poll")]
    pub poll_seconds: f64,
    /// The `kakeya` binary; default: next to this runner's binary, else on PATH.
    #[serde(default)]
    pub engine: Option<PathBuf>,
    /// How long a claim stays valid without renewal.
    #[serde(default = "default_lease")]
    pub lease_seconds: f64,
    /// How often a running job renews its lease (and checks for cancel).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: f64,
    /// Extra seconds a runner waits before taking over a lapsed lease whose holder announced
    /// that its job had *ended* (it died between the job's end and the publish): time for
    /// the holder to come back and publish instead of the job running twice. Unset: three
    /// times that lease's own duration.
    #[serde(default)]
    pub ended_grace_seconds: Option<f64>,
    /// How many runners may try a request whose lease expired before it is failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// How long finished job folders (and bus refs) are kept.
    #[serde(default = "default_retention")]
    pub retention_seconds: f64,
    /// How often the runner refreshes its presence record on the bus.
    #[serde(default = "default_presence")]
    pub presence_seconds: f64,
    /// How often old finished requests are archived and old job folders removed.
    #[serde(default = "default_cleanup")]
    pub cleanup_seconds: f64,
    /// Bytes of each of stdout and stderr published with a result.
    #[serde(default = "default_log_cap")]
    pub log_cap_bytes: u64,
    /// Upper bound on any job's run time, in seconds; a preset's own timeout applies when it is
    /// shorter. Unset: the preset's timeout alone.
    #[serde(default)]
    pub max_job_seconds: Option<f64>,
    /// A job is stopped (and fails with `disk_full`) when the work folder's filesystem has
    /// fewer free bytes than this.
    #[serde(default = "default_min_free")]
    pub min_free_bytes: u64,
    /// Seconds between SIGINT, SIGTERM and SIGKILL when stopping a job.
    #[serde(default = "default_grace")]
    pub kill_grace_seconds: f64,
    /// PATH given to jobs (their environment is otherwise scrubbed).
    #[serde(default)]
    pub job_path: Option<String>,
    /// Extra environment variables given to every job.
    #[serde(default)]
    pub job_env: BTreeMap<String, String>,
    /// GitHub commit statuses on request commits (needs a build with `--features github`
    /// and a token; skipped otherwise).
    #[serde(default)]
    pub github: Option<macbridge_bus::github::GitHubConfig>,
    /// How workload presets are confined (docs/OPS.md, docs/SECURITY.md).
    #[serde(default)]
    pub workload_sandbox: crate::sandbox::SandboxConfig,
}

fn default_poll() -> f64 {
    5.0
}
fn default_lease() -> f64 {
    120.0
}
fn default_heartbeat() -> f64 {
    30.0
}
fn default_attempts() -> u32 {
    3
}
fn default_retention() -> f64 {
    7.0 * 24.0 * 3600.0
}
fn default_presence() -> f64 {
    300.0
}
fn default_cleanup() -> f64 {
    3600.0
}
fn default_log_cap() -> u64 {
    256 * 1024
}
fn default_min_free() -> u64 {
    16 << 20
}
fn default_grace() -> f64 {
    5.0
}

impl Config {
    /// Load and check a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading runner config {}", path.display()))?;
        let mut config: Config = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("parsing runner config {}", path.display()))?;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let base = std::fs::canonicalize(parent.unwrap_or(Path::new(".")))
            .with_context(|| format!("resolving the folder of {}", path.display()))?;
        let base = base.as_path();
        for p in [
            &mut config.key,
            &mut config.allowed_signers,
            &mut config.work_dir,
        ] {
            *p = absolutize(base, p);
        }
        // A local-path remote is a path like the others; URLs and `host:path` stay as given.
        if !config.remote.contains("://") && !config.remote.contains(':') {
            let remote = Path::new(&config.remote);
            if remote.is_relative() {
                config.remote = base.join(remote).display().to_string();
            }
        }
        if let Some(p) = config.policy.as_mut() {
            *p = absolutize(base, p);
        }
        if let Some(p) = config.engine.as_mut() {
            *p = absolutize(base, p);
        }
        let sandbox = &mut config.workload_sandbox;
        for p in sandbox
            .read_paths
            .iter_mut()
            .chain(&mut sandbox.write_paths)
        {
            *p = absolutize(base, p);
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.runner_id.is_empty()
            || self.runner_id.len() > 64
            || !self
                .runner_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            bail!("runner_id must be 1-64 characters of [A-Za-z0-9._-]");
        }
        for label in &self.labels {
            if !macbridge_bus::manifest::is_label(label) {
                bail!("label {label:?} is not valid (lowercase letters, digits, ._:=<>-)");
            }
        }
        let positive = [
            ("poll_seconds", self.poll_seconds),
            ("lease_seconds", self.lease_seconds),
            ("heartbeat_seconds", self.heartbeat_seconds),
            ("kill_grace_seconds", self.kill_grace_seconds),
            ("presence_seconds", self.presence_seconds),
            ("cleanup_seconds", self.cleanup_seconds),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                bail!("{name} must be a positive number of seconds");
            }
        }
        if self.heartbeat_seconds >= self.lease_seconds {
            bail!(
                "heartbeat_seconds ({}) must be shorter than lease_seconds ({}), or leases expire between renewals",
                self.heartbeat_seconds,
                self.lease_seconds
            );
        }
        if let Some(max) = self.max_job_seconds
            && !(max.is_finite() && max > 0.0)
        {
            bail!("max_job_seconds must be a positive number of seconds");
        }
        if let Some(grace) = self.ended_grace_seconds
            && !(grace.is_finite() && grace >= 0.0)
        {
            bail!("ended_grace_seconds must be zero or a positive number of seconds");
        }
        if !(self.retention_seconds.is_finite() && self.retention_seconds >= 0.0) {
            bail!("retention_seconds must be zero or a positive number of seconds");
        }
        if self.max_attempts == 0 {
            bail!("max_attempts must be at least 1");
        }
        for name in self.env.keys() {
            let ok = name.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                bail!("env key {name:?} must match [A-Z][A-Z0-9_]*");
            }
        }
        Ok(())
    }

    /// The engine binary to run.
    pub fn engine_path(&self) -> PathBuf {
        if let Some(p) = &self.engine {
            return p.clone();
        }
        let sibling = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("kakeya")));
        match sibling {
            Some(p) if p.is_file() => p,
            _ => PathBuf::from("kakeya"),
        }
    }

    /// The run-time limit for a preset on this runner.
    pub fn job_timeout(&self, preset_timeout_seconds: u64) -> std::time::Duration {
        let preset = preset_timeout_seconds as f64;
        let limit = self.max_job_seconds.map_or(preset, |m| m.min(preset));
        std::time::Duration::from_secs_f64(limit)
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.work_dir.join("jobs")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.work_dir.join("cache.git")
    }
}

fn absolutize(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(remote: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runner.yaml");
        std::fs::write(
            &path,
            format!("remote: {remote}\nrunner_id: r\nkey: k\nallowed_signers: a\nwork_dir: w\npoll_seconds: 0.5\n"),
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let base = dir.path().canonicalize().unwrap();
        assert_eq!(config.key, base.join("k"));
        assert_eq!(config.work_dir, base.join("w"));
        assert_eq!(config.poll_seconds, 0.5);
        config
    }

    #[test]
    fn relative_paths_and_local_remotes_resolve_against_the_config_folder() {
        let config = load("bus.git");
        assert!(config.remote.ends_with("/bus.git") && config.remote.starts_with('/'));
        assert_eq!(load("/srv/bus.git").remote, "/srv/bus.git");
        assert_eq!(load("file:///srv/bus.git").remote, "file:///srv/bus.git");
        assert_eq!(
            load("git@github.com:acme/bus.git").remote,
            "git@github.com:acme/bus.git"
        );
        assert_eq!(
            load("https://example.com/bus.git").remote,
            "https://example.com/bus.git"
        );
    }

    #[test]
    fn job_timeout_is_the_smaller_of_preset_and_cap() {
        let mut config = load("bus.git");
        assert_eq!(config.job_timeout(600).as_secs(), 600);
        config.max_job_seconds = Some(2.5);
        assert_eq!(config.job_timeout(600).as_secs_f64(), 2.5);
        assert_eq!(config.job_timeout(1).as_secs(), 1);
    }
}
