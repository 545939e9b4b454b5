//! `kakeya bench model` / `kakeya bench spec-decode`: the engine's figures on this machine
//! (tables on stdout, JSON with provenance to --out). Timings move run to run; these are
//! measurements of one run, not claims the gate checks.

use std::path::PathBuf;

use anyhow::Context;
use kakeya_engine::model::{CausalLm, KvChannel};
use kakeya_engine::report::{self, ReportBuilder};
use kakeya_engine::specdec::SpecOptions;
use kakeya_engine::specdec::prompts::prompt_set;
use kakeya_engine::specdec::run::{Pair, summary};
use kakeya_engine::tiny::{DraftSpec, derive_draft};
use serde_json::{Map, Value, json};

use super::lm_common::{self, RunFlags};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Prefill / decode tokens/s, block-of-L cost in single steps, decode bandwidth bound.
    Model(super::bench_model::Args),
    /// Speculative decoding speedup vs AR at several draft acceptance rates and block sizes.
    SpecDecode(SpecArgs),
    /// The acceptance-rate benchmark: drafters × KV channels × block sizes, lossless rows
    /// with speed vs AR from the same run, a table and an SVG plot.
    Acceptance(super::acceptance::Args),
}

#[derive(clap::Args)]
pub struct SpecArgs {
    /// Target model; drafts are derived from it.
    #[arg(long)]
    target: PathBuf,
    /// Draft layers kept from the target (default: all, i.e. a perturbed full copy).
    #[arg(long)]
    keep_layers: Option<usize>,
    /// Noise levels tried to reach each acceptance rate.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.02,0.05,0.1,0.2,0.35,0.5,0.8"
    )]
    noise_levels: Vec<f32>,
    /// Acceptance rates to aim for.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.7,0.9")]
    accept: Vec<f64>,
    #[arg(long, value_delimiter = ',', default_value = "4,8,16")]
    block_sizes: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 1)]
    reps: usize,
    #[arg(long, default_value = "bench_spec_decode.json")]
    out: PathBuf,
    #[command(flatten)]
    flags: RunFlags,
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Model(a) => super::bench_model::run(a),
        Command::SpecDecode(a) => spec(a),
        Command::Acceptance(a) => super::acceptance::run(a),
    }
}

fn spec(a: SpecArgs) -> anyhow::Result<()> {
    let target = lm_common::load(&a.target, &a.flags)?;
    let tmp = tempfile_dir()?;
    let prompts = prompt_set("short").unwrap_or_default();
    let ids = prompts
        .iter()
        .map(|p| target.encode(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut params = Map::new();
    params.insert("target".into(), a.target.display().to_string().into());
    params.insert("keep_layers".into(), json!(a.keep_layers));
    params.insert("max_new_tokens".into(), a.max_new_tokens.into());
    let mut builder =
        ReportBuilder::start("spec_decode_bench", target.model.device_label(), params);
    target.add_digests("target", &mut builder);
    // Calibrate: acceptance of each noise level at block 8.
    let mut calib = Vec::new();
    for (i, &noise) in a.noise_levels.iter().enumerate() {
        let dir = tmp.join(format!("draft{i}"));
        derive_draft(
            &a.target,
            &dir,
            &DraftSpec {
                keep_layers: a.keep_layers,
                noise,
                seed: i as u64 + 1,
            },
        )?;
        let draft = CausalLm::load(&dir, &a.flags.options()?)?;
        let pair = Pair::with_model(&target.model, &draft, KvChannel::Raw, KvChannel::Raw);
        let opts = SpecOptions {
            block_size: 8,
            max_new_tokens: a.max_new_tokens / 2,
            stop: target.stop.clone(),
        };
        let s = ids
            .iter()
            .enumerate()
            .map(|(pi, p)| pair.sample(p, &opts, pi, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let alpha = summary(&s)["acceptance_rate"].as_f64().unwrap_or(0.0);
        eprintln!("calibration: noise {noise} -> acceptance {alpha:.3}");
        calib.push((noise, alpha, dir));
    }
    let mut rows = Vec::new();
    println!(
        "{:>6} {:>6} {:>6} {:>5} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "aim", "noise", "alpha", "L", "accept", "tok/s", "AR tok/s", "speedup", "lossless"
    );
    for &aim in &a.accept {
        let Some((noise, _, dir)) = calib
            .iter()
            .min_by(|x, y| (x.1 - aim).abs().total_cmp(&(y.1 - aim).abs()))
        else {
            continue;
        };
        let draft = CausalLm::load(dir, &a.flags.options()?)?;
        let pair = Pair::with_model(&target.model, &draft, KvChannel::Raw, KvChannel::Raw);
        pair.warmup(&ids[0])?;
        for &l in &a.block_sizes {
            let opts = SpecOptions {
                block_size: l,
                max_new_tokens: a.max_new_tokens,
                stop: target.stop.clone(),
            };
            let mut samples = Vec::new();
            for r in 0..a.reps.max(1) {
                for (pi, p) in ids.iter().enumerate() {
                    samples.push(pair.sample(p, &opts, pi, r)?);
                }
            }
            let s = summary(&samples);
            let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
            println!(
                "{aim:>6.2} {noise:>6.3} {:>6.3} {l:>5} {:>8.3} {:>9.1} {:>9.1} {:>8.3} {:>8}",
                f("acceptance_rate"),
                f("mean_accept_len"),
                f("tokens_per_s"),
                f("ar_tokens_per_s"),
                f("speedup_vs_ar"),
                s["lossless"]
            );
            rows.push(json!({"aim": aim, "noise": noise, "block_size": l, "summary": s}));
        }
    }
    let body = json!({"target": target.describe(), "keep_layers": a.keep_layers,
        "calibration": calib.iter().map(|(n, al, _)| json!({"noise": n, "acceptance_rate": al})).collect::<Vec<Value>>(),
        "results": rows});
    report::write_report(&a.out, &builder.finish(body)?)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kakeya-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
