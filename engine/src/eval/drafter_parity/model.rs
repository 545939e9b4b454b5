//! The `model` drafter for parity runs: a causal LM proposing a block greedily after a
//! committed context, either keeping its cache between calls (`cached`: only the tokens
//! after the longest common prefix are fed) or rebuilding it every time (`recomputed`).

use crate::model::{CausalLm, KvChannel, Logits, ModelCache, ModelError, argmax_rows};

use super::DraftSource;

/// How the drafter gets the context into its cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextMode {
    /// Reuse the cache across calls (truncate to the common prefix, feed the rest).
    Cached,
    /// A fresh cache and one forward over the whole context per call.
    Recomputed,
}

impl std::str::FromStr for ContextMode {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s {
            "cached" => Ok(ContextMode::Cached),
            "recomputed" => Ok(ContextMode::Recomputed),
            other => Err(ModelError::Input(format!(
                "context mode `{other}` (expected cached or recomputed)"
            ))),
        }
    }
}

impl ContextMode {
    pub fn name(self) -> &'static str {
        match self {
            ContextMode::Cached => "cached",
            ContextMode::Recomputed => "recomputed",
        }
    }
}

pub struct ModelDrafter<'a> {
    model: &'a CausalLm,
    mode: ContextMode,
    cache: Option<ModelCache>,
    /// Tokens the cache holds, in order.
    seen: Vec<u32>,
}

impl<'a> ModelDrafter<'a> {
    pub fn new(model: &'a CausalLm, mode: ContextMode) -> Self {
        ModelDrafter {
            model,
            mode,
            cache: None,
            seen: Vec::new(),
        }
    }
}

fn next_of(logits: &candle_core::Tensor) -> Result<u32, ModelError> {
    argmax_rows(logits)?
        .last()
        .copied()
        .ok_or_else(|| ModelError::Internal("a forward returned no logits".into()))
}

impl DraftSource for ModelDrafter<'_> {
    fn propose(&mut self, context: &[u32], n: usize) -> Result<Vec<u32>, ModelError> {
        if context.is_empty() {
            return Err(ModelError::Input("a draft context has no tokens".into()));
        }
        if self.mode == ContextMode::Recomputed || self.cache.is_none() {
            self.cache = Some(self.model.new_cache(&KvChannel::Raw)?);
            self.seen.clear();
        }
        let cache = self
            .cache
            .as_mut()
            .ok_or_else(|| ModelError::Internal("drafter cache missing".into()))?;
        // Keep the common prefix, but always re-feed at least the last context token so its
        // logits are fresh.
        let common = self
            .seen
            .iter()
            .zip(context)
            .take_while(|(a, b)| a == b)
            .count()
            .min(context.len() - 1);
        cache.truncate(common)?;
        self.seen.truncate(common);
        let logits = self
            .model
            .forward(&context[common..], cache, Logits::Last)?;
        self.seen.extend_from_slice(&context[common..]);
        let mut out = Vec::with_capacity(n);
        let mut next = next_of(&logits)?;
        while out.len() < n {
            out.push(next);
            if out.len() == n {
                break;
            }
            let l = self.model.forward(&[next], cache, Logits::Last)?;
            self.seen.push(next);
            next = next_of(&l)?;
        }
        Ok(out)
    }
}
