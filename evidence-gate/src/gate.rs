//! Generic rules every report must meet, and the entry points that apply them.

use std::path::Path;

use serde_json::{Map, Value};

use crate::envelope::parse_rfc3339;
use crate::kinds;
use crate::verdict::{ReportVerdict, Verdict, Violation};

/// Largest report the gate reads; anything bigger is refused rather than parsed.
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;

const REQUIRED_PROVENANCE: &[&str] = &[
    "engine_version",
    "device",
    "params",
    "model_digests",
    "started_at",
    "finished_at",
    "host",
];

/// Judge one report given its bytes. `name` is only used to label the verdict.
pub fn check_report_bytes(name: &str, bytes: &[u8]) -> ReportVerdict {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return ReportVerdict::from_violations(
                name.to_string(),
                None,
                None,
                vec![Violation::new(
                    "UNPARSEABLE",
                    format!("not valid JSON: {e}"),
                )],
            );
        }
    };
    let Value::Object(report) = value else {
        return ReportVerdict::from_violations(
            name.to_string(),
            None,
            None,
            vec![Violation::new("SCHEMA", "a report must be a JSON object")],
        );
    };
    let mut violations = Vec::new();
    let kind = match report.get("kind") {
        Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
        _ => {
            violations.push(Violation::new(
                "SCHEMA",
                "`kind` must be a non-empty string",
            ));
            None
        }
    };
    // `as_u64` refuses floats, negatives and booleans, so `true` or `1.0` do not pass.
    let schema_version = report.get("schema_version").and_then(Value::as_u64);
    if schema_version.is_none_or(|v| v == 0) {
        violations.push(Violation::new(
            "SCHEMA",
            "`schema_version` must be a positive integer",
        ));
    }
    check_provenance(&report, &mut violations);
    check_not_dry_run(&report, &mut violations);
    if let (Some(kind), Some(version)) = (kind.as_deref(), schema_version) {
        kinds::check(kind, version, &report, &mut violations);
    }
    ReportVerdict::from_violations(name.to_string(), kind, schema_version, violations)
}

/// Judge one report file.
pub fn check_report_file(path: &Path) -> ReportVerdict {
    let label = path.display().to_string();
    match read_capped(path) {
        Ok(bytes) => check_report_bytes(&label, &bytes),
        Err(message) => ReportVerdict::from_violations(
            label,
            None,
            None,
            vec![Violation::new("UNREADABLE", message)],
        ),
    }
}

/// Judge every `*.json` in `dir` (not recursive), requiring each name in `expected` to exist.
/// The runner calls this on a job's fresh report folder, so nothing stale is ever judged.
pub fn check_dir(dir: &Path, expected: &[String]) -> Verdict {
    let mut reports = Vec::new();
    let mut violations = Vec::new();
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .collect(),
        Err(e) => {
            violations.push(Violation::new(
                "UNREADABLE",
                format!("cannot list {}: {e}", dir.display()),
            ));
            Vec::new()
        }
    };
    names.sort();
    for name in &names {
        let mut verdict = check_report_file(&dir.join(name));
        verdict.path = name.clone();
        reports.push(verdict);
    }
    let missing = expected
        .iter()
        .filter(|e| !names.iter().any(|n| n == *e))
        .cloned()
        .collect();
    Verdict::assemble(reports, missing, violations)
}

/// Judge files and folders named on a command line; folders contribute their `*.json` files.
pub fn check_paths(paths: &[impl AsRef<Path>]) -> Verdict {
    let mut reports = Vec::new();
    let mut violations = Vec::new();
    for path in paths {
        let path = path.as_ref();
        if path.is_dir() {
            let sub = check_dir(path, &[]);
            reports.extend(sub.reports.into_iter().map(|mut r| {
                r.path = path.join(&r.path).display().to_string();
                r
            }));
            violations.extend(
                sub.violations
                    .into_iter()
                    .filter(|v| v.code != "NO_REPORTS"),
            );
        } else {
            reports.push(check_report_file(path));
        }
    }
    Verdict::assemble(reports, Vec::new(), violations)
}

fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_REPORT_BYTES {
        return Err(format!(
            "{} is {} bytes, over the {} byte limit",
            path.display(),
            meta.len(),
            MAX_REPORT_BYTES
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn check_provenance(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    let Some(Value::Object(prov)) = report.get("provenance") else {
        out.push(Violation::new(
            "PROVENANCE_MISSING",
            "`provenance` object is missing",
        ));
        return;
    };
    for field in REQUIRED_PROVENANCE {
        if !prov.contains_key(*field) {
            out.push(Violation::new(
                "PROVENANCE_INCOMPLETE",
                format!("provenance.{field} is missing"),
            ));
        }
    }
    for field in ["engine_version", "device"] {
        if let Some(v) = prov.get(field)
            && v.as_str().is_none_or(|s| s.trim().is_empty())
        {
            out.push(Violation::new(
                "PROVENANCE_INCOMPLETE",
                format!("provenance.{field} must be a non-empty string"),
            ));
        }
    }
    for field in ["params", "model_digests", "host"] {
        if let Some(v) = prov.get(field)
            && !v.is_object()
        {
            out.push(Violation::new(
                "PROVENANCE_INCOMPLETE",
                format!("provenance.{field} must be an object"),
            ));
        }
    }
    let started = prov
        .get("started_at")
        .and_then(Value::as_str)
        .map(|s| (s, parse_rfc3339(s)));
    let finished = prov
        .get("finished_at")
        .and_then(Value::as_str)
        .map(|s| (s, parse_rfc3339(s)));
    for (field, parsed) in [("started_at", &started), ("finished_at", &finished)] {
        if prov.contains_key(field) && !matches!(parsed, Some((_, Some(_)))) {
            out.push(Violation::new(
                "PROVENANCE_INCOMPLETE",
                format!("provenance.{field} must be an RFC 3339 timestamp"),
            ));
        }
    }
    if let (Some((_, Some(s))), Some((_, Some(f)))) = (started, finished)
        && f < s
    {
        out.push(Violation::new(
            "INCONSISTENT",
            "provenance.finished_at is before started_at",
        ));
    }
}

fn check_not_dry_run(report: &Map<String, Value>, out: &mut Vec<Violation>) {
    for flag in ["dry_run", "mock", "simulated"] {
        if report
            .get(flag)
            .is_some_and(|v| v != &Value::Bool(false) && !v.is_null())
        {
            out.push(Violation::new(
                "NOT_MEASURED",
                format!("report declares `{flag}`: a dry run or mock is not evidence"),
            ));
        }
    }
    let device = report
        .get("provenance")
        .and_then(|p| p.get("device"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if device.eq_ignore_ascii_case("mock") || device.eq_ignore_ascii_case("none") {
        out.push(Violation::new(
            "NOT_MEASURED",
            format!("provenance.device is `{device}`"),
        ));
    }
}
