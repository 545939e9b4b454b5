//! `kakeya spec-decode`: speculative decoding of each prompt (several repeats), next to the
//! plain greedy decode of the same prompt with the same cache, in a `spec_decode` report.
//! Drafts come from a draft model, prompt lookup (`ngram`) or a DFlash drafter.

use std::path::PathBuf;

use anyhow::{Context, bail};
use kakeya_engine::report::{self, ReportBuilder};
use kakeya_engine::specdec::dflash::DFlashModel;
use kakeya_engine::specdec::ngram::NgramParams;
use kakeya_engine::specdec::run::{DraftSource, Pair, summary};
use kakeya_engine::specdec::{BlockPolicy, SpecOptions};
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
    /// Where drafts come from (default: `model` when --draft is given, else `ngram`).
    #[arg(long, value_enum)]
    drafter: Option<DrafterArg>,
    /// Draft directory: a causal LM for `model` (same vocabulary as the target), or a DFlash
    /// checkpoint for `dflash`.
    #[arg(long)]
    draft: Option<PathBuf>,
    /// DFlash checkpoint for `--drafter dflash` (instead of --draft; lets one command line
    /// name both a draft model and a DFlash drafter).
    #[arg(long)]
    dflash: Option<PathBuf>,
    #[command(flatten)]
    ngram: NgramFlags,
    /// Adapt the block length per block from recent acceptance (+2 after a fully accepted
    /// block, −1 after a rejection, within 2..=block-size).
    #[arg(long)]
    adaptive: bool,
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

/// Drafters `kakeya spec-decode` offers (`replay` is benchmark-only: `kakeya bench acceptance`).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrafterArg {
    Model,
    Ngram,
    Dflash,
}

/// Prompt-lookup settings.
#[derive(clap::Args, Clone)]
pub struct NgramFlags {
    /// Smallest n-gram matched by the `ngram` drafter.
    #[arg(long, default_value_t = 1)]
    pub ngram_min: usize,
    /// Largest n-gram matched (tried first).
    #[arg(long, default_value_t = 3)]
    pub ngram_max: usize,
    /// Most tokens the `ngram` drafter proposes per block (the block size caps it too).
    #[arg(long, default_value_t = 64)]
    pub draft_max: usize,
}

impl NgramFlags {
    pub fn params(&self) -> anyhow::Result<NgramParams> {
        let p = NgramParams {
            min_n: self.ngram_min,
            max_n: self.ngram_max,
            draft_max: self.draft_max,
        };
        p.validate()?;
        Ok(p)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(1..=64).contains(&args.block_size) {
        bail!("--block-size must be in 1..=64");
    }
    let drafter = match args.drafter {
        Some(d) => d,
        None if args.draft.is_some() => DrafterArg::Model,
        None => DrafterArg::Ngram,
    };
    let ngram = args.ngram.params()?;
    let kv = lm_common::parse_channel(&args.kv)?;
    let draft_kv = lm_common::parse_channel(&args.draft_kv)?;
    let prompts = lm_common::prompts(&args.prompt, args.prompt_set.as_deref())?;
    let repeats = args.repeats.max(MIN_SAMPLES.div_ceil(prompts.len())).max(1);
    let target = lm_common::load(&args.target, &args.flags)?;
    let draft_dir = match drafter {
        DrafterArg::Model => Some(
            args.draft
                .clone()
                .context("--drafter model needs --draft DIR")?,
        ),
        DrafterArg::Dflash => Some(
            args.dflash
                .clone()
                .or_else(|| args.draft.clone())
                .context("--drafter dflash needs --draft DIR (or --dflash DIR)")?,
        ),
        DrafterArg::Ngram => None,
    };
    let draft = match (drafter, &draft_dir) {
        (DrafterArg::Model, Some(dir)) => {
            let d = lm_common::load(dir, &args.flags)?;
            if d.model.config().vocab_size != target.model.config().vocab_size {
                bail!(
                    "draft vocab {} differs from target vocab {}",
                    d.model.config().vocab_size,
                    target.model.config().vocab_size
                );
            }
            Some(d)
        }
        _ => None,
    };
    let dflash = match (drafter, &draft_dir) {
        (DrafterArg::Dflash, Some(dir)) => Some(
            DFlashModel::load(dir, &target.model)
                .with_context(|| format!("loading the DFlash drafter {}", dir.display()))?,
        ),
        _ => None,
    };
    let source = match (drafter, &draft, &dflash) {
        (DrafterArg::Model, Some(d), _) => DraftSource::Model {
            model: &d.model,
            kv: draft_kv.clone(),
        },
        (DrafterArg::Dflash, _, Some(m)) => DraftSource::DFlash(m),
        _ => DraftSource::Ngram(ngram),
    };
    let drafter_name = source.name();
    let mut params = Map::new();
    params.insert("target".into(), args.target.display().to_string().into());
    params.insert("drafter".into(), drafter_name.into());
    params.insert(
        "draft".into(),
        json!(draft_dir.as_ref().map(|d| d.display().to_string())),
    );
    params.insert("adaptive".into(), args.adaptive.into());
    params.insert("block_size".into(), args.block_size.into());
    params.insert("max_new_tokens".into(), args.max_new_tokens.into());
    params.insert("kv".into(), kv.to_string().into());
    params.insert("draft_kv".into(), draft_kv.to_string().into());
    params.insert("repeats".into(), repeats.into());
    params.insert("prompt_set".into(), json!(args.prompt_set));
    params.insert("dtype".into(), args.flags.dtype.clone().into());
    let mut builder = ReportBuilder::start("spec_decode", target.model.device_label(), params);
    target.add_digests("target", &mut builder);
    if let Some(d) = &draft {
        d.add_digests("draft", &mut builder);
    }
    if let Some(dir) = draft_dir.as_ref().filter(|_| dflash.is_some()) {
        for (name, sha) in kakeya_engine::model::load::digests(dir)? {
            builder.model_digest(&format!("dflash/{name}"), &sha);
        }
    }
    let drafter_json = match (&draft, &dflash) {
        (Some(d), _) => d.describe(),
        (_, Some(m)) => json!({"dir": draft_dir.as_ref().map(|d| d.display().to_string()),
            "layers": m.cfg.model.num_layers, "block_size": m.cfg.block_size,
            "mask_token_id": m.cfg.mask_token_id, "target_layer_ids": m.cfg.target_layer_ids}),
        _ => json!({"ngram_min": ngram.min_n, "ngram_max": ngram.max_n,
                    "draft_max": ngram.draft_max}),
    };
    let pair = Pair {
        target: &target.model,
        kv: kv.clone(),
        source,
        policy: if args.adaptive {
            BlockPolicy::Adaptive
        } else {
            BlockPolicy::Fixed
        },
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
    let mut summary = summary(&samples);
    summary["drafter"] = drafter_name.into();
    let lossless = summary["lossless"] == true;
    let body = json!({
        "config": {"block_size": args.block_size, "max_new_tokens": args.max_new_tokens,
                   "kv": kv.to_string(), "draft_kv": draft_kv.to_string(), "repeats": repeats,
                   "loop": "trim_carry_bonus", "min_samples": MIN_SAMPLES,
                   "drafter": drafter_name, "adaptive": args.adaptive},
        "target": target.describe(),
        "draft": drafter_json,
        "prompts": prompts.iter().zip(&encoded).map(|(p, ids)| json!({"text": p, "tokens": ids.len()})).collect::<Vec<_>>(),
        "samples": sample_json,
        "summary": summary,
    });
    let report = builder.finish(body)?;
    report::write_report(&args.out, &report)?;
    let s = &report["summary"];
    eprintln!(
        "spec-decode [{drafter_name}]: {} samples, lossless {}, mean accept {:.3}, {:.1} tok/s vs AR {:.1} tok/s ({:.3}x) -> {}",
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
