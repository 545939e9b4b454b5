//! Greedy speculative decoding with a draft model, lossless with respect to the target's
//! plain greedy decode.
//!
//! Per block of `L = min(block_size, remaining)`:
//! 1. the bonus `b` is the target's argmax after everything committed (always correct);
//! 2. the draft, first catching up on committed tokens it has not seen, proposes `L − 1`
//!    tokens greedily;
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

pub mod prompts;
pub mod run;

use std::time::Instant;

use crate::generate::GreedyLm;
use crate::model::ModelError;

/// Loop parameters.
#[derive(Debug, Clone)]
pub struct SpecOptions {
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
    /// Candidate length L of each block.
    pub block_lens: Vec<usize>,
    pub stopped_on_eos: bool,
    pub prefill_s: f64,
    pub draft_s: f64,
    pub verify_s: f64,
    pub total_s: f64,
    pub draft_forwards: u64,
    pub verify_forwards: u64,
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

/// Run the loop. Both models must start with empty caches.
pub fn speculative(
    target: &mut dyn GreedyLm,
    draft: &mut dyn GreedyLm,
    prompt: &[u32],
    opts: &SpecOptions,
) -> Result<SpecOutput, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Input("the prompt has no tokens".into()));
    }
    if opts.block_size == 0 {
        return Err(ModelError::Input("block size must be at least 1".into()));
    }
    if !target.is_empty() || !draft.is_empty() {
        return Err(ModelError::Input(
            "speculative decoding needs fresh caches".into(),
        ));
    }
    let t0 = Instant::now();
    let mut out = SpecOutput::default();
    if opts.max_new_tokens == 0 {
        return Ok(out);
    }
    let mut bonus = first(target.feed(prompt, false)?)?;
    out.verify_forwards += 1;
    if opts.block_size > 1 {
        draft.feed(prompt, false)?;
        out.draft_forwards += 1;
    }
    out.prefill_s = t0.elapsed().as_secs_f64();
    let mut stream: Vec<u32> = prompt.to_vec();
    while out.tokens.len() < opts.max_new_tokens {
        let l = opts.block_size.min(opts.max_new_tokens - out.tokens.len());
        let base = stream.len();
        let mut cand = Vec::with_capacity(l);
        cand.push(bonus);
        if l > 1 {
            let td = Instant::now();
            // Catch the draft up on committed tokens it has not cached, plus the bonus.
            let mut pending = stream[draft.len().min(base)..].to_vec();
            pending.push(bonus);
            let mut d = first(draft.feed(&pending, false)?)?;
            out.draft_forwards += 1;
            cand.push(d);
            while cand.len() < l {
                d = first(draft.feed(&[d], false)?)?;
                out.draft_forwards += 1;
                cand.push(d);
            }
            out.draft_s += td.elapsed().as_secs_f64();
        }
        let tv = Instant::now();
        let preds = target.feed(&cand, true)?;
        out.verify_forwards += 1;
        if preds.len() != l {
            return Err(ModelError::Internal(format!(
                "verify returned {} rows for {l} tokens",
                preds.len()
            )));
        }
        let mut a = 1;
        while a < l && preds[a - 1] == cand[a] {
            a += 1;
        }
        target.truncate(base + a)?;
        out.verify_s += tv.elapsed().as_secs_f64();
        let keep = draft.len().min(base + a);
        draft.truncate(keep)?;
        bonus = preds[a - 1];
        let committed = &cand[..a];
        if let Some(i) = committed.iter().position(|t| opts.stop.contains(t)) {
            out.tokens.extend_from_slice(&committed[..=i]);
            out.accepted_lens.push(i + 1);
            out.block_lens.push(l);
            out.stopped_on_eos = true;
            break;
        }
        out.tokens.extend_from_slice(committed);
        stream.extend_from_slice(committed);
        out.accepted_lens.push(a);
        out.block_lens.push(l);
    }
    out.total_s = t0.elapsed().as_secs_f64();
    Ok(out)
}

#[cfg(test)]
mod tests;
