//! Request bodies of `/v1/chat/completions` and `/v1/completions`, read from untyped JSON so
//! every wrong field gets a 400 naming it, unknown fields are ignored, and unsupported
//! features (tools, logprobs, response_format) get a 501.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::template::Message;

/// Fields shared by both endpoints.
#[derive(Debug, Clone)]
pub struct Common {
    pub model: String,
    pub max_tokens: Option<usize>,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub kakeya: KakeyaExt,
}

/// The per-request extension object `kakeya`.
#[derive(Debug, Clone, Default)]
pub struct KakeyaExt {
    pub kv: Option<String>,
    pub drafter: Option<String>,
    pub block_size: Option<usize>,
    pub ignore_eos: bool,
}

pub enum Prompt {
    Chat(Vec<Message>),
    Text(String),
}

fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg).param(param)
}

/// Parse a body into an object (400 on anything else).
pub fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

fn opt_num(m: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| bad(key, format!("`{key}` must be a finite number"))),
        Some(_) => Err(bad(key, format!("`{key}` must be a number"))),
    }
}

fn opt_uint(m: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(key, format!("`{key}` must be a non-negative integer"))),
        Some(_) => Err(bad(key, format!("`{key}` must be an integer"))),
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(key, format!("`{key}` must be a boolean"))),
    }
}

fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, format!("`{key}` must be a string"))),
    }
}

/// 501 for features this server does not have (present and not the neutral value).
fn refuse_unsupported(m: &Map<String, Value>) -> Result<(), ApiError> {
    let present = |k: &str| !matches!(m.get(k), None | Some(Value::Null));
    for key in ["tools", "functions"] {
        if let Some(v) = m.get(key)
            && !matches!(v, Value::Null)
            && v.as_array().is_none_or(|a| !a.is_empty())
        {
            return Err(ApiError::not_implemented(key));
        }
    }
    for key in ["tool_choice", "function_call"] {
        if present(key) && m.get(key).and_then(Value::as_str) != Some("none") {
            return Err(ApiError::not_implemented(key));
        }
    }
    match m.get("logprobs") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        _ => return Err(ApiError::not_implemented("logprobs")),
    }
    if present("top_logprobs") {
        return Err(ApiError::not_implemented("top_logprobs"));
    }
    if let Some(rf) = m.get("response_format")
        && !matches!(rf, Value::Null)
        && rf.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(ApiError::not_implemented("response_format"));
    }
    Ok(())
}

fn stops(m: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let list = match m.get("stop") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("stop", "`stop` entries must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad("stop", "`stop` must be a string or a list of strings")),
    };
    if list.len() > 16 {
        return Err(bad("stop", "at most 16 stop strings"));
    }
    if list.iter().any(|s| s.len() > 512) {
        return Err(bad("stop", "stop strings are at most 512 bytes"));
    }
    Ok(list.into_iter().filter(|s| !s.is_empty()).collect())
}

fn kakeya_ext(m: &Map<String, Value>) -> Result<KakeyaExt, ApiError> {
    let k = match m.get("kakeya") {
        None | Some(Value::Null) => return Ok(KakeyaExt::default()),
        Some(Value::Object(k)) => k,
        Some(_) => return Err(bad("kakeya", "`kakeya` must be an object")),
    };
    let block_size = opt_uint(k, "block_size")
        .map_err(|e| e.param("kakeya.block_size"))?
        .map(|b| b as usize);
    Ok(KakeyaExt {
        kv: opt_str(k, "kv").map_err(|e| e.param("kakeya.kv"))?,
        drafter: opt_str(k, "drafter").map_err(|e| e.param("kakeya.drafter"))?,
        block_size,
        ignore_eos: opt_bool(k, "ignore_eos").map_err(|e| e.param("kakeya.ignore_eos"))?,
    })
}

pub fn common(m: &Map<String, Value>) -> Result<Common, ApiError> {
    refuse_unsupported(m)?;
    let model = match m.get("model") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(bad("model", "`model` is required")),
        Some(_) => return Err(bad("model", "`model` must be a string")),
    };
    if let Some(n) = opt_uint(m, "n")?
        && n != 1
    {
        return Err(bad("n", "only `n: 1` is supported"));
    }
    let max_tokens = match opt_uint(m, "max_completion_tokens")? {
        Some(v) => Some(v),
        None => opt_uint(m, "max_tokens")?,
    };
    let temperature = opt_num(m, "temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(bad("temperature", "`temperature` must be in [0, 2]"));
    }
    let top_p = opt_num(m, "top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(bad("top_p", "`top_p` must be in (0, 1]"));
    }
    let seed = match m.get("seed") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .or_else(|| n.as_i64().map(|i| i as u64))
                .ok_or_else(|| bad("seed", "`seed` must be an integer"))?,
        ),
        Some(_) => return Err(bad("seed", "`seed` must be an integer")),
    };
    let include_usage = match m.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => {
            opt_bool(o, "include_usage").map_err(|e| e.param("stream_options.include_usage"))?
        }
        Some(_) => return Err(bad("stream_options", "`stream_options` must be an object")),
    };
    Ok(Common {
        model,
        max_tokens: max_tokens.map(|v| v.min(usize::MAX as u64) as usize),
        temperature: temperature as f32,
        top_p: top_p as f32,
        seed,
        stop: stops(m)?,
        stream: opt_bool(m, "stream")?,
        include_usage,
        kakeya: kakeya_ext(m)?,
    })
}

/// `messages` of a chat request; content is a string or a list of text parts.
pub fn messages(m: &Map<String, Value>) -> Result<Vec<Message>, ApiError> {
    let list = match m.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(bad("messages", "`messages` must not be empty")),
        None | Some(Value::Null) => return Err(bad("messages", "`messages` is required")),
        Some(_) => return Err(bad("messages", "`messages` must be a list")),
    };
    list.iter()
        .enumerate()
        .map(|(i, msg)| {
            let p = format!("messages[{i}]");
            let o = msg
                .as_object()
                .ok_or_else(|| bad(&p, format!("`{p}` must be an object")))?;
            let role = match o.get("role") {
                Some(Value::String(r)) if !r.is_empty() => r.clone(),
                _ => return Err(bad(&p, format!("`{p}.role` must be a non-empty string"))),
            };
            if o.get("tool_calls").is_some_and(|v| !v.is_null()) {
                return Err(ApiError::not_implemented("tool_calls"));
            }
            let content = match o.get("content") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        match part.get("type").and_then(Value::as_str) {
                            Some("text") => match part.get("text") {
                                Some(Value::String(t)) => text.push_str(t),
                                _ => {
                                    return Err(bad(
                                        &p,
                                        format!("`{p}`: a text part needs a string `text`"),
                                    ));
                                }
                            },
                            Some(other) => {
                                return Err(ApiError::not_implemented(&format!(
                                    "content part type `{other}`"
                                )));
                            }
                            None => {
                                return Err(bad(
                                    &p,
                                    format!("`{p}`: every content part needs a `type`"),
                                ));
                            }
                        }
                    }
                    text
                }
                Some(_) => {
                    return Err(bad(
                        &p,
                        format!("`{p}.content` must be a string or a list of parts"),
                    ));
                }
            };
            Ok(Message { role, content })
        })
        .collect()
}

/// `prompt` of a completions request: a string or a list holding one string.
pub fn prompt_text(m: &Map<String, Value>) -> Result<String, ApiError> {
    match m.get("prompt") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            Ok(a[0].as_str().unwrap_or_default().to_string())
        }
        Some(Value::Array(_)) => Err(bad("prompt", "only a single prompt string is supported")),
        None | Some(Value::Null) => Err(bad("prompt", "`prompt` is required")),
        Some(_) => Err(bad("prompt", "`prompt` must be a string")),
    }
}
