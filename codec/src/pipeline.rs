//! The reference's per-row float32 pipeline (spec §1.2), split into an encode half that yields
//! the lattice point and the two fp16 side scalars, and a decode half that rebuilds the row from
//! exactly those. The round trip is the composition of the two, so a packed vector that stores
//! the lattice point and the side scalars losslessly decodes to the round trip bit for bit.

use half::f16;

use crate::hadamard::{Rotation, Rotator};
use crate::lattice::{closest_d4, closest_e8};
use crate::{CodecError, Variant, validate};

/// float32 machine epsilon, 2⁻²³: the floor for ‖x‖ and qmax so a zero row stays zero
/// (2⁻²³ is an exact fp16 subnormal, so the rounded qmax never becomes 0).
pub const EPS: f32 = f32::EPSILON;

/// The two side scalars a decoder needs besides the lattice point: the row norm and the largest
/// rotated magnitude, both rounded to IEEE half precision (round to nearest even).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    /// ‖x‖ rounded to fp16.
    pub norm: f16,
    /// Largest rotated magnitude of the unit row, rounded to fp16.
    pub qmax: f16,
}

/// One configured codec: variant, dimension and q_range, validated once.
#[derive(Debug, Clone)]
pub struct Codec {
    variant: Variant,
    dim: usize,
    q: u32,
    q_f32: f32,
    rot: Rotator,
}

/// Sum of squares in NumPy's pairwise order (8 running partial sums per ≤128-value leaf, halves
/// split at multiples of 8 above that), so that ‖x‖ rounds as the reference's does.
#[inline(always)]
fn pairwise_sq(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0f32;
        for &x in a {
            res += x * x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f32; 8];
        for (j, v) in r.iter_mut().enumerate() {
            *v = a[j] * a[j];
        }
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for j in 0..8 {
                r[j] += chunk[j] * chunk[j];
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res += x * x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sq(&a[..half]) + pairwise_sq(&a[half..])
    }
}

#[inline(always)]
fn max_abs(a: &[f32]) -> f32 {
    let mut m = [0.0f32; 8];
    let mut chunks = a.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            m[j] = m[j].max(c[j].abs());
        }
    }
    let mut best = m.iter().fold(0.0f32, |acc, &v| acc.max(v));
    for &v in chunks.remainder() {
        best = best.max(v.abs());
    }
    best
}

impl Codec {
    /// Validate in the reference's order (power of two, block multiple, Q ≥ 1). The codec
    /// rotates with [`Rotation::Reference`] (bit-exact parity); see [`Codec::with_rotation`].
    pub fn new(variant: Variant, dim: usize, q: i64) -> Result<Self, CodecError> {
        let q = validate(variant, dim, q)?;
        Ok(Codec {
            variant,
            dim,
            q,
            q_f32: q as f32,
            rot: Rotator::new(Rotation::Reference, dim),
        })
    }

    /// The same codec with another rotation kernel. Packed vectors must be decoded by a codec
    /// with the same rotation to reproduce its round trip bit for bit.
    pub fn with_rotation(mut self, rotation: Rotation) -> Self {
        self.rot = Rotator::new(rotation, self.dim);
        self
    }

    /// The rotation kernel.
    pub fn rotation(&self) -> Rotation {
        self.rot.kind()
    }

    /// The lattice variant.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Row length D.
    ///
    /// ```
    /// let c = kakeya_lattice::Codec::new(kakeya_lattice::Variant::E8, 128, 38)?;
    /// assert_eq!((c.dim(), c.q(), c.bits()), (128, 38, 848));
    /// # Ok::<(), kakeya_lattice::CodecError>(())
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// q_range Q.
    pub fn q(&self) -> u32 {
        self.q
    }

    pub(crate) fn q_f32(&self) -> f32 {
        self.q_f32
    }

    /// Entry magnitude of the normalised Hadamard matrix, `1 / f32(√D)`.
    pub(crate) fn rotation_scale(&self) -> f32 {
        self.rot.scale()
    }

    /// Accounted bits per vector (spec §1.5).
    pub fn bits(&self) -> u64 {
        let blocks = (self.dim / self.variant.block()) as u64;
        blocks * u64::from(super::bits::block_bits(self.variant, self.q)) + super::bits::SIDE_BITS
    }

    /// Steps 1–7: write the clamped lattice point of row `x` into `z` and return the side
    /// scalars. `x` and `z` must both have length D (checked by the public callers).
    #[inline(always)]
    pub(crate) fn encode_into(&self, x: &[f32], z: &mut [f32], scratch: &mut [f32]) -> Side {
        let r = pairwise_sq(x).sqrt().max(EPS);
        let norm = f16::from_f32(r);
        // Divide by the unrounded norm, as the reference does.
        for (zi, &xi) in z.iter_mut().zip(x) {
            *zi = xi / r;
        }
        self.rot.apply(z, scratch);
        let qmax = max_abs(z).max(EPS);
        let qmax16 = f16::from_f32(qmax);
        let s = qmax16.to_f32() / self.q_f32;
        for zi in z.iter_mut() {
            *zi /= s;
        }
        match self.variant {
            Variant::E8 => self.search_groups::<8>(z),
            Variant::D4 => self.search_groups::<4>(z),
        }
        Side { norm, qmax: qmax16 }
    }

    /// Steps 6–7: closest point and clamp for every block, one block at a time (the scalar
    /// oracle the row-parallel kernels in [`super::rows`] are tested against).
    #[inline(always)]
    fn search_groups<const N: usize>(&self, z: &mut [f32]) {
        let (lo, hi) = (-self.q_f32, self.q_f32);
        for block in z.chunks_exact_mut(N) {
            let mut y = [0.0f32; 8];
            y[..N].copy_from_slice(block);
            let p = if N == 8 {
                closest_e8(&y)
            } else {
                let d = closest_d4(&[y[0], y[1], y[2], y[3]]);
                [d[0], d[1], d[2], d[3], 0.0, 0.0, 0.0, 0.0]
            };
            for (o, &v) in block.iter_mut().zip(&p) {
                *o = v.clamp(lo, hi);
            }
        }
    }

    /// Steps 8–10 in place: lattice point `z` → reconstructed row.
    #[inline(always)]
    pub(crate) fn decode_in_place(&self, side: Side, z: &mut [f32], scratch: &mut [f32]) {
        let s = side.qmax.to_f32() / self.q_f32;
        for v in z.iter_mut() {
            *v *= s;
        }
        self.rot.apply(z, scratch);
        let r16 = side.norm.to_f32();
        for v in z.iter_mut() {
            *v *= r16;
        }
    }

    #[inline(always)]
    fn roundtrip_rows_body(&self, x: &[f32], out: &mut [f32]) {
        let mut scratch = vec![0.0f32; self.dim];
        for (xr, orow) in x.chunks_exact(self.dim).zip(out.chunks_exact_mut(self.dim)) {
            let side = self.encode_into(xr, orow, &mut scratch);
            self.decode_in_place(side, orow, &mut scratch);
        }
    }

    // FMA here only turns `mul_add` into one instruction instead of a libm call; nothing else
    // is contracted (Rust never fuses a separate multiply and add).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn roundtrip_rows_avx2(&self, x: &[f32], out: &mut [f32]) {
        self.roundtrip_rows_body(x, out)
    }

    /// The scalar oracle: [`Codec::roundtrip_into`] one row at a time, one block at a time.
    /// Same results bit for bit as the row-parallel kernels (tested); kept for tests and as
    /// the reference the fast paths are measured against.
    pub fn roundtrip_into_scalar(&self, x: &[f32], out: &mut [f32]) -> Result<(), CodecError> {
        self.check_rows(x.len())?;
        if out.len() != x.len() {
            return Err(CodecError::RowLength {
                len: out.len(),
                dim: x.len(),
            });
        }
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { self.roundtrip_rows_avx2(x, out) };
            return Ok(());
        }
        self.roundtrip_rows_body(x, out);
        Ok(())
    }

    /// Encode one row to its lattice point (`z`, length D) and side scalars.
    pub fn quantize_row(&self, x: &[f32], z: &mut [f32]) -> Result<Side, CodecError> {
        for len in [x.len(), z.len()] {
            if len != self.dim {
                return Err(CodecError::RowLength { len, dim: self.dim });
            }
        }
        let mut scratch = vec![0.0f32; self.dim];
        Ok(self.encode_into(x, z, &mut scratch))
    }

    /// Rebuild one row in place from its lattice point and side scalars.
    pub fn dequantize_row(&self, side: Side, z: &mut [f32]) -> Result<(), CodecError> {
        if z.len() != self.dim {
            return Err(CodecError::RowLength {
                len: z.len(),
                dim: self.dim,
            });
        }
        let mut scratch = vec![0.0f32; self.dim];
        self.decode_in_place(side, z, &mut scratch);
        Ok(())
    }

    pub(crate) fn check_rows(&self, len: usize) -> Result<usize, CodecError> {
        if !len.is_multiple_of(self.dim) {
            return Err(CodecError::RaggedBuffer { len, dim: self.dim });
        }
        Ok(len / self.dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_row_stays_zero() {
        for v in [Variant::E8, Variant::D4] {
            let c = Codec::new(v, 64, 10).unwrap();
            let out = c.roundtrip_row(&[0.0; 64]).unwrap();
            assert!(out.iter().all(|x| *x == 0.0));
        }
    }

    #[test]
    fn pairwise_matches_plain_sum_closely() {
        let a: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let plain: f64 = a.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        assert!((f64::from(pairwise_sq(&a)) - plain).abs() < 1e-3);
    }

    #[test]
    fn error_shrinks_with_q() {
        let x: Vec<f32> = (0..128)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) / 30.0)
            .collect();
        for v in [Variant::E8, Variant::D4] {
            let mut last = f64::INFINITY;
            for q in [4, 10, 38, 152] {
                let c = Codec::new(v, 128, q).unwrap();
                let y = c.roundtrip_row(&x).unwrap();
                let err: f64 = x
                    .iter()
                    .zip(&y)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum();
                assert!(err < last, "{v} Q={q}");
                last = err;
            }
        }
    }
}
