//! `kakeya bench model`: prefill and decode tokens/s of one model on this machine, the cost
//! of a verify block of L tokens in single steps, the read-bandwidth bound of decode, and —
//! when a GGUF copy of the same weights and llama.cpp's Python binding are at hand — the
//! llama.cpp peer measured in the same run, with the ratios.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use kakeya_engine::bench::{
    block_costs, decode_bytes_per_token, median, read_bandwidth_gb_s, time_model,
};
use kakeya_engine::model::{CausalLm, KernelChoice, LoadOptions, parse_dtype};
use kakeya_engine::report::{self, ReportBuilder};
use serde_json::{Map, Value, json};

/// The peer's driver script, shipped inside the binary so the command works from anywhere.
const PEER_SCRIPT: &str = include_str!("../../benches/peer/llama_cpp_bench.py");

#[derive(clap::Args)]
pub struct Args {
    /// Model directory (config.json + safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Prompt tokens prefilled in one forward.
    #[arg(long, default_value_t = 256)]
    prompt_len: usize,
    /// Tokens decoded one at a time after the prompt.
    #[arg(long, default_value_t = 64)]
    decode: usize,
    /// Repetitions of every timing (the table shows medians; ratios to the peer use the
    /// best run of each side).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Weight dtype: f32, f16 or bf16. The exact kernels stream f16/bf16 weights and widen
    /// them to f32 on the fly; candle's kernels compute in that dtype.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Kernels to measure, comma-separated: `exact` (batch-invariant, the default path)
    /// and/or `candle` (`--candle-kernels`).
    #[arg(long, value_delimiter = ',', default_value = "exact,candle")]
    kernels: Vec<String>,
    /// Block sizes L whose one-forward cost is measured in single steps.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"
    )]
    blocks: Vec<usize>,
    /// A GGUF copy of the same weights (engine/benches/peer/to_gguf.py writes one): runs
    /// llama.cpp on it before and after our measurements and prints our/peer ratios.
    #[arg(long)]
    peer_gguf: Option<PathBuf>,
    /// Python interpreter with `llama-cpp-python` installed (default:
    /// ~/.cache/peer-venv/bin/python, where docs/BENCHMARKS.md installs it).
    #[arg(long)]
    peer_python: Option<PathBuf>,
    /// JSON report path.
    #[arg(long, default_value = "bench_model.json")]
    out: PathBuf,
}

/// One side's best and median figures.
struct Figures {
    prefill_best: f64,
    decode_best: f64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.reps == 0 || a.prompt_len == 0 {
        bail!("--reps and --prompt-len must be at least 1");
    }
    if a.blocks.iter().any(|&l| l == 0 || l > 256) {
        bail!("--blocks must be between 1 and 256");
    }
    let dtype = parse_dtype(&a.dtype)?;
    let kernels = a
        .kernels
        .iter()
        .map(|k| match k.as_str() {
            "exact" => Ok(("exact", KernelChoice::Auto)),
            "candle" => Ok(("candle", KernelChoice::Candle)),
            other => bail!("unknown kernels `{other}` (expected exact or candle)"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let peer = a
        .peer_gguf
        .as_ref()
        .map(|g| Peer::new(g, a.peer_python.clone()))
        .transpose()?;
    let threads = rayon::current_num_threads();
    let mut params = Map::new();
    params.insert("model".into(), a.model.display().to_string().into());
    params.insert("prompt_len".into(), a.prompt_len.into());
    params.insert("decode".into(), a.decode.into());
    params.insert("reps".into(), a.reps.into());
    params.insert("dtype".into(), a.dtype.clone().into());
    params.insert("threads".into(), threads.into());
    let mut builder = ReportBuilder::start("model_bench", "cpu", params);
    for (n, s) in kakeya_engine::model::load::digests(&a.model)? {
        builder.model_digest(&n, &s);
    }
    let mut peer_runs = Vec::new();
    if let Some(p) = &peer {
        eprintln!("llama.cpp peer: first run");
        peer_runs.push(p.run(a.prompt_len, a.decode, threads, a.reps)?);
    }
    println!(
        "{:<8} {:>5} {:>12} {:>12} {:>9} | block cost in single steps, L = {}",
        "kernels",
        "dtype",
        "prefill t/s",
        "decode t/s",
        "ms/tok",
        a.blocks
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut rows = Vec::new();
    let mut ours = Vec::new();
    for (label, k) in &kernels {
        let m = CausalLm::load(
            &a.model,
            &LoadOptions {
                kernels: *k,
                dtype: Some(dtype),
                ..Default::default()
            },
        )?;
        time_model(&m, 16, 4, 4, 99)?;
        let runs = (0..a.reps)
            .map(|r| time_model(&m, a.prompt_len, a.decode, 1, r as u64))
            .collect::<Result<Vec<_>, _>>()?;
        let blocks = block_costs(&m, a.prompt_len, &a.blocks, a.reps, 7)?;
        let rate = |f: &dyn Fn(&kakeya_engine::bench::ModelTimings) -> f64| -> Vec<f64> {
            runs.iter().map(f).collect()
        };
        let prefill = rate(&|r| r.prefill_tokens as f64 / r.prefill_s);
        let decode = rate(&|r| r.decode_tokens as f64 / r.decode_s.max(1e-12));
        let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let (p_med, d_med) = (median(prefill.clone()), median(decode.clone()));
        println!(
            "{label:<8} {:>5} {p_med:>12.1} {d_med:>12.1} {:>9.2} | {}",
            a.dtype,
            1e3 / d_med.max(1e-12),
            blocks
                .iter()
                .map(|(_, c)| format!("{c:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        ours.push((
            *label,
            Figures {
                prefill_best: best(&prefill),
                decode_best: best(&decode),
            },
        ));
        rows.push(json!({"kernels": label, "dtype": a.dtype, "prefill_tok_s": p_med,
            "decode_tok_s": d_med, "prefill_tok_s_best": best(&prefill),
            "decode_tok_s_best": best(&decode),
            "block_cost_in_single_steps": blocks.iter().map(|(l, c)| json!({"block": l, "cost": c})).collect::<Vec<_>>(),
            "runs": runs}));
    }
    if let Some(p) = &peer {
        eprintln!("llama.cpp peer: second run");
        peer_runs.push(p.run(a.prompt_len, a.decode, threads, a.reps)?);
    }
    let m = CausalLm::load(
        &a.model,
        &LoadOptions {
            dtype: Some(dtype),
            ..Default::default()
        },
    )?;
    let bw = read_bandwidth_gb_s(1 << 30, 3);
    let bytes = decode_bytes_per_token(&m, a.prompt_len + a.decode / 2);
    println!(
        "read bandwidth {bw:.1} GB/s, decode reads >= {:.1} MB/token -> bound {:.1} tok/s",
        bytes / 1e6,
        bw * 1e9 / bytes
    );
    let mut body = json!({"params": m.config().param_count(), "dtype": a.dtype, "results": rows,
        "read_bandwidth_gb_s": bw, "decode_bytes_per_token": bytes,
        "decode_bound_tok_s": bw * 1e9 / bytes, "threads": threads});
    if let Some(p) = &peer {
        body["peer"] = peer_summary(p, &peer_runs, &ours);
    }
    report::write_report(&a.out, &builder.finish(body)?)?;
    Ok(())
}

/// Best of the peer's runs, and our best / its best per kernel path; printed and returned.
fn peer_summary(p: &Peer, runs: &[Value], ours: &[(&str, Figures)]) -> Value {
    let best = |key: &str| {
        runs.iter()
            .filter_map(|r| r[key].as_f64())
            .fold(0.0, f64::max)
    };
    let (pp, pd) = (best("prefill_tok_s"), best("decode_tok_s"));
    println!(
        "llama.cpp {:>17.1} {pd:>12.1}   (best of {} runs, {})",
        pp,
        runs.len(),
        p.gguf.display()
    );
    let mut ratios = Vec::new();
    for (label, f) in ours {
        let (rp, rd) = (
            f.prefill_best / pp.max(1e-12),
            f.decode_best / pd.max(1e-12),
        );
        println!("ours/llama.cpp, {label}: prefill {rp:.2}x, decode {rd:.2}x (best vs best)");
        ratios.push(json!({"kernels": label, "prefill_ratio": rp, "decode_ratio": rd}));
    }
    json!({"engine": "llama.cpp", "gguf": p.gguf.display().to_string(), "prefill_tok_s": pp,
        "decode_tok_s": pd, "runs": runs, "ratios": ratios})
}

struct Peer {
    gguf: PathBuf,
    python: PathBuf,
    script: PathBuf,
}

impl Peer {
    fn new(gguf: &Path, python: Option<PathBuf>) -> anyhow::Result<Self> {
        if !gguf.is_file() {
            bail!("--peer-gguf {}: no such file", gguf.display());
        }
        let python = match python {
            Some(p) => p,
            None => {
                let home =
                    std::env::var_os("HOME").context("HOME is not set; pass --peer-python")?;
                PathBuf::from(home).join(".cache/peer-venv/bin/python")
            }
        };
        let probe = Command::new(&python)
            .args(["-c", "import llama_cpp"])
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        if !probe.status.success() {
            bail!(
                "{} cannot import llama_cpp: install the peer as docs/BENCHMARKS.md says \
                 (\"The llama.cpp peer\")\n{}",
                python.display(),
                String::from_utf8_lossy(&probe.stderr)
            );
        }
        let script = std::env::temp_dir().join(format!("kakeya-peer-{}.py", std::process::id()));
        std::fs::write(&script, PEER_SCRIPT)
            .with_context(|| format!("writing {}", script.display()))?;
        Ok(Peer {
            gguf: gguf.to_path_buf(),
            python,
            script,
        })
    }

    fn run(
        &self,
        prompt_len: usize,
        decode: usize,
        threads: usize,
        reps: usize,
    ) -> anyhow::Result<Value> {
        let out = Command::new(&self.python)
            .arg(&self.script)
            .arg(&self.gguf)
            .args([prompt_len, decode, threads, reps].map(|v| v.to_string()))
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        if !out.status.success() {
            bail!(
                "the llama.cpp peer failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        serde_json::from_str(line).with_context(|| format!("the peer printed {line:?}, not JSON"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}
