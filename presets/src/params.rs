//! Typed, bounded params and the strict parsing of manifest values.
//!
//! Runner and client both call [`check_value`] (through `Preset::validate_params`), so a value
//! the client accepted is exactly a value the runner accepts. The grammars are ASCII-only and
//! deliberately narrower than Rust's or Python's parsers: the reference accepted `+5`, `5_0`
//! and full-width digits because it leaned on Python's `int()`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::path::{is_under, normalise_relative};

/// Longest string value accepted, in bytes.
pub const MAX_STRING_BYTES: usize = 1024;

/// One declared param: its type with bounds, optional default, and help text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub kind: ParamKind,
    /// `None` makes the param required.
    pub default: Option<ParamValue>,
    pub description: String,
}

/// A param type and its constraints. Bounds are inclusive.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Bool,
    Enum {
        values: Vec<String>,
    },
    /// Repo-relative path; with `under`, it must equal `under` or lie below it.
    Path {
        under: Option<String>,
    },
}

impl ParamKind {
    /// The YAML/JSON spelling of the type (`int`, `float`, `bool`, `enum`, `path`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Int { .. } => "int",
            Self::Float { .. } => "float",
            Self::Bool => "bool",
            Self::Enum { .. } => "enum",
            Self::Path { .. } => "path",
        }
    }
}

impl ParamSpec {
    /// True when the param has no default and a manifest must set it.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

/// A validated param value. `Display` is the canonical string that argv rendering uses.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Int(i64),
    /// Always finite; `-0.0` is stored as `0.0` so equal values render equally.
    Float(f64),
    Bool(bool),
    Enum(String),
    /// Normalised (no `.` or empty components).
    Path(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            // Rust prints the shortest string that parses back to the same f64 and never
            // uses an exponent, so the canonical form re-validates under the float grammar.
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Enum(s) | Self::Path(s) => f.write_str(s),
        }
    }
}

impl ParamValue {
    /// The native JSON form (numbers as numbers, booleans as booleans, the rest as strings).
    pub fn to_json(&self) -> Value {
        match self {
            Self::Int(n) => Value::from(*n),
            // Finite by construction, so `from_f64` cannot fail; Null is a safe fallback.
            Self::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Self::Bool(b) => Value::Bool(*b),
            Self::Enum(s) | Self::Path(s) => Value::String(s.clone()),
        }
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(n) => serializer.serialize_i64(*n),
            Self::Float(x) => serializer.serialize_f64(*x),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Enum(s) | Self::Path(s) => serializer.serialize_str(s),
        }
    }
}

/// Every param of one preset, validated, with defaults filled in.
///
/// Only `Preset::validate_params` builds one, and it remembers the preset it was validated
/// for, so rendering refuses params that were checked against a different definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedParams {
    preset: String,
    values: BTreeMap<String, ParamValue>,
}

impl ValidatedParams {
    pub(crate) fn new(preset: String, values: BTreeMap<String, ParamValue>) -> Self {
        Self { preset, values }
    }

    /// The name of the preset these params were validated for.
    pub fn preset(&self) -> &str {
        &self.preset
    }

    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &ParamValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Name → canonical string, as substituted into argv.
    pub fn to_strings(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }

    /// Name → native JSON value; feeding this back to `validate_params` yields the same
    /// params.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.values
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

impl Serialize for ValidatedParams {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.values.serialize(serializer)
    }
}

/// Why one value was refused; the caller adds the preset and param names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    Invalid(String),
    OutOfBounds { min: String, max: String },
    Path(String),
}

fn invalid(rule: impl Into<String>) -> Refusal {
    Refusal::Invalid(rule.into())
}

/// Validates one raw manifest value against its spec.
///
/// A JSON string is parsed strictly by the param's type; otherwise only the native JSON type
/// is accepted (a JSON integer for `int`, any number for `float`, a boolean for `bool`).
pub(crate) fn check_value(kind: &ParamKind, raw: &Value) -> Result<ParamValue, Refusal> {
    let text = match raw {
        Value::Null => {
            return Err(invalid(
                "null is not a value (omit the param to use its default)",
            ));
        }
        Value::Array(_) | Value::Object(_) => {
            return Err(invalid("arrays and objects are not param values"));
        }
        Value::String(s) => {
            check_string(s)?;
            Some(s.as_str())
        }
        Value::Number(_) | Value::Bool(_) => None,
    };
    match kind {
        ParamKind::Int { min, max } => {
            let n = match (text, raw) {
                (Some(s), _) => parse_int(s)?,
                (None, Value::Number(num)) => match num.as_i64() {
                    Some(n) => n,
                    None if num.is_u64() => return Err(invalid(INT_RANGE)),
                    None => return Err(invalid("must be a JSON integer (5.0 is not one)")),
                },
                _ => return Err(invalid("expected an integer")),
            };
            if n < *min || n > *max {
                return Err(Refusal::OutOfBounds {
                    min: min.to_string(),
                    max: max.to_string(),
                });
            }
            Ok(ParamValue::Int(n))
        }
        ParamKind::Float { min, max } => {
            let x = match (text, raw) {
                (Some(s), _) => parse_float(s)?,
                (None, Value::Number(num)) => num
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| invalid("must be a finite number"))?,
                _ => return Err(invalid("expected a number")),
            };
            if x < *min || x > *max {
                return Err(Refusal::OutOfBounds {
                    min: ParamValue::Float(*min).to_string(),
                    max: ParamValue::Float(*max).to_string(),
                });
            }
            // Adding 0.0 turns -0.0 into 0.0 and leaves every other value alone.
            Ok(ParamValue::Float(x + 0.0))
        }
        ParamKind::Bool => match (text, raw) {
            (Some("true"), _) | (None, Value::Bool(true)) => Ok(ParamValue::Bool(true)),
            (Some("false"), _) | (None, Value::Bool(false)) => Ok(ParamValue::Bool(false)),
            _ => Err(invalid("expected exactly `true` or `false`")),
        },
        ParamKind::Enum { values } => {
            let s = text.ok_or_else(|| invalid("expected a string"))?;
            if values.iter().any(|v| v == s) {
                Ok(ParamValue::Enum(s.to_owned()))
            } else {
                Err(invalid(format!("must be one of: {}", values.join(", "))))
            }
        }
        ParamKind::Path { under } => {
            let s = text.ok_or_else(|| invalid("expected a string"))?;
            let normal = normalise_relative(s).map_err(|rule| Refusal::Path(rule.to_owned()))?;
            if let Some(under) = under
                && !is_under(&normal, under)
            {
                return Err(Refusal::Path(format!("must resolve under {under}/")));
            }
            Ok(ParamValue::Path(normal))
        }
    }
}

const INT_RANGE: &str = "does not fit in a 64-bit signed integer";

fn check_string(s: &str) -> Result<(), Refusal> {
    if s.len() > MAX_STRING_BYTES {
        return Err(invalid(format!(
            "strings are limited to {MAX_STRING_BYTES} bytes"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid("strings must not contain control characters"));
    }
    Ok(())
}

/// `-?[0-9]+`, ASCII only. Checked before `str::parse`, which would also take `+5`.
fn parse_int(s: &str) -> Result<i64, Refusal> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "expected an integer: an optional `-` and ASCII digits only",
        ));
    }
    s.parse::<i64>().map_err(|_| invalid(INT_RANGE))
}

/// `-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`, ASCII only, and the result must be finite.
fn parse_float(s: &str) -> Result<f64, Refusal> {
    const RULE: &str = "expected a decimal number like -1.5 or 2e-3 (ASCII digits, \
                        digits on both sides of `.`, no `+`, no nan/inf)";
    fn digits(b: &[u8], mut i: usize) -> usize {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    }
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let j = digits(b, i);
    if j == i {
        return Err(invalid(RULE));
    }
    i = j;
    if b.get(i) == Some(&b'.') {
        let j = digits(b, i + 1);
        if j == i + 1 {
            return Err(invalid(RULE));
        }
        i = j;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let j = digits(b, i);
        if j == i {
            return Err(invalid(RULE));
        }
        i = j;
    }
    if i != b.len() {
        return Err(invalid(RULE));
    }
    let x: f64 = s.parse().map_err(|_| invalid(RULE))?;
    if !x.is_finite() {
        return Err(invalid("must be finite (too large for a 64-bit float)"));
    }
    Ok(x)
}

#[cfg(test)]
mod tests;
