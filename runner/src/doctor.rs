//! `macbridge-runner doctor`: is this machine ready to serve? Every check prints ok, warn or
//! fail with a fix.

use std::path::Path;

use macbridge_bus::doctor::{self, Check};
use macbridge_bus::git::Bus;
use macbridge_bus::sig::{self, Policy};

use crate::config::Config;
use crate::sandbox_probe::{self, SandboxReport};
use crate::service;

/// Run every check for the config at `path`; with a config that loads, also what the
/// workload sandbox can do here (the `sandbox` object of `--json`).
pub fn checks(path: &Path) -> (Vec<Check>, Option<SandboxReport>) {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            return (
                vec![Check::fail(
                    "config",
                    format!("{e:#}"),
                    "fix the config (see docs/OPS.md for every key)",
                )],
                None,
            );
        }
    };
    let mut checks = vec![Check::ok("config", format!("{} loads", path.display()))];
    let (key_check, public) = doctor::key_readable(&config.key);
    checks.push(key_check);
    checks.push(doctor::allowed_signers(
        &config.allowed_signers,
        "allowed_signers",
        None,
    ));
    checks.push(policy_check(&config));
    std::fs::create_dir_all(&config.work_dir).ok();
    match Bus::open(&config.remote, &config.cache_dir()) {
        Ok(bus) => {
            let (reach, refs) = doctor::reachability(&bus);
            checks.push(reach);
            if let Some(refs) = refs {
                checks.push(doctor::compare_and_swap(&bus, &config.runner_id));
                checks.push(doctor::clock_skew(&bus, &refs));
            }
        }
        Err(e) => checks.push(Check::fail(
            "git_reachable",
            format!(
                "cannot open the cache in {}: {e}",
                config.work_dir.display()
            ),
            "make work_dir writable by this user",
        )),
    }
    checks.push(engine_check(&config));
    checks.push(env_check(&config));
    checks.push(doctor::free_disk(&config.work_dir));
    let sandbox = sandbox_probe::probe(&config.workload_sandbox);
    checks.push(sandbox_probe::check(&sandbox));
    let (running, detail) = service::status(service::Platform::current());
    checks.push(if running {
        Check::ok("service", detail)
    } else {
        Check::warn(
            "service",
            detail,
            format!(
                "install it so the runner survives reboots: sudo macbridge-runner install-service --config {}",
                path.display()
            ),
        )
    });
    if let Some(public) = public {
        checks.push(Check::ok(
            "runner_signers_line",
            format!(
                "requesters trust this runner with: {} namespaces=\"macbridge-result-v1\" {}",
                config.runner_id,
                sig::public_key_line(&public)
            ),
        ));
    }
    (checks, Some(sandbox))
}

fn policy_check(config: &Config) -> Check {
    let Some(path) = &config.policy else {
        return Check::ok(
            "policy",
            "no policy file: every allowed signer may request every engine preset, no workload preset",
        );
    };
    match Policy::from_file(path) {
        Ok(_) => Check::ok("policy", format!("{} loads", path.display())),
        Err(e) => Check::fail("policy", e.to_string(), "fix the policy YAML (docs/OPS.md)"),
    }
}

/// The engine binary exists and its env-probe report passes the gate.
fn engine_check(config: &Config) -> Check {
    const NAME: &str = "engine";
    let engine = config.engine_path();
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return Check::fail(NAME, format!("no temp folder: {e}"), ""),
    };
    let report = dir.path().join("env_probe.json");
    let out = std::process::Command::new(&engine)
        .args(["env-probe", "--out"])
        .arg(&report)
        .output();
    match out {
        Err(e) => Check::fail(
            NAME,
            format!("cannot run {}: {e}", engine.display()),
            "install kakeya next to macbridge-runner or set `engine:` in the config",
        ),
        Ok(o) if !o.status.success() => Check::fail(
            NAME,
            format!(
                "{} env-probe failed: {}",
                engine.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            "reinstall the engine; on a Mac build it with --features metal",
        ),
        Ok(_) => {
            let verdict = evidence_gate::check_report_file(&report);
            let device = std::fs::read_to_string(&report)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["provenance"]["device"].as_str().map(str::to_string))
                .unwrap_or_else(|| "?".into());
            if verdict.passed {
                let detail = format!(
                    "{} env-probe passes the gate; device {device}",
                    engine.display()
                );
                if cfg!(target_os = "macos") && !device.starts_with("metal") {
                    Check::warn(
                        NAME,
                        detail,
                        "this engine has no working Metal device: build it with `--features metal`",
                    )
                } else {
                    Check::ok(NAME, detail)
                }
            } else {
                Check::fail(
                    NAME,
                    format!("env-probe report fails the gate: {:?}", verdict.violations),
                    "reinstall the engine",
                )
            }
        }
    }
}

/// Which presets this runner can serve with its `env:` values.
fn env_check(config: &Config) -> Check {
    const NAME: &str = "preset_env";
    let Ok(catalog) = macbridge_presets::catalog() else {
        return Check::fail(NAME, "the compiled-in allowlist does not load", "reinstall");
    };
    let mut missing = Vec::new();
    let mut bad_dirs = Vec::new();
    for preset in catalog.iter() {
        let conditional = preset
            .conditional_env()
            .into_iter()
            .map(|(var, param, values)| {
                let when = format!(" when {param} is {}", values.join(" or "));
                (var, when)
            });
        let always = preset
            .required_env()
            .into_iter()
            .map(|v| (v, String::new()));
        for (var, when) in always.chain(conditional) {
            match config.env.get(&var) {
                None => missing.push(format!("{} needs {var}{when}", preset.name)),
                Some(v) if v.starts_with('/') && !Path::new(v).exists() => {
                    bad_dirs.push(format!("{var}={v} does not exist"))
                }
                Some(_) => {}
            }
        }
    }
    missing.sort();
    missing.dedup();
    bad_dirs.sort();
    bad_dirs.dedup();
    if !bad_dirs.is_empty() {
        Check::fail(
            NAME,
            bad_dirs.join("; "),
            "point env: at existing model directories",
        )
    } else if missing.is_empty() {
        Check::ok(NAME, "every preset's ${ENV:} values are set")
    } else {
        Check::warn(
            NAME,
            format!("these presets will be refused here: {}", missing.join("; ")),
            "set the variables under `env:` in the runner config (model directories)",
        )
    }
}
