//! `spec_decode`: speculative decoding next to plain greedy decoding of the same prompts.
//!
//! Rules: at least [`MIN_SAMPLES`] samples; every sample lossless (`tokens == ar_tokens`)
//! and the summary's `lossless` agrees; every sample carries measured timings (spec
//! prefill/draft/verify/total, AR prefill/decode/total; positive totals, parts not exceeding
//! the total); per-block bookkeeping adds up (Σ accepted = tokens, 1 ≤ a ≤ L ≤ block_size);
//! and every derived summary number — mean accept length, tokens/s both ways, speedup — is
//! recomputed here from the raw per-sample numbers and must match.

use serde_json::{Map, Value};

use super::{KindRules, lookup, number};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "spec_decode",
    versions: &[1],
    check,
};

/// Timings on a shared CPU move by tens of percent run to run; a ratio from fewer runs than
/// this is not evidence (the engine's default: 3 repeats of one prompt).
pub const MIN_SAMPLES: usize = 3;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-12)
}

fn ids(v: Option<&Value>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Value::as_u64).collect()
}

#[derive(Default)]
struct Totals {
    tokens: f64,
    ar_tokens: f64,
    accepted: f64,
    blocks: f64,
    spec_s: f64,
    ar_s: f64,
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(Value::Array(samples)) = report.get("samples") else {
        out.push(Violation::new("SCHEMA", "`samples` must be an array"));
        return;
    };
    if samples.len() < MIN_SAMPLES {
        out.push(Violation::new(
            "SAMPLES",
            format!(
                "{} samples; at least {MIN_SAMPLES} are needed",
                samples.len()
            ),
        ));
    }
    let block_size = lookup(report, "config.block_size").and_then(Value::as_u64);
    if block_size.is_none_or(|b| b == 0) {
        out.push(Violation::new(
            "SCHEMA",
            "`config.block_size` must be a positive integer",
        ));
    }
    let mut t = Totals::default();
    let mut all_lossless = true;
    for (i, s) in samples.iter().enumerate() {
        let Value::Object(s) = s else {
            out.push(Violation::new(
                "SCHEMA",
                format!("samples[{i}] is not an object"),
            ));
            continue;
        };
        all_lossless &= check_sample(i, s, block_size.unwrap_or(u64::MAX), &mut t, out);
    }
    check_summary(report, &t, all_lossless, out);
}

/// Returns whether the sample is lossless.
fn check_sample(
    i: usize,
    s: &Map<String, Value>,
    block_size: u64,
    t: &mut Totals,
    out: &mut Vec<Violation>,
) -> bool {
    let (Some(tokens), Some(ar)) = (ids(s.get("tokens")), ids(s.get("ar_tokens"))) else {
        out.push(Violation::new(
            "SCHEMA",
            format!("samples[{i}]: `tokens` and `ar_tokens` must be arrays of token ids"),
        ));
        return false;
    };
    let lossless = tokens == ar;
    if !lossless {
        let at = tokens
            .iter()
            .zip(&ar)
            .position(|(a, b)| a != b)
            .unwrap_or(tokens.len().min(ar.len()));
        out.push(Violation::new(
            "LOSSY",
            format!("samples[{i}]: speculative tokens differ from the plain decode at index {at}"),
        ));
    }
    let timing = |path: &str, out: &mut Vec<Violation>| -> Option<f64> {
        match lookup(s, path) {
            None => {
                out.push(Violation::new(
                    "MISSING_TIMINGS",
                    format!("samples[{i}].{path} is missing"),
                ));
                None
            }
            Some(_) => number(s, path, out).filter(|x| {
                let ok = *x >= 0.0;
                if !ok {
                    out.push(Violation::new(
                        "NOT_MEASURED",
                        format!("samples[{i}].{path} is negative"),
                    ));
                }
                ok
            }),
        }
    };
    let parts: Vec<Option<f64>> = [
        "timings_s.prefill",
        "timings_s.draft",
        "timings_s.verify",
        "timings_s.total",
    ]
    .iter()
    .map(|p| timing(p, out))
    .collect();
    let ar_parts: Vec<Option<f64>> = [
        "ar_timings_s.prefill",
        "ar_timings_s.decode",
        "ar_timings_s.total",
    ]
    .iter()
    .map(|p| timing(p, out))
    .collect();
    if let [Some(p), Some(d), Some(v), Some(total)] = parts[..] {
        if total <= 0.0 {
            out.push(Violation::new(
                "NOT_MEASURED",
                format!("samples[{i}]: speculative total time is 0"),
            ));
        } else if p + d + v > total * (1.0 + 1e-6) + 1e-9 {
            out.push(Violation::new(
                "TIMINGS_INCONSISTENT",
                format!(
                    "samples[{i}]: prefill+draft+verify {} exceeds total {total}",
                    p + d + v
                ),
            ));
        }
        t.spec_s += total;
    }
    if let [Some(p), Some(d), Some(total)] = ar_parts[..] {
        if total <= 0.0 {
            out.push(Violation::new(
                "NOT_MEASURED",
                format!("samples[{i}]: AR total time is 0"),
            ));
        } else if !close(p + d, total) {
            out.push(Violation::new(
                "TIMINGS_INCONSISTENT",
                format!(
                    "samples[{i}]: AR prefill+decode {} is not the total {total}",
                    p + d
                ),
            ));
        }
        t.ar_s += total;
    }
    let (Some(acc), Some(lens)) = (ids(s.get("accepted_lens")), ids(s.get("block_lens"))) else {
        out.push(Violation::new(
            "SCHEMA",
            format!("samples[{i}]: `accepted_lens` and `block_lens` must be integer arrays"),
        ));
        return lossless;
    };
    let sum: u64 = acc.iter().sum();
    if sum != tokens.len() as u64 {
        out.push(Violation::new(
            "ACCEPT_MISMATCH",
            format!(
                "samples[{i}]: accepted lengths add up to {sum}, but {} tokens were produced",
                tokens.len()
            ),
        ));
    }
    if acc.len() != lens.len() || s.get("blocks").and_then(Value::as_u64) != Some(acc.len() as u64)
    {
        out.push(Violation::new(
            "ACCEPT_MISMATCH",
            format!("samples[{i}]: `blocks`, `accepted_lens` and `block_lens` disagree on the block count"),
        ));
    }
    if acc
        .iter()
        .zip(&lens)
        .any(|(a, l)| *a < 1 || a > l || *l > block_size)
    {
        out.push(Violation::new(
            "ACCEPT_MISMATCH",
            format!(
                "samples[{i}]: an accepted length is outside 1..=L or L exceeds the block size"
            ),
        ));
    }
    t.tokens += tokens.len() as f64;
    t.ar_tokens += ar.len() as f64;
    t.accepted += sum as f64;
    t.blocks += acc.len() as f64;
    lossless
}

fn check_summary(
    report: &Map<String, Value>,
    t: &Totals,
    all_lossless: bool,
    out: &mut Vec<Violation>,
) {
    match lookup(report, "summary.lossless") {
        Some(Value::Bool(true)) if all_lossless => {}
        Some(Value::Bool(true)) => out.push(Violation::new(
            "LOSSY",
            "summary.lossless is true but a sample's tokens differ from its plain decode",
        )),
        Some(Value::Bool(false)) => out.push(Violation::new("LOSSY", "summary.lossless is false")),
        _ => out.push(Violation::new(
            "SCHEMA",
            "`summary.lossless` must be a boolean",
        )),
    }
    if t.tokens <= 0.0 {
        out.push(Violation::new("NO_TOKENS", "no sample produced any token"));
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let tps = ratio(t.tokens, t.spec_s);
    let ar_tps = ratio(t.ar_tokens, t.ar_s);
    let expect = [
        ("summary.mean_accept_len", ratio(t.accepted, t.blocks)),
        ("summary.tokens_per_s", tps),
        ("summary.ar_tokens_per_s", ar_tps),
        ("summary.speedup_vs_ar", ratio(tps, ar_tps)),
    ];
    for (path, want) in expect {
        if let Some(got) = number(report, path, out)
            && !close(got, want)
        {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("`{path}` is {got} but the samples' measurements give {want}"),
            ));
        }
    }
}

/// A valid provenance block for the kinds' unit tests.
#[cfg(test)]
pub(crate) fn test_provenance() -> Value {
    serde_json::json!({"engine_version": "0.1.0", "device": "cpu", "params": {}, "model_digests": {},
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:05Z", "host": {}})
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::gate::check_report_bytes;

    use super::test_provenance as provenance;

    fn sample() -> serde_json::Value {
        json!({"tokens": [5, 6, 7, 8, 9], "ar_tokens": [5, 6, 7, 8, 9], "blocks": 2,
               "accepted_lens": [4, 1], "block_lens": [4, 1],
               "timings_s": {"prefill": 0.1, "draft": 0.2, "verify": 0.3, "total": 1.0},
               "ar_timings_s": {"prefill": 0.1, "decode": 0.9, "total": 1.0}})
    }

    fn report() -> serde_json::Value {
        // 15 tokens in 3 s both ways; 15 accepted over 6 blocks.
        json!({"kind": "spec_decode", "schema_version": 1, "provenance": provenance(),
               "config": {"block_size": 4},
               "samples": [sample(), sample(), sample()],
               "summary": {"lossless": true, "mean_accept_len": 2.5, "tokens_per_s": 5.0,
                           "ar_tokens_per_s": 5.0, "speedup_vs_ar": 1.0}})
    }

    fn codes(r: &serde_json::Value) -> Vec<String> {
        let v = check_report_bytes("r", r.to_string().as_bytes());
        v.violations.into_iter().map(|v| v.code).collect()
    }

    #[test]
    fn passing_report_passes() {
        assert_eq!(codes(&report()), Vec::<String>::new());
    }

    #[test]
    fn each_rule_fires() {
        let mut r = report();
        r["samples"][1]["tokens"] = json!([5, 6, 7, 8, 1]);
        assert!(codes(&r).contains(&"LOSSY".to_string()));
        let mut r = report();
        r["summary"]["lossless"] = json!(false);
        assert!(codes(&r).contains(&"LOSSY".to_string()));
        let mut r = report();
        r["samples"].as_array_mut().unwrap().pop();
        assert!(codes(&r).contains(&"SAMPLES".to_string()));
        let mut r = report();
        r["samples"][0].as_object_mut().unwrap().remove("timings_s");
        assert!(codes(&r).contains(&"MISSING_TIMINGS".to_string()));
        let mut r = report();
        r["samples"][0]["ar_timings_s"]["total"] = json!(0.0);
        assert!(codes(&r).contains(&"NOT_MEASURED".to_string()));
        let mut r = report();
        r["summary"]["speedup_vs_ar"] = json!(1.5);
        assert!(codes(&r).contains(&"INCONSISTENT".to_string()));
        let mut r = report();
        r["summary"]["mean_accept_len"] = json!(3.0);
        assert!(codes(&r).contains(&"INCONSISTENT".to_string()));
        let mut r = report();
        r["samples"][2]["accepted_lens"] = json!([3, 1]);
        assert!(codes(&r).contains(&"ACCEPT_MISMATCH".to_string()));
        let mut r = report();
        r["samples"][2]["block_lens"] = json!([5, 1]);
        assert!(codes(&r).contains(&"ACCEPT_MISMATCH".to_string()));
        let mut r = report();
        r["samples"][0]["timings_s"]["draft"] = json!(2.0);
        assert!(codes(&r).contains(&"TIMINGS_INCONSISTENT".to_string()));
    }
}
