use super::*;

fn lcg(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

#[test]
fn packed_decode_equals_roundtrip() {
    let mut s = 7u64;
    for variant in [Variant::E8, Variant::D4] {
        for q in [1i64, 2, 3, 4, 5, 10, 19, 38, 152, 1000] {
            for dim in [8usize, 64, 128] {
                let codec = Codec::new(variant, dim, q).unwrap();
                let packer = Packer::new(codec.clone()).unwrap();
                for row in 0..40 {
                    let x: Vec<f32> = (0..dim)
                        .map(|i| {
                            let v = lcg(&mut s);
                            if row % 5 == 0 && i == 3 { 50.0 } else { v }
                        })
                        .collect();
                    let want = codec.roundtrip_row(&x).unwrap();
                    let mut buf = Vec::new();
                    let st = packer.encode(&x, &mut buf).unwrap();
                    assert_eq!(st.bytes, buf.len());
                    let mut got = vec![0.0; dim];
                    let used = packer.decode(&buf, &mut got).unwrap();
                    assert_eq!(used, buf.len());
                    assert_eq!(got, want, "{variant} D={dim} Q={q}");
                    if st.escapes == 0 {
                        assert_eq!(buf.len(), packer.base_bytes());
                    }
                }
            }
        }
    }
}

#[test]
fn every_block_point_roundtrips() {
    // Exhaustive over small Q: every clamped point shape encodes and decodes.
    for q in [1u32, 2, 3] {
        let codec = Codec::new(Variant::E8, 8, i64::from(q)).unwrap();
        let p = Packer::new(codec).unwrap();
        let q2 = 2 * q as i32;
        let vals: Vec<i32> = (-q2..=q2).collect();
        let mut t = [0i32; 8];
        let total = vals.len().pow(8);
        for idx in (0..total).step_by(7) {
            let mut k = idx;
            for ti in t.iter_mut() {
                *ti = vals[k % vals.len()];
                k /= vals.len();
            }
            if let Some(code) = p.block_code(&t) {
                let mut back = [0i32; 8];
                assert!(p.block_point(code, &mut back).unwrap());
                assert_eq!(back, t, "Q={q} code={code}");
            }
        }
    }
}

/// The u64 multiply-shift path gives the u128 path's codes and points.
#[test]
fn fast_path_matches_wide_path() {
    let d = FastDiv::new(21);
    for n in [
        0u64,
        1,
        20,
        21,
        22,
        441,
        1 << 36,
        u64::MAX,
        u64::MAX - 1,
        37_822_859_361,
    ] {
        assert_eq!(d.divmod(n), (n / 21, n % 21));
    }
    let mut s = 99u64;
    for variant in [Variant::E8, Variant::D4] {
        for q in [1u32, 2, 3, 4, 5, 10, 19, 37, 38, 76, 127] {
            let codec = Codec::new(variant, 8, i64::from(q)).unwrap();
            let p = Packer::new(codec).unwrap();
            let Some(f) = p.fast.clone() else { continue };
            let bd = variant.block();
            let q2 = 2 * q as i32;
            for i in 0..20000 {
                let mut t = [0i32; 8];
                let odd = variant == Variant::E8 && i % 2 == 1;
                for tc in t.iter_mut().take(bd) {
                    let u = ((lcg(&mut s) + 0.5) * (2 * q + 1) as f32) as i32 - q as i32;
                    let u = u.clamp(-(q as i32), q as i32);
                    *tc = if odd {
                        (2 * u + 1).clamp(-q2, q2)
                    } else {
                        2 * u
                    };
                    if i % 5 == 0 && lcg(&mut s) > 0.3 {
                        *tc = if lcg(&mut s) > 0.0 { q2 } else { -q2 };
                    }
                }
                let wide = p.block_code(&t[..bd]);
                match f.code(&t[..bd]) {
                    Code64::Code(c) => assert_eq!(Some(u128::from(c)), wide, "{t:?}"),
                    Code64::Escape => assert_eq!(None, wide, "{t:?}"),
                    Code64::Slow => {}
                }
                if let Some(code) = wide {
                    let mut a = [0i32; 8];
                    let mut b = [0i32; 8];
                    let wb = p.block_point(code, &mut a[..bd]).unwrap();
                    if let Some(fb) = f.point(code as u64, &mut b[..bd]).unwrap() {
                        assert_eq!((fb, b), (wb, a), "{variant} Q={q} code={code}");
                    }
                    assert_eq!(a, t, "{variant} Q={q}");
                }
            }
        }
    }
}

#[test]
fn hostile_bytes_do_not_panic() {
    let codec = Codec::new(Variant::E8, 64, 4).unwrap();
    let p = Packer::new(codec).unwrap();
    let mut out = vec![0.0; 64];
    assert!(p.decode(&[], &mut out).is_err());
    assert!(p.decode(&[0xff; 3], &mut out).is_err());
    let _ = p.decode(&[0xff; 200], &mut out);
}
