//! One decoder layer on the exact kernels: f32 activations as plain slices, weights packed
//! once at load (q/k/v side by side, gate/up side by side), K/V appended to the layer's
//! cache store.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::attn::{self, AttnShape};
use super::ops;
use super::pack::PackedMatrix;
use crate::model::ModelError;
use crate::model::cache::KvStore;
use crate::model::config::ModelConfig;

pub(crate) struct ExactLayer {
    ln1: Vec<f32>,
    ln2: Vec<f32>,
    qkv: PackedMatrix,
    qkv_bias: Option<Vec<f32>>,
    o: PackedMatrix,
    o_bias: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    gate_up: PackedMatrix,
    gate_up_bias: Option<Vec<f32>>,
    down: PackedMatrix,
    down_bias: Option<Vec<f32>>,
}

/// Per-forward facts shared by every layer: RoPE tables `[l, head_dim/2]`.
pub(crate) struct ExactStep<'a> {
    pub cfg: &'a ModelConfig,
    pub cos: &'a [f32],
    pub sin: &'a [f32],
}

pub(crate) fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn pack(ws: &[&Tensor], dtype: DType, what: &str) -> Result<PackedMatrix, ModelError> {
    PackedMatrix::pack(ws, dtype).map_err(|e| ModelError::Weights(format!("{what}: {e}")))
}

fn get(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor, ModelError> {
    vb.get(shape, name)
        .map_err(|e| ModelError::Weights(format!("{}.{name}: {e}", vb.prefix())))
}

/// Biases of several projections packed together, or `None` when the model has none.
fn biases(
    vb: &VarBuilder,
    parts: &[(&str, usize)],
    on: bool,
) -> Result<Option<Vec<f32>>, ModelError> {
    if !on {
        return Ok(None);
    }
    let mut all = Vec::new();
    for (name, n) in parts {
        all.extend(to_f32_vec(&get(vb, &[*n], &format!("{name}.bias"))?)?);
    }
    Ok(Some(all))
}

impl ExactLayer {
    /// Load and pack one layer; weights keep the VarBuilder's dtype.
    pub fn load(vb: &VarBuilder, cfg: &ModelConfig) -> Result<Self, ModelError> {
        let dtype = vb.dtype();
        let (h, hd, inter) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (qd, kvd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        let a = vb.pp("self_attn");
        let m = vb.pp("mlp");
        let norm = |vb: &VarBuilder, name: &str, n: usize| -> Result<Vec<f32>, ModelError> {
            to_f32_vec(&get(vb, &[n], &format!("{name}.weight"))?)
        };
        let q = get(&a, &[qd, h], "q_proj.weight")?;
        let k = get(&a, &[kvd, h], "k_proj.weight")?;
        let v = get(&a, &[kvd, h], "v_proj.weight")?;
        let qkv = pack(&[&q, &k, &v], dtype, "q/k/v projections")?;
        drop((q, k, v));
        let o = pack(&[&get(&a, &[h, qd], "o_proj.weight")?], dtype, "o_proj")?;
        let g = get(&m, &[inter, h], "gate_proj.weight")?;
        let u = get(&m, &[inter, h], "up_proj.weight")?;
        let gate_up = pack(&[&g, &u], dtype, "gate/up projections")?;
        drop((g, u));
        let down = pack(
            &[&get(&m, &[h, inter], "down_proj.weight")?],
            dtype,
            "down_proj",
        )?;
        Ok(ExactLayer {
            ln1: norm(vb, "input_layernorm", h)?,
            ln2: norm(vb, "post_attention_layernorm", h)?,
            qkv,
            qkv_bias: biases(
                &a,
                &[("q_proj", qd), ("k_proj", kvd), ("v_proj", kvd)],
                cfg.qkv_bias,
            )?,
            o,
            o_bias: biases(&a, &[("o_proj", h)], cfg.o_bias)?,
            q_norm: cfg.qk_norm.then(|| norm(&a, "q_norm", hd)).transpose()?,
            k_norm: cfg.qk_norm.then(|| norm(&a, "k_norm", hd)).transpose()?,
            gate_up,
            gate_up_bias: biases(
                &m,
                &[("gate_proj", inter), ("up_proj", inter)],
                cfg.mlp_bias,
            )?,
            down,
            down_bias: biases(&m, &[("down_proj", h)], cfg.mlp_bias)?,
        })
    }

    /// `x[l, hidden]` at positions `cache.len()..`, updated in place; appends this layer's
    /// K/V to `cache`.
    pub fn forward(
        &self,
        x: &mut [f32],
        l: usize,
        cache: &mut dyn KvStore,
        s: &ExactStep,
    ) -> Result<(), ModelError> {
        let cfg = s.cfg;
        let eps = cfg.rms_norm_eps as f32;
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nh, nkv) = (cfg.num_heads, cfg.num_kv_heads);
        let (qd, kvd) = (nh * hd, nkv * hd);
        let normed = ops::rms_norm(x, h, &self.ln1, eps);
        let mut qkv = self.qkv.matmul(&normed, l);
        if let Some(b) = &self.qkv_bias {
            ops::add_bias(&mut qkv, b);
        }
        let width = qd + 2 * kvd;
        let mut q = Vec::with_capacity(l * qd);
        let mut k = Vec::with_capacity(l * kvd);
        let mut v = Vec::with_capacity(l * kvd);
        for row in qkv.chunks_exact(width) {
            q.extend_from_slice(&row[..qd]);
            k.extend_from_slice(&row[qd..qd + kvd]);
            v.extend_from_slice(&row[qd + kvd..]);
        }
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = ops::rms_norm(&q, hd, qn, eps);
            k = ops::rms_norm(&k, hd, kn, eps);
        }
        ops::rope(&mut q, l, hd, s.cos, s.sin);
        ops::rope(&mut k, l, hd, s.cos, s.sin);
        let kt = Tensor::from_vec(k, (l, nkv, hd), &Device::Cpu)?;
        let vt = Tensor::from_vec(v, (l, nkv, hd), &Device::Cpu)?;
        cache.append(&kt, &vt)?;
        let (kc, vc) = cache.view()?;
        let t = kc.dim(0)?;
        let shape = AttnShape {
            l,
            heads: nh,
            kv_heads: nkv,
            head_dim: hd,
            t,
        };
        let scale = 1.0 / (hd as f32).sqrt();
        let att = crate::model::layers::with_f32(&kc, |ks| {
            crate::model::layers::with_f32(&vc, |vs| attn::attention(&q, ks, vs, shape, scale))
        })??;
        let mut o = self.o.matmul(&att, l);
        if let Some(b) = &self.o_bias {
            ops::add_bias(&mut o, b);
        }
        ops::add_into(x, &o);
        let normed = ops::rms_norm(x, h, &self.ln2, eps);
        let mut gu = self.gate_up.matmul(&normed, l);
        if let Some(b) = &self.gate_up_bias {
            ops::add_bias(&mut gu, b);
        }
        let act = ops::swiglu(&gu, cfg.intermediate_size);
        let mut d = self.down.matmul(&act, l);
        if let Some(b) = &self.down_bias {
            ops::add_bias(&mut d, b);
        }
        ops::add_into(x, &d);
        Ok(())
    }
}
