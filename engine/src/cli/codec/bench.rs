//! `kakeya codec bench`: throughput per arm and operation at 1 thread and all threads, next to
//! this machine's measured memory bandwidth. Writes a `codec_bench` report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use kakeya_engine::codec::baselines::{Affine, TurboQuant};
use kakeya_engine::codec::batch::{CHUNK_ROWS, Quantizer};
use kakeya_engine::codec::data::{Source, generate};
use kakeya_engine::codec::{Codec, Packer, Rotation, Variant};
use kakeya_engine::report::{self, ReportBuilder};
use rayon::prelude::*;
use serde_json::{Map, Value, json};

/// Report body version; the gate's `codec_bench` rules know this one.
pub const SCHEMA: u64 = 1;
/// Bytes per buffer of the bandwidth probe: far larger than any cache.
const PROBE_BYTES: usize = 256 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// Vector dimension D.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Rows per measurement (Gaussian, seeded).
    #[arg(long, default_value_t = 262_144)]
    rows: usize,
    /// q_range of the lattice arms.
    #[arg(long, default_value_t = 10)]
    q: i64,
    /// Timed repetitions per measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Seed for the data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the input rows as raw little-endian float32 (for the NumPy comparison).
    #[arg(long)]
    dump_rows: Option<PathBuf>,
    /// Write the report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the report JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Only arms whose name contains one of these (comma-separated), e.g. `e8,d4_q10_fast`.
    #[arg(long, value_delimiter = ',')]
    arms: Vec<String>,
    /// Only these thread counts (default: 1 and all cores).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
}

/// Best-of-`repeats` copy bandwidth in GB/s (bytes read + bytes written) on `threads`.
fn bandwidth(threads: usize, repeats: usize) -> anyhow::Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let n = PROBE_BYTES / 4;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; n];
    let chunk = n / threads.max(1) + 1;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(2) {
        let t = Instant::now();
        pool.install(|| {
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s))
        });
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
    }
    Ok(2.0 * PROBE_BYTES as f64 / best / 1e9)
}

struct BenchArm {
    name: String,
    imp: Box<dyn Quantizer + Send + Sync>,
}

fn bench_arms(dim: usize, q: i64) -> anyhow::Result<Vec<BenchArm>> {
    let mut v = Vec::new();
    for variant in [Variant::E8, Variant::D4] {
        for rot in [Rotation::Fast, Rotation::Reference] {
            let codec = Codec::new(variant, dim, q)?.with_rotation(rot);
            v.push(BenchArm {
                name: format!("{variant}_q{q}_{}", rot.name()),
                imp: Box::new(Packer::new(codec)?),
            });
        }
    }
    v.push(BenchArm {
        name: "turboquant_b4_fast".into(),
        imp: Box::new(TurboQuant::new(dim, 4, Rotation::Fast)?),
    });
    if dim.is_multiple_of(64) {
        v.push(BenchArm {
            name: "affine8".into(),
            imp: Box::new(Affine::new(dim, 8, 64)?),
        });
        v.push(BenchArm {
            name: "affine4".into(),
            imp: Box::new(Affine::new(dim, 4, 64)?),
        });
    }
    Ok(v)
}

/// CPU time the calling thread has spent running, from `/proc/thread-self/schedstat` (Linux;
/// None elsewhere). Unlike wall time it does not grow while other processes hold the core.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// Best of `repeats` timed calls after one untimed warm-up call (steady state: buffers are
/// allocated and touched, caches and branch predictors warm). Returns the best wall time,
/// the best CPU time of the calling thread (meaningful on a one-thread pool, where the work
/// runs on that thread) and the last result.
fn best_of<T>(
    repeats: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(f64, Option<f64>, T)> {
    let mut last = f()?;
    let mut best = f64::INFINITY;
    let mut best_cpu: Option<f64> = None;
    for _ in 0..repeats.max(1) {
        let c0 = thread_cpu_seconds();
        let t = Instant::now();
        last = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, thread_cpu_seconds()) {
            best_cpu = Some(best_cpu.map_or(b - a, |c: f64| c.min(b - a)));
        }
    }
    Ok((best.max(1e-9), best_cpu.map(|c| c.max(1e-9)), last))
}

/// Preallocated outputs, reused across repetitions so that no timed run pays for page faults
/// of fresh memory: the round-trip / decode output and one packed byte buffer per task.
struct Buffers {
    out: Vec<f32>,
    chunks: Vec<(Vec<u8>, Vec<usize>)>,
}

impl Buffers {
    fn new(rows: usize, dim: usize) -> Self {
        Buffers {
            out: vec![0.0; rows * dim],
            chunks: (0..rows.div_ceil(CHUNK_ROWS))
                .map(|_| (Vec::new(), Vec::new()))
                .collect(),
        }
    }

    fn roundtrip(&mut self, imp: &dyn Quantizer, x: &[f32]) -> anyhow::Result<()> {
        let step = CHUNK_ROWS * imp.dim();
        x.par_chunks(step)
            .zip(self.out.par_chunks_mut(step))
            .try_for_each(|(xc, oc)| imp.roundtrip_chunk(xc, oc))?;
        Ok(())
    }

    /// Encode into the per-task buffers; returns the packed bytes in total.
    fn encode(&mut self, imp: &dyn Quantizer, x: &[f32]) -> anyhow::Result<usize> {
        let step = CHUNK_ROWS * imp.dim();
        x.par_chunks(step)
            .zip(self.chunks.par_iter_mut())
            .try_for_each(|(xc, (bytes, lens))| {
                bytes.clear();
                lens.clear();
                imp.encode_chunk(xc, bytes, lens).map(|_| ())
            })?;
        Ok(self.chunks.iter().map(|c| c.0.len()).sum())
    }

    fn decode(&mut self, imp: &dyn Quantizer) -> anyhow::Result<()> {
        let step = CHUNK_ROWS * imp.dim();
        self.out
            .par_chunks_mut(step)
            .zip(self.chunks.par_iter())
            .try_for_each(|(oc, (bytes, lens))| imp.decode_chunk(bytes, lens, oc))?;
        Ok(())
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=4_000_000).contains(&a.rows),
        "--rows must be between 1 and 4000000"
    );
    anyhow::ensure!(
        (1..=20).contains(&a.repeats),
        "--repeats must be between 1 and 20"
    );
    let mut params = Map::new();
    for (k, v) in [
        ("dim", json!(a.dim)),
        ("rows", json!(a.rows)),
        ("q", json!(a.q)),
        ("repeats", json!(a.repeats)),
        ("seed", json!(a.seed)),
    ] {
        params.insert(k.into(), v);
    }
    let builder = ReportBuilder::start("codec_bench", "cpu", params);
    let mut arms = bench_arms(a.dim, a.q)?;
    if !a.arms.is_empty() {
        arms.retain(|arm| a.arms.iter().any(|f| arm.name.contains(f.as_str())));
    }
    let x = generate(Source::Gaussian, a.rows, a.dim, a.seed);
    if let Some(path) = &a.dump_rows {
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    let all = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut thread_counts = vec![1usize];
    if all > 1 {
        thread_counts.push(all);
    }
    if !a.threads.is_empty() {
        thread_counts = a.threads.clone();
    }
    let mut bw = Map::new();
    let mut results = Vec::new();
    let row_bytes = (a.dim * 4) as f64;
    for &threads in &thread_counts {
        let gbps = bandwidth(threads, a.repeats)?;
        bw.insert(threads.to_string(), json!(gbps));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        for arm in &arms {
            let imp: &dyn Quantizer = arm.imp.as_ref();
            let mut buf = Buffers::new(a.rows, a.dim);
            let (rt_s, rt_cpu, _) =
                pool.install(|| best_of(a.repeats, || buf.roundtrip(imp, &x)))?;
            let (enc_s, enc_cpu, packed_bytes) =
                pool.install(|| best_of(a.repeats, || buf.encode(imp, &x)))?;
            let (dec_s, dec_cpu, _) = pool.install(|| best_of(a.repeats, || buf.decode(imp)))?;
            // The decode must reproduce the round trip (checked outside the timings).
            let mut check = Buffers::new(a.rows, a.dim);
            check.roundtrip(imp, &x)?;
            anyhow::ensure!(
                check.out == buf.out,
                "{}: packed decode differs from the round trip",
                arm.name
            );
            let packed_per_vec = packed_bytes as f64 / a.rows as f64;
            for (op, secs, cpu, bytes_per_vec) in [
                ("roundtrip", rt_s, rt_cpu, 2.0 * row_bytes),
                ("encode", enc_s, enc_cpu, row_bytes + packed_per_vec),
                ("decode", dec_s, dec_cpu, packed_per_vec + row_bytes),
            ] {
                let vps = a.rows as f64 / secs;
                let gb = vps * bytes_per_vec / 1e9;
                let mut r = json!({
                    "arm": arm.name, "op": op, "threads": threads, "rows": a.rows,
                    "seconds": secs, "vectors_per_s": vps, "mvectors_per_s": vps / 1e6,
                    "bytes_per_vector": bytes_per_vec, "gb_per_s": gb,
                    "bandwidth_gb_per_s": gbps, "bandwidth_fraction": gb / gbps,
                });
                // On one thread the CPU time of the worker is a load-independent figure.
                if let (1, Some(c)) = (threads, cpu) {
                    r["cpu_seconds"] = json!(c);
                    r["cpu_mvectors_per_s"] = json!(a.rows as f64 / c / 1e6);
                }
                results.push(r);
            }
        }
    }
    let body = json!({
        "schema": SCHEMA, "dim": a.dim, "rows": a.rows, "q": a.q, "repeats": a.repeats,
        "threads": thread_counts, "bandwidth_gb_per_s": bw,
        "bandwidth_method": "best-of copy of a 256 MiB f32 buffer; bytes read + bytes written",
        "kernel": kakeya_engine::codec::rows::kernel().name(),
        "timing_method": "one untimed warm-up, then best of `repeats`; outputs preallocated and reused",
        "results": results,
    });
    let report = builder.finish(body)?;
    if let Some(out) = &a.out {
        report::write_report(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(report: &Value) {
    println!(
        "row-parallel kernel: {}",
        report["kernel"].as_str().unwrap_or("?")
    );
    if let Some(bw) = report["bandwidth_gb_per_s"].as_object() {
        for (t, v) in bw {
            println!(
                "memory bandwidth (copy, {t} thread(s)): {:.2} GB/s",
                v.as_f64().unwrap_or(0.0)
            );
        }
    }
    println!(
        "{:<24} {:<10} {:>7} {:>12} {:>9} {:>8} {:>14}",
        "arm", "op", "threads", "M vectors/s", "GB/s", "% bw", "M vec/CPU-s"
    );
    for r in report["results"].as_array().into_iter().flatten() {
        let cpu = r["cpu_mvectors_per_s"]
            .as_f64()
            .map_or_else(|| "—".to_string(), |v| format!("{v:.3}"));
        println!(
            "{:<24} {:<10} {:>7} {:>12.3} {:>9.3} {:>7.1}% {:>14}",
            r["arm"].as_str().unwrap_or("?"),
            r["op"].as_str().unwrap_or("?"),
            r["threads"],
            r["mvectors_per_s"].as_f64().unwrap_or(0.0),
            r["gb_per_s"].as_f64().unwrap_or(0.0),
            100.0 * r["bandwidth_fraction"].as_f64().unwrap_or(0.0),
            cpu,
        );
    }
}
