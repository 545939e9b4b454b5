//! `acceptance_bench`: the acceptance-rate benchmark (`kakeya bench acceptance`).
//!
//! Rules: at least one row; every row lossless (the summary agrees); each row carries its
//! raw counts and timings, and its tokens/s both ways and `speedup_vs_ar` are recomputed
//! from them; the accepted-length statistics are consistent (Σ accepted = tokens, mean =
//! Σ/blocks, 1 ≤ p50 ≤ p95 ≤ block size); the synthetic `replay` drafter is marked
//! synthetic, and synthetic rows never count as drafter evidence: the summary's best
//! speedup per drafter must come from real rows only, recomputed here.

use serde_json::{Map, Value};

use super::{KindRules, number};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "acceptance_bench",
    versions: &[1],
    check,
};

/// Drafters that know the answer; their rows measure the loop, not a drafter.
const SYNTHETIC: &[&str] = &["replay"];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-12)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(Value::Array(rows)) = report.get("rows") else {
        out.push(Violation::new("SCHEMA", "`rows` must be an array"));
        return;
    };
    if rows.is_empty() {
        out.push(Violation::new("SCHEMA", "`rows` is empty"));
    }
    let mut all_lossless = true;
    let mut best: Map<String, Value> = Map::new();
    for (i, r) in rows.iter().enumerate() {
        let Value::Object(r) = r else {
            out.push(Violation::new(
                "SCHEMA",
                format!("rows[{i}] is not an object"),
            ));
            all_lossless = false;
            continue;
        };
        let (lossless, evidence) = check_row(i, r, out);
        all_lossless &= lossless;
        if let Some((drafter, speedup)) = evidence {
            let cur = best.get(&drafter).and_then(Value::as_f64);
            if cur.is_none_or(|c| speedup > c) {
                best.insert(drafter, speedup.into());
            }
        }
    }
    match report.get("summary").and_then(|s| s.get("lossless")) {
        Some(Value::Bool(b)) if *b == all_lossless => {}
        _ => out.push(Violation::new(
            "SUMMARY_MISMATCH",
            format!("`summary.lossless` must be {all_lossless}"),
        )),
    }
    let claimed = report
        .get("summary")
        .and_then(|s| s.get("best_speedup_by_drafter"))
        .and_then(Value::as_object);
    let Some(claimed) = claimed else {
        out.push(Violation::new(
            "SCHEMA",
            "`summary.best_speedup_by_drafter` must be an object",
        ));
        return;
    };
    for (d, v) in claimed {
        if SYNTHETIC.contains(&d.as_str()) {
            out.push(Violation::new(
                "SYNTHETIC_AS_EVIDENCE",
                format!("`summary.best_speedup_by_drafter` counts the synthetic drafter `{d}`"),
            ));
            continue;
        }
        let ok = matches!((v.as_f64(), best.get(d).and_then(Value::as_f64)),
            (Some(a), Some(b)) if close(a, b));
        if !ok {
            out.push(Violation::new(
                "SUMMARY_MISMATCH",
                format!("best speedup of `{d}` is not the best of its real rows"),
            ));
        }
    }
    for d in best.keys().filter(|d| !claimed.contains_key(*d)) {
        out.push(Violation::new(
            "SUMMARY_MISMATCH",
            format!("`summary.best_speedup_by_drafter` leaves out `{d}`"),
        ));
    }
}

/// Returns (lossless, Some((drafter, speedup)) when the row is real drafter evidence).
fn check_row(
    i: usize,
    r: &Map<String, Value>,
    out: &mut Vec<Violation>,
) -> (bool, Option<(String, f64)>) {
    let drafter = r.get("drafter").and_then(Value::as_str);
    let kv = r.get("kv").and_then(Value::as_str);
    let block = r
        .get("block_size")
        .and_then(Value::as_u64)
        .filter(|b| *b > 0);
    let (Some(drafter), Some(_), Some(block)) = (drafter, kv, block) else {
        out.push(Violation::new(
            "SCHEMA",
            format!("rows[{i}] needs `drafter`, `kv` and a positive `block_size`"),
        ));
        return (false, None);
    };
    let synthetic = r.get("synthetic").and_then(Value::as_bool);
    let is_synth = SYNTHETIC.contains(&drafter);
    if synthetic != Some(is_synth) {
        out.push(Violation::new(
            "SYNTHETIC_LABEL",
            format!("rows[{i}] (`{drafter}`) must say `synthetic: {is_synth}`"),
        ));
    }
    let lossless = r.get("lossless") == Some(&Value::Bool(true));
    if !lossless {
        out.push(Violation::new(
            "LOSSY",
            format!("rows[{i}] (`{drafter}`, L={block}) is not lossless"),
        ));
    }
    let mut n = |k: &str| number(r, k, out);
    let fields = [
        n("tokens"),
        n("ar_tokens"),
        n("spec_seconds"),
        n("ar_seconds"),
        n("tokens_per_s"),
        n("ar_tokens_per_s"),
        n("speedup_vs_ar"),
        n("ttft_s"),
        n("blocks"),
        n("accepted_total"),
        n("accept_len_mean"),
        n("accept_len_p50"),
        n("accept_len_p95"),
    ];
    let [
        Some(tok),
        Some(ar_tok),
        Some(spec_s),
        Some(ar_s),
        Some(tps),
        Some(ar_tps),
        Some(speedup),
        Some(ttft),
        Some(blocks),
        Some(acc),
        Some(mean),
        Some(p50),
        Some(p95),
    ] = fields
    else {
        return (lossless, None);
    };
    if spec_s <= 0.0 || ar_s <= 0.0 || ttft < 0.0 {
        out.push(Violation::new(
            "NOT_MEASURED",
            format!("rows[{i}]: timings must be positive"),
        ));
    }
    let want_tps = ratio(tok, spec_s);
    let want_ar = ratio(ar_tok, ar_s);
    for (name, got, want) in [
        ("tokens_per_s", tps, want_tps),
        ("ar_tokens_per_s", ar_tps, want_ar),
        ("speedup_vs_ar", speedup, ratio(want_tps, want_ar)),
    ] {
        if !close(got, want) {
            out.push(Violation::new(
                "DERIVED_MISMATCH",
                format!("rows[{i}].{name} is {got}, the raw timings give {want}"),
            ));
        }
    }
    let b = block as f64;
    if !close(acc, tok) || !close(mean, ratio(acc, blocks)) {
        out.push(Violation::new(
            "DERIVED_MISMATCH",
            format!("rows[{i}]: accepted lengths do not add up to the tokens or the mean"),
        ));
    }
    if tok > 0.0 && !(1.0 <= p50 && p50 <= p95 && p95 <= b && mean <= b) {
        out.push(Violation::new(
            "DERIVED_MISMATCH",
            format!("rows[{i}]: accepted-length statistics are outside 1..=block size"),
        ));
    }
    let evidence = (!is_synth && synthetic == Some(false)).then(|| (drafter.to_string(), speedup));
    (lossless, evidence)
}
