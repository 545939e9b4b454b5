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

fn packed_file(rows: usize) -> (Vec<f32>, Vec<u8>) {
    let codec = Codec::new(Variant::E8, 64, 38).unwrap();
    let x = generate(Source::Gaussian, rows, 64, 5);
    let mut out = Vec::new();
    let packer = Packer::new(codec).unwrap();
    encode_stream(&packer, &le(&x)[..], rows as u64, &mut out, Some(4)).unwrap();
    (x, out)
}

fn decode_err(bytes: &[u8], with_len: bool) -> String {
    let len = with_len.then_some(bytes.len() as u64);
    match decode_stream(bytes, Vec::new(), len) {
        Ok(_) => panic!("accepted a hostile file"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_headers_are_refused() {
    let (_, good) = packed_file(10);
    let mut sink = Vec::new();
    decode_stream(&good[..], &mut sink, Some(good.len() as u64)).unwrap();
    let patch = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..20].to_vec(), "truncated"),
        (Vec::new(), "truncated"),
        (patch(0, b"KLATTICX"), "magic"),
        (patch(8, &2u16.to_le_bytes()), "version 2"),
        (patch(10, &[7]), "variant code 7"),
        (patch(11, &[9]), "rotation code 9"),
        (patch(12, &0u32.to_le_bytes()), "at least 1"),
        (patch(12, &40000u32.to_le_bytes()), "packed maximum"),
        (patch(16, &(1u32 << 30).to_le_bytes()), "maximum"),
        (patch(16, &96u32.to_le_bytes()), "power of 2"),
        (patch(20, &0u32.to_le_bytes()), "frame size"),
        (patch(20, &u32::MAX.to_le_bytes()), "frame size"),
        (patch(32, &[1]), "reserved"),
    ];
    for (bytes, want) in &cases {
        for with_len in [true, false] {
            let e = decode_err(bytes, with_len);
            assert!(e.contains(want), "{want}: {e}");
        }
    }
    // Row counts that lie: the size check refuses up front; without a length, the frames do.
    let more = patch(24, &11u64.to_le_bytes());
    assert!(decode_err(&more, true).contains("row count"));
    assert!(decode_err(&more, false).contains("expected"));
    let huge = patch(24, &u64::MAX.to_le_bytes());
    assert!(decode_err(&huge, true).contains("row count"));
    let fewer = patch(24, &8u64.to_le_bytes());
    assert!(decode_err(&fewer, false).contains("bytes follow"));
    assert!(decode_err(&fewer, true).contains("bytes follow"));
    // A truncated body, a frame that lies about its rows or payload, a trailing byte.
    let cut = &good[..good.len() - 3];
    assert!(decode_err(cut, true).contains("truncated"));
    assert!(decode_err(cut, false).contains("truncated"));
    let frame = HEADER_BYTES;
    let bad_rows = patch(frame, &3u32.to_le_bytes());
    assert!(decode_err(&bad_rows, false).contains("holds 3 rows, expected 4"));
    let bad_payload = patch(frame + 8, &1u64.to_le_bytes());
    assert!(decode_err(&bad_payload, false).contains("payload"));
    let bad_long = patch(frame + 4, &5u32.to_le_bytes());
    assert!(decode_err(&bad_long, false).contains("long rows"));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(decode_err(&trailing, false).contains("bytes follow"));
    // A forged side scalar (norm = +inf) decodes to non-finite values: refused.
    let first_row = frame + 16;
    let forged = patch(first_row, &0x7c00u16.to_le_bytes());
    assert!(decode_err(&forged, true).contains("non-finite"));
}

#[test]
fn header_round_trips_and_bad_input_is_named() {
    let codec = Codec::new(Variant::D4, 64, 10).unwrap();
    let h = Header::for_codec(&codec, 42);
    assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    let packer = Packer::new(codec.clone()).unwrap();
    let x = generate(Source::Gaussian, 5, 64, 1);
    // Declared rows must match the input.
    for declared in [4u64, 6] {
        let e = encode_stream(&packer, &le(&x)[..], declared, Vec::new(), None).unwrap_err();
        assert!(matches!(e, StreamError::RowCount { .. }), "{e}");
    }
    // A ragged input, a NaN and a norm beyond fp16 are named by row.
    let e = roundtrip_stream(&codec, &le(&x)[..10], Vec::new(), None).unwrap_err();
    assert!(e.to_string().contains("not whole float32 rows"), "{e}");
    let mut bad = x.clone();
    bad[3 * 64 + 7] = f32::NAN;
    let e = roundtrip_stream(&codec, &le(&bad)[..], Vec::new(), Some(2)).unwrap_err();
    assert!(e.to_string().contains("row 3 column 7"), "{e}");
    let e = encode_stream(&packer, &le(&bad)[..], 5, Vec::new(), Some(2)).unwrap_err();
    assert!(e.to_string().contains("row 3 column 7"), "{e}");
    let mut big = x.clone();
    big[4 * 64] = 1e30;
    let e = roundtrip_stream(&codec, &le(&big)[..], Vec::new(), None).unwrap_err();
    assert!(matches!(e, StreamError::Overflow { row: 4 }), "{e}");
    let e = encode_stream(&packer, &le(&big)[..], 5, Vec::new(), None).unwrap_err();
    assert!(matches!(e, StreamError::Overflow { row: 4 }), "{e}");
}
