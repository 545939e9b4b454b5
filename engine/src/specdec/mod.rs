//! Greedy speculative decoding with a pluggable [`Drafter`] (a draft model, prompt lookup,
//! DFlash, or the benchmark-only replay), lossless with respect to the target's plain greedy
//! decode.
//!
//! Per block of `L = min(block_size, remaining)` (or the adaptive L, see [`BlockPolicy`]):
//! 1. the bonus `b` is the target's argmax after everything committed (always correct);
//! 2. the drafter proposes up to `L − 1` tokens to follow `b`; when it proposes nothing,
//!    the block is one plain decode step of `b` (no verify overhead);
//! 3. one target forward over `[b, d₁ … d_{L−1}]` gives the target's argmax after each;
//! 4. accept the leading run: `a = 1 +` the number of drafts that equal the target's own
//!    prediction at their position (`1 ≤ a ≤ L`);
//! 5. commit `c[0..a]`, cut both caches back to the committed length (the rejected tail is
//!    simply truncated — the caches are append-only with an explicit length), and carry the
//!    target's prediction after `c[a−1]` as the next bonus without forwarding it yet.
//!
//! Every committed token is the target's argmax given the committed prefix, computed from
//! exactly the tokens plain decoding would have fed — so the stream equals greedy decoding.
//! With the exact kernels the logits are bit-identical too (block forward == single steps),
//! so not even a near-tie can flip.

pub mod acceptance;
pub mod dflash;
pub mod drafter;
pub mod model_drafter;
pub mod ngram;
pub mod prompts;
pub mod replay;
pub mod run;

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::Tensor;

pub use drafter::{BlockPolicy, DraftCost, Drafter};
pub use model_drafter::ModelDrafter;

use crate::generate::GreedyLm;
use crate::model::ModelError;

/// Loop parameters.
#[derive(Debug, Clone)]
pub struct SpecOptions {
    /// Largest candidate length L (bonus + L−1 drafts).
    pub block_size: usize,
    pub max_new_tokens: usize,
    pub stop: Vec<u32>,
}

/// What one speculative decode did, with its measured time split.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SpecOutput {
    pub tokens: Vec<u32>,
    /// Tokens committed per block (bonus included; the last block is cut at a stop token).
    pub accepted_lens: Vec<usize>,
    /// Candidate length of each block: 1 + the drafts actually proposed.
    pub block_lens: Vec<usize>,
    pub stopped_on_eos: bool,
    /// The sink asked to stop (client gone, stop string); `tokens` is what was sent.
    pub cancelled: bool,
    pub prefill_s: f64,
    pub draft_s: f64,
    pub verify_s: f64,
    pub total_s: f64,
    pub draft_forwards: u64,
    pub verify_forwards: u64,
    /// Blocks where the drafter proposed nothing (one plain decode step each).
    pub plain_steps: u64,
}

impl SpecOutput {
    pub fn blocks(&self) -> usize {
        self.accepted_lens.len()
    }

    /// Drafted tokens accepted / drafted tokens proposed (None when nothing was drafted).
    pub fn acceptance_rate(&self) -> Option<f64> {
        let proposed: usize = self.block_lens.iter().map(|l| l - 1).sum();
        let accepted: usize = self.accepted_lens.iter().map(|a| a.saturating_sub(1)).sum();
        (proposed > 0).then(|| accepted as f64 / proposed as f64)
    }
}

fn first(v: Vec<u32>) -> Result<u32, ModelError> {
    crate::generate::last(v)
}

/// Run the loop with a draft model (both models must start with empty caches).
pub fn speculative(
    target: &mut dyn GreedyLm,
    draft: &mut dyn GreedyLm,
    prompt: &[u32],
    opts: &SpecOptions,
) -> Result<SpecOutput, ModelError> {
    if !draft.is_empty() {
        return Err(ModelError::Input(
            "speculative decoding needs fresh caches".into(),
        ));
    }
    let mut d = ModelDrafter::new(draft);
    speculative_with(target, &mut d, prompt, opts, BlockPolicy::Fixed)
}

/// Run the loop with any drafter, without streaming.
pub fn speculative_with(
    target: &mut dyn GreedyLm,
    drafter: &mut dyn Drafter,
    prompt: &[u32],
    opts: &SpecOptions,
    policy: BlockPolicy,
) -> Result<SpecOutput, ModelError> {
    speculative_stream(target, drafter, prompt, opts, policy, &mut |_| {
        ControlFlow::Continue(())
    })
}

fn rows(h: &Option<Tensor>, n: usize) -> Result<Option<Tensor>, ModelError> {
    Ok(match h {
        Some(t) => Some(t.narrow(0, 0, n)?),
        None => None,
    })
}

/// The loop. `sink` gets the newly committed tokens after every block (the last block cut
/// at a stop token); `Break` ends generation there and marks the output `cancelled`. The
/// target must start with an empty cache.
pub fn speculative_stream(
    target: &mut dyn GreedyLm,
    drafter: &mut dyn Drafter,
    prompt: &[u32],
    opts: &SpecOptions,
    policy: BlockPolicy,
    sink: &mut dyn FnMut(&[u32]) -> ControlFlow<()>,
) -> Result<SpecOutput, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Input("the prompt has no tokens".into()));
    }
    if opts.block_size == 0 {
        return Err(ModelError::Input("block size must be at least 1".into()));
    }
    if !target.is_empty() {
        return Err(ModelError::Input(
            "speculative decoding needs fresh caches".into(),
        ));
    }
    let t0 = Instant::now();
    let mut out = SpecOutput::default();
    if opts.max_new_tokens == 0 {
        return Ok(out);
    }
    let layers = drafter.target_layers().to_vec();
    let (preds, hidden) = target.feed_capture(prompt, false, &layers)?;
    let mut bonus = first(preds)?;
    out.verify_forwards += 1;
    out.prefill_s = t0.elapsed().as_secs_f64();
    let td = Instant::now();
    drafter.begin(prompt, hidden.as_ref())?;
    out.draft_s += td.elapsed().as_secs_f64();
    let mut stream: Vec<u32> = prompt.to_vec();
    let mut cur = opts.block_size;
    while out.tokens.len() < opts.max_new_tokens {
        let remaining = opts.max_new_tokens - out.tokens.len();
        let base = stream.len();
        let (cand, preds, hidden) = if remaining == 1 {
            // The bonus is already the target's answer; nothing after it is needed.
            (vec![bonus], vec![bonus], None)
        } else {
            let l = cur.min(remaining);
            let mut cand = vec![bonus];
            if l > 1 {
                let td = Instant::now();
                let mut drafts = drafter.propose(&stream, bonus, l - 1)?;
                drafts.truncate(l - 1);
                cand.extend(drafts);
                out.draft_s += td.elapsed().as_secs_f64();
            }
            let tv = Instant::now();
            let all = cand.len() > 1;
            let (preds, hidden) = target.feed_capture(&cand, all, &layers)?;
            out.verify_forwards += 1;
            out.plain_steps += u64::from(!all);
            if preds.len() != if all { cand.len() } else { 1 } {
                return Err(ModelError::Internal(format!(
                    "verify returned {} rows for {} tokens",
                    preds.len(),
                    cand.len()
                )));
            }
            out.verify_s += tv.elapsed().as_secs_f64();
            (cand, preds, hidden)
        };
        let l = cand.len();
        let mut a = 1;
        while a < l && preds[a - 1] == cand[a] {
            a += 1;
        }
        let tv = Instant::now();
        if remaining > 1 {
            target.truncate(base + a)?;
        }
        out.verify_s += tv.elapsed().as_secs_f64();
        cur = policy.next(cur, opts.block_size, l - 1, a - 1);
        bonus = preds[a - 1];
        let committed = &cand[..a];
        out.block_lens.push(l);
        if let Some(i) = committed.iter().position(|t| opts.stop.contains(t)) {
            out.tokens.extend_from_slice(&committed[..=i]);
            out.accepted_lens.push(i + 1);
            out.stopped_on_eos = true;
            out.cancelled = sink(&committed[..=i]).is_break();
            break;
        }
        out.tokens.extend_from_slice(committed);
        out.accepted_lens.push(a);
        stream.extend_from_slice(committed);
        if sink(committed).is_break() {
            out.cancelled = true;
            break;
        }
        if out.tokens.len() < opts.max_new_tokens {
            let td = Instant::now();
            drafter.observe(&stream, a, rows(&hidden, a)?.as_ref())?;
            out.draft_s += td.elapsed().as_secs_f64();
        }
    }
    out.draft_forwards = drafter.cost().forwards;
    out.total_s = t0.elapsed().as_secs_f64();
    Ok(out)
}

/// The drafter's next block after `context`, outside the loop: the target prefills
/// `context` (capturing what the drafter needs), its argmax is the bonus, and the drafter
/// proposes up to `k` tokens after it. Deterministic for a given target, drafter and
/// context; returns `(bonus, drafts)`. The target must start with an empty cache.
pub fn propose_after(
    target: &mut dyn GreedyLm,
    drafter: &mut dyn Drafter,
    context: &[u32],
    k: usize,
) -> Result<(u32, Vec<u32>), ModelError> {
    if context.is_empty() {
        return Err(ModelError::Input("the context has no tokens".into()));
    }
    let layers = drafter.target_layers().to_vec();
    let (preds, hidden) = target.feed_capture(context, false, &layers)?;
    let bonus = first(preds)?;
    drafter.begin(context, hidden.as_ref())?;
    let mut drafts = drafter.propose(context, bonus, k)?;
    drafts.truncate(k);
    Ok((bonus, drafts))
}

#[cfg(test)]
mod tests;
