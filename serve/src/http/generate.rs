//! `/v1/chat/completions`, `/v1/completions` and `/v1/kakeya/template`: validate the body,
//! render and tokenize the prompt, resolve the `kakeya` extension against what the model was
//! started with, and queue the job.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kakeya_engine::model::KvChannel;
use serde_json::{Map, Value, json};

use super::AppState;
use super::respond::{self, Kind, Meta};
use crate::engine::{DrafterKind, GenRequest, Job, LoadedModel, Sampling, Worker};
use crate::error::ApiError;
use crate::request::{self, Common, KakeyaExt};
use crate::template::dedup_bos;

fn body_map(
    st: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(st.body_limit)
        } else {
            ApiError::bad_request(format!("could not read the body: {r}"))
        }
    })?;
    request::parse_body(&bytes)
}

/// Token ids of the prompt (never empty).
fn tokenize(model: &LoadedModel, text: &str) -> Result<Vec<u32>, ApiError> {
    let ids = model
        .tokenizer
        .encode(text)
        .map_err(|e| ApiError::bad_request(format!("could not tokenize the prompt: {e}")))?;
    let bos = model.lm.config().bos_token_id;
    let mut ids = dedup_bos(ids, bos);
    if ids.is_empty() {
        ids.extend(bos);
    }
    if ids.is_empty() {
        return Err(ApiError::bad_request("the prompt encodes to no tokens").param("messages"));
    }
    Ok(ids)
}

fn chat_prompt(
    model: &LoadedModel,
    m: &Map<String, Value>,
) -> Result<(String, Vec<u32>), ApiError> {
    let messages = request::messages(m)?;
    let text = model.template.render(&messages).map_err(|e| {
        ApiError::bad_request(e.to_string())
            .param("messages")
            .code("invalid_chat_template_input")
    })?;
    let ids = tokenize(model, &text)?;
    Ok((text, ids))
}

/// Resolve `kakeya: {kv, drafter, block_size}` within the model's configuration.
fn resolve_ext(
    model: &LoadedModel,
    ext: &KakeyaExt,
) -> Result<(KvChannel, Option<usize>), ApiError> {
    let kv = match &ext.kv {
        None => model.default_kv(),
        Some(s) => {
            let ch: KvChannel = s
                .parse()
                .map_err(|e| ApiError::bad_request(format!("{e}")).param("kakeya.kv"))?;
            if !model.spec.kv.contains(&ch) {
                let allowed: Vec<String> = model.spec.kv.iter().map(|k| k.to_string()).collect();
                return Err(ApiError::bad_request(format!(
                    "kv channel `{ch}` is not enabled for this model (started with {allowed:?})"
                ))
                .param("kakeya.kv"));
            }
            ch
        }
    };
    let drafter = match ext.drafter.as_deref() {
        None => model.drafter,
        Some(s) => {
            let d = DrafterKind::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown drafter `{s}` (none, model, ngram, dflash)"
                ))
                .param("kakeya.drafter")
            })?;
            if d != DrafterKind::None && d != model.drafter {
                return Err(ApiError::bad_request(format!(
                    "drafter `{s}` was not enabled when the server started (it has `{}`)",
                    model.drafter.name()
                ))
                .param("kakeya.drafter"));
            }
            d
        }
    };
    let block = match ext.block_size {
        Some(b) if !(1..=64).contains(&b) => {
            return Err(
                ApiError::bad_request("`kakeya.block_size` must be in 1..=64")
                    .param("kakeya.block_size"),
            );
        }
        Some(b) => b,
        None => model.spec.block_size,
    };
    let usable = match drafter {
        DrafterKind::Model => model.draft.is_some(),
        DrafterKind::Ngram => true,
        DrafterKind::Dflash => model.dflash.is_some(),
        DrafterKind::None => false,
    };
    let block = usable.then_some(block);
    Ok((kv, block))
}

static SEED_COUNTER: AtomicU64 = AtomicU64::new(0);

fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ SEED_COUNTER
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn build(
    st: &AppState,
    model: &LoadedModel,
    c: &Common,
    prompt: Vec<u32>,
) -> Result<GenRequest, ApiError> {
    let ctx = model.context;
    if prompt.len() >= ctx {
        return Err(ApiError::bad_request(format!(
            "the prompt has {} tokens; the model's context is {ctx}",
            prompt.len()
        ))
        .param("messages")
        .code("context_length_exceeded"));
    }
    let room = ctx - prompt.len();
    let max_tokens = match c.max_tokens {
        Some(m) if m > room => {
            return Err(ApiError::bad_request(format!(
                "prompt ({} tokens) + max_tokens ({m}) exceeds the model's context of {ctx}",
                prompt.len()
            ))
            .param("max_tokens")
            .code("context_length_exceeded"));
        }
        Some(m) => m,
        None => st.default_max_tokens.min(room),
    };
    let (kv, block_size) = resolve_ext(model, &c.kakeya)?;
    Ok(GenRequest {
        prompt,
        max_tokens,
        sampling: Sampling {
            temperature: c.temperature,
            top_p: c.top_p,
            seed: c.seed.unwrap_or_else(fresh_seed),
        },
        stop: c.stop.clone(),
        kv,
        block_size,
        ignore_eos: c.kakeya.ignore_eos,
    })
}

async fn run(
    st: Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
    kind: Kind,
) -> Result<Response, ApiError> {
    let m = body_map(&st, body)?;
    let c = request::common(&m)?;
    let worker: Arc<Worker> = st.worker(&c.model)?;
    let model = &worker.model;
    let prompt = match kind {
        Kind::Chat => chat_prompt(model, &m)?.1,
        Kind::Text => tokenize(model, &request::prompt_text(&m)?)?,
    };
    let req = build(&st, model, &c, prompt)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    worker
        .submit(Job {
            req,
            tx,
            enqueued: Instant::now(),
        })
        .map_err(|_| ApiError::overloaded())?;
    let meta = Meta::new(kind, &c);
    Ok(if c.stream {
        respond::stream(meta, rx)
    } else {
        respond::whole(meta, rx).await
    })
}

pub async fn chat(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(st, body, Kind::Chat)
        .await
        .unwrap_or_else(|e| e.into_response())
}

pub async fn completions(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(st, body, Kind::Text)
        .await
        .unwrap_or_else(|e| e.into_response())
}

/// Render a chat request's prompt without generating (like llama.cpp's `/apply-template`).
pub async fn template(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let go = || -> Result<Response, ApiError> {
        let m = body_map(&st, body)?;
        let id = match m.get("model") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(ApiError::bad_request("`model` must be a string").param("model")),
        };
        let worker = st.worker(&id)?;
        let (text, ids) = chat_prompt(&worker.model, &m)?;
        Ok(
            axum::Json(json!({"prompt": text, "prompt_tokens": ids.len(), "tokens": ids}))
                .into_response(),
        )
    };
    go().unwrap_or_else(|e| e.into_response())
}
