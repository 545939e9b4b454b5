//! The only place the server touches the speculative loop (`specdec::speculative` with the
//! `model` drafter). It streams and cancels without changes to the loop: the target is wrapped
//! so each verify forward followed by its truncation reveals the committed tokens, which go to
//! the sink; when the sink says stop, the next forward of either model fails with a marker
//! error that this adapter turns back into a normal end.
//!
//! Merge note: rewire this file to the `Drafter` trait API (ngram/dflash) and its sink
//! `&mut dyn FnMut(&[u32]) -> ControlFlow<()>`; nothing else in the server calls specdec.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Instant;

use kakeya_engine::generate::{GreedyLm, Session};
use kakeya_engine::model::{CausalLm, KvChannel, ModelCache, ModelError};
use kakeya_engine::specdec::{SpecOptions, speculative};

/// Counts for `x_kakeya` and stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpecCounts {
    pub drafted: u64,
    pub accepted: u64,
    pub blocks: u64,
    pub prefill_s: f64,
}

/// Receives each committed block; `Break` ends generation.
pub type Sink<'s> = &'s mut dyn FnMut(&[u32]) -> ControlFlow<()>;

const STOPPED: &str = "kakeya-serve: generation stopped by its sink";

struct Tap<'a, 's> {
    inner: Session<'a>,
    /// The last verify block: cache length before it and its candidates.
    pending: Option<(usize, Vec<u32>)>,
    stopped: &'s Cell<bool>,
    sink: Option<Sink<'s>>,
    counts: SpecCounts,
    t0: Instant,
}

impl GreedyLm for Tap<'_, '_> {
    fn feed(&mut self, tokens: &[u32], all: bool) -> Result<Vec<u32>, ModelError> {
        if self.stopped.get() {
            return Err(ModelError::Internal(STOPPED.into()));
        }
        let base = self.inner.len();
        let out = self.inner.feed(tokens, all)?;
        if self.sink.is_some() {
            if all {
                self.pending = Some((base, tokens.to_vec()));
            } else if self.counts.prefill_s == 0.0 {
                self.counts.prefill_s = self.t0.elapsed().as_secs_f64();
            }
        }
        Ok(out)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.inner.truncate(len)?;
        if let (Some((base, cand)), Some(sink)) = (self.pending.take(), self.sink.as_mut()) {
            let a = len.saturating_sub(base).min(cand.len());
            self.counts.blocks += 1;
            self.counts.drafted += cand.len().saturating_sub(1) as u64;
            self.counts.accepted += a.saturating_sub(1) as u64;
            if sink(&cand[..a]).is_break() {
                self.stopped.set(true);
            }
        }
        Ok(())
    }
}

/// Greedy speculative decoding of `prompt` with `draft`, every committed block passed to
/// `sink` (which ends generation with `Break`). Returns the target cache and the counts.
pub fn run(
    target: &CausalLm,
    draft: &CausalLm,
    kv: &KvChannel,
    prompt: &[u32],
    block_size: usize,
    sink: &mut dyn FnMut(&[u32]) -> ControlFlow<()>,
) -> Result<(ModelCache, SpecCounts), ModelError> {
    let stopped = Cell::new(false);
    let mut t = Tap {
        inner: Session::new(target, kv)?,
        pending: None,
        stopped: &stopped,
        sink: Some(sink),
        counts: SpecCounts::default(),
        t0: Instant::now(),
    };
    let mut d = Tap {
        inner: Session::new(draft, &KvChannel::Raw)?,
        pending: None,
        stopped: &stopped,
        sink: None,
        counts: SpecCounts::default(),
        t0: Instant::now(),
    };
    let opts = SpecOptions {
        block_size,
        // The sink enforces max_tokens; the loop only needs a bound it never reaches first.
        max_new_tokens: target.config().max_position_embeddings.max(1) + block_size,
        stop: Vec::new(),
    };
    match speculative(&mut t, &mut d, prompt, &opts) {
        Ok(_) => {}
        Err(ModelError::Internal(m)) if m == STOPPED => {}
        Err(e) => return Err(e),
    }
    Ok((t.inner.cache, t.counts))
}
