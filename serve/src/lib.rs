//! `kakeya-serve`: an OpenAI-compatible local HTTP server on the Kakeya engine (compressed
//! KV cache, speculative decoding). Owns the HTTP API (axum), chat templating (minijinja),
//! request validation, one engine worker per model with a bounded queue, and the server's
//! stats; the engine library stays free of HTTP. Started by `kakeya serve` (see docs/SERVE.md).

pub mod cli;
pub mod engine;
pub mod error;
pub mod http;
pub mod request;
pub mod stats;
mod strftime;
pub mod template;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;

use crate::engine::{LoadedModel, Worker};
use crate::http::AppState;
use crate::stats::ModelStats;

/// Bind, load the models in the background (`/health` is 503 until they are ready), serve
/// until SIGTERM or Ctrl-C, then drain and return.
pub async fn run(args: cli::Args) -> anyhow::Result<()> {
    let specs = cli::model_specs(&args)?;
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    http::set_keep_alive(args.keep_alive_secs);
    let shutdown = Arc::new(AtomicBool::new(false));
    let state = Arc::new(AppState {
        ids: specs.iter().map(|s| s.id.clone()).collect(),
        workers: RwLock::new(HashMap::new()),
        load_failed: RwLock::new(None),
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        body_limit: args.max_body_bytes,
        shutdown: shutdown.clone(),
        default_max_tokens: args.default_max_tokens.max(1),
    });
    {
        let (state, shutdown, max_queue) = (state.clone(), shutdown.clone(), args.max_queue);
        std::thread::Builder::new()
            .name("model-loader".into())
            .spawn(move || {
                for spec in specs {
                    let t0 = std::time::Instant::now();
                    let loaded = LoadedModel::load(&spec)
                        .map_err(|e| format!("model `{}`: {e}", spec.id))
                        .and_then(|m| {
                            Worker::spawn(Arc::new(m), Arc::new(ModelStats::default()), max_queue, shutdown.clone())
                                .map_err(|e| format!("model `{}`: worker thread: {e}", spec.id))
                        });
                    match loaded {
                        Ok(w) => {
                            tracing::info!(model = %spec.id, secs = t0.elapsed().as_secs_f64(), "model ready");
                            state.workers.write().unwrap_or_else(|p| p.into_inner()).insert(spec.id.clone(), Arc::new(w));
                        }
                        Err(e) => {
                            tracing::error!("{e}");
                            eprintln!("kakeya-serve: error: {e}");
                            *state.load_failed.write().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            return;
                        }
                    }
                }
            })?;
    }
    println!("kakeya-serve: listening on http://{local}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let grace = Duration::from_secs_f64(args.shutdown_grace_secs.clamp(0.0, 3600.0));
    let app = http::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: no new connections; draining in-flight requests");
            eprintln!("kakeya-serve: shutting down");
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                shutdown.store(true, Ordering::Relaxed);
            });
        })
        .await
        .context("serving")?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = ctrl_c => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
