//! A request names the bus it is for; a runner refuses one addressed to another bus, so a
//! signed request cannot be replayed from one bus onto another that trusts the same key.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use macbridge_bus::git::Bus;
use macbridge_bus::submit::{self, RequestSpec};
use macbridge_bus::{busid, clock, sig};

fn bare(path: &Path) -> Bus {
    git2::Repository::init_bare(path).unwrap();
    Bus::open(&path.display().to_string(), &path.with_extension("cache")).unwrap()
}

#[test]
fn a_request_for_another_bus_is_refused_and_one_for_this_bus_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bus_a = bare(&root.join("a.git"));
    let bus_b = bare(&root.join("b.git"));
    let id_a = busid::read_or_create(&bus_a).unwrap().unwrap();
    // Creating again returns the same id.
    assert_eq!(busid::read_or_create(&bus_a).unwrap(), Some(id_a.clone()));
    let requester = sig::generate_ed25519("requester").unwrap();
    let runner = sig::generate_ed25519("runner").unwrap();
    sig::write_keypair(&root.join("runner"), &runner).unwrap();
    std::fs::write(
        root.join("allowed"),
        format!("alice {}\n", sig::public_key_line(requester.public_key())),
    )
    .unwrap();
    let engine = macbridge_e2e::bins::kakeya();
    std::fs::write(
        root.join("runner.yaml"),
        format!(
            "remote: {}\nrunner_id: b-1\nkey: runner\nallowed_signers: allowed\nwork_dir: work\nengine: {}\n",
            root.join("b.git").display(),
            engine.display()
        ),
    )
    .unwrap();
    let once = || {
        let out = Command::new(env!("CARGO_BIN_EXE_macbridge-runner"))
            .args(["once", "--json", "--config"])
            .arg(root.join("runner.yaml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // The first runner start gives bus B its id.
    assert_eq!(once()["handled"], serde_json::json!([]));
    let id_b = busid::read(&bus_b).unwrap().unwrap();
    assert_ne!(id_a, id_b);

    let catalog = macbridge_presets::catalog().unwrap();
    let spec = |audience: &str| RequestSpec {
        preset: catalog.get("sleep").unwrap(),
        params: BTreeMap::from([("ms".to_string(), serde_json::Value::from("1"))]),
        labels: vec![],
        expires_in_secs: 600,
        workload: None,
        audience: Some(audience.to_string()),
    };
    let for_a = submit::build_manifest(&spec(&id_a), &requester, clock::now()).unwrap();
    submit::submit(&bus_b, &for_a, &requester).unwrap();
    let handled = once();
    assert_eq!(handled["handled"][0]["outcome"], "refused");
    let detail = handled["handled"][0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("wrong_audience"), "{detail}");
    assert!(detail.contains(&id_a) && detail.contains(&id_b), "{detail}");

    let for_b = submit::build_manifest(&spec(&id_b), &requester, clock::now()).unwrap();
    submit::submit(&bus_b, &for_b, &requester).unwrap();
    let handled = once();
    assert_eq!(handled["handled"][0]["outcome"], "ran", "{handled}");
    assert_eq!(handled["handled"][0]["detail"], "done");
}
