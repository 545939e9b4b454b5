//! The causal LM: embeddings, decoder layers, final norm, lm_head (tied or not), and a block
//! forward over L new tokens at the cache's current offset returning logits for every
//! position (or just the last).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::cache::{KvChannel, ModelCache, StoreSpec};
use super::config::{self, ModelConfig};
use super::exact::layer::{ExactLayer, to_f32_vec};
use super::exact::ops;
use super::layers::{Layer, Linear, weight_err};
use super::{ModelError, load};

mod forward;

/// Tokens per forward pass of a long input on the exact path (see `forward_chunked`).
pub const PREFILL_CHUNK: usize = 512;

/// Which logits a forward returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// One row per input token.
    All,
    /// Only the row after the last input token (cheaper lm_head).
    Last,
}

/// Which kernels run the matmuls and attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// Exact (batch-invariant) kernels on CPU (f32, f16 or bf16 weights; f32 activations),
    /// candle ops on other devices.
    Auto,
    /// Always candle ops (fast BLAS-style matmul; block ≠ steps in the last bits).
    Candle,
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `cpu`, `metal`, `cuda` or `auto` (see [`crate::device::open`]).
    pub device: String,
    /// Weight and activation dtype; `None` = f32.
    pub dtype: Option<DType>,
    pub kernels: KernelChoice,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: "cpu".into(),
            dtype: None,
            kernels: KernelChoice::Auto,
        }
    }
}

/// Parse `f32`, `f16`, `bf16`.
pub fn parse_dtype(s: &str) -> Result<DType, ModelError> {
    match s {
        "f32" | "float32" => Ok(DType::F32),
        "f16" | "float16" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(ModelError::Unsupported(format!(
            "dtype `{other}` (expected f32, f16 or bf16)"
        ))),
    }
}

pub struct CausalLm {
    cfg: ModelConfig,
    dir: PathBuf,
    device: Device,
    device_label: String,
    dtype: DType,
    exact: bool,
    embed: Tensor,
    layers: Stack,
    norm: Tensor,
    norm_f32: Vec<f32>,
    lm_head: Linear,
    inv_freq: Vec<f32>,
}

/// The decoder layers on one of the two paths.
enum Stack {
    Exact(Vec<ExactLayer>),
    Candle(Vec<Layer>),
}

impl Stack {
    fn len(&self) -> usize {
        match self {
            Stack::Exact(v) => v.len(),
            Stack::Candle(v) => v.len(),
        }
    }
}

impl CausalLm {
    /// Load `config.json` and the safetensors weights of `dir`.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self, ModelError> {
        let cfg = ModelConfig::from_dir(dir)?;
        let files = load::weight_files(dir)?;
        let (device, device_label) = crate::device::open(&opts.device)?;
        let dtype = opts.dtype.unwrap_or(DType::F32);
        // SAFETY: the files are memory-mapped read-only; candle's loader validates headers and
        // offsets. Modifying the files while the model is loaded is not supported.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &device) }
            .map_err(|e| ModelError::Weights(format!("{}: {e}", dir.display())))?;
        Self::from_varbuilder(cfg, vb, dir, device_label, opts.kernels)
    }

    /// Build from an existing `VarBuilder` (HF tensor names).
    pub fn from_varbuilder(
        cfg: ModelConfig,
        vb: VarBuilder,
        dir: &Path,
        device_label: String,
        kernels: KernelChoice,
    ) -> Result<Self, ModelError> {
        let (device, dtype) = (vb.device().clone(), vb.dtype());
        let m = vb.pp("model");
        let embed = m
            .get((cfg.vocab_size, cfg.hidden_size), "embed_tokens.weight")
            .map_err(|e| weight_err("model.embed_tokens", e))?;
        let exact = device.is_cpu() && kernels == KernelChoice::Auto;
        let layer_vb = |i: usize| m.pp(format!("layers.{i}"));
        let layers = if exact {
            Stack::Exact(
                (0..cfg.num_layers)
                    .map(|i| ExactLayer::load(&layer_vb(i), &cfg))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        } else {
            Stack::Candle(
                (0..cfg.num_layers)
                    .map(|i| Layer::load(&layer_vb(i), &cfg))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        let norm = m
            .get(cfg.hidden_size, "norm.weight")
            .map_err(|e| weight_err("model.norm", e))?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::from_weight(embed.clone(), exact)?
        } else {
            Linear::load(
                &vb,
                "lm_head",
                cfg.hidden_size,
                cfg.vocab_size,
                false,
                exact,
            )?
        };
        Ok(CausalLm {
            inv_freq: config::inv_freqs(&cfg),
            cfg,
            dir: dir.to_path_buf(),
            device,
            device_label,
            dtype,
            exact,
            embed,
            layers,
            norm_f32: to_f32_vec(&norm)?,
            norm,
            lm_head,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn device_label(&self) -> &str {
        &self.device_label
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dtype of activations, hidden states and the KV cache: f32 on the exact path,
    /// the weights' dtype on candle's.
    pub fn activation_dtype(&self) -> DType {
        if self.exact { DType::F32 } else { self.dtype }
    }

    /// `exact` (batch-invariant CPU kernels) or `candle`.
    pub fn kernels_label(&self) -> &'static str {
        if self.exact { "exact" } else { "candle" }
    }

    /// A fresh cache for this model through `channel`.
    pub fn new_cache(&self, channel: &KvChannel) -> Result<ModelCache, ModelError> {
        let spec = StoreSpec {
            kv_heads: self.cfg.num_kv_heads,
            head_dim: self.cfg.head_dim,
            dtype: self.activation_dtype(),
            device: self.device.clone(),
        };
        Ok(ModelCache::new(self.cfg.num_layers, spec, channel)?)
    }

    /// RoPE tables `[l, head_dim/2]` for positions `pos0..pos0 + l`.
    fn rope_tables(&self, pos0: usize, l: usize) -> (Vec<f32>, Vec<f32>) {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(l * half);
        let mut sin = Vec::with_capacity(l * half);
        for p in pos0..pos0 + l {
            for f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        (cos, sin)
    }

    fn rope(&self, pos0: usize, l: usize) -> Result<(Tensor, Tensor), ModelError> {
        let half = self.inv_freq.len();
        let (cos, sin) = self.rope_tables(pos0, l);
        let mk = |v: Vec<f32>| -> Result<Tensor, ModelError> {
            Ok(Tensor::from_vec(v, (l, half), &self.device)?.to_dtype(self.dtype)?)
        };
        Ok((mk(cos)?, mk(sin)?))
    }

    /// Run `tokens` at positions `cache.len()..` and append their K/V to `cache`. Returns f32
    /// logits `[L, vocab]` (or `[1, vocab]` for [`Logits::Last`]). On error the cache is put
    /// back to its length before the call.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut ModelCache,
        which: Logits,
    ) -> Result<Tensor, ModelError> {
        Ok(self.forward_capture(tokens, cache, which, &[])?.0)
    }

    /// [`Self::forward`] that also returns the residual stream after each decoder layer in
    /// `capture` (0-based: the output of that layer), concatenated along the feature axis in
    /// the order given: `[L, capture.len() · hidden]` (`None` when `capture` is empty). The
    /// captured tensors are the very values the next layer reads, so the logits are the
    /// same bits as without capture.
    pub fn forward_capture(
        &self,
        tokens: &[u32],
        cache: &mut ModelCache,
        which: Logits,
        capture: &[usize],
    ) -> Result<(Tensor, Option<Tensor>), ModelError> {
        if let Some(&bad) = capture.iter().find(|&&i| i >= self.layers.len()) {
            return Err(ModelError::Input(format!(
                "hidden-state layer {bad} is outside the target's {} layers",
                self.layers.len()
            )));
        }
        let pos0 = cache.len();
        let result = self.forward_inner(tokens, cache, which, capture);
        if result.is_err() {
            let _ = cache.truncate(pos0.min(cache.len()));
            // Layers that had not appended yet are shorter; bring all back to pos0.
            for i in 0..cache.num_layers() {
                if let Some(l) = cache.layer_mut(i)
                    && l.len() > pos0
                {
                    let _ = l.truncate(pos0);
                }
            }
        }
        result
    }

    fn forward_inner(
        &self,
        tokens: &[u32],
        cache: &mut ModelCache,
        which: Logits,
        capture: &[usize],
    ) -> Result<(Tensor, Option<Tensor>), ModelError> {
        let l = tokens.len();
        if l == 0 {
            return Err(ModelError::Input("forward needs at least one token".into()));
        }
        self.check_tokens(tokens)?;
        if cache.num_layers() != self.layers.len() {
            return Err(ModelError::Input(format!(
                "cache has {} layers, model has {}",
                cache.num_layers(),
                self.layers.len()
            )));
        }
        let pos0 = cache.len();
        if pos0 + l > self.cfg.max_position_embeddings {
            return Err(ModelError::Input(format!(
                "positions up to {} exceed max_position_embeddings {}",
                pos0 + l,
                self.cfg.max_position_embeddings
            )));
        }
        match &self.layers {
            // The whole forward runs on one of rayon's workers: each kernel's parallel loop
            // then forks from inside the pool (a deque push the other worker steals while
            // still spinning) instead of every one of the ~5 calls per layer waking the pool
            // from outside and putting this thread to sleep until it is done.
            Stack::Exact(layers) => {
                rayon::scope(|_| self.forward_chunked(layers, tokens, cache, which, capture))
            }
            Stack::Candle(layers) => self.forward_candle(layers, tokens, cache, which, capture),
        }
    }

    /// Final norm + lm_head of hidden rows `[m, hidden]` → f32 logits `[m, vocab]`.
    pub fn head(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        if self.exact {
            let (m, h) = x.dims2()?;
            return self.exact_logits(&to_f32_vec(x)?, m, h);
        }
        let x =
            candle_nn::ops::rms_norm(&x.contiguous()?, &self.norm, self.cfg.rms_norm_eps as f32)?;
        self.lm_head_only(&x)
    }

    /// The exact path's final norm + lm_head on `m` f32 rows of width `h`.
    fn exact_logits(&self, rows: &[f32], m: usize, h: usize) -> Result<Tensor, ModelError> {
        let normed = ops::rms_norm(rows, h, &self.norm_f32, self.cfg.rms_norm_eps as f32);
        let logits = self.lm_head.forward_f32(&normed, m)?;
        Ok(Tensor::from_vec(
            logits,
            (m, self.cfg.vocab_size),
            &self.device,
        )?)
    }

    /// The lm_head alone (no final norm) on rows that are already normalised: a DFlash
    /// drafter scores its own normed states with the target's head.
    pub fn lm_head_only(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(self
            .lm_head
            .forward(&x.contiguous()?)?
            .to_dtype(DType::F32)?)
    }

    /// Embedding rows of `tokens` `[L, hidden]` (a DFlash drafter embeds with the target's
    /// table).
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor, ModelError> {
        self.check_tokens(tokens)?;
        self.embed_rows(tokens)
    }

    /// Embedding rows of ids already checked against the vocabulary.
    fn embed_rows(&self, tokens: &[u32]) -> Result<Tensor, ModelError> {
        let ids = Tensor::new(tokens, &self.device)?;
        Ok(self.embed.index_select(&ids, 0)?)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), ModelError> {
        match tokens.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            Some(&id) => Err(ModelError::Input(format!(
                "token id {id} is outside the vocabulary of {}",
                self.cfg.vocab_size
            ))),
            None => Ok(()),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the batch-invariant CPU kernels run this model.
    pub fn exact(&self) -> bool {
        self.exact
    }
}

/// Index of the largest value (first one on ties), as the reference's argmax.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Argmax of every row of a `[L, vocab]` logits tensor.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>, ModelError> {
    let rows: Vec<Vec<f32>> = logits.to_vec2()?;
    Ok(rows.iter().map(|r| argmax(r)).collect())
}
