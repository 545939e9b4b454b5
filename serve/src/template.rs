//! Chat templates rendered the way Hugging Face `apply_chat_template` does: the Jinja
//! template in `tokenizer_config.json`, with `trim_blocks`/`lstrip_blocks`, Python-style
//! string/dict/list methods (minijinja-contrib pycompat), `raise_exception`, `strftime_now`,
//! and a `tojson` that does not HTML-escape. Models without a template get a plain fallback.

use std::path::Path;

use kakeya_engine::tokenizer::TextTokenizer;
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, Value, context};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: {msg}")]
    Config { path: String, msg: String },
    /// The template refused the conversation (`raise_exception`) or failed while rendering.
    #[error("chat template: {0}")]
    Render(String),
}

/// One message as the template sees it (content already flattened to a string).
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// Strings that end an assistant turn in common templates.
const END_OF_TURN: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "</s>",
];

const FALLBACK: &str = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}\
{% if add_generation_prompt %}assistant:{% endif %}";

pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub is_fallback: bool,
}

fn token_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

fn tojson(value: Value, indent: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    // Jinja's `tojson(indent=N)`; other keyword arguments (sort_keys, …) are accepted and
    // ignored, as HF templates pass them.
    let indent = match indent {
        Some(n) => Some(n),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    let mut out = String::new();
    write_json(&value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

/// JSON of a template value in its own key order (Python dicts keep insertion order), with
/// no HTML escaping.
fn write_json(
    v: &Value,
    indent: Option<usize>,
    depth: usize,
    out: &mut String,
) -> Result<(), Error> {
    use minijinja::value::ValueKind;
    if depth > 64 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    let newline = |out: &mut String, d: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * d));
        }
    };
    let sep = if indent.is_some() { ": " } else { ":" };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            let n = serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
            out.push_str(&n.to_string());
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            let items: Vec<Value> = v.try_iter()?.collect();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            let keys: Vec<Value> = v.try_iter()?.collect();
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if indent.is_none() {
                        out.push(' ');
                    }
                }
                newline(out, depth + 1);
                let key = k.as_str().map_or_else(|| k.to_string(), str::to_string);
                out.push_str(&serde_json::Value::String(key).to_string());
                out.push_str(sep);
                if indent.is_none() {
                    out.push(' ');
                }
                write_json(&v.get_item(k)?, indent, depth + 1, out)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        _ => {
            let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            out.push_str(&serde_json::Value::String(s).to_string());
        }
    }
    Ok(())
}

impl ChatTemplate {
    /// Read `<dir>/tokenizer_config.json` (missing file or template = fallback).
    pub fn from_dir(dir: &Path) -> Result<Self, TemplateError> {
        let path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TemplateError::Config {
                path: path.display().to_string(),
                msg: e.to_string(),
            })?,
            Err(_) => serde_json::Value::Null,
        };
        let source = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: take "default" (or the first).
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or(list.first())
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            _ => None,
        };
        let is_fallback = source.is_none();
        let source = source.unwrap_or_else(|| FALLBACK.to_string());
        let t = Self::new(
            &source,
            token_string(cfg.get("bos_token")),
            token_string(cfg.get("eos_token")),
        )
        .map_err(|e| TemplateError::Config {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Ok(ChatTemplate { is_fallback, ..t })
    }

    pub fn new(
        source: &str,
        bos: Option<String>,
        eos: Option<String>,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", |fmt: String| -> Value {
            Value::from(crate::strftime::now(&fmt))
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| TemplateError::Render(format!("{e:#}")))?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos,
            eos,
            is_fallback: false,
        })
    }

    /// The prompt text for `messages`, ending with the assistant header.
    pub fn render(&self, messages: &[Message]) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Render(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos.clone().unwrap_or_default(),
            eos_token => self.eos.clone().unwrap_or_default(),
            tools => Value::from(()),
        })
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidOperation => {
                TemplateError::Render(e.detail().map_or_else(|| e.to_string(), str::to_string))
            }
            _ => TemplateError::Render(e.to_string()),
        })
    }

    /// Ids of the configured EOS token and of end-of-turn markers the template writes.
    pub fn end_of_turn_ids(&self, tok: &TextTokenizer) -> Vec<u32> {
        let mut ids: Vec<u32> = self.eos.iter().filter_map(|s| tok.token_id(s)).collect();
        for marker in END_OF_TURN {
            if self.source.contains(marker)
                && let Some(id) = tok.token_id(marker)
            {
                ids.push(id);
            }
        }
        ids
    }
}

/// Token ids of a rendered prompt: a template that writes the BOS itself and a tokenizer
/// that also adds one would give two; keep one.
pub fn dedup_bos(mut ids: Vec<u32>, bos: Option<u32>) -> Vec<u32> {
    if let Some(b) = bos
        && ids.len() >= 2
        && ids[0] == b
        && ids[1] == b
    {
        ids.remove(0);
    }
    ids
}

#[cfg(test)]
mod tests;
