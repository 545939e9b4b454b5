//! `sleep`: the trivial job used to count executions and exercise leases, cancel and
//! timeouts. Its numbers must agree with each other like any other report's.

use serde_json::{Map, Value};

use super::{KindRules, number};
use crate::envelope::parse_rfc3339;
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "sleep",
    versions: &[1],
    check,
};

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    if report.get("completed") != Some(&Value::Bool(true)) {
        out.push(Violation::new(
            "INCOMPLETE",
            "the sleep did not complete (`completed` is not true)",
        ));
    }
    let requested = number(report, "requested_ms", out);
    let slept = number(report, "slept_ms", out);
    let pid = number(report, "pid", out);
    if let (Some(requested), Some(slept)) = (requested, slept)
        && slept < requested
    {
        out.push(Violation::new(
            "INCONSISTENT",
            format!("slept_ms {slept} is less than requested_ms {requested}"),
        ));
    }
    if pid.is_some_and(|p| p < 1.0) {
        out.push(Violation::new(
            "SCHEMA",
            "`pid` must be a positive process id",
        ));
    }
    let stamp = |f: &str| {
        report
            .get(f)
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
    };
    match (stamp("started_at"), stamp("finished_at"), slept) {
        (Some(s), Some(f), Some(slept)) => {
            let wall_ms = (f - s).whole_milliseconds() as f64;
            // Timestamps and the monotonic clock agree to well within a second.
            if (wall_ms - slept).abs() > 1000.0 {
                out.push(Violation::new(
                    "INCONSISTENT",
                    format!("started_at..finished_at spans {wall_ms} ms but slept_ms is {slept}"),
                ));
            }
        }
        _ => out.push(Violation::new(
            "SCHEMA",
            "`started_at` and `finished_at` must be RFC 3339 timestamps",
        )),
    }
}
