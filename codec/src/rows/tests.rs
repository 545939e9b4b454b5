use half::f16;

use super::*;
use crate::{Packer, Rotation, Variant};

fn lcg(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

/// Rows that stress every rounding and tie rule: Gaussian-ish, zero, tiny (subnormal norm
/// squares), huge (near the fp16 norm limit), one-hot spikes, exact halves/integers
/// (round-half-even and argmax ties after scaling), constant rows, alternating signs.
fn hard_rows(dim: usize, n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut x = Vec::with_capacity(n * dim);
    for r in 0..n {
        let kind = r % 11;
        for i in 0..dim {
            let g = lcg(&mut s);
            x.push(match kind {
                0..=2 => g,
                3 => 0.0,
                4 => g * 1e-30,
                5 => g * 5000.0 / (dim as f32).sqrt(),
                6 => {
                    if i == r % dim {
                        7.0
                    } else {
                        0.0
                    }
                }
                7 => (g * 16.0).round() / 2.0,
                8 => 0.25,
                9 => {
                    if i % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    }
                }
                _ => g * 60.0 + if i == 3 { 40.0 } else { 0.0 },
            });
        }
    }
    x
}

fn kernels() -> Vec<Kernel> {
    available_kernels()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn kernels_match_scalar_oracle_bit_for_bit() {
    for variant in [Variant::E8, Variant::D4] {
        for rot in [Rotation::Reference, Rotation::Fast] {
            for (dim, q) in [
                (8usize, 4i64),
                (16, 10),
                (64, 2),
                (128, 10),
                (128, 152),
                (256, 38),
            ] {
                let codec = Codec::new(variant, dim, q).unwrap().with_rotation(rot);
                // 37 rows: several full groups of 8 and 16 plus a ragged tail; 1, 2, 17 and
                // 18 rows: tails that take the scalar per-row route.
                let n = [37usize, 1, 2, 17, 18][(dim + q as usize) % 5];
                let x = hard_rows(dim, n, dim as u64 * 31 + q as u64);
                let mut want = vec![0.0; x.len()];
                codec.roundtrip_into_scalar(&x, &mut want).unwrap();
                let mut zs = vec![0.0; x.len()];
                let mut ss = Vec::new();
                for xr in x.chunks_exact(dim) {
                    let mut z = vec![0.0; dim];
                    ss.push(codec.quantize_row(xr, &mut z).unwrap());
                    zs.extend_from_slice(&z);
                }
                let zs = zs[x.len()..].to_vec();
                for k in kernels() {
                    let tag = format!("{variant} {rot:?} D={dim} Q={q} {k:?}");
                    let mut got = vec![0.0; x.len()];
                    codec.roundtrip_into_with(k, &x, &mut got).unwrap();
                    assert_eq!(bits(&got), bits(&want), "roundtrip {tag}");
                    let mut z = vec![0.0; x.len()];
                    let mut sides = vec![ss[0]; n];
                    codec.quantize_rows_with(k, &x, &mut z, &mut sides).unwrap();
                    assert_eq!(bits(&z), bits(&zs), "quantize {tag}");
                    assert_eq!(sides, ss, "sides {tag}");
                    codec.dequantize_rows_with(k, &sides, &mut z).unwrap();
                    assert_eq!(bits(&z), bits(&want), "dequantize {tag}");
                }
            }
        }
    }
}

/// The row-parallel pack path writes exactly the bytes of the per-row packer (scalar
/// quantize + `pack_point`), and its decoder reads them (and hostile bytes) exactly like
/// the per-row decoder, on every kernel, for every class layout (Q = 1…152, escapes).
#[test]
fn packed_bytes_match_per_row_packer() {
    for variant in [Variant::E8, Variant::D4] {
        for q in [1i64, 2, 3, 4, 5, 10, 19, 37, 38, 76, 152] {
            for dim in [8usize, 128] {
                let codec = Codec::new(variant, dim, q).unwrap();
                let p = Packer::new(codec.clone()).unwrap();
                if p.plan().is_none() {
                    continue;
                }
                let n = [45usize, 1, 2, 17, 18][q as usize % 5];
                let x = hard_rows(dim, n, 77 + q as u64 + dim as u64);
                let mut want = Vec::new();
                let mut want_lens = Vec::new();
                let mut want_esc = 0u64;
                let mut want_rt = vec![0.0; x.len()];
                for (xr, or) in x.chunks_exact(dim).zip(want_rt.chunks_exact_mut(dim)) {
                    let mut z = vec![0.0; dim];
                    let side = codec.quantize_row(xr, &mut z).unwrap();
                    let st = p.pack_point(side, &z, &mut want);
                    want_lens.push(st.bytes);
                    want_esc += u64::from(st.escapes);
                    let mut back = vec![0.0; dim];
                    let start = want.len() - st.bytes;
                    let (s2, used) = p.unpack_point(&want[start..], &mut back).unwrap();
                    assert_eq!(used, st.bytes);
                    codec.dequantize_row(s2, &mut back).unwrap();
                    or.copy_from_slice(&back);
                }
                for k in kernels() {
                    let tag = format!("{variant} D={dim} Q={q} {k:?}");
                    let mut got = Vec::new();
                    let mut lens = Vec::new();
                    let esc = pack(k, &p, &x, &mut got, &mut lens);
                    assert_eq!(lens, want_lens, "lens {tag}");
                    assert_eq!(got, want, "bytes {tag}");
                    assert_eq!(esc, want_esc, "escapes {tag}");
                    let mut out = vec![0.0; x.len()];
                    unpack(k, &p, &want, &want_lens, &mut out).unwrap();
                    assert_eq!(bits(&out), bits(&want_rt), "decode {tag}");
                    // Corrupted bytes: errors or values, never a panic; same verdict as
                    // the per-row decoder.
                    let mut bad = want.clone();
                    for (i, b) in bad.iter_mut().enumerate() {
                        if i % 7 == 3 {
                            *b = b.wrapping_mul(31).wrapping_add(0x5b);
                        }
                    }
                    let mut o1 = vec![0.0; x.len()];
                    let r1 = unpack(k, &p, &bad, &want_lens, &mut o1);
                    let mut o2 = vec![0.0; dim];
                    let mut at = 0;
                    let mut r2 = Ok(());
                    for &len in &want_lens {
                        match p.unpack_point(&bad[at..at + len], &mut o2) {
                            Ok((_, used)) if used != len => {
                                r2 = Err(());
                                break;
                            }
                            Ok(_) => {}
                            Err(_) => {
                                r2 = Err(());
                                break;
                            }
                        }
                        at += len;
                    }
                    assert_eq!(r1.is_ok(), r2.is_ok(), "corrupt verdict {tag}");
                }
            }
        }
    }
}

#[test]
fn many_random_rows_match_at_d128() {
    for variant in [Variant::E8, Variant::D4] {
        for q in [2i64, 4, 10, 38] {
            let codec = Codec::new(variant, 128, q).unwrap();
            let x = hard_rows(128, 600, 1000 + q as u64);
            let mut want = vec![0.0; x.len()];
            codec.roundtrip_into_scalar(&x, &mut want).unwrap();
            for k in kernels() {
                let mut got = vec![0.0; x.len()];
                codec.roundtrip_into_with(k, &x, &mut got).unwrap();
                assert_eq!(bits(&got), bits(&want), "{variant} Q={q} {k:?}");
            }
            // The packed path goes through the same kernels.
            let packer = Packer::new(codec.clone()).unwrap();
            let packed = crate::encode_rows(&packer, &x).unwrap();
            let back = crate::decode_rows(&packer, &packed).unwrap();
            assert_eq!(bits(&back), bits(&want), "packed {variant} Q={q}");
        }
    }
}

mod timing {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p kakeya-lattice --lib rows::tests::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn kernel_timings() {
        let n = 4096;
        let x = crate::data::generate(crate::data::Source::Gaussian, n, 128, 1);
        let mut out = vec![0.0; x.len()];
        for variant in [Variant::E8, Variant::D4] {
            for rot in [Rotation::Reference, Rotation::Fast] {
                let c = Codec::new(variant, 128, 10).unwrap().with_rotation(rot);
                for k in available_kernels() {
                    let mut best = f64::INFINITY;
                    for _ in 0..30 {
                        let t = Instant::now();
                        c.roundtrip_into_with(k, &x, &mut out).unwrap();
                        best = best.min(t.elapsed().as_secs_f64());
                    }
                    let mut z = vec![0.0; x.len()];
                    let mut sides = vec![
                        Side {
                            norm: f16::ZERO,
                            qmax: f16::ZERO
                        };
                        n
                    ];
                    let mut bq = f64::INFINITY;
                    for _ in 0..30 {
                        let t = Instant::now();
                        c.quantize_rows_with(k, &x, &mut z, &mut sides).unwrap();
                        bq = bq.min(t.elapsed().as_secs_f64());
                    }
                    let p = crate::Packer::new(c.clone()).unwrap();
                    let mut bytes = Vec::new();
                    let mut lens = Vec::new();
                    let mut bp = f64::INFINITY;
                    for _ in 0..30 {
                        bytes.clear();
                        lens.clear();
                        let t = Instant::now();
                        pack(k, &p, &x, &mut bytes, &mut lens);
                        bp = bp.min(t.elapsed().as_secs_f64());
                    }
                    let mut bu = f64::INFINITY;
                    for _ in 0..30 {
                        let t = Instant::now();
                        unpack(k, &p, &bytes, &lens, &mut out).unwrap();
                        bu = bu.min(t.elapsed().as_secs_f64());
                    }
                    let ns = |s: f64| s / n as f64 * 1e9;
                    eprintln!(
                        "{variant} {rot:?} {k:?}: roundtrip {:.0} ns/row, quantize {:.0}, encode+pack {:.0}, unpack+decode {:.0}",
                        ns(best),
                        ns(bq),
                        ns(bp),
                        ns(bu)
                    );
                }
            }
        }
    }
}
