//! `kakeya codec ...` subcommands: bit counts, round trips of files, evaluations and
//! benchmarks of the lattice codec next to its baselines.

use std::path::PathBuf;

use anyhow::{Context, bail};
use kakeya_engine::codec::{self, Codec, Rotation, Variant};

mod bench;
mod eval;
mod files;
mod io;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the accounted bits per vector, (D/bd)·⌈b_real(Q)⌉ + 32.
    Bits(BitsArgs),
    /// Round-trip rows from a JSON or .f32 file and write the reconstruction (`.f32` to
    /// `.f32` streams in bounded memory on all cores).
    Roundtrip(RoundtripArgs),
    /// Encode rows (.f32 streamed, or JSON) into a packed `.kl` file (docs/CODEC.md).
    Encode(files::EncodeArgs),
    /// Decode a packed `.kl` file back to rows (.f32 streamed, or JSON).
    Decode(files::DecodeArgs),
    /// Evaluate every arm on seeded data and write a `codec_eval` report.
    Eval(eval::Args),
    /// Measure throughput per arm at 1 and all threads and write a `codec_bench` report.
    Bench(bench::Args),
}

#[derive(clap::Args)]
pub struct BitsArgs {
    /// Lattice variant: e8 (v1.5) or d4 (v1.4).
    #[arg(long)]
    variant: Variant,
    /// Vector dimension D (a power of two, a multiple of the block size).
    #[arg(long)]
    dim: usize,
    /// q_range Q (≥ 1).
    #[arg(long, allow_negative_numbers = true)]
    q: i64,
    /// Print a JSON object instead of the bare number.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RoundtripArgs {
    /// Lattice variant: e8 or d4.
    #[arg(long)]
    variant: Variant,
    /// q_range Q (≥ 1).
    #[arg(long, allow_negative_numbers = true)]
    q: i64,
    /// Input rows: a JSON array of arrays of numbers, or raw little-endian float32 (`.f32`).
    #[arg(long = "in")]
    input: PathBuf,
    /// Output rows, in the format its extension names (`.f32` raw, anything else JSON).
    #[arg(long)]
    out: PathBuf,
    /// Row length D; required for `.f32` input, checked against JSON rows when given.
    #[arg(long)]
    dim: Option<usize>,
    /// Rotation kernel: `reference` (bit-exact with the float32 reference) or `fast` (FWHT).
    #[arg(long, default_value = "reference", value_parser = parse_rotation)]
    rotation: Rotation,
    /// Print a JSON summary (rows, bytes, seconds) on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_rotation(s: &str) -> Result<Rotation, String> {
    match s {
        "reference" => Ok(Rotation::Reference),
        "fast" => Ok(Rotation::Fast),
        other => Err(format!(
            "unknown rotation `{other}` (expected reference or fast)"
        )),
    }
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Bits(a) => bits(a),
        Command::Roundtrip(a) => roundtrip(a),
        Command::Encode(a) => files::encode(a),
        Command::Decode(a) => files::decode(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

fn bits(a: BitsArgs) -> anyhow::Result<()> {
    let bits = codec::bits(a.variant, a.dim, a.q)?;
    if a.json {
        let real = codec::bits::block_bits_real(a.variant, a.q as u32);
        let packer = Codec::new(a.variant, a.dim, a.q)
            .ok()
            .and_then(|c| codec::Packer::new(c).ok());
        let classes = packer.as_ref().map(|p| p.class_names());
        let escape_bits = packer.as_ref().map(|p| p.escape_block_bits());
        println!(
            "{}",
            serde_json::json!({
                "variant": a.variant, "dim": a.dim, "q": a.q, "bits": bits,
                "block_bits": codec::bits::block_bits(a.variant, a.q as u32),
                "block_bits_real": real,
                "bits_per_value": bits as f64 / a.dim as f64,
                "compression_vs_bf16": 16.0 * a.dim as f64 / bits as f64,
                "pack_code_classes": classes,
                "pack_escape_block_bits": escape_bits,
            })
        );
    } else {
        println!("{bits}");
    }
    Ok(())
}

fn roundtrip(a: RoundtripArgs) -> anyhow::Result<()> {
    // Validate Q before touching the input so a bad Q is reported as such.
    if a.q < 1 {
        bail!("q_range Q={} must be at least 1", a.q);
    }
    if io::is_f32(&a.input) && io::is_f32(&a.out) {
        let codec = (a.variant, a.q, a.rotation);
        return files::roundtrip_f32(codec, &a.input, &a.out, a.dim, a.json);
    }
    let t = std::time::Instant::now();
    let rows = io::read_rows(&a.input, a.dim)?;
    let codec = Codec::new(a.variant, rows.dim, a.q)?.with_rotation(a.rotation);
    let out = codec::roundtrip_rows(&codec, &rows.values)?;
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        bail!(
            "row {} reconstructs to a non-finite value: its norm exceeds the fp16 range (65504) \
             of the codec's side scalar",
            i / rows.dim
        );
    }
    io::write_rows(&a.out, &out, rows.dim)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        let n = out.len() / rows.dim;
        println!(
            "{}",
            serde_json::json!({
                "command": "roundtrip", "rows": n, "variant": a.variant, "q": a.q,
                "dim": rows.dim, "rotation": a.rotation, "seconds": t.elapsed().as_secs_f64(),
            })
        );
    }
    Ok(())
}
