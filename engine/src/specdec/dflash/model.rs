//! The DFlash stack: strict weight loading and the two computations — turning committed
//! tokens' target states into per-layer context K/V, and one non-causal forward over a block.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::DFlashConfig;
use crate::model::layers::Linear;
use crate::model::{CausalLm, ModelError, load};

struct DLayer {
    ln1: Tensor,
    ln2: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Tensor,
    k_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A loaded drafter (weights in the target's dtype, on the target's device).
pub struct DFlashModel {
    pub cfg: DFlashConfig,
    fc: Linear,
    hidden_norm: Tensor,
    norm: Tensor,
    layers: Vec<DLayer>,
    inv_freq: Vec<f32>,
    dtype: DType,
    device: Device,
}

/// Per-layer K/V of the committed context (keys already normed and rotated).
#[derive(Default, Clone)]
pub struct ContextKv {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub len: usize,
}

/// Every tensor name and shape a checkpoint for `cfg` must hold, nothing more.
fn expected(cfg: &DFlashConfig) -> Vec<(String, Vec<usize>)> {
    let m = &cfg.model;
    let (h, hd, i) = (m.hidden_size, m.head_dim, m.intermediate_size);
    let (qd, kvd) = (m.num_heads * hd, m.num_kv_heads * hd);
    let mut e = vec![
        (
            "fc.weight".to_string(),
            vec![h, cfg.target_layer_ids.len() * h],
        ),
        ("hidden_norm.weight".into(), vec![h]),
        ("norm.weight".into(), vec![h]),
    ];
    for l in 0..m.num_layers {
        let p = format!("layers.{l}");
        for (n, s) in [
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![qd, h]),
            ("self_attn.k_proj.weight", vec![kvd, h]),
            ("self_attn.v_proj.weight", vec![kvd, h]),
            ("self_attn.o_proj.weight", vec![h, qd]),
            ("self_attn.q_norm.weight", vec![hd]),
            ("self_attn.k_norm.weight", vec![hd]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ] {
            e.push((format!("{p}.{n}"), s));
        }
    }
    e
}

fn rms(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor, ModelError> {
    Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?)
}

impl DFlashModel {
    /// Load `dir` strictly for `target`: every expected tensor present with its exact shape,
    /// no unknown tensor, dtype bf16/f16/f32 (converted to the target's).
    pub fn load(dir: &Path, target: &CausalLm) -> Result<Self, ModelError> {
        let cfg = DFlashConfig::from_dir(dir, target.config())?;
        let mut all: HashMap<String, Tensor> = HashMap::new();
        for f in load::weight_files(dir)? {
            let part = candle_core::safetensors::load(&f, &Device::Cpu)
                .map_err(|e| ModelError::Weights(format!("{}: {e}", f.display())))?;
            all.extend(part);
        }
        Self::from_tensors(cfg, all, target)
    }

    pub fn from_tensors(
        cfg: DFlashConfig,
        mut all: HashMap<String, Tensor>,
        target: &CausalLm,
    ) -> Result<Self, ModelError> {
        let want = expected(&cfg);
        let names: BTreeSet<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
        let unknown: Vec<&String> = all.keys().filter(|k| !names.contains(k.as_str())).collect();
        if !unknown.is_empty() {
            let mut u: Vec<_> = unknown.into_iter().cloned().collect();
            u.sort();
            return Err(ModelError::Weights(format!(
                "unknown tensors in the DFlash checkpoint: {}",
                u.join(", ")
            )));
        }
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !all.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            return Err(ModelError::Weights(format!(
                "missing tensors in the DFlash checkpoint: {}",
                missing.join(", ")
            )));
        }
        let (device, dtype) = (target.device().clone(), target.activation_dtype());
        let exact = target.exact();
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor, ModelError> {
            let t = all
                .remove(name)
                .ok_or_else(|| ModelError::Weights(format!("{name} is missing")))?;
            if t.dims() != shape {
                return Err(ModelError::Weights(format!(
                    "{name} has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) {
                return Err(ModelError::Weights(format!(
                    "{name} has dtype {:?} (expected bf16, f16 or f32)",
                    t.dtype()
                )));
            }
            Ok(t.to_dtype(dtype)?.to_device(&device)?.contiguous()?)
        };
        let shapes: HashMap<String, Vec<usize>> = want.into_iter().collect();
        let mut get = |name: String| -> Result<Tensor, ModelError> {
            let s = shapes.get(&name).cloned().unwrap_or_default();
            take(&name, &s)
        };
        let fc = Linear::from_weight(get("fc.weight".into())?, exact)?;
        let hidden_norm = get("hidden_norm.weight".into())?;
        let norm = get("norm.weight".into())?;
        let mut layers = Vec::new();
        for l in 0..cfg.model.num_layers {
            let mut g = |n: &str| get(format!("layers.{l}.{n}"));
            layers.push(DLayer {
                ln1: g("input_layernorm.weight")?,
                ln2: g("post_attention_layernorm.weight")?,
                q: Linear::from_weight(g("self_attn.q_proj.weight")?, exact)?,
                k: Linear::from_weight(g("self_attn.k_proj.weight")?, exact)?,
                v: Linear::from_weight(g("self_attn.v_proj.weight")?, exact)?,
                o: Linear::from_weight(g("self_attn.o_proj.weight")?, exact)?,
                q_norm: g("self_attn.q_norm.weight")?,
                k_norm: g("self_attn.k_norm.weight")?,
                gate: Linear::from_weight(g("mlp.gate_proj.weight")?, exact)?,
                up: Linear::from_weight(g("mlp.up_proj.weight")?, exact)?,
                down: Linear::from_weight(g("mlp.down_proj.weight")?, exact)?,
            });
        }
        Ok(DFlashModel {
            inv_freq: crate::model::config::inv_freqs(&cfg.model),
            cfg,
            fc,
            hidden_norm,
            norm,
            layers,
            dtype,
            device,
        })
    }

    fn rope(&self, pos0: usize, l: usize) -> Result<(Tensor, Tensor), ModelError> {
        let half = self.inv_freq.len();
        let (mut cos, mut sin) = (Vec::with_capacity(l * half), Vec::with_capacity(l * half));
        for p in pos0..pos0 + l {
            for f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        let mk = |v: Vec<f32>| -> Result<Tensor, ModelError> {
            Ok(Tensor::from_vec(v, (l, half), &self.device)?.to_dtype(self.dtype)?)
        };
        Ok((mk(cos)?, mk(sin)?))
    }

    /// `[L, heads·hd]` → normed, rotated `[L, heads, hd]`.
    fn qk(
        &self,
        x: &Tensor,
        heads: usize,
        norm: &Tensor,
        cs: &(Tensor, Tensor),
    ) -> Result<Tensor, ModelError> {
        let (l, hd) = (x.dim(0)?, self.cfg.model.head_dim);
        let x = rms(
            &x.reshape((l, heads, hd))?,
            norm,
            self.cfg.model.rms_norm_eps,
        )?;
        Ok(candle_nn::rotary_emb::rope_thd(&x.unsqueeze(0)?, &cs.0, &cs.1)?.squeeze(0)?)
    }

    /// Append the context K/V of committed tokens at positions `ctx.len..` from their
    /// captured target states `hidden [n, ids·H]`.
    pub fn extend_context(&self, ctx: &mut ContextKv, hidden: &Tensor) -> Result<(), ModelError> {
        let m = &self.cfg.model;
        let (n, w) = hidden.dims2()?;
        if w != self.cfg.target_layer_ids.len() * m.hidden_size {
            return Err(ModelError::Internal(format!(
                "captured states have width {w}, the drafter's fc expects {}",
                self.cfg.target_layer_ids.len() * m.hidden_size
            )));
        }
        let hidden = hidden.to_dtype(self.dtype)?;
        let c = rms(
            &self.fc.forward(&hidden)?,
            &self.hidden_norm,
            m.rms_norm_eps,
        )?;
        let cs = self.rope(ctx.len, n)?;
        let fresh = ctx.k.is_empty();
        for (i, layer) in self.layers.iter().enumerate() {
            let k = self.qk(&layer.k.forward(&c)?, m.num_kv_heads, &layer.k_norm, &cs)?;
            let v = layer
                .v
                .forward(&c)?
                .reshape((n, m.num_kv_heads, m.head_dim))?;
            if fresh {
                ctx.k.push(k);
                ctx.v.push(v);
            } else {
                ctx.k[i] = Tensor::cat(&[&ctx.k[i], &k], 0)?;
                ctx.v[i] = Tensor::cat(&[&ctx.v[i], &v], 0)?;
            }
        }
        ctx.len += n;
        Ok(())
    }

    /// One non-causal forward over `block` (the bonus then mask ids) at positions
    /// `ctx.len..`: every block position attends to all context K/V and all block positions.
    /// Returns f32 logits `[block.len() − 1, vocab]` for positions 1.. with the mask id at −∞.
    pub fn block_logits(
        &self,
        target: &CausalLm,
        ctx: &ContextKv,
        block: &[u32],
    ) -> Result<Tensor, ModelError> {
        let m = &self.cfg.model;
        let b = block.len();
        if b < 2 {
            return Err(ModelError::Input(
                "a DFlash block needs at least 2 positions".into(),
            ));
        }
        if ctx.k.len() != self.layers.len() {
            return Err(ModelError::Internal("the DFlash context is empty".into()));
        }
        let (nh, nkv, hd) = (m.num_heads, m.num_kv_heads, m.head_dim);
        let eps = m.rms_norm_eps;
        let cs = self.rope(ctx.len, b)?;
        let mut x = target.embed(block)?.to_dtype(self.dtype)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = rms(&x, &layer.ln1, eps)?;
            let q = self.qk(&layer.q.forward(&h)?, nh, &layer.q_norm, &cs)?;
            let kb = self.qk(&layer.k.forward(&h)?, nkv, &layer.k_norm, &cs)?;
            let vb = layer.v.forward(&h)?.reshape((b, nkv, hd))?;
            let k = Tensor::cat(&[&ctx.k[i], &kb], 0)?;
            let v = Tensor::cat(&[&ctx.v[i], &vb], 0)?;
            let attn = full_attention(&q, &k, &v)?.reshape((b, nh * hd))?;
            x = (x + layer.o.forward(&attn)?)?;
            let h = rms(&x, &layer.ln2, eps)?;
            let g = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let mlp = layer.down.forward(&(g * layer.up.forward(&h)?)?)?;
            x = (x + mlp)?;
        }
        let x = rms(&x.narrow(0, 1, b - 1)?, &self.norm, eps)?;
        let logits = target.lm_head_only(&x)?;
        let vocab = logits.dim(1)?;
        let mask = self.cfg.mask_token_id as usize;
        let col: Vec<f32> = (0..vocab)
            .map(|j| if j == mask { f32::NEG_INFINITY } else { 0.0 })
            .collect();
        let col = Tensor::from_vec(col, (1, vocab), logits.device())?;
        Ok(logits.broadcast_add(&col)?)
    }
}

/// Softmax attention without a mask, GQA by repeating K/V heads; f32 scores.
fn full_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor, ModelError> {
    let (l, nh, hd) = q.dims3()?;
    let (t, nkv, _) = k.dims3()?;
    let rep = nh / nkv;
    let dtype = q.dtype();
    let q = q.to_dtype(DType::F32)?.transpose(0, 1)?.contiguous()?;
    let expand = |x: &Tensor| -> Result<Tensor, ModelError> {
        let x = x.to_dtype(DType::F32)?.transpose(0, 1)?;
        Ok(x.unsqueeze(1)?
            .expand((nkv, rep, t, hd))?
            .reshape((nh, t, hd))?
            .contiguous()?)
    };
    let (k, v) = (expand(k)?, expand(v)?);
    let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    let _ = l;
    Ok(att.matmul(&v)?.transpose(0, 1)?.to_dtype(dtype)?)
}
