//! `kakeya generate`: greedy decoding with stop tokens, optionally through a compressed KV
//! cache; prints text (or JSON with `tokens` and `text`) and can write a `generate` report.

use std::path::PathBuf;

use kakeya_engine::generate::{Session, greedy};
use kakeya_engine::report::{self, ReportBuilder};
use serde_json::{Map, json};

use super::lm_common::{self, RunFlags};

#[derive(clap::Args)]
pub struct Args {
    /// Model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Prompt text (or use --prompt-set).
    #[arg(long)]
    prompt: Option<String>,
    /// A built-in prompt (first of the set): short, code, long.
    #[arg(long)]
    prompt_set: Option<String>,
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    /// KV channel: raw, e8-q38, d4-q10-b2, …
    #[arg(long, default_value = "raw")]
    kv: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a `generate` report here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    flags: RunFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let channel = lm_common::parse_channel(&args.kv)?;
    let texts: Vec<String> = args.prompt.iter().cloned().collect();
    let prompt = lm_common::prompts(&texts, args.prompt_set.as_deref())?
        .into_iter()
        .next()
        .unwrap_or_default();
    let lm = lm_common::load(&args.model, &args.flags)?;
    let mut params = Map::new();
    params.insert("model".into(), args.model.display().to_string().into());
    params.insert("max_new_tokens".into(), args.max_new_tokens.into());
    params.insert("kv".into(), channel.to_string().into());
    params.insert("prompt_set".into(), json!(args.prompt_set));
    let mut builder = ReportBuilder::start("generate", lm.model.device_label(), params);
    lm.add_digests("model", &mut builder);
    let ids = lm.encode(&prompt)?;
    let mut session = Session::new(&lm.model, &channel)?;
    let out = greedy(&mut session, &ids, args.max_new_tokens, &lm.stop)?;
    let text = lm.tokenizer.decode(&out.tokens)?;
    let total_s = out.prefill_s + out.decode_s;
    let (held, raw) = session.cache.bytes();
    let body = json!({
        "model": lm.describe(),
        "prompt": prompt,
        "prompt_tokens": ids.len(),
        "max_new_tokens": args.max_new_tokens,
        "kv": channel.to_string(),
        "tokens": out.tokens,
        "text": text,
        "stopped_on_eos": out.stopped_on_eos,
        "forwards": out.forwards,
        "timings_s": {"prefill": out.prefill_s, "decode": out.decode_s, "total": total_s},
        "tokens_per_s": if total_s > 0.0 { out.tokens.len() as f64 / total_s } else { 0.0 },
        "kv_cache": {"bytes_held": held, "raw_bytes": raw, "layers": session.cache.stats()},
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!("{text}");
    }
    if let Some(path) = &args.out {
        let report = builder.finish(body)?;
        report::write_report(path, &report)?;
    }
    Ok(())
}
