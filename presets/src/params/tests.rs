use serde_json::json;

use super::*;

const INT: ParamKind = ParamKind::Int {
    min: -10,
    max: 600_000,
};
const FLOAT: ParamKind = ParamKind::Float {
    min: -1.5,
    max: 2.5,
};

fn ok(kind: &ParamKind, raw: Value) -> ParamValue {
    match check_value(kind, &raw) {
        Ok(v) => v,
        Err(e) => panic!("{raw} refused: {e:?}"),
    }
}

fn refused(kind: &ParamKind, raw: Value) -> Refusal {
    match check_value(kind, &raw) {
        Ok(v) => panic!("{raw} accepted as {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn int_accepts_ascii_decimal_strings_and_json_integers() {
    assert_eq!(ok(&INT, json!("5")), ParamValue::Int(5));
    assert_eq!(ok(&INT, json!("-7")), ParamValue::Int(-7));
    assert_eq!(ok(&INT, json!("007")), ParamValue::Int(7));
    assert_eq!(ok(&INT, json!("-0")), ParamValue::Int(0));
    assert_eq!(ok(&INT, json!(42)), ParamValue::Int(42));
}

#[test]
fn int_refuses_every_lax_form() {
    for bad in [
        "+5", "5_0", " 5", "5 ", "1e3", "0x10", "０x", "５", "٥", "5.0", "", "-", "--5", "5-",
        "five", "0b1", "1,000",
    ] {
        assert!(
            matches!(refused(&INT, json!(bad)), Refusal::Invalid(_)),
            "{bad:?}"
        );
    }
}

#[test]
fn int_refuses_non_integer_json() {
    for bad in [
        json!(5.0),
        json!(5.5),
        json!(true),
        json!(null),
        json!([5]),
        json!({"v": 5}),
    ] {
        assert!(matches!(refused(&INT, bad), Refusal::Invalid(_)));
    }
}

#[test]
fn int_must_fit_i64() {
    let wide = ParamKind::Int {
        min: i64::MIN,
        max: i64::MAX,
    };
    assert_eq!(
        ok(&wide, json!("9223372036854775807")),
        ParamValue::Int(i64::MAX)
    );
    assert_eq!(
        ok(&wide, json!("-9223372036854775808")),
        ParamValue::Int(i64::MIN)
    );
    for bad in [
        json!("9223372036854775808"),
        json!(u64::MAX),
        json!("-9223372036854775809"),
    ] {
        let Refusal::Invalid(rule) = refused(&wide, bad) else {
            panic!("expected Invalid");
        };
        assert!(rule.contains("64-bit"), "{rule}");
    }
}

#[test]
fn int_bounds_are_inclusive() {
    assert_eq!(ok(&INT, json!(-10)), ParamValue::Int(-10));
    assert_eq!(ok(&INT, json!("600000")), ParamValue::Int(600_000));
    for bad in [json!(-11), json!("600001")] {
        assert_eq!(
            refused(&INT, bad),
            Refusal::OutOfBounds {
                min: "-10".into(),
                max: "600000".into()
            }
        );
    }
}

#[test]
fn float_grammar() {
    assert_eq!(ok(&FLOAT, json!("1")), ParamValue::Float(1.0));
    assert_eq!(ok(&FLOAT, json!("-1.25")), ParamValue::Float(-1.25));
    assert_eq!(ok(&FLOAT, json!("2e-3")), ParamValue::Float(0.002));
    assert_eq!(ok(&FLOAT, json!("1.5E+0")), ParamValue::Float(1.5));
    assert_eq!(ok(&FLOAT, json!(2)), ParamValue::Float(2.0));
    assert_eq!(ok(&FLOAT, json!(0.5)), ParamValue::Float(0.5));
    for bad in [
        "nan", "NaN", "inf", "-inf", "infinity", ".5", "5.", "+1", "1e", "1e+", "1.2.3", " 1",
        "1 ", "0x1", "1_0", "١", "", "-", "e5",
    ] {
        assert!(
            matches!(refused(&FLOAT, json!(bad)), Refusal::Invalid(_)),
            "{bad:?}"
        );
    }
    for bad in [json!(true), json!(null), json!([1.0])] {
        assert!(matches!(refused(&FLOAT, bad), Refusal::Invalid(_)));
    }
}

#[test]
fn float_must_be_finite_and_bounded() {
    let wide = ParamKind::Float {
        min: f64::MIN,
        max: f64::MAX,
    };
    assert!(matches!(
        refused(&wide, json!("1e999")),
        Refusal::Invalid(_)
    ));
    assert_eq!(ok(&FLOAT, json!(-1.5)), ParamValue::Float(-1.5));
    assert_eq!(ok(&FLOAT, json!("2.5")), ParamValue::Float(2.5));
    assert_eq!(
        refused(&FLOAT, json!("2.5000001")),
        Refusal::OutOfBounds {
            min: "-1.5".into(),
            max: "2.5".into()
        }
    );
    assert!(matches!(
        refused(&FLOAT, json!(-1.6)),
        Refusal::OutOfBounds { .. }
    ));
}

#[test]
fn float_canonical_string_round_trips() {
    let wide = ParamKind::Float {
        min: -1e300,
        max: 1e300,
    };
    for x in [0.1, -2.5, 1e-7, 123456.789, 1e20, 3.0] {
        let value = ok(&wide, json!(x));
        let again = ok(&wide, json!(value.to_string()));
        assert_eq!(value, again, "{x}");
    }
    assert_eq!(ok(&wide, json!("-0")).to_string(), "0");
    assert_eq!(ok(&wide, json!(3.0)).to_string(), "3");
}

#[test]
fn bool_is_exact() {
    assert_eq!(ok(&ParamKind::Bool, json!("true")), ParamValue::Bool(true));
    assert_eq!(ok(&ParamKind::Bool, json!(false)), ParamValue::Bool(false));
    for bad in [
        json!("True"),
        json!("yes"),
        json!("1"),
        json!(1),
        json!(" true"),
        json!(null),
    ] {
        assert!(matches!(
            refused(&ParamKind::Bool, bad),
            Refusal::Invalid(_)
        ));
    }
}

#[test]
fn enum_is_exact() {
    let kind = ParamKind::Enum {
        values: vec!["e8".into(), "d4".into()],
    };
    assert_eq!(ok(&kind, json!("e8")), ParamValue::Enum("e8".into()));
    for bad in [json!("E8"), json!("e8 "), json!(""), json!(8), json!(null)] {
        assert!(matches!(refused(&kind, bad), Refusal::Invalid(_)));
    }
}

#[test]
fn path_rules_and_under() {
    let kind = ParamKind::Path {
        under: Some("tests".into()),
    };
    assert_eq!(
        ok(&kind, json!("tests/./a//b.rs")),
        ParamValue::Path("tests/a/b.rs".into())
    );
    assert_eq!(ok(&kind, json!("tests")), ParamValue::Path("tests".into()));
    assert_eq!(
        ok(&kind, json!("./tests/")),
        ParamValue::Path("tests".into())
    );
    for bad in [
        "testsuite/x",
        "src/x",
        "/tests/x",
        "~/tests",
        "tests/../src",
        "tests\\x",
    ] {
        assert!(
            matches!(refused(&kind, json!(bad)), Refusal::Path(_)),
            "{bad:?}"
        );
    }
    assert!(matches!(refused(&kind, json!(3)), Refusal::Invalid(_)));
}

#[test]
fn strings_are_bounded_and_printable() {
    let kind = ParamKind::Path { under: None };
    assert!(check_value(&kind, &json!("a".repeat(MAX_STRING_BYTES))).is_ok());
    assert!(matches!(
        refused(&kind, json!("a".repeat(MAX_STRING_BYTES + 1))),
        Refusal::Invalid(_)
    ));
    for bad in ["a\u{7}", "a\u{7f}", "a\u{85}", "a\tb", "a\r"] {
        assert!(
            matches!(refused(&kind, json!(bad)), Refusal::Invalid(_)),
            "{bad:?}"
        );
    }
}

#[test]
fn validated_params_views() {
    let mut values = BTreeMap::new();
    values.insert("ms".to_owned(), ParamValue::Int(5));
    values.insert("ratio".to_owned(), ParamValue::Float(0.5));
    values.insert("fast".to_owned(), ParamValue::Bool(true));
    values.insert("p".to_owned(), ParamValue::Path("tests/x".into()));
    let params = ValidatedParams::new("demo".into(), values);
    assert_eq!(params.preset(), "demo");
    assert_eq!(params.get("ms"), Some(&ParamValue::Int(5)));
    assert_eq!(params.get("nope"), None);
    assert_eq!(params.to_strings()["ratio"], "0.5");
    let expected = json!({"ms": 5, "ratio": 0.5, "fast": true, "p": "tests/x"});
    assert_eq!(params.to_json(), expected);
    assert_eq!(serde_json::to_value(&params).unwrap(), expected);
}
