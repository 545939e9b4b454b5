//! The exact CPU path: batch-invariant kernels and the decoder layer built on them.
//!
//! Why it exists: speculative decoding verifies a block of L tokens in one forward and
//! compares each row's argmax with what plain decoding would have produced one token at a
//! time. With BLAS-style kernels the block and the single-token forward accumulate in
//! different orders, the logits differ in the last bits and a near-tie argmax can flip. Here
//! every number a row produces is computed in one fixed order whatever else is in the call
//! (see [`gemm`] for the matrix multiply, [`attn`] for attention, [`ops`] for the row-wise
//! rest), so a block forward is bit-identical to L single steps, chunked prefill to one-shot
//! prefill, and everything downstream with them — including the codec's rounding decisions
//! in a compressed cache. Weights may be f32, f16 or bf16 (widened exactly as they stream);
//! activations, accumulators and the KV cache are f32.

pub mod attn;
pub mod elem;
pub mod gemm;
pub(crate) mod layer;
pub mod ops;
pub mod pack;

pub use attn::{AttnShape, attention};
pub use gemm::{Isa, isa, matmul, matmul_on};
pub use pack::{NR, Packed, PackedMatrix};

#[cfg(test)]
mod tests;
