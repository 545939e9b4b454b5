//! The HTTP side: routes, API-key check, body limit, and the small read-only endpoints.

mod generate;
mod respond;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::engine::Worker;
use crate::error::ApiError;
use crate::stats;

/// Shared by every handler.
pub struct AppState {
    /// Configured model ids, in order (known before they finish loading).
    pub ids: Vec<String>,
    pub workers: RwLock<HashMap<String, Arc<Worker>>>,
    pub load_failed: RwLock<Option<String>>,
    pub api_key: Option<String>,
    pub body_limit: usize,
    pub shutdown: Arc<AtomicBool>,
    pub default_max_tokens: usize,
}

impl AppState {
    pub fn ready(&self) -> bool {
        let w = self.workers.read().unwrap_or_else(|p| p.into_inner());
        self.ids.iter().all(|id| w.contains_key(id))
    }

    /// The worker of `id`: 404 when not configured, 503 while loading.
    pub fn worker(&self, id: &str) -> Result<Arc<Worker>, ApiError> {
        if !self.ids.iter().any(|i| i == id) {
            return Err(ApiError::not_found_model(id));
        }
        self.workers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(ApiError::loading)
    }

    fn snapshots(&self) -> Vec<(String, stats::Counters)> {
        let w = self.workers.read().unwrap_or_else(|p| p.into_inner());
        self.ids
            .iter()
            .filter_map(|id| w.get(id).map(|wk| (id.clone(), wk.stats.snapshot())))
            .collect()
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(generate::chat))
        .route("/v1/completions", post(generate::completions))
        .route("/v1/kakeya/template", post(generate::template))
        .route("/v1/kakeya/stats", get(kakeya_stats))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(|| async { ApiError::not_found_route() })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Constant-time comparison of the bearer token with the configured key.
fn key_matches(given: &[u8], key: &[u8]) -> bool {
    if given.len() != key.len() {
        // Still spend a comparison so timing says nothing beyond the length.
        let _ = key.ct_eq(key);
        return false;
    }
    given.ct_eq(key).into()
}

async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &st.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        if !key_matches(given.trim().as_bytes(), key.as_bytes()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    if let Some(e) = st
        .load_failed
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "error", "error": e})),
        )
            .into_response();
    }
    if st.shutdown.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "shutting_down"})),
        )
            .into_response();
    }
    if st.ready() {
        axum::Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

async fn models(State(st): State<Arc<AppState>>) -> Response {
    let w = st.workers.read().unwrap_or_else(|p| p.into_inner());
    let data: Vec<_> = st
        .ids
        .iter()
        .map(|id| {
            let m = w.get(id).map(|wk| &wk.model);
            json!({
                "id": id,
                "object": "model",
                "created": m.map_or(0, |m| m.created),
                "owned_by": "kakeya",
                "ready": m.is_some(),
                "context_length": m.map(|m| m.context),
                "kv": m.map(|m| m.spec.kv.iter().map(|k| k.to_string()).collect::<Vec<_>>()),
                "drafter": m.map(|m| m.drafter.name()),
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn kakeya_stats(State(st): State<Arc<AppState>>) -> Response {
    let snaps = st.snapshots();
    let mut total = stats::Counters::default();
    for (_, c) in &snaps {
        total.requests += c.requests;
        total.requests_cancelled += c.requests_cancelled;
        total.completion_tokens += c.completion_tokens;
        total.queue_depth += c.queue_depth;
    }
    let models: serde_json::Map<String, serde_json::Value> = snaps
        .into_iter()
        .map(|(id, c)| (id, serde_json::to_value(c).unwrap_or_default()))
        .collect();
    axum::Json(json!({
        "ready": st.ready(),
        "models": models,
        "requests": total.requests,
        "requests_cancelled": total.requests_cancelled,
        "completion_tokens": total.completion_tokens,
        "queue_depth": total.queue_depth,
    }))
    .into_response()
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        stats::prometheus(&st.snapshots()),
    )
        .into_response()
}

/// Seconds between SSE keep-alive comments.
pub fn set_keep_alive(secs: u64) {
    respond::KEEP_ALIVE_SECS.store(secs.max(1), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_compare() {
        assert!(super::key_matches(b"abc", b"abc"));
        assert!(!super::key_matches(b"abd", b"abc"));
        assert!(!super::key_matches(b"ab", b"abc"));
        assert!(!super::key_matches(b"", b"abc"));
    }
}
