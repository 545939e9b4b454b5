//! Bulk-made finished requests for the queue-scaling benchmark: real signed request commits
//! and real signed result commits, built in the object database and pushed in batches, so the
//! bus looks exactly as if runners had answered them.

use std::collections::BTreeMap;
use std::path::Path;

use macbridge_bus::git::{Bus, PushUpdate, TreeChange, write_commit};
use macbridge_bus::records::{self, ResultRecord, ResultState, RunnerInfo, Timings};
use macbridge_bus::submit::{self, RequestSpec};
use macbridge_bus::{clock, layout, sig};
use serde_json::Value;

/// Push `count` finished `sleep` requests (state done) signed by `requester_key`.
pub fn add_finished(bus: &Path, scratch: &Path, requester_key: &str, count: usize) {
    let cache = scratch.join("synthetic-cache.git");
    let bus = Bus::open(&bus.display().to_string(), &cache).expect("cache");
    let requester = sig::load_private_key(Path::new(requester_key)).expect("requester key");
    let runner = sig::generate_ed25519("synthetic-runner").expect("runner key");
    let catalog = macbridge_presets::catalog().expect("catalog");
    let preset = catalog.get("sleep").expect("sleep preset");
    let info = RunnerInfo {
        id: "synthetic".into(),
        key: sig::public_key_line(runner.public_key()),
        fingerprint: sig::fingerprint(runner.public_key()),
        labels: vec![],
        version: "bench".into(),
    };
    let mut updates = Vec::new();
    for _ in 0..count {
        let spec = RequestSpec {
            preset,
            params: BTreeMap::from([("ms".to_string(), Value::String("0".into()))]),
            labels: vec![],
            expires_in_secs: 3600,
            workload: None,
            audience: None,
        };
        let manifest = submit::build_manifest(&spec, &requester, clock::now()).expect("manifest");
        let bytes = manifest.to_bytes();
        let request_sig = sig::sign(&requester, sig::REQUEST_NAMESPACE, &bytes).expect("sign");
        let request = write_commit(
            bus.repo(),
            &[],
            None,
            &[
                TreeChange::put(layout::REQUEST_JSON, bytes),
                TreeChange::put(layout::REQUEST_SIG, request_sig.into_bytes()),
            ],
            "synthetic request\n",
        )
        .expect("request commit");
        let now = clock::format(clock::now());
        let record = ResultRecord {
            schema_version: 1,
            request_id: Some(manifest.request_id.clone()),
            branch: manifest.branch_ref(),
            request_commit: request.to_string(),
            state: ResultState::Done,
            reason: None,
            preset: Some(manifest.preset.clone()),
            preset_digest: Some(manifest.preset_digest.clone()),
            params: Some(serde_json::json!({"ms": 0})),
            exit_code: Some(0),
            signal: None,
            attempt: 1,
            runner: info.clone(),
            engine_version: Some("bench".into()),
            timings: Timings::default(),
            verdict: None,
            artifacts: vec![],
            logs_truncated: false,
            published_at: now,
        };
        let result_bytes = records::to_bytes(&record);
        let result_sig = sig::sign(&runner, sig::RESULT_NAMESPACE, &result_bytes).expect("sign");
        let result = write_commit(
            bus.repo(),
            &[request],
            Some(request),
            &[
                TreeChange::put(layout::RESULT_JSON, result_bytes),
                TreeChange::put(layout::RESULT_SIG, result_sig.into_bytes()),
            ],
            "synthetic result\n",
        )
        .expect("result commit");
        updates.push(PushUpdate {
            src: result,
            dst: manifest.branch_ref(),
        });
    }
    for chunk in updates.chunks(500) {
        bus.push(chunk, false).expect("push");
    }
}
