//! `kakeya kv-quant-eval`: codec arms on K/V captured from a model run — bits/value, rel-MSE,
//! and the downstream effect on next-token logits (top-1 agreement, KL vs the raw cache).

use std::path::PathBuf;

use anyhow::bail;
use kakeya_engine::eval::kv_quant::{Arm, ArmResult, DEFAULT_ARMS, evaluate};
use kakeya_engine::report::{self, ReportBuilder};
use serde_json::{Map, Value, json};

use super::lm_common::{self, RunFlags};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: PathBuf,
    /// Prompt text; may be repeated.
    #[arg(long)]
    prompt: Vec<String>,
    /// A built-in prompt set: short, code, long.
    #[arg(long)]
    prompt_set: Option<String>,
    /// Tokens at the end of each prompt whose next-token distributions are compared.
    #[arg(long, default_value_t = 8)]
    eval_tokens: usize,
    /// Comma-separated arms (identity, affine8, affine4, e8-q38, d4-q10, …).
    #[arg(long, value_delimiter = ',')]
    arms: Vec<String>,
    #[arg(long, default_value = "kv_quant_eval.json")]
    out: PathBuf,
    #[command(flatten)]
    flags: RunFlags,
}

fn merge(total: &mut ArmResult, r: ArmResult) {
    total.values += r.values;
    total.bytes += r.bytes;
    if total.layer_err.is_empty() {
        total.layer_err = r.layer_err;
    } else {
        for (t, x) in total.layer_err.iter_mut().zip(r.layer_err) {
            t.0 += x.0;
            t.1 += x.1;
        }
    }
    total.positions += r.positions;
    total.top1_agree += r.top1_agree;
    total.kl.extend(r.kl);
}

fn arm_json(arm: &Arm, r: &ArmResult) -> Value {
    let per_layer: Vec<f64> = r
        .layer_err
        .iter()
        .map(|(e, n)| if *n > 0.0 { e / n } else { 0.0 })
        .collect();
    let rel_mse = per_layer.iter().sum::<f64>() / per_layer.len().max(1) as f64;
    let kl_mean = r.kl.iter().sum::<f64>() / r.kl.len().max(1) as f64;
    json!({
        "arm": arm.name,
        "bits_per_value": r.bytes as f64 * 8.0 / r.values.max(1) as f64,
        "accounted_bits_per_value": arm.accounted_bits_per_value(),
        "values": r.values,
        "bytes": r.bytes,
        "rel_mse": rel_mse,
        "rel_mse_per_layer": per_layer,
        "positions": r.positions,
        "top1_agree": r.top1_agree,
        "top1_agreement": r.top1_agree as f64 / r.positions.max(1) as f64,
        "kl_mean": kl_mean,
        "kl_max": r.kl.iter().copied().fold(0.0, f64::max),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let prompts = lm_common::prompts(&args.prompt, args.prompt_set.as_deref())?;
    let lm = lm_common::load(&args.model, &args.flags)?;
    let mut names: Vec<String> = if args.arms.is_empty() {
        DEFAULT_ARMS.iter().map(|s| s.to_string()).collect()
    } else {
        args.arms.clone()
    };
    if !names.iter().any(|n| n == "identity") {
        // The identity arm checks the harness itself: it must reproduce the reference exactly.
        names.insert(0, "identity".into());
    }
    let dim = lm.model.config().head_dim;
    let arms = names
        .iter()
        .map(|n| Arm::new(n, dim))
        .collect::<Result<Vec<_>, _>>()?;
    let mut params = Map::new();
    params.insert("model".into(), args.model.display().to_string().into());
    params.insert("eval_tokens".into(), args.eval_tokens.into());
    params.insert("arms".into(), json!(names));
    params.insert("prompt_set".into(), json!(args.prompt_set));
    let mut builder = ReportBuilder::start("kv_quant_eval", lm.model.device_label(), params);
    lm.add_digests("model", &mut builder);
    let mut totals: Vec<ArmResult> = vec![ArmResult::default(); arms.len()];
    let mut lens = Vec::new();
    for p in &prompts {
        let ids = lm.encode(p)?;
        if ids.len() < 2 {
            bail!("prompt {p:?} has fewer than 2 tokens");
        }
        lens.push(ids.len());
        for (t, r) in totals
            .iter_mut()
            .zip(evaluate(&lm.model, &ids, args.eval_tokens, &arms)?)
        {
            merge(t, r);
        }
    }
    let results: Vec<Value> = arms
        .iter()
        .zip(&totals)
        .map(|(a, r)| arm_json(a, r))
        .collect();
    let body = json!({
        "config": {"eval_tokens": args.eval_tokens, "arms": names, "kv_captured": "post_rope_cache",
                   "rel_mse": "per layer (|K^-K|^2+|V^-V|^2)/(|K|^2+|V|^2) pooled over prompts, mean over layers"},
        "model": lm.describe(),
        "prompt_token_lens": lens,
        "arms": results,
    });
    let report = builder.finish(body)?;
    report::write_report(&args.out, &report)?;
    eprintln!(
        "{:<10} {:>9} {:>12} {:>8} {:>10}",
        "arm", "bits/val", "rel-MSE", "top-1", "KL"
    );
    for a in report["arms"].as_array().into_iter().flatten() {
        eprintln!(
            "{:<10} {:>9.3} {:>12.3e} {:>8.3} {:>10.3e}",
            a["arm"].as_str().unwrap_or(""),
            a["bits_per_value"].as_f64().unwrap_or(0.0),
            a["rel_mse"].as_f64().unwrap_or(0.0),
            a["top1_agreement"].as_f64().unwrap_or(0.0),
            a["kl_mean"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
