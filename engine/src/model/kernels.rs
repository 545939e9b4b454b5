//! Batch-invariant CPU kernels for the two operations whose floating-point result would
//! otherwise depend on how many tokens are processed together: `x·Wᵀ` and attention.
//!
//! Why: speculative decoding verifies a block of L tokens in one forward and compares the
//! argmax of each row with what plain decoding would have produced one token at a time. With
//! BLAS-style kernels the block and the single-token forward accumulate in different orders,
//! the logits differ in the last bits, and a near-tie argmax can flip — spec decoding would
//! then be "lossless up to rounding". Here every output element is a dot product computed in
//! one fixed order (64 independent lanes, then a fixed tree), whatever the number of rows, and
//! attention for a query at position p reads exactly keys 0..=p. A block forward is therefore
//! bit-identical to L single steps, and so is everything downstream, including the codec's
//! rounding decisions in a compressed cache.

use rayon::prelude::*;

/// Independent partial sums per dot product: four AVX-512 registers, so the adds are not one
/// latency-bound chain and a single-row (decode) matmul streams weights at memory speed.
const LANES: usize = 64;
/// Input rows per register tile in multi-row matmuls (2 × 4 accumulator registers).
const TILE: usize = 2;

/// Dot product in a fixed order: lane-wise partial sums, then a fixed reduction tree. The
/// lanes are independent, so vectorisation (any width) never changes the result.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += xa[l] * xb[l];
        }
    }
    for (l, (x, y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[l] += x * y;
    }
    reduce(acc)
}

#[inline(always)]
fn reduce(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `TILE` dot products against one weight row, sharing its loads (register blocking). Each
/// follows exactly [`dot`]'s order, so results equal `TILE` separate `dot` calls.
#[inline(always)]
fn dot_tile(x: [&[f32]; TILE], w: &[f32]) -> [f32; TILE] {
    let mut acc = [[0.0f32; LANES]; TILE];
    let full = w.len() - w.len() % LANES;
    for c in (0..full).step_by(LANES) {
        let wc = &w[c..c + LANES];
        for (r, xr) in x.iter().enumerate() {
            let xc = &xr[c..c + LANES];
            for l in 0..LANES {
                acc[r][l] += xc[l] * wc[l];
            }
        }
    }
    let mut out = [0.0f32; TILE];
    for (r, xr) in x.iter().enumerate() {
        for (l, (a, b)) in xr[full..].iter().zip(&w[full..]).enumerate() {
            acc[r][l] += a * b;
        }
        out[r] = reduce(acc[r]);
    }
    out
}

/// `out_t[j][i] = x[i]·w[j]` for the rows of one weight chunk: tiles of four x rows stay in
/// L1 while the weight chunk streams from L2.
#[inline(always)]
fn chunk_body(x: &[f32], m: usize, k: usize, w: &[f32], out_t: &mut [f32]) {
    let mut i = 0;
    while i + TILE <= m {
        let xs: [&[f32]; TILE] = std::array::from_fn(|r| &x[(i + r) * k..(i + r + 1) * k]);
        for (wrow, o) in w.chunks_exact(k).zip(out_t.chunks_exact_mut(m)) {
            o[i..i + TILE].copy_from_slice(&dot_tile(xs, wrow));
        }
        i += TILE;
    }
    for r in i..m {
        let xr = &x[r * k..(r + 1) * k];
        for (wrow, o) in w.chunks_exact(k).zip(out_t.chunks_exact_mut(m)) {
            o[r] = dot(xr, wrow);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn chunk_avx512(x: &[f32], m: usize, k: usize, w: &[f32], out_t: &mut [f32]) {
    chunk_body(x, m, k, w, out_t)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_avx2(x: &[f32], m: usize, k: usize, w: &[f32], out_t: &mut [f32]) {
    chunk_body(x, m, k, w, out_t)
}

fn chunk(x: &[f32], m: usize, k: usize, w: &[f32], out_t: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected at run time.
            return unsafe { chunk_avx512(x, m, k, w, out_t) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was detected at run time.
            return unsafe { chunk_avx2(x, m, k, w, out_t) };
        }
    }
    chunk_body(x, m, k, w, out_t)
}

/// Weight rows per parallel task: enough work per task to amortise scheduling (more for a
/// single row, where a task is a pure weight stream), few enough to balance the threads.
fn rows_per_task(m: usize, n: usize, k: usize) -> usize {
    let budget = if m == 1 { 65536 } else { 16384 };
    (budget / k.max(1)).clamp(8, 4096).min(n.max(1))
}

/// `y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias)`, row-major, batch-invariant.
pub fn linear(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    debug_assert_eq!(x.len(), m * k);
    debug_assert_eq!(w.len(), n * k);
    let per = rows_per_task(m, n, k);
    let mut out_t = vec![0.0f32; n * m];
    out_t
        .par_chunks_mut(per * m)
        .zip(w.par_chunks(per * k))
        .for_each(|(o, wc)| chunk(x, m, k, wc, o));
    let mut y = if m == 1 {
        out_t
    } else {
        let mut y = vec![0.0f32; m * n];
        for (j, col) in out_t.chunks_exact(m).enumerate() {
            for (i, v) in col.iter().enumerate() {
                y[i * n + j] = *v;
            }
        }
        y
    };
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(n) {
            for (v, bj) in row.iter_mut().zip(b) {
                *v += bj;
            }
        }
    }
    y
}

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    /// New query tokens.
    pub l: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Cached tokens including the new ones; query i sits at position t − l + i.
    pub t: usize,
}

/// Causal attention: `q` is `[l, heads, hd]`, `k`/`v` are `[t, kv_heads, hd]` (token-major,
/// as the cache stores them); returns `[l, heads, hd]`. Query i attends to keys
/// 0..=t−l+i only, so its result does not depend on l.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], s: AttnShape, scale: f32) -> Vec<f32> {
    let hd = s.head_dim;
    let rep = s.heads / s.kv_heads.max(1);
    let mut out = vec![0.0f32; s.l * s.heads * hd];
    out.par_chunks_mut(hd).enumerate().for_each_init(
        Vec::new,
        |scores: &mut Vec<f32>, (idx, o)| {
            let (i, h) = (idx / s.heads, idx % s.heads);
            let g = h / rep;
            let qrow = &q[idx * hd..(idx + 1) * hd];
            let upto = s.t - s.l + i + 1;
            scores.clear();
            let mut max = f32::NEG_INFINITY;
            for tok in 0..upto {
                let off = (tok * s.kv_heads + g) * hd;
                let sc = dot(qrow, &k[off..off + hd]) * scale;
                max = max.max(sc);
                scores.push(sc);
            }
            let mut sum = 0.0f32;
            for sc in scores.iter_mut() {
                *sc = (*sc - max).exp();
                sum += *sc;
            }
            for (tok, p) in scores.iter().enumerate() {
                let off = (tok * s.kv_heads + g) * hd;
                for (od, vd) in o.iter_mut().zip(&v[off..off + hd]) {
                    *od += p * vd;
                }
            }
            let inv = 1.0 / sum;
            for od in o.iter_mut() {
                *od *= inv;
            }
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.618 + seed as f32) * 1.7).sin())
            .collect()
    }

    #[test]
    fn linear_rows_equal_single_rows_bitwise() {
        let (m, k, n) = (11, 100, 33);
        let (x, w, b) = (data(m * k, 1), data(n * k, 2), data(n, 3));
        let y = linear(&x, m, k, &w, n, Some(&b));
        for i in 0..m {
            let yi = linear(&x[i * k..(i + 1) * k], 1, k, &w, n, Some(&b));
            assert_eq!(&y[i * n..(i + 1) * n], &yi[..]);
            let naive: f32 = (0..k).map(|j| x[i * k + j] * w[j]).sum::<f32>() + b[0];
            assert!((naive - yi[0]).abs() < 1e-4);
        }
    }

    #[test]
    fn attention_block_equals_steps() {
        let (heads, kvh, hd, t) = (4, 2, 16, 9);
        let q = data(3 * heads * hd, 4);
        let (k, v) = (data(t * kvh * hd, 5), data(t * kvh * hd, 6));
        let s = AttnShape {
            l: 3,
            heads,
            kv_heads: kvh,
            head_dim: hd,
            t,
        };
        let block = attention(&q, &k, &v, s, 0.25);
        for i in 0..3 {
            let ti = t - 3 + i + 1;
            let one = attention(
                &q[i * heads * hd..(i + 1) * heads * hd],
                &k[..ti * kvh * hd],
                &v[..ti * kvh * hd],
                AttnShape { l: 1, t: ti, ..s },
                0.25,
            );
            assert_eq!(&block[i * heads * hd..(i + 1) * heads * hd], &one[..]);
        }
    }
}
