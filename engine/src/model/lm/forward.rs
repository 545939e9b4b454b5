//! The forward pass on either path: the exact CPU layers over plain f32 rows (long inputs in
//! chunks), or candle's ops; both append K/V to the cache and optionally capture the
//! residual stream after chosen layers.

use candle_core::Tensor;

use super::super::cache::{KvStore, ModelCache};
use super::super::exact::layer::{ExactLayer, ExactStep, to_f32_vec};
use super::super::layers::{Layer, Step};
use super::{CausalLm, Logits, ModelError, PREFILL_CHUNK};

impl CausalLm {
    /// Long inputs run in chunks of [`PREFILL_CHUNK`] tokens, which bounds the activations
    /// a prefill holds. The exact kernels make this free of side effects: every row's bits
    /// are the same however the rows are grouped.
    pub(super) fn forward_chunked(
        &self,
        layers: &[ExactLayer],
        tokens: &[u32],
        cache: &mut ModelCache,
        which: Logits,
        capture: &[usize],
    ) -> Result<(Tensor, Option<Tensor>), ModelError> {
        let chunks: Vec<&[u32]> = tokens.chunks(PREFILL_CHUNK).collect();
        let mut logits = Vec::new();
        let mut hidden = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let want = match which {
                Logits::All => Some(Logits::All),
                Logits::Last => last.then_some(Logits::Last),
            };
            let (lg, h) = self.forward_exact(layers, chunk, cache, want, capture)?;
            logits.extend(lg);
            hidden.extend(h);
        }
        let logits = if logits.len() == 1 {
            logits.remove(0)
        } else {
            Tensor::cat(&logits, 0)?
        };
        let hidden = match hidden.len() {
            0 => None,
            1 => hidden.pop(),
            _ => Some(Tensor::cat(&hidden, 0)?),
        };
        Ok((logits, hidden))
    }

    /// One chunk on the exact path; `which = None` skips the head (an inner prefill chunk).
    fn forward_exact(
        &self,
        layers: &[ExactLayer],
        tokens: &[u32],
        cache: &mut ModelCache,
        which: Option<Logits>,
        capture: &[usize],
    ) -> Result<(Option<Tensor>, Option<Tensor>), ModelError> {
        let (l, h) = (tokens.len(), self.cfg.hidden_size);
        let mut x = to_f32_vec(&self.embed_rows(tokens)?)?;
        let (cos, sin) = self.rope_tables(cache.len(), l);
        let step = ExactStep {
            cfg: &self.cfg,
            cos: &cos,
            sin: &sin,
        };
        let mut captured: Vec<Option<Tensor>> = vec![None; capture.len()];
        for (i, layer) in layers.iter().enumerate() {
            layer.forward(&mut x, l, layer_store(cache, i)?, &step)?;
            for slot in slots_of(capture, i) {
                captured[slot] = Some(Tensor::from_vec(x.clone(), (l, h), &self.device)?);
            }
        }
        let hidden = join_captured(captured)?;
        let rows = match which {
            None => return Ok((None, hidden)),
            Some(Logits::Last) => &x[(l - 1) * h..],
            Some(Logits::All) => &x[..],
        };
        Ok((Some(self.exact_logits(rows, rows.len() / h, h)?), hidden))
    }

    pub(super) fn forward_candle(
        &self,
        layers: &[Layer],
        tokens: &[u32],
        cache: &mut ModelCache,
        which: Logits,
        capture: &[usize],
    ) -> Result<(Tensor, Option<Tensor>), ModelError> {
        let l = tokens.len();
        let pos0 = cache.len();
        let mut x = self.embed_rows(tokens)?;
        let (cos, sin) = self.rope(pos0, l)?;
        let step = Step {
            cfg: &self.cfg,
            cos: &cos,
            sin: &sin,
        };
        let mut captured: Vec<Option<Tensor>> = vec![None; capture.len()];
        for (i, layer) in layers.iter().enumerate() {
            x = layer.forward(&x, layer_store(cache, i)?, &step)?;
            for slot in slots_of(capture, i) {
                captured[slot] = Some(x.clone());
            }
        }
        let hidden = join_captured(captured)?;
        if which == Logits::Last {
            x = x.narrow(0, l - 1, 1)?;
        }
        let logits = self.head(&x)?;
        Ok((logits, hidden))
    }
}

/// Layer `i`'s store in `cache`.
fn layer_store(
    cache: &mut ModelCache,
    i: usize,
) -> Result<&mut (dyn KvStore + 'static), ModelError> {
    cache
        .layer_mut(i)
        .map(|s| s.as_mut())
        .ok_or_else(|| ModelError::Internal(format!("cache layer {i} missing")))
}

/// Positions in `capture` that ask for the output of layer `i`.
fn slots_of(capture: &[usize], i: usize) -> impl Iterator<Item = usize> + '_ {
    capture
        .iter()
        .enumerate()
        .filter(move |(_, c)| **c == i)
        .map(|(slot, _)| slot)
}

/// The captured states side by side (`None` when nothing was asked for).
fn join_captured(captured: Vec<Option<Tensor>>) -> Result<Option<Tensor>, ModelError> {
    if captured.is_empty() {
        return Ok(None);
    }
    let parts = captured
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ModelError::Internal("a captured layer was not run".into()))?;
    Ok(Some(Tensor::cat(&parts, 1)?))
}
