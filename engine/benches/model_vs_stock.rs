//! Our model against candle-transformers' stock Llama on the same weights, in one run:
//! prefill and decode tokens/s, the ratio, the cost of a block of 8 vs 8 single steps, and
//! the memory-bandwidth bound for decode.
//!
//! `cargo bench -p kakeya-engine --bench model_vs_stock` (release). Env: KAKEYA_BENCH_MODEL
//! (an existing model dir; default: write an 8-layer hidden-512 vocab-32000 llama into a temp
//! dir), KAKEYA_BENCH_REPS (default 3), KAKEYA_BENCH_OUT (JSON path).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama;
use kakeya_engine::bench::{
    ModelTimings, decode_bytes_per_token, median, random_tokens, read_bandwidth_gb_s, time_model,
};
use kakeya_engine::model::{Arch, CausalLm, KernelChoice, LoadOptions};
use kakeya_engine::tiny::{TinySpec, write_tiny};
use serde_json::json;

const PROMPT: usize = 256;
const DECODE: usize = 64;
const BLOCK: usize = 8;

fn stock_timings(
    model: &llama::Llama,
    cfg: &llama::Config,
    seed: u64,
) -> anyhow::Result<ModelTimings> {
    let vocab = cfg.vocab_size;
    let prompt = random_tokens(PROMPT, vocab, seed);
    let steps = random_tokens(DECODE.max(BLOCK), vocab, seed + 1);
    let input = |ids: &[u32]| Tensor::new(ids, &Device::Cpu).and_then(|t| t.unsqueeze(0));
    let mut cache = llama::Cache::new(true, DType::F32, cfg, &Device::Cpu)?;
    let t = Instant::now();
    model.forward(&input(&prompt)?, 0, &mut cache)?;
    let prefill_s = t.elapsed().as_secs_f64();
    // The stock cache cannot be truncated: snapshot by clone (Arc copies) and restore.
    let snapshot = cache.clone();
    let t = Instant::now();
    for (i, tok) in steps[..DECODE].iter().enumerate() {
        model.forward(&input(&[*tok])?, PROMPT + i, &mut cache)?;
    }
    let decode_s = t.elapsed().as_secs_f64();
    // Stock llama returns only the last position's logits, so a "block" here is 8 tokens
    // through the stack with one lm_head row (cheaper than our all-rows block).
    let mut c = snapshot.clone();
    let t = Instant::now();
    model.forward(&input(&steps[..BLOCK])?, PROMPT, &mut c)?;
    let block_s = t.elapsed().as_secs_f64();
    let mut c = snapshot;
    let t = Instant::now();
    for (i, tok) in steps[..BLOCK].iter().enumerate() {
        model.forward(&input(&[*tok])?, PROMPT + i, &mut c)?;
    }
    let singles_s = t.elapsed().as_secs_f64();
    Ok(ModelTimings {
        prefill_tokens: PROMPT,
        prefill_s,
        decode_tokens: DECODE,
        decode_s,
        block: BLOCK,
        block_s,
        singles_s,
    })
}

fn summarize(name: &str, runs: &[ModelTimings]) -> serde_json::Value {
    let med = |f: &dyn Fn(&ModelTimings) -> f64| median(runs.iter().map(f).collect());
    json!({
        "impl": name,
        "prefill_tok_s": med(&|r| r.prefill_tokens as f64 / r.prefill_s),
        "decode_tok_s": med(&|r| r.decode_tokens as f64 / r.decode_s),
        "decode_ms_per_tok": med(&|r| r.decode_s * 1e3 / r.decode_tokens as f64),
        "block8_ms": med(&|r| r.block_s * 1e3),
        "singles8_ms": med(&|r| r.singles_s * 1e3),
        "block8_in_single_steps": med(&|r| r.block_s / (r.singles_s / r.block as f64)),
        "runs": runs,
    })
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = match std::env::var_os("KAKEYA_BENCH_MODEL") {
        Some(d) => PathBuf::from(d),
        None => {
            let mut s = TinySpec::new(Arch::Llama, 7);
            s.layers = 8;
            s.hidden = 512;
            s.heads = 8;
            s.kv_heads = 8;
            s.intermediate = 1408;
            s.vocab = 32000;
            s.tie = false;
            let d = tmp.path().join("llama-8x512");
            write_tiny(&s, &d)?;
            d
        }
    };
    let reps: usize = std::env::var("KAKEYA_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let exact = CausalLm::load(&dir, &LoadOptions::default())?;
    let candle = CausalLm::load(
        &dir,
        &LoadOptions {
            kernels: KernelChoice::Candle,
            ..Default::default()
        },
    )?;
    let cfg: llama::LlamaConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    let cfg = cfg.into_config(false);
    let files = kakeya_engine::model::load::weight_files(&dir)?;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu)? };
    let stock = llama::Llama::load(vb, &cfg)?;
    // Warm up all three (page in the weights, start the thread pools).
    time_model(&exact, 16, 4, BLOCK, 99)?;
    time_model(&candle, 16, 4, BLOCK, 99)?;
    stock_timings(&stock, &cfg, 99)?;
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..reps {
        let seed = r as u64;
        a.push(time_model(&exact, PROMPT, DECODE, BLOCK, seed)?);
        b.push(time_model(&candle, PROMPT, DECODE, BLOCK, seed)?);
        c.push(stock_timings(&stock, &cfg, seed)?);
    }
    let rows = [
        summarize("ours (exact kernels)", &a),
        summarize("ours (candle kernels)", &b),
        summarize("candle-transformers llama", &c),
    ];
    let bw = read_bandwidth_gb_s(1 << 30, 3);
    let bytes = decode_bytes_per_token(&exact, PROMPT + DECODE / 2);
    let bound = bw * 1e9 / bytes;
    println!(
        "model {} ({} params, f32), prompt {PROMPT}, decode {DECODE}, reps {reps}, threads {}",
        dir.display(),
        exact.config().param_count(),
        rayon::current_num_threads()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "impl", "prefill t/s", "decode t/s", "ms/tok", "block8 ms", "8×1 ms", "blk/step"
    );
    for r in &rows {
        println!(
            "{:<28} {:>12.0} {:>12.1} {:>10.2} {:>10.2} {:>10.2} {:>8.2}",
            r["impl"].as_str().unwrap_or(""),
            r["prefill_tok_s"].as_f64().unwrap_or(0.0),
            r["decode_tok_s"].as_f64().unwrap_or(0.0),
            r["decode_ms_per_tok"].as_f64().unwrap_or(0.0),
            r["block8_ms"].as_f64().unwrap_or(0.0),
            r["singles8_ms"].as_f64().unwrap_or(0.0),
            r["block8_in_single_steps"].as_f64().unwrap_or(0.0)
        );
    }
    let ratio =
        |i: usize, k: &str| rows[i][k].as_f64().unwrap_or(0.0) / rows[2][k].as_f64().unwrap_or(1.0);
    println!(
        "decode ratio ours/stock: exact {:.2}x, candle-kernels {:.2}x; prefill ratio: exact {:.2}x, candle-kernels {:.2}x",
        ratio(0, "decode_tok_s"),
        ratio(1, "decode_tok_s"),
        ratio(0, "prefill_tok_s"),
        ratio(1, "prefill_tok_s")
    );
    println!(
        "read bandwidth {bw:.1} GB/s; decode reads >= {:.1} MB/token -> bound {bound:.1} tok/s",
        bytes / 1e6
    );
    let out = json!({"model": dir.display().to_string(), "params": exact.config().param_count(), "prompt": PROMPT,
        "decode": DECODE, "reps": reps, "threads": rayon::current_num_threads(), "results": rows,
        "decode_ratio_exact_vs_stock": ratio(0, "decode_tok_s"), "decode_ratio_candle_vs_stock": ratio(1, "decode_tok_s"),
        "read_bandwidth_gb_s": bw, "decode_bytes_per_token": bytes, "decode_bound_tok_s": bound});
    let path = std::env::var_os("KAKEYA_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("x.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&out)?)?;
    Ok(())
}
