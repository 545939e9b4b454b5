//! A full disk: the runner's work folder is on a small tmpfs the test mounts. A job fills it
//! mid-run: the runner stops the job, the request ends `failed` with a `disk_full` reason and
//! capped logs, the job's scratch files are removed, and the runner serves the next request.
//! Skipped (with a message) where a tmpfs cannot be mounted (needs CAP_SYS_ADMIN).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use macbridge_e2e::RunnerOpts;
use macbridge_e2e::bins;
use macbridge_e2e::fleet::{FINAL, RUN_LIMIT};

use crate::harness::*;

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The request parameter that makes the stand-in engine fill the disk.
const FILL_MS: &str = "7777";

/// A stand-in engine: for `--ms 7777` it prints 600 kB (more than the published log cap),
/// fills its scratch folder until the disk is full, then waits to be stopped; for anything
/// else it is the real `kakeya`.
fn filling_engine(w: &World) -> PathBuf {
    let path = w.root.join("filling-engine.sh");
    let script = format!(
        "#!/bin/sh\nif [ \"$3\" = \"{FILL_MS}\" ]; then\n  head -c 600000 /dev/zero | tr '\\0' x\n  \
         echo 'e2e: filling the disk' >&2\n  cat /dev/zero > \"$TMPDIR/fill\" 2>/dev/null\n  \
         exec sleep 120\nfi\nexec {} \"$@\"\n",
        serde_json::to_string(&bins::kakeya().display().to_string()).unwrap()
    );
    std::fs::write(&path, script).expect("writing the stand-in engine");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("making it executable");
    path
}

#[test]
fn a_job_that_fills_the_disk_fails_with_a_reason_and_the_runner_serves_the_next() {
    let w = World::new();
    let mount = match Tmpfs::mount(&w.root.join("small-disk"), "24m") {
        Ok(m) => m,
        Err(why) => {
            println!("SKIPPED full-disk test: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let reaper = w.reaper();
    let runner = w.add_runner(
        "mac-1",
        &RunnerOpts {
            engine: Some(filling_engine(&w)),
            work_dir: Some(mount.0.join("work")),
            min_free_bytes: Some(2 << 20),
            ..RunnerOpts::default()
        },
    );
    let mut server = runner.serve(&w);
    let (branch, id) = w.request("sleep", &["--param", &format!("ms={FILL_MS}")]);
    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "failed", "{status}");
    let record = w.result_record(&branch);
    let reason = record["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("disk_full:"), "{record}");
    assert_eq!(record["logs_truncated"], true, "{record}");
    let stderr = w.assert_logs_published(&branch);
    assert!(stderr.contains("e2e: filling the disk"), "{stderr:?}");
    // The scratch file that filled the disk is gone.
    let fill = runner.job_dir(&id).join("tmp/fill");
    assert!(!fill.exists(), "{} left behind", fill.display());
    reaper.reap();

    // The runner keeps serving.
    let (next, _) = w.request("sleep", &["--param", "ms=100"]);
    let status = w.wait_state(&next, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "done", "{status}");
    assert!(server.is_running(), "{}", server.log_text());
    assert!(
        server.log_text().contains("the work folder is full"),
        "{}",
        server.log_text()
    );
    server.stop(Duration::from_secs(60));
}
