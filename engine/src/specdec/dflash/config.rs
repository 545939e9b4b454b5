//! The DFlash drafter's `config.json`: the usual Qwen3 fields (validated by the engine's own
//! config parser) plus `block_size`, `num_target_layers` and `mask_token_id` /
//! `target_layer_ids` (under `dflash_config` or at the top level), checked against the
//! target it will draft for.

use std::path::Path;

use serde_json::Value;

use crate::model::{ModelConfig, ModelError};

/// What the drafter's config says, validated.
#[derive(Debug, Clone)]
pub struct DFlashConfig {
    /// Transformer shape of the drafter's own stack (vocab = the target's).
    pub model: ModelConfig,
    pub block_size: usize,
    pub mask_token_id: u32,
    pub target_layer_ids: Vec<usize>,
    pub num_target_layers: Option<usize>,
}

fn bad(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// A field under `dflash_config`, else at the top level.
fn field<'a>(j: &'a Value, name: &str) -> Option<&'a Value> {
    j.get("dflash_config")
        .and_then(|d| d.get(name))
        .filter(|v| !v.is_null())
        .or_else(|| j.get(name).filter(|v| !v.is_null()))
}

impl DFlashConfig {
    /// Read `<dir>/config.json` and check it fits `target`.
    pub fn from_dir(dir: &Path, target: &ModelConfig) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes, target).map_err(|e| match e {
            ModelError::Config { msg, .. } => bad(&path, msg),
            other => other,
        })
    }

    pub fn from_json(bytes: &[u8], target: &ModelConfig) -> Result<Self, ModelError> {
        let p = Path::new("config.json");
        let j: Value = serde_json::from_slice(bytes).map_err(|e| bad(p, e.to_string()))?;
        let archs: Vec<&str> = j
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !archs.contains(&"DFlashDraftModel") {
            return Err(bad(
                p,
                format!("architectures {archs:?} is not [\"DFlashDraftModel\"]"),
            ));
        }
        if j.get("attention_bias").and_then(Value::as_bool) == Some(true) {
            return Err(bad(p, "attention_bias=true is not supported for DFlash"));
        }
        if let Some(v) = j.get("vocab_size").filter(|v| !v.is_null())
            && v.as_u64() != Some(target.vocab_size as u64)
        {
            return Err(bad(
                p,
                format!(
                    "drafter vocab_size {v} does not fit the target's vocabulary of {}",
                    target.vocab_size
                ),
            ));
        }
        // The stack is Qwen3-shaped; reuse the engine's validation of those fields.
        let mut q = j.clone();
        if let Some(o) = q.as_object_mut() {
            o.insert("model_type".into(), "qwen3".into());
            o.insert(
                "architectures".into(),
                serde_json::json!(["Qwen3ForCausalLM"]),
            );
            o.insert("vocab_size".into(), target.vocab_size.into());
        }
        let model = ModelConfig::from_json(q.to_string().as_bytes())?;
        if model.hidden_size != target.hidden_size {
            return Err(bad(
                p,
                format!(
                    "drafter hidden_size {} does not fit the target's hidden size {}",
                    model.hidden_size, target.hidden_size
                ),
            ));
        }
        let uint = |name: &str| -> Result<Option<u64>, ModelError> {
            match field(&j, name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| bad(p, format!("`{name}` must be a non-negative integer"))),
            }
        };
        let block_size = uint("block_size")?.unwrap_or(16) as usize;
        if !(1..=64).contains(&block_size) {
            return Err(bad(p, format!("block_size {block_size} is outside 1..=64")));
        }
        let mask = uint("mask_token_id")?
            .ok_or_else(|| bad(p, "`dflash_config.mask_token_id` is missing"))?;
        if mask >= target.vocab_size as u64 {
            return Err(bad(
                p,
                format!(
                    "mask_token_id {mask} is outside the target's vocabulary of {}",
                    target.vocab_size
                ),
            ));
        }
        let num_target_layers = uint("num_target_layers")?.map(|n| n as usize);
        if let Some(n) = num_target_layers
            && n != target.num_layers
        {
            return Err(bad(
                p,
                format!(
                    "num_target_layers {n} does not fit the target's {} layers",
                    target.num_layers
                ),
            ));
        }
        let ids = field(&j, "target_layer_ids")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(p, "`dflash_config.target_layer_ids` is missing"))?;
        let mut target_layer_ids = Vec::with_capacity(ids.len());
        for v in ids {
            let id = v
                .as_u64()
                .ok_or_else(|| bad(p, format!("target layer id {v} is not an integer")))?;
            if id >= target.num_layers as u64 {
                return Err(bad(
                    p,
                    format!(
                        "target layer id {id} does not fit the target's {} layers",
                        target.num_layers
                    ),
                ));
            }
            target_layer_ids.push(id as usize);
        }
        if target_layer_ids.is_empty() || target_layer_ids.len() > 64 {
            return Err(bad(p, "target_layer_ids must list 1 to 64 layers"));
        }
        Ok(DFlashConfig {
            model,
            block_size,
            mask_token_id: mask as u32,
            target_layer_ids,
            num_target_layers,
        })
    }
}
