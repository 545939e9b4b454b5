//! The only place the server touches the speculative loop (`specdec::speculative`, with the
//! `model` drafter or the prompt-lookup `ngram` drafter defined here). It streams and cancels
//! without changes to the loop: the target is wrapped so each verify forward followed by its
//! truncation reveals the committed tokens, which go to the sink; when the sink says stop, the
//! next forward of either side fails with a marker error that this adapter turns back into a
//! normal end.
//!
//! Merge note: rewire this file to the engine's `Drafter` trait API (model/ngram/dflash) and
//! its sink `&mut dyn FnMut(&[u32]) -> ControlFlow<()>`; nothing else in the server calls
//! specdec.

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

/// What proposes draft tokens.
pub enum Draft<'a> {
    Model(&'a CausalLm),
    /// Prompt lookup: continue the latest earlier occurrence of the last few tokens.
    Ngram,
}

/// The prompt-lookup drafter as a [`GreedyLm`]: its "cache" is the token history, and its
/// prediction after the history is the token that followed the latest earlier occurrence of
/// the longest matching suffix (up to [`NGRAM_MAX`] tokens). Stand-in until the engine's
/// `Drafter` API is wired here; the target verifies every token, so it cannot change output.
struct NgramLm {
    hist: Vec<u32>,
}

const NGRAM_MAX: usize = 3;

impl NgramLm {
    fn predict(&self) -> u32 {
        let h = &self.hist;
        let longest = NGRAM_MAX.min(h.len().saturating_sub(1));
        for n in (1..=longest).rev() {
            let tail = &h[h.len() - n..];
            if let Some(start) = (0..h.len() - n).rev().find(|&s| &h[s..s + n] == tail) {
                return h[start + n];
            }
        }
        h.last().copied().unwrap_or(0)
    }
}

impl GreedyLm for NgramLm {
    fn feed(&mut self, tokens: &[u32], _all: bool) -> Result<Vec<u32>, ModelError> {
        self.hist.extend_from_slice(tokens);
        Ok(vec![self.predict()])
    }

    fn len(&self) -> usize {
        self.hist.len()
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.hist.truncate(len);
        Ok(())
    }
}

/// Draft side: stops with the target once the sink has said stop.
struct DraftTap<'s> {
    inner: Box<dyn GreedyLm + 's>,
    stopped: &'s Cell<bool>,
}

impl GreedyLm for DraftTap<'_> {
    fn feed(&mut self, tokens: &[u32], all: bool) -> Result<Vec<u32>, ModelError> {
        if self.stopped.get() {
            return Err(ModelError::Internal(STOPPED.into()));
        }
        self.inner.feed(tokens, all)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        self.inner.truncate(len)
    }
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
    draft: Draft,
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
    let inner: Box<dyn GreedyLm> = match draft {
        Draft::Model(m) => Box::new(Session::new(m, &KvChannel::Raw)?),
        Draft::Ngram => Box::new(NgramLm { hist: Vec::new() }),
    };
    let mut d = DraftTap {
        inner,
        stopped: &stopped,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_continues_the_latest_match_of_the_longest_suffix() {
        let mut d = NgramLm { hist: Vec::new() };
        assert_eq!(
            d.feed(&[5, 6, 7, 9, 5, 6, 8, 1, 5, 6], false).unwrap(),
            vec![8]
        );
        assert_eq!(d.feed(&[7], false).unwrap(), vec![9]);
        d.truncate(2).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.feed(&[4], false).unwrap(), vec![4]);
    }
}
