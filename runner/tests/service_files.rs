//! `install-service --dry-run` renders service files that the platforms' own tools accept:
//! the launchd plist parses as a property list with the keys that keep the runner alive
//! across reboots, and the systemd unit passes `systemd-analyze verify` where it exists.

use std::process::Command;

fn render(platform: &str, extra: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runner.yaml"),
        "remote: /srv/bus.git\nrunner_id: mac-1\nkey: k\nallowed_signers: a\nwork_dir: w\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_macbridge-runner"))
        .args([
            "install-service",
            "--dry-run",
            "--platform",
            platform,
            "--user",
            "builder",
            "--config",
        ])
        .arg(dir.path().join("runner.yaml"))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, String::from_utf8(out.stdout).unwrap())
}

/// Parse with Python's plistlib (strict about plist XML) and return the dictionary as JSON.
fn parse_plist(text: &str) -> serde_json::Value {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json,plistlib,sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse the plist");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "plist does not parse:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn launchd_daemon_starts_at_boot_stays_alive_logs_and_keeps_the_mac_awake() {
    let (dir, text) = render("launchd", &[]);
    let plist = parse_plist(&text);
    assert_eq!(plist["Label"], "dev.macbridge.runner");
    assert_eq!(plist["RunAtLoad"], true);
    assert_eq!(plist["KeepAlive"], true);
    assert_eq!(plist["UserName"], "builder");
    let args: Vec<&str> = plist["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        &args[..3],
        ["/usr/bin/caffeinate", "-i", "-s"],
        "power assertion"
    );
    assert!(args[3].ends_with("macbridge-runner"));
    assert_eq!(&args[4..6], ["serve", "--config"]);
    assert!(args[6].ends_with("runner.yaml") && args[6].starts_with('/'));
    let log = plist["StandardErrorPath"].as_str().unwrap();
    assert!(log.starts_with(dir.path().canonicalize().unwrap().to_str().unwrap()));
    assert_eq!(plist["StandardOutPath"], plist["StandardErrorPath"]);
}

#[test]
fn launchd_agent_has_no_user_and_paths_are_escaped() {
    let (_dir, text) = render("launchd", &["--agent", "--log", "/tmp/a&b <log>.txt"]);
    let plist = parse_plist(&text);
    assert!(plist.get("UserName").is_none());
    assert_eq!(plist["StandardOutPath"], "/tmp/a&b <log>.txt");
}

#[test]
fn systemd_unit_restarts_and_passes_systemd_analyze() {
    let (dir, text) = render("systemd", &[]);
    for line in [
        "Restart=always",
        "User=builder",
        "WantedBy=multi-user.target",
        "KillMode=mixed",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    let exec = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(exec.contains("macbridge-runner serve --config /"), "{exec}");
    let analyze = std::path::Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("systemd-analyze not installed: unit checked by content only");
        return;
    }
    // Verify a copy that runs as root, which exists on every machine.
    let unit = dir.path().join("macbridge-runner.service");
    std::fs::write(&unit, text.replace("User=builder", "User=root")).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Complaints about the host's own units are not ours; ours must be clean.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("macbridge-runner"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
}

#[test]
fn another_platform_without_dry_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("runner.yaml"),
        "remote: /srv/bus.git\nrunner_id: mac-1\nkey: k\nallowed_signers: a\nwork_dir: w\n",
    )
    .unwrap();
    let other = if cfg!(target_os = "macos") {
        "systemd"
    } else {
        "launchd"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_macbridge-runner"))
        .args(["install-service", "--platform", other, "--config"])
        .arg(dir.path().join("runner.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dry-run"));
}
