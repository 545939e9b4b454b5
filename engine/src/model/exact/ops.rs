//! Row-wise operations of the exact path on plain f32 slices: RMS norm, rotary embedding,
//! SwiGLU, residual add. Each row is computed on its own in a fixed order, so results do
//! not depend on how many rows a call holds. Plain multiply-then-add (never a fused
//! multiply-add) keeps them identical on every CPU without run-time dispatch.

use rayon::prelude::*;

/// Rows per parallel task in the row-wise operations (decode runs them inline).
const ROWS_PER_TASK: usize = 16;

/// Independent partial sums in a row reduction.
const LANES: usize = 16;

/// Sum of squares in a fixed order: `LANES` partial sums, then a fixed tree.
fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (chunks, tail) = x.as_chunks::<LANES>();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l] * c[l];
        }
    }
    for (l, v) in tail.iter().enumerate() {
        acc[l] += v * v;
    }
    tree(acc)
}

#[inline(always)]
pub(crate) fn tree(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

/// RMS-normalise each `d`-wide row of `x` and scale by `w`.
pub fn rms_norm(x: &[f32], d: usize, w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    if d == 0 {
        return out;
    }
    let rows = |(x, out): (&[f32], &mut [f32])| {
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let inv = 1.0 / (sum_squares(row) / d as f32 + eps).sqrt();
            for ((o, v), g) in o.iter_mut().zip(row).zip(w) {
                *o = v * inv * g;
            }
        }
    };
    let chunk = d * ROWS_PER_TASK;
    if x.len() <= chunk {
        rows((x, &mut out));
    } else {
        x.par_chunks(chunk)
            .zip(out.par_chunks_mut(chunk))
            .for_each(rows);
    }
    out
}

/// Rotate each head of `x` (`[l, heads, hd]`) in place, the non-interleaved (GPT-NeoX)
/// layout Llama and Qwen use: the first half of a head pairs with the second half.
/// `cos`/`sin` are `[l, hd/2]`.
pub fn rope(x: &mut [f32], l: usize, hd: usize, cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    if half == 0 || l == 0 {
        return;
    }
    let per_row = x.len() / l;
    for (t, row) in x.chunks_exact_mut(per_row).enumerate() {
        let (c, s) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        for head in row.chunks_exact_mut(hd) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * c[i] - x2 * s[i];
                b[i] = x1 * s[i] + x2 * c[i];
            }
        }
    }
}

/// `silu(gate) · up` for rows laid out `[gate (width) | up (width)]`.
pub fn swiglu(gate_up: &[f32], width: usize) -> Vec<f32> {
    let rows = gate_up.len() / (2 * width).max(1);
    let mut out = vec![0.0f32; rows * width];
    if width == 0 {
        return out;
    }
    let body = |(gu, out): (&[f32], &mut [f32])| {
        for (row, o) in gu.chunks_exact(2 * width).zip(out.chunks_exact_mut(width)) {
            let (g, u) = row.split_at(width);
            for ((o, g), u) in o.iter_mut().zip(g).zip(u) {
                *o = g / (1.0 + (-g).exp()) * u;
            }
        }
    };
    if rows <= ROWS_PER_TASK {
        body((gate_up, &mut out));
    } else {
        gate_up
            .par_chunks(2 * width * ROWS_PER_TASK)
            .zip(out.par_chunks_mut(width * ROWS_PER_TASK))
            .for_each(body);
    }
    out
}

/// `x += y`.
pub fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Add a bias to every `bias.len()`-wide row.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len().max(1)) {
        add_into(row, bias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_matches_the_definition() {
        let x: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..20).map(|i| 1.0 + i as f32 * 0.01).collect();
        let y = rms_norm(&x, 20, &w, 1e-6);
        for r in 0..2 {
            let row = &x[r * 20..(r + 1) * 20];
            let ms: f64 = row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / 20.0;
            for i in 0..20 {
                let want = f64::from(row[i]) / (ms + 1e-6).sqrt() * f64::from(w[i]);
                assert!((want - f64::from(y[r * 20 + i])).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn rope_rotates_halves() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        let (c, s) = (vec![0.0, 1.0], vec![1.0, 0.0]);
        rope(&mut x, 1, 4, &c, &s);
        // Pair (1, 3) rotated by 90°, pair (2, 4) by 0°.
        assert_eq!(x, vec![-3.0, 2.0, 1.0, 4.0]);
    }
}
