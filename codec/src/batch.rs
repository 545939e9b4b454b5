//! `[N, D]` row-major batches across all cores (rayon's global pool, or whichever pool the
//! caller installs). Rows are independent (the codec is stateless per vector), so a batch
//! result equals the per-row results exactly, whatever the thread count.

use rayon::prelude::*;

use crate::pack::Packer;
use crate::{Codec, CodecError, Side};

/// Rows per parallel task: large enough to amortise scheduling, small enough to balance.
pub const CHUNK_ROWS: usize = 256;

/// Rows quantized (or unpacked) before they are packed (or decoded): 64 rows of D = 128 are
/// 32 KiB of lattice points, which stay in cache between the two halves.
const PACK_SLAB_ROWS: usize = 64;

/// Anything that stores rows as bytes and reads them back: the lattice codec's [`Packer`] and
/// the baselines. Batch helpers below work on any of them.
pub trait Quantizer: Sync {
    /// Row length.
    fn dim(&self) -> usize;
    /// Bits per vector the arm's own accounting claims.
    fn accounted_bits(&self) -> u64;
    /// Encode whole rows, appending each row's bytes to `out` and its byte length to `lens`.
    /// Returns the number of escaped blocks (0 for arms without escapes).
    fn encode_chunk(
        &self,
        x: &[f32],
        out: &mut Vec<u8>,
        lens: &mut Vec<usize>,
    ) -> Result<u64, CodecError>;
    /// Decode consecutive rows from `bytes` (`lens` gives each row's byte length).
    fn decode_chunk(&self, bytes: &[u8], lens: &[usize], out: &mut [f32])
    -> Result<(), CodecError>;
    /// Round trip without materialising bytes.
    fn roundtrip_chunk(&self, x: &[f32], out: &mut [f32]) -> Result<(), CodecError>;
}

/// A packed batch: row i occupies `bytes[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedRows {
    /// Row length D.
    pub dim: usize,
    /// All rows' bytes, back to back.
    pub bytes: Vec<u8>,
    /// Row i is `bytes[offsets[i]..offsets[i + 1]]` (rows + 1 entries).
    pub offsets: Vec<usize>,
    /// Escaped blocks over the whole batch.
    pub escapes: u64,
}

impl PackedRows {
    /// Rows in the batch.
    ///
    /// ```
    /// use kakeya_lattice::{Codec, Packer, Variant, encode_rows};
    /// let p = Packer::new(Codec::new(Variant::D4, 8, 4)?)?;
    /// assert_eq!(encode_rows(&p, &[0.5; 24])?.rows(), 3);
    /// # Ok::<(), kakeya_lattice::CodecError>(())
    /// ```
    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Bits actually stored per vector, on average (the offset index is not counted: a KV
    /// cache addresses tokens its own way).
    pub fn bits_per_vector(&self) -> f64 {
        if self.rows() == 0 {
            0.0
        } else {
            self.bytes.len() as f64 * 8.0 / self.rows() as f64
        }
    }
}

fn check(dim: usize, len: usize) -> Result<usize, CodecError> {
    if dim == 0 || !len.is_multiple_of(dim) {
        return Err(CodecError::RaggedBuffer { len, dim });
    }
    Ok(len / dim)
}

/// Round-trip every row of `x` (row-major, D = `codec.dim()`) on all cores.
pub fn roundtrip_rows(codec: &Codec, x: &[f32]) -> Result<Vec<f32>, CodecError> {
    let mut out = vec![0.0f32; x.len()];
    roundtrip_rows_into(codec, x, &mut out)?;
    Ok(out)
}

/// As [`roundtrip_rows`], into a caller-provided buffer of the same length.
pub fn roundtrip_rows_into(codec: &Codec, x: &[f32], out: &mut [f32]) -> Result<(), CodecError> {
    check(codec.dim(), x.len())?;
    if out.len() != x.len() {
        return Err(CodecError::RowLength {
            len: out.len(),
            dim: x.len(),
        });
    }
    let step = CHUNK_ROWS * codec.dim();
    x.par_chunks(step)
        .zip(out.par_chunks_mut(step))
        .try_for_each(|(xc, oc)| codec.roundtrip_into(xc, oc))
}

/// Encode every row with any [`Quantizer`] on all cores.
pub fn encode_with<Q: Quantizer + ?Sized>(arm: &Q, x: &[f32]) -> Result<PackedRows, CodecError> {
    let dim = arm.dim();
    check(dim, x.len())?;
    let parts: Vec<(Vec<u8>, Vec<usize>, u64)> = x
        .par_chunks(CHUNK_ROWS * dim)
        .map(|xc| {
            let mut bytes = Vec::new();
            let mut lens = Vec::with_capacity(xc.len() / dim);
            let esc = arm.encode_chunk(xc, &mut bytes, &mut lens)?;
            Ok((bytes, lens, esc))
        })
        .collect::<Result<_, CodecError>>()?;
    let total: usize = parts.iter().map(|p| p.0.len()).sum();
    let mut packed = PackedRows {
        dim,
        bytes: Vec::with_capacity(total),
        offsets: Vec::with_capacity(x.len() / dim + 1),
        escapes: 0,
    };
    packed.offsets.push(0);
    for (bytes, lens, esc) in parts {
        packed.bytes.extend_from_slice(&bytes);
        for l in lens {
            let last = packed.offsets.last().copied().unwrap_or(0);
            packed.offsets.push(last + l);
        }
        packed.escapes += esc;
    }
    Ok(packed)
}

/// Decode a batch produced by [`encode_with`] with the same arm, on all cores.
pub fn decode_with<Q: Quantizer + ?Sized>(
    arm: &Q,
    packed: &PackedRows,
) -> Result<Vec<f32>, CodecError> {
    let dim = arm.dim();
    let rows = packed.rows();
    if packed.dim != dim || packed.offsets.last().copied().unwrap_or(0) != packed.bytes.len() {
        return Err(CodecError::Malformed {
            reason: "offsets or dimension do not match the packed bytes".into(),
        });
    }
    if packed.offsets.windows(2).any(|w| w[1] < w[0]) {
        return Err(CodecError::Malformed {
            reason: "offsets are not increasing".into(),
        });
    }
    let mut out = vec![0.0f32; rows * dim];
    out.par_chunks_mut(CHUNK_ROWS * dim)
        .enumerate()
        .try_for_each(|(ci, oc)| {
            let first = ci * CHUNK_ROWS;
            let n = oc.len() / dim;
            let offs = &packed.offsets[first..=first + n];
            let lens: Vec<usize> = offs.windows(2).map(|w| w[1] - w[0]).collect();
            arm.decode_chunk(&packed.bytes[offs[0]..offs[n]], &lens, oc)
        })?;
    Ok(out)
}

/// Round-trip every row with any [`Quantizer`] on all cores, without materialising bytes.
pub fn roundtrip_with<Q: Quantizer + ?Sized>(arm: &Q, x: &[f32]) -> Result<Vec<f32>, CodecError> {
    let dim = arm.dim();
    check(dim, x.len())?;
    let mut out = vec![0.0f32; x.len()];
    x.par_chunks(CHUNK_ROWS * dim)
        .zip(out.par_chunks_mut(CHUNK_ROWS * dim))
        .try_for_each(|(xc, oc)| arm.roundtrip_chunk(xc, oc))?;
    Ok(out)
}

/// Encode rows to packed lattice storage on all cores.
pub fn encode_rows(packer: &Packer, x: &[f32]) -> Result<PackedRows, CodecError> {
    encode_with(packer, x)
}

/// Decode packed lattice storage; equals [`roundtrip_rows`] bit for bit.
pub fn decode_rows(packer: &Packer, packed: &PackedRows) -> Result<Vec<f32>, CodecError> {
    decode_with(packer, packed)
}

impl Quantizer for Packer {
    fn dim(&self) -> usize {
        self.codec().dim()
    }

    fn accounted_bits(&self) -> u64 {
        self.codec().bits()
    }

    fn encode_chunk(
        &self,
        x: &[f32],
        out: &mut Vec<u8>,
        lens: &mut Vec<usize>,
    ) -> Result<u64, CodecError> {
        let codec = self.codec();
        let dim = codec.dim();
        codec.check_rows(x.len())?;
        if self.plan().is_some() {
            out.reserve(x.len() / dim * self.base_bytes());
            return Ok(crate::rows::pack(crate::rows::kernel(), self, x, out, lens));
        }
        // Quantize a cache-sized slab of rows at a time, then pack it: the lattice points never
        // leave L1/L2 and no chunk-sized buffer is allocated.
        let slab = PACK_SLAB_ROWS.min(x.len() / dim).max(1);
        let mut z = vec![0.0f32; slab * dim];
        let mut sides = vec![
            Side {
                norm: half::f16::ZERO,
                qmax: half::f16::ZERO
            };
            slab
        ];
        out.reserve(x.len() / dim * self.base_bytes());
        let mut escapes = 0u64;
        for xs in x.chunks(slab * dim) {
            let rows = xs.len() / dim;
            let (zs, ss) = (&mut z[..xs.len()], &mut sides[..rows]);
            codec.quantize_rows(xs, zs, ss)?;
            for (zr, side) in zs.chunks_exact(dim).zip(ss.iter()) {
                let st = self.pack_point(*side, zr, out);
                lens.push(st.bytes);
                escapes += u64::from(st.escapes);
            }
        }
        Ok(escapes)
    }

    fn decode_chunk(
        &self,
        bytes: &[u8],
        lens: &[usize],
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        let codec = self.codec();
        let dim = codec.dim();
        if self.plan().is_some() {
            codec.check_rows(out.len())?;
            return crate::rows::unpack(crate::rows::kernel(), self, bytes, lens, out);
        }
        let slab = PACK_SLAB_ROWS;
        let mut sides = Vec::with_capacity(slab.min(lens.len()));
        let mut at = 0usize;
        for (os, ls) in out.chunks_mut(slab * dim).zip(lens.chunks(slab)) {
            sides.clear();
            for (zr, &len) in os.chunks_exact_mut(dim).zip(ls) {
                let slice = bytes
                    .get(at..at + len)
                    .ok_or_else(|| CodecError::Malformed {
                        reason: "row extends past the packed bytes".into(),
                    })?;
                let (side, used) = self.unpack_point(slice, zr)?;
                if used != len {
                    return Err(CodecError::Malformed {
                        reason: format!("row holds {len} bytes but its codes use {used}"),
                    });
                }
                sides.push(side);
                at += len;
            }
            if sides.len() * dim != os.len() {
                return Err(CodecError::Malformed {
                    reason: "fewer row lengths than rows".into(),
                });
            }
            codec.dequantize_rows(&sides, os)?;
        }
        Ok(())
    }

    fn roundtrip_chunk(&self, x: &[f32], out: &mut [f32]) -> Result<(), CodecError> {
        self.codec().roundtrip_into(x, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Variant;

    #[test]
    fn batch_equals_rows_and_pack_equals_roundtrip() {
        let dim = 128;
        let x: Vec<f32> = (0..dim * 700)
            .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        for variant in [Variant::E8, Variant::D4] {
            let codec = Codec::new(variant, dim, 10).unwrap();
            let all = roundtrip_rows(&codec, &x).unwrap();
            for r in [0usize, 299, 699] {
                let one = codec.roundtrip_row(&x[r * dim..(r + 1) * dim]).unwrap();
                assert_eq!(&all[r * dim..(r + 1) * dim], one.as_slice());
            }
            let packer = Packer::new(codec).unwrap();
            let packed = encode_rows(&packer, &x).unwrap();
            assert_eq!(packed.rows(), 700);
            assert_eq!(decode_rows(&packer, &packed).unwrap(), all);
        }
    }
}
