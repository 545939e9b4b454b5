//! Llama / Qwen2 / Qwen3-family causal LMs loaded from a local Hugging Face directory, with
//! an explicit, truncatable per-layer KV cache (raw or through the lattice codec) and a
//! block forward that returns logits for every new position.

pub mod cache;
pub mod config;
pub mod exact;
pub(crate) mod layers;
pub mod lm;
pub mod load;

pub use cache::{CacheError, KvChannel, KvStore, LayerStats, ModelCache};
pub use config::{Arch, ModelConfig};
pub use lm::{CausalLm, KernelChoice, LoadOptions, Logits, argmax, argmax_rows, parse_dtype};

/// Everything loading or running a model can refuse.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Config { path: String, msg: String },
    #[error("weights: {0}")]
    Weights(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("kv cache: {0}")]
    Cache(#[from] CacheError),
    #[error("device: {0}")]
    Device(#[from] crate::device::DeviceError),
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("internal: {0}")]
    Internal(String),
}
