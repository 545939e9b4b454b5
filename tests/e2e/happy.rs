//! The happy path: a client-made request, served by `once` and by `serve`, followed with
//! `status`, `wait`, `run` and `queue`, and its result checked with independent tools.

use std::path::Path;
use std::time::Duration;

use macbridge_e2e::proc;
use serde_json::Value;

use crate::harness::*;

fn assert_hex(s: &str, len: usize) {
    assert!(
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{s:?} is not {len} lowercase hex digits"
    );
}

/// The request the client pushed, read back with plain git and checked against the protocol:
/// two files, canonical JSON, a request id we recompute, a signature ssh-keygen accepts.
fn check_request_on_bus(w: &World, branch: &str, request_id: &str) -> String {
    let commit = gitx::resolve(&w.bus, &full_branch(branch)).expect("request branch on the bus");
    assert!(
        gitx::parents(&w.bus, &commit).is_empty(),
        "engine requests are parentless"
    );
    let listing = gitx::git(&w.bus, &["ls-tree", "-r", "--name-only", &commit]);
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        [".mac-bridge/request.json", ".mac-bridge/request.sig"]
    );
    let bytes = gitx::read_file(&w.bus, &commit, ".mac-bridge/request.json").unwrap();
    let sig = gitx::read_file(&w.bus, &commit, ".mac-bridge/request.sig").unwrap();
    let mut manifest: Value = serde_json::from_slice(&bytes).expect("request.json is JSON");
    assert_eq!(
        format!("{}\n", craft::canonical(&manifest)).as_bytes(),
        bytes.as_slice(),
        "request.json must be canonical JSON plus one newline"
    );
    let fields = manifest.as_object_mut().unwrap();
    assert_eq!(fields.remove("request_id").unwrap(), request_id);
    assert_eq!(
        craft::sha256_hex(craft::canonical(&manifest).as_bytes()),
        request_id
    );
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["preset"], "env-probe");
    assert_eq!(
        manifest["preset_digest"],
        craft::preset_digest("env-probe").unwrap().as_str()
    );
    assert_eq!(manifest["requested_by"], w.requester.fingerprint.as_str());
    assert_eq!(manifest["params"], serde_json::json!({}));
    let nonce = manifest["nonce"].as_str().unwrap();
    assert_hex(nonce, 32);
    assert_eq!(branch, format!("mac-bridge/env-probe-{nonce}"));
    assert!(
        craft::ssh_verify(
            &w.allowed_signers,
            REQUESTER,
            REQUEST_NAMESPACE,
            &bytes,
            &sig,
            &w.files
        ),
        "ssh-keygen -Y verify rejects the client's request.sig"
    );
    assert!(
        !craft::ssh_verify(
            &w.allowed_signers,
            REQUESTER,
            RESULT_NAMESPACE,
            &bytes,
            &sig,
            &w.files
        ),
        "a request signature must not verify in the result namespace"
    );
    commit
}

/// Every artifact listed in the signed result exists under `out` with that sha256 and size.
fn check_artifacts(result: &Value, out: &Path) {
    let artifacts = result["artifacts"].as_array().expect("artifacts list");
    assert_eq!(artifacts.len(), 3, "{result}");
    for a in artifacts {
        let path = a["path"].as_str().unwrap();
        let local = path.replace(".mac-bridge/logs/", "logs/");
        let bytes = std::fs::read(out.join(&local)).unwrap_or_else(|e| panic!("{local}: {e}"));
        assert_eq!(a["sha256"], craft::sha256_hex(&bytes).as_str(), "{path}");
        assert_eq!(a["bytes"], bytes.len(), "{path}");
    }
}

#[test]
fn request_once_status_and_wait_round_trip() {
    let w = World::new();
    let (branch, request_id) = w.request("env-probe", &[]);
    assert!(branch.starts_with("mac-bridge/env-probe-"), "{branch}");
    assert_hex(&request_id, 64);
    let commit = check_request_on_bus(&w, &branch, &request_id);

    let pending = w.status(&branch);
    assert_eq!(pending["state"], "pending", "{pending}");
    assert_eq!(pending["reason"], Value::Null);
    assert_eq!(pending["verdict"], Value::Null);
    assert_eq!(pending["request_id"], request_id.as_str());

    let handled = w.runner_once();
    assert_eq!(
        handled,
        vec![serde_json::json!({"branch": branch, "outcome": "ran", "detail": "done"})]
    );
    let status = w.status(&branch);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["reason"], Value::Null, "{status}");
    assert_eq!(status["verdict"]["passed"], true, "{status}");
    assert_eq!(
        status["verdict"]["reports"][0]["kind"], "env_probe",
        "{status}"
    );
    assert!(w.claimed(&request_id), "the job ran without a claim ref");

    let out = w.root.join("result");
    let remote = w.remote();
    let (out_s, signers) = (
        out.display().to_string(),
        w.runner_signers.display().to_string(),
    );
    let wait_args = |signers: &str| {
        let args = [
            "wait",
            "--remote",
            &remote,
            "--branch",
            &branch,
            "--timeout",
            "60",
        ];
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--out", &out_s, "--json", "--runner-signers", signers].map(String::from));
        v
    };
    let args = wait_args(&signers);
    let waited = w
        .mb(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .expect_code(0)
        .json();
    assert_eq!(waited["state"], "done", "{waited}");
    assert_eq!(waited["timed_out"], false);
    assert_eq!(waited["signature"]["valid"], true, "{waited}");
    assert_eq!(waited["signature"]["trusted"], true, "{waited}");
    assert_eq!(
        waited["signature"]["principals"],
        serde_json::json!([RUNNER])
    );
    assert_eq!(
        waited["signature"]["signer"],
        w.runner_key.fingerprint.as_str()
    );
    let mut files: Vec<&str> = waited["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "logs/stderr.log",
            "logs/stdout.log",
            "result.json",
            "result.sig",
            "results/env_probe.json"
        ]
    );

    let result_json = std::fs::read(out.join("result.json")).unwrap();
    let result_sig = std::fs::read(out.join("result.sig")).unwrap();
    assert!(
        w.runner_signed(&result_json, &result_sig),
        "ssh-keygen rejects result.sig"
    );
    assert!(
        !craft::ssh_verify(
            &w.runner_signers,
            RUNNER,
            REQUEST_NAMESPACE,
            &result_json,
            &result_sig,
            &w.files
        ),
        "a result signature must not verify in the request namespace"
    );
    let result: Value = serde_json::from_slice(&result_json).unwrap();
    assert_eq!(result["request_id"], request_id.as_str());
    assert_eq!(result["branch"], full_branch(&branch).as_str());
    assert_eq!(result["request_commit"], commit.as_str());
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["runner"]["id"], RUNNER);
    assert_eq!(result["runner"]["key"], w.runner_key.public_line.as_str());
    check_artifacts(&result, &out);
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("results/env_probe.json")).unwrap())
            .unwrap();
    assert_eq!(report["kind"], "env_probe");

    // The job folder stays for inspection.
    let job = w.work_dir.join("jobs").join(&request_id);
    let job_json: Value =
        serde_json::from_slice(&std::fs::read(job.join("job.json")).unwrap()).unwrap();
    assert_eq!(job_json["request_id"], request_id.as_str());
    assert_eq!(job_json["argv"][1], "env-probe", "{job_json}");
    assert!(job.join("out/env_probe.json").is_file() && job.join("stdout.log").is_file());

    // The same result, judged against a trust list without this runner, is not a success.
    let stranger = w.keygen("stranger");
    let strangers = w.root.join("stranger_signers");
    std::fs::write(
        &strangers,
        format!(
            "someone namespaces=\"{RESULT_NAMESPACE}\" {}\n",
            stranger.public_line
        ),
    )
    .unwrap();
    let args = wait_args(strangers.to_str().unwrap());
    let distrust = w
        .mb(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .expect_code(1)
        .json();
    assert_eq!(distrust["signature"]["valid"], true, "{distrust}");
    assert_eq!(distrust["signature"]["trusted"], false, "{distrust}");
}

fn queue(w: &World) -> Value {
    w.mb(&["queue", "--remote", &w.remote(), "--json"])
        .ok()
        .json()
}

fn queue_entry<'a>(q: &'a Value, branch: &str) -> &'a Value {
    q["requests"]
        .as_array()
        .expect("requests list")
        .iter()
        .find(|e| e["branch"] == branch)
        .unwrap_or_else(|| panic!("{branch} not in the queue: {q}"))
}

#[test]
fn run_against_a_serving_runner_and_queue() {
    let w = World::new();
    let (waiting, waiting_id) = w.request("sleep", &["--param", "ms=1"]);
    let q = queue(&w);
    let entry = queue_entry(&q, &waiting);
    assert_eq!(entry["state"], "pending", "{q}");
    assert_eq!(entry["preset"], "sleep");
    assert_eq!(entry["request_id"], waiting_id.as_str());

    let mut server = w.serve();
    let (remote, key) = (w.remote(), w.requester.path.display().to_string());
    let (out, signers) = (
        w.root.join("run-out"),
        w.runner_signers.display().to_string(),
    );
    let ran = w
        .mb(&[
            "run",
            "--remote",
            &remote,
            "--key",
            &key,
            "--preset",
            "env-probe",
            "--timeout",
            "120",
            "--out",
            out.to_str().unwrap(),
            "--runner-signers",
            &signers,
            "--json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(ran["state"], "done", "{ran}");
    assert_eq!(ran["signature"]["trusted"], true, "{ran}");
    assert!(out.join("results/env_probe.json").is_file());
    let run_branch = ran["branch"].as_str().unwrap().to_string();
    let run_id = ran["request_id"].as_str().unwrap().to_string();

    // The request made before the runner started is served by the same loop.
    proc::wait_for(
        "the earlier request to finish",
        Duration::from_secs(60),
        || (w.status(&waiting)["state"] == "done").then_some(()),
    );
    let q = queue(&w);
    assert_eq!(q["requests"].as_array().unwrap().len(), 2, "{q}");
    for (branch, id, preset) in [
        (&waiting, &waiting_id, "sleep"),
        (&run_branch, &run_id, "env-probe"),
    ] {
        let entry = queue_entry(&q, branch);
        assert_eq!(entry["state"], "done", "{q}");
        assert_eq!(entry["request_id"], id.as_str());
        assert_eq!(entry["preset"], preset);
    }
    assert_eq!(q["counts"], serde_json::json!({"done": 2}), "{q}");

    assert!(
        server.is_running(),
        "serve exited early:\n{}",
        server.log_text()
    );
    let pid = server.pid;
    let exit = server.stop(Duration::from_secs(30));
    assert!(
        exit.success(),
        "serve did not shut down cleanly on SIGTERM: {exit}"
    );
    assert!(!proc::pid_alive(pid));
    let root = w.root.display().to_string();
    proc::wait_for(
        "no process left using the test folder",
        Duration::from_secs(10),
        || proc::processes_mentioning(&root).is_empty().then_some(()),
    );
    let mut expected = vec![waiting_id, run_id];
    expected.sort();
    assert_eq!(w.job_dirs(), expected);
    assert_eq!(w.files_named("sleep.json").len(), 1);
}
