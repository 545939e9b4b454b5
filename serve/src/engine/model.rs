//! A served model: weights, tokenizer, chat template, the ids that end a turn, and an
//! optional draft model for speculative decoding.

use std::path::{Path, PathBuf};

use kakeya_engine::model::{CausalLm, KernelChoice, KvChannel, LoadOptions};
use kakeya_engine::specdec::dflash::DFlashModel;
use kakeya_engine::tokenizer::{TextTokenizer, stop_tokens};

use crate::template::ChatTemplate;

/// Which drafter a model was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrafterKind {
    None,
    Model,
    Ngram,
    Dflash,
}

impl DrafterKind {
    pub fn name(self) -> &'static str {
        match self {
            DrafterKind::None => "none",
            DrafterKind::Model => "model",
            DrafterKind::Ngram => "ngram",
            DrafterKind::Dflash => "dflash",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => DrafterKind::None,
            "model" => DrafterKind::Model,
            "ngram" => DrafterKind::Ngram,
            "dflash" => DrafterKind::Dflash,
            _ => return None,
        })
    }

    /// Whether the drafter needs `--draft DIR` (a draft model or a DFlash checkpoint).
    pub fn needs_dir(self) -> bool {
        matches!(self, DrafterKind::Model | DrafterKind::Dflash)
    }
}

/// How to load one model (from flags or the YAML config).
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub id: String,
    pub dir: PathBuf,
    /// First = default; the others may be asked for per request.
    pub kv: Vec<KvChannel>,
    pub drafter: DrafterKind,
    pub draft: Option<PathBuf>,
    pub block_size: usize,
    pub device: String,
}

pub struct LoadedModel {
    pub id: String,
    pub spec: ModelSpec,
    pub lm: CausalLm,
    pub tokenizer: TextTokenizer,
    pub template: ChatTemplate,
    /// Ids that end a generation: config/generation_config EOS plus the template's
    /// end-of-turn token.
    pub eos: Vec<u32>,
    pub draft: Option<CausalLm>,
    /// The DFlash drafter's own layers (it borrows the target's embedding and head).
    pub dflash: Option<DFlashModel>,
    pub drafter: DrafterKind,
    pub context: usize,
    pub created: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Model(#[from] kakeya_engine::model::ModelError),
    #[error("{0}")]
    Template(#[from] crate::template::TemplateError),
    #[error("{0}")]
    Invalid(String),
}

impl LoadedModel {
    pub fn load(spec: &ModelSpec) -> Result<Self, LoadError> {
        if !spec.dir.is_dir() {
            return Err(LoadError::Invalid(format!(
                "model directory {} does not exist",
                spec.dir.display()
            )));
        }
        let opts = LoadOptions {
            device: spec.device.clone(),
            dtype: None,
            kernels: KernelChoice::Auto,
        };
        let lm = CausalLm::load(&spec.dir, &opts)?;
        let tokenizer = TextTokenizer::from_dir(&spec.dir)?;
        let template = ChatTemplate::from_dir(&spec.dir)?;
        let mut eos = stop_tokens(&spec.dir, lm.config());
        eos.extend(template.end_of_turn_ids(&tokenizer));
        eos.sort_unstable();
        eos.dedup();
        if spec.drafter.needs_dir() && spec.draft.is_none() {
            return Err(LoadError::Invalid(format!(
                "--drafter {} needs --draft DIR",
                spec.drafter.name()
            )));
        }
        let draft = match (spec.drafter, &spec.draft) {
            (DrafterKind::Model, Some(d)) => Some(load_draft(d, &opts, &lm)?),
            _ => None,
        };
        let dflash = match (spec.drafter, &spec.draft) {
            (DrafterKind::Dflash, Some(d)) => Some(DFlashModel::load(d, &lm)?),
            _ => None,
        };
        if spec.block_size == 0 {
            return Err(LoadError::Invalid("block size must be at least 1".into()));
        }
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(LoadedModel {
            id: spec.id.clone(),
            context: lm.config().max_position_embeddings,
            spec: spec.clone(),
            lm,
            tokenizer,
            template,
            eos,
            draft,
            dflash,
            drafter: spec.drafter,
            created,
        })
    }

    /// The default KV channel (first configured).
    pub fn default_kv(&self) -> KvChannel {
        self.spec.kv.first().cloned().unwrap_or(KvChannel::Raw)
    }
}

fn load_draft(dir: &Path, opts: &LoadOptions, target: &CausalLm) -> Result<CausalLm, LoadError> {
    let draft = CausalLm::load(dir, opts)?;
    if draft.config().vocab_size != target.config().vocab_size {
        return Err(LoadError::Invalid(format!(
            "draft {} has vocab {} but the target has {}",
            dir.display(),
            draft.config().vocab_size,
            target.config().vocab_size
        )));
    }
    Ok(draft)
}
