//! Row-parallel kernels: the per-row pipeline of [`super::pipeline`] run on `L` rows at once
//! in structure-of-arrays layout (`a[k][l]` = coordinate `k` of row `l`), so that every SIMD
//! lane performs exactly the scalar sequence of float32 operations for its own row. Results
//! are therefore bit-identical to the scalar path (the tests below check this on many random,
//! zero, tiny, huge, spiky and tie-heavy rows), while the hardware does `L` rows per
//! instruction: 16 with AVX-512, 8 with AVX2+FMA, 8 (two NEON registers) on aarch64.
//!
//! The dense reference rotation keeps the reference's order, `y_j = fma(u_{D−1}, h, …
//! fma(u_0, h, 0))`, and uses two facts about the Sylvester matrix:
//! * entries are ±s, so `fma(u, −s, acc) = fma(−u, s, acc)` (the exact product is the same
//!   number): per block of 8×8 entries one sign flip of the inputs (a negated copy) and a fixed
//!   ±s pattern (`H_8`) that is a compile-time constant;
//! * for k < 2^t the sign of h_kj depends only on j mod 2^t, so the running sums of columns j
//!   and j + 2^t agree until k = 2^t: they are computed once and copied (a prefix trie). At
//!   D = 128 this is 10 880 instead of 16 384 multiply-adds per row, each still one rounding
//!   in index order.

use half::f16;

use super::hadamard::Rotation;
use super::pack::{KIND_HALF, KIND_INT, KIND_OTHER, Packer, Plan};
use super::pipeline::{Codec, EPS, Side};
use super::simd::{Portable, Simd};
use super::{CodecError, Variant};

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
const SCALAR_TAIL: usize = 2;

/// Per-group scratch: three D×L tiles (24 KiB at D = 128, L = 16: stays in L1).
struct Work<const L: usize> {
    a: Vec<[f32; L]>,
    b: Vec<[f32; L]>,
    neg: Vec<[f32; L]>,
}

/// The side scalars of one group, per lane.
struct GroupSides<const L: usize> {
    norm: [f16; L],
    qmax: [f16; L],
}

impl<const L: usize> Work<L> {
    fn new(dim: usize) -> Self {
        Work {
            a: vec![[0.0; L]; dim],
            b: vec![[0.0; L]; dim],
            neg: vec![[0.0; L]; dim],
        }
    }
}

/// Transpose `rows` (≤ L) row-major rows into `tile`; missing lanes become zero rows.
#[inline(always)]
fn load<const L: usize, S: Simd<L>>(s: S, tile: &mut [[f32; L]], x: &[f32], rows: usize) {
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
fn store<const L: usize, S: Simd<L>>(s: S, tile: &[[f32; L]], out: &mut [f32], rows: usize) {
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
fn encode<const L: usize, S: Simd<L>>(s: S, c: &Codec, w: &mut Work<L>) -> GroupSides<L> {
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
fn decode<const L: usize, S: Simd<L>>(s: S, c: &Codec, w: &mut Work<L>, sides: &GroupSides<L>) {
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

/// [`super::lattice::closest_dn`] on L blocks (one per lane), bit for bit; the same algorithm
/// as [`super::lattice::dn_lanes`], written with [`Simd`] operations.
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

/// [`super::lattice::closest_e8`] on L blocks (one per lane), bit for bit.
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
fn roundtrip_body<const L: usize, S: Simd<L>>(s: S, c: &Codec, x: &[f32], out: &mut [f32]) {
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
fn quantize_body<const L: usize, S: Simd<L>>(
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
fn dequantize_body<const L: usize, S: Simd<L>>(s: S, c: &Codec, sides: &[Side], z: &mut [f32]) {
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

/// SIMD half of the row-parallel encoder: for every block of every lane, its kind
/// (integer, half-integer with a valid code, other) and its digits as pairs
/// `d₂ᵢ + d₂ᵢ₊₁·radix` (exact in f32). See [`Plan`].
#[inline(always)]
fn pack_parts<const N: usize, const L: usize, S: Simd<L>>(
    s: S,
    plan: &Plan,
    tile: &[[f32; L]],
    kinds: &mut [[f32; L]],
    parts: &mut [[u32; L]],
) {
    let zero = s.splat(0.0);
    let halfv = s.splat(0.5);
    let (q, nq) = (s.splat(plan.q), s.splat(-plan.q));
    let (m, rh) = (s.splat(plan.m), s.splat(plan.rh));
    // Digit of a half-integer coordinate: w + o = z − ½ + o.
    let hoff = s.splat(plan.o - 0.5);
    // Digit of a coordinate clamped to +Q (w = Q, o = Q + 1); −Q has digit 0.
    let top_digit = s.splat(2.0 * plan.q + 1.0);
    let np = N / 2;
    for (bi, blk) in tile.chunks_exact(N).enumerate() {
        let mut di = [zero; N];
        let mut dh = [zero; N];
        let mut all_int = s.eq(zero, zero);
        let mut half_ok = all_int;
        let mut dsum = zero;
        for c in 0..N {
            let z = s.load(&blk[c]);
            let fr = s.sub(z, s.floor(z));
            all_int = s.and(all_int, s.eq(fr, zero));
            di[c] = s.add(z, q);
            let is_half = s.eq(fr, halfv);
            let mut h = s.add(z, hoff);
            if plan.half_full {
                let top = s.eq(z, q);
                half_ok = s.and(half_ok, s.or(is_half, s.or(top, s.eq(z, nq))));
                h = s.select(is_half, h, s.select(top, top_digit, zero));
            } else {
                half_ok = s.and(half_ok, is_half);
            }
            dh[c] = h;
            dsum = s.add(dsum, h);
        }
        // Σw is even iff the digit sum is (N·o is even); the last digit's parity is implied.
        let hs = s.mul(dsum, halfv);
        let even = s.eq(hs, s.floor(hs));
        dh[N - 1] = s.floor(s.mul(dh[N - 1], halfv));
        let radix = s.select(all_int, m, rh);
        for i in 0..np {
            let lo = s.select(all_int, di[2 * i], dh[2 * i]);
            let hi = s.select(all_int, di[2 * i + 1], dh[2 * i + 1]);
            s.store_u32(&mut parts[bi * np + i], s.add(lo, s.mul(hi, radix)));
        }
        let other = if plan.half {
            s.select(
                s.and(half_ok, even),
                s.splat(KIND_HALF),
                s.splat(KIND_OTHER),
            )
        } else {
            s.splat(KIND_OTHER)
        };
        s.store(&mut kinds[bi], s.select(all_int, s.splat(KIND_INT), other));
    }
}

/// SIMD half of the row-parallel decoder: digit pairs and kinds → lattice points in `tile`
/// (blocks of kind "other" are written afterwards from their doubled coordinates).
#[inline(always)]
fn unpack_parts<const N: usize, const L: usize, S: Simd<L>>(
    s: S,
    plan: &Plan,
    kinds: &[[f32; L]],
    parts: &[[f32; L]],
    tile: &mut [[f32; L]],
) {
    let zero = s.splat(0.0);
    let (halfv, two) = (s.splat(0.5), s.splat(2.0));
    let (q, nq) = (s.splat(plan.q), s.splat(-plan.q));
    let (m, rh, o) = (s.splat(plan.m), s.splat(plan.rh), s.splat(plan.o));
    let np = N / 2;
    for (bi, blk) in tile.chunks_exact_mut(N).enumerate() {
        let is_int = s.eq(s.load(&kinds[bi]), s.splat(KIND_INT));
        let radix = s.select(is_int, m, rh);
        let mut d = [zero; N];
        for i in 0..np {
            let p = s.load(&parts[bi * np + i]);
            // p < radix² ≤ 2²⁴: the rounded quotient never crosses an integer, so its floor
            // is the exact integer quotient.
            let hi = s.floor(s.div(p, radix));
            d[2 * i] = s.sub(p, s.mul(hi, radix));
            d[2 * i + 1] = hi;
        }
        // Half-integer coset: w_c = d_c − o, the last from its top bits and the implied parity
        // (Σw even), then z = w + ½ clamped to [−Q, Q] (a clamped coordinate is stored as
        // w = Q or w = −Q − 1).
        let mut w = [zero; N];
        let mut sw = zero;
        for c in 0..N - 1 {
            w[c] = s.sub(d[c], o);
            sw = s.add(sw, w[c]);
        }
        let t = s.sub(o, sw);
        let par = s.sub(t, s.mul(two, s.floor(s.mul(t, halfv))));
        w[N - 1] = s.sub(s.add(s.mul(two, d[N - 1]), par), o);
        for c in 0..N {
            let zi = s.sub(d[c], q);
            let zh = s.min(q, s.max(nq, s.add(w[c], halfv)));
            s.store(&mut blk[c], s.select(is_int, zi, zh));
        }
    }
}

/// Encode whole rows to packed bytes (quantize + pack without leaving the tile).
#[inline(always)]
fn pack_body<const L: usize, S: Simd<L>>(
    s: S,
    p: &Packer,
    x: &[f32],
    out: &mut Vec<u8>,
    lens: &mut Vec<usize>,
) -> u64 {
    let c = p.codec();
    let d = c.dim();
    let Some(plan) = p.plan() else {
        unreachable!("pack_body without a plan")
    };
    let bd = c.variant().block();
    let np = bd / 2;
    let mut w = Work::<L>::new(d);
    let mut kinds = vec![[0.0f32; L]; d / bd];
    let mut parts = vec![[0u32; L]; d / bd * np];
    let mut escapes = 0u64;
    let mut z = vec![0.0f32; d];
    let mut scratch = vec![0.0f32; d];
    for xc in x.chunks(L * d) {
        let rows = xc.len() / d;
        if rows <= SCALAR_TAIL {
            for xr in xc.chunks_exact(d) {
                let side = c.encode_into(xr, &mut z, &mut scratch);
                let st = p.pack_point(side, &z, out);
                lens.push(st.bytes);
                escapes += u64::from(st.escapes);
            }
            continue;
        }
        load(s, &mut w.a, xc, rows);
        let gs = encode(s, c, &mut w);
        match c.variant() {
            Variant::E8 => pack_parts::<8, L, S>(s, plan, &w.b, &mut kinds, &mut parts),
            Variant::D4 => pack_parts::<4, L, S>(s, plan, &w.b, &mut kinds, &mut parts),
        }
        for l in 0..rows {
            let side = Side {
                norm: gs.norm[l],
                qmax: gs.qmax[l],
            };
            let st = p.write_lane(side, l, &kinds, &parts, &w.b, out);
            lens.push(st.bytes);
            escapes += u64::from(st.escapes);
        }
    }
    escapes
}

/// Decode packed rows (`lens[i]` bytes each, back to back) into `out`.
#[inline(always)]
fn unpack_body<const L: usize, S: Simd<L>>(
    s: S,
    p: &Packer,
    bytes: &[u8],
    lens: &[usize],
    out: &mut [f32],
) -> Result<(), CodecError> {
    let c = p.codec();
    let d = c.dim();
    let Some(plan) = p.plan() else {
        unreachable!("unpack_body without a plan")
    };
    let bd = c.variant().block();
    let np = bd / 2;
    let mut w = Work::<L>::new(d);
    let mut kinds = vec![[0.0f32; L]; d / bd];
    let mut parts = vec![[0.0f32; L]; d / bd * np];
    let mut fix = Vec::new();
    let mut at = 0usize;
    if lens.len() * d != out.len() {
        return Err(CodecError::Malformed {
            reason: "row lengths do not match the rows to decode".into(),
        });
    }
    let mut scratch = vec![0.0f32; d];
    for (oc, lc) in out.chunks_mut(L * d).zip(lens.chunks(L)) {
        let rows = oc.len() / d;
        if rows <= SCALAR_TAIL {
            for (or, &len) in oc.chunks_exact_mut(d).zip(lc) {
                let slice = bytes
                    .get(at..at + len)
                    .ok_or_else(|| CodecError::Malformed {
                        reason: "row extends past the packed bytes".into(),
                    })?;
                let (side, used) = p.unpack_point(slice, or)?;
                if used != len {
                    return Err(CodecError::Malformed {
                        reason: format!("row holds {len} bytes but its codes use {used}"),
                    });
                }
                c.decode_in_place(side, or, &mut scratch);
                at += len;
            }
            continue;
        }
        fix.clear();
        let mut gs = GroupSides {
            norm: [f16::ZERO; L],
            qmax: [f16::ONE; L],
        };
        for (l, &len) in lc.iter().enumerate() {
            let slice = bytes
                .get(at..at + len)
                .ok_or_else(|| CodecError::Malformed {
                    reason: "row extends past the packed bytes".into(),
                })?;
            let (side, used) = p.read_lane(slice, l, &mut kinds, &mut parts, &mut fix)?;
            if used != len {
                return Err(CodecError::Malformed {
                    reason: format!("row holds {len} bytes but its codes use {used}"),
                });
            }
            gs.norm[l] = side.norm;
            gs.qmax[l] = side.qmax;
            at += len;
        }
        match c.variant() {
            Variant::E8 => unpack_parts::<8, L, S>(s, plan, &kinds, &parts, &mut w.b),
            Variant::D4 => unpack_parts::<4, L, S>(s, plan, &kinds, &parts, &mut w.b),
        }
        if rows < L {
            // Lanes without a row: zero points (their output is dropped).
            for v in w.b.iter_mut() {
                for x in v[rows..].iter_mut() {
                    *x = 0.0;
                }
            }
        }
        for (l, blk, t) in &fix {
            for (cc, &tc) in t.iter().enumerate().take(bd) {
                w.b[blk * bd + cc][*l] = tc as f32 * 0.5;
            }
        }
        decode(s, c, &mut w, &gs);
        store(s, &w.a, oc, rows);
    }
    Ok(())
}

/// Which row-parallel kernel this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// 16 rows per step, AVX-512F + FMA.
    Avx512,
    /// 8 rows per step, AVX2 + FMA.
    Avx2,
    /// 8 rows per step, portable code (NEON + FMA on aarch64; elsewhere whatever the build
    /// targets: without hardware FMA `mul_add` is a slow library call).
    Portable,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

/// The fastest kernel this CPU supports (checked at run time; the build stays generic).
pub fn kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::Avx512::detect().is_some() {
            return Kernel::Avx512;
        }
        if super::simd::Avx2::detect().is_some() {
            return Kernel::Avx2;
        }
    }
    Kernel::Portable
}

/// Every kernel this CPU can run (for tests and benchmarks).
pub fn available_kernels() -> Vec<Kernel> {
    [Kernel::Portable, Kernel::Avx2, Kernel::Avx512]
        .into_iter()
        .filter(|&k| supported(k))
        .collect()
}

/// Whether this CPU can run `k` (the portable kernel runs everywhere).
pub fn supported(k: Kernel) -> bool {
    match k {
        Kernel::Portable => true,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => super::simd::Avx2::detect().is_some(),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => super::simd::Avx512::detect().is_some(),
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// Runs `$body` with the requested kernel's token inside a function compiled for its CPU
/// features; a kernel the CPU lacks runs the portable body (same results).
macro_rules! dispatch {
    ($kernel:expr, $body:ident, $ret:ty, ($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            use super::simd::{Avx2, Avx512};
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512(s: Avx512, $($arg: $ty),*) -> $ret {
                $body::<16, Avx512>(s, $($arg),*)
            }
            #[target_feature(enable = "avx2,fma")]
            fn avx2(s: Avx2, $($arg: $ty),*) -> $ret {
                $body::<8, Avx2>(s, $($arg),*)
            }
            match $kernel {
                Kernel::Avx512 => {
                    if let Some(s) = Avx512::detect() {
                        // SAFETY: the token exists only if AVX-512F, AVX2 and FMA are present.
                        return unsafe { avx512(s, $($arg),*) };
                    }
                }
                Kernel::Avx2 => {
                    if let Some(s) = Avx2::detect() {
                        // SAFETY: the token exists only if AVX2 and FMA are present.
                        return unsafe { avx2(s, $($arg),*) };
                    }
                }
                Kernel::Portable => {}
            }
        }
        let _ = $kernel;
        $body::<8, Portable>(Portable, $($arg),*)
    }};
}

/// Round-trip whole rows (`x`, `out`: equal length, a multiple of D) with `kernel`.
pub(crate) fn roundtrip(k: Kernel, c: &Codec, x: &[f32], out: &mut [f32]) {
    dispatch!(k, roundtrip_body, (), (c: &Codec, x: &[f32], out: &mut [f32]))
}

/// Encode whole rows to lattice points and side scalars with `kernel`.
pub(crate) fn quantize(k: Kernel, c: &Codec, x: &[f32], z: &mut [f32], sides: &mut [Side]) {
    dispatch!(k, quantize_body, (), (c: &Codec, x: &[f32], z: &mut [f32], sides: &mut [Side]))
}

/// Encode whole rows straight to packed bytes (the packer must have a [`Plan`]); returns the
/// escaped blocks.
pub(crate) fn pack(
    k: Kernel,
    p: &Packer,
    x: &[f32],
    out: &mut Vec<u8>,
    lens: &mut Vec<usize>,
) -> u64 {
    dispatch!(k, pack_body, u64, (p: &Packer, x: &[f32], out: &mut Vec<u8>, lens: &mut Vec<usize>))
}

/// Decode packed rows straight from bytes (the packer must have a [`Plan`]).
pub(crate) fn unpack(
    k: Kernel,
    p: &Packer,
    bytes: &[u8],
    lens: &[usize],
    out: &mut [f32],
) -> Result<(), CodecError> {
    dispatch!(k, unpack_body, Result<(), CodecError>, (p: &Packer, bytes: &[u8], lens: &[usize], out: &mut [f32]))
}

/// Decode whole rows in place from lattice points and side scalars with `kernel`.
pub(crate) fn dequantize(k: Kernel, c: &Codec, sides: &[Side], z: &mut [f32]) {
    dispatch!(k, dequantize_body, (), (c: &Codec, sides: &[Side], z: &mut [f32]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Packer;

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
                let packed = crate::codec::encode_rows(&packer, &x).unwrap();
                let back = crate::codec::decode_rows(&packer, &packed).unwrap();
                assert_eq!(bits(&back), bits(&want), "packed {variant} Q={q}");
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    /// `cargo test --release -p kakeya-engine --lib codec::rows::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn kernel_timings() {
        let n = 4096;
        let x = crate::codec::data::generate(crate::codec::data::Source::Gaussian, n, 128, 1);
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
                    let p = crate::codec::Packer::new(c.clone()).unwrap();
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
