//! `codec_eval`: the lattice codec and its baselines on the same data. The gate recomputes
//! what can be recomputed: the accounted bits from the formula for the stated D and Q (and
//! the baselines' own formulas), bits per value from bits, packed bits from bytes, throughput
//! from rows and seconds; it requires every arm and data source, rel-MSE finite and
//! non-increasing as Q grows per variant, and packed decode identical to the round trip.

use serde_json::{Map, Value};

use super::{KindRules, number};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "codec_eval",
    versions: &[1],
    check,
};

const SOURCES: &[&str] = &["gaussian", "student_t3", "outlier_channels"];
const BASELINES: &[&str] = &[
    "identity",
    "affine8",
    "affine4",
    "turboquant_b3",
    "turboquant_b4",
];
const LATTICE_Q: &[u64] = &[4, 10, 38, 152];

/// Accounted bits of a lattice arm: (D/bd)·⌈b_real(Q)⌉ + 32, with the ceiling taken exactly
/// (⌈log₂ M⁸⌉ is the bit length of M⁸ because M = 2Q+1 is odd).
pub(crate) fn lattice_bits(variant: &str, dim: u64, q: u64) -> Option<u64> {
    let m = 2 * u128::from(q) + 1;
    let (bd, block) = match variant {
        "e8" => (8, u64::from(128 - m.checked_pow(8)?.leading_zeros())),
        "d4" => (4, u64::from(127 - m.checked_pow(4)?.leading_zeros())),
        _ => return None,
    };
    Some(dim / bd * block + 32)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let dim = number(report, "dim", out);
    let rows = number(report, "rows", out);
    let (Some(dim), Some(rows)) = (dim, rows) else {
        return;
    };
    if dim < 8.0 || dim.fract() != 0.0 || !(dim as u64).is_power_of_two() {
        out.push(Violation::new(
            "SCHEMA",
            format!("`dim` {dim} is not a power of two ≥ 8"),
        ));
        return;
    }
    if rows < 1.0 || rows.fract() != 0.0 {
        out.push(Violation::new(
            "SCHEMA",
            format!("`rows` {rows} is not a positive integer"),
        ));
        return;
    }
    let Some(Value::Array(sources)) = report.get("sources") else {
        out.push(Violation::new("SCHEMA", "`sources` must be an array"));
        return;
    };
    for want in SOURCES {
        if !sources
            .iter()
            .any(|s| s.get("source").and_then(Value::as_str) == Some(want))
        {
            out.push(Violation::new(
                "INCOMPLETE",
                format!("data source `{want}` is missing"),
            ));
        }
    }
    for source in sources {
        let name = source.get("source").and_then(Value::as_str).unwrap_or("?");
        let Some(Value::Array(arms)) = source.get("arms") else {
            out.push(Violation::new(
                "SCHEMA",
                format!("source `{name}`: `arms` must be an array"),
            ));
            continue;
        };
        check_source(name, arms, dim as u64, rows, out);
    }
}

fn check_source(source: &str, arms: &[Value], dim: u64, rows: f64, out: &mut Vec<Violation>) {
    let names: Vec<&str> = arms
        .iter()
        .filter_map(|a| a.get("arm").and_then(Value::as_str))
        .collect();
    for want in BASELINES {
        if !names.contains(want) {
            out.push(Violation::new(
                "INCOMPLETE",
                format!("{source}: arm `{want}` is missing"),
            ));
        }
    }
    // rel-MSE per (variant, Q), to test monotonicity afterwards.
    let mut curve: Vec<(String, u64, f64)> = Vec::new();
    for arm in arms {
        let Value::Object(a) = arm else {
            out.push(Violation::new(
                "SCHEMA",
                format!("{source}: an arm is not an object"),
            ));
            continue;
        };
        let label = format!(
            "{source}/{}",
            a.get("arm").and_then(Value::as_str).unwrap_or("?")
        );
        let mut num = |f: &'static str| number(a, f, out).map(|v| (f, v));
        let fields: Vec<Option<(&str, f64)>> = [
            "accounted_bits",
            "accounted_bits_per_value",
            "packed_bytes",
            "packed_bits_per_vector",
            "packed_bits_per_value",
            "escaped_blocks",
            "rel_mse",
            "max_abs_error",
            "encode_seconds",
            "decode_seconds",
            "encode_vectors_per_s",
            "decode_vectors_per_s",
            "packed_mismatched_values",
        ]
        .into_iter()
        .map(&mut num)
        .collect();
        if fields.iter().any(Option::is_none) {
            continue;
        }
        let g = |f: &str| {
            fields
                .iter()
                .flatten()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| *v)
                .unwrap_or(f64::NAN)
        };
        let family = a.get("family").and_then(Value::as_str).unwrap_or("");
        let int = |f: &str| a.get(f).and_then(Value::as_u64);
        let expected = match family {
            "identity" => Some(32 * dim),
            "affine" => match (int("b"), int("group")) {
                (Some(b), Some(gr)) if gr > 0 && dim.is_multiple_of(gr) => {
                    Some(dim * b + dim / gr * 32)
                }
                _ => None,
            },
            "turboquant" => int("b").map(|b| dim * b + 32),
            "lattice" => match (a.get("variant").and_then(Value::as_str), int("q")) {
                (Some(v), Some(q)) if q >= 1 => {
                    curve.push((v.to_string(), q, g("rel_mse")));
                    lattice_bits(v, dim, q)
                }
                _ => None,
            },
            _ => None,
        };
        match expected {
            Some(bits) if bits as f64 == g("accounted_bits") => {}
            Some(bits) => out.push(Violation::new(
                "INCONSISTENT",
                format!(
                    "{label}: accounted_bits {} but the formula gives {bits}",
                    g("accounted_bits")
                ),
            )),
            None => out.push(Violation::new(
                "SCHEMA",
                format!("{label}: family `{family}` lacks the parameters its bit formula needs"),
            )),
        }
        let acc = g("accounted_bits");
        let packed = g("packed_bits_per_vector");
        let mut inconsistent = |ok: bool, what: String| {
            if !ok {
                out.push(Violation::new("INCONSISTENT", format!("{label}: {what}")));
            }
        };
        inconsistent(
            close(g("accounted_bits_per_value"), acc / dim as f64, 1e-9),
            "accounted_bits_per_value ≠ accounted_bits / dim".into(),
        );
        inconsistent(
            close(g("packed_bits_per_value"), packed / dim as f64, 1e-9),
            "packed_bits_per_value ≠ packed_bits_per_vector / dim".into(),
        );
        inconsistent(
            close(g("packed_bytes") * 8.0 / rows, packed, 1e-9),
            "packed_bits_per_vector ≠ 8·packed_bytes / rows".into(),
        );
        inconsistent(
            packed + 1e-9 >= acc,
            format!("packed {packed} bits per vector is below the accounted {acc}"),
        );
        if g("escaped_blocks") == 0.0 {
            let padded = ((acc / 8.0).ceil()) * 8.0;
            inconsistent(
                close(packed, padded, 1e-9),
                format!(
                    "no escapes, yet packed {packed} ≠ accounted {acc} rounded up to bytes ({padded})"
                ),
            );
        }
        inconsistent(
            g("rel_mse") >= 0.0 && g("max_abs_error") >= 0.0,
            "rel_mse and max_abs_error must be ≥ 0".into(),
        );
        if family == "identity" {
            inconsistent(
                g("rel_mse") == 0.0,
                "identity must reproduce its input exactly".into(),
            );
        }
        for op in ["encode", "decode"] {
            let s = g(&format!("{op}_seconds"));
            let v = g(&format!("{op}_vectors_per_s"));
            inconsistent(
                s > 0.0 && close(v, rows / s, 1e-6),
                format!("{op}_vectors_per_s {v} ≠ rows / {op}_seconds"),
            );
        }
        if a.get("packed_decode_equals_roundtrip") != Some(&Value::Bool(true))
            || g("packed_mismatched_values") != 0.0
        {
            out.push(Violation::new(
                "PACKED_MISMATCH",
                format!("{label}: packed decode differs from the round trip"),
            ));
        }
    }
    for variant in ["d4", "e8"] {
        let mut pts: Vec<(u64, f64)> = curve
            .iter()
            .filter(|c| c.0 == variant)
            .map(|c| (c.1, c.2))
            .collect();
        pts.sort_by_key(|p| p.0);
        for q in LATTICE_Q {
            if !pts.iter().any(|p| p.0 == *q) {
                out.push(Violation::new(
                    "INCOMPLETE",
                    format!("{source}: {variant} at Q={q} is missing"),
                ));
            }
        }
        for w in pts.windows(2) {
            if w[1].1 > w[0].1 {
                out.push(Violation::new(
                    "NOT_MONOTONE",
                    format!(
                        "{source}: {variant} rel-MSE rises from {} at Q={} to {} at Q={}",
                        w[0].1, w[0].0, w[1].1, w[1].0
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bits() {
        let e8: Vec<u64> = [38, 10, 4, 152]
            .iter()
            .filter_map(|&q| lattice_bits("e8", 128, q))
            .collect();
        assert_eq!(e8, [848, 608, 448, 1104]);
        let d4: Vec<u64> = [4, 10, 38, 152]
            .iter()
            .filter_map(|&q| lattice_bits("d4", 128, q))
            .collect();
        assert_eq!(d4, [416, 576, 832, 1088]);
        assert_eq!(lattice_bits("e8", 64, 38), Some(440));
    }
}
