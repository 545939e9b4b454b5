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
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
                .then_some(Avx2(()))
        }
    }

    /// AVX-512F (+ AVX2, FMA), 16 lanes. Constructed only by [`Avx512::detect`].
    #[derive(Clone, Copy)]
    pub(crate) struct Avx512(());

    impl Avx512 {
        pub(crate) fn detect() -> Option<Self> {
            (is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma"))
            .then_some(Avx512(()))
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
    }
}
