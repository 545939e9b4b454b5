//! `drafter_parity`: the drafts of two configurations of one drafter (or one against
//! recorded reference drafts) on the same contexts.
//!
//! Rules: at least one block; every block's `matches` and `mismatch_positions` are recomputed
//! from `a_ids`/`b_ids`; root mismatches are a subset of the mismatches and
//! `prefix_consistent` means "no root mismatch other than the first mismatch"; the totals and
//! `agreement` are recomputed; `passed` must be true, which needs agreement ≥
//! `config.min_agreement` — and exactly 1.0 when `config.exact_configs` is true (identical
//! weights, dtype, device and kernels must draft identically; anything else is a port bug).

use serde_json::{Map, Value};

use super::{KindRules, lookup};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "drafter_parity",
    versions: &[1],
    check,
};

fn ids(v: Option<&Value>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Value::as_u64).collect()
}

fn positions(v: Option<&Value>) -> Option<Vec<usize>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_u64().map(|n| n as usize))
        .collect()
}

/// Returns (matches, positions) of one block, recording violations.
fn check_block(at: &str, b: &Value, out: &mut Vec<Violation>) -> Option<(usize, usize)> {
    let (Some(a), Some(bb)) = (ids(b.get("a_ids")), ids(b.get("b_ids"))) else {
        out.push(Violation::new(
            "SCHEMA",
            format!("{at}: `a_ids` and `b_ids` must be id arrays"),
        ));
        return None;
    };
    let n = a.len().max(bb.len());
    if n == 0 {
        out.push(Violation::new("SCHEMA", format!("{at}: empty drafts")));
        return None;
    }
    let mis: Vec<usize> = (0..n).filter(|&i| a.get(i) != bb.get(i)).collect();
    let matches = n - mis.len();
    if b.get("matches").and_then(Value::as_u64) != Some(matches as u64) {
        out.push(Violation::new(
            "AGREEMENT_MISMATCH",
            format!(
                "{at}: `matches` is {:?}, the ids give {matches}",
                b.get("matches")
            ),
        ));
    }
    if positions(b.get("mismatch_positions")).as_ref() != Some(&mis) {
        out.push(Violation::new(
            "AGREEMENT_MISMATCH",
            format!("{at}: `mismatch_positions` should be {mis:?}"),
        ));
    }
    match (
        positions(b.get("root_mismatch_positions")),
        b.get("prefix_consistent").and_then(Value::as_bool),
    ) {
        (Some(roots), Some(pc)) => {
            if roots.iter().any(|r| !mis.contains(r)) {
                out.push(Violation::new(
                    "AGREEMENT_MISMATCH",
                    format!("{at}: a root mismatch is not a mismatch"),
                ));
            }
            let want = roots.iter().all(|r| Some(r) == mis.first());
            if pc != want {
                out.push(Violation::new(
                    "AGREEMENT_MISMATCH",
                    format!(
                        "{at}: prefix_consistent={pc} but roots {roots:?} vs mismatches {mis:?}"
                    ),
                ));
            }
        }
        _ => out.push(Violation::new(
            "SCHEMA",
            format!("{at}: needs `root_mismatch_positions` and `prefix_consistent`"),
        )),
    }
    Some((matches, n))
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(Value::Array(samples)) = report.get("samples") else {
        out.push(Violation::new("SCHEMA", "`samples` must be an array"));
        return;
    };
    let (mut agreed, mut total) = (0usize, 0usize);
    for (i, s) in samples.iter().enumerate() {
        let Some(Value::Array(blocks)) = s.get("blocks") else {
            out.push(Violation::new(
                "SCHEMA",
                format!("samples[{i}].blocks must be an array"),
            ));
            continue;
        };
        for (j, b) in blocks.iter().enumerate() {
            if let Some((m, n)) = check_block(&format!("samples[{i}].blocks[{j}]"), b, out) {
                agreed += m;
                total += n;
            }
        }
    }
    if total == 0 {
        out.push(Violation::new("SAMPLES", "no drafted positions"));
        return;
    }
    let agreement = agreed as f64 / total as f64;
    let num = |k: &str| report.get(k).and_then(Value::as_f64);
    if num("agreed_tokens") != Some(agreed as f64) || num("total_tokens") != Some(total as f64) {
        out.push(Violation::new(
            "SUMMARY_MISMATCH",
            format!("agreed/total tokens should be {agreed}/{total}"),
        ));
    }
    if num("agreement").is_none_or(|a| (a - agreement).abs() > 1e-9) {
        out.push(Violation::new(
            "SUMMARY_MISMATCH",
            format!("`agreement` should be {agreement}"),
        ));
    }
    let min = lookup(report, "config.min_agreement").and_then(Value::as_f64);
    let exact = lookup(report, "config.exact_configs").and_then(Value::as_bool);
    let (Some(min), Some(exact)) = (min, exact) else {
        out.push(Violation::new(
            "SCHEMA",
            "`config.min_agreement` (number) and `config.exact_configs` (bool) are required",
        ));
        return;
    };
    if exact && agreed != total {
        out.push(Violation::new(
            "NOT_EXACT",
            format!(
                "identical configurations drafted differently: {agreed}/{total} positions agree"
            ),
        ));
    }
    if agreement < min {
        out.push(Violation::new(
            "BELOW_THRESHOLD",
            format!("agreement {agreement:.4} is below min_agreement {min}"),
        ));
    }
    let passed = agreement >= min && (!exact || agreed == total);
    if report.get("passed").and_then(Value::as_bool) != Some(passed) {
        out.push(Violation::new(
            "SUMMARY_MISMATCH",
            format!("`passed` should be {passed}"),
        ));
    }
}
