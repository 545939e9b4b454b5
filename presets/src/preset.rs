//! One preset: what it is, its digest, and the two things done with it per request —
//! validating params and rendering argv.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::definition::PresetDef;
use crate::error::{PresetError, show_json};
use crate::params::{ParamSpec, Refusal, ValidatedParams, check_value};
use crate::render::{RenderContext, Segment, parse_template, render};

/// What a preset runs: the bundled engine, or a fixed command in a checked-out workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetClass {
    Engine,
    Workload,
}

impl PresetClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Engine => "engine",
            Self::Workload => "workload",
        }
    }
}

impl fmt::Display for PresetClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An allowlisted job: a fixed argv template with typed, bounded params.
///
/// (De)serialises as the definition schema (see the crate docs); deserialising runs every
/// definition check, so a deserialised `Preset` is always well formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PresetDef", into = "PresetDef")]
pub struct Preset {
    pub name: String,
    pub description: String,
    pub class: PresetClass,
    /// Template tokens; see the crate docs for placeholders.
    pub argv: Vec<String>,
    pub timeout_seconds: u64,
    /// Runner labels the preset needs (e.g. `metal`).
    pub labels: Vec<String>,
    /// Files the job must write into `{out}`.
    pub reports: Vec<String>,
    pub params: BTreeMap<String, ParamSpec>,
    /// Argv tokens appended (after `argv`, in this order) only when a param has one of the
    /// listed values, so a `${ENV:NAME}` a chosen value does not use is not required.
    pub argv_when: Vec<ArgvWhen>,
}

/// Extra argv for some values of one enum or bool param (the `argv_when` key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgvWhen {
    pub param: String,
    /// Values (as a manifest's canonical string: `true`, `model`) that switch `argv` on.
    pub values: Vec<String>,
    pub argv: Vec<String>,
}

impl ArgvWhen {
    /// Whether `params` switch this group on.
    pub fn applies(&self, params: &ValidatedParams) -> bool {
        params
            .get(&self.param)
            .is_some_and(|v| self.values.contains(&v.to_string()))
    }
}

/// The `${ENV:NAME}` names used by `tokens`, appended to `names` once each, in order.
fn env_names<'a>(tokens: impl Iterator<Item = &'a String>, names: &mut Vec<String>) {
    for token in tokens {
        // A definition that passed its checks always parses; skip anything else here and
        // let `render` report it.
        for segment in parse_template(token).unwrap_or_default() {
            if let Segment::Env(name) = segment
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_owned());
            }
        }
    }
}

impl Preset {
    /// Parses and checks one YAML definition; `file` names it in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Preset, PresetError> {
        crate::definition::from_yaml(file, text)
    }

    /// `sha256:<hex>` of the canonical JSON (object keys sorted, no whitespace) of the
    /// definition. A manifest pins this so a runner with a different definition refuses
    /// instead of running something the requester never saw.
    pub fn digest(&self) -> String {
        let mut canonical = String::new();
        write_canonical(&self.definition_json(), &mut canonical);
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        )
    }

    /// The definition as JSON (the same shape as the YAML file).
    pub fn definition_json(&self) -> Value {
        // Serialising plain strings, numbers and maps into a Value cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Validates raw manifest params: refuses unknown names, fills defaults, requires the
    /// rest, and checks every value strictly against its type and bounds.
    pub fn validate_params(
        &self,
        raw: &BTreeMap<String, Value>,
    ) -> Result<ValidatedParams, PresetError> {
        if let Some(unknown) = raw.keys().find(|k| !self.params.contains_key(*k)) {
            return Err(PresetError::UnknownParam {
                preset: self.name.clone(),
                param: unknown.clone(),
                known: self.params.keys().cloned().collect(),
            });
        }
        let mut values = BTreeMap::new();
        for (name, spec) in &self.params {
            let value = match (raw.get(name), &spec.default) {
                (Some(v), _) => check_value(&spec.kind, v)
                    .map_err(|refusal| self.refusal_error(name, v, refusal))?,
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    return Err(PresetError::MissingParam {
                        preset: self.name.clone(),
                        param: name.clone(),
                    });
                }
            };
            values.insert(name.clone(), value);
        }
        Ok(ValidatedParams::new(self.name.clone(), values))
    }

    fn refusal_error(&self, param: &str, raw: &Value, refusal: Refusal) -> PresetError {
        let (preset, param, value) = (self.name.clone(), param.to_owned(), show_json(raw));
        match refusal {
            Refusal::Invalid(rule) => PresetError::InvalidValue {
                preset,
                param,
                value,
                rule,
            },
            Refusal::OutOfBounds { min, max } => PresetError::OutOfBounds {
                preset,
                param,
                value,
                min,
                max,
            },
            Refusal::Path(rule) => PresetError::PathEscape {
                preset: Some(preset),
                param: Some(param),
                value,
                rule,
            },
        }
    }

    /// Names of the `${ENV:NAME}` variables the argv always uses (whatever the params), in
    /// first-use order, each once. A runner can check these at start-up instead of refusing
    /// jobs one by one.
    pub fn required_env(&self) -> Vec<String> {
        let mut names = Vec::new();
        env_names(self.argv.iter(), &mut names);
        names
    }

    /// Variables needed only for some param values: `(name, param, values)` for each
    /// `argv_when` group's `${ENV:NAME}` that `argv` itself does not use.
    pub fn conditional_env(&self) -> Vec<(String, String, Vec<String>)> {
        let always = self.required_env();
        let mut out = Vec::new();
        for group in &self.argv_when {
            let mut names = Vec::new();
            env_names(group.argv.iter(), &mut names);
            for name in names.into_iter().filter(|n| !always.contains(n)) {
                out.push((name, group.param.clone(), group.values.clone()));
            }
        }
        out
    }

    /// The variables a request with `params` needs: `(name, None)` for those the argv always
    /// uses, `(name, Some("param=value"))` for those a param value switched on.
    pub fn required_env_for(&self, params: &ValidatedParams) -> Vec<(String, Option<String>)> {
        let mut out: Vec<(String, Option<String>)> =
            self.required_env().into_iter().map(|n| (n, None)).collect();
        for group in self.argv_when.iter().filter(|g| g.applies(params)) {
            let mut names = Vec::new();
            env_names(group.argv.iter(), &mut names);
            let because = params
                .get(&group.param)
                .map(|v| format!("{}={v}", group.param));
            for name in names {
                if !out.iter().any(|(n, _)| *n == name) {
                    out.push((name, because.clone()));
                }
            }
        }
        out
    }

    /// Renders the argv (single pass: substituted text is never scanned again).
    pub fn render(
        &self,
        params: &ValidatedParams,
        ctx: &RenderContext<'_>,
    ) -> Result<Vec<String>, PresetError> {
        render(self, params, ctx)
    }
}

/// Canonical JSON: object keys sorted bytewise, no whitespace, serde_json's string escaping,
/// integers in decimal and floats as Rust's `Display` prints them. Written by hand rather than relying on `serde_json::Map` being sorted,
/// because another crate enabling serde_json's `preserve_order` would silently change it.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            // Floats use Rust's `Display` (shortest round-trip digits, never an exponent)
            // so the digest does not depend on serde_json's float formatter of the day.
            (None, None, Some(x)) => out.push_str(&x.to_string()),
            (None, None, None) => out.push_str(&n.to_string()),
        },
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests;
