//! What `doctor` says about the workload sandbox: whether this machine can confine a workload
//! job as the runner would (landlock and a private network namespace on Linux, `sandbox-exec`
//! on macOS), and what `workload_sandbox` in the config asks for.

use std::path::Path;

use macbridge_bus::doctor::Check;
use serde::Serialize;

use crate::sandbox::{self, Confinement, Rules, SandboxConfig};

/// The `sandbox` object of `macbridge-runner doctor --json` (docs/OPS.md).
#[derive(Debug, Clone, Serialize)]
pub struct SandboxReport {
    /// `workload_sandbox.enabled` in the config: `false` means the operator opted out and
    /// workloads run unconfined.
    pub enabled: bool,
    /// Whether a workload job could be confined here right now.
    pub available: bool,
    /// `landlock` (Linux), `sandbox-exec` (macOS) or `none`.
    pub mechanism: &'static str,
    /// The kernel's landlock ABI version (0: absent or disabled); `null` off Linux.
    pub landlock_abi: Option<i64>,
    /// Whether this user can make a private network namespace (Linux); `null` elsewhere.
    pub network_namespace: Option<bool>,
    /// Whether `/usr/bin/sandbox-exec` exists (macOS); `null` elsewhere.
    pub sandbox_exec: Option<bool>,
    /// Workload presets the config lets reach the network.
    pub network_presets: Vec<String>,
    /// What was found, or why a workload cannot be confined.
    pub detail: String,
}

/// Try to prepare the confinement a workload would get (a network-less job in a scratch
/// folder) and report what this machine offers.
pub fn probe(config: &SandboxConfig) -> SandboxReport {
    let landlock_abi = sandbox::landlock_abi();
    let network_namespace = if cfg!(target_os = "linux") {
        Some(can_unshare_network())
    } else {
        None
    };
    let sandbox_exec = if cfg!(target_os = "macos") {
        Some(Path::new(sandbox::SANDBOX_EXEC).exists())
    } else {
        None
    };
    let mechanism = if cfg!(target_os = "linux") {
        "landlock"
    } else if cfg!(target_os = "macos") {
        "sandbox-exec"
    } else {
        "none"
    };
    let scratch = tempfile::tempdir().ok();
    let job = scratch
        .as_ref()
        .map(|d| d.path().to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    let rules = Rules::for_job(config, &[job.as_path()], "doctor-probe");
    let (mut available, mut detail) = match Confinement::prepare(&rules) {
        Ok(c) => (true, c.describe()),
        Err(e) => (false, e.to_string()),
    };
    // Without landlock's TCP rules (ABI < 4) the namespace is the only network barrier.
    if available && landlock_abi.is_some_and(|abi| abi < 4) && network_namespace == Some(false) {
        available = false;
        detail = format!(
            "{detail}; but landlock ABI < 4 has no network rules and this user cannot make a network namespace"
        );
    }
    SandboxReport {
        enabled: config.enabled,
        available,
        mechanism,
        landlock_abi,
        network_namespace,
        sandbox_exec,
        network_presets: config.network_presets.clone(),
        detail,
    }
}

/// The doctor line for `report`.
pub fn check(report: &SandboxReport) -> Check {
    const NAME: &str = "workload_sandbox";
    match (report.enabled, report.available) {
        (true, true) => Check::ok(NAME, format!("workloads are confined: {}", report.detail)),
        (true, false) => Check::warn(
            NAME,
            format!(
                "workload presets will be refused here (the sandbox cannot be applied): {}",
                report.detail
            ),
            "enable landlock (Linux 5.13+, `lsm=landlock`) or on macOS keep /usr/bin/sandbox-exec; or set workload_sandbox.enabled: false to run workloads unconfined (docs/SECURITY.md)",
        ),
        (false, available) => Check::warn(
            NAME,
            format!(
                "workload_sandbox.enabled is false: workloads run unconfined (the sandbox {} be applied here)",
                if available { "could" } else { "could not" }
            ),
            "remove `enabled: false` under workload_sandbox unless every workload principal is trusted with a shell",
        ),
    }
}

/// Whether this user may make a user + network namespace (what a network-less workload gets):
/// tried in a forked child, which exits at once.
#[cfg(target_os = "linux")]
fn can_unshare_network() -> bool {
    // SAFETY: the child makes only async-signal-safe system calls (unshare, _exit); the
    // parent waits for it.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return false;
        }
        if pid == 0 {
            let ok = libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0;
            libc::_exit(if ok { 0 } else { 1 });
        }
        let mut status = 0;
        if libc::waitpid(pid, &mut status, 0) != pid {
            return false;
        }
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn can_unshare_network() -> bool {
    false
}
