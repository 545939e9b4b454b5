//! `model_info`: the files of a model directory on the runner, with their digests.

use serde_json::{Map, Value};

use super::{KindRules, lookup, require};
use crate::verdict::Violation;

pub(crate) const RULES: KindRules = KindRules {
    kind: "model_info",
    versions: &[1],
    check,
};

fn check(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(files) = require(report, "files", out) else {
        return;
    };
    let Some(files) = files.as_array().filter(|f| !f.is_empty()) else {
        out.push(Violation::new(
            "SCHEMA",
            "`files` must be a non-empty array",
        ));
        return;
    };
    let digests = lookup(report, "provenance.model_digests").and_then(Value::as_object);
    for (i, file) in files.iter().enumerate() {
        let name = file.get("name").and_then(Value::as_str);
        let sha = file.get("sha256").and_then(Value::as_str);
        let (Some(name), Some(sha)) = (name, sha) else {
            out.push(Violation::new(
                "SCHEMA",
                format!("files[{i}] needs `name` and `sha256`"),
            ));
            continue;
        };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push(Violation::new(
                "SCHEMA",
                format!("files[{i}].sha256 is not a sha256"),
            ));
        }
        if digests.and_then(|d| d.get(name)).and_then(Value::as_str) != Some(sha) {
            out.push(Violation::new(
                "INCONSISTENT",
                format!("provenance.model_digests does not record {name} with its sha256"),
            ));
        }
    }
    if !matches!(lookup(report, "config"), Some(Value::Object(_))) {
        out.push(Violation::new(
            "SCHEMA",
            "`config` (the parsed config.json) is missing",
        ));
    }
}
