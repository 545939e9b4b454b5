//! `install-service` / `uninstall-service`: run the runner at boot and keep it running.
//!
//! macOS: a LaunchDaemon (`/Library/LaunchDaemons/dev.macbridge.runner.plist`) that starts at
//! boot without anyone logging in (the reference bridge's runner went offline after every
//! reboot until someone logged in), runs as the installing user, restarts on exit, logs to a
//! file and holds a power assertion (`caffeinate -i -s`) so the Mac does not sleep mid-job.
//! `--agent` installs a per-user LaunchAgent instead (starts at login).
//!
//! Linux: a systemd unit (`/etc/systemd/system/macbridge-runner.service`, or a user unit with
//! `--agent`), `Restart=always`, logs appended to a file in the work folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub const LABEL: &str = "dev.macbridge.runner";
const UNIT: &str = "macbridge-runner.service";

/// What to install and where.
pub struct ServiceSpec {
    pub runner_bin: PathBuf,
    pub config: PathBuf,
    pub log_file: PathBuf,
    pub user: String,
    /// Per-user agent/unit instead of a boot-time system service.
    pub agent: bool,
    pub path_env: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Platform {
    Launchd,
    Systemd,
}

impl Platform {
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else {
            Platform::Systemd
        }
    }
}

/// Where the service file goes.
pub fn service_path(platform: Platform, agent: bool) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    match (platform, agent) {
        (Platform::Launchd, false) => {
            PathBuf::from(format!("/Library/LaunchDaemons/{LABEL}.plist"))
        }
        (Platform::Launchd, true) => home.join(format!("Library/LaunchAgents/{LABEL}.plist")),
        (Platform::Systemd, false) => PathBuf::from(format!("/etc/systemd/system/{UNIT}")),
        (Platform::Systemd, true) => home.join(format!(".config/systemd/user/{UNIT}")),
    }
}

/// The service file's text.
pub fn render(platform: Platform, spec: &ServiceSpec) -> String {
    match platform {
        Platform::Launchd => plist(spec),
        Platform::Systemd => unit(spec),
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn plist(spec: &ServiceSpec) -> String {
    let args = [
        "/usr/bin/caffeinate".to_string(),
        "-i".to_string(),
        "-s".to_string(),
        spec.runner_bin.display().to_string(),
        "serve".to_string(),
        "--config".to_string(),
        spec.config.display().to_string(),
    ];
    let mut out = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
        "<plist version=\"1.0\">\n<dict>\n"
    ));
    let mut key = |k: &str, v: String| out.push_str(&format!("  <key>{k}</key>\n  {v}\n"));
    key("Label", format!("<string>{LABEL}</string>"));
    key(
        "ProgramArguments",
        format!(
            "<array>\n{}  </array>",
            args.iter()
                .map(|a| format!("    <string>{}</string>\n", xml(a)))
                .collect::<String>()
        ),
    );
    if !spec.agent {
        key("UserName", format!("<string>{}</string>", xml(&spec.user)));
    }
    key("RunAtLoad", "<true/>".into());
    key("KeepAlive", "<true/>".into());
    key("ThrottleInterval", "<integer>10</integer>".into());
    // Standard, not Background: background jobs get throttled CPU and GPU.
    key("ProcessType", "<string>Standard</string>".into());
    key("ExitTimeOutInterval", "<integer>60</integer>".into());
    key(
        "StandardOutPath",
        format!(
            "<string>{}</string>",
            xml(&spec.log_file.display().to_string())
        ),
    );
    key(
        "StandardErrorPath",
        format!(
            "<string>{}</string>",
            xml(&spec.log_file.display().to_string())
        ),
    );
    key(
        "EnvironmentVariables",
        format!(
            "<dict>\n    <key>PATH</key>\n    <string>{}</string>\n    <key>MACBRIDGE_LOG</key>\n    <string>info</string>\n  </dict>",
            xml(&spec.path_env)
        ),
    );
    out.push_str("</dict>\n</plist>\n");
    out
}

/// systemd quoting: double quotes around anything with spaces or specials.
fn sd_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@".contains(c))
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn unit(spec: &ServiceSpec) -> String {
    let user_line = if spec.agent {
        String::new()
    } else {
        format!("User={}\n", spec.user)
    };
    let wanted_by = if spec.agent {
        "default.target"
    } else {
        "multi-user.target"
    };
    format!(
        "[Unit]\n\
         Description=macbridge runner: serves signed requests from a git bus\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         {user_line}\
         ExecStart={} serve --config {}\n\
         Restart=always\n\
         RestartSec=5\n\
         # SIGTERM lets the runner stop its job and give the request back; then everything goes.\n\
         KillMode=mixed\n\
         TimeoutStopSec=60\n\
         Environment={}\n\
         Environment=MACBRIDGE_LOG=info\n\
         StandardOutput=append:{}\n\
         StandardError=append:{}\n\
         \n\
         [Install]\n\
         WantedBy={wanted_by}\n",
        sd_quote(&spec.runner_bin.display().to_string()),
        sd_quote(&spec.config.display().to_string()),
        sd_quote(&format!("PATH={}", spec.path_env)),
        spec.log_file.display(),
        spec.log_file.display(),
    )
}

/// Write the file and load it with the platform's service manager.
pub fn install(platform: Platform, spec: &ServiceSpec) -> anyhow::Result<PathBuf> {
    let path = service_path(platform, spec.agent);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Some(dir) = spec.log_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, render(platform, spec)).with_context(|| {
        format!(
            "writing {} (system services need sudo; or use --agent)",
            path.display()
        )
    })?;
    match platform {
        Platform::Launchd => {
            let domain = launchd_domain(spec.agent);
            let _ = Command::new("launchctl")
                .args(["bootout", &format!("{domain}/{LABEL}")])
                .status();
            run(
                "launchctl",
                &["bootstrap", &domain, &path.display().to_string()],
            )?;
            run("launchctl", &["enable", &format!("{domain}/{LABEL}")])?;
            run(
                "launchctl",
                &["kickstart", "-k", &format!("{domain}/{LABEL}")],
            )?;
        }
        Platform::Systemd => {
            let user = if spec.agent { vec!["--user"] } else { vec![] };
            let mut reload = user.clone();
            reload.push("daemon-reload");
            run("systemctl", &reload)?;
            let mut enable = user.clone();
            enable.extend(["enable", "--now", UNIT]);
            run("systemctl", &enable)?;
        }
    }
    Ok(path)
}

/// Stop and remove the service.
pub fn uninstall(platform: Platform, agent: bool) -> anyhow::Result<PathBuf> {
    let path = service_path(platform, agent);
    match platform {
        Platform::Launchd => {
            let _ = Command::new("launchctl")
                .args(["bootout", &format!("{}/{LABEL}", launchd_domain(agent))])
                .status();
        }
        Platform::Systemd => {
            let mut args = if agent { vec!["--user"] } else { vec![] };
            args.extend(["disable", "--now", UNIT]);
            let _ = Command::new("systemctl").args(&args).status();
        }
    }
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(path)
}

/// Whether the service is installed and running, in words (for doctor).
pub fn status(platform: Platform) -> (bool, String) {
    for agent in [false, true] {
        let path = service_path(platform, agent);
        if !path.exists() {
            continue;
        }
        let running = match platform {
            Platform::Launchd => Command::new("launchctl")
                .args(["print", &format!("{}/{LABEL}", launchd_domain(agent))])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("state = running"))
                .unwrap_or(false),
            Platform::Systemd => {
                let mut args = if agent { vec!["--user"] } else { vec![] };
                args.extend(["is-active", "--quiet", UNIT]);
                Command::new("systemctl")
                    .args(&args)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            }
        };
        return (
            running,
            format!(
                "{} ({})",
                path.display(),
                if running {
                    "running"
                } else {
                    "installed, not running"
                }
            ),
        );
    }
    (false, "no service installed".to_string())
}

fn launchd_domain(agent: bool) -> String {
    if agent {
        // SAFETY: getuid has no preconditions.
        format!("gui/{}", unsafe { libc::getuid() })
    } else {
        "system".to_string()
    }
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The user the service should run as: the one who invoked sudo, else the current user.
pub fn invoking_user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "root".to_string())
}

/// Absolute path of `p` (which must exist).
pub fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("resolving {}", p.display()))
}
