//! `kakeya-lattice`: the KakeyaLattice vector codec (E8 v1.5, D4 v1.4) as a library of its
//! own. It owns per-vector normalisation, the Sylvester–Hadamard rotation, per-vector fp16
//! scaling and the closest-point search in E8 or D4 blocks, with the reference's exact float32
//! arithmetic, plus what the reference never had: packed storage that decodes to exactly the
//! round trip, a packed file format, and streaming file coding on all cores in bounded memory.
//! It needs no model and no tensor library (the `candle` feature adds the tensor entry point).
//!
//! Entry points:
//! * [`Codec`] — one configured codec: [`Codec::roundtrip_row`], [`Codec::quantize_row`] /
//!   [`Codec::dequantize_row`] (lattice point + [`Side`] scalars);
//! * [`batch`] — `[N, D]` slices across all cores: [`roundtrip_rows`], [`encode_rows`],
//!   [`decode_rows`] with [`PackedRows`];
//! * [`pack::Packer`] — one vector ↔ bytes;
//! * [`stream`] — `.f32` row streams and packed `.kl` files through bounded buffers
//!   ([`stream::roundtrip_stream`], [`stream::encode_stream`], [`stream::decode_stream`]);
//! * [`file`](mod@file) — the packed file header;
//! * `tensor::roundtrip_tensor` (feature `candle`) — a candle `Tensor` in, a `Tensor` out;
//! * [`baselines`] — identity, MLX-style affine int8/int4 and the TurboQuant-style scalar
//!   quantizer, for comparisons on the same data.
//!
//! ```
//! use kakeya_lattice::{Codec, Variant};
//!
//! let codec = Codec::new(Variant::E8, 128, 38)?;
//! let x: Vec<f32> = (0..128).map(|i| (i as f32 * 0.1).sin()).collect();
//! let y = codec.roundtrip_row(&x)?;
//! let err: f32 = x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum();
//! let energy: f32 = x.iter().map(|a| a * a).sum();
//! assert!(err < 1e-2 * energy);
//! # Ok::<(), kakeya_lattice::CodecError>(())
//! ```

#![warn(missing_docs)]

use std::fmt;

pub mod baselines;
pub mod batch;
pub mod bitio;
pub mod bits;
pub mod cpu;
pub mod data;
mod error;
pub mod file;
pub mod hadamard;
pub mod lattice;
pub mod pack;
mod pipeline;
pub mod rows;
mod simd;
pub mod stream;
#[cfg(feature = "candle")]
pub mod tensor;

pub use batch::{PackedRows, Quantizer, decode_rows, encode_rows, roundtrip_rows};
pub use bits::bits;
pub use cpu::Kernel;
pub use error::CodecError;
pub use hadamard::Rotation;
pub use pack::Packer;
pub use pipeline::{Codec, EPS, Side};
pub use stream::{StreamError, StreamStats};

/// Largest q_range accepted. Above 2²⁰ the half-integer points ±(Q+½) and the grid spacing
/// stop being exactly representable next to the rotated values in f32, so the reference's tie
/// rules lose their meaning; no published operating point comes close (the largest is 152).
pub const MAX_Q: u32 = 1 << 20;

/// The two lattice variants; they share the pipeline and differ only in the block search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// v1.5: blocks of 8 in E8 = D8 ∪ (D8 + ½·𝟙).
    E8,
    /// v1.4: blocks of 4 in D4 = {z ∈ Z⁴ : Σz even}.
    D4,
}

impl Variant {
    /// Coordinates per lattice block.
    pub fn block(self) -> usize {
        match self {
            Variant::E8 => 8,
            Variant::D4 => 4,
        }
    }

    /// Lowercase name, as the CLI and reports spell it.
    ///
    /// ```
    /// assert_eq!(kakeya_lattice::Variant::D4.name(), "d4");
    /// assert_eq!("E8".parse::<kakeya_lattice::Variant>().unwrap(), kakeya_lattice::Variant::E8);
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Variant::E8 => "e8",
            Variant::D4 => "d4",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "e8" => Ok(Variant::E8),
            "d4" => Ok(Variant::D4),
            other => Err(format!("unknown variant `{other}` (expected e8 or d4)")),
        }
    }
}

/// The reference's constructor checks, in its order: D is a positive power of two, D is a
/// multiple of the block, 1 ≤ Q (≤ [`MAX_Q`] here). Returns Q as u32.
pub fn validate(variant: Variant, dim: usize, q: i64) -> Result<u32, CodecError> {
    if dim == 0 || !dim.is_power_of_two() {
        return Err(CodecError::NotPowerOfTwo { dim });
    }
    if !dim.is_multiple_of(variant.block()) {
        return Err(CodecError::NotBlockMultiple {
            dim,
            variant,
            block: variant.block(),
        });
    }
    if q < 1 {
        return Err(CodecError::QTooSmall { q });
    }
    if q > i64::from(MAX_Q) {
        return Err(CodecError::QTooLarge { q, max: MAX_Q });
    }
    Ok(q as u32)
}
