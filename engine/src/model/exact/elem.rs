//! Weight element types the exact kernels stream: f32, and f16/bf16 widened to f32 on load
//! (activations and accumulators are always f32). The widening is exact and written as
//! plain integer/float arithmetic, so it vectorises on every ISA and gives the same bits
//! everywhere — the kernels' results do not depend on which instructions ran them.

/// A stored weight element.
pub trait Elem: Copy + Send + Sync + Default + 'static {
    /// Bytes per element (for bandwidth figures).
    const BYTES: usize;
    fn widen(self) -> f32;
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
