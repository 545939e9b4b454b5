//! `kakeya codec roundtrip` on `.f32` files and `kakeya codec encode|decode`: streamed through
//! bounded buffers by `kakeya_lattice::stream`. Output goes to a temporary file beside the
//! destination and is renamed into place only when everything succeeded, so a refused input
//! never leaves a half-written output behind (and `--in` may equal `--out`).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use kakeya_engine::codec::stream::{decode_stream, encode_stream, roundtrip_stream};
use kakeya_engine::codec::{Codec, Packer, Rotation, StreamStats, Variant, file};

use super::{io, parse_rotation};

/// Bytes of read-ahead for the packed reader (frame headers are small reads).
const READ_BUF: usize = 1 << 16;

#[derive(clap::Args)]
pub struct EncodeArgs {
    /// Lattice variant: e8 or d4.
    #[arg(long)]
    variant: Variant,
    /// q_range Q (1 ..= 32767 for packed storage).
    #[arg(long, allow_negative_numbers = true)]
    q: i64,
    /// Input rows: raw little-endian float32 (`.f32`, streamed) or a JSON array of arrays.
    #[arg(long = "in")]
    input: PathBuf,
    /// Packed output file (the `.kl` format in docs/CODEC.md).
    #[arg(long)]
    out: PathBuf,
    /// Row length D; required for `.f32` input, checked against JSON rows when given.
    #[arg(long)]
    dim: Option<usize>,
    /// Rotation kernel: `reference` (bit-exact with the float32 reference) or `fast` (FWHT).
    #[arg(long, default_value = "reference", value_parser = parse_rotation)]
    rotation: Rotation,
    /// Print a JSON summary (rows, bytes, bits per vector, escapes, seconds) on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DecodeArgs {
    /// Packed input file written by `kakeya codec encode`.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output rows: `.f32` raw little-endian float32 (streamed), anything else JSON.
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// Create `path`'s temporary sibling, run `body` on it, and rename it into place on success
/// (remove it on failure).
fn write_atomically<T>(
    path: &Path,
    body: impl FnOnce(BufWriter<File>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    // Large writes go straight through; the buffer only merges small frame headers.
    match body(BufWriter::with_capacity(READ_BUF, file)) {
        Ok(v) => {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn open(path: &Path) -> anyhow::Result<(File, u64)> {
    let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    Ok((f, len))
}

/// Check a `.f32` input's size against D before streaming it; returns its row count.
fn f32_rows(path: &Path, len: u64, dim: Option<usize>) -> anyhow::Result<(usize, u64)> {
    let Some(dim) = dim else {
        bail!("--dim is required for raw .f32 input {}", path.display());
    };
    if dim == 0 {
        bail!("--dim must be positive");
    }
    let stride = dim.checked_mul(4).context("--dim is too large")? as u64;
    if !len.is_multiple_of(stride) {
        bail!(
            "{} holds {len} bytes, not a multiple of 4·D = {stride} (D={dim}): not whole float32 rows",
            path.display()
        );
    }
    if len == 0 {
        bail!("{} holds no rows", path.display());
    }
    Ok((dim, len / stride))
}

fn report(json: bool, command: &str, extra: serde_json::Value, stats: &StreamStats, t: Instant) {
    if json {
        let mut v = serde_json::json!({
            "command": command,
            "rows": stats.rows,
            "bytes_in": stats.bytes_in,
            "bytes_out": stats.bytes_out,
            "escapes": stats.escapes,
            "seconds": t.elapsed().as_secs_f64(),
        });
        if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        println!("{v}");
    }
}

/// `.f32` → `.f32` round trip through the stream (the bit-exact default rotation unchanged).
pub fn roundtrip_f32(
    codec_args: (Variant, i64, Rotation),
    input: &Path,
    out: &Path,
    dim: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let (variant, q, rotation) = codec_args;
    let (f, len) = open(input)?;
    let (dim, _) = f32_rows(input, len, dim)?;
    let codec = Codec::new(variant, dim, q)?.with_rotation(rotation);
    let stats = write_atomically(out, |w| {
        roundtrip_stream(&codec, f, w, None).with_context(|| format!("in {}", input.display()))
    })?;
    let extra = serde_json::json!({"variant": variant, "q": q, "dim": dim, "rotation": rotation});
    report(json, "roundtrip", extra, &stats, t);
    Ok(())
}

pub fn encode(a: EncodeArgs) -> anyhow::Result<()> {
    let t = Instant::now();
    if a.q < 1 {
        bail!("q_range Q={} must be at least 1", a.q);
    }
    let stats;
    let dim;
    if io::is_f32(&a.input) {
        let (f, len) = open(&a.input)?;
        let (d, rows) = f32_rows(&a.input, len, a.dim)?;
        dim = d;
        let packer = Packer::new(Codec::new(a.variant, dim, a.q)?.with_rotation(a.rotation))?;
        stats = write_atomically(&a.out, |w| {
            encode_stream(&packer, f, rows, w, None)
                .with_context(|| format!("in {}", a.input.display()))
        })?;
    } else {
        let rows = io::read_rows(&a.input, a.dim)?;
        dim = rows.dim;
        let packer = Packer::new(Codec::new(a.variant, dim, a.q)?.with_rotation(a.rotation))?;
        let raw: Vec<u8> = rows.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let n = (rows.values.len() / dim) as u64;
        stats = write_atomically(&a.out, |w| {
            encode_stream(&packer, &raw[..], n, w, None)
                .with_context(|| format!("in {}", a.input.display()))
        })?;
    }
    let bits = if stats.rows == 0 {
        0.0
    } else {
        (stats.bytes_out - file::HEADER_BYTES as u64) as f64 * 8.0 / stats.rows as f64
    };
    let extra = serde_json::json!({
        "variant": a.variant, "q": a.q, "dim": dim, "rotation": a.rotation,
        "bits_per_vector": bits,
        "accounted_bits": kakeya_engine::codec::bits(a.variant, dim, a.q)?,
    });
    report(a.json, "encode", extra, &stats, t);
    Ok(())
}

pub fn decode(a: DecodeArgs) -> anyhow::Result<()> {
    let t = Instant::now();
    let (f, len) = open(&a.input)?;
    let reader = BufReader::with_capacity(READ_BUF, f);
    let ctx = || format!("in {}", a.input.display());
    let stats = if io::is_f32(&a.out) {
        write_atomically(&a.out, |w| {
            decode_stream(reader, w, Some(len)).with_context(ctx)
        })?
    } else {
        let mut raw = Vec::new();
        let stats = decode_stream(reader, &mut raw, Some(len)).with_context(ctx)?;
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let dim = read_header(&a.input)?.dim as usize;
        io::write_rows(&a.out, &values, dim)
            .with_context(|| format!("writing {}", a.out.display()))?;
        stats
    };
    let h = read_header(&a.input)?;
    let extra = serde_json::json!({
        "variant": h.variant, "q": h.q, "dim": h.dim, "rotation": h.rotation,
    });
    report(a.json, "decode", extra, &stats, t);
    Ok(())
}

fn read_header(path: &Path) -> anyhow::Result<file::Header> {
    let mut b = [0u8; file::HEADER_BYTES];
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    std::io::Read::read_exact(&mut f, &mut b)
        .with_context(|| format!("reading the header of {}", path.display()))?;
    Ok(file::Header::parse(&b)?)
}
