//! A minimal float32 SIMD vocabulary for the row-parallel kernels in [`super::rows`]: one
//! vector holds one coordinate of `L` rows. Every operation is the IEEE float32 operation the
//! scalar code performs, lane by lane (one rounding each; `fma` is a single-rounding fused
//! multiply-add), so a kernel written with it is bit-identical to the scalar pipeline.
//!
//! Implementations are zero-sized *tokens*: [`Avx512`] and [`Avx2`] can only be constructed
//! after run-time feature detection, which is what makes their safe methods sound. Generic
//! kernels are `#[inline(always)]` and instantiated inside `#[target_feature]` functions, so
//! the intrinsics inline into straight SIMD code (no `-C target-cpu` needed).

/// Float32 vectors of `L` lanes and the operations the codec needs.
pub(crate) trait Simd<const L: usize>: Copy {
    type V: Copy;
    type M: Copy;
    fn splat(self, v: f32) -> Self::V;
    fn load(self, a: &[f32; L]) -> Self::V;
    fn store(self, a: &mut [f32; L], v: Self::V);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` with one rounding (`f32::mul_add`).
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn neg(self, a: Self::V) -> Self::V;
    fn abs(self, a: Self::V) -> Self::V;
    /// `if a > b { a } else { b }` per lane (so `b` wins on ties and NaN).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `if a < b { a } else { b }` per lane.
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// Round half to even (`f32::round_ties_even`).
    fn round_even(self, a: Self::V) -> Self::V;
    fn floor(self, a: Self::V) -> Self::V;
    fn eq(self, a: Self::V, b: Self::V) -> Self::M;
    fn ge(self, a: Self::V, b: Self::V) -> Self::M;
    fn le(self, a: Self::V, b: Self::V) -> Self::M;
    /// `if m { a } else { b }` per lane.
    fn select(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;
    fn and(self, a: Self::M, b: Self::M) -> Self::M;
    fn or(self, a: Self::M, b: Self::M) -> Self::M;
    /// Truncate to integers (values known to lie in [0, 2²⁴]) and store them.
    fn store_u32(self, a: &mut [u32; L], v: Self::V);

    /// Transpose `L` full row-major rows of length `tile.len()` into `tile[k][l]`.
    #[inline(always)]
    fn load_rows(self, x: &[f32], tile: &mut [[f32; L]]) {
        let d = tile.len();
        for (l, row) in x.chunks_exact(d).take(L).enumerate() {
            for (t, &v) in tile.iter_mut().zip(row) {
                t[l] = v;
            }
        }
    }

    /// Transpose `tile[k][l]` back into `L` row-major rows.
    #[inline(always)]
    fn store_rows(self, tile: &[[f32; L]], out: &mut [f32]) {
        let d = tile.len();
        for (l, row) in out.chunks_exact_mut(d).take(L).enumerate() {
            for (o, t) in row.iter_mut().zip(tile) {
                *o = t[l];
            }
        }
    }
}

/// Portable lanes: plain arrays, element by element (any target; `mul_add` is hardware FMA
/// wherever the target has it, e.g. aarch64).
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl<const L: usize> Simd<L> for Portable {
    type V = [f32; L];
    type M = [bool; L];
    #[inline(always)]
    fn splat(self, v: f32) -> [f32; L] {
        [v; L]
    }
    #[inline(always)]
    fn load(self, a: &[f32; L]) -> [f32; L] {
        *a
    }
    #[inline(always)]
    fn store(self, a: &mut [f32; L], v: [f32; L]) {
        *a = v;
    }
    #[inline(always)]
    fn add(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    fn sub(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i] - b[i])
    }
    #[inline(always)]
    fn mul(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i] * b[i])
    }
    #[inline(always)]
    fn div(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i] / b[i])
    }
    #[inline(always)]
    fn fma(self, a: [f32; L], b: [f32; L], c: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
    }
    #[inline(always)]
    fn neg(self, a: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| -a[i])
    }
    #[inline(always)]
    fn abs(self, a: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i].abs())
    }
    #[inline(always)]
    fn max(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn min(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| if a[i] < b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn round_even(self, a: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i].round_ties_even())
    }
    #[inline(always)]
    fn floor(self, a: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i].floor())
    }
    #[inline(always)]
    fn eq(self, a: [f32; L], b: [f32; L]) -> [bool; L] {
        std::array::from_fn(|i| a[i] == b[i])
    }
    #[inline(always)]
    fn ge(self, a: [f32; L], b: [f32; L]) -> [bool; L] {
        std::array::from_fn(|i| a[i] >= b[i])
    }
    #[inline(always)]
    fn le(self, a: [f32; L], b: [f32; L]) -> [bool; L] {
        std::array::from_fn(|i| a[i] <= b[i])
    }
    #[inline(always)]
    fn select(self, m: [bool; L], a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| if m[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn and(self, a: [bool; L], b: [bool; L]) -> [bool; L] {
        std::array::from_fn(|i| a[i] & b[i])
    }
    #[inline(always)]
    fn or(self, a: [bool; L], b: [bool; L]) -> [bool; L] {
        std::array::from_fn(|i| a[i] | b[i])
    }
    #[inline(always)]
    fn store_u32(self, a: &mut [u32; L], v: [f32; L]) {
        for (o, x) in a.iter_mut().zip(v) {
            *o = x as u32;
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// AVX2 + FMA, 8 lanes. Constructed only by [`Avx2::detect`].
    #[derive(Clone, Copy)]
    pub(crate) struct Avx2(());

    impl Avx2 {
        pub(crate) fn detect() -> Option<Self> {
            crate::cpu::has_avx2_fma().then_some(Avx2(()))
        }
    }

    /// AVX-512F (+ AVX2, FMA), 16 lanes. Constructed only by [`Avx512::detect`].
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(());

    impl Avx512 {
        pub(crate) fn detect() -> Option<Self> {
            crate::cpu::has_avx512().then_some(Avx512(()))
        }
    }

    /// 8×8 transpose of eight AVX vectors: `out[k][l] = r[l][k]`.
    #[inline(always)]
    fn transpose8(_: Avx2, r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: the `Avx2` token proves AVX2 is available; register-only shuffles.
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ]
        }
    }

    /// Rows → tile for `L` = 8·H rows, 8 coordinates at a time through [`transpose8`]:
    /// contiguous 8-float loads from each row, contiguous 8-float stores into the tile.
    #[inline(always)]
    fn load_rows8<const L: usize>(t: Avx2, x: &[f32], tile: &mut [[f32; L]]) {
        let d = tile.len();
        for k0 in (0..d).step_by(8) {
            for h in 0..L / 8 {
                let mut r = [t.zero(); 8];
                for (l, rl) in r.iter_mut().enumerate() {
                    let src: &[f32; 8] = x[(8 * h + l) * d + k0..][..8].try_into().unwrap();
                    *rl = t.load8(src);
                }
                let o = transpose8(t, r);
                for (kk, ok) in o.into_iter().enumerate() {
                    let dst: &mut [f32; 8] =
                        (&mut tile[k0 + kk][8 * h..8 * h + 8]).try_into().unwrap();
                    t.store8(dst, ok);
                }
            }
        }
    }

    /// Tile → rows, the inverse of [`load_rows8`].
    #[inline(always)]
    fn store_rows8<const L: usize>(t: Avx2, tile: &[[f32; L]], out: &mut [f32]) {
        let d = tile.len();
        for k0 in (0..d).step_by(8) {
            for h in 0..L / 8 {
                let mut r = [t.zero(); 8];
                for (kk, rk) in r.iter_mut().enumerate() {
                    let src: &[f32; 8] = tile[k0 + kk][8 * h..8 * h + 8].try_into().unwrap();
                    *rk = t.load8(src);
                }
                let o = transpose8(t, r);
                for (l, ol) in o.into_iter().enumerate() {
                    let dst: &mut [f32; 8] =
                        (&mut out[(8 * h + l) * d + k0..][..8]).try_into().unwrap();
                    t.store8(dst, ol);
                }
            }
        }
    }

    impl Avx2 {
        #[inline(always)]
        fn zero(self) -> __m256 {
            // SAFETY: the token proves AVX2.
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        fn load8(self, a: &[f32; 8]) -> __m256 {
            // SAFETY: the token proves AVX2; the reference covers exactly 8 floats.
            unsafe { _mm256_loadu_ps(a.as_ptr()) }
        }
        #[inline(always)]
        fn store8(self, a: &mut [f32; 8], v: __m256) {
            // SAFETY: the token proves AVX2; the reference covers exactly 8 floats.
            unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
        }
    }

    // SAFETY (every `unsafe` block in the two impls below): an `Avx2` / `Avx512` value exists
    // only after `detect` confirmed the CPU features the intrinsics need; loads and stores go
    // through references to exactly `L` floats (unaligned intrinsics).
    impl Simd<8> for Avx2 {
        type V = __m256;
        type M = __m256;
        #[inline(always)]
        fn splat(self, v: f32) -> __m256 {
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        fn load(self, a: &[f32; 8]) -> __m256 {
            unsafe { _mm256_loadu_ps(a.as_ptr()) }
        }
        #[inline(always)]
        fn store(self, a: &mut [f32; 8], v: __m256) {
            unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn add(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn div(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_div_ps(a, b) }
        }
        #[inline(always)]
        fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn neg(self, a: __m256) -> __m256 {
            unsafe { _mm256_xor_ps(a, _mm256_set1_ps(-0.0)) }
        }
        #[inline(always)]
        fn abs(self, a: __m256) -> __m256 {
            unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
        }
        #[inline(always)]
        fn max(self, a: __m256, b: __m256) -> __m256 {
            // vmaxps returns the second operand unless a > b: exactly `if a > b { a } else { b }`.
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_min_ps(a, b) }
        }
        #[inline(always)]
        fn round_even(self, a: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn floor(self, a: __m256) -> __m256 {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn eq(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(a, b) }
        }
        #[inline(always)]
        fn ge(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(a, b) }
        }
        #[inline(always)]
        fn le(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(a, b) }
        }
        #[inline(always)]
        fn select(self, m: __m256, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_blendv_ps(b, a, m) }
        }
        #[inline(always)]
        fn and(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_and_ps(a, b) }
        }
        #[inline(always)]
        fn or(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_or_ps(a, b) }
        }
        #[inline(always)]
        fn store_u32(self, a: &mut [u32; 8], v: __m256) {
            unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), _mm256_cvttps_epi32(v)) }
        }
        #[inline(always)]
        fn load_rows(self, x: &[f32], tile: &mut [[f32; 8]]) {
            if tile.len().is_multiple_of(8) {
                load_rows8(self, x, tile)
            } else {
                scalar_load(x, tile)
            }
        }
        #[inline(always)]
        fn store_rows(self, tile: &[[f32; 8]], out: &mut [f32]) {
            if tile.len().is_multiple_of(8) {
                store_rows8(self, tile, out)
            } else {
                scalar_store(tile, out)
            }
        }
    }

    impl Simd<16> for Avx512 {
        type V = __m512;
        type M = __mmask16;
        #[inline(always)]
        fn splat(self, v: f32) -> __m512 {
            unsafe { _mm512_set1_ps(v) }
        }
        #[inline(always)]
        fn load(self, a: &[f32; 16]) -> __m512 {
            unsafe { _mm512_loadu_ps(a.as_ptr()) }
        }
        #[inline(always)]
        fn store(self, a: &mut [f32; 16], v: __m512) {
            unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn add(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mul_ps(a, b) }
        }
        #[inline(always)]
        fn div(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_div_ps(a, b) }
        }
        #[inline(always)]
        fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn neg(self, a: __m512) -> __m512 {
            unsafe {
                _mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(a),
                    _mm512_set1_epi32(i32::MIN),
                ))
            }
        }
        #[inline(always)]
        fn abs(self, a: __m512) -> __m512 {
            unsafe { _mm512_abs_ps(a) }
        }
        #[inline(always)]
        fn max(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(self, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_min_ps(a, b) }
        }
        #[inline(always)]
        fn round_even(self, a: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn floor(self, a: __m512) -> __m512 {
            unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a) }
        }
        #[inline(always)]
        fn eq(self, a: __m512, b: __m512) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b) }
        }
        #[inline(always)]
        fn ge(self, a: __m512, b: __m512) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b) }
        }
        #[inline(always)]
        fn le(self, a: __m512, b: __m512) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b) }
        }
        #[inline(always)]
        fn select(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_mask_blend_ps(m, b, a) }
        }
        #[inline(always)]
        fn and(self, a: __mmask16, b: __mmask16) -> __mmask16 {
            a & b
        }
        #[inline(always)]
        fn or(self, a: __mmask16, b: __mmask16) -> __mmask16 {
            a | b
        }
        #[inline(always)]
        fn store_u32(self, a: &mut [u32; 16], v: __m512) {
            unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), _mm512_cvttps_epi32(v)) }
        }
        #[inline(always)]
        fn load_rows(self, x: &[f32], tile: &mut [[f32; 16]]) {
            if tile.len().is_multiple_of(8) {
                load_rows8(Avx2(()), x, tile)
            } else {
                scalar_load(x, tile)
            }
        }
        #[inline(always)]
        fn store_rows(self, tile: &[[f32; 16]], out: &mut [f32]) {
            if tile.len().is_multiple_of(8) {
                store_rows8(Avx2(()), tile, out)
            } else {
                scalar_store(tile, out)
            }
        }
    }

    /// The trait's default transposes, for D < 8.
    #[inline(always)]
    fn scalar_load<const L: usize>(x: &[f32], tile: &mut [[f32; L]]) {
        super::Simd::<L>::load_rows(super::Portable, x, tile)
    }

    #[inline(always)]
    fn scalar_store<const L: usize>(tile: &[[f32; L]], out: &mut [f32]) {
        super::Simd::<L>::store_rows(super::Portable, tile, out)
    }
}
