//! Packed storage: one vector ↔ bytes that decode to exactly its round trip.
//!
//! Layout of one packed vector (an LSB-first bit stream, see [`super::bitio`]):
//! 1. 16 bits: ‖x‖ as IEEE half (`r16`), 16 bits: qmax as IEEE half (`qmax16`);
//! 2. D/bd block codes of `b = ⌈b_real(Q)⌉` bits each — exactly the accounted bits;
//! 3. for each block whose code is the escape code, in block order: bd coordinates stored as
//!    `2z + 2Q` in `e = bit_length(4Q)` bits each;
//! 4. zero padding to the next byte.
//!
//! Block codes enumerate the points a block can take *after the clamp to [−Q, Q]*, in classes
//! laid out back to back from code 0 (`Layout`): integer points with even sum (the D_n
//! points), half-integer points (the E8 coset D8 + ½·𝟙), half-integer points with clamped
//! coordinates (E8 returns ±(Q+½) whenever the largest rotated value lands just above Q, and
//! the clamp turns that coordinate into ±Q), integer points with odd sum (a parity flip to
//! ±(Q+1) that the clamp pulled back), and one escape code. A class is included only if it
//! fits in the 2^b codes together with the escape code, so escapes are the only place where
//! a vector spends more than the accounted bits; `docs/CODEC.md` says which Q need them and
//! how often they happen.

use half::f16;

use crate::bitio::{BitReader, BitWriter};
use crate::bits::block_bits;
use crate::{Codec, CodecError, Side, Variant};

/// Largest Q packed storage supports: one block code must fit in 128 bits.
pub const MAX_PACK_Q: u32 = 32767;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Integer coordinates, even sum (D_n points, in range).
    IntEven,
    /// Integer coordinates, odd sum (only from a clamped parity flip).
    IntOdd,
    /// Half-integer coset, coordinates ±(Q+½) allowed and stored clamped.
    HalfFull,
    /// Half-integer coset strictly inside (−Q, Q).
    HalfIn,
    /// Half-integer coset with exactly one clamped coordinate.
    HalfOne,
}

/// Which classes occupy which code ranges for one (variant, Q).
#[derive(Debug, Clone)]
struct Layout {
    classes: Vec<(Class, u128, u128)>,
    escape: u128,
}

impl Layout {
    fn new(variant: Variant, q: u32, b: u32) -> Layout {
        let cap_m1 = if b >= 128 {
            u128::MAX
        } else {
            (1u128 << b) - 1
        };
        let q128 = u128::from(q);
        let m = 2 * q128 + 1;
        let mut classes = Vec::new();
        let mut used = 0u128;
        let mut add =
            |classes: &mut Vec<(Class, u128, u128)>, class, count: Option<u128>| match count
                .and_then(|c| used.checked_add(c).map(|t| (c, t)))
            {
                Some((c, t)) if t <= cap_m1 => {
                    classes.push((class, used, c));
                    used = t;
                    true
                }
                _ => false,
            };
        let pow = |base: u128, e: u32| base.checked_pow(e);
        match variant {
            Variant::D4 => {
                let m4 = pow(m, 4);
                add(&mut classes, Class::IntEven, m4.map(|p| p.div_ceil(2)));
                add(&mut classes, Class::IntOdd, m4.map(|p| p / 2));
            }
            Variant::E8 => {
                let m8 = pow(m, 8);
                add(&mut classes, Class::IntEven, m8.map(|p| p.div_ceil(2)));
                let full = pow(2 * q128 + 2, 8).map(|p| p / 2);
                if !add(&mut classes, Class::HalfFull, full) {
                    add(&mut classes, Class::HalfIn, pow(2 * q128, 8).map(|p| p / 2));
                    let one = pow(2 * q128, 6).and_then(|p| p.checked_mul(16 * q128));
                    add(&mut classes, Class::HalfOne, one);
                }
                add(&mut classes, Class::IntOdd, m8.map(|p| p / 2));
            }
        }
        Layout {
            classes,
            escape: used,
        }
    }

    fn has(&self, class: Class) -> Option<u128> {
        self.classes.iter().find(|c| c.0 == class).map(|c| c.1)
    }
}

#[inline(always)]
fn divmod(n: u128, d: u64) -> (u128, u64) {
    if let Ok(small) = u64::try_from(n) {
        (u128::from(small / d), small % d)
    } else {
        (n / u128::from(d), (n % u128::from(d)) as u64)
    }
}

/// Mixed-radix rank of integer digits `z_i + Q` (digit 0 least significant).
#[inline(always)]
fn int_rank(z: &[i64], q: i64) -> u128 {
    let m = (2 * q + 1) as u128;
    z.iter().rev().fold(0u128, |n, &v| n * m + (v + q) as u128)
}

/// Rank of half-coset offsets `w` (digits `w_i + o` in radix `r`, r even) whose sum must have
/// parity `target`: the last digit's parity is implied, so only its upper bits are stored.
#[inline(always)]
fn half_rank(w: &[i64], o: i64, r: u64) -> u128 {
    let (last, rest) = w.split_last().unwrap_or((&0, &[]));
    let top = ((last + o) >> 1) as u128;
    rest.iter()
        .rev()
        .fold(top, |n, &v| n * u128::from(r) + (v + o) as u128)
}

#[inline(always)]
fn half_unrank(mut n: u128, w: &mut [i64], o: i64, r: u64, target: i64) {
    let len = w.len();
    let mut sum = 0i64;
    for v in w.iter_mut().take(len - 1) {
        let (q, d) = divmod(n, r);
        n = q;
        *v = d as i64 - o;
        sum += *v;
    }
    let p = (target - sum + o).rem_euclid(2);
    w[len - 1] = 2 * (n as i64) + p - o;
}

/// Exact division by a fixed divisor with a multiply-high instead of a hardware divide:
/// `q ≈ ⌊n·⌊(2⁶⁴−1)/d⌋ / 2⁶⁴⌋` undershoots ⌊n/d⌋ by at most 2, which the remainder check fixes.
#[derive(Debug, Clone, Copy)]
struct FastDiv {
    d: u64,
    m: u64,
}

impl FastDiv {
    fn new(d: u64) -> FastDiv {
        FastDiv {
            d,
            m: u64::MAX / d.max(1),
        }
    }

    #[inline(always)]
    fn divmod(self, n: u64) -> (u64, u64) {
        let mut q = ((u128::from(n) * u128::from(self.m)) >> 64) as u64;
        let mut r = n - q * self.d;
        while r >= self.d {
            q += 1;
            r -= self.d;
        }
        (q, r)
    }
}

/// The common classes when every code fits 63 bits (E8 up to Q = 127, D4 at every packable Q), ranked and unranked in u64 arithmetic with
/// multiply-shift division. Anything else (the `half_one_clamp` class, b > 64) takes the u128
/// path; both produce the same codes (tested).
#[derive(Debug, Clone)]
struct Fast64 {
    q: i64,
    /// Radix of integer digits, 2Q + 1.
    m: u64,
    div_m: FastDiv,
    even: u64,
    odd: Option<u64>,
    /// (offset, digit offset o, radix r) of the half-integer class if it is `HalfFull` or
    /// `HalfIn`.
    half: Option<(u64, i64, u64)>,
    div_half: FastDiv,
    /// Clamped half-integer coordinates are stored (HalfFull) rather than slow-pathed.
    half_full: bool,
    /// Code ranges [start, end) per class, for decoding.
    ranges: Vec<(Class, u64, u64)>,
    escape: u64,
}

/// What the u64 encoder made of a block.
enum Code64 {
    Code(u64),
    Escape,
    /// Needs the general u128 path.
    Slow,
}

impl Fast64 {
    fn new(layout: &Layout, q: u32, b: u32) -> Option<Fast64> {
        // b ≤ 63: every class holds fewer than 2⁶³ codes, so ranks and m⁸ fit a u64.
        if b > 63 {
            return None;
        }
        let q64 = i64::from(q);
        let m = 2 * u64::from(q) + 1;
        let off = |c: Class| layout.has(c).map(|o| o as u64);
        let (half, half_full) = if let Some(o) = off(Class::HalfFull) {
            (Some((o, q64 + 1, 2 * u64::from(q) + 2)), true)
        } else if let Some(o) = off(Class::HalfIn) {
            (Some((o, q64, 2 * u64::from(q))), false)
        } else {
            (None, false)
        };
        Some(Fast64 {
            q: q64,
            m,
            div_m: FastDiv::new(m),
            even: off(Class::IntEven)?,
            odd: off(Class::IntOdd),
            half,
            div_half: FastDiv::new(half.map_or(1, |h| h.2)),
            half_full,
            ranges: layout
                .classes
                .iter()
                .map(|&(c, o, n)| (c, o as u64, (o + n) as u64))
                .collect(),
            escape: layout.escape as u64,
        })
    }

    /// Block code of doubled coordinates `t` (each in [−2Q, 2Q]).
    #[inline(always)]
    fn code(&self, t: &[i32]) -> Code64 {
        let q = self.q;
        if t.iter().all(|v| v & 1 == 0) {
            let mut n = 0u64;
            for &v in t.iter().rev() {
                n = n * self.m + ((i64::from(v) >> 1) + q) as u64;
            }
            let off = if n & 1 == 0 {
                Some(self.even)
            } else {
                self.odd
            };
            return off.map_or(Code64::Escape, |o| Code64::Code(o + (n >> 1)));
        }
        let Some((off, o, r)) = self.half else {
            return Code64::Slow;
        };
        // Half-integer block: w = (t − 1)/2, i.e. z − ½; a clamped coordinate ±Q stands for
        // w = Q (from Q + ½) or w = −Q − 1 (from −Q − ½).
        let mut w = [0i64; 8];
        let mut parity = 0i64;
        for (wi, &ti) in w.iter_mut().zip(t) {
            let v = i64::from(ti);
            *wi = if v & 1 != 0 {
                (v - 1) >> 1
            } else if !self.half_full {
                return Code64::Slow;
            } else if v == 2 * q {
                q
            } else if v == -2 * q {
                -q - 1
            } else {
                return Code64::Escape;
            };
            parity += *wi;
        }
        if parity & 1 != 0 {
            return Code64::Escape;
        }
        let w = &w[..t.len()];
        let (last, rest) = w.split_last().unwrap_or((&0, &[]));
        let mut n = ((last + o) >> 1) as u64;
        for &v in rest.iter().rev() {
            n = n * r + (v + o) as u64;
        }
        Code64::Code(off + n)
    }

    /// Doubled coordinates of a code; Ok(Some(false)) for the escape code, Ok(None) when the
    /// code belongs to a class only the u128 path decodes.
    #[inline(always)]
    fn point(&self, code: u64, t: &mut [i32]) -> Result<Option<bool>, CodecError> {
        if code == self.escape {
            return Ok(Some(false));
        }
        let Some(&(class, start, _)) = self.ranges.iter().find(|c| code >= c.1 && code < c.2)
        else {
            return Err(CodecError::Malformed {
                reason: format!("block code {code} is past the escape code"),
            });
        };
        let rank = code - start;
        let q = self.q as i32;
        match class {
            Class::IntEven | Class::IntOdd => {
                let mut v = rank * 2 + u64::from(class == Class::IntOdd);
                for ti in t.iter_mut() {
                    let (rest, d) = self.div_m.divmod(v);
                    v = rest;
                    *ti = 2 * (d as i32 - q);
                }
            }
            Class::HalfFull | Class::HalfIn => {
                let Some((_, o, _)) = self.half else {
                    return Ok(None);
                };
                let n = t.len();
                let mut v = rank;
                let mut sum = 0i64;
                for ti in t.iter_mut().take(n - 1) {
                    let (rest, d) = self.div_half.divmod(v);
                    v = rest;
                    let w = d as i64 - o;
                    sum += w;
                    *ti = (2 * w + 1) as i32;
                }
                let p = (o - sum).rem_euclid(2);
                t[n - 1] = (2 * (2 * v as i64 + p - o) + 1) as i32;
                if class == Class::HalfFull {
                    let q2 = 2 * q;
                    for ti in t.iter_mut() {
                        if *ti > q2 {
                            *ti = q2;
                        } else if *ti < -q2 {
                            *ti = -q2;
                        }
                    }
                }
            }
            Class::HalfOne => return Ok(None),
        }
        Ok(Some(true))
    }
}

/// Constants of the row-parallel pack path ([`super::rows`]): the lattice point of L rows is
/// turned into block codes lane by lane in SIMD, as pairs of mixed-radix digits
/// `p = d₂ᵢ + d₂ᵢ₊₁·radix` that are exact in f32 (radix² ≤ 2²⁴); only the final combination of
/// the pairs (E8: 3 multiply-adds, D4: 1) and the bit writes are scalar. Available whenever the
/// u64 path is ([`Fast64`]) and the radix fits, i.e. every canonical Q; other blocks and layouts
/// use the per-row code, and both give identical bytes (tested).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Q as f32.
    pub q: f32,
    /// Integer radix 2Q + 1.
    pub m: f32,
    /// Half-integer radix (2Q + 2 with clamps stored, 2Q without), 0 without a half class.
    pub rh: f32,
    /// Half-integer digit offset o (digit = w + o, w = z − ½).
    pub o: f32,
    /// The half class stores clamped coordinates (`half_with_clamps`).
    pub half_full: bool,
    /// Whether a half class exists at all (E8).
    pub half: bool,
    m2: u64,
    rh2: u64,
    div_m2: FastDiv,
    div_rh2: FastDiv,
}

/// Block kinds the SIMD half of the pack path hands to the scalar half.
pub(crate) const KIND_INT: f32 = 0.0;
pub(crate) const KIND_HALF: f32 = 1.0;
/// Anything else: the block is coded from its coordinates by the per-row code.
pub(crate) const KIND_OTHER: f32 = 2.0;

impl Plan {
    fn new(f: &Fast64) -> Option<Plan> {
        let m = f.m;
        let (rh, o, half) = match f.half {
            Some((_, o, r)) => (r, o, true),
            // No half class: any radix that keeps the (unused) half lanes finite.
            None => (m, 0, false),
        };
        let lim = 1u64 << 24;
        if m * m > lim || rh * rh > lim {
            return None;
        }
        Some(Plan {
            q: f.q as f32,
            m: m as f32,
            rh: rh as f32,
            o: o as f32,
            half_full: f.half_full,
            half,
            m2: m * m,
            rh2: rh * rh,
            div_m2: FastDiv::new(m * m),
            div_rh2: FastDiv::new((rh * rh).max(1)),
        })
    }
}

/// Encoder/decoder of packed vectors for one codec.
#[derive(Debug, Clone)]
pub struct Packer {
    codec: Codec,
    b: u32,
    escape_bits: u32,
    layout: Layout,
    fast: Option<Fast64>,
    plan: Option<Plan>,
}

/// What encoding one vector produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Blocks stored through the escape code.
    pub escapes: u32,
    /// Bytes written.
    pub bytes: usize,
}

impl Packer {
    /// The packer for `codec`; Q above [`MAX_PACK_Q`] is refused.
    ///
    /// ```
    /// use kakeya_lattice::{Codec, Packer, Variant};
    /// let p = Packer::new(Codec::new(Variant::E8, 128, 38)?)?;
    /// let x: Vec<f32> = (0..128).map(|i| (i as f32).cos()).collect();
    /// let mut bytes = Vec::new();
    /// p.encode(&x, &mut bytes)?;
    /// assert_eq!(bytes.len(), p.base_bytes());
    /// let mut y = vec![0.0; 128];
    /// p.decode(&bytes, &mut y)?;
    /// assert_eq!(y, p.codec().roundtrip_row(&x)?);
    /// # Ok::<(), kakeya_lattice::CodecError>(())
    /// ```
    pub fn new(codec: Codec) -> Result<Packer, CodecError> {
        let q = codec.q();
        if q > MAX_PACK_Q {
            return Err(CodecError::PackUnsupported {
                variant: codec.variant(),
                q,
                max: MAX_PACK_Q,
            });
        }
        let b = block_bits(codec.variant(), q);
        let layout = Layout::new(codec.variant(), q, b);
        let fast = Fast64::new(&layout, q, b);
        Ok(Packer {
            b,
            escape_bits: 32 - (4 * q).leading_zeros(),
            plan: fast.as_ref().and_then(Plan::new),
            fast,
            layout,
            codec,
        })
    }

    /// The codec this packer stores.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Bits per block code (the accounted ⌈b_real⌉).
    pub fn block_code_bits(&self) -> u32 {
        self.b
    }

    /// Extra bits one escaped block costs.
    pub fn escape_block_bits(&self) -> u32 {
        self.escape_bits * self.codec.variant().block() as u32
    }

    /// Bytes of a vector without escapes: the accounted bits rounded up to a byte.
    pub fn base_bytes(&self) -> usize {
        (self.codec.bits() as usize).div_ceil(8)
    }

    /// Names of the code classes in layout order (for reports and docs).
    pub fn class_names(&self) -> Vec<&'static str> {
        self.layout
            .classes
            .iter()
            .map(|c| match c.0 {
                Class::IntEven => "int_even",
                Class::IntOdd => "int_odd_clamped",
                Class::HalfFull => "half_with_clamps",
                Class::HalfIn => "half_in_range",
                Class::HalfOne => "half_one_clamp",
            })
            .collect()
    }

    /// Block code for doubled coordinates `t = 2z`, or None for the escape code.
    fn block_code(&self, t: &[i32]) -> Option<u128> {
        let q = i64::from(self.codec.q());
        let n = t.len();
        let mut w = [0i64; 8];
        if t.iter().all(|v| v % 2 == 0) {
            for (wi, &ti) in w.iter_mut().zip(t) {
                *wi = i64::from(ti / 2);
            }
            let rank = int_rank(&w[..n], q);
            let class = if rank.is_multiple_of(2) {
                Class::IntEven
            } else {
                Class::IntOdd
            };
            return self.layout.has(class).map(|off| off + rank / 2);
        }
        let mut clamped = 0usize;
        let mut at = 0usize;
        let mut parity = 0i64;
        for (i, (&ti, wi)) in t.iter().zip(w.iter_mut()).enumerate() {
            *wi = match i64::from(ti) {
                v if v % 2 != 0 => (v - 1) >> 1,
                v if v == 2 * q => q,
                v if v == -2 * q => -q - 1,
                _ => return None,
            };
            if ti % 2 == 0 {
                clamped += 1;
                at = i;
            }
            parity += *wi;
        }
        if parity.rem_euclid(2) != 0 {
            return None;
        }
        let r = 2 * q as u64;
        if let Some(off) = self.layout.has(Class::HalfFull) {
            return Some(off + half_rank(&w[..n], q + 1, r + 2));
        }
        match clamped {
            0 => self
                .layout
                .has(Class::HalfIn)
                .map(|off| off + half_rank(&w[..n], q, r)),
            1 => {
                let off = self.layout.has(Class::HalfOne)?;
                let sign = u128::from(w[at] != q);
                let mut rest = [0i64; 7];
                let mut k = 0;
                for (i, &v) in w.iter().enumerate().take(n) {
                    if i != at {
                        rest[k] = v;
                        k += 1;
                    }
                }
                let per = u128::from(r).pow(6) * (q as u128);
                Some(off + (at as u128 * 2 + sign) * per + half_rank(&rest, q, r))
            }
            _ => None,
        }
    }

    /// Doubled coordinates for a block code; Ok(false) for the escape code.
    fn block_point(&self, code: u128, t: &mut [i32]) -> Result<bool, CodecError> {
        if code == self.layout.escape {
            return Ok(false);
        }
        let &(class, off, _) = self
            .layout
            .classes
            .iter()
            .find(|c| code >= c.1 && code - c.1 < c.2)
            .ok_or_else(|| CodecError::Malformed {
                reason: format!("block code {code} is past the escape code"),
            })?;
        let rank = code - off;
        let q = i64::from(self.codec.q());
        let r = 2 * q as u64;
        let n = t.len();
        let mut w = [0i64; 8];
        match class {
            Class::IntEven | Class::IntOdd => {
                let mut v = rank * 2 + u128::from(class == Class::IntOdd);
                for ti in t.iter_mut() {
                    let (rest, d) = divmod(v, r + 1);
                    v = rest;
                    *ti = 2 * (d as i32 - q as i32);
                }
            }
            Class::HalfFull => {
                half_unrank(rank, &mut w[..n], q + 1, r + 2, 0);
                for (ti, &wi) in t.iter_mut().zip(&w) {
                    *ti = if wi == q {
                        2 * q as i32
                    } else if wi == -q - 1 {
                        -2 * q as i32
                    } else {
                        (2 * wi + 1) as i32
                    };
                }
            }
            Class::HalfIn => {
                half_unrank(rank, &mut w[..n], q, r, 0);
                for (ti, &wi) in t.iter_mut().zip(&w) {
                    *ti = (2 * wi + 1) as i32;
                }
            }
            Class::HalfOne => {
                let per = u128::from(r).pow(6) * (q as u128);
                let (sel, low) = (rank / per, rank % per);
                let at = (sel / 2) as usize;
                let wp = if sel % 2 == 0 { q } else { -q - 1 };
                let mut rest = [0i64; 7];
                half_unrank(low, &mut rest, q, r, wp.rem_euclid(2));
                let mut k = 0;
                for (i, ti) in t.iter_mut().enumerate() {
                    if i == at {
                        *ti = if wp == q { 2 * q as i32 } else { -2 * q as i32 };
                    } else {
                        *ti = (2 * rest[k] + 1) as i32;
                        k += 1;
                    }
                }
            }
        }
        Ok(true)
    }

    /// The row-parallel pack plan, if this layout has one.
    pub(crate) fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// Code of a block given as doubled coordinates, through the u64 path when it applies.
    #[inline(always)]
    fn any_code(&self, t: &[i32]) -> Option<u128> {
        match self.fast.as_ref().map(|f| f.code(t)) {
            Some(Code64::Code(c)) => Some(u128::from(c)),
            Some(Code64::Escape) => None,
            Some(Code64::Slow) | None => self.block_code(t),
        }
    }

    /// Scalar half of the row-parallel encoder: write lane `l` of a group as one packed vector.
    /// `kinds[blk][l]` and `parts[blk·P + i][l]` come from the SIMD half (P = bd/2 digit
    /// pairs per block), `tile[k][l]` is the lattice point (for blocks of [`KIND_OTHER`]).
    #[inline(always)]
    pub(crate) fn write_lane<const L: usize>(
        &self,
        side: Side,
        l: usize,
        kinds: &[[f32; L]],
        parts: &[[u32; L]],
        tile: &[[f32; L]],
        out: &mut Vec<u8>,
    ) -> PackStats {
        let start = out.len();
        let (Some(plan), Some(fast)) = (&self.plan, &self.fast) else {
            unreachable!("write_lane without a plan");
        };
        let bd = self.codec.variant().block();
        let np = bd / 2;
        let q2 = 2 * self.codec.q() as i32;
        let mut escaped: Vec<[i32; 8]> = Vec::new();
        let mut w = BitWriter::new(out);
        w.put(
            u64::from(side.norm.to_bits()) | (u64::from(side.qmax.to_bits()) << 16),
            32,
        );
        for (blk, kind) in kinds.iter().enumerate() {
            let pr = &parts[blk * np..blk * np + np];
            let combine = |radix2: u64| {
                let mut n = u64::from(pr[np - 1][l]);
                for p in pr[..np - 1].iter().rev() {
                    n = n * radix2 + u64::from(p[l]);
                }
                n
            };
            let k = kind[l];
            let code = if k == KIND_INT {
                let n = combine(plan.m2);
                if n & 1 == 0 {
                    Some(u128::from(fast.even + (n >> 1)))
                } else {
                    fast.odd.map(|o| u128::from(o + (n >> 1)))
                }
            } else if k == KIND_HALF {
                fast.half.map(|h| u128::from(h.0 + combine(plan.rh2)))
            } else {
                let mut t = [0i32; 8];
                for (c, tc) in t.iter_mut().enumerate().take(bd) {
                    *tc = (2.0 * tile[blk * bd + c][l]) as i32;
                }
                self.any_code(&t[..bd])
            };
            match code {
                Some(code) => w.put_wide(code, self.b),
                None => {
                    w.put_wide(self.layout.escape, self.b);
                    let mut t = [0i32; 8];
                    for (c, tc) in t.iter_mut().enumerate().take(bd) {
                        *tc = (2.0 * tile[blk * bd + c][l]) as i32;
                    }
                    escaped.push(t);
                }
            }
        }
        for t in &escaped {
            for &ti in &t[..bd] {
                w.put((ti + q2) as u64, self.escape_bits);
            }
        }
        w.finish();
        PackStats {
            escapes: escaped.len() as u32,
            bytes: out.len() - start,
        }
    }

    /// Scalar half of the row-parallel decoder: read one packed vector into lane `l`:
    /// digit pairs (as f32) and kinds for the SIMD half, and for blocks it cannot expand
    /// (escapes, `half_one_clamp`) the doubled coordinates in `fix`. Returns the side scalars
    /// and the bytes used.
    #[inline(always)]
    pub(crate) fn read_lane<const L: usize>(
        &self,
        bytes: &[u8],
        l: usize,
        kinds: &mut [[f32; L]],
        parts: &mut [[f32; L]],
        fix: &mut Vec<(usize, usize, [i32; 8])>,
    ) -> Result<(Side, usize), CodecError> {
        let short = || CodecError::Malformed {
            reason: "packed vector is truncated".into(),
        };
        let (Some(plan), Some(fast)) = (&self.plan, &self.fast) else {
            unreachable!("read_lane without a plan");
        };
        let bd = self.codec.variant().block();
        let np = bd / 2;
        let mut r = BitReader::new(bytes);
        let head = r.get(32).ok_or_else(short)?;
        let norm = f16::from_bits(head as u16);
        let qmax = f16::from_bits((head >> 16) as u16);
        let first_fix = fix.len();
        for (blk, kind) in kinds.iter_mut().enumerate() {
            let code = r.get(self.b).ok_or_else(short)?;
            let pr = &mut parts[blk * np..blk * np + np];
            let split = |mut n: u64, div: FastDiv, pr: &mut [[f32; L]]| {
                for p in pr[..np - 1].iter_mut() {
                    let (rest, d) = div.divmod(n);
                    p[l] = d as f32;
                    n = rest;
                }
                pr[np - 1][l] = n as f32;
            };
            let class = fast
                .ranges
                .iter()
                .find(|c| code >= c.1 && code < c.2)
                .map(|c| (c.0, code - c.1));
            match class {
                Some((Class::IntEven, rank)) => {
                    kind[l] = KIND_INT;
                    split(rank * 2, plan.div_m2, pr);
                }
                Some((Class::IntOdd, rank)) => {
                    kind[l] = KIND_INT;
                    split(rank * 2 + 1, plan.div_m2, pr);
                }
                Some((Class::HalfFull | Class::HalfIn, rank)) => {
                    kind[l] = KIND_HALF;
                    split(rank, plan.div_rh2, pr);
                }
                _ if code == fast.escape => {
                    kind[l] = KIND_OTHER;
                    fix.push((l, blk, [i32::MIN; 8]));
                }
                _ => {
                    // half_one_clamp, or past the escape code (an error from block_point).
                    kind[l] = KIND_OTHER;
                    let mut t = [0i32; 8];
                    self.block_point(u128::from(code), &mut t[..bd])?;
                    fix.push((l, blk, t));
                }
            }
        }
        let q2 = 2 * i64::from(self.codec.q());
        for f in fix[first_fix..].iter_mut().filter(|f| f.2[0] == i32::MIN) {
            for tc in f.2.iter_mut().take(bd) {
                let raw = r.get(self.escape_bits).ok_or_else(short)? as i64;
                if raw > 2 * q2 {
                    return Err(CodecError::Malformed {
                        reason: format!("escaped coordinate {raw} is outside 0..={}", 2 * q2),
                    });
                }
                *tc = (raw - q2) as i32;
            }
        }
        Ok((Side { norm, qmax }, r.position().div_ceil(8)))
    }

    /// Pack the lattice point `z` and side scalars, appending to `out`.
    pub fn pack_point(&self, side: Side, z: &[f32], out: &mut Vec<u8>) -> PackStats {
        let start = out.len();
        let bd = self.codec.variant().block();
        let q2 = 2 * self.codec.q() as i32;
        let mut escaped: Vec<[i32; 8]> = Vec::new();
        let mut w = BitWriter::new(out);
        w.put(u64::from(side.norm.to_bits()), 16);
        w.put(u64::from(side.qmax.to_bits()), 16);
        for block in z.chunks_exact(bd) {
            let mut t = [0i32; 8];
            for (ti, &v) in t.iter_mut().zip(block) {
                *ti = (2.0 * v) as i32;
            }
            let code = match self.fast.as_ref().map(|f| f.code(&t[..bd])) {
                Some(Code64::Code(c)) => Some(u128::from(c)),
                Some(Code64::Escape) => None,
                Some(Code64::Slow) | None => self.block_code(&t[..bd]),
            };
            match code {
                Some(code) => w.put_wide(code, self.b),
                None => {
                    w.put_wide(self.layout.escape, self.b);
                    escaped.push(t);
                }
            }
        }
        for t in &escaped {
            for &ti in &t[..bd] {
                w.put((ti + q2) as u64, self.escape_bits);
            }
        }
        w.finish();
        PackStats {
            escapes: escaped.len() as u32,
            bytes: out.len() - start,
        }
    }

    /// Encode one row (length D), appending its packed bytes to `out`.
    pub fn encode(&self, x: &[f32], out: &mut Vec<u8>) -> Result<PackStats, CodecError> {
        let mut z = vec![0.0f32; self.codec.dim()];
        let side = self.codec.quantize_row(x, &mut z)?;
        Ok(self.pack_point(side, &z, out))
    }

    /// Read one packed vector from the front of `bytes` into its lattice point `z` (length D)
    /// and side scalars; returns them with the number of bytes consumed.
    pub fn unpack_point(&self, bytes: &[u8], z: &mut [f32]) -> Result<(Side, usize), CodecError> {
        let short = || CodecError::Malformed {
            reason: "packed vector is truncated".into(),
        };
        let bd = self.codec.variant().block();
        if z.len() != self.codec.dim() {
            return Err(CodecError::RowLength {
                len: z.len(),
                dim: self.codec.dim(),
            });
        }
        let mut r = BitReader::new(bytes);
        let norm = f16::from_bits(r.get(16).ok_or_else(short)? as u16);
        let qmax = f16::from_bits(r.get(16).ok_or_else(short)? as u16);
        let mut escaped = Vec::new();
        let mut t = [0i32; 8];
        for (i, block) in z.chunks_exact_mut(bd).enumerate() {
            let code = r.get_wide(self.b).ok_or_else(short)?;
            let known = match &self.fast {
                Some(f) => f.point(code as u64, &mut t[..bd])?,
                None => None,
            };
            let known = match known {
                Some(k) => k,
                None => self.block_point(code, &mut t[..bd])?,
            };
            if known {
                for (v, &ti) in block.iter_mut().zip(&t) {
                    *v = ti as f32 * 0.5;
                }
            } else {
                escaped.push(i);
            }
        }
        let q2 = 2 * i64::from(self.codec.q());
        for i in escaped {
            for v in &mut z[i * bd..(i + 1) * bd] {
                let raw = r.get(self.escape_bits).ok_or_else(short)? as i64;
                if raw > 2 * q2 {
                    return Err(CodecError::Malformed {
                        reason: format!("escaped coordinate {raw} is outside 0..={}", 2 * q2),
                    });
                }
                *v = (raw - q2) as f32 * 0.5;
            }
        }
        Ok((Side { norm, qmax }, r.position().div_ceil(8)))
    }

    /// Decode one packed vector from the front of `bytes` into `out` (length D); returns the
    /// number of bytes consumed.
    pub fn decode(&self, bytes: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        let (side, used) = self.unpack_point(bytes, out)?;
        self.codec.dequantize_row(side, out)?;
        Ok(used)
    }
}

#[cfg(test)]
mod tests;
