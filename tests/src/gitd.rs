//! `git daemon` serving a world's bus over `git://` (pushes enabled), so runners reach the
//! bus through a real TCP connection that a test can cut, delay or break.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proc::Background;

/// A running `git daemon`; killed when dropped.
pub struct GitDaemon {
    pub server: Background,
    pub port: u16,
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

/// The `git-daemon` program itself. `git daemon` runs it as a child and waits, so killing
/// that `git` (as a dropped test does) would leave the daemon serving on: start it directly.
fn daemon_program() -> PathBuf {
    Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("git-daemon"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("git-daemon"))
}

impl GitDaemon {
    /// Serve every repository under `base` on `listen:port`. With `wrap` (e.g. `ip netns exec
    /// NS`) the daemon runs under that command. `probe` is an address to check it answers on
    /// (`None`: do not wait).
    pub fn start(
        base: &Path,
        listen: &str,
        port: u16,
        wrap: &[String],
        log: &Path,
        probe: Option<SocketAddr>,
    ) -> GitDaemon {
        let daemon = daemon_program();
        let mut cmd = match wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&daemon);
                c
            }
            None => Command::new(&daemon),
        };
        cmd.arg("--reuseaddr")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--informative-errors")
            .arg(format!("--base-path={}", base.display()))
            .arg(format!("--listen={listen}"))
            .arg(format!("--port={port}"))
            .arg(base)
            .env("GIT_CONFIG_NOSYSTEM", "1");
        let server = Background::spawn(&mut cmd, log);
        if let Some(addr) = probe {
            let deadline = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "git daemon never answered on {addr}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        GitDaemon { server, port }
    }
}
