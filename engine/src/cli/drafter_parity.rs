//! `kakeya drafter-parity`: the drafts of one drafter under two configurations (dtype,
//! cached vs recomputed context, device, kernels, or two weight directories) on the same
//! contexts, or against a JSONL file of reference drafts; writes a `drafter_parity` report
//! (agreement, mismatch positions, root mismatches, prefix consistency).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kakeya_engine::eval::drafter_parity::DraftSource;
use kakeya_engine::eval::drafter_parity::dflash::DFlashSource;
use kakeya_engine::eval::drafter_parity::model::{ContextMode, ModelDrafter};
use kakeya_engine::eval::drafter_parity::reference::{self, Recorded, ReferenceBlock};
use kakeya_engine::eval::drafter_parity::{self as parity, BlockResult};
use kakeya_engine::report::{self, ReportBuilder};
use kakeya_engine::specdec::dflash::DFlashModel;
use serde_json::{Map, Value, json};

use super::lm_common::{self, Loaded, RunFlags};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrafterKind {
    /// A draft model proposing a block greedily after the committed context.
    Model,
    /// The DFlash block drafter: `--draft` names its checkpoint and `--target` the model it
    /// drafts for (a block is the target's bonus token followed by the drafts).
    Dflash,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "model")]
    drafter: DrafterKind,
    /// Drafter weights for side A (a model directory, or a DFlash checkpoint).
    #[arg(long)]
    draft: PathBuf,
    /// The target model a DFlash drafter drafts for (loaded on each side with that side's
    /// dtype, device and kernels). Required with `--drafter dflash`.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Drafter weights for side B (default: the same as A).
    #[arg(long)]
    draft_b: Option<PathBuf>,
    #[arg(long, default_value = "f32")]
    dtype_a: String,
    #[arg(long, default_value = "f32")]
    dtype_b: String,
    #[arg(long, default_value = "cpu")]
    device_a: String,
    #[arg(long, default_value = "cpu")]
    device_b: String,
    /// cached (reuse the cache across blocks) or recomputed (fresh cache per block).
    #[arg(long, default_value = "cached")]
    context_a: String,
    #[arg(long, default_value = "recomputed")]
    context_b: String,
    /// Use candle's kernels on side A / B even on CPU f32.
    #[arg(long)]
    candle_kernels_a: bool,
    #[arg(long)]
    candle_kernels_b: bool,
    /// Compare side B against these recorded drafts (JSONL `{"context_ids","draft_ids"}`)
    /// instead of running side A.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Write side A's blocks as a reference JSONL (for a run elsewhere to compare against).
    #[arg(long)]
    write_reference: Option<PathBuf>,
    /// Prompt text; may be repeated (each prompt is one context).
    #[arg(long)]
    prompt: Vec<String>,
    /// Built-in prompt set: short, code, long.
    #[arg(long)]
    prompt_set: Option<String>,
    #[arg(long, default_value_t = 4)]
    n_blocks: usize,
    #[arg(long, default_value_t = 8)]
    block_size: usize,
    /// The run fails below this agreement (1.0 = exact).
    #[arg(long, default_value_t = 1.0)]
    min_agreement: f64,
    #[arg(long, default_value = "drafter_parity.json")]
    out: PathBuf,
}

/// One configuration: for `model`, `loaded` is the draft model; for `dflash`, it is the
/// target and `dflash` the checkpoint drafting for it.
struct Side {
    loaded: Loaded,
    dflash: Option<DFlashModel>,
    mode: ContextMode,
    desc: Value,
}

impl Side {
    fn source(&self) -> Box<dyn DraftSource + '_> {
        match &self.dflash {
            Some(d) => Box::new(DFlashSource::new(&self.loaded.model, d, self.mode)),
            None => Box::new(ModelDrafter::new(&self.loaded.model, self.mode)),
        }
    }
}

fn digests_json(digests: &[(String, String)]) -> Vec<Value> {
    digests
        .iter()
        .map(|(n, s)| json!({"file": n, "sha256": s}))
        .collect()
}

fn side(
    dir: &Path,
    target: Option<&Path>,
    dtype: &str,
    device: &str,
    ctx: &str,
    candle: bool,
) -> anyhow::Result<Side> {
    let flags = RunFlags {
        device: device.to_string(),
        dtype: dtype.to_string(),
        candle_kernels: candle,
    };
    let mode: ContextMode = ctx.parse()?;
    let (loaded, dflash, mut digests) = match target {
        None => {
            let loaded = lm_common::load(dir, &flags)?;
            let digests = digests_json(&loaded.digests);
            (loaded, None, digests)
        }
        Some(t) => {
            let loaded = lm_common::load(t, &flags)?;
            let d = DFlashModel::load(dir, &loaded.model)
                .with_context(|| format!("loading the DFlash drafter {}", dir.display()))?;
            let mut digests = digests_json(&loaded.digests);
            for (name, sha) in kakeya_engine::model::load::digests(dir)? {
                digests.push(json!({"file": format!("dflash/{name}"), "sha256": sha}));
            }
            (loaded, Some(d), digests)
        }
    };
    digests.sort_by(|a, b| a["file"].as_str().cmp(&b["file"].as_str()));
    let desc = json!({
        "dir": dir.display().to_string(),
        "target": target.map(|t| t.display().to_string()),
        "dtype": dtype, "device": loaded.model.device_label(), "context": mode.name(),
        "kernels": loaded.model.kernels_label(),
        "digests": digests,
    });
    Ok(Side {
        loaded,
        dflash,
        mode,
        desc,
    })
}

/// Configurations whose drafts must be bit-identical: same weights, dtype, device and
/// kernels; the context mode may differ only under the exact (batch-invariant) kernels.
fn exact_pair(a: &Value, b: &Value) -> bool {
    let same = |k: &str| a[k] == b[k];
    same("digests")
        && same("dtype")
        && same("device")
        && same("kernels")
        && (same("context") || a["kernels"] == "exact")
}

fn block_json(i: usize, r: &BlockResult) -> Value {
    json!({
        "block": i, "context_len": r.context_len, "a_ids": r.a_ids, "b_ids": r.b_ids,
        "matches": r.matches, "positions": r.a_ids.len().max(r.b_ids.len()),
        "mismatch_positions": r.mismatch_positions,
        "root_mismatch_positions": r.root_mismatch_positions,
        "prefix_consistent": r.prefix_consistent,
        "a_draft_s": r.a_draft_s, "b_draft_s": r.b_draft_s,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let target = match (args.drafter, &args.target) {
        (DrafterKind::Dflash, None) => bail!("--drafter dflash needs --target DIR"),
        (DrafterKind::Dflash, Some(t)) => Some(t.as_path()),
        (DrafterKind::Model, Some(_)) => bail!("--target is only for --drafter dflash"),
        (DrafterKind::Model, None) => None,
    };
    let drafter_name = match args.drafter {
        DrafterKind::Model => "model",
        DrafterKind::Dflash => "dflash",
    };
    if args.block_size == 0 || args.block_size > 256 || args.n_blocks == 0 || args.n_blocks > 64 {
        bail!("--block-size must be in 1..=256 and --n-blocks in 1..=64");
    }
    if !(0.0..=1.0).contains(&args.min_agreement) {
        bail!("--min-agreement must be in [0, 1]");
    }
    let b_dir = args.draft_b.clone().unwrap_or_else(|| args.draft.clone());
    let b = side(
        &b_dir,
        target,
        &args.dtype_b,
        &args.device_b,
        &args.context_b,
        args.candle_kernels_b,
    )?;
    let recorded: Option<Vec<ReferenceBlock>> = args
        .reference
        .as_ref()
        .map(|p| reference::read(p))
        .transpose()?;
    let a = match &recorded {
        Some(_) => None,
        None => Some(side(
            &args.draft,
            target,
            &args.dtype_a,
            &args.device_a,
            &args.context_a,
            args.candle_kernels_a,
        )?),
    };
    let a_desc = match (&a, &args.reference) {
        (Some(s), _) => s.desc.clone(),
        (None, Some(p)) => json!({"reference": p.display().to_string()}),
        (None, None) => bail!("internal: neither side A nor a reference"),
    };
    let exact = a.is_some() && exact_pair(&a_desc, &b.desc);
    let mut params = Map::new();
    params.insert("drafter".into(), drafter_name.into());
    params.insert("a".into(), a_desc.clone());
    params.insert("b".into(), b.desc.clone());
    params.insert("n_blocks".into(), args.n_blocks.into());
    params.insert("block_size".into(), args.block_size.into());
    params.insert("min_agreement".into(), args.min_agreement.into());
    let mut builder = ReportBuilder::start("drafter_parity", b.loaded.model.device_label(), params);
    for (role, s) in [("b", Some(&b)), ("a", a.as_ref())] {
        let Some(s) = s else { continue };
        s.loaded.add_digests(role, &mut builder);
        for d in s.desc["digests"].as_array().into_iter().flatten() {
            if let (Some(f), Some(sha)) = (d["file"].as_str(), d["sha256"].as_str())
                && f.starts_with("dflash/")
            {
                builder.model_digest(&format!("{role}/{f}"), sha);
            }
        }
    }
    let mut db = b.source();
    let mut samples = Vec::new();
    let mut written: Vec<ReferenceBlock> = Vec::new();
    match (&a, &recorded) {
        (Some(a), _) => {
            let prompts = lm_common::prompts(
                &args.prompt,
                args.prompt_set.as_deref().or(if args.prompt.is_empty() {
                    Some("short")
                } else {
                    None
                }),
            )?;
            let mut da = a.source();
            for (i, p) in prompts.iter().enumerate() {
                let ids = a.loaded.encode(p)?;
                let blocks = parity::run_context(
                    da.as_mut(),
                    db.as_mut(),
                    &ids,
                    args.n_blocks,
                    args.block_size,
                )
                .with_context(|| format!("drafting after prompt {i}"))?;
                let mut ctx = ids.clone();
                for r in &blocks {
                    written.push(ReferenceBlock {
                        context_ids: ctx.clone(),
                        draft_ids: r.a_ids.clone(),
                    });
                    ctx.extend_from_slice(&r.a_ids);
                }
                samples.push(json!({"sample": i, "context_len": ids.len(),
                    "blocks": blocks.iter().enumerate().map(|(j, r)| block_json(j, r)).collect::<Vec<_>>()}));
            }
        }
        (None, Some(rec)) => {
            let mut ra = Recorded(rec);
            for (i, blk) in rec.iter().enumerate() {
                let r = parity::compare_block(
                    &mut ra,
                    db.as_mut(),
                    &blk.context_ids,
                    blk.draft_ids.len(),
                )
                .with_context(|| format!("reference block {i}"))?;
                samples.push(json!({"sample": i, "context_len": blk.context_ids.len(), "blocks": [block_json(0, &r)]}));
            }
        }
        (None, None) => bail!("internal: nothing to compare"),
    }
    let (mut agreed, mut total, mut consistent) = (0usize, 0usize, true);
    for s in &samples {
        for blk in s["blocks"].as_array().into_iter().flatten() {
            agreed += blk["matches"].as_u64().unwrap_or(0) as usize;
            total += blk["positions"].as_u64().unwrap_or(0) as usize;
            consistent &= blk["prefix_consistent"].as_bool().unwrap_or(false);
        }
    }
    let agreement = agreed as f64 / total.max(1) as f64;
    let passed = total > 0 && agreement >= args.min_agreement && (!exact || agreed == total);
    if let Some(path) = &args.write_reference {
        std::fs::write(path, reference::to_jsonl(&written))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let body = json!({
        "config": {"drafter": drafter_name, "a": a_desc, "b": b.desc, "exact_configs": exact,
            "n_blocks": args.n_blocks, "block_size": args.block_size,
            "min_agreement": args.min_agreement,
            "reference": args.reference.as_ref().map(|p| p.display().to_string()),
            "teacher_forcing": "each block's context is extended by side A's block"},
        "samples": samples,
        "agreed_tokens": agreed,
        "total_tokens": total,
        "agreement": agreement,
        "all_prefix_consistent": consistent,
        "passed": passed,
    });
    let report = builder.finish(body)?;
    report::write_report(&args.out, &report)?;
    eprintln!(
        "drafter parity: {agreed}/{total} = {agreement:.4} (min {}), exact configs: {exact}, prefix-consistent: {consistent}",
        args.min_agreement
    );
    if !passed {
        bail!(
            "agreement {agreement:.4} is below the required {} (report written to {})",
            if exact { 1.0 } else { args.min_agreement },
            args.out.display()
        );
    }
    Ok(())
}
