//! `kakeya spec-decode`: speculative decoding of each prompt (several repeats), next to the
//! plain greedy decode of the same prompt with the same cache, in a `spec_decode` report.

use std::path::PathBuf;

use anyhow::bail;
use kakeya_engine::report::{self, ReportBuilder};
use kakeya_engine::specdec::SpecOptions;
use kakeya_engine::specdec::run::{Pair, summary};
use serde_json::{Map, json};

use super::lm_common::{self, RunFlags};

/// Fewest samples a report may carry: timings on this kind of machine move by tens of
/// percent between runs, so one pair of runs is not a measurement of a ratio. The evidence
/// gate enforces the same number.
pub const MIN_SAMPLES: usize = 3;

#[derive(clap::Args)]
pub struct Args {
    /// Target (verifier) model directory.
    #[arg(long)]
    target: PathBuf,
    /// Draft model directory (same tokenizer/vocabulary as the target).
    #[arg(long)]
    draft: PathBuf,
    /// Tokens per block L (bonus + L−1 drafts), 1..=64.
    #[arg(long, default_value_t = 4)]
    block_size: usize,
    /// Prompt text; may be repeated.
    #[arg(long)]
    prompt: Vec<String>,
    /// A built-in prompt set: short, code, long.
    #[arg(long)]
    prompt_set: Option<String>,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Target KV channel (the AR reference uses the same): raw, e8-q38, d4-q10-b2, …
    #[arg(long, default_value = "raw")]
    kv: String,
    /// Draft KV channel.
    #[arg(long, default_value = "raw")]
    draft_kv: String,
    /// Runs per prompt; samples = prompts × repeats (at least 3 in total).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Where to write the report.
    #[arg(long, default_value = "spec_decode.json")]
    out: PathBuf,
    #[command(flatten)]
    flags: RunFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(1..=64).contains(&args.block_size) {
        bail!("--block-size must be in 1..=64");
    }
    let kv = lm_common::parse_channel(&args.kv)?;
    let draft_kv = lm_common::parse_channel(&args.draft_kv)?;
    let prompts = lm_common::prompts(&args.prompt, args.prompt_set.as_deref())?;
    let repeats = args.repeats.max(MIN_SAMPLES.div_ceil(prompts.len())).max(1);
    let target = lm_common::load(&args.target, &args.flags)?;
    let draft = lm_common::load(&args.draft, &args.flags)?;
    if draft.model.config().vocab_size != target.model.config().vocab_size {
        bail!(
            "draft vocab {} differs from target vocab {}",
            draft.model.config().vocab_size,
            target.model.config().vocab_size
        );
    }
    let mut params = Map::new();
    params.insert("target".into(), args.target.display().to_string().into());
    params.insert("draft".into(), args.draft.display().to_string().into());
    params.insert("block_size".into(), args.block_size.into());
    params.insert("max_new_tokens".into(), args.max_new_tokens.into());
    params.insert("kv".into(), kv.to_string().into());
    params.insert("draft_kv".into(), draft_kv.to_string().into());
    params.insert("repeats".into(), repeats.into());
    params.insert("prompt_set".into(), json!(args.prompt_set));
    params.insert("dtype".into(), args.flags.dtype.clone().into());
    let mut builder = ReportBuilder::start("spec_decode", target.model.device_label(), params);
    target.add_digests("target", &mut builder);
    draft.add_digests("draft", &mut builder);
    let pair = Pair {
        target: &target.model,
        draft: &draft.model,
        kv: kv.clone(),
        draft_kv: draft_kv.clone(),
    };
    let opts = SpecOptions {
        block_size: args.block_size,
        max_new_tokens: args.max_new_tokens,
        stop: target.stop.clone(),
    };
    let encoded = prompts
        .iter()
        .map(|p| target.encode(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    pair.warmup(&encoded[0])?;
    let mut samples = Vec::new();
    for repeat in 0..repeats {
        for (pi, ids) in encoded.iter().enumerate() {
            samples.push(pair.sample(ids, &opts, pi, repeat)?);
        }
    }
    let sample_json = samples
        .iter()
        .enumerate()
        .map(|(i, s)| Ok(s.to_json(i, Some(target.tokenizer.decode(&s.spec.tokens)?))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let summary = summary(&samples);
    let lossless = summary["lossless"] == true;
    let body = json!({
        "config": {"block_size": args.block_size, "max_new_tokens": args.max_new_tokens,
                   "kv": kv.to_string(), "draft_kv": draft_kv.to_string(), "repeats": repeats,
                   "loop": "trim_carry_bonus", "min_samples": MIN_SAMPLES},
        "target": target.describe(),
        "draft": draft.describe(),
        "prompts": prompts.iter().zip(&encoded).map(|(p, ids)| json!({"text": p, "tokens": ids.len()})).collect::<Vec<_>>(),
        "samples": sample_json,
        "summary": summary,
    });
    let report = builder.finish(body)?;
    report::write_report(&args.out, &report)?;
    let s = &report["summary"];
    eprintln!(
        "spec-decode: {} samples, lossless {}, mean accept {:.3}, {:.1} tok/s vs AR {:.1} tok/s ({:.3}x) -> {}",
        s["samples"],
        s["lossless"],
        s["mean_accept_len"].as_f64().unwrap_or(0.0),
        s["tokens_per_s"].as_f64().unwrap_or(0.0),
        s["ar_tokens_per_s"].as_f64().unwrap_or(0.0),
        s["speedup_vs_ar"].as_f64().unwrap_or(0.0),
        args.out.display()
    );
    if !lossless {
        bail!(
            "speculative output differs from the plain decode (see {})",
            args.out.display()
        );
    }
    Ok(())
}
