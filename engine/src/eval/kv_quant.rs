//! KV-quant shoot-out on K/V captured from a model run (spec §2.5, on our own models).
//!
//! Per prompt: prefill the context (all but the last M tokens) into a raw cache, capture every
//! layer's K/V (post-RoPE, as the cache stores them), then the reference forward over the M
//! evaluation tokens gives M next-token distributions. For every arm, each layer's context
//! K/V goes through the arm (packed bytes, so bits are measured, not assumed), a cache is
//! rebuilt from the reconstructions, and the same M tokens are forwarded on top of it. The
//! arm's effect is measured where it matters: top-1 agreement and KL(reference ‖ arm) of the
//! next-token distributions, next to bits/value and energy-weighted rel-MSE.

use candle_core::{DType, Device, Tensor};

use crate::codec::baselines::{Affine, Identity};
use crate::codec::batch::{Quantizer, decode_with, encode_with};
use crate::codec::{Codec, Packer, Variant};
use crate::model::{CausalLm, KvChannel, Logits, ModelError};

/// Default arms: storage baselines and the lattice codec at the published operating points.
pub const DEFAULT_ARMS: &[&str] = &[
    "identity", "affine8", "affine4", "d4-q38", "e8-q38", "d4-q10", "e8-q10", "e8-q4",
];

/// A named arm and its quantizer for one head dimension.
pub struct Arm {
    pub name: String,
    quantizer: Box<dyn Quantizer>,
}

impl Arm {
    /// `identity`, `affine8`, `affine4`, or `<e8|d4>-q<Q>`.
    pub fn new(name: &str, dim: usize) -> Result<Self, ModelError> {
        let bad = |m: String| ModelError::Input(format!("arm `{name}`: {m}"));
        let quantizer: Box<dyn Quantizer> = match name {
            "identity" => Box::new(Identity { dim }),
            "affine8" | "affine4" => {
                let bits = if name == "affine8" { 8 } else { 4 };
                Box::new(Affine::new(dim, bits, dim.min(64)).map_err(|e| bad(e.to_string()))?)
            }
            other => {
                let (v, q) = other.split_once("-q").ok_or_else(|| {
                    bad("expected identity, affine8, affine4 or e8-q38-style".into())
                })?;
                let variant: Variant = v.parse().map_err(bad)?;
                let q: i64 = q
                    .parse()
                    .map_err(|_| bad(format!("Q `{q}` is not an integer")))?;
                let codec = Codec::new(variant, dim, q).map_err(|e| bad(e.to_string()))?;
                Box::new(Packer::new(codec).map_err(|e| bad(e.to_string()))?)
            }
        };
        Ok(Arm {
            name: name.to_string(),
            quantizer,
        })
    }

    /// Encode then decode `rows`; returns the reconstruction and the stored bytes.
    pub fn apply(&self, rows: &[f32]) -> Result<(Vec<f32>, usize), ModelError> {
        let packed = encode_with(self.quantizer.as_ref(), rows)
            .map_err(|e| ModelError::Internal(e.to_string()))?;
        let out = decode_with(self.quantizer.as_ref(), &packed)
            .map_err(|e| ModelError::Internal(e.to_string()))?;
        Ok((out, packed.bytes.len()))
    }

    /// Bits per value by the arm's own accounting.
    pub fn accounted_bits_per_value(&self) -> f64 {
        self.quantizer.accounted_bits() as f64 / self.quantizer.dim() as f64
    }
}

/// What one arm did on one prompt.
#[derive(Debug, Clone, Default)]
pub struct ArmResult {
    pub values: usize,
    pub bytes: usize,
    /// Per layer: (‖K̂−K‖² + ‖V̂−V‖², ‖K‖² + ‖V‖²).
    pub layer_err: Vec<(f64, f64)>,
    pub positions: usize,
    pub top1_agree: usize,
    pub kl: Vec<f64>,
}

fn host(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1()?)
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x)) as f64;
    let lse = row
        .iter()
        .map(|x| (*x as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    row.iter().map(|x| *x as f64 - lse).collect()
}

/// KL(p ‖ q) from logits.
pub fn kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p_logits), log_softmax(q_logits));
    lp.iter()
        .zip(&lq)
        .map(|(a, b)| a.exp() * (a - b))
        .sum::<f64>()
        .max(0.0)
}

/// Run every arm on one prompt of at least two tokens; `eval` tokens at the end are scored.
pub fn evaluate(
    model: &CausalLm,
    tokens: &[u32],
    eval: usize,
    arms: &[Arm],
) -> Result<Vec<ArmResult>, ModelError> {
    if tokens.len() < 2 {
        return Err(ModelError::Input(
            "a kv-quant-eval prompt needs at least 2 tokens".into(),
        ));
    }
    let m = eval.clamp(1, tokens.len() - 1);
    let (ctx, tail) = tokens.split_at(tokens.len() - m);
    let mut raw = model.new_cache(&KvChannel::Raw)?;
    model.forward(ctx, &mut raw, Logits::Last)?;
    let captured: Vec<(Tensor, Tensor)> = (0..raw.num_layers())
        .map(|l| {
            raw.layer(l)
                .ok_or_else(|| ModelError::Internal("layer missing".into()))?
                .view()
                .map_err(ModelError::from)
        })
        .collect::<Result<_, _>>()?;
    let reference: Vec<Vec<f32>> = model.forward(tail, &mut raw, Logits::All)?.to_vec2()?;
    let mut results = Vec::with_capacity(arms.len());
    for arm in arms {
        let mut r = ArmResult::default();
        let mut cache = model.new_cache(&KvChannel::Raw)?;
        for (l, (k, v)) in captured.iter().enumerate() {
            let (kh, vh) = (host(k)?, host(v)?);
            let (kr, kb) = arm.apply(&kh)?;
            let (vr, vb) = arm.apply(&vh)?;
            let sq = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| ((x - y) as f64).powi(2))
                    .sum::<f64>()
            };
            let energy = |a: &[f32]| a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
            r.layer_err
                .push((sq(&kh, &kr) + sq(&vh, &vr), energy(&kh) + energy(&vh)));
            r.values += kh.len() + vh.len();
            r.bytes += kb + vb;
            let kt = Tensor::from_vec(kr, k.shape(), &Device::Cpu)?
                .to_dtype(k.dtype())?
                .to_device(k.device())?;
            let vt = Tensor::from_vec(vr, v.shape(), &Device::Cpu)?
                .to_dtype(v.dtype())?
                .to_device(v.device())?;
            cache
                .layer_mut(l)
                .ok_or_else(|| ModelError::Internal("layer missing".into()))?
                .append(&kt, &vt)?;
        }
        let got: Vec<Vec<f32>> = model.forward(tail, &mut cache, Logits::All)?.to_vec2()?;
        for (a, b) in reference.iter().zip(&got) {
            r.positions += 1;
            r.top1_agree += usize::from(crate::model::argmax(a) == crate::model::argmax(b));
            r.kl.push(kl(a, b));
        }
        results.push(r);
    }
    Ok(results)
}
