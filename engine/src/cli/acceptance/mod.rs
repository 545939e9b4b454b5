//! `kakeya bench acceptance`: the acceptance-rate benchmark. For every drafter × KV channel
//! × block size, each prompt is decoded plainly and speculatively by the same code path in
//! the same run (order alternated), and one row records the distribution of accepted tokens
//! per verify, acceptance per draft position, both speeds from raw timings, TTFT, cache
//! bytes and codec activity, and whether every sample was lossless. Prints a table and
//! writes an SVG of speedup against acceptance per drafter. The `replay` drafter is
//! synthetic (it knows the answer) and is labelled so in the rows, the table and the plot.

mod plot;
mod prompts;

use std::path::PathBuf;

use anyhow::{Context, bail};
use kakeya_engine::model::KvChannel;
use kakeya_engine::report::{self, ReportBuilder};
use kakeya_engine::specdec::acceptance;
use kakeya_engine::specdec::dflash::DFlashModel;
use kakeya_engine::specdec::run::{DraftSource, Pair, Sample};
use kakeya_engine::specdec::{BlockPolicy, SpecOptions};
use serde_json::{Map, Value, json};

use super::lm_common::{self, Loaded, RunFlags};
use super::spec_decode::NgramFlags;

#[derive(clap::Args)]
pub struct Args {
    /// Target (verifier) model directory.
    #[arg(long)]
    target: PathBuf,
    /// Draft model directory (for the `model` drafter).
    #[arg(long)]
    draft: Option<PathBuf>,
    /// DFlash checkpoint directory (for the `dflash` drafter).
    #[arg(long)]
    dflash: Option<PathBuf>,
    /// Drafters: ngram, model, dflash, replay (replay is synthetic: see --replay-acceptance).
    #[arg(long, value_delimiter = ',', default_value = "ngram")]
    drafters: Vec<String>,
    /// Target KV channels (the AR reference of each row uses the same one).
    #[arg(long, value_delimiter = ',', default_value = "raw")]
    kv: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "4,8,16")]
    block_sizes: Vec<usize>,
    /// A built-in prompt set: short, code, long, repeat.
    #[arg(long)]
    prompt_set: Option<String>,
    /// A JSONL prompt file ({"prompt"}, GSM8K, HumanEval or Spec-Bench question.jsonl).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Use at most this many prompts of the file or set.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Runs per prompt.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Per-token acceptance rates the synthetic `replay` drafter is set to (one row each).
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.8,0.9,1.0")]
    replay_acceptance: Vec<f64>,
    /// Adaptive block length (see BlockPolicy::Adaptive) instead of a fixed L.
    #[arg(long)]
    adaptive: bool,
    #[command(flatten)]
    ngram: NgramFlags,
    #[arg(long, default_value = "acceptance.json")]
    out: PathBuf,
    /// Where to write the SVG plot (default: next to --out, `.svg`).
    #[arg(long)]
    plot: Option<PathBuf>,
    #[command(flatten)]
    flags: RunFlags,
}

struct Set {
    name: String,
    items: Vec<prompts::Item>,
}

fn prompt_items(a: &Args) -> anyhow::Result<Set> {
    let mut set = match (&a.prompts, &a.prompt_set) {
        (Some(p), None) => Set {
            name: p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "prompts".into()),
            items: prompts::read(p)?,
        },
        (None, Some(n)) => Set {
            name: n.clone(),
            items: lm_common::prompts(&[], Some(n))?
                .into_iter()
                .map(|text| prompts::Item {
                    text,
                    category: None,
                    reference: None,
                })
                .collect(),
        },
        _ => bail!("give exactly one of --prompt-set NAME or --prompts FILE.jsonl"),
    };
    if let Some(n) = a.limit {
        set.items.truncate(n.max(1));
    }
    Ok(set)
}

fn proxy(target: &Loaded, items: &[prompts::Item], samples: &[Sample]) -> Option<f64> {
    let mut hits = 0usize;
    let mut n = 0usize;
    for s in samples {
        let Some(r) = items.get(s.prompt_index).and_then(|i| i.reference.as_ref()) else {
            continue;
        };
        n += 1;
        let text = target.tokenizer.decode(&s.spec.tokens).unwrap_or_default();
        hits += usize::from(text.contains(r.as_str()));
    }
    (n > 0).then(|| hits as f64 / n as f64)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    for d in &a.drafters {
        if !["ngram", "model", "dflash", "replay"].contains(&d.as_str()) {
            bail!("unknown drafter `{d}` (expected ngram, model, dflash, replay)");
        }
    }
    if a.block_sizes.iter().any(|l| !(1..=64).contains(l)) {
        bail!("--block-sizes must each be in 1..=64");
    }
    if a.replay_acceptance.iter().any(|r| !(0.0..=1.0).contains(r)) {
        bail!("--replay-acceptance values must be in [0, 1]");
    }
    let ngram = a.ngram.params()?;
    let kvs =
        a.kv.iter()
            .map(|k| lm_common::parse_channel(k))
            .collect::<anyhow::Result<Vec<KvChannel>>>()?;
    let set = prompt_items(&a)?;
    let target = lm_common::load(&a.target, &a.flags)?;
    let want = |d: &str| a.drafters.iter().any(|x| x == d);
    let draft = match (&a.draft, want("model")) {
        (Some(d), true) => Some(lm_common::load(d, &a.flags)?),
        (None, true) => bail!("the `model` drafter needs --draft DIR"),
        _ => None,
    };
    if let Some(d) = &draft
        && d.model.config().vocab_size != target.model.config().vocab_size
    {
        bail!("draft vocab differs from the target's");
    }
    let dflash = match (&a.dflash, want("dflash")) {
        (Some(d), true) => Some(
            DFlashModel::load(d, &target.model)
                .with_context(|| format!("loading the DFlash drafter {}", d.display()))?,
        ),
        (None, true) => bail!("the `dflash` drafter needs --dflash DIR"),
        _ => None,
    };
    let ids = set
        .items
        .iter()
        .map(|i| target.encode(&i.text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut params = Map::new();
    params.insert("target".into(), a.target.display().to_string().into());
    params.insert("drafters".into(), json!(a.drafters));
    params.insert("kv".into(), json!(a.kv));
    params.insert("block_sizes".into(), json!(a.block_sizes));
    params.insert("dataset".into(), set.name.clone().into());
    params.insert("max_new_tokens".into(), a.max_new_tokens.into());
    params.insert("repeats".into(), a.repeats.into());
    params.insert("adaptive".into(), a.adaptive.into());
    let mut builder = ReportBuilder::start("acceptance_bench", target.model.device_label(), params);
    target.add_digests("target", &mut builder);
    if let Some(d) = &draft {
        d.add_digests("draft", &mut builder);
    }
    if let (Some(dir), Some(_)) = (&a.dflash, &dflash) {
        for (name, sha) in kakeya_engine::model::load::digests(dir)? {
            builder.model_digest(&format!("dflash/{name}"), &sha);
        }
    }
    // DraftSource holds borrowed models and is rebuilt per KV channel.
    let make_sources = || {
        let mut sources: Vec<(DraftSource, Option<f64>)> = Vec::new();
        for d in &a.drafters {
            match d.as_str() {
                "ngram" => sources.push((DraftSource::Ngram(ngram), None)),
                "model" => {
                    if let Some(m) = &draft {
                        let kv = KvChannel::Raw;
                        sources.push((
                            DraftSource::Model {
                                model: &m.model,
                                kv,
                            },
                            None,
                        ));
                    }
                }
                "dflash" => {
                    if let Some(m) = &dflash {
                        sources.push((DraftSource::DFlash(m), None));
                    }
                }
                _ => {
                    for &r in &a.replay_acceptance {
                        let src = DraftSource::Replay {
                            corrupt: 1.0 - r,
                            seed: 7,
                        };
                        sources.push((src, Some(r)));
                    }
                }
            }
        }
        sources
    };
    println!(
        "{:<16} {:<10} {:>3} {:>7} {:>5} {:>5} {:>7} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "drafter",
        "kv",
        "L",
        "accept",
        "p50",
        "p95",
        "alpha",
        "tok/s",
        "AR tok/s",
        "speedup",
        "ttft_ms",
        "lossless"
    );
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for kv in &kvs {
        for (source, replay_rate) in make_sources() {
            let name = source.name();
            let synthetic = source.synthetic();
            let pair = Pair {
                target: &target.model,
                kv: kv.clone(),
                source,
                policy: if a.adaptive {
                    BlockPolicy::Adaptive
                } else {
                    BlockPolicy::Fixed
                },
            };
            pair.warmup(&ids[0])?;
            for &l in &a.block_sizes {
                let opts = SpecOptions {
                    block_size: l,
                    max_new_tokens: a.max_new_tokens,
                    stop: target.stop.clone(),
                };
                let mut samples = Vec::new();
                for r in 0..a.repeats.max(1) {
                    for (pi, p) in ids.iter().enumerate() {
                        // The parity of the run index sets which of AR and speculative runs
                        // first: alternate per sample, not only per repeat.
                        samples.push(pair.sample(p, &opts, pi, r * ids.len() + pi)?);
                    }
                }
                let cats: Vec<&str> = set
                    .items
                    .iter()
                    .filter_map(|i| i.category.as_deref())
                    .collect();
                let category = match cats.first() {
                    Some(c) if cats.iter().all(|x| x == c) => json!(c),
                    Some(_) => json!("mixed"),
                    None => Value::Null,
                };
                let labels = json!({"drafter": name, "synthetic": synthetic,
                    "replay_acceptance": replay_rate, "kv": kv.to_string(), "block_size": l,
                    "dataset": set.name, "category": category, "adaptive": a.adaptive});
                let row = acceptance::row(labels, &samples, proxy(&target, &set.items, &samples));
                let f = |k: &str| row[k].as_f64().unwrap_or(0.0);
                let label = match replay_rate {
                    Some(r) => format!("replay@{r:.2}*"),
                    None => name.to_string(),
                };
                println!(
                    "{label:<16} {:<10} {l:>3} {:>7.3} {:>5} {:>5} {:>7.3} {:>9.1} {:>9.1} {:>8.3} {:>8.2} {:>8}",
                    kv.to_string(),
                    f("accept_len_mean"),
                    f("accept_len_p50"),
                    f("accept_len_p95"),
                    f("acceptance_rate"),
                    f("tokens_per_s"),
                    f("ar_tokens_per_s"),
                    f("speedup_vs_ar"),
                    f("ttft_s") * 1e3,
                    row["lossless"]
                );
                points.push(plot::Point {
                    drafter: if synthetic {
                        "replay".into()
                    } else {
                        name.into()
                    },
                    synthetic,
                    acceptance: f("acceptance_rate"),
                    speedup: f("speedup_vs_ar"),
                    block_size: l,
                });
                rows.push(row);
            }
        }
    }
    if rows.iter().any(|r| r["synthetic"] == true) {
        println!(
            "* replay is SYNTHETIC: it proposes the target's own answer, corrupted at a set rate; it measures the loop, not a drafter."
        );
    }
    let lossless = rows.iter().all(|r| r["lossless"] == true);
    let best: Map<String, Value> = best_by_drafter(&rows);
    let plot_path = a
        .plot
        .clone()
        .unwrap_or_else(|| a.out.with_extension("svg"));
    let svg = plot::svg(&points, &format!("speedup vs acceptance — {}", set.name));
    std::fs::write(&plot_path, svg).with_context(|| format!("writing {}", plot_path.display()))?;
    let body = json!({
        "config": {"drafters": a.drafters, "kv": a.kv, "block_sizes": a.block_sizes,
                   "max_new_tokens": a.max_new_tokens, "repeats": a.repeats,
                   "replay_acceptance": a.replay_acceptance, "adaptive": a.adaptive,
                   "ngram": {"min": ngram.min_n, "max": ngram.max_n, "draft_max": ngram.draft_max},
                   "timing_scope": "e2e_prefill_plus_decode"},
        "target": target.describe(),
        "dataset": {"name": set.name, "prompts": set.items.len(),
                    "categories": set.items.iter().map(|i| json!(i.category)).collect::<Vec<_>>()},
        "rows": rows,
        "plot": plot_path.display().to_string(),
        "summary": {"rows": rows.len(), "lossless": lossless,
                    "best_speedup_by_drafter": best,
                    "synthetic_drafters": ["replay"]},
    });
    let report = builder.finish(body)?;
    report::write_report(&a.out, &report)?;
    eprintln!(
        "bench acceptance: {} rows, lossless {lossless} -> {} (plot {})",
        rows.len(),
        a.out.display(),
        plot_path.display()
    );
    if !lossless {
        bail!(
            "a speculative output differed from the plain decode (see {})",
            a.out.display()
        );
    }
    Ok(())
}

/// Best measured speedup per real drafter; synthetic rows never count as drafter evidence.
pub fn best_by_drafter(rows: &[Value]) -> Map<String, Value> {
    let mut best = Map::new();
    for r in rows.iter().filter(|r| r["synthetic"] != true) {
        let (Some(d), Some(s)) = (r["drafter"].as_str(), r["speedup_vs_ar"].as_f64()) else {
            continue;
        };
        let cur = best
            .get(d)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NEG_INFINITY);
        if s > cur {
            best.insert(d.to_string(), json!(s));
        }
    }
    best
}
