use std::os::unix::fs::symlink;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

const ENGINE: &str = r#"
name: eng
description: d
class: engine
argv: ["{engine}", "run", "--model", "${ENV:KAKEYA_MODEL_DIR}", "--out={out}/r.json", "--tag", "{tag}", "{{x}}$1"]
timeout_seconds: 5
params:
  tag: {type: enum, values: ["{out}", "${ENV:SECRET}", "{{tag}}", plain], default: plain}
"#;

const WORKLOAD: &str = r#"
name: wl
description: d
class: workload
argv: ["cargo", "test", "--manifest-path", "{manifest}", "--cwd", "{workspace}"]
timeout_seconds: 5
params:
  manifest: {type: path, default: Cargo.toml}
"#;

fn preset(text: &str) -> Preset {
    Preset::from_yaml("test.yaml", text).unwrap()
}

fn params(p: &Preset, v: Value) -> ValidatedParams {
    p.validate_params(&serde_json::from_value(v).unwrap())
        .unwrap()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ctx<'a>(env: &'a BTreeMap<String, String>, workspace: Option<&'a Path>) -> RenderContext<'a> {
    RenderContext {
        engine: Path::new("/opt/kakeya"),
        out_dir: Path::new("/jobs/1/out"),
        workspace,
        env,
    }
}

#[test]
fn renders_engine_preset() {
    let p = preset(ENGINE);
    let env = env(&[("KAKEYA_MODEL_DIR", "/models/tiny"), ("SECRET", "s3cret")]);
    let argv = p.render(&params(&p, json!({})), &ctx(&env, None)).unwrap();
    assert_eq!(
        argv,
        [
            "/opt/kakeya",
            "run",
            "--model",
            "/models/tiny",
            "--out=/jobs/1/out/r.json",
            "--tag",
            "plain",
            "{x}$1",
        ]
    );
}

#[test]
fn substitution_is_single_pass() {
    let p = preset(ENGINE);
    let env = env(&[("KAKEYA_MODEL_DIR", "{out}"), ("SECRET", "s3cret")]);
    for tag in ["{out}", "${ENV:SECRET}", "{{tag}}"] {
        let argv = p
            .render(&params(&p, json!({"tag": tag})), &ctx(&env, None))
            .unwrap();
        assert_eq!(argv[6], tag, "param value was re-scanned");
        // An env value is not re-scanned either.
        assert_eq!(argv[3], "{out}");
    }
}

#[test]
fn missing_or_empty_env_is_a_refusal() {
    let p = preset(ENGINE);
    for env in [env(&[]), env(&[("KAKEYA_MODEL_DIR", "")])] {
        let err = p
            .render(&params(&p, json!({})), &ctx(&env, None))
            .unwrap_err();
        assert_eq!(
            err,
            PresetError::MissingEnv {
                preset: "eng".into(),
                var: "KAKEYA_MODEL_DIR".into()
            }
        );
        assert!(err.to_string().contains("KAKEYA_MODEL_DIR"));
    }
}

#[test]
fn out_dir_must_be_absolute() {
    let p = preset(ENGINE);
    let env = env(&[("KAKEYA_MODEL_DIR", "/m")]);
    let mut c = ctx(&env, None);
    c.out_dir = Path::new("relative/out");
    assert_eq!(
        p.render(&params(&p, json!({})), &c).unwrap_err().code(),
        "render"
    );
}

#[test]
fn params_from_another_preset_are_refused() {
    let eng = preset(ENGINE);
    let wl = preset(WORKLOAD);
    let env = env(&[("KAKEYA_MODEL_DIR", "/m")]);
    let err = eng
        .render(&params(&wl, json!({})), &ctx(&env, None))
        .unwrap_err();
    assert!(
        err.to_string().contains("validated for preset \"wl\""),
        "{err}"
    );
}

#[test]
fn workload_needs_a_workspace() {
    let p = preset(WORKLOAD);
    let env = env(&[]);
    let err = p
        .render(&params(&p, json!({})), &ctx(&env, None))
        .unwrap_err();
    assert!(err.to_string().contains("workspace"), "{err}");
}

#[test]
fn workload_renders_and_checks_symlinks() {
    let p = preset(WORKLOAD);
    let env = env(&[]);
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(ws.path().join("inner")).unwrap();
    symlink(outside.path(), ws.path().join("escape")).unwrap();
    symlink("inner", ws.path().join("alias")).unwrap();
    let ws_str = ws.path().to_str().unwrap();

    let argv = p
        .render(
            &params(&p, json!({"manifest": "./crate//Cargo.toml"})),
            &ctx(&env, Some(ws.path())),
        )
        .unwrap();
    assert_eq!(
        argv,
        [
            "cargo",
            "test",
            "--manifest-path",
            "crate/Cargo.toml",
            "--cwd",
            ws_str
        ]
    );
    // A symlink staying inside the checkout is fine.
    assert!(
        p.render(
            &params(&p, json!({"manifest": "alias/Cargo.toml"})),
            &ctx(&env, Some(ws.path()))
        )
        .is_ok()
    );
    let err = p
        .render(
            &params(&p, json!({"manifest": "escape/Cargo.toml"})),
            &ctx(&env, Some(ws.path())),
        )
        .unwrap_err();
    let PresetError::PathEscape { preset, param, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        (preset.as_deref(), param.as_deref()),
        (Some("wl"), Some("manifest"))
    );
}

#[test]
fn non_utf8_paths_are_refused() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let p = preset(ENGINE);
    let env = env(&[("KAKEYA_MODEL_DIR", "/m")]);
    let bad = PathBuf::from(OsStr::from_bytes(b"/opt/\xff"));
    let mut c = ctx(&env, None);
    c.engine = &bad;
    assert_eq!(
        p.render(&params(&p, json!({})), &c).unwrap_err().code(),
        "render"
    );
}

#[test]
fn nul_in_env_value_is_refused() {
    let p = preset(ENGINE);
    let env = env(&[("KAKEYA_MODEL_DIR", "/m\0x")]);
    let err = p
        .render(&params(&p, json!({})), &ctx(&env, None))
        .unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
}

#[test]
fn template_parsing() {
    assert_eq!(
        parse_template("--out={out}/x.json").unwrap(),
        [
            Segment::Literal("--out=".into()),
            Segment::Out,
            Segment::Literal("/x.json".into())
        ]
    );
    assert_eq!(
        parse_template("{{a}}${ENV:A_B}$x{p-1}").unwrap(),
        [
            Segment::Literal("{a}".into()),
            Segment::Env("A_B"),
            Segment::Literal("$x".into()),
            Segment::Param("p-1"),
        ]
    );
    assert_eq!(parse_template("").unwrap(), []);
    for bad in [
        "{", "}", "{}", "{A}", "{a b}", "${ENV:}", "${ENV:A", "${X}", "${{", "{a{b}}",
    ] {
        assert!(parse_template(bad).is_err(), "{bad:?}");
    }
}

const SWITCHED: &str = r#"
name: sd
description: d
class: engine
argv: ["{engine}", "spec", "--target", "${ENV:TARGET}", "--drafter", "{drafter}"]
timeout_seconds: 5
params:
  drafter: {type: enum, values: [model, ngram, dflash], default: model}
  plot: {type: bool, default: false}
argv_when:
  - {param: drafter, values: [model], argv: ["--draft", "${ENV:DRAFT}"]}
  - {param: drafter, values: [dflash], argv: ["--dflash", "${ENV:DFLASH}"]}
  - {param: plot, values: ["true"], argv: ["--plot", "{out}/p.svg"]}
"#;

#[test]
fn argv_when_adds_tokens_and_env_only_for_the_chosen_values() {
    let p = preset(SWITCHED);
    assert_eq!(p.required_env(), ["TARGET"]);
    assert_eq!(
        p.conditional_env(),
        [
            (
                "DRAFT".to_string(),
                "drafter".to_string(),
                vec!["model".to_string()]
            ),
            (
                "DFLASH".to_string(),
                "drafter".to_string(),
                vec!["dflash".to_string()]
            ),
        ]
    );
    // ngram needs the target only: no draft model, no refusal.
    let only_target = env(&[("TARGET", "/m/t")]);
    let ngram = params(&p, json!({"drafter": "ngram", "plot": true}));
    assert_eq!(p.required_env_for(&ngram), [("TARGET".to_string(), None)]);
    let argv = p.render(&ngram, &ctx(&only_target, None)).unwrap();
    assert_eq!(
        argv,
        [
            "/opt/kakeya",
            "spec",
            "--target",
            "/m/t",
            "--drafter",
            "ngram",
            "--plot",
            "/jobs/1/out/p.svg"
        ]
    );
    // model needs DRAFT, and says why.
    let model = params(&p, json!({"drafter": "model"}));
    assert_eq!(
        p.required_env_for(&model),
        [
            ("TARGET".to_string(), None),
            ("DRAFT".to_string(), Some("drafter=model".to_string()))
        ]
    );
    let err = p.render(&model, &ctx(&only_target, None)).unwrap_err();
    assert!(
        matches!(err, PresetError::MissingEnv { ref var, .. } if var == "DRAFT"),
        "{err}"
    );
    let both = env(&[("TARGET", "/m/t"), ("DRAFT", "/m/d")]);
    let argv = p.render(&model, &ctx(&both, None)).unwrap();
    assert_eq!(argv[6..], ["--draft", "/m/d"]);
}

#[test]
fn argv_when_groups_are_checked() {
    let bad = |group: &str, why: &str| {
        let text = SWITCHED.replace(
            "  - {param: plot, values: [\"true\"], argv: [\"--plot\", \"{out}/p.svg\"]}",
            group,
        );
        let err = Preset::from_yaml("t.yaml", &text).unwrap_err().to_string();
        assert!(err.contains(why), "{group}: {err}");
    };
    bad("  - {param: nope, values: [a], argv: [x]}", "not declared");
    bad(
        "  - {param: plot, values: [yes], argv: [x]}",
        "is not a value of param",
    );
    bad("  - {param: plot, values: [], argv: [x]}", "non-empty");
    bad(
        "  - {param: plot, values: [\"true\"], argv: []}",
        "non-empty",
    );
    bad(
        "  - {param: plot, values: [\"true\", \"true\"], argv: [x]}",
        "twice",
    );
    bad(
        "  - {param: plot, values: [\"true\"], argv: [\"{nope}\"]}",
        "neither a declared",
    );
    bad(
        "  - {param: plot, values: [\"true\"], argv: [x], extra: 1}",
        "unknown field",
    );
    // A preset without argv_when serialises without the key: its digest is unchanged.
    let plain = preset(ENGINE);
    assert!(plain.definition_json().get("argv_when").is_none());
}
