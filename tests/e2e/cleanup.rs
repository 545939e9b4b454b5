//! `macbridge-runner cleanup`: finished requests past `retention_seconds` move into
//! `refs/mac-bridge/archive`, their branches and job folders go, `queue` forgets them, and the
//! claim ref left behind still refuses a replay of the archived request.

use macbridge_e2e::fleet::RUN_LIMIT;
use macbridge_e2e::{RunnerOpts, proc};
use serde_json::Value;

use crate::harness::*;

const ARCHIVE: &str = "refs/mac-bridge/archive";

#[test]
fn cleanup_archives_finished_requests_and_a_replay_is_still_refused() {
    let w = World::new();
    let runner = w.add_runner(
        "mac-1",
        &RunnerOpts {
            retention_seconds: Some(0.0),
            ..RunnerOpts::default()
        },
    );
    let requests = [
        w.request("sleep", &["--param", "ms=1"]),
        w.request("sleep", &["--param", "ms=1"]),
    ];
    // Keep each request commit in the scratch repository, to push it again later.
    for (branch, _) in &requests {
        let full = full_branch(branch);
        gitx::fetch(&w.scratch, &w.bus, &format!("+{full}:{full}"));
    }
    runner.once(&w);
    let mut results = Vec::new();
    for (branch, id) in &requests {
        assert_eq!(w.status(branch)["state"], "done");
        let (result, _) = w.result_on_bus(branch).unwrap();
        let manifest = gitx::read_file(&w.bus, &full_branch(branch), ".mac-bridge/request.json");
        results.push((id.clone(), result, manifest.unwrap()));
    }
    assert_eq!(runner.job_dirs().len(), 2);

    // Published within the last second counts as not yet older than 0 s: poll.
    let mut archived = 0;
    let mut last = Value::Null;
    let cleaned = proc::poll(RUN_LIMIT, || {
        last = runner.cleanup(&w);
        archived += last["archived"].as_u64().expect("archived count");
        (archived == 2 && runner.job_dirs().is_empty()).then_some(())
    });
    assert!(
        cleaned.is_some(),
        "archived {archived}, job folders {:?}, last pass {last}",
        runner.job_dirs()
    );

    assert!(w.bus_branches().is_empty(), "{:?}", w.bus_branches());
    for (id, result, manifest) in &results {
        let folder = format!("{}/{id}", &id[..2]);
        let read = |name: &str| gitx::read_file(&w.bus, ARCHIVE, &format!("{folder}/{name}"));
        assert_eq!(read("result.json").as_ref(), Some(result), "{folder}");
        assert_eq!(read("request.json").as_ref(), Some(manifest), "{folder}");
        assert!(read("result.sig").is_some() && read("request.sig").is_some());
        // Still needed to refuse replays until the request expires.
        assert!(
            w.claimed(id),
            "claim of {id} deleted before the request expired"
        );
    }
    let q = w.queue();
    assert_eq!(q["requests"], serde_json::json!([]), "{q}");

    // The original request commit pushed again to its own branch: a replay.
    let (branch, id) = &requests[0];
    let full = full_branch(branch);
    let commit = gitx::resolve(&w.scratch, &full).unwrap();
    gitx::push(&w.scratch, &w.bus, &commit, &full);
    let handled = runner.once(&w);
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0]["outcome"], "refused", "{handled:?}");
    let status = w.status(branch);
    assert_eq!(status["state"], "rejected", "{status}");
    let reason = status["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("replay"), "{status}");
    assert!(reason.contains(id.as_str()), "{status}");
    assert!(
        runner.job_dirs().is_empty(),
        "the replay ran: {:?}",
        runner.job_dirs()
    );
}
