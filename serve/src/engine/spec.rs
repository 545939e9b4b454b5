//! The only place the server touches the speculative loop: it builds the engine's drafter
//! (`model`, `ngram` or `dflash`) for one request and runs `specdec::speculative_stream`,
//! whose sink receives every committed block and ends generation with `Break`.
//!
//! Greedy only: the caller sends sampled requests through plain decoding, so speculative
//! decoding never changes what a request would have produced.

use std::ops::ControlFlow;

use kakeya_engine::generate::Session;
use kakeya_engine::model::{CausalLm, KvChannel, ModelCache, ModelError};
use kakeya_engine::specdec::dflash::{DFlashDrafter, DFlashModel};
use kakeya_engine::specdec::drafter::{BlockPolicy, Drafter};
use kakeya_engine::specdec::model_drafter::ModelDrafter;
use kakeya_engine::specdec::ngram::{NgramDrafter, NgramParams};
use kakeya_engine::specdec::{SpecOptions, SpecOutput, speculative_stream};

/// Counts for `x_kakeya` and stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpecCounts {
    pub drafted: u64,
    pub accepted: u64,
    pub blocks: u64,
    pub prefill_s: f64,
}

impl SpecCounts {
    fn from_output(out: &SpecOutput) -> Self {
        let drafted: usize = out.block_lens.iter().map(|l| l.saturating_sub(1)).sum();
        let accepted: usize = out.accepted_lens.iter().map(|a| a.saturating_sub(1)).sum();
        SpecCounts {
            drafted: drafted as u64,
            accepted: accepted as u64,
            blocks: out.accepted_lens.len() as u64,
            prefill_s: out.prefill_s,
        }
    }
}

/// What proposes draft tokens.
pub enum Draft<'a> {
    /// A separate small causal LM (its own raw cache per request).
    Model(&'a CausalLm),
    /// Prompt lookup over the prompt and the output so far (n from 3 down to 1).
    Ngram,
    /// The DFlash block drafter, conditioned on the target's hidden states.
    DFlash(&'a DFlashModel),
}

/// Prompt-lookup settings the server uses (the `kakeya spec-decode` defaults).
const NGRAM: NgramParams = NgramParams {
    min_n: 1,
    max_n: 3,
    draft_max: 64,
};

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
    let mut session = Session::new(target, kv)?;
    let opts = SpecOptions {
        block_size,
        // The sink enforces max_tokens; the loop only needs a bound it never reaches first.
        max_new_tokens: target.config().max_position_embeddings.max(1) + block_size,
        stop: Vec::new(),
    };
    let mut go = |drafter: &mut dyn Drafter| {
        speculative_stream(
            &mut session,
            drafter,
            prompt,
            &opts,
            BlockPolicy::Fixed,
            &mut *sink,
        )
    };
    let out = match draft {
        Draft::Model(m) => {
            let mut draft_session = Session::new(m, &KvChannel::Raw)?;
            go(&mut ModelDrafter::new(&mut draft_session))?
        }
        Draft::Ngram => go(&mut NgramDrafter::new(NGRAM)?)?,
        Draft::DFlash(m) => go(&mut DFlashDrafter::new(m, target))?,
    };
    Ok((session.cache, SpecCounts::from_output(&out)))
}
