//! Argv templates: parsing a token into literal text and placeholders, and rendering.
//!
//! Rendering is a single pass over the *template*: substituted values are appended to the
//! output and never looked at again, so a param value of `{out}` or `${ENV:X}` stays literal.
//! The result is an argv vector for direct exec; no shell ever sees it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::definition::{is_env_name, is_name};
use crate::error::PresetError;
use crate::params::ParamValue;
use crate::params::ValidatedParams;
use crate::path::resolve_within;
use crate::preset::{Preset, PresetClass};

/// Machine-local facts a runner supplies when rendering.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The bundled `kakeya` binary, substituted for `{engine}`.
    pub engine: &'a Path,
    /// Absolute folder the job writes its reports into, substituted for `{out}`.
    pub out_dir: &'a Path,
    /// The checked-out workload; required for workload presets, `{workspace}`.
    pub workspace: Option<&'a Path>,
    /// The runner config's env map, source of `${ENV:NAME}`.
    pub env: &'a BTreeMap<String, String>,
}

/// One piece of an argv template token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    Literal(String),
    Engine,
    Out,
    Workspace,
    Param(&'a str),
    Env(&'a str),
}

/// Splits a template token into segments.
///
/// `{name}` is a placeholder (`[a-z][a-z0-9_-]*`), `${ENV:NAME}` an env placeholder
/// (`[A-Z][A-Z0-9_]*`), `{{` and `}}` are literal braces, and a `$` not followed by `{` is
/// literal. Anything else involving braces is an error, so a typo cannot turn a placeholder
/// into literal text.
pub(crate) fn parse_template(token: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = token;
    while let Some(pos) = rest.find(['{', '}', '$']) {
        literal.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            literal.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            literal.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err("unmatched `}` (write `}}` for a literal brace)".to_owned());
        } else if let Some(after) = tail.strip_prefix("${") {
            let body = after
                .strip_prefix("ENV:")
                .ok_or("`${` must start an ${ENV:NAME} placeholder")?;
            let end = body
                .find('}')
                .ok_or("unterminated ${ENV:...} placeholder")?;
            let name = &body[..end];
            if !is_env_name(name) {
                return Err(format!(
                    "env placeholder name {name:?} must match [A-Z][A-Z0-9_]*"
                ));
            }
            flush(&mut literal, &mut segments);
            segments.push(Segment::Env(name));
            rest = &body[end + 1..];
        } else if let Some(after) = tail.strip_prefix('$') {
            literal.push('$');
            rest = after;
        } else {
            // `tail` starts with a single `{`.
            let body = &tail[1..];
            let end = body
                .find('}')
                .ok_or("unterminated `{` (write `{{` for a literal brace)")?;
            let name = &body[..end];
            if !is_name(name) {
                return Err(format!(
                    "placeholder {{{name}}} must match [a-z][a-z0-9_-]*"
                ));
            }
            flush(&mut literal, &mut segments);
            segments.push(match name {
                "engine" => Segment::Engine,
                "out" => Segment::Out,
                "workspace" => Segment::Workspace,
                param => Segment::Param(param),
            });
            rest = &body[end + 1..];
        }
    }
    literal.push_str(rest);
    flush(&mut literal, &mut segments);
    Ok(segments)
}

fn flush<'a>(literal: &mut String, segments: &mut Vec<Segment<'a>>) {
    if !literal.is_empty() {
        segments.push(Segment::Literal(std::mem::take(literal)));
    }
}

pub(crate) fn render(
    preset: &Preset,
    params: &ValidatedParams,
    ctx: &RenderContext<'_>,
) -> Result<Vec<String>, PresetError> {
    let fail = |reason: String| PresetError::Render {
        preset: preset.name.clone(),
        reason,
    };
    if params.preset() != preset.name {
        return Err(fail(format!(
            "params were validated for preset {:?}",
            params.preset()
        )));
    }
    let utf8 = |what: &str, p: &Path| -> Result<String, PresetError> {
        p.to_str().map(str::to_owned).ok_or_else(|| {
            fail(format!(
                "the {what} path {:?} is not UTF-8",
                p.display().to_string()
            ))
        })
    };
    let engine = utf8("engine", ctx.engine)?;
    if !ctx.out_dir.is_absolute() {
        return Err(fail(format!(
            "the report folder {:?} must be absolute",
            ctx.out_dir.display().to_string()
        )));
    }
    let out = utf8("report folder", ctx.out_dir)?;
    let workspace = match (preset.class, ctx.workspace) {
        (PresetClass::Workload, None) => {
            return Err(fail(
                "a workload preset needs a checked-out workspace".to_owned(),
            ));
        }
        (_, Some(ws)) => Some(utf8("workspace", ws)?),
        (PresetClass::Engine, None) => None,
    };

    // Path params were checked lexically at validation; now that the tree exists, make sure
    // no symlink in the checkout leads them out of it.
    if let Some(ws) = ctx.workspace {
        for (name, value) in params.iter() {
            if let ParamValue::Path(rel) = value {
                resolve_within(ws, rel).map_err(|e| match e {
                    PresetError::PathEscape { value, rule, .. } => PresetError::PathEscape {
                        preset: Some(preset.name.clone()),
                        param: Some(name.to_owned()),
                        value,
                        rule,
                    },
                    other => other,
                })?;
            }
        }
    }

    let mut argv = Vec::with_capacity(preset.argv.len());
    let switched_on = preset
        .argv_when
        .iter()
        .filter(|group| group.applies(params))
        .flat_map(|group| group.argv.iter());
    for token in preset.argv.iter().chain(switched_on) {
        let segments =
            parse_template(token).map_err(|e| fail(format!("argv token {token:?}: {e}")))?;
        let mut rendered = String::new();
        for segment in segments {
            match segment {
                Segment::Literal(text) => rendered.push_str(&text),
                Segment::Engine => rendered.push_str(&engine),
                Segment::Out => rendered.push_str(&out),
                Segment::Workspace => match &workspace {
                    Some(ws) => rendered.push_str(ws),
                    None => return Err(fail("{workspace} used without a workspace".to_owned())),
                },
                Segment::Param(name) => match params.get(name) {
                    Some(value) => rendered.push_str(&value.to_string()),
                    None => {
                        return Err(PresetError::MissingParam {
                            preset: preset.name.clone(),
                            param: name.to_owned(),
                        });
                    }
                },
                // Unset and empty are the same refusal: an empty model dir is never meant.
                Segment::Env(name) => match ctx.env.get(name).filter(|v| !v.is_empty()) {
                    Some(value) => rendered.push_str(value),
                    None => {
                        return Err(PresetError::MissingEnv {
                            preset: preset.name.clone(),
                            var: name.to_owned(),
                        });
                    }
                },
            }
        }
        // exec cannot pass NUL; refuse here with a message instead of failing at spawn.
        if rendered.contains('\0') {
            return Err(fail(format!(
                "argv token {token:?} would contain a NUL byte"
            )));
        }
        argv.push(rendered);
    }
    Ok(argv)
}

#[cfg(test)]
mod tests;
