//! The on-disk (YAML) and wire (JSON) form of a preset definition, and the rules a
//! definition must pass before it becomes a [`Preset`].
//!
//! `Preset` (de)serialises through [`PresetDef`], so the same checks run whether a definition
//! comes from `defs/*.yaml` or from JSON, and a `Preset` value always satisfies them when it
//! was deserialised. The serialised form is also what the digest hashes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{PresetError, show_json};
use crate::params::{MAX_STRING_BYTES, ParamKind, ParamSpec, ParamValue, Refusal, check_value};
use crate::path::normalise_relative;
use crate::preset::{ArgvWhen, Preset, PresetClass};
use crate::render::{Segment, parse_template};

/// Longest preset, param or label name. Preset names end up in branch names.
const MAX_NAME: usize = 64;
/// Longest per-preset timeout: a day. Anything longer is a mistake, not a job.
const MAX_TIMEOUT_SECONDS: u64 = 86_400;
const MAX_DESCRIPTION_BYTES: usize = 4096;
const MAX_ARGV_TOKEN_BYTES: usize = 4096;
/// Placeholders with a built-in meaning; a param may not shadow them.
pub(crate) const RESERVED: [&str; 3] = ["engine", "out", "workspace"];

/// Serialised preset definition (the YAML schema). Unknown fields are errors: a typo such as
/// `timeout: 60` must not silently fall back to something.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresetDef {
    name: String,
    description: String,
    class: PresetClass,
    argv: Vec<String>,
    timeout_seconds: u64,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    reports: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, ParamDef>,
    /// Omitted when empty, so presets without it keep their digests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    argv_when: Vec<ArgvWhen>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ParamType {
    Int,
    Float,
    Bool,
    Enum,
    Path,
}

/// Serialised param spec. Bounds and default are kept as JSON values here and typed by
/// [`param_from_def`], which knows the param's type.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamDef {
    #[serde(rename = "type")]
    kind: ParamType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    /// `default: null` must be an error, not "no default"; see [`present`].
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    under: Option<String>,
}

/// Deserialises a present field as `Some`, even when its value is null, so that an explicit
/// `default: null` is refused instead of quietly making the param required.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `[a-z][a-z0-9_-]*`, at most 64 bytes: preset and param names.
pub(crate) fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= MAX_NAME
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[A-Z][A-Z0-9_]*`: the NAME of `${ENV:NAME}`.
pub(crate) fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `[a-z0-9][a-z0-9._-]*`, at most 64 bytes: runner labels a preset needs.
fn is_label(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= MAX_NAME
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

impl TryFrom<PresetDef> for Preset {
    type Error = String;

    fn try_from(def: PresetDef) -> Result<Self, String> {
        if !is_name(&def.name) {
            return Err(format!(
                "name {:?} must match [a-z][a-z0-9_-]* (at most {MAX_NAME} bytes)",
                def.name
            ));
        }
        check_text("description", &def.description, MAX_DESCRIPTION_BYTES)?;
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&def.timeout_seconds) {
            return Err(format!(
                "timeout_seconds {} must be between 1 and {MAX_TIMEOUT_SECONDS}",
                def.timeout_seconds
            ));
        }
        unique("labels", &def.labels)?;
        for label in &def.labels {
            if !is_label(label) {
                return Err(format!("label {label:?} must match [a-z0-9][a-z0-9._-]*"));
            }
        }
        unique("reports", &def.reports)?;
        for report in &def.reports {
            // Reports are files inside {out}: the same lexical rules as path params, and
            // written in normal form so the runner can compare names literally.
            match normalise_relative(report) {
                Ok(normal) if normal == *report => {}
                Ok(normal) => return Err(format!("report {report:?} must be written {normal:?}")),
                Err(rule) => return Err(format!("report {report:?}: {rule}")),
            }
        }

        let mut params = BTreeMap::new();
        for (name, param) in def.params {
            if !is_name(&name) || RESERVED.contains(&name.as_str()) {
                return Err(format!(
                    "param name {name:?} must match [a-z][a-z0-9_-]* and not be one of {}",
                    RESERVED.join(", ")
                ));
            }
            let spec = param_from_def(param).map_err(|e| format!("param {name:?}: {e}"))?;
            params.insert(name, spec);
        }

        check_argv_when(&def.argv_when, &params)?;
        check_argv(&def.argv, &def.argv_when, def.class, &params)?;

        Ok(Preset {
            name: def.name,
            description: def.description,
            class: def.class,
            argv: def.argv,
            timeout_seconds: def.timeout_seconds,
            labels: def.labels,
            reports: def.reports,
            params,
            argv_when: def.argv_when,
        })
    }
}

impl From<Preset> for PresetDef {
    fn from(p: Preset) -> Self {
        PresetDef {
            name: p.name,
            description: p.description,
            class: p.class,
            argv: p.argv,
            timeout_seconds: p.timeout_seconds,
            labels: p.labels,
            reports: p.reports,
            params: p
                .params
                .into_iter()
                .map(|(name, spec)| (name, param_to_def(spec)))
                .collect(),
            argv_when: p.argv_when,
        }
    }
}

/// Every argv token must parse, every placeholder must be known, `{workspace}` only makes
/// sense for a workload, and every declared param must be used (a param that changes
/// nothing is a definition bug that requesters would trip over).
fn check_argv(
    argv: &[String],
    argv_when: &[ArgvWhen],
    class: PresetClass,
    params: &BTreeMap<String, ParamSpec>,
) -> Result<(), String> {
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err("argv must be non-empty and start with a program".to_owned());
    }
    // A param that switches tokens on is used, even if no token prints it.
    let mut used: BTreeSet<&str> = argv_when.iter().map(|g| g.param.as_str()).collect();
    let extra = argv_when.iter().flat_map(|g| g.argv.iter());
    for token in argv.iter().chain(extra) {
        if token.len() > MAX_ARGV_TOKEN_BYTES || token.chars().any(char::is_control) {
            return Err(format!(
                "argv token {token:?} must be at most {MAX_ARGV_TOKEN_BYTES} bytes \
                 without control characters"
            ));
        }
        for segment in parse_template(token).map_err(|e| format!("argv token {token:?}: {e}"))? {
            match segment {
                Segment::Workspace if class != PresetClass::Workload => {
                    return Err("{workspace} is only available to workload presets".to_owned());
                }
                Segment::Param(name) if !params.contains_key(name) => {
                    return Err(format!(
                        "argv token {token:?} uses {{{name}}}, which is neither a declared \
                         param nor one of {{engine}}, {{out}}, {{workspace}}"
                    ));
                }
                Segment::Param(name) => {
                    used.insert(name);
                }
                _ => {}
            }
        }
    }
    if let Some(unused) = params.keys().find(|k| !used.contains(k.as_str())) {
        return Err(format!(
            "param {unused:?} is declared but argv never uses it"
        ));
    }
    Ok(())
}

/// Each `argv_when` group names a declared enum or bool param, lists distinct values that
/// param can take, and adds at least one token.
fn check_argv_when(
    groups: &[ArgvWhen],
    params: &BTreeMap<String, ParamSpec>,
) -> Result<(), String> {
    for group in groups {
        let Some(spec) = params.get(&group.param) else {
            return Err(format!(
                "argv_when names param {:?}, which is not declared",
                group.param
            ));
        };
        let allowed: Vec<String> = match &spec.kind {
            ParamKind::Enum { values } => values.clone(),
            ParamKind::Bool => vec!["true".to_owned(), "false".to_owned()],
            other => {
                return Err(format!(
                    "argv_when param {:?} must be an enum or a bool, not {}",
                    group.param,
                    other.type_name()
                ));
            }
        };
        if group.values.is_empty() || group.argv.is_empty() {
            return Err(format!(
                "argv_when for {:?} needs non-empty `values` and `argv`",
                group.param
            ));
        }
        unique("argv_when values", &group.values)?;
        if let Some(bad) = group.values.iter().find(|v| !allowed.contains(v)) {
            return Err(format!(
                "argv_when value {bad:?} is not a value of param {:?} ({})",
                group.param,
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

fn param_from_def(def: ParamDef) -> Result<ParamSpec, String> {
    // A param description is optional; when present, the usual text rules apply.
    if !def.description.is_empty() {
        check_text("description", &def.description, MAX_DESCRIPTION_BYTES)?;
    }
    let kind = match def.kind {
        ParamType::Int => {
            let (min, max) = (int_bound("min", &def.min)?, int_bound("max", &def.max)?);
            if min > max {
                return Err(format!("min {min} is greater than max {max}"));
            }
            ParamKind::Int { min, max }
        }
        ParamType::Float => {
            let (min, max) = (float_bound("min", &def.min)?, float_bound("max", &def.max)?);
            if min > max {
                return Err(format!("min {min} is greater than max {max}"));
            }
            ParamKind::Float { min, max }
        }
        ParamType::Bool => ParamKind::Bool,
        ParamType::Enum => {
            let values = def.values.clone().unwrap_or_default();
            if values.is_empty() {
                return Err("an enum needs a non-empty `values` list".to_owned());
            }
            unique("values", &values)?;
            for v in &values {
                if v.is_empty() || v.len() > MAX_STRING_BYTES || v.chars().any(char::is_control) {
                    return Err(format!(
                        "enum value {v:?} must be a non-empty string a manifest could send"
                    ));
                }
            }
            ParamKind::Enum { values }
        }
        ParamType::Path => {
            if let Some(under) = &def.under {
                match normalise_relative(under) {
                    Ok(normal) if normal == *under => {}
                    Ok(normal) => {
                        return Err(format!("under {under:?} must be written {normal:?}"));
                    }
                    Err(rule) => return Err(format!("under {under:?}: {rule}")),
                }
            }
            ParamKind::Path {
                under: def.under.clone(),
            }
        }
    };
    // Fields that mean nothing for this type are errors, not decoration: `min` on a path
    // would read like a constraint that is never enforced.
    let stray = [
        (
            "min",
            def.min.is_some() && !matches!(kind, ParamKind::Int { .. } | ParamKind::Float { .. }),
        ),
        (
            "max",
            def.max.is_some() && !matches!(kind, ParamKind::Int { .. } | ParamKind::Float { .. }),
        ),
        (
            "values",
            def.values.is_some() && !matches!(kind, ParamKind::Enum { .. }),
        ),
        (
            "under",
            def.under.is_some() && !matches!(kind, ParamKind::Path { .. }),
        ),
    ];
    if let Some((field, _)) = stray.iter().find(|(_, bad)| *bad) {
        return Err(format!(
            "`{field}` does not apply to type {}",
            kind.type_name()
        ));
    }
    // A default goes through the same checks as a manifest value, so a definition can never
    // fill in something a requester could not have sent.
    let default = match &def.default {
        None => None,
        Some(raw) => Some(check_value(&kind, raw).map_err(|refusal| {
            let why = match refusal {
                Refusal::Invalid(rule) | Refusal::Path(rule) => rule,
                Refusal::OutOfBounds { min, max } => {
                    format!("out of bounds [{min}, {max}]")
                }
            };
            format!("default {} is invalid: {why}", show_json(raw))
        })?),
    };
    Ok(ParamSpec {
        kind,
        default,
        description: def.description,
    })
}

fn param_to_def(spec: ParamSpec) -> ParamDef {
    let (kind, min, max, values, under) = match spec.kind {
        ParamKind::Int { min, max } => (
            ParamType::Int,
            Some(Value::from(min)),
            Some(Value::from(max)),
            None,
            None,
        ),
        ParamKind::Float { min, max } => (
            ParamType::Float,
            Some(ParamValue::Float(min).to_json()),
            Some(ParamValue::Float(max).to_json()),
            None,
            None,
        ),
        ParamKind::Bool => (ParamType::Bool, None, None, None, None),
        ParamKind::Enum { values } => (ParamType::Enum, None, None, Some(values), None),
        ParamKind::Path { under } => (ParamType::Path, None, None, None, under),
    };
    ParamDef {
        kind,
        description: spec.description,
        default: spec.default.as_ref().map(ParamValue::to_json),
        min,
        max,
        values,
        under,
    }
}

fn int_bound(which: &str, v: &Option<Value>) -> Result<i64, String> {
    match v {
        None => Err(format!("an int needs `{which}` (params are bounded)")),
        Some(v) => v.as_i64().ok_or_else(|| {
            format!(
                "`{which}` must be an integer that fits i64, not {}",
                show_json(v)
            )
        }),
    }
}

fn float_bound(which: &str, v: &Option<Value>) -> Result<f64, String> {
    match v {
        None => Err(format!("a float needs `{which}` (params are bounded)")),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("`{which}` must be a finite number, not {}", show_json(v))),
    }
}

/// Non-empty text without control characters other than newline (YAML block scalars).
fn check_text(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() || s.len() > max || s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(format!(
            "{what} must be non-empty, at most {max} bytes, without control characters"
        ));
    }
    Ok(())
}

fn unique(what: &str, items: &[String]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    match items.iter().find(|i| !seen.insert(i.as_str())) {
        Some(dup) => Err(format!("{what} lists {dup:?} twice")),
        None => Ok(()),
    }
}

/// Parses one YAML definition. `file` only labels errors.
pub(crate) fn from_yaml(file: &str, text: &str) -> Result<Preset, PresetError> {
    let options = serde_saphyr::options! {
        // `yes`/`on` as booleans is a YAML 1.1 trap; only true/false are booleans here.
        strict_booleans: true,
        reject_unsupported_tags: true,
    };
    serde_saphyr::from_str_with_options::<Preset>(text, options).map_err(|e| {
        PresetError::Definition {
            file: file.to_owned(),
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests;
