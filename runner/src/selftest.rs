//! `macbridge-runner self-test`: a full signed request through a throwaway local bus, served by
//! this runner's code and the installed engine, plus one forged request that must be refused.
//! Nothing touches the real bus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use macbridge_bus::git::Bus;
use macbridge_bus::records::ResultState;
use macbridge_bus::submit::{self, RequestSpec};
use macbridge_bus::{clock, sig, view};
use serde::Serialize;

use crate::config::Config;
use crate::lifecycle::Handled;
use crate::runner::Runner;

#[derive(Debug, Serialize)]
pub struct SelfTest {
    pub ok: bool,
    pub engine: String,
    pub preset: String,
    pub state: String,
    pub verdict_passed: bool,
    pub signature_valid: bool,
    pub forged_request_refused: bool,
    /// Seconds from the push of the request to its verified, published result.
    pub round_trip_s: f64,
    pub problems: Vec<String>,
}

/// Run the self-test with `engine` (from the real config when given).
pub fn run(engine: Option<PathBuf>) -> anyhow::Result<SelfTest> {
    let dir = tempfile::Builder::new()
        .prefix("macbridge-self-test-")
        .tempdir()?;
    let root = dir.path();
    let bus_path = root.join("bus.git");
    let repo = git2::Repository::init_bare(&bus_path).context("creating the throwaway bus")?;
    repo.config()?
        .set_bool("receive.denyNonFastForwards", true)?;
    let requester = sig::generate_ed25519("self-test-requester")?;
    let stranger = sig::generate_ed25519("self-test-stranger")?;
    let runner_key = sig::generate_ed25519("self-test-runner")?;
    sig::write_keypair(&root.join("runner"), &runner_key)?;
    std::fs::write(
        root.join("allowed_signers"),
        format!(
            "self-test namespaces=\"macbridge-request-v1\" {}\n",
            sig::public_key_line(requester.public_key())
        ),
    )?;
    let config_text = serde_json::json!({
        "remote": bus_path.display().to_string(),
        "runner_id": "self-test",
        "key": root.join("runner").display().to_string(),
        "allowed_signers": root.join("allowed_signers").display().to_string(),
        "work_dir": root.join("work").display().to_string(),
        "poll_seconds": 0.2,
        "heartbeat_seconds": 1.0,
        "lease_seconds": 30.0,
        "engine": engine.map(|e| e.display().to_string()),
    });
    let config_path = root.join("runner.yaml");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config_text)?)?;
    let config = Config::load(&config_path)?;
    let engine_label = config.engine_path().display().to_string();
    let runner = Runner::new(config)?;

    let client = Bus::open(&bus_path.display().to_string(), &root.join("client.git"))?;
    let catalog = macbridge_presets::catalog()?;
    let preset = catalog.get("env-probe")?;
    let spec = RequestSpec {
        preset,
        params: BTreeMap::new(),
        labels: vec![],
        expires_in_secs: 600,
        workload: None,
        audience: None,
    };
    let good = submit::build_manifest(&spec, &requester, clock::now())?;
    let forged = submit::build_manifest(&spec, &stranger, clock::now())?;
    let started = Instant::now();
    submit::submit(&client, &good, &requester)?;
    submit::submit(&client, &forged, &stranger)?;
    let handled = runner.drain(None)?;
    let round_trip_s = started.elapsed().as_secs_f64();

    let mut problems = Vec::new();
    let outcome = |branch: &str| {
        handled
            .iter()
            .find(|(b, _)| b == branch)
            .map(|(_, h)| h.clone())
    };
    let forged_refused = matches!(outcome(&forged.branch_ref()), Some(Handled::Refused(r)) if r.starts_with("unknown_signer"));
    if !forged_refused {
        problems.push(format!(
            "a request signed by an unknown key was not refused: {:?}",
            outcome(&forged.branch_ref())
        ));
    }
    client.fetch(&[good.branch_ref()])?;
    let Some(request) = view::read_request(&client, &good.branch_ref())? else {
        bail!("the request branch vanished");
    };
    let (state, verdict_passed, signature_valid) = match &request.result {
        Some(result) => {
            let record = result
                .record
                .as_ref()
                .map_err(|e| anyhow::anyhow!("result.json: {e}"))?;
            let valid = result
                .signature
                .as_deref()
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| sig::verify(s, sig::RESULT_NAMESPACE, &result.bytes).ok())
                .is_some_and(|k| k.key_data() == runner_key.public_key().key_data());
            if let Some(reason) = &record.reason {
                problems.push(format!("result reason: {reason}"));
            }
            (
                record.state,
                record.verdict.as_ref().is_some_and(|v| v.passed),
                valid,
            )
        }
        None => {
            problems.push("no result was published".into());
            (ResultState::Failed, false, false)
        }
    };
    if !signature_valid {
        problems.push("the result's signature does not verify with the runner key".into());
    }
    let ok = state == ResultState::Done && verdict_passed && signature_valid && forged_refused;
    Ok(SelfTest {
        ok,
        engine: engine_label,
        preset: "env-probe".into(),
        state: state.as_str().into(),
        verdict_passed,
        signature_valid,
        forged_request_refused: forged_refused,
        round_trip_s: (round_trip_s * 1000.0).round() / 1000.0,
        problems,
    })
}
