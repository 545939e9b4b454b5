//! A job that runs past the runner's `max_job_seconds` is stopped with its whole process group
//! (`timed_out`, logs published), and a long job's heartbeats carry a log tail that `status`
//! shows while it runs.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use macbridge_e2e::RunnerOpts;
use macbridge_e2e::fleet::{FINAL, RUN_LIMIT, sleep_pids, wait_gone, wait_started};
use macbridge_e2e::proc;
use serde_json::Value;

use crate::harness::*;

#[test]
fn a_job_past_max_job_seconds_is_timed_out_with_its_whole_group() {
    let w = World::new();
    let reaper = w.reaper();
    let runner = w.add_runner(
        "mac-1",
        &RunnerOpts {
            max_job_seconds: Some(2.0),
            kill_grace_seconds: Some(1.0),
            ..RunnerOpts::default()
        },
    );
    let (branch, id) = w.request("sleep", &["--param", "ms=60000", "--param", "children=2"]);
    let mut server = runner.serve(&w);
    let report = wait_started(&runner, &id, &reaper);
    let (pid, children) = sleep_pids(&report);
    assert_eq!(children.len(), 2, "{report}");

    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "timed_out", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap_or("")
            .contains("timed out"),
        "{status}"
    );
    wait_gone(&[vec![pid], children].concat(), RUN_LIMIT);
    w.assert_logs_published(&branch);
    assert_eq!(runner.sleep_report(&id).unwrap()["completed"], false);
    assert!(server.is_running(), "{}", server.log_text());
    server.stop(RUN_LIMIT);
}

/// Marker the stand-in engine prints on stderr.
const MARKER: &str = "e2e-progress: half way there";

/// A stand-in engine (the runner's `engine:` key may name any executable): it records its
/// pid, prints a line on each stream, then sleeps until stopped. It is run with the `sleep`
/// preset's argv, which it ignores.
fn chatty_engine(w: &World) -> PathBuf {
    let path = w.root.join("chatty-engine.sh");
    let script = format!(
        "#!/bin/sh\necho $$ > \"$MACBRIDGE_JOB_DIR/engine.pid\"\n\
         echo '{MARKER}' >&2\necho 'e2e-progress: stdout'\nexec sleep 60\n"
    );
    std::fs::write(&path, script).expect("writing the stand-in engine");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("making the stand-in engine executable");
    path
}

#[test]
fn heartbeats_carry_a_log_tail_that_status_shows_while_running() {
    let w = World::new();
    let reaper = w.reaper();
    let runner = w.add_runner(
        "mac-1",
        &RunnerOpts {
            engine: Some(chatty_engine(&w)),
            ..RunnerOpts::default()
        },
    );
    let (branch, id) = w.request("sleep", &["--param", "ms=60000"]);
    let mut server = runner.serve(&w);
    let pid_file = runner.job_dir(&id).join("engine.pid");
    let pid: u32 = proc::poll(RUN_LIMIT, || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .expect("the stand-in engine never started");
    reaper.watch(pid);

    let mut last = Value::Null;
    let running = proc::poll(RUN_LIMIT, || {
        last = w.status(&branch);
        let tail = last["log_tail"].as_str()?;
        (last["state"] == "running" && tail.contains(MARKER)).then_some(())
    });
    assert!(running.is_some(), "no log tail while running: {last}");
    assert_eq!(last["runner"], "mac-1", "{last}");

    let out = w.cancel(&branch, &w.requester).expect_code(0);
    assert_eq!(out.json()["cancel"], "requested", "{out}");
    let status = w.wait_state(&branch, FINAL, RUN_LIMIT);
    assert_eq!(status["state"], "cancelled", "{status}");
    let stderr = w.assert_logs_published(&branch);
    assert!(stderr.contains(MARKER), "published stderr: {stderr:?}");
    wait_gone(&[pid], RUN_LIMIT);
    assert!(server.is_running(), "{}", server.log_text());
    server.stop(RUN_LIMIT);
}
