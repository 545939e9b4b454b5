//! `kv_quant_eval`: codec arms on K/V captured from a model run. The identity arm must
//! reproduce the reference exactly (that is the harness checking itself); every arm's
//! derived numbers must follow from its counts (top-1 agreement = agree / positions, rel-MSE
//! = mean of the per-layer values, bits/value = bytes·8 / values).

use serde_json::{Map, Value};

use super::{KindRules, number};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "kv_quant_eval",
    versions: &[1],
    check,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(Value::Array(arms)) = report.get("arms") else {
        out.push(Violation::new("SCHEMA", "`arms` must be an array"));
        return;
    };
    let mut saw_identity = false;
    for (i, a) in arms.iter().enumerate() {
        let Value::Object(a) = a else {
            out.push(Violation::new(
                "SCHEMA",
                format!("arms[{i}] is not an object"),
            ));
            continue;
        };
        let name = a
            .get("arm")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let f: Vec<Option<f64>> = [
            "bits_per_value",
            "values",
            "bytes",
            "rel_mse",
            "positions",
            "top1_agree",
            "top1_agreement",
            "kl_mean",
            "kl_max",
        ]
        .iter()
        .map(|k| number(a, k, out))
        .collect();
        let [
            Some(bits),
            Some(values),
            Some(bytes),
            Some(mse),
            Some(pos),
            Some(agree),
            Some(top1),
            Some(kl),
            Some(kl_max),
        ] = f[..]
        else {
            continue;
        };
        if pos < 1.0 || values < 1.0 {
            out.push(Violation::new(
                "NOT_MEASURED",
                format!("{name}: no positions or values were measured"),
            ));
            continue;
        }
        if agree > pos || !close(top1, agree / pos) {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("{name}: top1_agreement {top1} is not {agree}/{pos}"),
            ));
        }
        if !close(bits, bytes * 8.0 / values) || bits <= 0.0 {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("{name}: bits_per_value {bits} is not bytes·8/values"),
            ));
        }
        if mse < 0.0 || kl < -1e-12 || kl_max + 1e-12 < kl {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("{name}: negative error or kl_max below kl_mean"),
            ));
        }
        if let Some(Value::Array(per)) = a.get("rel_mse_per_layer") {
            let xs: Vec<f64> = per.iter().filter_map(Value::as_f64).collect();
            if xs.len() != per.len()
                || xs.is_empty()
                || !close(mse, xs.iter().sum::<f64>() / xs.len() as f64)
            {
                out.push(Violation::new(
                    "INCONSISTENT",
                    format!("{name}: rel_mse is not the mean of rel_mse_per_layer"),
                ));
            }
        } else {
            out.push(Violation::new(
                "SCHEMA",
                format!("{name}: `rel_mse_per_layer` must be an array"),
            ));
        }
        if name == "identity" {
            saw_identity = true;
            if mse != 0.0 || top1 != 1.0 || kl > 1e-9 {
                out.push(Violation::new(
                    "HARNESS_NOT_EXACT",
                    format!("identity arm is not exact (rel_mse {mse}, top-1 {top1}, KL {kl})"),
                ));
            }
        }
    }
    if !saw_identity {
        out.push(Violation::new(
            "INCOMPLETE",
            "no `identity` arm: the harness is not checked against itself",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::gate::check_report_bytes;

    fn arm(name: &str, mse: f64, agree: u64) -> serde_json::Value {
        json!({"arm": name, "bits_per_value": 8.0, "values": 100, "bytes": 100, "rel_mse": mse,
               "rel_mse_per_layer": [mse, mse], "positions": 4, "top1_agree": agree,
               "top1_agreement": agree as f64 / 4.0, "kl_mean": if mse == 0.0 { 0.0 } else { 0.01 },
               "kl_max": if mse == 0.0 { 0.0 } else { 0.02 }})
    }

    fn codes(arms: serde_json::Value) -> Vec<String> {
        let r = json!({"kind": "kv_quant_eval", "schema_version": 1,
            "provenance": crate::kinds::spec_decode::test_provenance(), "arms": arms});
        check_report_bytes("r", r.to_string().as_bytes())
            .violations
            .into_iter()
            .map(|v| v.code)
            .collect()
    }

    #[test]
    fn rules() {
        assert!(codes(json!([arm("identity", 0.0, 4), arm("e8-q38", 1e-3, 3)])).is_empty());
        assert!(codes(json!([arm("e8-q38", 1e-3, 3)])).contains(&"INCOMPLETE".to_string()));
        assert!(
            codes(json!([arm("identity", 1e-3, 4)])).contains(&"HARNESS_NOT_EXACT".to_string())
        );
        let mut bad = arm("e8-q38", 1e-3, 3);
        bad["top1_agreement"] = json!(1.0);
        assert!(codes(json!([arm("identity", 0.0, 4), bad])).contains(&"INCONSISTENT".to_string()));
    }
}
