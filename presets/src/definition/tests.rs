use super::*;

const BASE: &str = r#"
name: demo
description: A demo preset.
class: engine
argv: ["{engine}", "demo", "--n", "{n}", "--out={out}/demo.json"]
timeout_seconds: 60
labels: [metal]
reports: [demo.json]
params:
  n: {type: int, min: 1, max: 10, default: 3, description: Count.}
"#;

fn parse(text: &str) -> Result<Preset, PresetError> {
    from_yaml("defs/demo.yaml", text)
}

/// Parses `text`, expecting a definition error whose message contains `needle`.
fn refused(text: &str, needle: &str) {
    match parse(text) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(PresetError::Definition { file, message }) => {
            assert_eq!(file, "defs/demo.yaml");
            assert!(message.contains(needle), "{needle:?} not in: {message}");
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

/// BASE with its params block replaced.
fn with_params(params: &str, argv: &str) -> String {
    format!(
        "name: demo\ndescription: d\nclass: engine\nargv: {argv}\ntimeout_seconds: 60\n\
         params:\n{params}\n"
    )
}

#[test]
fn base_parses() {
    let p = parse(BASE).unwrap();
    assert_eq!(p.name, "demo");
    assert_eq!(p.class, PresetClass::Engine);
    assert_eq!(p.labels, ["metal"]);
    let n = &p.params["n"];
    assert_eq!(n.kind, ParamKind::Int { min: 1, max: 10 });
    assert_eq!(n.default, Some(ParamValue::Int(3)));
    assert!(!n.required());
}

#[test]
fn unknown_fields_are_refused() {
    refused(&format!("{BASE}timeout: 5\n"), "timeout");
    refused(
        &BASE.replace("default: 3,", "default: 3, maximum: 4,"),
        "maximum",
    );
}

#[test]
fn duplicate_keys_are_refused() {
    assert!(parse(&format!("{BASE}timeout_seconds: 5\n")).is_err());
}

#[test]
fn missing_required_fields_are_refused() {
    refused(
        &BASE.replace("timeout_seconds: 60\n", ""),
        "timeout_seconds",
    );
    refused(&BASE.replace("class: engine\n", ""), "class");
}

#[test]
fn names_are_checked() {
    refused(&BASE.replace("name: demo", "name: Demo"), "[a-z]");
    refused(&BASE.replace("name: demo", "name: 1demo"), "[a-z]");
    refused(&BASE.replace("name: demo", "name: de.mo"), "[a-z]");
    let long = format!("name: {}", "d".repeat(65));
    refused(&BASE.replace("name: demo", &long), "64");
    refused(
        &with_params("  N: {type: bool}", r#"["x", "{N}"]"#),
        "param name",
    );
    refused(
        &with_params("  out: {type: bool}", r#"["x", "{out}"]"#),
        "param name",
    );
}

#[test]
fn unknown_type_and_class_are_refused() {
    refused(
        &with_params("  n: {type: integer, min: 1, max: 2}", r#"["x", "{n}"]"#),
        "integer",
    );
    refused(&BASE.replace("class: engine", "class: shell"), "shell");
}

#[test]
fn bounds_are_required_and_ordered() {
    let argv = r#"["x", "{n}"]"#;
    refused(
        &with_params("  n: {type: int, max: 2}", argv),
        "needs `min`",
    );
    refused(
        &with_params("  n: {type: int, min: 3, max: 2}", argv),
        "greater than max",
    );
    refused(
        &with_params("  n: {type: int, min: 1.5, max: 2}", argv),
        "integer",
    );
    refused(
        &with_params("  n: {type: float, min: 0}", argv),
        "needs `max`",
    );
    refused(
        &with_params("  n: {type: float, min: 1, max: 0.5}", argv),
        "greater than max",
    );
    refused(
        &with_params("  n: {type: float, min: .nan, max: 1}", argv),
        "",
    );
    let ok = parse(&with_params("  n: {type: int, min: 2, max: 2}", argv)).unwrap();
    assert!(ok.params["n"].required());
    let f = parse(&with_params(
        "  n: {type: float, min: 0, max: 1, default: 1}",
        argv,
    ))
    .unwrap();
    assert_eq!(f.params["n"].kind, ParamKind::Float { min: 0.0, max: 1.0 });
    assert_eq!(f.params["n"].default, Some(ParamValue::Float(1.0)));
}

#[test]
fn defaults_must_validate() {
    let argv = r#"["x", "{n}"]"#;
    refused(
        &with_params("  n: {type: int, min: 1, max: 2, default: 3}", argv),
        "default 3",
    );
    refused(
        &with_params("  n: {type: int, min: 1, max: 2, default: 1.0}", argv),
        "default",
    );
    refused(
        &with_params("  n: {type: int, min: 1, max: 2, default: null}", argv),
        "null",
    );
    refused(
        &with_params("  n: {type: bool, default: yes}", argv),
        "default",
    );
    refused(
        &with_params("  n: {type: enum, values: [a], default: b}", argv),
        "default",
    );
    refused(
        &with_params("  n: {type: path, default: ../x}", argv),
        "default",
    );
    refused(
        &with_params("  n: {type: path, under: tests, default: src}", argv),
        "under tests",
    );
    let p = parse(&with_params("  n: {type: bool, default: false}", argv)).unwrap();
    assert_eq!(p.params["n"].default, Some(ParamValue::Bool(false)));
}

#[test]
fn stray_fields_for_the_type_are_refused() {
    let argv = r#"["x", "{n}"]"#;
    refused(
        &with_params("  n: {type: path, min: 1}", argv),
        "`min` does not apply",
    );
    refused(
        &with_params("  n: {type: bool, values: [a]}", argv),
        "`values` does not apply",
    );
    refused(
        &with_params("  n: {type: int, min: 1, max: 2, under: x}", argv),
        "`under`",
    );
}

#[test]
fn enum_and_under_are_checked() {
    let argv = r#"["x", "{n}"]"#;
    refused(
        &with_params("  n: {type: enum}", argv),
        "non-empty `values`",
    );
    refused(
        &with_params("  n: {type: enum, values: []}", argv),
        "non-empty `values`",
    );
    refused(
        &with_params("  n: {type: enum, values: [a, a]}", argv),
        "twice",
    );
    refused(
        &with_params("  n: {type: enum, values: ['']}", argv),
        "non-empty string",
    );
    refused(
        &with_params("  n: {type: path, under: ../x}", argv),
        "under",
    );
    refused(
        &with_params("  n: {type: path, under: tests/}", argv),
        "must be written",
    );
}

#[test]
fn argv_placeholders_must_be_known() {
    refused(&BASE.replace("{n}\"", "{m}\""), "{m}");
    refused(&BASE.replace("\"demo\",", "\"{Demo}\","), "placeholder");
    refused(&BASE.replace("\"demo\",", "\"{demo\","), "unterminated");
    refused(&BASE.replace("\"demo\",", "\"demo}\","), "unmatched");
    refused(&BASE.replace("\"demo\",", "\"${HOME}\","), "${ENV:NAME}");
    refused(&BASE.replace("\"demo\",", "\"${ENV:home}\","), "[A-Z]");
    refused(&BASE.replace("\"demo\",", "\"{workspace}\","), "workload");
    refused(&BASE.replace("\"{n}\"", "\"3\""), "never uses");
    refused(
        &BASE.replace("argv: [\"{engine}\",", "argv: [\"\","),
        "argv",
    );
    refused(
        &BASE.replace(
            "argv: [\"{engine}\", \"demo\", \"--n\", \"{n}\", \"--out={out}/demo.json\"]",
            "argv: []",
        ),
        "argv",
    );
}

#[test]
fn argv_escapes_and_dollars_are_fine() {
    let p = parse(&BASE.replace("\"demo\",", "\"{{literal}}$HOME${ENV:X_1}\",")).unwrap();
    assert_eq!(p.argv[1], "{{literal}}$HOME${ENV:X_1}");
}

#[test]
fn timeout_labels_reports_are_checked() {
    refused(
        &BASE.replace("timeout_seconds: 60", "timeout_seconds: 0"),
        "timeout_seconds",
    );
    refused(
        &BASE.replace("timeout_seconds: 60", "timeout_seconds: 86401"),
        "timeout_seconds",
    );
    refused(
        &BASE.replace("timeout_seconds: 60", "timeout_seconds: -1"),
        "",
    );
    refused(&BASE.replace("[metal]", "[Metal]"), "label");
    refused(&BASE.replace("[metal]", "[metal, metal]"), "twice");
    refused(&BASE.replace("[demo.json]", "[../demo.json]"), "report");
    refused(
        &BASE.replace("[demo.json]", "[./demo.json]"),
        "must be written",
    );
    refused(
        &BASE.replace("description: A demo preset.", "description: ''"),
        "description",
    );
}

#[test]
fn yaml_1_1_booleans_are_not_booleans() {
    let argv = r#"["x", "{n}"]"#;
    refused(
        &with_params("  n: {type: bool, default: on}", argv),
        "default",
    );
}

#[test]
fn name_helpers() {
    assert!(is_name("a") && is_name("codec-eval") && is_name("a_1"));
    assert!(!is_name("") && !is_name("-a") && !is_name("a b") && !is_name("é"));
    assert!(is_env_name("KAKEYA_MODEL_DIR") && is_env_name("X1"));
    assert!(!is_env_name("") && !is_env_name("1X") && !is_env_name("x") && !is_env_name("A-B"));
    assert!(is_label("m4") && is_label("apple-silicon") && is_label("macos.14"));
    assert!(!is_label("Metal") && !is_label("-x") && !is_label(""));
}

#[test]
fn json_round_trip_runs_the_same_checks() {
    let p = parse(BASE).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    let back: Preset = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, p);
    let mut broken = json;
    broken["params"]["n"]["default"] = serde_json::json!(11);
    assert!(serde_json::from_value::<Preset>(broken).is_err());
}
