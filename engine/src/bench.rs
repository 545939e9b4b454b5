//! Measurement helpers shared by `kakeya bench …` and the `model_vs_stock` cargo bench:
//! prefill / decode / block-vs-single-steps timings of one model, and the machine's memory
//! read bandwidth that bounds decode speed.

use std::time::Instant;

use rayon::prelude::*;

use crate::model::{CausalLm, KvChannel, Logits, ModelError};
use crate::tiny::Rng;

/// Median of a non-empty list.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Seeded token ids below `vocab`.
pub fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

/// One round of measurements on a model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelTimings {
    pub prefill_tokens: usize,
    pub prefill_s: f64,
    pub decode_tokens: usize,
    pub decode_s: f64,
    pub block: usize,
    /// One forward over `block` tokens at position `prefill_tokens`.
    pub block_s: f64,
    /// `block` single-token forwards at the same position.
    pub singles_s: f64,
}

/// Prefill `prompt_len` tokens, decode `decode` tokens one at a time, then time a block of
/// `block` tokens against `block` single steps at the end of the prompt.
pub fn time_model(
    model: &CausalLm,
    prompt_len: usize,
    decode: usize,
    block: usize,
    seed: u64,
) -> Result<ModelTimings, ModelError> {
    let vocab = model.config().vocab_size;
    let prompt = random_tokens(prompt_len, vocab, seed);
    let steps = random_tokens(decode.max(block), vocab, seed + 1);
    let mut cache = model.new_cache(&KvChannel::Raw)?;
    let t = Instant::now();
    model.forward(&prompt, &mut cache, Logits::Last)?;
    let prefill_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for tok in &steps[..decode] {
        model.forward(&[*tok], &mut cache, Logits::Last)?;
    }
    let decode_s = t.elapsed().as_secs_f64();
    cache.truncate(prompt_len)?;
    let t = Instant::now();
    model.forward(&steps[..block], &mut cache, Logits::All)?;
    let block_s = t.elapsed().as_secs_f64();
    cache.truncate(prompt_len)?;
    let t = Instant::now();
    for tok in &steps[..block] {
        model.forward(&[*tok], &mut cache, Logits::Last)?;
    }
    let singles_s = t.elapsed().as_secs_f64();
    Ok(ModelTimings {
        prefill_tokens: prompt_len,
        prefill_s,
        decode_tokens: decode,
        decode_s,
        block,
        block_s,
        singles_s,
    })
}

/// Cost of one forward over a block of L tokens, in single-step forwards, for each L in
/// `blocks`: after one prefill of `prompt_len` tokens, the block and its L single steps are
/// timed alternately at the same position (the cache is truncated back in between), `reps`
/// times each; the figure is the ratio of the medians.
pub fn block_costs(
    model: &CausalLm,
    prompt_len: usize,
    blocks: &[usize],
    reps: usize,
    seed: u64,
) -> Result<Vec<(usize, f64)>, ModelError> {
    let vocab = model.config().vocab_size;
    let prompt = random_tokens(prompt_len, vocab, seed);
    let longest = blocks.iter().copied().max().unwrap_or(1);
    let steps = random_tokens(longest, vocab, seed + 1);
    let mut cache = model.new_cache(&KvChannel::Raw)?;
    model.forward(&prompt, &mut cache, Logits::Last)?;
    let mut out = Vec::new();
    for &l in blocks {
        let (mut block, mut singles) = (Vec::new(), Vec::new());
        for _ in 0..reps.max(1) {
            cache.truncate(prompt_len)?;
            let t = Instant::now();
            model.forward(&steps[..l], &mut cache, Logits::All)?;
            block.push(t.elapsed().as_secs_f64());
            cache.truncate(prompt_len)?;
            let t = Instant::now();
            for tok in &steps[..l] {
                model.forward(&[*tok], &mut cache, Logits::Last)?;
            }
            singles.push(t.elapsed().as_secs_f64() / l as f64);
        }
        out.push((l, median(block) / median(singles)));
    }
    Ok(out)
}

/// Best-of-`reps` read bandwidth in GB/s: summing a buffer far larger than the caches on
/// all of rayon's threads.
pub fn read_bandwidth_gb_s(bytes: usize, reps: usize) -> f64 {
    let n = bytes / 4;
    let buf: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let mut best = 0f64;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        // Sixteen independent partial sums so the adds are not one latency-bound chain.
        let s: f32 = buf
            .par_chunks(1 << 16)
            .map(|c| {
                let mut acc = [0.0f32; 16];
                for x in c.chunks_exact(16) {
                    for l in 0..16 {
                        acc[l] += x[l];
                    }
                }
                acc.iter().sum::<f32>()
            })
            .sum();
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(s);
        best = best.max(bytes as f64 / secs / 1e9);
    }
    best
}

/// Bytes a decode step must read at least: every weight once (tied embeddings once) plus
/// the K/V cache at `ctx` tokens.
pub fn decode_bytes_per_token(model: &CausalLm, ctx: usize) -> f64 {
    let c = model.config();
    let weight = model.dtype().size_in_bytes() as f64;
    let act = model.activation_dtype().size_in_bytes() as f64;
    let kv = 2.0 * (c.num_layers * ctx * c.num_kv_heads * c.head_dim) as f64 * act;
    c.param_count() as f64 * weight + kv
}
