//! Confinement for workload jobs (a requester's own code). A workload may write only under its
//! job's workspace, report and temp folders and the operator's scratch paths; read only system
//! folders, those and the operator's extra read paths; reach no network unless the operator
//! lists its preset; and see nothing of the runner's key, config, policy or other jobs.
//!
//! Linux: landlock (filesystem; TCP from ABI v4; signals and abstract sockets scoped from
//! ABI v6) plus a private network namespace when the network is denied, applied between fork
//! and exec (`sandbox_linux`). macOS: the job is wrapped in `sandbox-exec` with a generated
//! profile (`macos_profile`); that path is unit-tested as text only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[cfg(target_os = "linux")]
#[path = "sandbox_linux.rs"]
mod linux;

/// The `workload_sandbox` key of the runner config (docs/OPS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// `false` runs workloads unconfined (the operator's explicit opt-out); by default a
    /// workload that cannot be confined is refused.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Extra folders a workload may read (toolchains such as `~/.rustup`).
    #[serde(default)]
    pub read_paths: Vec<PathBuf>,
    /// Extra folders a workload may write (a scratch cache shared by workloads).
    #[serde(default)]
    pub write_paths: Vec<PathBuf>,
    /// Workload presets that may use the network; every other workload has none.
    #[serde(default)]
    pub network_presets: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            read_paths: Vec::new(),
            write_paths: Vec::new(),
            network_presets: Vec::new(),
        }
    }
}

/// Folders every program needs to read and run; nothing here may hold runner secrets.
#[cfg(not(target_os = "macos"))]
pub const SYSTEM_READ: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix",
    "/proc", "/sys", "/dev",
];
#[cfg(target_os = "macos")]
pub const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/System",
    "/Library",
    "/opt/homebrew",
    "/private/etc",
    "/private/var/db/timezone",
    "/dev",
];

/// Device files a job may write (its stdin is /dev/null; tools write to these).
pub const DEVICE_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

/// What one workload job may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub network: bool,
}

/// Why a workload cannot be confined.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("this system cannot confine jobs: {0}")]
    Unavailable(String),
    #[error("sandbox path {path} would expose {secret}; move it out of the granted folders")]
    Exposes { path: PathBuf, secret: PathBuf },
    #[error("sandbox path {0}: {1}")]
    Path(PathBuf, std::io::Error),
}

impl Rules {
    /// The rules for a workload: `writable` are the job's own folders.
    pub fn for_job(config: &SandboxConfig, writable: &[&Path], preset: &str) -> Self {
        let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        read.extend(config.read_paths.iter().cloned());
        let mut write: Vec<PathBuf> = writable.iter().map(|p| p.to_path_buf()).collect();
        write.extend(config.write_paths.iter().cloned());
        Self {
            read,
            write,
            network: config.network_presets.iter().any(|p| p == preset),
        }
    }

    /// Refuse rules that grant any path holding a secret (the runner's key, config, policy,
    /// signers, or the work folder with other jobs in it). Paths that do not exist are fine:
    /// nothing can be granted through them.
    pub fn check_secrets(&self, secrets: &[&Path]) -> Result<(), SandboxError> {
        for granted in self.read.iter().chain(&self.write) {
            let Ok(granted_real) = std::fs::canonicalize(granted) else {
                continue;
            };
            for secret in secrets {
                let Ok(secret_real) = std::fs::canonicalize(secret) else {
                    continue;
                };
                if secret_real.starts_with(&granted_real) {
                    return Err(SandboxError::Exposes {
                        path: granted.clone(),
                        secret: secret.to_path_buf(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A prepared confinement, applied to one job at spawn.
pub struct Confinement {
    #[cfg(target_os = "linux")]
    linux: linux::Prepared,
    #[cfg(target_os = "macos")]
    profile: String,
}

impl Confinement {
    /// Prepare `rules` for this system, or say why it cannot be done.
    pub fn prepare(rules: &Rules) -> Result<Self, SandboxError> {
        #[cfg(target_os = "linux")]
        {
            Ok(Self {
                linux: linux::Prepared::new(rules)?,
            })
        }
        #[cfg(target_os = "macos")]
        {
            if !Path::new(SANDBOX_EXEC).exists() {
                return Err(SandboxError::Unavailable(format!(
                    "{SANDBOX_EXEC} not found"
                )));
            }
            Ok(Self {
                profile: macos_profile(rules),
            })
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            let _ = rules;
            Err(SandboxError::Unavailable(
                "no sandbox for this operating system".into(),
            ))
        }
    }

    /// A one-line account of what is enforced (for the job log).
    pub fn describe(&self) -> String {
        #[cfg(target_os = "linux")]
        {
            self.linux.describe()
        }
        #[cfg(not(target_os = "linux"))]
        {
            "sandbox-exec profile".to_owned()
        }
    }

    /// The argv to exec: unchanged on Linux, wrapped in `sandbox-exec` on macOS.
    pub fn wrap_argv(&self, argv: &[String]) -> Vec<String> {
        #[cfg(target_os = "macos")]
        {
            let mut out = vec![
                SANDBOX_EXEC.to_owned(),
                "-p".to_owned(),
                self.profile.clone(),
            ];
            out.extend(argv.iter().cloned());
            out
        }
        #[cfg(not(target_os = "macos"))]
        {
            argv.to_vec()
        }
    }

    /// A closure to run between fork and exec; async-signal-safe.
    pub fn hook(&self) -> impl Fn() -> std::io::Result<()> + Send + Sync + 'static {
        #[cfg(target_os = "linux")]
        {
            self.linux.hook()
        }
        #[cfg(not(target_os = "linux"))]
        {
            || Ok(())
        }
    }
}

/// The `sandbox-exec` binary workloads are wrapped in on macOS.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// The landlock ABI version of the running kernel (0: absent or disabled); `None` off Linux.
pub fn landlock_abi() -> Option<i64> {
    #[cfg(target_os = "linux")]
    {
        Some(linux::abi_version())
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The Seatbelt (SBPL) profile for `rules`: deny by default, then allow process basics,
/// reads of the granted folders, writes under the writable ones, and the network if granted.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub fn macos_profile(rules: &Rules) -> String {
    let mut p = String::from(
        "(version 1)\n(deny default)\n\
         (allow process-exec process-fork signal (target same-sandbox))\n\
         (allow sysctl-read mach-lookup ipc-posix-shm-read-data)\n\
         (allow file-read-metadata)\n\
         (allow file-read* (literal \"/\"))\n",
    );
    for path in &rules.read {
        p.push_str(&format!(
            "(allow file-read* (subpath {}))\n",
            sbpl_str(path)
        ));
    }
    for path in DEVICE_WRITE {
        p.push_str(&format!(
            "(allow file-read* file-write* (literal {}))\n",
            sbpl_str(Path::new(path))
        ));
    }
    for path in &rules.write {
        p.push_str(&format!(
            "(allow file-read* file-write* (subpath {}))\n",
            sbpl_str(path)
        ));
    }
    if rules.network {
        p.push_str("(allow network*)\n");
    }
    p
}

/// A path as an SBPL string literal (quotes and backslashes escaped).
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn sbpl_str(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(all(test, target_os = "linux"))]
#[path = "sandbox_tests.rs"]
mod escape_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_macos_profile_denies_by_default_and_escapes_paths() {
        let rules = Rules {
            read: vec![PathBuf::from("/usr")],
            write: vec![PathBuf::from("/w/job \"1\"\\x")],
            network: false,
        };
        let p = macos_profile(&rules);
        assert!(p.starts_with("(version 1)\n(deny default)\n"));
        assert!(p.contains("(allow file-read* (subpath \"/usr\"))"));
        assert!(p.contains("(allow file-read* file-write* (subpath \"/w/job \\\"1\\\"\\\\x\"))"));
        assert!(!p.contains("network"));
        let p = macos_profile(&Rules {
            network: true,
            ..rules
        });
        assert!(p.contains("(allow network*)"));
    }

    #[test]
    fn rules_that_expose_a_secret_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("conf/key");
        std::fs::create_dir_all(key.parent().unwrap()).unwrap();
        std::fs::write(&key, "secret").unwrap();
        let config = SandboxConfig {
            read_paths: vec![dir.path().to_path_buf()],
            ..SandboxConfig::default()
        };
        let job = dir.path().join("jobs/a");
        let rules = Rules::for_job(&config, &[&job], "cargo-test");
        assert!(!rules.network);
        assert!(matches!(
            rules.check_secrets(&[&key]),
            Err(SandboxError::Exposes { .. })
        ));
        let rules = Rules::for_job(&SandboxConfig::default(), &[&job], "cargo-test");
        rules.check_secrets(&[&key]).unwrap();
        let config = SandboxConfig {
            network_presets: vec!["cargo-test".into()],
            ..SandboxConfig::default()
        };
        assert!(Rules::for_job(&config, &[&job], "cargo-test").network);
    }
}
