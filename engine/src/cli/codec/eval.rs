//! `kakeya codec eval`: every arm on the same seeded data, one `codec_eval` report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use kakeya_engine::codec::baselines::{Affine, Identity, TurboQuant};
use kakeya_engine::codec::batch::{Quantizer, decode_with, encode_with, roundtrip_with};
use kakeya_engine::codec::data::{Source, generate};
use kakeya_engine::codec::{self, Codec, Packer, Rotation, Variant};
use kakeya_engine::report::{self, ReportBuilder};
use serde_json::{Map, Value, json};

/// The lattice operating points every evaluation covers (spec §1.4's canonical Q).
pub const LATTICE_Q: [u32; 4] = [4, 10, 38, 152];
/// Report body version; the gate's `codec_eval` rules know this one.
pub const SCHEMA: u64 = 1;
const MAX_ROWS: usize = 1_000_000;

#[derive(clap::Args)]
pub struct Args {
    /// Vector dimension D (power of two, ≥ 64 so the affine group of 64 fits).
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Rows per data source.
    #[arg(long, default_value_t = 4096)]
    rows: usize,
    /// Seed for the synthetic data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rotation kernel for the lattice and TurboQuant arms.
    #[arg(long, default_value = "reference", value_parser = super::parse_rotation)]
    rotation: Rotation,
    /// Where to write the report.
    #[arg(long, default_value = "codec_eval.json")]
    out: PathBuf,
}

/// One arm: its name, how it is described in the report, and its implementation.
pub struct Arm {
    pub name: String,
    pub meta: Value,
    pub imp: Box<dyn Quantizer + Send + Sync>,
}

/// Every arm at dimension `dim`: identity, affine8/4, TurboQuant b∈{3,4}, D4 and E8 at every Q.
pub fn arms(dim: usize, rotation: Rotation) -> anyhow::Result<Vec<Arm>> {
    let mut v = vec![
        Arm {
            name: "identity".into(),
            meta: json!({"family": "identity"}),
            imp: Box::new(Identity { dim }),
        },
        Arm {
            name: "affine8".into(),
            meta: json!({"family": "affine", "b": 8, "group": 64}),
            imp: Box::new(Affine::new(dim, 8, 64)?),
        },
        Arm {
            name: "affine4".into(),
            meta: json!({"family": "affine", "b": 4, "group": 64}),
            imp: Box::new(Affine::new(dim, 4, 64)?),
        },
    ];
    for b in [3u32, 4] {
        v.push(Arm {
            name: format!("turboquant_b{b}"),
            meta: json!({"family": "turboquant", "b": b}),
            imp: Box::new(TurboQuant::new(dim, b, rotation)?),
        });
    }
    for variant in [Variant::D4, Variant::E8] {
        for q in LATTICE_Q {
            let codec = Codec::new(variant, dim, i64::from(q))?.with_rotation(rotation);
            v.push(Arm {
                name: format!("{variant}_q{q}"),
                meta: json!({"family": "lattice", "variant": variant, "q": q}),
                imp: Box::new(Packer::new(codec)?),
            });
        }
    }
    Ok(v)
}

fn measure(arm: &Arm, x: &[f32], dim: usize) -> anyhow::Result<Value> {
    let rows = x.len() / dim;
    let rt = roundtrip_with(arm.imp.as_ref(), x)?;
    let t0 = Instant::now();
    let packed = encode_with(arm.imp.as_ref(), x)?;
    let enc_s = t0.elapsed().as_secs_f64().max(1e-9);
    let t1 = Instant::now();
    let decoded = decode_with(arm.imp.as_ref(), &packed)?;
    let dec_s = t1.elapsed().as_secs_f64().max(1e-9);
    let mismatches = decoded
        .iter()
        .zip(&rt)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    let (mut num, mut den, mut max_err) = (0.0f64, 0.0f64, 0.0f64);
    for (a, b) in x.iter().zip(&rt) {
        let e = f64::from(*a) - f64::from(*b);
        num += e * e;
        den += f64::from(*a) * f64::from(*a);
        max_err = max_err.max(e.abs());
    }
    let rel = if den > 0.0 { num / den } else { 0.0 };
    let with_escape = packed
        .offsets
        .windows(2)
        .filter(|w| (w[1] - w[0]) * 8 > arm.imp.accounted_bits().div_ceil(8) as usize * 8)
        .count();
    let accounted = arm.imp.accounted_bits();
    let mut m = match &arm.meta {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let extra = json!({
        "arm": arm.name,
        "accounted_bits": accounted,
        "accounted_bits_per_value": accounted as f64 / dim as f64,
        "packed_bytes": packed.bytes.len(),
        "packed_bits_per_vector": packed.bits_per_vector(),
        "packed_bits_per_value": packed.bits_per_vector() / dim as f64,
        "escaped_blocks": packed.escapes,
        "vectors_with_escapes": with_escape,
        "rel_mse": rel,
        "max_abs_error": max_err,
        "packed_decode_equals_roundtrip": mismatches == 0,
        "packed_mismatched_values": mismatches,
        "encode_seconds": enc_s,
        "decode_seconds": dec_s,
        "encode_vectors_per_s": rows as f64 / enc_s,
        "decode_vectors_per_s": rows as f64 / dec_s,
    });
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    Ok(Value::Object(m))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.dim >= 64 && a.dim.is_power_of_two(),
        "--dim {} must be a power of two ≥ 64 (the affine arms use groups of 64)",
        a.dim
    );
    anyhow::ensure!(
        (1..=MAX_ROWS).contains(&a.rows),
        "--rows {} must be between 1 and {MAX_ROWS}",
        a.rows
    );
    let mut params = Map::new();
    params.insert("dim".into(), a.dim.into());
    params.insert("rows".into(), a.rows.into());
    params.insert("seed".into(), a.seed.into());
    params.insert("rotation".into(), a.rotation.name().into());
    let builder = ReportBuilder::start("codec_eval", "cpu", params);
    let arms = arms(a.dim, a.rotation)?;
    let mut sources = Vec::new();
    for source in Source::ALL {
        let x = generate(source, a.rows, a.dim, a.seed);
        let mut results = Vec::new();
        for arm in &arms {
            results.push(measure(arm, &x, a.dim).with_context(|| format!("arm {}", arm.name))?);
        }
        sources.push(json!({"source": source.name(), "arms": results}));
    }
    let formula: Vec<Value> = [Variant::D4, Variant::E8]
        .iter()
        .flat_map(|&v| {
            LATTICE_Q.iter().map(move |&q| {
                json!({"variant": v, "q": q, "bits": codec::bits(v, a.dim, i64::from(q)).unwrap_or(0)})
            })
        })
        .collect();
    let body = json!({
        "schema": SCHEMA,
        "dim": a.dim,
        "rows": a.rows,
        "seed": a.seed,
        "rotation": a.rotation.name(),
        "threads": rayon::current_num_threads(),
        "lattice_q": LATTICE_Q,
        "bits_formula": formula,
        "sources": sources,
    });
    let report = builder.finish(body)?;
    report::write_report(&a.out, &report)
        .with_context(|| format!("writing {}", a.out.display()))?;
    print_summary(&report);
    Ok(())
}

fn print_summary(report: &Value) {
    let Some(sources) = report["sources"].as_array() else {
        return;
    };
    for s in sources {
        println!("{}", s["source"].as_str().unwrap_or("?"));
        println!(
            "  {:<16} {:>9} {:>9} {:>11} {:>10} {:>10}",
            "arm", "bits/val", "packed", "rel-MSE", "enc Mv/s", "dec Mv/s"
        );
        for a in s["arms"].as_array().into_iter().flatten() {
            println!(
                "  {:<16} {:>9.4} {:>9.4} {:>11.3e} {:>10.3} {:>10.3}",
                a["arm"].as_str().unwrap_or("?"),
                a["accounted_bits_per_value"].as_f64().unwrap_or(0.0),
                a["packed_bits_per_value"].as_f64().unwrap_or(0.0),
                a["rel_mse"].as_f64().unwrap_or(0.0),
                a["encode_vectors_per_s"].as_f64().unwrap_or(0.0) / 1e6,
                a["decode_vectors_per_s"].as_f64().unwrap_or(0.0) / 1e6,
            );
        }
    }
}
