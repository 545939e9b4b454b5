//! Typed errors for the codec. Every validation the reference performs is a hard error here
//! too, with a message that names the offending value, so a CLI user sees what to fix.

use crate::Variant;

/// Everything the codec can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The Sylvester–Hadamard rotation only exists for power-of-two sizes.
    #[error("dimension D={dim} is not a power of 2 (the Hadamard rotation needs D = 2^k, D > 0)")]
    NotPowerOfTwo {
        /// The dimension asked for.
        dim: usize,
    },
    /// Each lattice block covers `block` contiguous coordinates.
    #[error("dimension D={dim} is not a multiple of the {variant} block size {block}")]
    NotBlockMultiple {
        /// The dimension asked for.
        dim: usize,
        /// The lattice variant.
        variant: Variant,
        /// Its block size.
        block: usize,
    },
    /// Q is the integer half-range of the lattice grid; 0 would collapse every vector.
    #[error("q_range Q={q} must be at least 1")]
    QTooSmall {
        /// The Q asked for.
        q: i64,
    },
    /// Beyond this, ±(Q+½) is no longer exactly representable in f32 and the pipeline's
    /// tie rules stop meaning anything.
    #[error("q_range Q={q} is above the supported maximum {max}")]
    QTooLarge {
        /// The Q asked for.
        q: i64,
        /// The largest supported Q.
        max: u32,
    },
    /// Packed storage keeps one block code in at most 128 bits.
    #[error("packed storage supports Q up to {max} for {variant} (asked Q={q})")]
    PackUnsupported {
        /// The lattice variant.
        variant: Variant,
        /// The Q asked for.
        q: u32,
        /// The largest Q packed storage supports.
        max: u32,
    },
    /// A flat buffer must hold a whole number of rows.
    #[error("buffer of {len} values is not a whole number of rows of D={dim}")]
    RaggedBuffer {
        /// Values in the buffer.
        len: usize,
        /// Row length D.
        dim: usize,
    },
    /// Row slices handed to a per-row call must have exactly D values.
    #[error("row has {len} values but the codec's D is {dim}")]
    RowLength {
        /// Length handed in.
        len: usize,
        /// Length expected.
        dim: usize,
    },
    /// A packed vector is shorter than its header and codes, or has bytes left over.
    #[error("packed vector is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Group-wise affine quantization needs whole groups.
    #[error("dimension D={dim} is not a multiple of the affine group size {group}")]
    GroupMultiple {
        /// Row length D.
        dim: usize,
        /// Affine group size.
        group: usize,
    },
    /// Bits outside the supported range for a scalar baseline.
    #[error("bit width {bits} is outside {min}..={max}")]
    BitWidth {
        /// Bits asked for.
        bits: u32,
        /// Smallest supported.
        min: u32,
        /// Largest supported.
        max: u32,
    },
    /// Tensor plumbing failed (device copy, dtype conversion, shape).
    #[error("tensor: {0}")]
    Tensor(String),
}
