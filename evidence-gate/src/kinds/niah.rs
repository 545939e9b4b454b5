//! `niah`: needle-in-a-haystack recall through KV channels, the raw cache as the oracle.
//!
//! Rules: the raw channel is present and every (context length, depth, trial) answered by a
//! compressed channel was also answered raw; each sample's `hit` is recomputed from its
//! decoded answer and value (case-sensitive substring), its `agrees_with_raw` and
//! `first_divergence` from its ids and the raw sample's ids; the raw channel holds its own
//! answer; bytes and timings are measured (non-negative, raw bytes positive); every cell's
//! `recall` / `agrees_with_raw` and `summary.recall_by_kv` are recomputed from the samples.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::{KindRules, lookup};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "niah",
    versions: &[1],
    check,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-9 * a.abs().max(b.abs())
}

fn ids(v: Option<&Value>) -> Option<Vec<u64>> {
    v?.as_array()?.iter().map(Value::as_u64).collect()
}

/// The (length, depth, trial) a sample answers, as a map key.
fn cell_key(s: &Map<String, Value>) -> Option<(u64, String, u64)> {
    Some((
        s.get("context_len")?.as_u64()?,
        format!("{:.12}", s.get("depth")?.as_f64()?),
        s.get("trial")?.as_u64()?,
    ))
}

struct Sample<'a> {
    i: usize,
    kv: String,
    key: (u64, String, u64),
    depth: f64,
    answer: Vec<u64>,
    hit: bool,
    agrees: bool,
    raw: &'a Map<String, Value>,
}

fn parse_sample<'a>(i: usize, v: &'a Value, out: &mut Vec<Violation>) -> Option<Sample<'a>> {
    let bad = |out: &mut Vec<Violation>, m: &str| {
        out.push(Violation::new("SCHEMA", format!("samples[{i}]: {m}")));
    };
    let Value::Object(s) = v else {
        bad(out, "not an object");
        return None;
    };
    let (Some(kv), Some(key), Some(answer)) = (
        s.get("kv").and_then(Value::as_str),
        cell_key(s),
        ids(s.get("answer_ids")),
    ) else {
        bad(
            out,
            "needs `kv`, `context_len`, `depth`, `trial` and `answer_ids`",
        );
        return None;
    };
    let depth = s.get("depth").and_then(Value::as_f64).unwrap_or(-1.0);
    if !(0.0..=1.0).contains(&depth) || key.0 == 0 {
        bad(out, "depth must be in [0, 1] and context_len positive");
    }
    let (Some(text), Some(value), Some(hit), Some(agrees)) = (
        s.get("answer_text").and_then(Value::as_str),
        s.get("value").and_then(Value::as_str),
        s.get("hit").and_then(Value::as_bool),
        s.get("agrees_with_raw").and_then(Value::as_bool),
    ) else {
        bad(
            out,
            "needs `answer_text`, `value`, `hit` and `agrees_with_raw`",
        );
        return None;
    };
    if value.is_empty() {
        bad(out, "`value` is empty (every answer would contain it)");
    }
    if text.contains(value) != hit {
        out.push(Violation::new(
            "RECALL_MISMATCH",
            format!(
                "samples[{i}]: hit={hit} but the value {value:?} is {}in the answer {text:?}",
                if hit { "not " } else { "" }
            ),
        ));
    }
    for field in ["kv_bytes_held", "kv_bytes_raw", "prefill_s", "decode_s"] {
        match s.get(field).and_then(Value::as_f64) {
            Some(x) if x.is_finite() && x >= 0.0 => {}
            _ => out.push(Violation::new(
                "NOT_MEASURED",
                format!("samples[{i}].{field} must be a non-negative number"),
            )),
        }
    }
    if s.get("kv_bytes_raw")
        .and_then(Value::as_f64)
        .is_some_and(|x| x <= 0.0)
    {
        out.push(Violation::new(
            "NOT_MEASURED",
            format!("samples[{i}]: no raw KV bytes"),
        ));
    }
    Some(Sample {
        i,
        kv: kv.to_string(),
        key,
        depth,
        answer,
        hit,
        agrees,
        raw: s,
    })
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(Value::Array(raw_samples)) = report.get("samples") else {
        out.push(Violation::new("SCHEMA", "`samples` must be an array"));
        return;
    };
    if raw_samples.is_empty() {
        out.push(Violation::new("SAMPLES", "no samples"));
        return;
    }
    let samples: Vec<Sample> = raw_samples
        .iter()
        .enumerate()
        .filter_map(|(i, v)| parse_sample(i, v, out))
        .collect();
    let mut oracle: HashMap<&(u64, String, u64), &Vec<u64>> = HashMap::new();
    for s in samples.iter().filter(|s| s.kv == "raw") {
        if oracle.insert(&s.key, &s.answer).is_some() {
            out.push(Violation::new(
                "DUPLICATE",
                format!("samples[{}]: a second raw answer for the same prompt", s.i),
            ));
        }
    }
    if oracle.is_empty() {
        out.push(Violation::new(
            "NO_ORACLE",
            "no raw-cache samples: the oracle is missing",
        ));
    }
    for s in &samples {
        let Some(reference) = oracle.get(&s.key) else {
            out.push(Violation::new(
                "NO_ORACLE",
                format!(
                    "samples[{}] ({}): no raw-cache answer for the same prompt",
                    s.i, s.kv
                ),
            ));
            continue;
        };
        let equal = s.answer == **reference;
        if equal != s.agrees {
            out.push(Violation::new(
                "AGREEMENT_MISMATCH",
                format!(
                    "samples[{}]: agrees_with_raw={} but the ids {} the raw answer",
                    s.i,
                    s.agrees,
                    if equal { "equal" } else { "differ from" }
                ),
            ));
        }
        let div = s
            .answer
            .iter()
            .zip(reference.iter())
            .position(|(a, b)| a != b)
            .or((s.answer.len() != reference.len()).then(|| s.answer.len().min(reference.len())));
        let claimed = s
            .raw
            .get("first_divergence")
            .and_then(Value::as_u64)
            .map(|x| x as usize);
        if claimed != div {
            out.push(Violation::new(
                "AGREEMENT_MISMATCH",
                format!(
                    "samples[{}]: first_divergence {claimed:?}, recomputed {div:?}",
                    s.i
                ),
            ));
        }
    }
    check_cells(report, &samples, out);
    check_summary(report, &samples, out);
}

fn rate(xs: impl Iterator<Item = bool>) -> Option<f64> {
    let (mut n, mut k) = (0usize, 0usize);
    for x in xs {
        n += 1;
        k += usize::from(x);
    }
    (n > 0).then(|| k as f64 / n as f64)
}

fn check_cells(report: &Map<String, Value>, samples: &[Sample], out: &mut Vec<Violation>) {
    let Some(Value::Array(cells)) = report.get("cells") else {
        out.push(Violation::new("SCHEMA", "`cells` must be an array"));
        return;
    };
    let mut covered = 0usize;
    for (i, c) in cells.iter().enumerate() {
        let (Some(kv), Some(len), Some(depth), Some(recall), Some(agree)) = (
            c.get("kv").and_then(Value::as_str),
            c.get("context_len").and_then(Value::as_u64),
            c.get("depth").and_then(Value::as_f64),
            c.get("recall").and_then(Value::as_f64),
            c.get("agrees_with_raw").and_then(Value::as_f64),
        ) else {
            out.push(Violation::new(
                "SCHEMA",
                format!("cells[{i}] needs kv, context_len, depth, recall and agrees_with_raw"),
            ));
            continue;
        };
        let mine: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.kv == kv && s.key.0 == len && (s.depth - depth).abs() < 1e-12)
            .collect();
        covered += mine.len();
        match (
            rate(mine.iter().map(|s| s.hit)),
            rate(mine.iter().map(|s| s.agrees)),
        ) {
            (Some(r), Some(a)) => {
                if !close(r, recall) || !close(a, agree) {
                    out.push(Violation::new(
                        "CELL_MISMATCH",
                        format!("cells[{i}] ({kv}, {len}, {depth}): claims recall {recall} / agreement {agree}, samples give {r} / {a}"),
                    ));
                }
            }
            _ => out.push(Violation::new(
                "CELL_MISMATCH",
                format!("cells[{i}] ({kv}, {len}, {depth}) has no samples"),
            )),
        }
    }
    if covered != samples.len() {
        out.push(Violation::new(
            "CELL_MISMATCH",
            format!("cells cover {covered} samples of {}", samples.len()),
        ));
    }
}

fn check_summary(report: &Map<String, Value>, samples: &[Sample], out: &mut Vec<Violation>) {
    let Some(Value::Object(by_kv)) = lookup(report, "summary.recall_by_kv") else {
        out.push(Violation::new(
            "SCHEMA",
            "`summary.recall_by_kv` must be an object",
        ));
        return;
    };
    let mut want: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for s in samples {
        want.entry(s.kv.as_str()).or_default().push(s.hit);
    }
    for (kv, hits) in &want {
        let r = rate(hits.iter().copied()).unwrap_or(0.0);
        match by_kv.get(*kv).and_then(Value::as_f64) {
            Some(x) if close(x, r) => {}
            other => out.push(Violation::new(
                "SUMMARY_MISMATCH",
                format!("summary.recall_by_kv[{kv}] is {other:?}, samples give {r}"),
            )),
        }
    }
    for kv in by_kv.keys() {
        if !want.contains_key(kv.as_str()) {
            out.push(Violation::new(
                "SUMMARY_MISMATCH",
                format!("summary.recall_by_kv names `{kv}`, which has no samples"),
            ));
        }
    }
}
