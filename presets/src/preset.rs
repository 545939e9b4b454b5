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

    /// Names of the `${ENV:NAME}` variables the argv uses, in first-use order, each once.
    /// A runner can check these at start-up instead of refusing jobs one by one.
    pub fn required_env(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for token in &self.argv {
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
        names
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
