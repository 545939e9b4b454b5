//! A passphrase-protected key with no agent, on an interactive terminal: `ssh-keygen` asks for
//! the passphrase (macbridge never reads it), and the request is signed and pushed. `script`
//! gives macbridge a pseudo-terminal as stdin, as a person at a shell has; the same command
//! without a terminal exits 2 (see keys_agent.rs).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use macbridge_e2e::{agent, bins};

use crate::harness::*;
use crate::keys_agent::{allow, assert_signed_by};

const PASS: &str = "tty passphrase";

#[test]
fn a_passphrase_is_asked_for_on_a_terminal() {
    let w = World::new();
    let key = agent::ssh_keygen(&w.root.join("keys"), "tty_ed", "ed25519", None, PASS);
    allow(&w, &key.public_line);
    let inner = format!(
        "'{}' request --remote '{}' --key '{}' --preset sleep --param ms=1 --json",
        bins::macbridge().display(),
        w.remote(),
        key.path.display()
    );
    let mut cmd = Command::new("script");
    w.isolate(&mut cmd)
        .args(["-qefc", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting script");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let deadline = Instant::now() + CMD_LIMIT;
    while !text().contains("passphrase") {
        assert!(
            Instant::now() < deadline,
            "no passphrase prompt:\n{}",
            text()
        );
        if child.try_wait().unwrap().is_some() {
            std::thread::sleep(Duration::from_millis(200));
            panic!("exited before prompting:\n{}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{PASS}\n").as_bytes()).unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after the passphrase:\n{}", text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let _ = reader.join();
    let out = text();
    assert!(status.success(), "{status}:\n{out}");
    let branch = out
        .split("\"branch\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no branch in:\n{out}"))
        .to_string();
    assert!(!out.contains(PASS), "the passphrase was echoed:\n{out}");
    assert_signed_by(&w, &branch, &key.fingerprint);
}
