//! Tiny model directories for tests and benchmarks, written from a seed: `config.json`,
//! `model.safetensors` (HF tensor names) and a `tokenizer.json` made by the `tokenizers`
//! crate. Drafts are derived from a target by keeping its first layers (same embeddings and
//! head) and/or perturbing every weight with seeded noise, which sets the acceptance rate.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::model::{Arch, ModelError};

pub mod chat;
pub mod dflash;
pub mod retrieval;
mod rng;
pub mod tokenizer;

pub use rng::Rng;

/// What to write.
#[derive(Debug, Clone)]
pub struct TinySpec {
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    pub intermediate: usize,
    pub seed: u64,
    /// Tied embeddings (default: Qwen tied, Llama untied, so both paths get exercised).
    pub tie: bool,
    pub max_positions: usize,
}

impl TinySpec {
    /// Defaults for `arch` with `hidden` width: head_dim 16 below 256, else 64; half as many
    /// KV heads as query heads (GQA); intermediate ≈ 2.75 × hidden.
    pub fn new(arch: Arch, seed: u64) -> Self {
        let mut s = TinySpec {
            arch,
            layers: 2,
            hidden: 64,
            heads: 0,
            kv_heads: 0,
            vocab: 384,
            intermediate: 0,
            seed,
            tie: arch != Arch::Llama,
            max_positions: 4096,
        };
        s.fill_defaults();
        s
    }

    /// Fill zero-valued sizes from `hidden`.
    pub fn fill_defaults(&mut self) {
        if self.heads == 0 {
            let hd = if self.hidden >= 256 { 64 } else { 16 };
            self.heads = (self.hidden / hd).max(1);
        }
        if self.kv_heads == 0 {
            self.kv_heads = if self.heads.is_multiple_of(2) {
                self.heads / 2
            } else {
                self.heads
            };
        }
        if self.intermediate == 0 {
            self.intermediate = (self.hidden * 11 / 4).div_ceil(16) * 16;
        }
    }

    fn validate(&self) -> Result<usize, ModelError> {
        let bad = |m: String| ModelError::Input(m);
        if self.layers == 0 || self.hidden == 0 || self.heads == 0 || self.kv_heads == 0 {
            return Err(bad(
                "layers, hidden, heads and kv-heads must be positive".into()
            ));
        }
        if !self.hidden.is_multiple_of(self.heads) || !(self.hidden / self.heads).is_multiple_of(2)
        {
            return Err(bad(format!(
                "hidden {} must split into {} heads of an even size",
                self.hidden, self.heads
            )));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(bad(format!(
                "heads {} is not a multiple of kv-heads {}",
                self.heads, self.kv_heads
            )));
        }
        if self.vocab < tokenizer::MIN_VOCAB || self.vocab > 1 << 20 {
            return Err(bad(format!(
                "vocab {} is outside {}..=1048576",
                self.vocab,
                tokenizer::MIN_VOCAB
            )));
        }
        if self.layers > 64 || self.hidden > 8192 {
            return Err(bad(
                "a tiny model has at most 64 layers and hidden 8192".into()
            ));
        }
        Ok(self.hidden / self.heads)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn config_json(s: &TinySpec, head_dim: usize) -> serde_json::Value {
    let (mt, archs, theta) = match s.arch {
        Arch::Llama => ("llama", "LlamaForCausalLM", 10_000.0),
        Arch::Qwen2 => ("qwen2", "Qwen2ForCausalLM", 1_000_000.0),
        Arch::Qwen3 => ("qwen3", "Qwen3ForCausalLM", 1_000_000.0),
    };
    json!({
        "architectures": [archs],
        "model_type": mt,
        "vocab_size": s.vocab,
        "hidden_size": s.hidden,
        "intermediate_size": s.intermediate,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": s.max_positions,
        "rms_norm_eps": 1e-6,
        "rope_theta": theta,
        "tie_word_embeddings": s.tie,
        "attention_bias": false,
        "mlp_bias": false,
        "use_sliding_window": false,
        // Qwen2's stock config wants a number here; the window is off either way.
        "sliding_window": if s.arch == Arch::Qwen2 { json!(s.max_positions) } else { json!(null) },
        "max_window_layers": s.layers,
        "bos_token_id": tokenizer::BOS_ID,
        "eos_token_id": tokenizer::EOS_ID,
        "torch_dtype": "float32",
        "kakeya_tiny": {"seed": s.seed},
    })
}

fn tensor(data: Vec<f32>, shape: &[usize]) -> Result<Tensor, ModelError> {
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// Write a tiny model directory; returns the parameter count.
pub fn write_tiny(spec: &TinySpec, out: &Path) -> Result<u64, ModelError> {
    let mut spec = spec.clone();
    spec.fill_defaults();
    let hd = spec.validate()?;
    let mut rng = Rng::new(spec.seed);
    let (h, i, v) = (spec.hidden, spec.intermediate, spec.vocab);
    let (qd, kvd) = (spec.heads * hd, spec.kv_heads * hd);
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let mut biases = Vec::new();
    let mut lin = |rng: &mut Rng, name: String, o: usize, n: usize| -> Result<(), ModelError> {
        w.insert(
            name,
            tensor(rng.normal(o * n, 1.0 / (n as f32).sqrt()), &[o, n])?,
        );
        Ok(())
    };
    lin(&mut rng, "model.embed_tokens.weight".into(), v, h)?;
    for l in 0..spec.layers {
        let p = format!("model.layers.{l}");
        lin(&mut rng, format!("{p}.self_attn.q_proj.weight"), qd, h)?;
        lin(&mut rng, format!("{p}.self_attn.k_proj.weight"), kvd, h)?;
        lin(&mut rng, format!("{p}.self_attn.v_proj.weight"), kvd, h)?;
        lin(&mut rng, format!("{p}.self_attn.o_proj.weight"), h, qd)?;
        if spec.arch == Arch::Qwen2 {
            // Qwen2 always has q/k/v biases.
            for (name, n) in [("q_proj", qd), ("k_proj", kvd), ("v_proj", kvd)] {
                let b = tensor(rng.normal(n, 0.1), &[n])?;
                biases.push((format!("{p}.self_attn.{name}.bias"), b));
            }
        }
        lin(&mut rng, format!("{p}.mlp.gate_proj.weight"), i, h)?;
        lin(&mut rng, format!("{p}.mlp.up_proj.weight"), i, h)?;
        lin(&mut rng, format!("{p}.mlp.down_proj.weight"), h, i)?;
    }
    if !spec.tie {
        lin(&mut rng, "lm_head.weight".into(), v, h)?;
    }
    w.extend(biases);
    // Norm weights near 1 but not equal to it, so a misapplied norm shows up in tests.
    let mut norm = |rng: &mut Rng, name: String, n: usize| -> Result<(), ModelError> {
        let data = rng.normal(n, 0.1).into_iter().map(|x| 1.0 + x).collect();
        w.insert(name, tensor(data, &[n])?);
        Ok(())
    };
    norm(&mut rng, "model.norm.weight".into(), h)?;
    for l in 0..spec.layers {
        let p = format!("model.layers.{l}");
        norm(&mut rng, format!("{p}.input_layernorm.weight"), h)?;
        norm(&mut rng, format!("{p}.post_attention_layernorm.weight"), h)?;
        if spec.arch == Arch::Qwen3 {
            norm(&mut rng, format!("{p}.self_attn.q_norm.weight"), hd)?;
            norm(&mut rng, format!("{p}.self_attn.k_norm.weight"), hd)?;
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let weights = out.join("model.safetensors");
    candle_core::safetensors::save(&w, &weights)?;
    let cfg_path = out.join("config.json");
    let cfg = serde_json::to_vec_pretty(&config_json(&spec, hd))
        .map_err(|e| ModelError::Internal(e.to_string()))?;
    std::fs::write(&cfg_path, cfg).map_err(io(&cfg_path))?;
    let tok = tokenizer::build(spec.vocab)?;
    tok.save(out.join("tokenizer.json"), false)
        .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    let tc_path = out.join("tokenizer_config.json");
    let tc = serde_json::to_vec_pretty(&chat::tokenizer_config(spec.arch, spec.max_positions))
        .map_err(|e| ModelError::Internal(e.to_string()))?;
    std::fs::write(&tc_path, tc).map_err(io(&tc_path))?;
    Ok(w.values().map(|t| t.elem_count() as u64).sum())
}

/// How to derive a draft from a target written by [`write_tiny`].
#[derive(Debug, Clone)]
pub struct DraftSpec {
    /// Keep only the first N layers (embeddings, final norm and head are shared).
    pub keep_layers: Option<usize>,
    /// Add N(0, (noise·std(W))²) to every weight tensor W.
    pub noise: f32,
    pub seed: u64,
}

/// Write a draft of the model in `from` to `out`.
pub fn derive_draft(from: &Path, out: &Path, d: &DraftSpec) -> Result<(), ModelError> {
    let src = from.join("model.safetensors");
    if !src.is_file() {
        return Err(ModelError::Weights(format!(
            "{} is missing (drafts are derived from single-file models)",
            src.display()
        )));
    }
    if !(d.noise.is_finite() && d.noise >= 0.0) {
        return Err(ModelError::Input(format!(
            "noise {} must be finite and ≥ 0",
            d.noise
        )));
    }
    let cfg_path = from.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).map_err(io(&cfg_path))?).map_err(|e| {
            ModelError::Config {
                path: cfg_path.display().to_string(),
                msg: e.to_string(),
            }
        })?;
    let layers = cfg["num_hidden_layers"].as_u64().unwrap_or(0) as usize;
    let keep = d.keep_layers.unwrap_or(layers);
    if keep == 0 || keep > layers {
        return Err(ModelError::Input(format!(
            "keep-layers {keep} must be in 1..={layers}"
        )));
    }
    let tensors = candle_core::safetensors::load(&src, &Device::Cpu)?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut rng = Rng::new(d.seed);
    let mut outw = HashMap::new();
    for name in names {
        if let Some(rest) = name.strip_prefix("model.layers.")
            && let Some(idx) = rest.split('.').next().and_then(|n| n.parse::<usize>().ok())
            && idx >= keep
        {
            continue;
        }
        let t = &tensors[name];
        let t = if d.noise > 0.0 {
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            let n = data.len().max(1) as f64;
            let mean = data.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = data.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            let std = (var.sqrt() as f32).max(1e-3) * d.noise;
            let noisy: Vec<f32> = data
                .iter()
                .zip(rng.normal(data.len(), std))
                .map(|(a, b)| a + b)
                .collect();
            Tensor::from_vec(noisy, t.shape(), &Device::Cpu)?
        } else {
            t.clone()
        };
        outw.insert(name.clone(), t);
    }
    cfg["num_hidden_layers"] = json!(keep);
    cfg["max_window_layers"] = json!(keep);
    cfg["kakeya_draft"] = json!({"from": from.display().to_string(), "keep_layers": keep,
        "noise": d.noise, "seed": d.seed});
    std::fs::create_dir_all(out).map_err(io(out))?;
    candle_core::safetensors::save(&outw, out.join("model.safetensors"))?;
    let cfg_out = out.join("config.json");
    let bytes = serde_json::to_vec_pretty(&cfg).map_err(|e| ModelError::Internal(e.to_string()))?;
    std::fs::write(&cfg_out, bytes).map_err(io(&cfg_out))?;
    for name in ["tokenizer.json", "tokenizer_config.json"] {
        let tok = from.join(name);
        if tok.is_file() {
            std::fs::copy(&tok, out.join(name)).map_err(io(&tok))?;
        }
    }
    Ok(())
}
