//! The normalised Sylvester–Hadamard rotation `H = H_D / √D`, in two kernels:
//!
//! * [`Rotation::Fast`]: an in-place fast Walsh–Hadamard transform, D·log₂D additions and one
//!   scaling instead of a D×D product. It is the more accurate of the two, but it rounds in a
//!   different order than the reference's float32 `u @ H`, so outputs differ from the
//!   reference by a few ulps (up to ~2·10⁻⁵ absolute on rows of magnitude ~60), and a lattice
//!   decision or the fp16 rounding of qmax can flip when a value sits within an ulp of a tie.
//! * [`Rotation::Reference`]: the reference's `u @ H` accumulated in index order with one fused
//!   multiply-add per term, which is how the float32 matmul the reference runs on (OpenBLAS's
//!   sgemm kernel on this machine) accumulates: bit-identical to it, at D²
//!   multiply-adds per rotation.
//!
//! The butterfly order reproduces the Sylvester recursion `[[H, H], [H, −H]]`, so `fwht`
//! equals `x · H_D` (H_D is symmetric).

/// Unnormalised transform in place: `x ← x · H_D`. `x.len()` must be a power of two.
#[inline(always)]
pub fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (s, d) = (*a + *b, *a - *b);
                *a = s;
                *b = d;
            }
        }
        h *= 2;
    }
}

/// The entry magnitude of the normalised matrix as the reference computes it: the float32
/// division `1 / f32(√D)`.
pub fn norm_scale(dim: usize) -> f32 {
    1.0f32 / ((dim as f64).sqrt() as f32)
}

/// Which rotation kernel a codec uses (see the module docs for the trade-off).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// Dense float32 product in the reference's accumulation order: bit-exact parity.
    #[default]
    Reference,
    /// Fast Walsh–Hadamard transform: O(D log D), parity to a few ulps.
    Fast,
}

impl Rotation {
    /// Lowercase name (`reference`, `fast`).
    ///
    /// ```
    /// assert_eq!(kakeya_lattice::Rotation::Fast.name(), "fast");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Rotation::Reference => "reference",
            Rotation::Fast => "fast",
        }
    }
}

/// Largest D for which the dense matrix is kept in memory (16 MiB); above it rows of the matrix
/// are regenerated on the fly, which costs another D² sign evaluations.
const MAX_STORED_DIM: usize = 2048;

/// A rotation kernel bound to one dimension.
#[derive(Debug, Clone)]
pub struct Rotator {
    kind: Rotation,
    dim: usize,
    scale: f32,
    matrix: Option<std::sync::Arc<Vec<f32>>>,
}

impl Rotator {
    /// The kernel `kind` for rows of length `dim` (a power of two).
    ///
    /// ```
    /// use kakeya_lattice::{Rotation, hadamard::Rotator};
    /// let r = Rotator::new(Rotation::Reference, 4);
    /// let (mut x, mut scratch) = ([1.0f32, 0.0, 0.0, 0.0], [0.0f32; 4]);
    /// r.apply(&mut x, &mut scratch);
    /// assert_eq!(x, [0.5; 4]);
    /// ```
    pub fn new(kind: Rotation, dim: usize) -> Self {
        let matrix = (kind == Rotation::Reference && dim <= MAX_STORED_DIM)
            .then(|| std::sync::Arc::new(matrix(dim)));
        Rotator {
            kind,
            dim,
            scale: norm_scale(dim),
            matrix,
        }
    }

    /// Which kernel this is.
    pub fn kind(&self) -> Rotation {
        self.kind
    }

    /// Entry magnitude ±s of the normalised matrix.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `x ← x · H`. `scratch` must have length D (used only by the dense kernel).
    #[inline(always)]
    pub fn apply(&self, x: &mut [f32], scratch: &mut [f32]) {
        match self.kind {
            Rotation::Fast => rotate(x, self.scale),
            Rotation::Reference => {
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::has_avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                    unsafe { self.dense_avx2(x, scratch) };
                    return;
                }
                self.dense(x, scratch);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn dense_avx2(&self, x: &mut [f32], scratch: &mut [f32]) {
        self.dense(x, scratch)
    }

    /// `x ← x · H` with one fused multiply-add per term, in index order.
    #[inline(always)]
    fn dense(&self, x: &mut [f32], scratch: &mut [f32]) {
        let d = self.dim;
        scratch.fill(0.0);
        match &self.matrix {
            Some(m) => {
                for (k, row) in m.chunks_exact(d).enumerate() {
                    let a = x[k];
                    for (acc, &h) in scratch.iter_mut().zip(row) {
                        *acc = a.mul_add(h, *acc);
                    }
                }
            }
            None => {
                for (k, &a) in x.iter().enumerate().take(d) {
                    for (j, acc) in scratch.iter_mut().enumerate() {
                        let h = if (k & j).count_ones() % 2 == 0 {
                            self.scale
                        } else {
                            -self.scale
                        };
                        *acc = a.mul_add(h, *acc);
                    }
                }
            }
        }
        x.copy_from_slice(scratch);
    }
}

/// Normalised rotation in place: `x ← x · H_D / √D`. Self-inverse up to rounding.
#[inline(always)]
pub fn rotate(x: &mut [f32], scale: f32) {
    fwht(x);
    for v in x.iter_mut() {
        *v *= scale;
    }
}

/// The dense normalised matrix, row-major, for tests and documentation of the convention.
pub fn matrix(dim: usize) -> Vec<f32> {
    let s = norm_scale(dim);
    let mut m = vec![0.0f32; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            // Sylvester entry sign: (−1)^popcount(i & j).
            let sign = if (i & j).count_ones() % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            m[i * dim + j] = sign * s;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dense_matrix_and_is_self_inverse() {
        for dim in [1usize, 2, 4, 8, 16, 64, 128, 256] {
            let m = matrix(dim);
            let x: Vec<f32> = (0..dim).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
            let mut fast = x.clone();
            rotate(&mut fast, norm_scale(dim));
            for j in 0..dim {
                let dense: f64 = (0..dim)
                    .map(|i| f64::from(x[i]) * f64::from(m[i * dim + j]))
                    .sum();
                assert!((dense - f64::from(fast[j])).abs() < 1e-4, "D={dim} j={j}");
            }
            rotate(&mut fast, norm_scale(dim));
            for (a, b) in x.iter().zip(&fast) {
                assert!((a - b).abs() < 1e-4);
            }
            let mut dense = x.clone();
            let mut scratch = vec![0.0; dim];
            Rotator::new(Rotation::Reference, dim).apply(&mut dense, &mut scratch);
            let mut fast2 = x.clone();
            rotate(&mut fast2, norm_scale(dim));
            for (a, b) in dense.iter().zip(&fast2) {
                assert!((a - b).abs() < 1e-4);
            }
        }
    }
}
