//! `codec_bench`: codec throughput next to the machine's memory bandwidth. Every derived
//! number must follow from the measured ones (vectors/s = rows / seconds, GB/s = vectors/s ·
//! bytes per vector, fraction = GB/s / bandwidth at the same thread count), and every arm
//! must be measured for every operation at every thread count, including one thread.

use serde_json::{Map, Value};

use super::{KindRules, number};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "codec_bench",
    versions: &[1],
    check,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-300)
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(Value::Object(bw)) = report.get("bandwidth_gb_per_s") else {
        out.push(Violation::new(
            "SCHEMA",
            "`bandwidth_gb_per_s` must map thread counts to GB/s",
        ));
        return;
    };
    if !bw.contains_key("1") {
        out.push(Violation::new(
            "INCOMPLETE",
            "no single-thread bandwidth measurement",
        ));
    }
    let Some(Value::Array(results)) = report.get("results") else {
        out.push(Violation::new("SCHEMA", "`results` must be an array"));
        return;
    };
    if results.is_empty() {
        out.push(Violation::new("INCOMPLETE", "`results` is empty"));
    }
    let mut seen: Vec<(String, String, u64)> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let Value::Object(r) = r else {
            out.push(Violation::new(
                "SCHEMA",
                format!("results[{i}] is not an object"),
            ));
            continue;
        };
        let arm = r
            .get("arm")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let op = r
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let threads = r.get("threads").and_then(Value::as_u64).unwrap_or(0);
        let label = format!("{arm}/{op}/{threads} thread(s)");
        let f: Vec<Option<f64>> = [
            "rows",
            "seconds",
            "vectors_per_s",
            "mvectors_per_s",
            "bytes_per_vector",
            "gb_per_s",
            "bandwidth_gb_per_s",
            "bandwidth_fraction",
        ]
        .iter()
        .map(|k| number(r, k, out))
        .collect();
        let [
            Some(rows),
            Some(secs),
            Some(vps),
            Some(mvps),
            Some(bpv),
            Some(gb),
            Some(bwv),
            Some(frac),
        ] = f[..]
        else {
            continue;
        };
        let mut bad = |ok: bool, what: &str| {
            if !ok {
                out.push(Violation::new("INCONSISTENT", format!("{label}: {what}")));
            }
        };
        bad(threads >= 1, "threads must be ≥ 1");
        bad(
            rows >= 1.0 && secs > 0.0 && bpv > 0.0 && bwv > 0.0,
            "rows, seconds, bytes and bandwidth must be positive",
        );
        bad(close(vps, rows / secs), "vectors_per_s ≠ rows / seconds");
        bad(
            close(mvps, vps / 1e6),
            "mvectors_per_s ≠ vectors_per_s / 10⁶",
        );
        bad(
            close(gb, vps * bpv / 1e9),
            "gb_per_s ≠ vectors_per_s · bytes_per_vector / 10⁹",
        );
        bad(
            close(frac, gb / bwv),
            "bandwidth_fraction ≠ gb_per_s / bandwidth_gb_per_s",
        );
        let stated = bw.get(&threads.to_string()).and_then(Value::as_f64);
        bad(
            stated.is_some_and(|s| close(s, bwv)),
            "bandwidth_gb_per_s is not the bandwidth measured at this thread count",
        );
        seen.push((arm, op, threads));
    }
    let arms: std::collections::BTreeSet<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    let threads: std::collections::BTreeSet<u64> = seen.iter().map(|s| s.2).collect();
    if !threads.contains(&1) {
        out.push(Violation::new(
            "INCOMPLETE",
            "no single-thread measurements",
        ));
    }
    for arm in &arms {
        for op in ["roundtrip", "encode", "decode"] {
            for t in &threads {
                if !seen.iter().any(|s| s.0 == *arm && s.1 == op && s.2 == *t) {
                    out.push(Violation::new(
                        "INCOMPLETE",
                        format!("{arm}: no {op} measurement at {t} thread(s)"),
                    ));
                }
            }
        }
    }
}
