//! Kind-specific rules. Each kind lives in its own module and registers one [`KindRules`].
//! A kind that is not registered here fails the gate: the gate never waves through what it
//! does not understand.

use serde_json::{Map, Value};

use crate::verdict::Violation;

mod acceptance_bench;
mod codec_bench;
mod codec_eval;
mod drafter_parity;
mod env_probe;
mod generate;
mod kv_quant_eval;
mod model_info;
mod niah;
mod sleep;
mod spec_decode;

pub(crate) struct KindRules {
    pub kind: &'static str,
    /// Body versions this gate knows how to judge.
    pub versions: &'static [u64],
    pub check: fn(&Map<String, Value>, &mut Vec<Violation>),
}

const KINDS: &[KindRules] = &[
    acceptance_bench::RULES,
    codec_bench::RULES,
    codec_eval::RULES,
    drafter_parity::RULES,
    env_probe::RULES,
    generate::RULES,
    kv_quant_eval::RULES,
    model_info::RULES,
    niah::RULES,
    sleep::RULES,
    spec_decode::RULES,
];

/// Every report kind the gate can judge, with the schema versions it accepts.
pub fn known_kinds() -> Vec<(&'static str, &'static [u64])> {
    KINDS.iter().map(|k| (k.kind, k.versions)).collect()
}

pub(crate) fn check(
    kind: &str,
    version: u64,
    report: &Map<String, Value>,
    out: &mut Vec<Violation>,
) {
    let Some(rules) = KINDS.iter().find(|k| k.kind == kind) else {
        out.push(Violation::new(
            "UNKNOWN_KIND",
            format!("the gate has no rules for kind `{kind}`"),
        ));
        return;
    };
    if !rules.versions.contains(&version) {
        out.push(Violation::new(
            "SCHEMA_VERSION",
            format!(
                "kind `{kind}` schema_version {version} is not one of {:?}",
                rules.versions
            ),
        ));
        return;
    }
    (rules.check)(report, out);
}

/// A finite number at a dotted path, or a recorded violation.
pub(crate) fn number(
    report: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) -> Option<f64> {
    match lookup(report, path) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                out.push(Violation::new(
                    "NON_FINITE",
                    format!("`{path}` is not finite"),
                ));
                None
            }
        },
        Some(_) => {
            out.push(Violation::new(
                "SCHEMA",
                format!("`{path}` must be a number"),
            ));
            None
        }
        None => {
            out.push(Violation::new("SCHEMA", format!("`{path}` is missing")));
            None
        }
    }
}

/// A value at a dotted path, or a recorded violation.
pub(crate) fn require<'a>(
    report: &'a Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) -> Option<&'a Value> {
    let found = lookup(report, path);
    if found.is_none() {
        out.push(Violation::new("SCHEMA", format!("`{path}` is missing")));
    }
    found
}

pub(crate) fn lookup<'a>(report: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = report.get(parts.next()?)?;
    for part in parts {
        current = current.get(part)?;
    }
    Some(current)
}
