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
/// them); returns `[l, heads, hd]`. One task per (query, KV head): the query heads that share
/// a KV head read each K and V row once between them.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], s: AttnShape, scale: f32) -> Vec<f32> {
    let isa = super::gemm::isa();
    let hd = s.head_dim;
    let mut out = vec![0.0f32; s.l * s.heads * hd];
    let kv_heads = s.kv_heads.max(1);
    let rep = (s.heads / kv_heads).max(1);
    if hd == 0 || s.heads == 0 {
        return out;
    }
    out.par_chunks_mut(rep * hd).enumerate().for_each_init(
        Vec::new,
        |scores: &mut Vec<f32>, (idx, o)| {
            let query = idx / kv_heads;
            let group = idx % kv_heads;
            let first = (query * s.heads + group * rep) * hd;
            let one = Group {
                q: &q[first..first + rep * hd],
                k,
                v,
                s,
                rep,
                query,
                group,
                scale,
            };
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `isa()` reports Avx512/Avx2 only when the CPU has them and FMA.
                Isa::Avx512 => unsafe { group_avx512(&one, scores, o) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => unsafe { group_avx2(&one, scores, o) },
                _ => group_heads(&one, scores, o),
            }
        },
    );
    out
}

/// The query heads of one query that share one KV head.
struct Group<'a> {
    /// `[rep, hd]`.
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    s: AttnShape,
    rep: usize,
    query: usize,
    group: usize,
    scale: f32,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn group_avx512(g: &Group, scores: &mut Vec<f32>, o: &mut [f32]) {
    group_heads(g, scores, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn group_avx2(g: &Group, scores: &mut Vec<f32>, o: &mut [f32]) {
    group_heads(g, scores, o)
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

/// Common head sizes get a copy with the size known at compile time, so a head's value
/// accumulator lives in registers; the arithmetic is the same in every copy.
#[inline(always)]
fn group_heads(g: &Group, scores: &mut Vec<f32>, o: &mut [f32]) {
    match g.s.head_dim {
        64 => group_heads_sized::<64>(g, scores, o),
        128 => group_heads_sized::<128>(g, scores, o),
        _ => group_heads_sized::<0>(g, scores, o),
    }
}

/// Per head, in token order: scores, their max, exp and sum, then the weighted values.
/// Scores of the heads sharing a K row are computed together only to share its load; each
/// head's own sequence of operations is the same as if it ran alone. `HD` is the head size
/// when known at compile time, 0 otherwise.
#[inline(always)]
fn group_heads_sized<const HD: usize>(g: &Group, scores: &mut Vec<f32>, o: &mut [f32]) {
    let s = g.s;
    let hd = if HD > 0 { HD } else { s.head_dim };
    let upto = s.t - s.l + g.query + 1;
    let stride = s.kv_heads.max(1) * hd;
    let base = g.group * hd;
    scores.clear();
    scores.resize(g.rep * upto, 0.0);
    // Groups wider than MAX_GROUP heads (no real model has one) run in slices.
    for r0 in (0..g.rep).step_by(MAX_GROUP) {
        let r1 = (r0 + MAX_GROUP).min(g.rep);
        let mut max = [f32::NEG_INFINITY; MAX_GROUP];
        for tok in 0..upto {
            let krow = &g.k[tok * stride + base..tok * stride + base + hd];
            for r in r0..r1 {
                let sc = dot(&g.q[r * hd..(r + 1) * hd], krow) * g.scale;
                max[r - r0] = max[r - r0].max(sc);
                scores[r * upto + tok] = sc;
            }
        }
        for r in r0..r1 {
            let row = &mut scores[r * upto..(r + 1) * upto];
            let mut sum = 0.0f32;
            for sc in row.iter_mut() {
                *sc = (*sc - max[r - r0]).exp();
                sum += *sc;
            }
            let out = &mut o[r * hd..(r + 1) * hd];
            if HD > 0 {
                let mut acc = [0.0f32; HD];
                for (tok, p) in row.iter().enumerate() {
                    let vrow = &g.v[tok * stride + base..tok * stride + base + HD];
                    for d in 0..HD {
                        acc[d] = p.mul_add(vrow[d], acc[d]);
                    }
                }
                out.copy_from_slice(&acc);
            } else {
                out.fill(0.0);
                for (tok, p) in row.iter().enumerate() {
                    let vrow = &g.v[tok * stride + base..tok * stride + base + hd];
                    for (od, vd) in out.iter_mut().zip(vrow) {
                        *od = p.mul_add(*vd, *od);
                    }
                }
            }
            let inv = 1.0 / sum;
            for od in out.iter_mut() {
                *od *= inv;
            }
        }
    }
}

/// Query heads per KV head handled in one sweep over the tokens.
const MAX_GROUP: usize = 16;
