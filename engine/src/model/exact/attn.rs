//! Causal attention for the exact path. The query at position p reads keys 0..=p in order
//! and nothing else, each score is one fixed-order dot product, the softmax sums in token
//! order and the values accumulate in token order: a query's result is the same whether it
//! arrives alone or in a block, and on every instruction set (fused multiply-adds only, in
//! the same places everywhere).

use rayon::prelude::*;

use super::gemm::Isa;
use super::ops::tree;

const LANES: usize = 16;

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

/// `q` is `[l, heads, hd]`, `k`/`v` are `[t, kv_heads, hd]` (token-major, as the cache keeps
/// them); returns `[l, heads, hd]`.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], s: AttnShape, scale: f32) -> Vec<f32> {
    let isa = super::gemm::isa();
    let hd = s.head_dim;
    let mut out = vec![0.0f32; s.l * s.heads * hd];
    if hd == 0 {
        return out;
    }
    out.par_chunks_mut(hd).enumerate().for_each_init(
        Vec::new,
        |scores: &mut Vec<f32>, (idx, o)| {
            let one = One {
                q: &q[idx * hd..(idx + 1) * hd],
                k,
                v,
                s,
                query: idx / s.heads,
                head: idx % s.heads,
                scale,
            };
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `isa()` reports Avx512/Avx2 only when the CPU has them and FMA.
                Isa::Avx512 => unsafe { head_avx512(&one, scores, o) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => unsafe { head_avx2(&one, scores, o) },
                _ => head(&one, scores, o),
            }
        },
    );
    out
}

struct One<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    s: AttnShape,
    query: usize,
    head: usize,
    scale: f32,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn head_avx512(one: &One, scores: &mut Vec<f32>, o: &mut [f32]) {
    head(one, scores, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn head_avx2(one: &One, scores: &mut Vec<f32>, o: &mut [f32]) {
    head(one, scores, o)
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, ta) = a.as_chunks::<LANES>();
    let (cb, tb) = b.as_chunks::<LANES>();
    for (xa, xb) in ca.iter().zip(cb) {
        for l in 0..LANES {
            acc[l] = xa[l].mul_add(xb[l], acc[l]);
        }
    }
    for (l, (x, y)) in ta.iter().zip(tb).enumerate() {
        acc[l] = x.mul_add(*y, acc[l]);
    }
    tree(acc)
}

#[inline(always)]
fn head(one: &One, scores: &mut Vec<f32>, o: &mut [f32]) {
    let s = one.s;
    let hd = s.head_dim;
    let group = one.head / (s.heads / s.kv_heads.max(1)).max(1);
    let upto = s.t - s.l + one.query + 1;
    let stride = s.kv_heads * hd;
    scores.clear();
    let mut max = f32::NEG_INFINITY;
    for tok in 0..upto {
        let off = tok * stride + group * hd;
        let sc = dot(one.q, &one.k[off..off + hd]) * one.scale;
        max = max.max(sc);
        scores.push(sc);
    }
    let mut sum = 0.0f32;
    for sc in scores.iter_mut() {
        *sc = (*sc - max).exp();
        sum += *sc;
    }
    o.fill(0.0);
    for (tok, p) in scores.iter().enumerate() {
        let off = tok * stride + group * hd;
        for (od, vd) in o.iter_mut().zip(&one.v[off..off + hd]) {
            *od = p.mul_add(*vd, *od);
        }
    }
    let inv = 1.0 / sum;
    for od in o.iter_mut() {
        *od *= inv;
    }
}
