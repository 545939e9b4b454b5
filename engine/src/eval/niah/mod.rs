//! Needle in a haystack under KV compression.
//!
//! For every context length × depth × trial one prompt is built ([`haystack`]) and answered
//! greedily through every KV channel; the raw cache's answer is the oracle the compressed
//! channels are compared with (tokens equal; first divergence). Long prompts are prefilled
//! in chunks of `chunk` tokens so the attention scores held at once are `chunk × context`,
//! not `context²`; with the exact CPU kernels chunked prefill is bit-identical to one shot
//! (tested), with candle's kernels it agrees within float rounding ([`CHUNK_TOLERANCE`]).

pub mod haystack;
pub mod heatmap;

use std::time::Instant;

use crate::model::{CausalLm, KvChannel, Logits, ModelError, argmax_rows};

/// Max |Δlogit| / max |logit| allowed between chunked and one-shot prefill (candle kernels;
/// the exact kernels give 0).
pub const CHUNK_TOLERANCE: f32 = 1e-4;

/// One prompt answered through one channel.
#[derive(Debug, Clone)]
pub struct Answer {
    pub ids: Vec<u32>,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub kv_bytes_held: usize,
    pub kv_bytes_raw: usize,
}

/// Logits after the last prompt token, prefilling `prompt` in chunks of `chunk` tokens.
pub fn prefill(
    model: &CausalLm,
    cache: &mut crate::model::ModelCache,
    prompt: &[u32],
    chunk: usize,
) -> Result<candle_core::Tensor, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Input("the prompt has no tokens".into()));
    }
    if chunk == 0 {
        return Err(ModelError::Input(
            "the prefill chunk must be ≥ 1 token".into(),
        ));
    }
    let mut last = None;
    for piece in prompt.chunks(chunk) {
        last = Some(model.forward(piece, cache, Logits::Last)?);
    }
    last.ok_or_else(|| ModelError::Internal("no prefill chunk ran".into()))
}

/// Prefill `prompt` through `channel` in chunks, then decode up to `max_new` tokens greedily
/// (stopping after a token in `stop`).
pub fn answer(
    model: &CausalLm,
    channel: &KvChannel,
    prompt: &[u32],
    chunk: usize,
    max_new: usize,
    stop: &[u32],
) -> Result<Answer, ModelError> {
    let mut cache = model.new_cache(channel)?;
    let t0 = Instant::now();
    let logits = prefill(model, &mut cache, prompt, chunk)?;
    let mut next = *argmax_rows(&logits)?
        .last()
        .ok_or_else(|| ModelError::Internal("prefill returned no logits".into()))?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut ids = Vec::with_capacity(max_new);
    while ids.len() < max_new {
        ids.push(next);
        if stop.contains(&next) || ids.len() == max_new {
            break;
        }
        let l = model.forward(&[next], &mut cache, Logits::Last)?;
        next = *argmax_rows(&l)?
            .last()
            .ok_or_else(|| ModelError::Internal("a step returned no logits".into()))?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    let (held, raw) = cache.bytes();
    Ok(Answer {
        ids,
        prefill_s,
        decode_s,
        kv_bytes_held: held,
        kv_bytes_raw: raw,
    })
}

/// Index of the first differing token, or `None` when the answers are equal.
pub fn first_divergence(a: &[u32], b: &[u32]) -> Option<usize> {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => Some(i),
        None if a.len() != b.len() => Some(a.len().min(b.len())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::first_divergence;

    #[test]
    fn divergence_positions() {
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 5, 3]), Some(1));
        assert_eq!(first_divergence(&[1, 2], &[1, 2, 3]), Some(2));
    }
}
