//! Row-parallel kernels: the scalar per-row pipeline (`pipeline.rs`) run on `L` rows at once
//! in structure-of-arrays layout (`a[k][l]` = coordinate `k` of row `l`), so that every SIMD
//! lane performs exactly the scalar sequence of float32 operations for its own row. Results
//! are therefore bit-identical to the scalar path (the tests below check this on many random,
//! zero, tiny, huge, spiky and tie-heavy rows), while the hardware does `L` rows per
//! instruction: 16 with AVX-512, 8 with AVX2+FMA, 8 (two NEON registers) on aarch64.
//!
//! The dense reference rotation keeps the reference's order, `y_j = fma(u_{D−1}, h, …
//! fma(u_0, h, 0))`, and uses two facts about the Sylvester matrix:
//! * entries are ±s, so `fma(u, −s, acc) = fma(−u, s, acc)` (the exact product is the same
//!   number): per block of 8×8 entries one sign flip of the inputs (a negated copy) and a fixed
//!   ±s pattern (`H_8`) that is a compile-time constant;
//! * for k < 2^t the sign of h_kj depends only on j mod 2^t, so the running sums of columns j
//!   and j + 2^t agree until k = 2^t: they are computed once and copied (a prefix trie). At
//!   D = 128 this is 10 880 instead of 16 384 multiply-adds per row, each still one rounding
//!   in index order.

use crate::CodecError;
pub use crate::cpu::{Kernel, available_kernels, kernel, supported};
use crate::pack::Packer;
use crate::pipeline::{Codec, Side};
use crate::simd::Portable;

use lanes::{dequantize_body, quantize_body, roundtrip_body};
use packed::{pack_body, unpack_body};

mod lanes;
mod packed;
#[cfg(test)]
mod tests;

/// Runs `$body` with the requested kernel's token inside a function compiled for its CPU
/// features; a kernel the CPU lacks runs the portable body (same results).
macro_rules! dispatch {
    ($kernel:expr, $body:ident, $ret:ty, ($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            use crate::simd::{Avx2, Avx512};
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512(s: Avx512, $($arg: $ty),*) -> $ret {
                $body::<16, Avx512>(s, $($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2(s: Avx2, $($arg: $ty),*) -> $ret {
                $body::<8, Avx2>(s, $($arg),*)
            }
            match $kernel {
                Kernel::Avx512 => {
                    if let Some(s) = Avx512::detect() {
                        // SAFETY: the token exists only if AVX-512F, AVX2 and FMA are present.
                        return unsafe { avx512(s, $($arg),*) };
                    }
                }
                Kernel::Avx2 => {
                    if let Some(s) = Avx2::detect() {
                        // SAFETY: the token exists only if AVX2 and FMA are present.
                        return unsafe { avx2(s, $($arg),*) };
                    }
                }
                Kernel::Portable => {}
            }
        }
        let _ = $kernel;
        $body::<8, Portable>(Portable, $($arg),*)
    }};
}

/// Round-trip whole rows (`x`, `out`: equal length, a multiple of D) with `kernel`.
pub(crate) fn roundtrip(k: Kernel, c: &Codec, x: &[f32], out: &mut [f32]) {
    dispatch!(k, roundtrip_body, (), (c: &Codec, x: &[f32], out: &mut [f32]))
}

/// Encode whole rows to lattice points and side scalars with `kernel`.
pub(crate) fn quantize(k: Kernel, c: &Codec, x: &[f32], z: &mut [f32], sides: &mut [Side]) {
    dispatch!(k, quantize_body, (), (c: &Codec, x: &[f32], z: &mut [f32], sides: &mut [Side]))
}

/// Encode whole rows straight to packed bytes (the packer must have a [`Plan`]); returns the
/// escaped blocks.
pub(crate) fn pack(
    k: Kernel,
    p: &Packer,
    x: &[f32],
    out: &mut Vec<u8>,
    lens: &mut Vec<usize>,
) -> u64 {
    dispatch!(k, pack_body, u64, (p: &Packer, x: &[f32], out: &mut Vec<u8>, lens: &mut Vec<usize>))
}

/// Decode packed rows straight from bytes (the packer must have a [`Plan`]).
pub(crate) fn unpack(
    k: Kernel,
    p: &Packer,
    bytes: &[u8],
    lens: &[usize],
    out: &mut [f32],
) -> Result<(), CodecError> {
    dispatch!(k, unpack_body, Result<(), CodecError>, (p: &Packer, bytes: &[u8], lens: &[usize], out: &mut [f32]))
}

/// Decode whole rows in place from lattice points and side scalars with `kernel`.
pub(crate) fn dequantize(k: Kernel, c: &Codec, sides: &[Side], z: &mut [f32]) {
    dispatch!(k, dequantize_body, (), (c: &Codec, sides: &[Side], z: &mut [f32]))
}

/// Whole-row entry points on the row-parallel kernels; they live here, beside the kernels, so
/// that the scalar pipeline (`pipeline.rs`) does not depend on this module.
impl Codec {
    /// Encode whole rows serially into lattice points `z` (same length as `x`) and one side
    /// pair per row (`sides.len()` = rows), on the row-parallel kernel ([`crate::rows`]).
    pub fn quantize_rows(
        &self,
        x: &[f32],
        z: &mut [f32],
        sides: &mut [Side],
    ) -> Result<(), CodecError> {
        self.quantize_rows_with(kernel(), x, z, sides)
    }

    /// [`Codec::quantize_rows`] on a chosen kernel (one the CPU lacks runs the portable one).
    pub fn quantize_rows_with(
        &self,
        kernel: Kernel,
        x: &[f32],
        z: &mut [f32],
        sides: &mut [Side],
    ) -> Result<(), CodecError> {
        let rows = self.check_rows(x.len())?;
        if z.len() != x.len() || sides.len() != rows {
            return Err(CodecError::RowLength {
                len: z.len(),
                dim: x.len(),
            });
        }
        quantize(kernel, self, x, z, sides);
        Ok(())
    }

    /// Rebuild whole rows in place from lattice points and their side pairs.
    pub fn dequantize_rows(&self, sides: &[Side], z: &mut [f32]) -> Result<(), CodecError> {
        self.dequantize_rows_with(kernel(), sides, z)
    }

    /// [`Codec::dequantize_rows`] on a chosen kernel.
    pub fn dequantize_rows_with(
        &self,
        kernel: Kernel,
        sides: &[Side],
        z: &mut [f32],
    ) -> Result<(), CodecError> {
        let rows = self.check_rows(z.len())?;
        if sides.len() != rows {
            return Err(CodecError::RowLength {
                len: sides.len(),
                dim: rows,
            });
        }
        dequantize(kernel, self, sides, z);
        Ok(())
    }

    /// Round-trip whole rows serially (`x` and `out` of equal length, a multiple of D), `L`
    /// rows per SIMD step ([`crate::rows`]); bit-identical to the scalar per-row pipeline.
    pub fn roundtrip_into(&self, x: &[f32], out: &mut [f32]) -> Result<(), CodecError> {
        self.roundtrip_into_with(kernel(), x, out)
    }

    /// [`Codec::roundtrip_into`] on a chosen kernel.
    pub fn roundtrip_into_with(
        &self,
        kernel: Kernel,
        x: &[f32],
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        self.check_rows(x.len())?;
        if out.len() != x.len() {
            return Err(CodecError::RowLength {
                len: out.len(),
                dim: x.len(),
            });
        }
        roundtrip(kernel, self, x, out);
        Ok(())
    }

    /// Round-trip one row (length D) into a new vector.
    pub fn roundtrip_row(&self, x: &[f32]) -> Result<Vec<f32>, CodecError> {
        if x.len() != self.dim() {
            return Err(CodecError::RowLength {
                len: x.len(),
                dim: self.dim(),
            });
        }
        let mut out = vec![0.0; self.dim()];
        self.roundtrip_into(x, &mut out)?;
        Ok(out)
    }
}
