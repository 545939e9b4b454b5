//! Bit-identity of the exact kernels: rows in a block equal rows alone, every instruction
//! set gives the same bits, and the results are the mathematically expected ones.

use super::attn::{AttnShape, attention};
use super::elem::{Bf16, Elem, F16};
use super::gemm::{Isa, matmul_on};
use super::pack::Packed;

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.618 + seed as f32) * 1.7).sin())
        .collect()
}

fn naive(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f64> {
    let mut y = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..k)
                .map(|t| f64::from(x[i * k + t]) * f64::from(w[j * k + t]))
                .sum();
        }
    }
    y
}

fn isas() -> Vec<Isa> {
    vec![Isa::Portable, Isa::Avx2, Isa::Avx512]
}

fn check_block_equals_rows<E: Elem>(wide: &[E], wf: &[f32], m: usize, k: usize, n: usize) {
    let x = data(m * k, 11);
    let packed = Packed::from_rows(wide, n, k);
    let block = matmul_on(Isa::Avx512, &x, m, &packed);
    let want = naive(&x, m, k, wf, n);
    for (got, want) in block.iter().zip(&want) {
        assert!(
            (f64::from(*got) - want).abs() < 1e-3 * (1.0 + want.abs()),
            "{got} vs {want}"
        );
    }
    for isa in isas() {
        assert_eq!(matmul_on(isa, &x, m, &packed), block, "{isa:?}, m = {m}");
        for i in 0..m {
            let row = matmul_on(isa, &x[i * k..(i + 1) * k], 1, &packed);
            assert_eq!(
                &block[i * n..(i + 1) * n],
                &row[..],
                "{isa:?} row {i} of {m}"
            );
        }
    }
}

#[test]
fn f32_blocks_equal_single_rows_on_every_isa() {
    // Sizes off the panel (32), tile (12/8/4/2/1) and depth-block (256) grids.
    for (m, k, n) in [
        (1, 7, 5),
        (3, 100, 33),
        (13, 300, 70),
        (17, 513, 129),
        (40, 64, 96),
    ] {
        let w = data(n * k, 2);
        check_block_equals_rows(&w, &w, m, k, n);
    }
}

#[test]
fn half_weights_widen_exactly_and_keep_bit_identity() {
    let (m, k, n) = (9, 260, 45);
    let w = data(n * k, 3);
    let h: Vec<F16> = w
        .iter()
        .map(|v| F16(half::f16::from_f32(*v).to_bits()))
        .collect();
    let hf: Vec<f32> = h.iter().map(|e| e.widen()).collect();
    check_block_equals_rows(&h, &hf, m, k, n);
    let b: Vec<Bf16> = w
        .iter()
        .map(|v| Bf16(half::bf16::from_f32(*v).to_bits()))
        .collect();
    let bf: Vec<f32> = b.iter().map(|e| e.widen()).collect();
    check_block_equals_rows(&b, &bf, m, k, n);
}

#[test]
fn attention_block_equals_steps() {
    // 64 and 128 run the copies specialised for those head sizes; 24 the general one.
    for hd in [24, 64, 128] {
        attention_block_equals_steps_at(hd);
    }
}

fn attention_block_equals_steps_at(hd: usize) {
    let (heads, kvh, t, l) = (4, 2, 11, 5);
    let q = data(l * heads * hd, 4);
    let (k, v) = (data(t * kvh * hd, 5), data(t * kvh * hd, 6));
    let s = AttnShape {
        l,
        heads,
        kv_heads: kvh,
        head_dim: hd,
        t,
    };
    let block = attention(&q, &k, &v, s, 0.2);
    for i in 0..l {
        let ti = t - l + i + 1;
        let one = attention(
            &q[i * heads * hd..(i + 1) * heads * hd],
            &k[..ti * kvh * hd],
            &v[..ti * kvh * hd],
            AttnShape { l: 1, t: ti, ..s },
            0.2,
        );
        assert_eq!(&block[i * heads * hd..(i + 1) * heads * hd], &one[..]);
    }
    // Against a plain f64 softmax for the last query of head 3.
    let (i, h) = (l - 1, 3);
    let g = h / (heads / kvh);
    let qr = &q[(i * heads + h) * hd..(i * heads + h + 1) * hd];
    let sc: Vec<f64> = (0..t)
        .map(|tok| {
            let kr = &k[(tok * kvh + g) * hd..(tok * kvh + g + 1) * hd];
            qr.iter()
                .zip(kr)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
                * 0.2
        })
        .collect();
    let mx = sc.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = sc.iter().map(|s| (s - mx).exp()).collect();
    let z: f64 = e.iter().sum();
    for d in 0..hd {
        let want: f64 = (0..t)
            .map(|tok| e[tok] / z * f64::from(v[(tok * kvh + g) * hd + d]))
            .sum();
        let got = f64::from(block[(i * heads + h) * hd + d]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
