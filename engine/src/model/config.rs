//! The model configuration, read from a Hugging Face `config.json`. Only the fields our
//! Llama/Qwen2/Qwen3 implementation understands are read; anything that would change the
//! arithmetic and is not implemented (sliding windows, unknown RoPE scaling, other
//! activations) is refused with a message instead of being silently ignored.

use std::path::Path;

use serde::Deserialize;

use super::ModelError;

/// Architecture families we implement; they differ only in biases and q/k norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }
}

/// Llama-3 style frequency scaling (`rope_scaling.rope_type == "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (always on for Qwen2, `attention_bias` otherwise).
    pub qkv_bias: bool,
    /// Bias on the output projection (`attention_bias` for Llama/Qwen3, never for Qwen2).
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Qwen3's per-head RMSNorm on q and k before RoPE.
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    fn into_vec(self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![id],
            TokenIds::Many(ids) => ids,
        }
    }
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    hidden_act: Option<String>,
    use_sliding_window: Option<bool>,
    bos_token_id: Option<TokenIds>,
    eos_token_id: Option<TokenIds>,
}

/// Upper bounds that keep a hostile config from asking for absurd allocations before the
/// weights are even looked at (the weights must then match these shapes exactly).
const MAX_LAYERS: usize = 1024;
const MAX_WIDTH: usize = 1 << 17;
const MAX_VOCAB: usize = 1 << 22;
const MAX_HEADS: usize = 1024;
const MAX_POSITIONS: usize = 1 << 24;

impl ModelConfig {
    /// Read and validate `<dir>/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes).map_err(|e| match e {
            ModelError::Config { msg, .. } => ModelError::Config {
                path: path.display().to_string(),
                msg,
            },
            other => other,
        })
    }

    /// Parse and validate a config from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let bad = |msg: String| ModelError::Config {
            path: "config.json".into(),
            msg,
        };
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let arch = detect_arch(&raw).map_err(bad)?;
        if let Some(act) = &raw.hidden_act
            && act != "silu"
        {
            return Err(bad(format!(
                "hidden_act `{act}` is not supported (only silu)"
            )));
        }
        if raw.use_sliding_window == Some(true) {
            return Err(bad("use_sliding_window=true is not supported".into()));
        }
        let heads = raw.num_attention_heads;
        let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
        let head_dim = match raw.head_dim {
            Some(d) => d,
            None if heads > 0 && raw.hidden_size.is_multiple_of(heads) => raw.hidden_size / heads,
            None => {
                return Err(bad(format!(
                    "hidden_size {} is not a multiple of num_attention_heads {heads}",
                    raw.hidden_size
                )));
            }
        };
        let checks: [(&str, usize, usize); 8] = [
            ("vocab_size", raw.vocab_size, MAX_VOCAB),
            ("hidden_size", raw.hidden_size, MAX_WIDTH),
            ("intermediate_size", raw.intermediate_size, MAX_WIDTH * 8),
            ("num_hidden_layers", raw.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", heads, MAX_HEADS),
            ("num_key_value_heads", kv_heads, MAX_HEADS),
            ("head_dim", head_dim, MAX_WIDTH),
            (
                "max_position_embeddings",
                raw.max_position_embeddings.unwrap_or(4096),
                MAX_POSITIONS,
            ),
        ];
        for (name, value, max) in checks {
            if value == 0 || value > max {
                return Err(bad(format!("{name}={value} is outside 1..={max}")));
            }
        }
        if !heads.is_multiple_of(kv_heads) {
            return Err(bad(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
            )));
        }
        if !head_dim.is_multiple_of(2) {
            return Err(bad(format!("head_dim {head_dim} must be even for RoPE")));
        }
        let default_theta = match arch {
            Arch::Llama => 10_000.0,
            Arch::Qwen2 | Arch::Qwen3 => 1_000_000.0,
        };
        let rope_theta = raw.rope_theta.unwrap_or(default_theta);
        let eps = raw.rms_norm_eps.unwrap_or(1e-6);
        if !(rope_theta.is_finite() && rope_theta > 1.0) {
            return Err(bad(format!(
                "rope_theta {rope_theta} must be finite and > 1"
            )));
        }
        if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
            return Err(bad(format!("rms_norm_eps {eps} must be in (0, 1)")));
        }
        let rope_scaling = parse_rope_scaling(raw.rope_scaling.as_ref()).map_err(bad)?;
        let eos_token_ids = raw.eos_token_id.map(TokenIds::into_vec).unwrap_or_default();
        let bos_token_id = raw.bos_token_id.and_then(|b| b.into_vec().first().copied());
        let attention_bias = raw.attention_bias.unwrap_or(false);
        Ok(ModelConfig {
            arch,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            rms_norm_eps: eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            qkv_bias: arch == Arch::Qwen2 || attention_bias,
            o_bias: arch != Arch::Qwen2 && attention_bias,
            mlp_bias: raw.mlp_bias.unwrap_or(false),
            qk_norm: arch == Arch::Qwen3,
            bos_token_id,
            eos_token_ids,
        })
    }

    /// Parameters in the model (embeddings counted once when tied).
    pub fn param_count(&self) -> u64 {
        let (h, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let (q, kv) = (
            (self.num_heads * self.head_dim) as u64,
            (self.num_kv_heads * self.head_dim) as u64,
        );
        let per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_layers as u64 * per_layer + h + head
    }
}

fn detect_arch(raw: &RawConfig) -> Result<Arch, String> {
    let from_type = |t: &str| match t {
        "llama" => Some(Arch::Llama),
        "qwen2" => Some(Arch::Qwen2),
        "qwen3" => Some(Arch::Qwen3),
        _ => None,
    };
    if let Some(t) = &raw.model_type {
        return from_type(t).ok_or_else(|| {
            format!("model_type `{t}` is not supported (expected llama, qwen2 or qwen3)")
        });
    }
    let archs = raw.architectures.as_deref().unwrap_or(&[]);
    for a in archs {
        let guess = match a.as_str() {
            "LlamaForCausalLM" => Some(Arch::Llama),
            "Qwen2ForCausalLM" => Some(Arch::Qwen2),
            "Qwen3ForCausalLM" => Some(Arch::Qwen3),
            _ => None,
        };
        if let Some(arch) = guess {
            return Ok(arch);
        }
    }
    Err(format!(
        "neither model_type nor architectures {archs:?} name a supported model"
    ))
}

fn parse_rope_scaling(v: Option<&serde_json::Value>) -> Result<Option<Llama3Scaling>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    match kind {
        "default" => Ok(None),
        "llama3" => {
            let num = |k: &str| {
                v.get(k)
                    .and_then(|x| x.as_f64())
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| format!("rope_scaling.{k} must be a positive number"))
            };
            let s = Llama3Scaling {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            };
            if s.high_freq_factor <= s.low_freq_factor {
                return Err("rope_scaling.high_freq_factor must exceed low_freq_factor".into());
            }
            Ok(Some(s))
        }
        other => Err(format!(
            "rope_scaling type `{other}` is not supported (only llama3)"
        )),
    }
}

/// RoPE inverse frequencies θ^(−2j/d), with Llama-3 scaling when configured.
pub fn inv_freqs(cfg: &ModelConfig) -> Vec<f32> {
    let d = cfg.head_dim;
    (0..d / 2)
        .map(|j| {
            let f = 1.0 / cfg.rope_theta.powf((2 * j) as f64 / d as f64);
            match cfg.rope_scaling {
                None => f as f32,
                Some(s) => llama3_scale(f, s) as f32,
            }
        })
        .collect()
}

fn llama3_scale(freq: f64, s: Llama3Scaling) -> f64 {
    let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
    let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
    let wavelen = 2.0 * std::f64::consts::PI / freq;
    if wavelen < high_wavelen {
        freq
    } else if wavelen > low_wavelen {
        freq / s.factor
    } else {
        let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
            / (s.high_freq_factor - s.low_freq_factor);
        (1.0 - smooth) * freq / s.factor + smooth * freq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({"model_type": "qwen3", "vocab_size": 300, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "eos_token_id": [1, 2]})
    }

    #[test]
    fn parses_and_defaults() {
        let c = ModelConfig::from_json(base().to_string().as_bytes()).unwrap();
        assert_eq!(c.arch, Arch::Qwen3);
        assert!(c.qk_norm && !c.qkv_bias);
        assert_eq!(c.rope_theta, 1e6);
        assert_eq!(c.eos_token_ids, vec![1, 2]);
    }

    #[test]
    fn refuses_hostile_values() {
        for (k, v) in [
            ("num_key_value_heads", serde_json::json!(3)),
            ("hidden_size", serde_json::json!(0)),
            ("vocab_size", serde_json::json!(1u64 << 40)),
            ("model_type", serde_json::json!("gpt2")),
            ("head_dim", serde_json::json!(15)),
            ("rope_theta", serde_json::json!(-1.0)),
            (
                "rope_scaling",
                serde_json::json!({"type": "yarn", "factor": 2.0}),
            ),
        ] {
            let mut j = base();
            j[k] = v;
            assert!(
                ModelConfig::from_json(j.to_string().as_bytes()).is_err(),
                "{k} should be refused"
            );
        }
        assert!(ModelConfig::from_json(b"{not json").is_err());
    }
}
