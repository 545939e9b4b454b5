//! Building blocks of the candle path: a projection (packed for the exact kernels when the
//! model runs them, a candle matmul otherwise) and one decoder layer on candle ops (pre-norm
//! attention + SwiGLU MLP) for GPUs, `--candle-kernels` and the comparison benches. The
//! exact CPU path's layer is [`super::exact::layer`].

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use candle_nn::VarBuilder;

use super::ModelError;
use super::cache::KvStore;
use super::config::ModelConfig;
use super::exact::{self, PackedMatrix, layer::to_f32_vec};

/// Run `f` on the f32 contents of a contiguous CPU tensor.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, ModelError> {
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(data)), Some((a, b))) =
        (&*storage, layout.contiguous_offsets())
    else {
        return Err(ModelError::Internal(
            "exact kernels need contiguous f32 CPU tensors".into(),
        ));
    };
    Ok(f(&data[a..b]))
}

/// A projection `x[m, in] → [m, out]`: packed for the exact kernels, or a candle tensor.
pub(crate) enum Linear {
    Exact {
        w: PackedMatrix,
        b: Option<Vec<f32>>,
    },
    Candle {
        w: Tensor,
        b: Option<Tensor>,
    },
}

impl Linear {
    pub fn load(
        vb: &VarBuilder,
        name: &str,
        inp: usize,
        out: usize,
        bias: bool,
        exact: bool,
    ) -> Result<Self, ModelError> {
        let w = vb
            .get((out, inp), &format!("{name}.weight"))
            .map_err(|e| weight_err(name, e))?;
        let b = if bias {
            Some(
                vb.get(out, &format!("{name}.bias"))
                    .map_err(|e| weight_err(name, e))?,
            )
        } else {
            None
        };
        Self::new(w, b, exact)
    }

    pub fn from_weight(w: Tensor, exact: bool) -> Result<Self, ModelError> {
        Self::new(w, None, exact)
    }

    fn new(w: Tensor, b: Option<Tensor>, exact: bool) -> Result<Self, ModelError> {
        if !exact {
            return Ok(Linear::Candle { w, b });
        }
        let packed =
            PackedMatrix::pack(&[&w], w.dtype()).map_err(|e| ModelError::Weights(e.to_string()))?;
        let b = b.map(|b| to_f32_vec(&b)).transpose()?;
        Ok(Linear::Exact { w: packed, b })
    }

    /// `x[m, in] → [m, out]`; f32 out of the exact path, the input dtype otherwise.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        match self {
            Linear::Exact { w, .. } => {
                let m = x.dim(0)?;
                let xs = to_f32_vec(x)?;
                let y = self.forward_f32(&xs, m)?;
                Ok(Tensor::from_vec(y, (m, w.n()), &Device::Cpu)?)
            }
            Linear::Candle { w, b } => {
                let y = x.matmul(&w.t()?)?;
                Ok(match b {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
        }
    }

    /// The exact path on f32 rows `x[m, in]`.
    pub fn forward_f32(&self, x: &[f32], m: usize) -> Result<Vec<f32>, ModelError> {
        let Linear::Exact { w, b } = self else {
            return Err(ModelError::Internal(
                "an f32 forward needs a packed projection".into(),
            ));
        };
        if x.len() != m * w.k() {
            return Err(ModelError::Internal(format!(
                "projection input has {} values, expected {m} × {}",
                x.len(),
                w.k()
            )));
        }
        let mut y = w.matmul(x, m);
        if let Some(b) = b {
            exact::ops::add_bias(&mut y, b);
        }
        Ok(y)
    }
}

pub(crate) fn weight_err(name: &str, e: candle_core::Error) -> ModelError {
    ModelError::Weights(format!("{name}: {e}"))
}

pub(crate) struct Layer {
    ln1: Tensor,
    ln2: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Per-forward facts shared by every layer.
pub(crate) struct Step<'a> {
    pub cfg: &'a ModelConfig,
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
}

impl Layer {
    pub fn load(vb: &VarBuilder, cfg: &ModelConfig) -> Result<Self, ModelError> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (qd, kvd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        let a = vb.pp("self_attn");
        let m = vb.pp("mlp");
        let norm = |vb: &VarBuilder, name: &str, n: usize| {
            vb.get(n, &format!("{name}.weight"))
                .map_err(|e| weight_err(name, e))
        };
        Ok(Layer {
            ln1: norm(vb, "input_layernorm", h)?,
            ln2: norm(vb, "post_attention_layernorm", h)?,
            q: Linear::load(&a, "q_proj", h, qd, cfg.qkv_bias, false)?,
            k: Linear::load(&a, "k_proj", h, kvd, cfg.qkv_bias, false)?,
            v: Linear::load(&a, "v_proj", h, kvd, cfg.qkv_bias, false)?,
            o: Linear::load(&a, "o_proj", qd, h, cfg.o_bias, false)?,
            q_norm: cfg.qk_norm.then(|| norm(&a, "q_norm", hd)).transpose()?,
            k_norm: cfg.qk_norm.then(|| norm(&a, "k_norm", hd)).transpose()?,
            gate: Linear::load(
                &m,
                "gate_proj",
                h,
                cfg.intermediate_size,
                cfg.mlp_bias,
                false,
            )?,
            up: Linear::load(&m, "up_proj", h, cfg.intermediate_size, cfg.mlp_bias, false)?,
            down: Linear::load(
                &m,
                "down_proj",
                cfg.intermediate_size,
                h,
                cfg.mlp_bias,
                false,
            )?,
        })
    }

    /// `x[L, hidden]` at positions `cache.len()..`; appends this layer's K/V to `cache`.
    pub fn forward(
        &self,
        x: &Tensor,
        cache: &mut dyn KvStore,
        s: &Step,
    ) -> Result<Tensor, ModelError> {
        let cfg = s.cfg;
        let eps = cfg.rms_norm_eps as f32;
        let (l, hd) = (x.dim(0)?, cfg.head_dim);
        let (nh, nkv) = (cfg.num_heads, cfg.num_kv_heads);
        let h = candle_nn::ops::rms_norm(x, &self.ln1, eps)?;
        let mut q = self.q.forward(&h)?.reshape((l, nh, hd))?;
        let mut k = self.k.forward(&h)?.reshape((l, nkv, hd))?;
        let v = self.v.forward(&h)?.reshape((l, nkv, hd))?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = candle_nn::ops::rms_norm(&q, qn, eps)?;
            k = candle_nn::ops::rms_norm(&k, kn, eps)?;
        }
        let q = candle_nn::rotary_emb::rope_thd(&q.unsqueeze(0)?, s.cos, s.sin)?.squeeze(0)?;
        let k = candle_nn::rotary_emb::rope_thd(&k.unsqueeze(0)?, s.cos, s.sin)?.squeeze(0)?;
        cache.append(&k, &v)?;
        let (kc, vc) = cache.view()?;
        let scale = 1.0 / (hd as f32).sqrt();
        let attn = candle_attention(&q, &kc, &vc, scale)?.reshape((l, nh * hd))?;
        let x = (x + self.o.forward(&attn)?)?;
        let h = candle_nn::ops::rms_norm(&x, &self.ln2, eps)?;
        let g = candle_nn::ops::silu(&self.gate.forward(&h)?)?;
        let m = self.down.forward(&(g * self.up.forward(&h)?)?)?;
        Ok((x + m)?)
    }
}

/// Standard attention with candle ops (any device/dtype): scores in f32, causal mask with the
/// cache offset, GQA by expanding K/V.
fn candle_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor, ModelError> {
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
    let mut att = (q.matmul(&k.t()?)? * f64::from(scale))?;
    if l > 1 {
        let p0 = t - l;
        let mask: Vec<f32> = (0..l)
            .flat_map(|i| (0..t).map(move |j| if j > p0 + i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (l, t), q.device())?;
        att = att.broadcast_add(&mask)?;
    }
    let att = candle_nn::ops::softmax_last_dim(&att)?;
    Ok(att.matmul(&v)?.transpose(0, 1)?.to_dtype(dtype)?)
}
