//! The engine side of the server: one worker thread per model owning the model, fed by a
//! bounded queue; each job streams [`Event`]s back to its HTTP handler and stops as soon as
//! that handler goes away (client disconnect) or the server shuts down.

mod decode;
pub mod model;
pub mod sample;
pub mod spec;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use kakeya_engine::model::KvChannel;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

pub use model::{DrafterKind, LoadedModel};
pub use sample::Sampling;

use crate::stats::ModelStats;

/// One generation, fully validated.
#[derive(Debug, Clone)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    pub kv: KvChannel,
    /// Speculative decoding block size; `None` = plain decoding.
    pub block_size: Option<usize>,
    pub ignore_eos: bool,
}

/// What a job sends back.
#[derive(Debug)]
pub enum Event {
    /// Text to append (never empty).
    Delta(String),
    Done(Summary),
    Error(String),
}

/// End-of-generation facts, returned as `usage` and `x_kakeya`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    #[serde(skip)]
    pub finish_reason: &'static str,
    #[serde(skip)]
    pub prompt_tokens: usize,
    #[serde(skip)]
    pub completion_tokens: usize,
    pub kv: String,
    pub drafter: String,
    pub block_size: Option<usize>,
    pub drafted_tokens: u64,
    pub accepted_tokens: u64,
    pub spec_blocks: u64,
    pub mean_accepted_len: Option<f64>,
    pub kv_bytes_held: u64,
    pub kv_bytes_raw: u64,
    pub codec_fired: u64,
    pub codec_skipped: u64,
    #[serde(skip)]
    pub cancelled: bool,
    pub queue_s: f64,
    pub prefill_s: f64,
    pub total_s: f64,
}

pub struct Job {
    pub req: GenRequest,
    pub tx: UnboundedSender<Event>,
    pub enqueued: Instant,
}

/// Handle to a model's worker.
pub struct Worker {
    tx: SyncSender<Job>,
    pub model: Arc<LoadedModel>,
    pub stats: Arc<ModelStats>,
}

/// Why a job was not queued.
#[derive(Debug)]
pub struct QueueFull;

impl Worker {
    /// Start the worker thread; at most `max_queue` jobs wait behind the running one.
    pub fn spawn(
        model: Arc<LoadedModel>,
        stats: Arc<ModelStats>,
        max_queue: usize,
        shutdown: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(max_queue.max(1));
        let (m, s) = (model.clone(), stats.clone());
        std::thread::Builder::new()
            .name(format!("engine-{}", model.id))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    s.queue_left();
                    run_job(&m, &s, job, &shutdown);
                }
            })?;
        Ok(Worker { tx, model, stats })
    }

    pub fn submit(&self, job: Job) -> Result<(), QueueFull> {
        self.stats.queue_entered();
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.queue_left();
                self.stats.rejected();
                Err(QueueFull)
            }
        }
    }
}

fn run_job(model: &LoadedModel, stats: &ModelStats, job: Job, shutdown: &AtomicBool) {
    let queue_s = job.enqueued.elapsed().as_secs_f64();
    if job.tx.is_closed() {
        stats.finished(&Summary {
            cancelled: true,
            ..Summary::default()
        });
        return;
    }
    stats.started();
    let cancelled = || job.tx.is_closed() || shutdown.load(Ordering::Relaxed);
    let mut emit = |text: String| {
        if !text.is_empty() {
            let _ = job.tx.send(Event::Delta(text));
        }
    };
    match decode::generate(model, &job.req, &cancelled, &mut emit) {
        Ok(mut summary) => {
            summary.queue_s = queue_s;
            stats.finished(&summary);
            let _ = job.tx.send(Event::Done(summary));
        }
        Err(e) => {
            tracing::warn!(model = %model.id, "generation failed: {e}");
            stats.failed();
            let _ = job.tx.send(Event::Error(e.to_string()));
        }
    }
}
