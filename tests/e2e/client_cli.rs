//! The client's command-line contract: the preset listing, and bad input refused with exit
//! code 2, a clear message and nothing pushed.

use serde_json::Value;

use crate::harness::*;

/// Names of the preset definitions in the source tree (`presets/defs/*.yaml`).
fn preset_files() -> Vec<String> {
    let defs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../presets/defs");
    let mut names: Vec<String> = std::fs::read_dir(&defs)
        .unwrap_or_else(|e| panic!("{}: {e}", defs.display()))
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".yaml")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn preset<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("preset {name} not listed"))
}

#[test]
fn presets_json_lists_every_preset_with_its_contract() {
    let w = World::new();
    let listing = w.mb(&["presets", "--json"]).ok().json();
    let list = listing["presets"].as_array().expect("presets list").clone();
    let mut names: Vec<String> = list
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        preset_files(),
        "every definition in presets/defs is listed, nothing else"
    );
    for p in &list {
        let name = &p["name"];
        assert!(
            matches!(p["class"].as_str(), Some("engine" | "workload")),
            "{name}: class"
        );
        assert!(
            p["timeout_seconds"].as_u64().is_some_and(|t| t > 0),
            "{name}: timeout"
        );
        assert!(p["labels"].is_array(), "{name}: labels");
        let digest = p["digest"].as_str().unwrap_or_default();
        assert!(
            digest
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64),
            "{name}: digest {digest}"
        );
        for (param, spec) in p["params"].as_object().expect("params object") {
            for key in ["type", "default", "min", "max"] {
                assert!(spec.get(key).is_some(), "{name}.{param}: no `{key}`");
            }
        }
    }
    let sleep = preset(&list, "sleep");
    assert_eq!(sleep["class"], "engine");
    assert_eq!(sleep["timeout_seconds"], 660);
    assert_eq!(sleep["labels"], serde_json::json!([]));
    let ms = &sleep["params"]["ms"];
    assert_eq!((&ms["type"], &ms["default"]), (&"int".into(), &1000.into()));
    assert_eq!((&ms["min"], &ms["max"]), (&0.into(), &600_000.into()));
    let cargo = preset(&list, "cargo-test");
    assert_eq!(cargo["class"], "workload");
    assert_eq!(cargo["params"]["manifest"]["type"], "path");
    assert_eq!(cargo["params"]["manifest"]["default"], "Cargo.toml");
    let model = preset(&list, "model-info");
    assert_eq!(
        model["required_env"],
        serde_json::json!(["KAKEYA_MODEL_DIR"])
    );
    // Digests are stable between calls (requests pin them).
    let again = w.mb(&["presets", "--json"]).ok().json();
    assert_eq!(again, listing);
}

#[test]
fn request_with_bad_input_exits_2_and_pushes_nothing() {
    let w = World::new();
    let cases: &[(&str, &[&str], &str)] = &[
        ("nope", &[], "nope"),
        ("sleep", &["--label", "Not A Label"], "label"),
        ("sleep", &["--label", "metal!"], "label"),
        ("sleep", &["--expires-in", "0"], "expires-in"),
        ("sleep", &["--expires-in", "604801"], "expires-in"),
        ("sleep", &["--expires-in", "-5"], "expires-in"),
        ("sleep", &["--param", "ms"], "KEY=VALUE"),
        (
            "sleep",
            &["--param", "ms=1", "--param", "ms=2"],
            "more than once",
        ),
        ("cargo-test", &[], "workload"),
        ("env-probe", &["--workload", "HEAD"], "workload"),
    ];
    for (preset, extra, needle) in cases {
        let out = w.request_cli(preset, extra).expect_code(2);
        assert!(
            out.stderr.contains(needle),
            "{preset} {extra:?}: stderr should mention {needle:?}: {out}"
        );
    }
    let out = w
        .mb(&[
            "request",
            "--remote",
            &w.remote(),
            "--key",
            "/nonexistent/key",
            "--preset",
            "sleep",
        ])
        .expect_code(2);
    assert!(out.stderr.contains("/nonexistent/key"), "{out}");
    assert!(
        w.bus_branches().is_empty(),
        "bad input was pushed: {:?}",
        w.bus_branches()
    );
    // The bounds themselves are accepted.
    for secs in ["1", "604800"] {
        w.request(
            "sleep",
            &["--expires-in", secs, "--param", "ms=0", "--label", "mem>=1"],
        );
    }
    assert_eq!(w.bus_branches().len(), 2);
}

#[test]
fn status_of_a_missing_or_foreign_branch_fails_clearly() {
    let w = World::new();
    let remote = w.remote();
    let missing = format!("mac-bridge/sleep-{}", craft::nonce());
    let out = w.mb(&[
        "status", "--remote", &remote, "--branch", &missing, "--json",
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("no request branch") && out.stderr.contains(&missing),
        "{out}"
    );
    assert!(out.stdout.trim().is_empty(), "{out}");
    for foreign in ["main", "refs/mac-bridge/claims/x", "mac-bridge/../x"] {
        let out = w
            .mb(&["status", "--remote", &remote, "--branch", foreign, "--json"])
            .expect_code(2);
        assert!(
            out.stderr.contains("not a request branch"),
            "{foreign}: {out}"
        );
    }
    let out = w.mb(&[
        "wait",
        "--remote",
        &remote,
        "--branch",
        &missing,
        "--timeout",
        "5",
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("no request branch"), "{out}");
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let w = World::new();
    let path = w.requester.path.display().to_string();
    let before = std::fs::read(&w.requester.path).unwrap();
    let out = w.mb(&["keygen", "--out", &path]).expect_code(2);
    assert!(out.stderr.contains("already exists"), "{out}");
    assert_eq!(std::fs::read(&w.requester.path).unwrap(), before);
}
