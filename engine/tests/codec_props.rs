//! Property tests of packed codec storage through the public `kakeya_engine::codec` API: for
//! any lattice, power-of-two dimension, packable q and finite input, the packed bytes decode
//! to exactly the codec's own quantize-dequantize result, rows concatenate and decode in
//! sequence, and truncated or arbitrary bytes are refused without a panic.

use kakeya_engine::codec::{Codec, Packer, Variant};
use proptest::prelude::*;

prop_compose! {
    fn codec_and_rows()(
        variant in prop_oneof![Just(Variant::E8), Just(Variant::D4)],
        log_dim in 3u32..8,
        q in prop_oneof![1i64..64, 64i64..32_768],
        rows in 1usize..4,
        scale in prop_oneof![Just(1e-6f32), Just(1.0f32), Just(1e4f32)],
    )(
        values in prop::collection::vec(-1.0f32..1.0, (rows << log_dim)..=(rows << log_dim)),
        variant in Just(variant),
        dim in Just(1usize << log_dim),
        q in Just(q),
        scale in Just(scale),
    ) -> (Codec, Vec<f32>) {
        let codec = Codec::new(variant, dim, q).expect("valid codec parameters");
        (codec, values.iter().map(|v| v * scale).collect())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn packed_rows_decode_to_the_codecs_own_roundtrip((codec, x) in codec_and_rows()) {
        let dim = codec.dim();
        let packer = Packer::new(codec.clone()).unwrap();
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for row in x.chunks(dim) {
            packer.encode(row, &mut bytes).unwrap();
            ends.push(bytes.len());
        }
        let mut expected = vec![0.0f32; x.len()];
        codec.roundtrip_into(&x, &mut expected).unwrap();
        let mut at = 0;
        for (r, end) in ends.iter().enumerate() {
            let mut out = vec![0.0f32; dim];
            let used = packer.decode(&bytes[at..], &mut out).unwrap();
            prop_assert_eq!(at + used, *end, "row {} consumed the wrong byte count", r);
            let want = &expected[r * dim..(r + 1) * dim];
            for (a, b) in out.iter().zip(want) {
                prop_assert!(a.to_bits() == b.to_bits() || (a - b).abs() <= 1e-6 * b.abs().max(1e-30),
                    "row {}: packed {} vs roundtrip {}", r, a, b);
            }
            at = *end;
        }
        // Each row's bytes cut short are refused, not misread.
        let first = ends[0];
        let mut out = vec![0.0f32; dim];
        for cut in [0, first / 2, first - 1] {
            prop_assert!(packer.decode(&bytes[..cut], &mut out).is_err());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        variant in prop_oneof![Just(Variant::E8), Just(Variant::D4)],
        log_dim in 3u32..7,
        q in 1i64..2_000,
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let codec = Codec::new(variant, 1 << log_dim, q).unwrap();
        let packer = Packer::new(codec).unwrap();
        let mut out = vec![0.0f32; 1 << log_dim];
        if let Ok(used) = packer.decode(&bytes, &mut out) {
            prop_assert!(used <= bytes.len());
        }
        let mut z = vec![0.0f32; 1 << log_dim];
        if let Ok((_, used)) = packer.unpack_point(&bytes, &mut z) {
            prop_assert!(used <= bytes.len());
        }
    }
}
