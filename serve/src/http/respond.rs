//! Turning a job's events into OpenAI responses: one JSON body, or an SSE stream (role chunk
//! first, content chunks, a chunk with `finish_reason` and `x_kakeya`, an optional usage chunk
//! with `choices: []`, then `data: [DONE]`; a failure mid-stream is an `{"error": …}` event
//! followed by `[DONE]`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::{Event, Summary};
use crate::error::ApiError;
use crate::request::Common;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Text,
}

/// Seconds between SSE keep-alive comments (set once at start-up).
pub static KEEP_ALIVE_SECS: AtomicU64 = AtomicU64::new(10);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct Meta {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl Meta {
    pub fn new(kind: Kind, c: &Common) -> Self {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let prefix = if kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        };
        Meta {
            kind,
            id: format!("{prefix}-{created:x}{n:06x}"),
            created,
            model: c.model.clone(),
            include_usage: c.include_usage,
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": concat!("kakeya-", env!("CARGO_PKG_VERSION")),
            "choices": choices,
        })
    }

    fn choice(&self, text: Option<&str>, role: bool, finish: Option<&str>, chunk: bool) -> Value {
        match (self.kind, chunk) {
            (Kind::Chat, false) => json!({"index": 0, "logprobs": null, "finish_reason": finish,
                "message": {"role": "assistant", "content": text.unwrap_or("")}}),
            (Kind::Chat, true) => {
                let mut delta = serde_json::Map::new();
                if role {
                    delta.insert("role".into(), "assistant".into());
                }
                if let Some(t) = text {
                    delta.insert("content".into(), t.into());
                }
                json!({"index": 0, "logprobs": null, "finish_reason": finish, "delta": delta})
            }
            (Kind::Text, _) => json!({"index": 0, "logprobs": null, "finish_reason": finish,
                "text": text.unwrap_or("")}),
        }
    }
}

fn usage(s: &Summary) -> Value {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
    })
}

fn engine_gone() -> ApiError {
    ApiError::internal("the engine worker stopped before finishing")
}

fn shutdown_error() -> ApiError {
    let mut e = ApiError::internal("the server is shutting down; generation was cancelled");
    e.status = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    e.kind = "server_shutdown";
    e
}

/// Wait for the whole generation and answer with one JSON body.
pub async fn whole(meta: Meta, mut rx: UnboundedReceiver<Event>) -> Response {
    let mut text = String::new();
    loop {
        match rx.recv().await {
            Some(Event::Delta(t)) => text.push_str(&t),
            Some(Event::Done(s)) if s.cancelled => return shutdown_error().into_response(),
            Some(Event::Done(s)) => {
                let choice = meta.choice(Some(&text), true, Some(s.finish_reason), false);
                let mut body = meta.envelope(false, json!([choice]));
                body["usage"] = usage(&s);
                body["x_kakeya"] = serde_json::to_value(&s).unwrap_or_default();
                return axum::Json(body).into_response();
            }
            Some(Event::Error(e)) => return ApiError::internal(e).into_response(),
            None => return engine_gone().into_response(),
        }
    }
}

struct StreamState {
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    queue: VecDeque<SseEvent>,
    done: bool,
}

fn data(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

impl StreamState {
    fn on(&mut self, ev: Option<Event>) {
        let m = &self.meta;
        match ev {
            Some(Event::Delta(t)) => {
                let c = m.choice(Some(&t), false, None, true);
                self.queue.push_back(data(&m.envelope(true, json!([c]))));
                return;
            }
            Some(Event::Done(s)) if s.cancelled => {
                self.queue.push_back(data(&shutdown_error().body()));
            }
            Some(Event::Done(s)) => {
                let text = (m.kind == Kind::Text).then_some("");
                let c = m.choice(text, false, Some(s.finish_reason), true);
                let mut last = m.envelope(true, json!([c]));
                last["x_kakeya"] = serde_json::to_value(&s).unwrap_or_default();
                self.queue.push_back(data(&last));
                if m.include_usage {
                    let mut u = m.envelope(true, json!([]));
                    u["usage"] = usage(&s);
                    self.queue.push_back(data(&u));
                }
            }
            Some(Event::Error(e)) => self.queue.push_back(data(&ApiError::internal(e).body())),
            None => self.queue.push_back(data(&engine_gone().body())),
        }
        self.queue.push_back(SseEvent::default().data("[DONE]"));
        self.done = true;
    }
}

/// Answer with an SSE stream; dropping it (client gone) drops `rx`, which the worker sees.
pub fn stream(meta: Meta, rx: UnboundedReceiver<Event>) -> Response {
    let mut st = StreamState {
        queue: VecDeque::new(),
        rx,
        done: false,
        meta,
    };
    if st.meta.kind == Kind::Chat {
        let c = st.meta.choice(Some(""), true, None, true);
        let first = data(&st.meta.envelope(true, json!([c])));
        st.queue.push_back(first);
    }
    let s = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((Ok::<_, Infallible>(ev), st));
            }
            if st.done {
                return None;
            }
            let ev = st.rx.recv().await;
            st.on(ev);
        }
    });
    let secs = KEEP_ALIVE_SECS.load(Ordering::Relaxed).max(1);
    Sse::new(s)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(secs))
                .text("keep-alive"),
        )
        .into_response()
}
