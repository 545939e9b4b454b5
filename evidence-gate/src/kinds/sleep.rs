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
            // The wall-clock span holds the whole sleep, so it can only be shorter by clock
            // rounding or a step. It can be longer by however long a loaded machine kept the
            // process off a core between its stamps and its sleep: allow a minute of that.
            if wall_ms < slept - 1000.0 || wall_ms > slept + 60_000.0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(started: &str, finished: &str, slept: f64) -> Map<String, Value> {
        let v = serde_json::json!({
            "completed": true, "requested_ms": 30, "slept_ms": slept, "pid": 42,
            "started_at": started, "finished_at": finished,
        });
        v.as_object().cloned().unwrap_or_default()
    }

    fn violations(r: &Map<String, Value>) -> Vec<Violation> {
        let mut out = Vec::new();
        check(r, &mut out);
        out
    }

    #[test]
    fn a_span_stretched_by_load_is_consistent() {
        let r = report("2026-12-01T10:00:00.000Z", "2026-12-01T10:00:01.335Z", 31.9);
        assert!(violations(&r).is_empty());
    }

    #[test]
    fn a_span_shorter_than_the_sleep_or_absurdly_long_is_not() {
        let short = report(
            "2026-12-01T10:00:00.000Z",
            "2026-12-01T10:00:00.010Z",
            5000.0,
        );
        assert_eq!(violations(&short).len(), 1);
        let long = report("2026-12-01T10:00:00.000Z", "2026-12-01T10:05:00.000Z", 31.9);
        assert_eq!(violations(&long).len(), 1);
    }
}
