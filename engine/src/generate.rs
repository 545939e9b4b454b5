//! Greedy decoding against an explicit cache, through the [`GreedyLm`] interface that the
//! speculative loop also uses (so a fake model can drive both in unit tests).

use std::time::Instant;

use candle_core::Tensor;

use crate::model::{CausalLm, KvChannel, Logits, ModelCache, ModelError, argmax_rows};

/// What the decoding loops need from a model: feed tokens at the end of its cache and get
/// the greedy next token after each of them (or only after the last), and cut the cache.
pub trait GreedyLm {
    fn feed(&mut self, tokens: &[u32], all: bool) -> Result<Vec<u32>, ModelError>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError>;
    /// [`GreedyLm::feed`] that also returns the residual stream after each layer in
    /// `layers`, concatenated per fed token (`[tokens, layers.len() · hidden]`), for
    /// drafters conditioned on the target's hidden states. Models without that ability
    /// refuse a non-empty `layers`.
    fn feed_capture(
        &mut self,
        tokens: &[u32],
        all: bool,
        layers: &[usize],
    ) -> Result<(Vec<u32>, Option<Tensor>), ModelError> {
        if !layers.is_empty() {
            return Err(ModelError::Unsupported(
                "this model cannot report its hidden states".into(),
            ));
        }
        Ok((self.feed(tokens, all)?, None))
    }
}

/// A model plus its own cache.
pub struct Session<'a> {
    pub model: &'a CausalLm,
    pub cache: ModelCache,
    /// Forward passes run so far.
    pub forwards: u64,
}

impl<'a> Session<'a> {
    pub fn new(model: &'a CausalLm, channel: &KvChannel) -> Result<Self, ModelError> {
        Ok(Session {
            cache: model.new_cache(channel)?,
            model,
            forwards: 0,
        })
    }
}

impl GreedyLm for Session<'_> {
    fn feed(&mut self, tokens: &[u32], all: bool) -> Result<Vec<u32>, ModelError> {
        let which = if all { Logits::All } else { Logits::Last };
        let logits = self.model.forward(tokens, &mut self.cache, which)?;
        self.forwards += 1;
        argmax_rows(&logits)
    }

    fn len(&self) -> usize {
        self.cache.len()
    }

    fn feed_capture(
        &mut self,
        tokens: &[u32],
        all: bool,
        layers: &[usize],
    ) -> Result<(Vec<u32>, Option<Tensor>), ModelError> {
        let which = if all { Logits::All } else { Logits::Last };
        let (logits, hidden) =
            self.model
                .forward_capture(tokens, &mut self.cache, which, layers)?;
        self.forwards += 1;
        Ok((argmax_rows(&logits)?, hidden))
    }

    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        Ok(self.cache.truncate(len)?)
    }
}

/// Result of a greedy decode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenOutput {
    /// Generated ids (a stop token, if hit, is the last one).
    pub tokens: Vec<u32>,
    pub stopped_on_eos: bool,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub forwards: u64,
}

/// Plain greedy decoding: one forward over the prompt, then one forward per token. Stops
/// after a token in `stop` (kept) or after `max_new` tokens.
pub fn greedy(
    lm: &mut dyn GreedyLm,
    prompt: &[u32],
    max_new: usize,
    stop: &[u32],
) -> Result<GenOutput, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Input("the prompt has no tokens".into()));
    }
    let t0 = Instant::now();
    let mut out = GenOutput {
        tokens: Vec::new(),
        stopped_on_eos: false,
        prefill_s: 0.0,
        decode_s: 0.0,
        forwards: 0,
    };
    if max_new == 0 {
        return Ok(out);
    }
    let mut next = last(lm.feed(prompt, false)?)?;
    out.forwards += 1;
    out.prefill_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    loop {
        out.tokens.push(next);
        if stop.contains(&next) {
            out.stopped_on_eos = true;
            break;
        }
        if out.tokens.len() >= max_new {
            break;
        }
        next = last(lm.feed(&[next], false)?)?;
        out.forwards += 1;
    }
    out.decode_s = t1.elapsed().as_secs_f64();
    Ok(out)
}

pub(crate) fn last(v: Vec<u32>) -> Result<u32, ModelError> {
    v.last()
        .copied()
        .ok_or_else(|| ModelError::Internal("a forward returned no logits".into()))
}
