//! The per-row pipeline on `L` rows at once: tiles, norm, rotation, lattice search and the
//! round-trip / quantise / dequantise bodies the dispatcher in [`super`] instantiates.

use half::f16;

use crate::Variant;
use crate::hadamard::Rotation;
use crate::pipeline::{Codec, EPS, Side};
use crate::simd::Simd;

/// Sign pattern of the 8×8 Sylvester block: true where (−1)^popcount(k & j) = −1.
const H8_NEG: [[bool; 8]; 8] = {
    let mut m = [[false; 8]; 8];
    let mut k = 0;
    while k < 8 {
        let mut j = 0;
        while j < 8 {
            m[k][j] = (k & j).count_ones() % 2 == 1;
            j += 1;
        }
        k += 1;
    }
    m
};

/// Groups of at most this many rows (a single row, a short tail) run the scalar per-row
/// pipeline instead of a padded SIMD group: below 3 rows the padding costs more than the
/// lanes save. Same results either way.
pub(super) const SCALAR_TAIL: usize = 2;

/// Per-group scratch: three D×L tiles (24 KiB at D = 128, L = 16: stays in L1).
pub(super) struct Work<const L: usize> {
    pub(super) a: Vec<[f32; L]>,
    pub(super) b: Vec<[f32; L]>,
    pub(super) neg: Vec<[f32; L]>,
}

/// The side scalars of one group, per lane.
pub(super) struct GroupSides<const L: usize> {
    pub(super) norm: [f16; L],
    pub(super) qmax: [f16; L],
}

impl<const L: usize> Work<L> {
    pub(super) fn new(dim: usize) -> Self {
        Work {
            a: vec![[0.0; L]; dim],
            b: vec![[0.0; L]; dim],
            neg: vec![[0.0; L]; dim],
        }
    }
}

/// Transpose `rows` (≤ L) row-major rows into `tile`; missing lanes become zero rows.
#[inline(always)]
pub(super) fn load<const L: usize, S: Simd<L>>(
    s: S,
    tile: &mut [[f32; L]],
    x: &[f32],
    rows: usize,
) {
    let d = tile.len();
    if rows == L {
        return s.load_rows(x, tile);
    }
    tile.fill([0.0; L]);
    for l in 0..rows {
        for (t, &v) in tile.iter_mut().zip(&x[l * d..(l + 1) * d]) {
            t[l] = v;
        }
    }
}

/// Transpose the first `rows` lanes of `tile` back to row-major `out`.
#[inline(always)]
pub(super) fn store<const L: usize, S: Simd<L>>(
    s: S,
    tile: &[[f32; L]],
    out: &mut [f32],
    rows: usize,
) {
    let d = tile.len();
    if rows == L {
        return s.store_rows(tile, out);
    }
    for l in 0..rows {
        for (o, t) in out[l * d..(l + 1) * d].iter_mut().zip(tile) {
            *o = t[l];
        }
    }
}

/// Steps 1–7 on tile `w.a` (rows); leaves the clamped lattice points in tile `w.b`.
#[inline(always)]
pub(super) fn encode<const L: usize, S: Simd<L>>(
    s: S,
    c: &Codec,
    w: &mut Work<L>,
) -> GroupSides<L> {
    let q = c.q_f32();
    let ss = pairwise_sq(s, &w.a);
    let mut ssa = [0.0f32; L];
    s.store(&mut ssa, ss);
    let mut r = [0.0f32; L];
    let mut norm = [f16::ZERO; L];
    for l in 0..L {
        r[l] = ssa[l].sqrt().max(EPS);
        norm[l] = f16::from_f32(r[l]);
    }
    let rv = s.load(&r);
    for v in w.a.iter_mut() {
        s.store(v, s.div(s.load(v), rv));
    }
    rotate(s, c, &w.a, &mut w.neg, &mut w.b);
    let mut m = s.splat(0.0);
    for v in w.b.iter() {
        // f32::max(m, |v|) with m never NaN: |v| wins only when larger.
        m = s.max(s.abs(s.load(v)), m);
    }
    let mut ma = [0.0f32; L];
    s.store(&mut ma, m);
    let mut qmax = [f16::ZERO; L];
    let mut sc = [0.0f32; L];
    for l in 0..L {
        qmax[l] = f16::from_f32(ma[l].max(EPS));
        sc[l] = qmax[l].to_f32() / q;
    }
    let sv = s.load(&sc);
    for v in w.b.iter_mut() {
        s.store(v, s.div(s.load(v), sv));
    }
    match c.variant() {
        Variant::E8 => search::<8, L, S>(s, &mut w.b, q),
        Variant::D4 => search::<4, L, S>(s, &mut w.b, q),
    }
    GroupSides { norm, qmax }
}

/// Steps 8–10: lattice points in tile `w.b` → reconstructed rows in tile `w.a`.
#[inline(always)]
pub(super) fn decode<const L: usize, S: Simd<L>>(
    s: S,
    c: &Codec,
    w: &mut Work<L>,
    sides: &GroupSides<L>,
) {
    let q = c.q_f32();
    let mut sc = [0.0f32; L];
    let mut r16 = [0.0f32; L];
    for l in 0..L {
        sc[l] = sides.qmax[l].to_f32() / q;
        r16[l] = sides.norm[l].to_f32();
    }
    let sv = s.load(&sc);
    for v in w.b.iter_mut() {
        s.store(v, s.mul(s.load(v), sv));
    }
    rotate(s, c, &w.b, &mut w.neg, &mut w.a);
    let rv = s.load(&r16);
    for v in w.a.iter_mut() {
        s.store(v, s.mul(s.load(v), rv));
    }
}

/// The pipeline's `pairwise_sq` on every lane (NumPy's pairwise summation order; products
/// and sums rounded separately, as in the scalar code).
#[inline(always)]
fn pairwise_sq<const L: usize, S: Simd<L>>(s: S, a: &[[f32; L]]) -> S::V {
    let n = a.len();
    if n <= 128 {
        return pairwise_leaf(s, a);
    }
    // Above 128 values NumPy halves at a multiple of 8; iterate over the leaves of that
    // binary split with an explicit stack (no recursion, so everything inlines).
    let mut stack = [(0usize, 0usize, false); 64];
    let mut vals = [s.splat(0.0); 64];
    stack[0] = (0, n, false);
    let mut top = 1;
    let mut nv = 0;
    while top > 0 {
        let (lo, hi, expanded) = stack[top - 1];
        let len = hi - lo;
        if len <= 128 {
            top -= 1;
            vals[nv] = pairwise_leaf(s, &a[lo..hi]);
            nv += 1;
        } else if !expanded {
            stack[top - 1].2 = true;
            let mut half = len / 2;
            half -= half % 8;
            stack[top] = (lo + half, hi, false);
            stack[top + 1] = (lo, lo + half, false);
            top += 2;
        } else {
            top -= 1;
            // Both halves are done: combine the last two partial sums (left + right).
            nv -= 1;
            vals[nv - 1] = s.add(vals[nv - 1], vals[nv]);
        }
    }
    debug_assert_eq!(nv, 1);
    vals[0]
}

/// One leaf of NumPy's pairwise sum (≤ 128 values): 8 running sums, then a fixed tree.
#[inline(always)]
fn pairwise_leaf<const L: usize, S: Simd<L>>(s: S, a: &[[f32; L]]) -> S::V {
    let n = a.len();
    let mut res = s.splat(0.0);
    if n < 8 {
        for v in a {
            let x = s.load(v);
            res = s.add(res, s.mul(x, x));
        }
        return res;
    }
    let mut r = [s.splat(0.0); 8];
    for j in 0..8 {
        let x = s.load(&a[j]);
        r[j] = s.mul(x, x);
    }
    let whole = n - n % 8;
    for chunk in a[8..whole].chunks_exact(8) {
        for j in 0..8 {
            let x = s.load(&chunk[j]);
            r[j] = s.add(r[j], s.mul(x, x));
        }
    }
    res = s.add(
        s.add(s.add(r[0], r[1]), s.add(r[2], r[3])),
        s.add(s.add(r[4], r[5]), s.add(r[6], r[7])),
    );
    for v in &a[whole..] {
        let x = s.load(v);
        res = s.add(res, s.mul(x, x));
    }
    res
}

/// `dst = src · H` with the codec's rotation kernel, lane by lane.
#[inline(always)]
fn rotate<const L: usize, S: Simd<L>>(
    s: S,
    c: &Codec,
    src: &[[f32; L]],
    neg: &mut [[f32; L]],
    dst: &mut [[f32; L]],
) {
    let scale = c.rotation_scale();
    match c.rotation() {
        Rotation::Reference => dense(s, src, neg, dst, scale),
        Rotation::Fast => {
            dst.copy_from_slice(src);
            fwht(s, dst, scale);
        }
    }
}

/// The scalar `fwht` followed by the scaling, on every lane.
#[inline(always)]
fn fwht<const L: usize, S: Simd<L>>(s: S, x: &mut [[f32; L]], scale: f32) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (va, vb) = (s.load(a), s.load(b));
                s.store(a, s.add(va, vb));
                s.store(b, s.sub(va, vb));
            }
        }
        h *= 2;
    }
    let sv = s.splat(scale);
    for v in x.iter_mut() {
        s.store(v, s.mul(s.load(v), sv));
    }
}

/// The reference-order dense product `dst_j = Σ_k u_k·h_kj` (one fma per term, k ascending)
/// on every lane; see the module docs for the sign and prefix-sharing tricks.
#[inline(always)]
fn dense<const L: usize, S: Simd<L>>(
    s: S,
    u: &[[f32; L]],
    neg: &mut [[f32; L]],
    dst: &mut [[f32; L]],
    scale: f32,
) {
    let d = u.len();
    let (sp, sn) = (s.splat(scale), s.splat(-scale));
    if d < 16 {
        for (j, out) in dst.iter_mut().enumerate() {
            let mut acc = s.splat(0.0);
            for (k, uk) in u.iter().enumerate() {
                let h = if (k & j).count_ones() % 2 == 0 {
                    sp
                } else {
                    sn
                };
                acc = s.fma(s.load(uk), h, acc);
            }
            s.store(out, acc);
        }
        return;
    }
    for (n, v) in neg.iter_mut().zip(u) {
        s.store(n, s.neg(s.load(v)));
    }
    // k < 8: the running sums depend on j mod 8 only.
    let mut acc = [s.splat(0.0); 8];
    block8(s, &u[..8], &mut acc, sp, sn);
    for (o, a) in dst.iter_mut().zip(acc) {
        s.store(o, a);
    }
    // Invariant: dst[j] for j < h holds the sum over k < h of every column ≡ j (mod h).
    let mut h = 8;
    while h < d {
        let (lo, hi) = dst.split_at_mut(h);
        hi[..h].copy_from_slice(lo);
        for j0 in (0..2 * h).step_by(8) {
            let mut acc = [sp; 8];
            for jj in 0..8 {
                acc[jj] = s.load(&dst[j0 + jj]);
            }
            for k0 in (h..2 * h).step_by(8) {
                let flip = (k0 & j0).count_ones() % 2 == 1;
                let src = if flip {
                    &neg[k0..k0 + 8]
                } else {
                    &u[k0..k0 + 8]
                };
                block8(s, src, &mut acc, sp, sn);
            }
            for (jj, a) in acc.into_iter().enumerate() {
                s.store(&mut dst[j0 + jj], a);
            }
        }
        h *= 2;
    }
}

/// 64 multiply-adds: `acc[jj] = fma(v[kk], ±s, acc[jj])` for kk = 0..8 in order, with the
/// sign pattern of `H_8` fixed at compile time.
#[inline(always)]
fn block8<const L: usize, S: Simd<L>>(
    s: S,
    v: &[[f32; L]],
    acc: &mut [S::V; 8],
    sp: S::V,
    sn: S::V,
) {
    for (kk, vk) in v.iter().enumerate().take(8) {
        let x = s.load(vk);
        for jj in 0..8 {
            let c = if H8_NEG[kk][jj] { sn } else { sp };
            acc[jj] = s.fma(x, c, acc[jj]);
        }
    }
}

/// [`crate::lattice::closest_dn`] on L blocks (one per lane), bit for bit; the same algorithm
/// as [`crate::lattice::dn_lanes`], written with [`Simd`] operations.
#[inline(always)]
fn dn<const N: usize, const L: usize, S: Simd<L>>(s: S, y: &[S::V; N]) -> [S::V; N] {
    let mut f = [s.splat(0.0); N];
    let mut a = [s.splat(0.0); N];
    for c in 0..N {
        f[c] = s.round_even(y[c]);
        a[c] = s.abs(s.sub(y[c], f[c]));
    }
    let mut m = a[0];
    for &ac in a.iter().skip(1) {
        m = s.max(ac, m);
    }
    // Scan from the last coordinate so the first index holding the maximum wins.
    let mut k = s.splat(0.0);
    let mut dk = s.splat(0.0);
    for c in (0..N).rev() {
        let hit = s.eq(a[c], m);
        k = s.select(hit, s.splat(c as f32), k);
        dk = s.select(hit, s.sub(y[c], f[c]), dk);
    }
    let sum = if N == 8 {
        s.add(
            s.add(s.add(f[0], f[1]), s.add(f[2], f[3])),
            s.add(s.add(f[4], f[5]), s.add(f[6], f[7])),
        )
    } else {
        let mut acc = s.splat(0.0);
        for &fc in f.iter() {
            acc = s.add(acc, fc);
        }
        acc
    };
    // The sum is an exact integer below 2²⁴: odd iff sum/2 has fractional part ½.
    let h = s.mul(sum, s.splat(0.5));
    let odd = s.eq(s.sub(h, s.floor(h)), s.splat(0.5));
    let step = s.select(s.ge(dk, s.splat(0.0)), s.splat(1.0), s.splat(-1.0));
    let k = s.select(odd, k, s.splat(-1.0));
    for (c, fc) in f.iter_mut().enumerate() {
        // A select, not `+= 0.0`, so an untouched −0.0 stays −0.0 as in the scalar code.
        *fc = s.select(s.eq(k, s.splat(c as f32)), s.add(*fc, step), *fc);
    }
    f
}

/// [`crate::lattice::closest_e8`] on L blocks (one per lane), bit for bit.
#[inline(always)]
fn e8<const L: usize, S: Simd<L>>(s: S, y: &[S::V; 8]) -> [S::V; 8] {
    let a = dn::<8, L, S>(s, y);
    let half = s.splat(0.5);
    let mut shifted = [half; 8];
    for c in 0..8 {
        shifted[c] = s.sub(y[c], half);
    }
    let mut b = dn::<8, L, S>(s, &shifted);
    for bc in b.iter_mut() {
        *bc = s.add(*bc, half);
    }
    let take_a = s.le(sq_dist8(s, y, &a), sq_dist8(s, y, &b));
    let mut out = a;
    for c in 0..8 {
        out[c] = s.select(take_a, a[c], b[c]);
    }
    out
}

/// Σ(y − p)² over an 8-block in the reference's tree order.
#[inline(always)]
fn sq_dist8<const L: usize, S: Simd<L>>(s: S, y: &[S::V; 8], p: &[S::V; 8]) -> S::V {
    let mut e = [s.splat(0.0); 8];
    for c in 0..8 {
        let d = s.sub(y[c], p[c]);
        e[c] = s.mul(d, d);
    }
    s.add(
        s.add(s.add(e[0], e[1]), s.add(e[2], e[3])),
        s.add(s.add(e[4], e[5]), s.add(e[6], e[7])),
    )
}

/// Closest point and clamp (`f32::clamp`) for every N-block of every lane, in place.
#[inline(always)]
fn search<const N: usize, const L: usize, S: Simd<L>>(s: S, t: &mut [[f32; L]], q: f32) {
    let (lo, hi) = (s.splat(-q), s.splat(q));
    for blk in t.chunks_exact_mut(N) {
        let mut p = [lo; N];
        if N == 8 {
            let mut y8 = [lo; 8];
            for c in 0..8 {
                y8[c] = s.load(&blk[c]);
            }
            let e = e8::<L, S>(s, &y8);
            p.copy_from_slice(&e[..N]);
        } else {
            let mut y = [lo; N];
            for c in 0..N {
                y[c] = s.load(&blk[c]);
            }
            p = dn::<N, L, S>(s, &y);
        }
        for (o, pc) in blk.iter_mut().zip(p) {
            // clamp: `if x < lo { lo }` then `if x > hi { hi }`.
            s.store(o, s.min(hi, s.max(lo, pc)));
        }
    }
}

/// Round trip of whole rows, `L` at a time (a short last group is padded with zero rows).
#[inline(always)]
pub(super) fn roundtrip_body<const L: usize, S: Simd<L>>(
    s: S,
    c: &Codec,
    x: &[f32],
    out: &mut [f32],
) {
    let d = c.dim();
    let mut w = Work::<L>::new(d);
    let mut scratch = vec![0.0f32; d];
    for (xc, oc) in x.chunks(L * d).zip(out.chunks_mut(L * d)) {
        let rows = xc.len() / d;
        if rows <= SCALAR_TAIL {
            for (xr, or) in xc.chunks_exact(d).zip(oc.chunks_exact_mut(d)) {
                let side = c.encode_into(xr, or, &mut scratch);
                c.decode_in_place(side, or, &mut scratch);
            }
            continue;
        }
        load(s, &mut w.a, xc, rows);
        let sides = encode(s, c, &mut w);
        decode(s, c, &mut w, &sides);
        store(s, &w.a, oc, rows);
    }
}

#[inline(always)]
pub(super) fn quantize_body<const L: usize, S: Simd<L>>(
    s: S,
    c: &Codec,
    x: &[f32],
    z: &mut [f32],
    sides: &mut [Side],
) {
    let d = c.dim();
    let mut w = Work::<L>::new(d);
    let groups = x.chunks(L * d).zip(z.chunks_mut(L * d));
    let mut scratch = vec![0.0f32; d];
    for ((xc, zc), sc) in groups.zip(sides.chunks_mut(L)) {
        let rows = xc.len() / d;
        if rows <= SCALAR_TAIL {
            for ((xr, zr), side) in xc.chunks_exact(d).zip(zc.chunks_exact_mut(d)).zip(sc) {
                *side = c.encode_into(xr, zr, &mut scratch);
            }
            continue;
        }
        load(s, &mut w.a, xc, rows);
        let gs = encode(s, c, &mut w);
        store(s, &w.b, zc, rows);
        for (l, side) in sc.iter_mut().enumerate() {
            *side = Side {
                norm: gs.norm[l],
                qmax: gs.qmax[l],
            };
        }
    }
}

#[inline(always)]
pub(super) fn dequantize_body<const L: usize, S: Simd<L>>(
    s: S,
    c: &Codec,
    sides: &[Side],
    z: &mut [f32],
) {
    let d = c.dim();
    let mut w = Work::<L>::new(d);
    let mut scratch = vec![0.0f32; d];
    for (zc, sc) in z.chunks_mut(L * d).zip(sides.chunks(L)) {
        let rows = zc.len() / d;
        if rows <= SCALAR_TAIL {
            for (zr, side) in zc.chunks_exact_mut(d).zip(sc) {
                c.decode_in_place(*side, zr, &mut scratch);
            }
            continue;
        }
        load(s, &mut w.b, zc, rows);
        let mut gs = GroupSides {
            norm: [f16::ZERO; L],
            qmax: [f16::ONE; L],
        };
        for (l, side) in sc.iter().enumerate() {
            gs.norm[l] = side.norm;
            gs.qmax[l] = side.qmax;
        }
        decode(s, c, &mut w, &gs);
        store(s, &w.a, zc, rows);
    }
}
