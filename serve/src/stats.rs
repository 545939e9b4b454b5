//! Counters behind `/v1/kakeya/stats` (JSON) and `/metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::engine::Summary;

/// One model's counters.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub requests: u64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub requests_cancelled: u64,
    pub rejected_queue_full: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub drafted_tokens: u64,
    pub accepted_tokens: u64,
    pub spec_blocks: u64,
    pub mean_accepted_len: Option<f64>,
    /// Over finished requests: KV bytes held at their end, and what raw storage would cost.
    pub kv_bytes_held: u64,
    pub kv_bytes_raw: u64,
    pub codec_fired: u64,
    pub codec_skipped: u64,
    pub queue_depth: u64,
    pub running: u64,
}

#[derive(Default)]
pub struct ModelStats {
    inner: Mutex<Counters>,
    queued: AtomicU64,
}

impl ModelStats {
    fn with(&self, f: impl FnOnce(&mut Counters)) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }

    pub fn queue_entered(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queue_left(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| q.checked_sub(1));
    }

    pub fn rejected(&self) {
        self.with(|c| c.rejected_queue_full += 1);
    }

    pub fn started(&self) {
        self.with(|c| c.running += 1);
    }

    pub fn failed(&self) {
        self.with(|c| {
            c.requests += 1;
            c.requests_failed += 1;
            c.running = c.running.saturating_sub(1);
        });
    }

    pub fn finished(&self, s: &Summary) {
        self.with(|c| {
            c.requests += 1;
            if s.cancelled {
                c.requests_cancelled += 1;
            } else {
                c.requests_ok += 1;
            }
            if s.total_s > 0.0 || s.prompt_tokens > 0 {
                c.running = c.running.saturating_sub(1);
            }
            c.prompt_tokens += s.prompt_tokens as u64;
            c.completion_tokens += s.completion_tokens as u64;
            c.drafted_tokens += s.drafted_tokens;
            c.accepted_tokens += s.accepted_tokens;
            c.spec_blocks += s.spec_blocks;
            c.kv_bytes_held += s.kv_bytes_held;
            c.kv_bytes_raw += s.kv_bytes_raw;
            c.codec_fired += s.codec_fired;
            c.codec_skipped += s.codec_skipped;
        });
    }

    pub fn snapshot(&self) -> Counters {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone();
        c.queue_depth = self.queued.load(Ordering::Relaxed);
        if c.spec_blocks > 0 {
            c.mean_accepted_len =
                Some((c.accepted_tokens + c.spec_blocks) as f64 / c.spec_blocks as f64);
        }
        c
    }
}

/// Name, type, help, value.
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Counters) -> f64,
);

/// Prometheus exposition of every model's counters.
pub fn prometheus(models: &[(String, Counters)]) -> String {
    let mut out = String::new();
    let metrics: [Metric; 15] = [
        (
            "kakeya_requests_total",
            "counter",
            "Generations finished or failed",
            |c| c.requests as f64,
        ),
        (
            "kakeya_requests_ok_total",
            "counter",
            "Generations that ran to their end",
            |c| c.requests_ok as f64,
        ),
        (
            "kakeya_requests_failed_total",
            "counter",
            "Generations that failed in the engine",
            |c| c.requests_failed as f64,
        ),
        (
            "kakeya_requests_cancelled_total",
            "counter",
            "Generations stopped by a disconnect or shutdown",
            |c| c.requests_cancelled as f64,
        ),
        (
            "kakeya_rejected_queue_full_total",
            "counter",
            "Requests refused because the queue was full",
            |c| c.rejected_queue_full as f64,
        ),
        (
            "kakeya_prompt_tokens_total",
            "counter",
            "Prompt tokens processed",
            |c| c.prompt_tokens as f64,
        ),
        (
            "kakeya_completion_tokens_total",
            "counter",
            "Tokens generated",
            |c| c.completion_tokens as f64,
        ),
        (
            "kakeya_drafted_tokens_total",
            "counter",
            "Draft tokens proposed",
            |c| c.drafted_tokens as f64,
        ),
        (
            "kakeya_accepted_tokens_total",
            "counter",
            "Draft tokens accepted",
            |c| c.accepted_tokens as f64,
        ),
        (
            "kakeya_spec_blocks_total",
            "counter",
            "Speculative verify blocks",
            |c| c.spec_blocks as f64,
        ),
        (
            "kakeya_kv_bytes_held_total",
            "counter",
            "KV bytes held at the end of finished requests",
            |c| c.kv_bytes_held as f64,
        ),
        (
            "kakeya_kv_bytes_raw_total",
            "counter",
            "Raw KV bytes for the same tokens",
            |c| c.kv_bytes_raw as f64,
        ),
        (
            "kakeya_codec_fired_total",
            "counter",
            "KV appends that went through the lattice codec",
            |c| c.codec_fired as f64,
        ),
        (
            "kakeya_queue_depth",
            "gauge",
            "Requests waiting for the engine worker",
            |c| c.queue_depth as f64,
        ),
        ("kakeya_running", "gauge", "Requests being generated", |c| {
            c.running as f64
        }),
    ];
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (id, c) in models {
            let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", escape(id), get(c));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
