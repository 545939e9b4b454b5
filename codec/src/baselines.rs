//! Comparison arms run on the same vectors as the lattice codec:
//! * [`Identity`]: float32 stored as is (32 bits per value, zero error);
//! * [`Affine`]: MLX-style group-wise affine quantization — per group of 64 values an fp16
//!   scale and an fp16 bias, `x̂ = q·scale + bias` with q ∈ [0, 2^b − 1] (b = 8 or 4);
//! * [`TurboQuant`]: the scalar quantizer the reference compares against (spec §1.6): the
//!   codec's steps 1–5 and 8–10 with `qs = 2^(b−1) − 1`, `s = qmax16/qs` and a scalar
//!   `round(y/s)` clamped to [−qs, qs]; `D·b + 32` bits.

use half::f16;

use crate::CodecError;
use crate::batch::Quantizer;
use crate::bitio::{BitReader, BitWriter};
use crate::hadamard::{Rotation, Rotator};
use crate::pipeline::EPS;

fn truncated() -> CodecError {
    CodecError::Malformed {
        reason: "packed row is truncated".into(),
    }
}

fn check_len(bytes: &[u8], lens: &[usize], want: usize) -> Result<(), CodecError> {
    if lens.iter().any(|&l| l != want) || bytes.len() != want * lens.len() {
        return Err(CodecError::Malformed {
            reason: format!("every row must hold {want} bytes"),
        });
    }
    Ok(())
}

/// Raw float32 storage.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Row length D.
    pub dim: usize,
}

impl Quantizer for Identity {
    fn dim(&self) -> usize {
        self.dim
    }

    fn accounted_bits(&self) -> u64 {
        32 * self.dim as u64
    }

    fn encode_chunk(
        &self,
        x: &[f32],
        out: &mut Vec<u8>,
        lens: &mut Vec<usize>,
    ) -> Result<u64, CodecError> {
        out.reserve(x.len() * 4);
        for row in x.chunks_exact(self.dim) {
            for v in row {
                out.extend_from_slice(&v.to_le_bytes());
            }
            lens.push(self.dim * 4);
        }
        Ok(0)
    }

    fn decode_chunk(
        &self,
        bytes: &[u8],
        lens: &[usize],
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        check_len(bytes, lens, self.dim * 4)?;
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }

    fn roundtrip_chunk(&self, x: &[f32], out: &mut [f32]) -> Result<(), CodecError> {
        out.copy_from_slice(x);
        Ok(())
    }
}

/// MLX-style affine quantization with fp16 scale and bias per group.
#[derive(Debug, Clone)]
pub struct Affine {
    dim: usize,
    bits: u32,
    group: usize,
}

impl Affine {
    /// Affine quantizer for rows of `dim`, `bits` per value, one scale/offset per `group`.
    pub fn new(dim: usize, bits: u32, group: usize) -> Result<Self, CodecError> {
        if !(2..=8).contains(&bits) {
            return Err(CodecError::BitWidth {
                bits,
                min: 2,
                max: 8,
            });
        }
        if group == 0 || dim == 0 || !dim.is_multiple_of(group) {
            return Err(CodecError::GroupMultiple { dim, group });
        }
        Ok(Affine { dim, bits, group })
    }

    fn row_bytes(&self) -> usize {
        (self.accounted_bits() as usize).div_ceil(8)
    }

    /// Scale and bias for one group, already rounded to fp16 so encode and decode agree.
    fn params(&self, g: &[f32]) -> (f16, f16) {
        let (lo, hi) = g
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let levels = ((1u32 << self.bits) - 1) as f32;
        (f16::from_f32((hi - lo) / levels), f16::from_f32(lo))
    }

    fn code(&self, v: f32, scale: f32, bias: f32) -> u32 {
        let max = (1u32 << self.bits) - 1;
        if scale > 0.0 && scale.is_finite() {
            ((v - bias) / scale)
                .round_ties_even()
                .clamp(0.0, max as f32) as u32
        } else {
            0
        }
    }
}

impl Quantizer for Affine {
    fn dim(&self) -> usize {
        self.dim
    }

    fn accounted_bits(&self) -> u64 {
        crate::bits::affine_bits(self.dim, self.bits, self.group)
    }

    fn encode_chunk(
        &self,
        x: &[f32],
        out: &mut Vec<u8>,
        lens: &mut Vec<usize>,
    ) -> Result<u64, CodecError> {
        for row in x.chunks_exact(self.dim) {
            let start = out.len();
            let mut w = BitWriter::new(out);
            for g in row.chunks_exact(self.group) {
                let (scale, bias) = self.params(g);
                w.put(u64::from(scale.to_bits()), 16);
                w.put(u64::from(bias.to_bits()), 16);
                let (s, b) = (scale.to_f32(), bias.to_f32());
                for &v in g {
                    w.put(u64::from(self.code(v, s, b)), self.bits);
                }
            }
            w.finish();
            lens.push(out.len() - start);
        }
        Ok(0)
    }

    fn decode_chunk(
        &self,
        bytes: &[u8],
        lens: &[usize],
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        check_len(bytes, lens, self.row_bytes())?;
        for (row, ob) in out
            .chunks_exact_mut(self.dim)
            .zip(bytes.chunks_exact(self.row_bytes()))
        {
            let mut r = BitReader::new(ob);
            for g in row.chunks_exact_mut(self.group) {
                let s = f16::from_bits(r.get(16).ok_or_else(truncated)? as u16).to_f32();
                let b = f16::from_bits(r.get(16).ok_or_else(truncated)? as u16).to_f32();
                for v in g.iter_mut() {
                    *v = r.get(self.bits).ok_or_else(truncated)? as f32 * s + b;
                }
            }
        }
        Ok(())
    }

    fn roundtrip_chunk(&self, x: &[f32], out: &mut [f32]) -> Result<(), CodecError> {
        for (g, o) in x
            .chunks_exact(self.group)
            .zip(out.chunks_exact_mut(self.group))
        {
            let (scale, bias) = self.params(g);
            let (s, b) = (scale.to_f32(), bias.to_f32());
            for (ov, &v) in o.iter_mut().zip(g) {
                *ov = self.code(v, s, b) as f32 * s + b;
            }
        }
        Ok(())
    }
}

/// Scalar TurboQuant-style quantizer on the codec's rotated, fp16-scaled coordinates.
#[derive(Debug, Clone)]
pub struct TurboQuant {
    dim: usize,
    bits: u32,
    qs: f32,
    rot: Rotator,
}

impl TurboQuant {
    /// TurboQuant-style scalar quantizer for rows of `dim`, `bits` per value, after `rotation`.
    pub fn new(dim: usize, bits: u32, rotation: Rotation) -> Result<Self, CodecError> {
        if dim == 0 || !dim.is_power_of_two() {
            return Err(CodecError::NotPowerOfTwo { dim });
        }
        if !(2..=8).contains(&bits) {
            return Err(CodecError::BitWidth {
                bits,
                min: 2,
                max: 8,
            });
        }
        Ok(TurboQuant {
            dim,
            bits,
            qs: ((1u32 << (bits - 1)) - 1) as f32,
            rot: Rotator::new(rotation, dim),
        })
    }

    fn row_bytes(&self) -> usize {
        (self.accounted_bits() as usize).div_ceil(8)
    }

    /// Steps 1–5 and the scalar rounding: codes (as f32) into `y`, plus the side scalars.
    fn quantize(&self, x: &[f32], y: &mut [f32], scratch: &mut [f32]) -> (f16, f16) {
        let r = x.iter().fold(0.0f32, |a, &v| a + v * v).sqrt().max(EPS);
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = xi / r;
        }
        self.rot.apply(y, scratch);
        let qmax = y.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(EPS);
        let qmax16 = f16::from_f32(qmax);
        let s = qmax16.to_f32() / self.qs;
        for v in y.iter_mut() {
            *v = (*v / s).round_ties_even().clamp(-self.qs, self.qs);
        }
        (f16::from_f32(r), qmax16)
    }

    /// Steps 8–10 in place.
    fn dequantize(&self, norm: f16, qmax: f16, y: &mut [f32], scratch: &mut [f32]) {
        let s = qmax.to_f32() / self.qs;
        for v in y.iter_mut() {
            *v *= s;
        }
        self.rot.apply(y, scratch);
        let r16 = norm.to_f32();
        for v in y.iter_mut() {
            *v *= r16;
        }
    }
}

impl Quantizer for TurboQuant {
    fn dim(&self) -> usize {
        self.dim
    }

    fn accounted_bits(&self) -> u64 {
        crate::bits::turboquant_bits(self.dim, self.bits)
    }

    fn encode_chunk(
        &self,
        x: &[f32],
        out: &mut Vec<u8>,
        lens: &mut Vec<usize>,
    ) -> Result<u64, CodecError> {
        let (mut y, mut scratch) = (vec![0.0f32; self.dim], vec![0.0f32; self.dim]);
        for row in x.chunks_exact(self.dim) {
            let (norm, qmax) = self.quantize(row, &mut y, &mut scratch);
            let start = out.len();
            let mut w = BitWriter::new(out);
            w.put(u64::from(norm.to_bits()), 16);
            w.put(u64::from(qmax.to_bits()), 16);
            for &c in &y {
                w.put((c + self.qs) as u64, self.bits);
            }
            w.finish();
            lens.push(out.len() - start);
        }
        Ok(0)
    }

    fn decode_chunk(
        &self,
        bytes: &[u8],
        lens: &[usize],
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        check_len(bytes, lens, self.row_bytes())?;
        let mut scratch = vec![0.0f32; self.dim];
        for (row, rb) in out
            .chunks_exact_mut(self.dim)
            .zip(bytes.chunks_exact(self.row_bytes()))
        {
            let mut r = BitReader::new(rb);
            let norm = f16::from_bits(r.get(16).ok_or_else(truncated)? as u16);
            let qmax = f16::from_bits(r.get(16).ok_or_else(truncated)? as u16);
            for v in row.iter_mut() {
                *v = r.get(self.bits).ok_or_else(truncated)? as f32 - self.qs;
            }
            self.dequantize(norm, qmax, row, &mut scratch);
        }
        Ok(())
    }

    fn roundtrip_chunk(&self, x: &[f32], out: &mut [f32]) -> Result<(), CodecError> {
        let mut scratch = vec![0.0f32; self.dim];
        for (row, o) in x.chunks_exact(self.dim).zip(out.chunks_exact_mut(self.dim)) {
            let (norm, qmax) = self.quantize(row, o, &mut scratch);
            self.dequantize(norm, qmax, o, &mut scratch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{decode_with, encode_with};

    fn data(dim: usize, rows: usize) -> Vec<f32> {
        (0..dim * rows)
            .map(|i| ((i * 7919) % 1013) as f32 / 300.0 - 1.7)
            .collect()
    }

    fn check_arm<Q: Quantizer>(arm: &Q, x: &[f32], max_rel: f64) {
        let mut rt = vec![0.0; x.len()];
        arm.roundtrip_chunk(x, &mut rt).unwrap();
        let packed = encode_with(arm, x).unwrap();
        assert_eq!(decode_with(arm, &packed).unwrap(), rt);
        assert_eq!(
            packed.bits_per_vector(),
            arm.accounted_bits().div_ceil(8) as f64 * 8.0
        );
        let num: f64 = x
            .iter()
            .zip(&rt)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let den: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
        assert!(num / den <= max_rel, "rel {}", num / den);
    }

    #[test]
    fn arms_pack_and_roundtrip() {
        let x = data(128, 300);
        check_arm(&Identity { dim: 128 }, &x, 0.0);
        check_arm(&Affine::new(128, 8, 64).unwrap(), &x, 1e-4);
        check_arm(&Affine::new(128, 4, 64).unwrap(), &x, 1e-2);
        check_arm(
            &TurboQuant::new(128, 4, Rotation::Reference).unwrap(),
            &x,
            5e-2,
        );
        check_arm(&TurboQuant::new(128, 3, Rotation::Fast).unwrap(), &x, 0.2);
        assert!(Affine::new(100, 8, 64).is_err());
        assert!(TurboQuant::new(96, 3, Rotation::Fast).is_err());
    }
}
