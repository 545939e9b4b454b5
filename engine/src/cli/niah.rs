//! `kakeya niah`: needle-in-a-haystack recall through several KV channels, with the raw
//! cache as the oracle; writes a `niah` report and one SVG heatmap per channel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kakeya_engine::eval::niah::haystack::{self, Encode};
use kakeya_engine::eval::niah::{self, CHUNK_TOLERANCE, heatmap};
use kakeya_engine::model::{KvChannel, ModelError};
use kakeya_engine::report::{self, ReportBuilder};
use kakeya_engine::tiny::Rng;
use serde_json::{Map, Value, json};

use super::lm_common::{self, Loaded, RunFlags};

#[derive(clap::Args)]
pub struct Args {
    /// Model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Comma-separated KV channels; `raw` (the oracle) is added first if missing.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "raw,e8-q38,e8-q10,e8-q4,d4-q10-b2"
    )]
    kv: Vec<String>,
    /// Comma-separated prompt lengths in tokens (the whole prompt: filler, needle, question).
    #[arg(long, value_delimiter = ',', default_value = "512,1024,2048")]
    context_lens: Vec<usize>,
    /// Comma-separated needle depths in [0, 1] (0 = start of the filler, 1 = its end).
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
    depths: Vec<f64>,
    /// Prompts per context length × depth (each with its own key, value and filler offset).
    #[arg(long, default_value_t = 1)]
    trials: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Filler text file (split into sentences); default: built-in lowercase sentences.
    #[arg(long)]
    haystack: Option<PathBuf>,
    /// Greedy answer length in tokens.
    #[arg(long, default_value_t = 10)]
    answer_tokens: usize,
    /// Prefill chunk in tokens (memory is bounded by chunk × context attention scores).
    #[arg(long, default_value_t = 256)]
    chunk: usize,
    #[arg(long, default_value = "niah.json")]
    out: PathBuf,
    #[command(flatten)]
    flags: RunFlags,
}

struct Enc<'a>(&'a Loaded);

impl Encode for Enc<'_> {
    fn encode_piece(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.0.tokenizer.encode_piece(text)
    }
}

fn validate(args: &Args) -> anyhow::Result<Vec<(String, KvChannel)>> {
    if args.context_lens.is_empty() || args.context_lens.iter().any(|&l| l == 0 || l > 1 << 20) {
        bail!("--context-lens must be positive token counts (at most 1048576)");
    }
    if args.depths.is_empty() || args.depths.iter().any(|d| !(0.0..=1.0).contains(d)) {
        bail!("--depths must be numbers in [0, 1]");
    }
    if args.trials == 0 || args.trials > 1000 {
        bail!("--trials must be in 1..=1000");
    }
    if args.answer_tokens == 0 || args.answer_tokens > 256 {
        bail!("--answer-tokens must be in 1..=256");
    }
    if args.chunk == 0 {
        bail!("--chunk must be ≥ 1");
    }
    let mut channels: Vec<(String, KvChannel)> = Vec::new();
    for name in &args.kv {
        let ch = lm_common::parse_channel(name.trim())?;
        let label = ch.to_string();
        if channels.iter().any(|(l, _)| *l == label) {
            bail!("KV channel `{label}` is listed twice");
        }
        channels.push((label, ch));
    }
    if !channels.iter().any(|(_, c)| *c == KvChannel::Raw) {
        channels.insert(0, ("raw".into(), KvChannel::Raw));
    }
    Ok(channels)
}

fn filler(args: &Args) -> anyhow::Result<(Vec<String>, String)> {
    match &args.haystack {
        None => Ok((
            haystack::builtin_sentences(400, args.seed),
            "builtin".into(),
        )),
        Some(path) => {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("reading haystack {}", path.display()))?;
            if meta.len() > 64 << 20 {
                bail!("haystack {} is larger than 64 MiB", path.display());
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading haystack {} (UTF-8 text)", path.display()))?;
            let s = haystack::split_sentences(&text);
            if s.is_empty() {
                bail!("haystack {} has no text", path.display());
            }
            Ok((s, path.display().to_string()))
        }
    }
}

/// `report.json` → `report-<kv>.svg` next to it.
fn heatmap_path(out: &Path, kv: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "niah".into());
    out.with_file_name(format!("{stem}-{kv}.svg"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let channels = validate(&args)?;
    let (sentences, haystack_label) = filler(&args)?;
    let lm = lm_common::load(&args.model, &args.flags)?;
    let max_len = *args.context_lens.iter().max().unwrap_or(&0);
    if max_len > lm.model.config().max_position_embeddings {
        bail!(
            "context length {max_len} exceeds the model's max_position_embeddings {}",
            lm.model.config().max_position_embeddings
        );
    }
    let enc = Enc(&lm);
    let encoded: Vec<Vec<u32>> = sentences
        .iter()
        .map(|s| enc.encode_piece(s))
        .collect::<Result<_, _>>()?;
    let bos = lm.model.config().bos_token_id;
    let kv_names: Vec<&str> = channels.iter().map(|(l, _)| l.as_str()).collect();
    let mut params = Map::new();
    params.insert("model".into(), args.model.display().to_string().into());
    params.insert("kv".into(), json!(kv_names));
    params.insert("context_lens".into(), json!(args.context_lens));
    params.insert("depths".into(), json!(args.depths));
    params.insert("trials".into(), args.trials.into());
    params.insert("seed".into(), args.seed.into());
    params.insert("haystack".into(), haystack_label.clone().into());
    params.insert("answer_tokens".into(), args.answer_tokens.into());
    params.insert("chunk".into(), args.chunk.into());
    params.insert("dtype".into(), args.flags.dtype.clone().into());
    let mut builder = ReportBuilder::start("niah", lm.model.device_label(), params);
    lm.add_digests("model", &mut builder);
    let mut rng = Rng::new(args.seed);
    let mut samples = Vec::new();
    for &len in &args.context_lens {
        for &depth in &args.depths {
            for trial in 0..args.trials {
                let (key, value) = haystack::key_value(&mut rng);
                let start = (rng.next_u64() % encoded.len() as u64) as usize;
                let p = haystack::build_prompt(
                    &enc,
                    &encoded,
                    start,
                    bos,
                    len,
                    depth,
                    haystack::Needle {
                        key: &key,
                        value: &value,
                    },
                )
                .with_context(|| format!("building the prompt for length {len}, depth {depth}"))?;
                let mut raw_ids: Option<Vec<u32>> = None;
                for (label, ch) in &channels {
                    let a = niah::answer(
                        &lm.model,
                        ch,
                        &p.ids,
                        args.chunk,
                        args.answer_tokens,
                        &lm.stop,
                    )
                    .with_context(|| format!("answering through {label} at length {len}"))?;
                    let text = lm.tokenizer.decode(&a.ids)?;
                    let hit = text.contains(&value);
                    if *ch == KvChannel::Raw {
                        raw_ids = Some(a.ids.clone());
                    }
                    let reference = raw_ids.as_deref().unwrap_or(&a.ids);
                    let div = niah::first_divergence(&a.ids, reference);
                    tracing::info!(kv = %label, len, depth, trial, hit, "niah sample");
                    samples.push(json!({
                        "kv": label, "context_len": len, "depth": depth, "trial": trial,
                        "key": key, "value": value, "prompt_tokens": p.ids.len(),
                        "needle_token_index": p.needle_start, "needle_tokens": p.needle_len,
                        "actual_depth": p.actual_depth,
                        "answer_ids": a.ids, "answer_text": text, "hit": hit,
                        "raw_answer_ids": reference, "agrees_with_raw": div.is_none(),
                        "first_divergence": div,
                        "kv_bytes_held": a.kv_bytes_held, "kv_bytes_raw": a.kv_bytes_raw,
                        "prefill_s": a.prefill_s, "decode_s": a.decode_s,
                    }));
                }
            }
        }
    }
    let (cells, summary) = aggregate(&samples, &kv_names, &args.context_lens, &args.depths);
    let mut heatmaps = Vec::new();
    for kv in &kv_names {
        let hc: Vec<heatmap::HeatCell> = cells
            .iter()
            .filter(|c| c["kv"] == *kv)
            .map(|c| heatmap::HeatCell {
                context_len: c["context_len"].as_u64().unwrap_or(0) as usize,
                depth: c["depth"].as_f64().unwrap_or(0.0),
                recall: c["recall"].as_f64().unwrap_or(0.0),
            })
            .collect();
        let path = heatmap_path(&args.out, kv);
        let title = format!("NIAH recall, kv {kv}");
        let svg = heatmap::svg(&title, &args.context_lens, &args.depths, &hc);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        heatmaps.push(
            json!({"kv": kv, "file": path.file_name().map(|f| f.to_string_lossy().into_owned())}),
        );
    }
    let body = json!({
        "config": {"kv": kv_names, "context_lens": args.context_lens, "depths": args.depths,
            "trials": args.trials, "seed": args.seed, "haystack": haystack_label,
            "answer_tokens": args.answer_tokens, "prefill_chunk": args.chunk,
            "chunk_tolerance": CHUNK_TOLERANCE, "oracle": "raw",
            "needle_template": haystack::NEEDLE_TEMPLATE,
            "question_template": haystack::QUESTION_TEMPLATE,
            "recall_predicate": "value is a case-sensitive substring of the decoded answer"},
        "model": lm.describe(),
        "samples": samples,
        "cells": cells,
        "summary": summary,
        "heatmaps": heatmaps,
    });
    let report = builder.finish(body)?;
    report::write_report(&args.out, &report)?;
    print_table(&report);
    Ok(())
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Cells (kv × length × depth) and the summary, from the samples alone (the gate redoes
/// exactly this).
fn aggregate(
    samples: &[Value],
    kvs: &[&str],
    lens: &[usize],
    depths: &[f64],
) -> (Vec<Value>, Value) {
    let f = |s: &Value, k: &str| s[k].as_f64().unwrap_or(0.0);
    let b = |s: &Value, k: &str| {
        if s[k].as_bool().unwrap_or(false) {
            1.0
        } else {
            0.0
        }
    };
    let mut cells = Vec::new();
    let mut recall_by_kv = Map::new();
    let mut agree_by_kv = Map::new();
    let mut bytes_by_kv = Map::new();
    let mut tps_by_kv = Map::new();
    let mut recall_by_kv_len = Map::new();
    for kv in kvs {
        let mine: Vec<&Value> = samples.iter().filter(|s| s["kv"] == *kv).collect();
        recall_by_kv.insert(
            kv.to_string(),
            json!(mean(&mine.iter().map(|s| b(s, "hit")).collect::<Vec<_>>())),
        );
        agree_by_kv.insert(
            kv.to_string(),
            json!(mean(
                &mine
                    .iter()
                    .map(|s| b(s, "agrees_with_raw"))
                    .collect::<Vec<_>>()
            )),
        );
        let held: f64 = mine.iter().map(|s| f(s, "kv_bytes_held")).sum();
        let raw: f64 = mine.iter().map(|s| f(s, "kv_bytes_raw")).sum();
        bytes_by_kv.insert(
            kv.to_string(),
            json!(if raw > 0.0 { held / raw } else { 0.0 }),
        );
        let mut tps = Map::new();
        let mut rl = Map::new();
        for len in lens {
            let at: Vec<&&Value> = mine.iter().filter(|s| s["context_len"] == *len).collect();
            let secs: f64 = at.iter().map(|s| f(s, "prefill_s")).sum();
            let toks: f64 = at.iter().map(|s| f(s, "prompt_tokens")).sum();
            tps.insert(
                len.to_string(),
                json!(if secs > 0.0 { toks / secs } else { 0.0 }),
            );
            rl.insert(
                len.to_string(),
                json!(mean(&at.iter().map(|s| b(s, "hit")).collect::<Vec<_>>())),
            );
            for d in depths {
                let c: Vec<&&&Value> = at
                    .iter()
                    .filter(|s| (f(s, "depth") - d).abs() < 1e-12)
                    .collect();
                if c.is_empty() {
                    continue;
                }
                let held: f64 = c.iter().map(|s| f(s, "kv_bytes_held")).sum();
                let raw: f64 = c.iter().map(|s| f(s, "kv_bytes_raw")).sum();
                cells.push(json!({
                    "kv": kv, "context_len": len, "depth": d, "trials": c.len(),
                    "recall": mean(&c.iter().map(|s| b(s, "hit")).collect::<Vec<_>>()),
                    "agrees_with_raw": mean(&c.iter().map(|s| b(s, "agrees_with_raw")).collect::<Vec<_>>()),
                    "kv_bytes_held": held / c.len() as f64,
                    "kv_bytes_raw": raw / c.len() as f64,
                    "kv_bytes_ratio": if raw > 0.0 { held / raw } else { 0.0 },
                    "prefill_s": mean(&c.iter().map(|s| f(s, "prefill_s")).collect::<Vec<_>>()),
                    "decode_s": mean(&c.iter().map(|s| f(s, "decode_s")).collect::<Vec<_>>()),
                }));
            }
        }
        tps_by_kv.insert(kv.to_string(), Value::Object(tps));
        recall_by_kv_len.insert(kv.to_string(), Value::Object(rl));
    }
    let summary = json!({
        "samples": samples.len(),
        "recall_by_kv": recall_by_kv,
        "agreement_by_kv": agree_by_kv,
        "kv_bytes_ratio_by_kv": bytes_by_kv,
        "recall_by_kv_and_len": recall_by_kv_len,
        "prefill_tokens_per_s_by_kv_and_len": tps_by_kv,
    });
    (cells, summary)
}

fn print_table(report: &Value) {
    let s = &report["summary"];
    eprintln!(
        "{:<12} {:>8} {:>10} {:>10}",
        "kv", "recall", "agree-raw", "bytes/raw"
    );
    if let Some(m) = s["recall_by_kv"].as_object() {
        let by: BTreeMap<_, _> = m.iter().collect();
        for (kv, r) in by {
            eprintln!(
                "{:<12} {:>8.3} {:>10.3} {:>10.3}",
                kv,
                r.as_f64().unwrap_or(0.0),
                s["agreement_by_kv"][kv].as_f64().unwrap_or(0.0),
                s["kv_bytes_ratio_by_kv"][kv].as_f64().unwrap_or(0.0)
            );
        }
    }
}
