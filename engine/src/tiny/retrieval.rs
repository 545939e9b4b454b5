//! The `retrieval` recipe: a Llama model that really retrieves, constructed weight by weight
//! (no training, so it is written in milliseconds and is the same on every machine).
//!
//! The mechanism is the textbook induction circuit over a character-level vocabulary:
//!
//! * **Residual layout** (hidden 512): `T0` = one-hot of the current token, `C` = a constant
//!   1, `T1`/`T2` = one-hot of the tokens 1 and 2 positions back (written by layer P),
//!   `O` = one-hot of the token the induction head copied (written by layer I).
//! * **Layer P (previous-token heads)**: head `h` reads only the constant dimension, so its
//!   query and key are the same vector at every position, and RoPE alone makes the score a
//!   function of the distance `d = t − s`: `Σᵢ Aᵢ cos((d − k)ωᵢ)` over the 8 fastest RoPE
//!   pairs, phased so it peaks at `d = k` (k = h + 1). With the weights below the peak beats
//!   every other distance up to 4 096 by ≥ 0.168 of its height, scaled to ≥ 40 logits, so
//!   attention is one-hot on `t − k`; the value copies `T0` there into `Tk`.
//! * **Layer I (induction head)**: query `[T0, T1]`, key `[T1, T2]` in the slowest RoPE
//!   pairs (`rope_theta` 1e24 makes them rotate < 0.03 rad over 4 096 positions), so the
//!   score counts how many of the last two tokens match the two tokens before `s`: 30 logits
//!   each. The value copies `T0` of the best match into `O`; `lm_head` reads `O`.
//!
//! So after `… K₁K₂K₃K₄=` the model attends to the token that followed `K₄=` earlier and
//! emits it, then continues the copy bigram by bigram — retrieving a needle's value as long
//! as its bigrams are unique in the context. `pad` identity layers (zero attention output and
//! zero MLP) around the circuit let boundary-layer KV channels (`…-b2`) compress the layers
//! that matter. The seed permutes the one-hot basis (different weights, same behaviour).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use super::{Rng, io, tokenizer};
use crate::model::ModelError;

pub const HIDDEN: usize = 512;
pub const HEAD_DIM: usize = 256;
const HEADS: usize = HIDDEN / HEAD_DIM;
/// Character-level vocabulary (3 specials + printable ASCII + newline).
pub const VOCAB: usize = 100;
const INTERMEDIATE: usize = 16;
pub const ROPE_THETA: f64 = 1e24;
const T0: usize = 0;
const C: usize = 100;
const T1: usize = 128;
const T2: usize = 256;
const O: usize = 384;
/// Relative weights of the 8 fastest RoPE pairs in the previous-token score.
const PREV_WEIGHTS: [f64; 8] = [3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Previous-token score at its peak, in logits (after the 1/√head_dim scale).
const PREV_PEAK: f64 = 250.0;
/// Induction score per matching token, in logits.
const MATCH_LOGITS: f64 = 30.0;
/// First RoPE pair used by the induction head (pairs ≥ 28 are nearly static).
const SLOW_PAIR: usize = 28;

/// What to write.
#[derive(Debug, Clone)]
pub struct RetrievalSpec {
    pub seed: u64,
    /// Identity layers before and after the two-layer circuit.
    pub pad: usize,
    pub max_positions: usize,
}

impl Default for RetrievalSpec {
    fn default() -> Self {
        RetrievalSpec {
            seed: 0,
            pad: 2,
            max_positions: 8192,
        }
    }
}

/// A row-major `[rows, cols]` matrix being filled in.
struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Mat {
    fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    fn set(&mut self, r: usize, c: usize, v: f64) {
        self.data[r * self.cols + c] = v as f32;
    }

    fn tensor(self) -> Result<Tensor, ModelError> {
        Ok(Tensor::from_vec(
            self.data,
            (self.rows, self.cols),
            &Device::Cpu,
        )?)
    }
}

fn perm(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

fn inv_freq(pair: usize) -> f64 {
    1.0 / ROPE_THETA.powf((2 * pair) as f64 / HEAD_DIM as f64)
}

/// Layer P: head h attends to position t − (h + 1) and copies its token into T(h+1).
fn prev_token_layer(
    w: &mut HashMap<String, Tensor>,
    p: &str,
    slot: &[usize],
) -> Result<(), ModelError> {
    // RMSNorm of [one-hot, const] multiplies by √(hidden/2) = 16.
    let n_in = (HIDDEN as f64 / 2.0).sqrt();
    let total: f64 = PREV_WEIGHTS.iter().sum();
    let (mut q, mut k, mut v, mut o) = (
        Mat::zeros(HIDDEN, HIDDEN),
        Mat::zeros(HIDDEN, HIDDEN),
        Mat::zeros(HIDDEN, HIDDEN),
        Mat::zeros(HIDDEN, HIDDEN),
    );
    let half = HEAD_DIM / 2;
    for h in 0..HEADS {
        let offset = (h + 1) as f64;
        let base = h * HEAD_DIM;
        let dst = if h == 0 { T1 } else { T2 };
        for (i, a) in PREV_WEIGHTS.iter().enumerate() {
            // q·k / √hd summed over pairs = PREV_PEAK at d = offset.
            let r = (a / total * PREV_PEAK * (HEAD_DIM as f64).sqrt()).sqrt();
            let phase = offset * inv_freq(i);
            q.set(base + i, C, r * phase.cos() / n_in);
            q.set(base + i + half, C, -r * phase.sin() / n_in);
            k.set(base + i, C, r / n_in);
        }
        for (tok, &s) in slot.iter().enumerate() {
            v.set(base + tok, T0 + s, 1.0 / n_in);
            o.set(dst + s, base + tok, 1.0);
        }
    }
    attn(w, p, q, k, v, o)
}

/// Layer I: the induction head (head 0; head 1 is silent).
fn induction_layer(
    w: &mut HashMap<String, Tensor>,
    p: &str,
    slot: &[usize],
) -> Result<(), ModelError> {
    // RMSNorm of [one-hot, const, one-hot, one-hot] multiplies by √(hidden/4).
    let n_in = (HIDDEN as f64 / 4.0).sqrt();
    let a = (MATCH_LOGITS * (HEAD_DIM as f64).sqrt()).sqrt();
    let half = HEAD_DIM / 2;
    let (mut q, mut k, mut v, mut o) = (
        Mat::zeros(HIDDEN, HIDDEN),
        Mat::zeros(HIDDEN, HIDDEN),
        Mat::zeros(HIDDEN, HIDDEN),
        Mat::zeros(HIDDEN, HIDDEN),
    );
    for (tok, &s) in slot.iter().enumerate() {
        // Query: current token (first halves of slow pairs) and previous token (second halves).
        q.set(SLOW_PAIR + tok, T0 + s, a / n_in);
        q.set(half + SLOW_PAIR + tok, T1 + s, a / n_in);
        // Key: the token before s and the one before that.
        k.set(SLOW_PAIR + tok, T1 + s, a / n_in);
        k.set(half + SLOW_PAIR + tok, T2 + s, a / n_in);
        v.set(tok, T0 + s, 1.0 / n_in);
        o.set(O + s, tok, 1.0);
    }
    attn(w, p, q, k, v, o)
}

fn attn(
    w: &mut HashMap<String, Tensor>,
    p: &str,
    q: Mat,
    k: Mat,
    v: Mat,
    o: Mat,
) -> Result<(), ModelError> {
    w.insert(format!("{p}.self_attn.q_proj.weight"), q.tensor()?);
    w.insert(format!("{p}.self_attn.k_proj.weight"), k.tensor()?);
    w.insert(format!("{p}.self_attn.v_proj.weight"), v.tensor()?);
    w.insert(format!("{p}.self_attn.o_proj.weight"), o.tensor()?);
    Ok(())
}

fn config(spec: &RetrievalSpec, layers: usize) -> serde_json::Value {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": spec.max_positions,
        "rms_norm_eps": 1e-6,
        "rope_theta": ROPE_THETA,
        "tie_word_embeddings": false,
        "attention_bias": false,
        "mlp_bias": false,
        "bos_token_id": tokenizer::BOS_ID,
        "eos_token_id": tokenizer::EOS_ID,
        "torch_dtype": "float32",
        "kakeya_tiny": {"recipe": "retrieval", "seed": spec.seed, "pad_layers": spec.pad,
            "circuit_layers": [spec.pad, spec.pad + 1]},
    })
}

/// Write the retrieval model directory; returns the parameter count.
pub fn write_retrieval(spec: &RetrievalSpec, out: &Path) -> Result<u64, ModelError> {
    if spec.pad > 16 {
        return Err(ModelError::Input(format!(
            "pad {} identity layers is too many (at most 16)",
            spec.pad
        )));
    }
    if !(64..=1 << 20).contains(&spec.max_positions) {
        return Err(ModelError::Input(format!(
            "max positions {} is outside 64..=1048576",
            spec.max_positions
        )));
    }
    let tok = tokenizer::build(VOCAB)?;
    if tok.get_vocab_size(true) > VOCAB {
        return Err(ModelError::Internal(
            "the character-level tokenizer outgrew the retrieval vocabulary".into(),
        ));
    }
    let mut rng = Rng::new(spec.seed);
    let slot = perm(&mut rng, VOCAB);
    let layers = 2 * spec.pad + 2;
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let mut embed = Mat::zeros(VOCAB, HIDDEN);
    let mut head = Mat::zeros(VOCAB, HIDDEN);
    for (tok, &s) in slot.iter().enumerate() {
        embed.set(tok, T0 + s, 1.0);
        embed.set(tok, C, 1.0);
        head.set(tok, O + s, 1.0);
    }
    w.insert("model.embed_tokens.weight".into(), embed.tensor()?);
    w.insert("lm_head.weight".into(), head.tensor()?);
    let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &Device::Cpu);
    w.insert("model.norm.weight".into(), ones(HIDDEN)?);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        if l == spec.pad {
            prev_token_layer(&mut w, &p, &slot)?;
        } else if l == spec.pad + 1 {
            induction_layer(&mut w, &p, &slot)?;
        } else {
            let z = || Mat::zeros(HIDDEN, HIDDEN);
            attn(&mut w, &p, z(), z(), z(), z())?;
        }
        // Zero MLP: silu(0)·0 = 0, so the MLP adds nothing.
        w.insert(
            format!("{p}.mlp.gate_proj.weight"),
            Mat::zeros(INTERMEDIATE, HIDDEN).tensor()?,
        );
        w.insert(
            format!("{p}.mlp.up_proj.weight"),
            Mat::zeros(INTERMEDIATE, HIDDEN).tensor()?,
        );
        w.insert(
            format!("{p}.mlp.down_proj.weight"),
            Mat::zeros(HIDDEN, INTERMEDIATE).tensor()?,
        );
        w.insert(format!("{p}.input_layernorm.weight"), ones(HIDDEN)?);
        w.insert(
            format!("{p}.post_attention_layernorm.weight"),
            ones(HIDDEN)?,
        );
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    candle_core::safetensors::save(&w, out.join("model.safetensors"))?;
    let cfg_path = out.join("config.json");
    let cfg = serde_json::to_vec_pretty(&config(spec, layers))
        .map_err(|e| ModelError::Internal(e.to_string()))?;
    std::fs::write(&cfg_path, cfg).map_err(io(&cfg_path))?;
    tok.save(out.join("tokenizer.json"), false)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    Ok(w.values().map(|t| t.elem_count() as u64).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The previous-token score peaks at its offset by a wide margin at every distance the
    /// model will see (the construction's key assumption, checked rather than trusted).
    #[test]
    fn previous_token_score_peaks_at_its_offset() {
        let total: f64 = PREV_WEIGHTS.iter().sum();
        for k in [1i64, 2] {
            let f = |d: i64| -> f64 {
                PREV_WEIGHTS
                    .iter()
                    .enumerate()
                    .map(|(i, a)| a / total * ((d - k) as f64 * inv_freq(i)).cos())
                    .sum()
            };
            let worst = (0..8192i64)
                .filter(|d| *d != k)
                .map(f)
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(
                (f(k) - worst) * PREV_PEAK > 40.0,
                "k={k}: margin {}",
                f(k) - worst
            );
        }
        // The induction head's pairs barely rotate over the longest context.
        assert!(inv_freq(SLOW_PAIR) * 8192.0 < 0.05);
    }
}
