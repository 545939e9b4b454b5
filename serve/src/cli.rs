//! Command line and the YAML config for several models.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kakeya_engine::model::KvChannel;
use serde::Deserialize;

use crate::engine::model::{DrafterKind, ModelSpec};

/// `kakeya serve`: an OpenAI-compatible HTTP server on the Kakeya engine.
///
/// Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions,
/// POST /v1/kakeya/template, GET /v1/kakeya/stats, GET /metrics. See docs/SERVE.md.
#[derive(clap::Parser, Debug)]
#[command(name = "kakeya serve", version)]
pub struct Args {
    /// Model directory (config.json, safetensors, tokenizer.json, tokenizer_config.json).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    pub model: Option<PathBuf>,
    /// Name clients use in `model` (default: the directory's name).
    #[arg(long)]
    pub model_id: Option<String>,
    /// KV channel (raw, e8-q10, d4-q10-b2, …); a comma list enables several, the first is
    /// the default and requests pick others with `kakeya.kv`.
    #[arg(long, default_value = "raw")]
    pub kv: String,
    /// Speculative decoding drafter (greedy requests only): none, model (a small draft LM,
    /// --draft DIR), ngram (prompt lookup, no model), dflash (a DFlash checkpoint, --draft DIR).
    #[arg(long, default_value = "none")]
    pub drafter: String,
    /// Draft model directory for `--drafter model`, or the DFlash checkpoint for `--drafter dflash`.
    #[arg(long)]
    pub draft: Option<PathBuf>,
    /// Speculative block size L (bonus token + L-1 drafted tokens).
    #[arg(long, default_value_t = 4)]
    pub block_size: usize,
    /// YAML file listing several models (instead of --model); see docs/SERVE.md.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 = any free port; the chosen address is printed on stdout).
    #[arg(long, default_value_t = 1338)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* and /metrics.
    #[arg(long, env = "KAKEYA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests that may wait per model behind the running one; more get 503.
    #[arg(long, default_value_t = 16)]
    pub max_queue: usize,
    /// Device: cpu, metal, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// max_tokens when a request gives none (capped by the context).
    #[arg(long, default_value_t = 256)]
    pub default_max_tokens: usize,
    /// Seconds between SSE keep-alive comments.
    #[arg(long, default_value_t = 10)]
    pub keep_alive_secs: u64,
    /// After SIGTERM/Ctrl-C, seconds in-flight generations may still run before they are
    /// cancelled.
    #[arg(long, default_value_t = 5.0)]
    pub shutdown_grace_secs: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    models: Vec<ConfigModel>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigModel {
    id: Option<String>,
    model: PathBuf,
    kv: Option<OneOrMany>,
    drafter: Option<String>,
    draft: Option<PathBuf>,
    block_size: Option<usize>,
    device: Option<String>,
}

fn parse_kv(list: &[String]) -> anyhow::Result<Vec<KvChannel>> {
    let out = list
        .iter()
        .map(|s| {
            s.trim()
                .parse::<KvChannel>()
                .with_context(|| format!("--kv {s}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if out.is_empty() {
        bail!("--kv needs at least one channel");
    }
    Ok(out)
}

fn parse_drafter(s: &str, draft: &Option<PathBuf>) -> anyhow::Result<DrafterKind> {
    let d = DrafterKind::parse(s).with_context(|| {
        format!("unknown drafter `{s}` (expected none, model, ngram or dflash)")
    })?;
    if d.needs_dir() && draft.is_none() {
        bail!("--drafter {s} needs --draft DIR");
    }
    Ok(d)
}

fn dir_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// The models to serve, from flags or the config file.
pub fn model_specs(a: &Args) -> anyhow::Result<Vec<ModelSpec>> {
    if a.block_size == 0 {
        bail!("--block-size must be at least 1");
    }
    let specs = if let Some(path) = &a.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: ConfigFile = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.models
            .into_iter()
            .map(|m| {
                let dir = base.join(&m.model);
                let draft = m.draft.map(|d| base.join(d));
                let kv = match m.kv {
                    None => vec!["raw".to_string()],
                    Some(OneOrMany::One(s)) => s.split(',').map(str::to_string).collect(),
                    Some(OneOrMany::Many(v)) => v,
                };
                Ok(ModelSpec {
                    id: m.id.unwrap_or_else(|| dir_name(&dir)),
                    kv: parse_kv(&kv)?,
                    drafter: parse_drafter(m.drafter.as_deref().unwrap_or("none"), &draft)?,
                    draft,
                    block_size: m.block_size.unwrap_or(a.block_size).max(1),
                    device: m.device.unwrap_or_else(|| a.device.clone()),
                    dir,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        let dir = a
            .model
            .clone()
            .context("give --model DIR or --config FILE")?;
        let kv: Vec<String> = a.kv.split(',').map(str::to_string).collect();
        vec![ModelSpec {
            id: a.model_id.clone().unwrap_or_else(|| dir_name(&dir)),
            kv: parse_kv(&kv)?,
            drafter: parse_drafter(&a.drafter, &a.draft)?,
            draft: a.draft.clone(),
            block_size: a.block_size,
            device: a.device.clone(),
            dir,
        }]
    };
    if specs.is_empty() {
        bail!("the config lists no models");
    }
    let mut ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        bail!("model ids must be unique");
    }
    Ok(specs)
}
