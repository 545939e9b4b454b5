//! The one error type of the crate.
//!
//! Messages end up in rejected results that a requester reads and in runner logs, so every
//! message names the preset, the param, the offending value and the rule that refused it.
//! Values come from untrusted manifests: they are escaped (`{:?}`) and truncated before they
//! reach a message, so a hostile value can neither forge log lines nor bloat a result.

use thiserror::Error;

/// Longest prefix of an untrusted value, in characters, that a message quotes.
const SHOW_CHARS: usize = 80;

/// Why a preset lookup, a param, a definition or a rendering was refused.
///
/// Fields called `value` hold the *display form* of the offending input (escaped and
/// truncated to about 80 characters), never the raw input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PresetError {
    /// The manifest names a preset the catalog does not have.
    #[error("unknown preset {}; known presets: {}", show(name), list(known))]
    UnknownPreset { name: String, known: Vec<String> },

    /// The manifest sets a param the preset does not declare.
    #[error(
        "preset {preset:?}: unknown param {}; known params: {}",
        show(param),
        list(known)
    )]
    UnknownParam {
        preset: String,
        param: String,
        known: Vec<String>,
    },

    /// A param without a default is absent.
    #[error("preset {preset:?}: missing required param {param:?}")]
    MissingParam { preset: String, param: String },

    /// A value has the wrong JSON type or does not match its type's grammar.
    #[error("preset {preset:?}: param {param:?}: invalid value {value}: {rule}")]
    InvalidValue {
        preset: String,
        param: String,
        value: String,
        rule: String,
    },

    /// A number parsed but lies outside the inclusive bounds.
    #[error(
        "preset {preset:?}: param {param:?}: value {value} is out of bounds: \
         must be between {min} and {max} inclusive"
    )]
    OutOfBounds {
        preset: String,
        param: String,
        value: String,
        min: String,
        max: String,
    },

    /// A path is not repo-relative, leaves its allowed prefix, or a symlink leads out of
    /// the root it must stay in. `preset`/`param` are absent when the check ran outside a
    /// preset (a direct [`crate::resolve_within`] call).
    #[error("{}path {value} is refused: {rule}", context(preset, param))]
    PathEscape {
        preset: Option<String>,
        param: Option<String>,
        value: String,
        rule: String,
    },

    /// The argv uses `${ENV:NAME}` and the runner config leaves NAME unset or empty.
    #[error(
        "preset {preset:?} needs runner env {var}, which is unset or empty \
         (set it under `env:` in the runner config)"
    )]
    MissingEnv { preset: String, var: String },

    /// The argv cannot be rendered with the given context (e.g. a workload preset without
    /// a workspace, a non-UTF-8 path, params validated for another preset).
    #[error("preset {preset:?}: cannot render argv: {reason}")]
    Render { preset: String, reason: String },

    /// A preset definition is malformed. `file` names the definition file (or the
    /// in-memory source) so whoever broke it knows where to look.
    #[error("preset definition {file}: {message}")]
    Definition { file: String, message: String },

    /// A filesystem operation needed by a check failed (e.g. the root does not exist).
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl PresetError {
    /// A short stable code for machine-readable results (`"unknown_preset"`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownPreset { .. } => "unknown_preset",
            Self::UnknownParam { .. } => "unknown_param",
            Self::MissingParam { .. } => "missing_param",
            Self::InvalidValue { .. } => "invalid_value",
            Self::OutOfBounds { .. } => "out_of_bounds",
            Self::PathEscape { .. } => "path_escape",
            Self::MissingEnv { .. } => "missing_env",
            Self::Render { .. } => "render",
            Self::Definition { .. } => "definition",
            Self::Io { .. } => "io",
        }
    }
}

/// Display form of an untrusted string: at most [`SHOW_CHARS`] characters, `{:?}`-escaped,
/// with a marker saying how long the original was when it was cut.
pub(crate) fn show(s: &str) -> String {
    match s.char_indices().nth(SHOW_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &s[..cut], s.len()),
    }
}

/// Display form of an untrusted JSON value: strings as [`show`], anything else as compact
/// JSON (which escapes control characters itself), truncated the same way.
pub(crate) fn show_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => show(s),
        other => {
            let text = other.to_string();
            match text.char_indices().nth(SHOW_CHARS) {
                None => text,
                Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
            }
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

fn context(preset: &Option<String>, param: &Option<String>) -> String {
    match (preset, param) {
        (Some(p), Some(k)) => format!("preset {p:?}: param {k:?}: "),
        (Some(p), None) => format!("preset {p:?}: "),
        (None, Some(k)) => format!("param {k:?}: "),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_escapes_and_truncates() {
        assert_eq!(show("a\nb"), "\"a\\nb\"");
        let long = "x".repeat(200);
        let shown = show(&long);
        assert!(shown.starts_with(&format!("{:?}", "x".repeat(80))));
        assert!(shown.ends_with("(200 bytes)"));
        // Multi-byte characters are never split.
        let wide = "é".repeat(100);
        assert!(show(&wide).contains("(200 bytes)"));
    }

    #[test]
    fn show_json_non_strings_are_compact() {
        assert_eq!(show_json(&serde_json::json!([1, 2])), "[1,2]");
        assert_eq!(show_json(&serde_json::json!("s")), "\"s\"");
        assert!(show_json(&serde_json::json!(vec![1; 100])).ends_with("bytes)"));
    }

    #[test]
    fn messages_name_everything() {
        let e = PresetError::OutOfBounds {
            preset: "sleep".into(),
            param: "ms".into(),
            value: "600001".into(),
            min: "0".into(),
            max: "600000".into(),
        };
        let m = e.to_string();
        for part in ["sleep", "ms", "600001", "0", "600000", "inclusive"] {
            assert!(m.contains(part), "{m}");
        }
        assert_eq!(e.code(), "out_of_bounds");
        let e = PresetError::UnknownPreset {
            name: "x\u{1b}[31m".into(),
            known: vec!["a".into(), "b".into()],
        };
        assert!(!e.to_string().contains('\u{1b}'));
        assert!(e.to_string().contains("a, b"));
    }
}
