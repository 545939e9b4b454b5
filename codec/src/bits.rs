//! Bit accounting exactly as the reference states it (spec §1.5):
//! `bits(D, Q) = (D / bd) · ⌈b_real(Q)⌉ + 32`, with `b_real = 8·log₂(2Q+1)` for E8 and
//! `4·log₂(2Q+1) − 1` for D4. The ceiling is computed with integers where the power fits in
//! u128, because `8·log₂(2Q+1)` is never an integer (2Q+1 is odd) and an exact bit length
//! cannot be fooled by floating-point rounding near an integer.

use crate::{CodecError, Variant, validate};

/// The two fp16 side scalars (‖x‖ and qmax) carried by every vector.
pub const SIDE_BITS: u64 = 32;

/// `b_real(Q)` as a real number: the information content of one block's grid.
pub fn block_bits_real(variant: Variant, q: u32) -> f64 {
    let m = 2.0 * f64::from(q) + 1.0;
    match variant {
        Variant::E8 => 8.0 * m.log2(),
        Variant::D4 => 4.0 * m.log2() - 1.0,
    }
}

/// `⌈b_real(Q)⌉`: the bits one lattice block costs in the accounting.
pub fn block_bits(variant: Variant, q: u32) -> u32 {
    let m = 2 * u128::from(q) + 1;
    let exact = match variant {
        // ⌈log₂ M⁸⌉ = bit length of M⁸ since M⁸ is odd and > 1.
        Variant::E8 => m.checked_pow(8).map(|p| 128 - p.leading_zeros()),
        // ⌈log₂ M⁴ − 1⌉ = bit length of M⁴, minus one.
        Variant::D4 => m.checked_pow(4).map(|p| 127 - p.leading_zeros()),
    };
    exact.unwrap_or_else(|| block_bits_real(variant, q).ceil() as u32)
}

/// Accounted bits per vector of dimension `dim` at q_range `q`, after the same validation the
/// codec constructor applies.
pub fn bits(variant: Variant, dim: usize, q: i64) -> Result<u64, CodecError> {
    let q = validate(variant, dim, q)?;
    let blocks = (dim / variant.block()) as u64;
    Ok(blocks * u64::from(block_bits(variant, q)) + SIDE_BITS)
}

/// Bits of the scalar TurboQuant-style baseline (spec §1.6): `D·b + 32`.
pub fn turboquant_bits(dim: usize, b: u32) -> u64 {
    dim as u64 * u64::from(b) + SIDE_BITS
}

/// Bits of MLX-style affine quantization: `b` bits per value plus an fp16 scale and an fp16
/// bias per group.
pub fn affine_bits(dim: usize, b: u32, group: usize) -> u64 {
    dim as u64 * u64::from(b) + (dim / group) as u64 * 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_values() {
        let e8: Vec<u64> = [38, 10, 4, 152]
            .iter()
            .map(|&q| bits(Variant::E8, 128, q).unwrap())
            .collect();
        assert_eq!(e8, [848, 608, 448, 1104]);
        let d4: Vec<u64> = [4, 10, 38, 152]
            .iter()
            .map(|&q| bits(Variant::D4, 128, q).unwrap())
            .collect();
        assert_eq!(d4, [416, 576, 832, 1088]);
        assert_eq!(bits(Variant::E8, 128, 5).unwrap(), 480);
        assert_eq!(
            [4, 10, 38].map(|q| bits(Variant::E8, 64, q).unwrap()),
            [240, 320, 440]
        );
        assert_eq!(turboquant_bits(128, 2), 288);
        assert_eq!(turboquant_bits(128, 8), 1056);
        assert_eq!(affine_bits(128, 8, 64), 1088);
    }

    #[test]
    fn exact_and_float_agree() {
        for q in 1..3000u32 {
            for v in [Variant::E8, Variant::D4] {
                let exact = block_bits(v, q);
                let float = block_bits_real(v, q).ceil() as u32;
                assert_eq!(exact, float, "{v} Q={q}");
            }
        }
    }

    #[test]
    fn validation() {
        assert!(matches!(
            bits(Variant::E8, 96, 4),
            Err(CodecError::NotPowerOfTwo { .. })
        ));
        assert!(matches!(
            bits(Variant::E8, 4, 4),
            Err(CodecError::NotBlockMultiple { .. })
        ));
        assert!(matches!(
            bits(Variant::D4, 8, 0),
            Err(CodecError::QTooSmall { .. })
        ));
    }
}
