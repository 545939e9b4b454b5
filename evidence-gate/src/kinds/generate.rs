//! `generate`: one greedy decode. Timings must be measured (prefill + decode = total,
//! positive when tokens were produced), tokens/s must equal tokens / total seconds, and no
//! more tokens than asked for may appear.

use serde_json::{Map, Value};

use super::{KindRules, lookup, number};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "generate",
    versions: &[1],
    check,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let tokens = match report.get("tokens").and_then(Value::as_array) {
        Some(t) if t.iter().all(|x| x.as_u64().is_some()) => t.len() as f64,
        _ => {
            out.push(Violation::new(
                "SCHEMA",
                "`tokens` must be an array of token ids",
            ));
            return;
        }
    };
    if !report.get("text").is_some_and(Value::is_string) {
        out.push(Violation::new("SCHEMA", "`text` must be a string"));
    }
    if let Some(max) = number(report, "max_new_tokens", out)
        && tokens > max
    {
        out.push(Violation::new(
            "INCONSISTENT",
            format!("{tokens} tokens exceed max_new_tokens {max}"),
        ));
    }
    if lookup(report, "timings_s").is_none() {
        out.push(Violation::new("MISSING_TIMINGS", "`timings_s` is missing"));
        return;
    }
    let (p, d, t) = (
        number(report, "timings_s.prefill", out),
        number(report, "timings_s.decode", out),
        number(report, "timings_s.total", out),
    );
    let tps = number(report, "tokens_per_s", out);
    if let (Some(p), Some(d), Some(t), Some(tps)) = (p, d, t, tps) {
        if p < 0.0 || d < 0.0 || !close(p + d, t) {
            out.push(Violation::new(
                "TIMINGS_INCONSISTENT",
                format!("prefill {p} + decode {d} is not total {t}"),
            ));
        }
        if tokens > 0.0 && t <= 0.0 {
            out.push(Violation::new(
                "NOT_MEASURED",
                "tokens were produced in zero seconds",
            ));
        } else if t > 0.0 && !close(tps, tokens / t) {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("tokens_per_s {tps} is not {tokens}/{t}"),
            ));
        }
    }
}
