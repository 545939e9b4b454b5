//! Text ↔ token ids through a model directory's `tokenizer.json` (Hugging Face `tokenizers`,
//! pure-Rust regex backend), and the stop tokens a generation must honour.

use std::path::Path;

use crate::model::{ModelConfig, ModelError};

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl TextTokenizer {
    /// Load `<dir>/tokenizer.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        Ok(TextTokenizer {
            inner: tokenizers::Tokenizer::from_bytes(bytes).map_err(tok_err)?,
        })
    }

    /// Token ids of `text`, with the tokenizer's own special tokens (e.g. BOS) if it adds any.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self
            .inner
            .encode(text, true)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Token ids of `text` without special tokens: for pieces concatenated at the id level
    /// (NIAH prompts), where a BOS per piece would be wrong.
    pub fn encode_piece(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids`, skipping special tokens; ids the tokenizer does not know are dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.decode(ids, true).map_err(tok_err)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Stop ids: the config's `eos_token_id` plus `generation_config.json`'s, deduplicated.
pub fn stop_tokens(dir: &Path, cfg: &ModelConfig) -> Vec<u32> {
    let mut ids = cfg.eos_token_ids.clone();
    if let Ok(bytes) = std::fs::read(dir.join("generation_config.json"))
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
    {
        match v.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => ids.extend(n.as_u64().map(|x| x as u32)),
            Some(serde_json::Value::Array(a)) => {
                ids.extend(a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32))
            }
            _ => {}
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}
