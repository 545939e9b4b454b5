use serde_json::json;

use super::*;
use crate::params::ParamValue;

const DEMO: &str = r#"
name: demo
description: A demo preset.
class: engine
argv: ["{engine}", "demo", "--n", "{n}", "--mode", "{mode}", "--tests", "{tests}", "--fast={fast}", "--ratio", "{ratio}"]
timeout_seconds: 60
params:
  n: {type: int, min: 1, max: 10, default: 3}
  mode: {type: enum, values: [e8, d4]}
  tests: {type: path, under: tests, default: tests}
  fast: {type: bool, default: false}
  ratio: {type: float, min: 0, max: 1, default: 0.5}
"#;

fn demo() -> Preset {
    Preset::from_yaml("demo.yaml", DEMO).unwrap()
}

fn raw(v: serde_json::Value) -> BTreeMap<String, Value> {
    serde_json::from_value(v).unwrap()
}

#[test]
fn defaults_fill_and_required_is_required() {
    let p = demo();
    let v = p.validate_params(&raw(json!({"mode": "e8"}))).unwrap();
    assert_eq!(v.get("n"), Some(&ParamValue::Int(3)));
    assert_eq!(v.get("tests"), Some(&ParamValue::Path("tests".into())));
    assert_eq!(v.get("fast"), Some(&ParamValue::Bool(false)));
    assert_eq!(v.get("ratio"), Some(&ParamValue::Float(0.5)));
    assert_eq!(v.preset(), "demo");

    let err = p.validate_params(&raw(json!({}))).unwrap_err();
    assert_eq!(
        err,
        PresetError::MissingParam {
            preset: "demo".into(),
            param: "mode".into()
        }
    );
}

#[test]
fn unknown_param_names_the_known_ones() {
    let err = demo()
        .validate_params(&raw(json!({"mode": "e8", "nn": 1})))
        .unwrap_err();
    let PresetError::UnknownParam { param, known, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(param, "nn");
    assert_eq!(known, &["fast", "mode", "n", "ratio", "tests"]);
    assert!(err.to_string().contains("fast, mode, n, ratio, tests"));
}

#[test]
fn null_is_refused_even_with_a_default() {
    let err = demo()
        .validate_params(&raw(json!({"mode": "e8", "n": null})))
        .unwrap_err();
    assert_eq!(err.code(), "invalid_value", "{err}");
    assert!(err.to_string().contains("null"));
}

#[test]
fn errors_name_preset_param_value_and_rule() {
    let p = demo();
    let err = p
        .validate_params(&raw(json!({"mode": "e8", "n": "+5"})))
        .unwrap_err();
    let msg = err.to_string();
    for part in ["\"demo\"", "\"n\"", "\"+5\"", "ASCII digits"] {
        assert!(msg.contains(part), "{part} not in {msg}");
    }
    let err = p
        .validate_params(&raw(json!({"mode": "e8", "n": 11})))
        .unwrap_err();
    assert_eq!(
        err,
        PresetError::OutOfBounds {
            preset: "demo".into(),
            param: "n".into(),
            value: "11".into(),
            min: "1".into(),
            max: "10".into(),
        }
    );
    let err = p
        .validate_params(&raw(json!({"mode": "e8", "tests": "tests/../../etc"})))
        .unwrap_err();
    assert_eq!(err.code(), "path_escape");
    assert!(err.to_string().contains("param \"tests\""), "{err}");
    let err = p
        .validate_params(&raw(json!({"mode": "x\u{1b}[2J"})))
        .unwrap_err();
    assert!(!err.to_string().contains('\u{1b}'), "{err}");
}

#[test]
fn validated_json_round_trips() {
    let p = demo();
    let v = p
        .validate_params(&raw(
            json!({"mode": "d4", "n": "7", "ratio": "1e-1", "fast": "true"}),
        ))
        .unwrap();
    let again = p.validate_params(&raw(v.to_json())).unwrap();
    assert_eq!(v, again);
    let strings = v.to_strings();
    assert_eq!(strings["n"], "7");
    assert_eq!(strings["ratio"], "0.1");
    assert_eq!(strings["fast"], "true");
}

#[test]
fn digest_is_stable_and_tracks_the_definition() {
    let p = demo();
    let d = p.digest();
    assert!(d.starts_with("sha256:") && d.len() == 7 + 64, "{d}");
    assert_eq!(d, demo().digest());
    // Formatting of the YAML does not matter; the definition does.
    let reformatted = DEMO
        .replace("[e8, d4]", "[\"e8\", 'd4']")
        .replace("timeout_seconds: 60", "timeout_seconds:   60");
    assert_eq!(Preset::from_yaml("x", &reformatted).unwrap().digest(), d);
    let changed = DEMO.replace("max: 10", "max: 11");
    assert_ne!(Preset::from_yaml("x", &changed).unwrap().digest(), d);
    let mut edited = p.clone();
    edited.description.push('!');
    assert_ne!(edited.digest(), d);
}

#[test]
fn canonical_json_sorts_keys_and_has_no_whitespace() {
    let mut out = String::new();
    write_canonical(
        &json!({"b": [1, {"z": 1, "a": "x y"}], "a": null}),
        &mut out,
    );
    assert_eq!(out, r#"{"a":null,"b":[1,{"a":"x y","z":1}]}"#);
    let mut out = String::new();
    write_canonical(&json!([1e-7, 2.5, -3, u64::MAX, "é\n"]), &mut out);
    assert_eq!(out, "[0.0000001,2.5,-3,18446744073709551615,\"é\\n\"]");
}

#[test]
fn required_env_is_listed_once_in_order() {
    let p = Preset::from_yaml(
        "x",
        r#"
name: envs
description: d
class: engine
argv: ["{engine}", "${ENV:B_DIR}", "--a=${ENV:A}", "${ENV:B_DIR}"]
timeout_seconds: 5
"#,
    )
    .unwrap();
    assert_eq!(p.required_env(), ["B_DIR", "A"]);
    assert!(demo().required_env().is_empty());
}

#[test]
fn class_display() {
    assert_eq!(PresetClass::Workload.to_string(), "workload");
    assert_eq!(
        serde_json::to_value(PresetClass::Engine).unwrap(),
        json!("engine")
    );
}
