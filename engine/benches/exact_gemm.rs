//! The exact matrix multiply alone, per instruction set and weight dtype: weight-stream
//! bandwidth of one row (decode), and GFLOP/s of a verify block (8 rows) and a prefill chunk
//! (256 rows), on a 1024 → 2816 projection like the 152M model's MLP.
//!
//! `cargo bench -p kakeya-engine --bench exact_gemm` (env KAKEYA_BENCH_OUT for the JSON).

use std::time::Instant;

use kakeya_engine::model::exact::elem::{Bf16, Elem, F16};
use kakeya_engine::model::exact::{Isa, Packed, isa, matmul_on};

const _: Option<Isa> = None;
use serde_json::json;

fn data(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i as f32) * 0.618).sin() * 0.05).collect()
}

fn best_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn measure<E: Elem>(label: &str, isa: Isa, w: &Packed<E>, k: usize, n: usize) -> serde_json::Value {
    let mut row = json!({"dtype": label, "isa": format!("{isa:?}")});
    for m in [1usize, 2, 8, 256] {
        let x = data(m * k);
        let reps = if m == 256 { 5 } else { 40 };
        let s = best_secs(reps, || {
            std::hint::black_box(matmul_on(isa, &x, m, w));
        });
        let gflops = 2.0 * (m * k * n) as f64 / s / 1e9;
        let gbs = (k * n * E::BYTES) as f64 / s / 1e9;
        println!(
            "{label:<5} {:<9} m={m:<4} {:>9.3} ms {gflops:>8.1} GFLOP/s {gbs:>7.1} GB/s of weights",
            format!("{isa:?}"),
            s * 1e3
        );
        row[format!("m{m}_ms")] = json!(s * 1e3);
        row[format!("m{m}_gflops")] = json!(gflops);
        row[format!("m{m}_weight_gb_s")] = json!(gbs);
    }
    row
}

fn main() {
    // Several matrices, so one row's weights do not sit in the caches between calls.
    let (k, n) = (1024usize, 2816 * 8);
    let w = data(n * k);
    let f32p = Packed::from_rows(&w, n, k);
    let f16p = Packed::from_rows(
        &w.iter()
            .map(|v| F16(half::f16::from_f32(*v).to_bits()))
            .collect::<Vec<_>>(),
        n,
        k,
    );
    let bf16p = Packed::from_rows(
        &w.iter()
            .map(|v| Bf16(half::bf16::from_f32(*v).to_bits()))
            .collect::<Vec<_>>(),
        n,
        k,
    );
    println!(
        "threads {}, best ISA {:?}, [{k} -> {n}]",
        rayon::current_num_threads(),
        isa()
    );
    let mut rows = Vec::new();
    // Only the copy this CPU runs: the portable copy on x86 has no hardware FMA to call.
    let i = isa();
    rows.push(measure("f32", i, &f32p, k, n));
    rows.push(measure("f16", i, &f16p, k, n));
    rows.push(measure("bf16", i, &bf16p, k, n));
    if let Ok(out) = std::env::var("KAKEYA_BENCH_OUT") {
        let _ = std::fs::write(
            out,
            serde_json::to_string_pretty(&json!({"results": rows})).unwrap_or_default(),
        );
    }
}
