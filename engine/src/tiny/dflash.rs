//! A random-weight DFlash drafter for a tiny target, so every DFlash path (strict loading,
//! hidden-state capture, context K/V, block forward) runs in tests without downloads. Its
//! drafts are essentially random (acceptance near 1/vocab); it measures cost, not quality.
//!
//! Mask token: the tiny tokenizers have no spare special token, so the drafter reserves the
//! **last id of the target's vocabulary** (`vocab − 1`, a rare BPE merge) as its mask id.
//! The target still treats that id as an ordinary token; the drafter never proposes it (its
//! logit is −∞) and the target verifies everything, so losslessness does not depend on it.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::{Value, json};

use super::Rng;
use crate::model::{ModelConfig, ModelError};

/// What to write.
#[derive(Debug, Clone)]
pub struct DFlashSpec {
    pub seed: u64,
    /// Drafter layers.
    pub layers: usize,
    pub block_size: usize,
}

/// Layers of a `t`-layer target to condition on: up to 3, spread evenly.
pub fn default_layer_ids(t: usize) -> Vec<usize> {
    let k = t.clamp(1, 3);
    (1..=k).map(|j| j * t / (k + 1)).collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Write a drafter for the target in `target_dir` to `out`; returns a description.
pub fn write_dflash(target_dir: &Path, out: &Path, s: &DFlashSpec) -> Result<Value, ModelError> {
    let t = ModelConfig::from_dir(target_dir)?;
    if s.layers == 0 || s.layers > 16 {
        return Err(ModelError::Input(format!(
            "a tiny DFlash drafter has 1..=16 layers, not {}",
            s.layers
        )));
    }
    if !(1..=64).contains(&s.block_size) {
        return Err(ModelError::Input(format!(
            "block size {} is outside 1..=64",
            s.block_size
        )));
    }
    let (h, hd, i) = (t.hidden_size, t.head_dim, t.intermediate_size);
    let (qd, kvd) = (t.num_heads * hd, t.num_kv_heads * hd);
    let ids = default_layer_ids(t.num_layers);
    let mask = (t.vocab_size - 1) as u32;
    let mut rng = Rng::new(s.seed);
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let mut lin = |rng: &mut Rng, name: String, o: usize, n: usize| -> Result<(), ModelError> {
        let data = rng.normal(o * n, 1.0 / (n as f32).sqrt());
        w.insert(name, Tensor::from_vec(data, (o, n), &Device::Cpu)?);
        Ok(())
    };
    lin(&mut rng, "fc.weight".into(), h, ids.len() * h)?;
    for l in 0..s.layers {
        let p = format!("layers.{l}");
        lin(&mut rng, format!("{p}.self_attn.q_proj.weight"), qd, h)?;
        lin(&mut rng, format!("{p}.self_attn.k_proj.weight"), kvd, h)?;
        lin(&mut rng, format!("{p}.self_attn.v_proj.weight"), kvd, h)?;
        lin(&mut rng, format!("{p}.self_attn.o_proj.weight"), h, qd)?;
        lin(&mut rng, format!("{p}.mlp.gate_proj.weight"), i, h)?;
        lin(&mut rng, format!("{p}.mlp.up_proj.weight"), i, h)?;
        lin(&mut rng, format!("{p}.mlp.down_proj.weight"), h, i)?;
    }
    let mut norm = |rng: &mut Rng, name: String, n: usize| -> Result<(), ModelError> {
        let data: Vec<f32> = rng.normal(n, 0.1).into_iter().map(|x| 1.0 + x).collect();
        w.insert(name, Tensor::from_vec(data, n, &Device::Cpu)?);
        Ok(())
    };
    norm(&mut rng, "hidden_norm.weight".into(), h)?;
    norm(&mut rng, "norm.weight".into(), h)?;
    for l in 0..s.layers {
        let p = format!("layers.{l}");
        norm(&mut rng, format!("{p}.input_layernorm.weight"), h)?;
        norm(&mut rng, format!("{p}.post_attention_layernorm.weight"), h)?;
        norm(&mut rng, format!("{p}.self_attn.q_norm.weight"), hd)?;
        norm(&mut rng, format!("{p}.self_attn.k_norm.weight"), hd)?;
    }
    let cfg = json!({
        "architectures": ["DFlashDraftModel"],
        "model_type": "qwen3",
        "vocab_size": t.vocab_size,
        "hidden_size": h,
        "intermediate_size": i,
        "num_hidden_layers": s.layers,
        "num_attention_heads": t.num_heads,
        "num_key_value_heads": t.num_kv_heads,
        "head_dim": hd,
        "hidden_act": "silu",
        "max_position_embeddings": t.max_position_embeddings,
        "rms_norm_eps": t.rms_norm_eps,
        "rope_theta": t.rope_theta,
        "attention_bias": false,
        "tie_word_embeddings": false,
        "block_size": s.block_size,
        "num_target_layers": t.num_layers,
        "dflash_config": {"mask_token_id": mask, "target_layer_ids": ids},
        "torch_dtype": "float32",
        "kakeya_tiny": {"seed": s.seed, "target": target_dir.display().to_string(),
                        "mask_token": "reserved id vocab_size-1 of the target"},
    });
    std::fs::create_dir_all(out).map_err(io(out))?;
    candle_core::safetensors::save(&w, out.join("model.safetensors"))?;
    let cfg_path = out.join("config.json");
    let bytes = serde_json::to_vec_pretty(&cfg).map_err(|e| ModelError::Internal(e.to_string()))?;
    std::fs::write(&cfg_path, bytes).map_err(io(&cfg_path))?;
    let params: usize = w.values().map(|t| t.elem_count()).sum();
    Ok(
        json!({"out": out.display().to_string(), "arch": "dflash", "seed": s.seed,
        "layers": s.layers, "block_size": s.block_size, "target_layer_ids": ids,
        "mask_token_id": mask, "params": params}),
    )
}
