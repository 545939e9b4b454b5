//! The packed-storage half of the row-parallel kernels: lattice points of `L` rows go straight
//! to bytes (and back) through the packer's [`Plan`], without a per-row lattice buffer.

use half::f16;

use super::lanes::{GroupSides, SCALAR_TAIL, Work, decode, encode, load, store};
use crate::pack::{KIND_HALF, KIND_INT, KIND_OTHER, Packer, Plan};
use crate::pipeline::Side;
use crate::simd::Simd;
use crate::{CodecError, Variant};

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
pub(super) fn pack_body<const L: usize, S: Simd<L>>(
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
pub(super) fn unpack_body<const L: usize, S: Simd<L>>(
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
