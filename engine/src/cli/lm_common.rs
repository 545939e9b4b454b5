//! Shared plumbing for the model commands: loading a model with its tokenizer and digests,
//! turning prompt options into token ids, and common flags.

use std::path::Path;

use anyhow::{Context, bail};
use kakeya_engine::model::{CausalLm, KernelChoice, KvChannel, LoadOptions, parse_dtype};
use kakeya_engine::report::ReportBuilder;
use kakeya_engine::specdec::prompts;
use kakeya_engine::tokenizer::{TextTokenizer, stop_tokens};
use serde_json::{Value, json};

/// Flags every model command takes.
#[derive(clap::Args, Clone)]
pub struct RunFlags {
    /// Device: cpu, metal, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weight/activation dtype: f32, f16 or bf16 (CPU f32 uses the exact kernels).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Use candle's matmul/attention even on CPU f32 (faster BLAS-style kernels, but a block
    /// forward then differs from single steps in the last bits).
    #[arg(long)]
    pub candle_kernels: bool,
}

impl RunFlags {
    pub fn options(&self) -> anyhow::Result<LoadOptions> {
        Ok(LoadOptions {
            device: self.device.clone(),
            dtype: Some(parse_dtype(&self.dtype)?),
            kernels: if self.candle_kernels {
                KernelChoice::Candle
            } else {
                KernelChoice::Auto
            },
        })
    }
}

/// A loaded model with what the commands need around it.
pub struct Loaded {
    pub model: CausalLm,
    pub tokenizer: TextTokenizer,
    pub stop: Vec<u32>,
    pub digests: Vec<(String, String)>,
}

pub fn load(dir: &Path, flags: &RunFlags) -> anyhow::Result<Loaded> {
    if !dir.is_dir() {
        bail!("model directory {} does not exist", dir.display());
    }
    let model = CausalLm::load(dir, &flags.options()?)
        .with_context(|| format!("loading {}", dir.display()))?;
    let tokenizer = TextTokenizer::from_dir(dir)?;
    let stop = stop_tokens(dir, model.config());
    let digests = kakeya_engine::model::load::digests(dir)?;
    Ok(Loaded {
        model,
        tokenizer,
        stop,
        digests,
    })
}

impl Loaded {
    /// Token ids of `text`; an empty encoding becomes `[bos]` when the config has one.
    pub fn encode(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text)?;
        if ids.is_empty()
            && let Some(bos) = self.model.config().bos_token_id
        {
            ids.push(bos);
        }
        if ids.is_empty() {
            bail!("the prompt encodes to no tokens and the model has no bos_token_id");
        }
        Ok(ids)
    }

    /// Record this model's file digests as `<role>/<file>`.
    pub fn add_digests(&self, role: &str, builder: &mut ReportBuilder) {
        for (name, sha) in &self.digests {
            builder.model_digest(&format!("{role}/{name}"), sha);
        }
    }

    /// A short description for reports.
    pub fn describe(&self) -> Value {
        let c = self.model.config();
        json!({
            "dir": self.model.dir().display().to_string(),
            "arch": c.arch.name(),
            "layers": c.num_layers,
            "hidden": c.hidden_size,
            "heads": c.num_heads,
            "kv_heads": c.num_kv_heads,
            "head_dim": c.head_dim,
            "vocab": c.vocab_size,
            "params": c.param_count(),
            "tied_embeddings": c.tie_word_embeddings,
            "dtype": format!("{:?}", self.model.dtype()).to_lowercase(),
            "kernels": self.model.kernels_label(),
            "stop_tokens": self.stop,
        })
    }
}

/// Prompts from repeated `--prompt` and/or a built-in `--prompt-set`.
pub fn prompts(texts: &[String], set: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut all = texts.to_vec();
    if let Some(name) = set {
        let Some(p) = prompts::prompt_set(name) else {
            bail!(
                "unknown prompt set `{name}` (expected one of {:?})",
                prompts::SETS
            );
        };
        all.extend(p);
    }
    if all.is_empty() {
        bail!("give --prompt TEXT or --prompt-set NAME");
    }
    Ok(all)
}

pub fn parse_channel(s: &str) -> anyhow::Result<KvChannel> {
    Ok(s.parse::<KvChannel>()?)
}
