use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::preset::PresetClass;
use crate::render::RenderContext;

#[test]
fn every_compiled_definition_loads_and_its_defaults_validate() {
    let catalog = match catalog() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(catalog.names().len(), sources::DEFINITION_SOURCES.len());
    for preset in catalog.iter() {
        let required: BTreeMap<String, Value> = BTreeMap::new();
        match preset.validate_params(&required) {
            Ok(params) => {
                // Defaults also re-validate through their JSON form.
                let again: BTreeMap<String, Value> =
                    serde_json::from_value(params.to_json()).unwrap();
                assert_eq!(preset.validate_params(&again).unwrap(), params);
            }
            // Only a genuinely required param may stop the defaults-only case.
            Err(PresetError::MissingParam { param, .. }) => {
                assert!(preset.params[&param].required(), "{}", preset.name);
            }
            Err(e) => panic!("{}: {e}", preset.name),
        }
    }
}

#[test]
fn the_four_base_presets_are_there() {
    let c = catalog().unwrap();
    for name in ["env-probe", "sleep", "model-info", "cargo-test"] {
        assert_eq!(c.get(name).unwrap().name, name);
    }
    let sleep = c.get("sleep").unwrap();
    assert_eq!(sleep.timeout_seconds, 660);
    assert_eq!(sleep.reports, ["sleep.json"]);
    assert_eq!(c.get("cargo-test").unwrap().class, PresetClass::Workload);
    assert_eq!(
        c.get("model-info").unwrap().required_env(),
        ["KAKEYA_MODEL_DIR"]
    );
}

#[test]
fn base_presets_render() {
    let c = catalog().unwrap();
    let env = BTreeMap::from([("KAKEYA_MODEL_DIR".to_owned(), "/models/m".to_owned())]);
    let ctx = RenderContext {
        engine: Path::new("/bin/kakeya"),
        out_dir: Path::new("/w/out"),
        workspace: None,
        env: &env,
    };
    let sleep = c.get("sleep").unwrap();
    let raw = BTreeMap::from([("ms".to_owned(), serde_json::json!("250"))]);
    let argv = sleep
        .render(&sleep.validate_params(&raw).unwrap(), &ctx)
        .unwrap();
    assert_eq!(
        argv,
        [
            "/bin/kakeya",
            "sleep",
            "--ms",
            "250",
            "--children",
            "0",
            "--out",
            "/w/out/sleep.json"
        ]
    );
    let mi = c.get("model-info").unwrap();
    let argv = mi
        .render(&mi.validate_params(&BTreeMap::new()).unwrap(), &ctx)
        .unwrap();
    assert_eq!(argv[3], "/models/m");
}

#[test]
fn unknown_preset_lists_known_names() {
    let err = catalog().unwrap().get("rm-rf").unwrap_err();
    let PresetError::UnknownPreset { known, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(known.iter().any(|k| k == "sleep"));
    assert!(err.to_string().contains("env-probe"), "{err}");
}

#[test]
fn to_json_shape() {
    let json = catalog().unwrap().to_json();
    let presets = json["presets"].as_array().unwrap();
    let sleep = presets.iter().find(|p| p["name"] == "sleep").unwrap();
    assert_eq!(sleep["class"], "engine");
    assert_eq!(sleep["timeout_seconds"], 660);
    assert!(sleep["digest"].as_str().unwrap().starts_with("sha256:"));
    let ms = &sleep["params"]["ms"];
    assert_eq!(ms["type"], "int");
    assert_eq!(ms["default"], 1000);
    assert_eq!(
        (ms["min"].clone(), ms["max"].clone()),
        (0.into(), 600_000.into())
    );
    assert_eq!(ms["required"], false);
    assert!(ms["values"].is_null() && ms["under"].is_null());
    let names: Vec<&str> = presets
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

const ONE: &str = "name: one\ndescription: d\nclass: engine\nargv: [x]\ntimeout_seconds: 1\n";

#[test]
fn file_must_be_named_after_the_preset() {
    assert!(Catalog::from_sources(&[("one.yaml", ONE)]).is_ok());
    let err = Catalog::from_sources(&[("two.yaml", ONE)]).unwrap_err();
    assert!(err.to_string().contains("defs/two.yaml"), "{err}");
    assert!(err.to_string().contains("one.yaml"), "{err}");
}

#[test]
fn a_broken_definition_is_named() {
    let err =
        Catalog::from_sources(&[("one.yaml", ONE), ("codec-eval.yaml", "name: [")]).unwrap_err();
    assert_eq!(err.code(), "definition");
    assert!(err.to_string().contains("defs/codec-eval.yaml"), "{err}");
}
