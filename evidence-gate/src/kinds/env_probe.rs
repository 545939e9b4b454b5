//! `env_probe`: what the engine found on the machine. Evidence that a device actually worked,
//! not merely that it was compiled in.

use serde_json::{Map, Value};

use super::{KindRules, lookup, require};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "env_probe",
    versions: &[1],
    check,
};

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(devices) = require(report, "devices", out) else {
        return;
    };
    let Some(devices) = devices.as_array() else {
        out.push(Violation::new("SCHEMA", "`devices` must be an array"));
        return;
    };
    let mut any_working = false;
    for (i, device) in devices.iter().enumerate() {
        let name = device.get("name").and_then(Value::as_str);
        let compiled = device.get("compiled").and_then(Value::as_bool);
        let available = device.get("available").and_then(Value::as_bool);
        let (Some(name), Some(compiled), Some(available)) = (name, compiled, available) else {
            out.push(Violation::new(
                "SCHEMA",
                format!("devices[{i}] needs `name`, `compiled` and `available`"),
            ));
            continue;
        };
        if available && !compiled {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("device {name} is reported available but was not compiled in"),
            ));
        }
        if available {
            match device.get("check_passed").and_then(Value::as_bool) {
                Some(true) => any_working = true,
                _ => out.push(Violation::new(
                    "DEVICE_CHECK",
                    format!("device {name} is available but its compute check did not pass"),
                )),
            }
        }
    }
    if !any_working {
        out.push(Violation::new(
            "NO_DEVICE",
            "no device passed its compute check",
        ));
    }
    let claimed = lookup(report, "provenance.device").and_then(Value::as_str);
    if let Some(claimed) = claimed {
        let family = claimed.split(':').next().unwrap_or(claimed);
        let ok = devices.iter().any(|d| {
            d.get("name").and_then(Value::as_str) == Some(family)
                && d.get("available").and_then(Value::as_bool) == Some(true)
        });
        if !ok {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("provenance.device `{claimed}` is not among the available devices"),
            ));
        }
    }
    for field in ["cpu.features", "os.arch", "os.family"] {
        require(report, field, out);
    }
}
