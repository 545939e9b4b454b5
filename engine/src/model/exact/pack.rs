//! Weights packed for the exact kernels: `y = x·Wᵀ` with `W` stored `[n, k]` (Hugging Face's
//! `[out, in]`) is repacked once at load time into column panels of [`NR`] outputs, each
//! panel `k` rows of `NR` contiguous elements. A kernel then streams one panel front to back
//! (one pass over memory per token in decode) and keeps `NR` outputs per row in registers.
//! Several matrices that read the same input (q/k/v, gate/up) are packed side by side into
//! one, so they cost one pass and one parallel dispatch.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::elem::{Bf16, Elem, F16};

/// Outputs per panel: two AVX-512 registers, four AVX2 or eight NEON registers.
pub const NR: usize = 32;

/// One packed matrix of element type `E`.
pub struct Packed<E> {
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) data: Vec<E>,
}

impl<E: Elem> Packed<E> {
    /// Pack `rows` (`n` rows of `k`, row-major) into panels; the last panel is zero-padded.
    pub fn from_rows(rows: &[E], n: usize, k: usize) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = vec![E::default(); panels * k * NR];
        if k > 0 {
            data.par_chunks_mut(k * NR)
                .enumerate()
                .for_each(|(p, panel)| {
                    let live = (n - p * NR).min(NR);
                    for j in 0..live {
                        let src = &rows[(p * NR + j) * k..(p * NR + j + 1) * k];
                        for (kk, v) in src.iter().enumerate() {
                            panel[kk * NR + j] = *v;
                        }
                    }
                });
        }
        Packed { k, n, data }
    }

    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Panel `p`: `k × NR` elements.
    #[inline(always)]
    pub(crate) fn panel(&self, p: usize) -> &[E] {
        &self.data[p * self.k * NR..(p + 1) * self.k * NR]
    }
}

/// A packed matrix in whichever element type the model's weights have.
pub enum PackedMatrix {
    F32(Packed<f32>),
    F16(Packed<F16>),
    Bf16(Packed<Bf16>),
}

/// Why a tensor could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot pack tensors of shape {0:?} (expected 2-D [out, in])")]
    Shape(Vec<usize>),
    #[error("matrices packed together disagree on the input width ({0} vs {1})")]
    Width(usize, usize),
    #[error("weight dtype {0:?} is not f32, f16 or bf16")]
    Dtype(DType),
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl PackedMatrix {
    /// Pack the matrices `ws` (each `[n_i, k]`) stacked along the output axis, stored as
    /// `dtype`.
    pub fn pack(ws: &[&Tensor], dtype: DType) -> Result<Self, PackError> {
        let mut k = None;
        let mut n = 0;
        for w in ws {
            let (ni, ki) = match w.dims() {
                [a, b] => (*a, *b),
                other => return Err(PackError::Shape(other.to_vec())),
            };
            if let Some(k0) = k
                && k0 != ki
            {
                return Err(PackError::Width(k0, ki));
            }
            k = Some(ki);
            n += ni;
        }
        let k = k.unwrap_or(0);
        let flat = |w: &&Tensor| -> Result<Tensor, PackError> {
            Ok(w.to_device(&candle_core::Device::Cpu)?
                .to_dtype(dtype)?
                .flatten_all()?)
        };
        let parts = ws.iter().map(flat).collect::<Result<Vec<_>, _>>()?;
        let all = Tensor::cat(&parts, 0)?;
        Ok(match dtype {
            DType::F32 => Self::F32(Packed::from_rows(&all.to_vec1::<f32>()?, n, k)),
            DType::F16 => {
                let v: Vec<F16> = all
                    .to_vec1::<half::f16>()?
                    .into_iter()
                    .map(|h| F16(h.to_bits()))
                    .collect();
                Self::F16(Packed::from_rows(&v, n, k))
            }
            DType::BF16 => {
                let v: Vec<Bf16> = all
                    .to_vec1::<half::bf16>()?
                    .into_iter()
                    .map(|h| Bf16(h.to_bits()))
                    .collect();
                Self::Bf16(Packed::from_rows(&v, n, k))
            }
            other => return Err(PackError::Dtype(other)),
        })
    }

    /// `y[m, n] = x[m, k] · Wᵀ`, batch-invariant (see [`super::gemm`]).
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        match self {
            Self::F32(p) => super::gemm::matmul(x, m, p),
            Self::F16(p) => super::gemm::matmul(x, m, p),
            Self::Bf16(p) => super::gemm::matmul(x, m, p),
        }
    }

    /// Input width.
    pub fn k(&self) -> usize {
        match self {
            Self::F32(p) => p.k,
            Self::F16(p) => p.k,
            Self::Bf16(p) => p.k,
        }
    }

    /// Output width.
    pub fn n(&self) -> usize {
        match self {
            Self::F32(p) => p.n,
            Self::F16(p) => p.n,
            Self::Bf16(p) => p.n,
        }
    }
}
