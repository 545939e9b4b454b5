//! Weight element types the exact kernels stream: f32, and f16/bf16 widened to f32 on load
//! (activations and accumulators are always f32). The widening is exact and written as
//! plain integer/float arithmetic, so it vectorises on every ISA and gives the same bits
//! everywhere — the kernels' results do not depend on which instructions ran them.

use super::pack::NR;

/// Which compiled copy of the kernels is widening (a const parameter, so the choice costs
/// nothing at run time): portable Rust, AVX2 + FMA + F16C, or AVX-512.
pub const COPY_PORTABLE: u8 = 0;
pub const COPY_AVX2: u8 = 1;
pub const COPY_AVX512: u8 = 2;

/// A stored weight element.
pub trait Elem: Copy + Send + Sync + Default + 'static {
    /// Bytes per element (for bandwidth figures).
    const BYTES: usize;
    fn widen(self) -> f32;
    /// Widen one panel row inside kernel copy `COPY`.
    #[inline(always)]
    fn widen_row<const COPY: u8>(row: &[Self; NR]) -> [f32; NR] {
        std::array::from_fn(|j| row[j].widen())
    }
}

impl Elem for f32 {
    const BYTES: usize = 4;
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

/// IEEE half-precision bits.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16(pub u16);

/// bfloat16 bits (the top half of an f32).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Elem for Bf16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}

impl Elem for F16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = u32::from(self.0);
        let sign = (h & 0x8000) << 16;
        let magnitude = h & 0x7fff;
        // Shifting exponent and mantissa into place gives the value scaled by 2^-112; one
        // multiply by 2^112 rescales it exactly, subnormal halves included.
        let scaled = f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000);
        let bits = if magnitude >= 0x7c00 {
            (magnitude << 13) | 0x7f80_0000
        } else {
            scaled.to_bits()
        };
        f32::from_bits(bits | sign)
    }

    /// x86 copies use the hardware conversion (the arithmetic above costs more than the
    /// weight's memory traffic at decode speed); it gives the same numbers (both are exact;
    /// only NaN payloads may differ, and a NaN weight poisons its output either way).
    #[inline(always)]
    fn widen_row<const COPY: u8>(row: &[Self; NR]) -> [f32; NR] {
        #[cfg(target_arch = "x86_64")]
        {
            if COPY == COPY_AVX512 {
                // SAFETY: the AVX-512 copy of the kernels runs only where AVX-512F was detected.
                return unsafe { x86::f16_row_avx512(row) };
            }
            if COPY == COPY_AVX2 {
                // SAFETY: the AVX2 copy runs only where AVX2, FMA and F16C were detected.
                return unsafe { x86::f16_row_f16c(row) };
            }
        }
        std::array::from_fn(|j| row[j].widen())
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{F16, NR};

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn f16_row_avx512(row: &[F16; NR]) -> [f32; NR] {
        let mut out = [0.0f32; NR];
        for c in 0..NR / 16 {
            // SAFETY: 16 halves (32 bytes) from `row` and 16 floats into `out`, both in bounds.
            unsafe {
                let h = _mm256_loadu_si256(row.as_ptr().add(c * 16).cast::<__m256i>());
                _mm512_storeu_ps(out.as_mut_ptr().add(c * 16), _mm512_cvtph_ps(h));
            }
        }
        out
    }

    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    pub(super) fn f16_row_f16c(row: &[F16; NR]) -> [f32; NR] {
        let mut out = [0.0f32; NR];
        for c in 0..NR / 8 {
            // SAFETY: 8 halves (16 bytes) from `row` and 8 floats into `out`, both in bounds.
            unsafe {
                let h = _mm_loadu_si128(row.as_ptr().add(c * 8).cast::<__m128i>());
                _mm256_storeu_ps(out.as_mut_ptr().add(c * 8), _mm256_cvtph_ps(h));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_half_widens_exactly() {
        for bits in 0..=u16::MAX {
            let ours = F16(bits).widen();
            let reference = half::f16::from_bits(bits).to_f32();
            if reference.is_nan() {
                assert!(ours.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(ours.to_bits(), reference.to_bits(), "{bits:#06x}");
            }
            let b = Bf16(bits).widen();
            let rb = half::bf16::from_bits(bits).to_f32();
            assert!(b.to_bits() == rb.to_bits() || (b.is_nan() && rb.is_nan()));
        }
    }
}
