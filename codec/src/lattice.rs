//! Closest lattice points (Conway & Sloane 1982) for D4, D8 and E8 with the reference's exact
//! tie rules: round half to even, parity from the float sum truncated to an integer, the
//! first index on argmax ties, a +1 step when the rounding error is zero (or −0.0), and E8
//! preferring the integer coset when both cosets are equally far. Every comparison is done on
//! f32 values computed in the same order as the reference so that ties resolve identically.

/// Sum of an integer-valued block in the reference's order (NumPy's reduction: sequential for
/// fewer than 8 values, a balanced tree of 8 partial sums at exactly 8). The values are
/// integers, so the order only matters once |sum| exceeds 2^24.
#[inline(always)]
fn block_sum<const N: usize>(v: &[f32; N]) -> f32 {
    if N == 8 {
        ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))
    } else {
        v.iter().fold(0.0f32, |acc, &x| acc + x)
    }
}

/// Sum of squared differences in the reference's order (see [`block_sum`]).
#[inline(always)]
fn sq_dist<const N: usize>(y: &[f32; N], p: &[f32; N]) -> f32 {
    let mut d = [0.0f32; N];
    for i in 0..N {
        let e = y[i] - p[i];
        d[i] = e * e;
    }
    block_sum(&d)
}

/// Closest point of D_n = {z ∈ Zⁿ : Σz even}.
#[inline(always)]
pub fn closest_dn<const N: usize>(y: &[f32; N]) -> [f32; N] {
    let mut f = [0.0f32; N];
    for i in 0..N {
        f[i] = y[i].round_ties_even();
    }
    // Truncation to i64 then the low bit: −3 is odd, as with a non-negative remainder.
    let s = block_sum(&f) as i64;
    if s & 1 == 0 {
        return f;
    }
    let mut k = 0;
    let mut best = (y[0] - f[0]).abs();
    for i in 1..N {
        let a = (y[i] - f[i]).abs();
        // Strictly greater keeps the first index on ties.
        if a > best {
            best = a;
            k = i;
        }
    }
    let d = y[k] - f[k];
    f[k] += if d >= 0.0 { 1.0 } else { -1.0 };
    f
}

/// Closest point of D4.
#[inline(always)]
pub fn closest_d4(y: &[f32; 4]) -> [f32; 4] {
    closest_dn(y)
}

/// Closest point of D8.
#[inline(always)]
pub fn closest_d8(y: &[f32; 8]) -> [f32; 8] {
    closest_dn(y)
}

/// Closest point of E8 = D8 ∪ (D8 + ½·𝟙): the nearer of the two coset candidates, the integer
/// one on equal distance.
#[inline(always)]
pub fn closest_e8(y: &[f32; 8]) -> [f32; 8] {
    let a = closest_dn(y);
    let mut shifted = [0.0f32; 8];
    for i in 0..8 {
        shifted[i] = y[i] - 0.5;
    }
    let mut b = closest_dn(&shifted);
    for v in b.iter_mut() {
        *v += 0.5;
    }
    if sq_dist(y, &a) <= sq_dist(y, &b) {
        a
    } else {
        b
    }
}

/// Eight blocks side by side, coordinate-major: `y[c][l]` is coordinate `c` of block `l`.
/// Every step below is then the same operation on independent lanes, which the compiler
/// turns into straight-line SIMD with no data-dependent branches (the scalar search above
/// branches on parity, argmax and coset choice, which are random per block).
pub type Lanes = [f32; 8];

/// [`closest_dn`] on `L` blocks at once (`y[c][l]` = coordinate `c` of block `l`), bit for bit
/// the scalar result lane by lane (−0.0 included) for finite inputs. Everything is a float
/// compare and select, so it vectorises across lanes: parity is read from the exact integer
/// sum as `sum/2 − ⌊sum/2⌋ = ½` (|sum| < 2²⁴, see [`crate::MAX_Q`]), the first index of
/// the argmax is carried as a float.
#[inline(always)]
pub fn dn_lanes<const N: usize, const L: usize>(y: &[[f32; L]; N]) -> [[f32; L]; N] {
    let mut f = [[0.0f32; L]; N];
    let mut a = [[0.0f32; L]; N];
    for c in 0..N {
        for l in 0..L {
            f[c][l] = y[c][l].round_ties_even();
            a[c][l] = (y[c][l] - f[c][l]).abs();
        }
    }
    let mut m = a[0];
    for row in a.iter().skip(1) {
        for l in 0..L {
            m[l] = if row[l] > m[l] { row[l] } else { m[l] };
        }
    }
    // Scan from the last coordinate so the first index holding the maximum wins.
    let mut k = [0.0f32; L];
    let mut dk = [0.0f32; L];
    for c in (0..N).rev() {
        for l in 0..L {
            let hit = a[c][l] == m[l];
            k[l] = if hit { c as f32 } else { k[l] };
            dk[l] = if hit { y[c][l] - f[c][l] } else { dk[l] };
        }
    }
    let mut step = [0.0f32; L];
    for l in 0..L {
        let sum = if N == 8 {
            ((f[0][l] + f[1][l]) + (f[2][l] + f[3][l]))
                + ((f[4][l] + f[5][l]) + (f[6][l] + f[7][l]))
        } else {
            let mut acc = 0.0f32;
            for row in f.iter() {
                acc += row[l];
            }
            acc
        };
        let h = sum * 0.5;
        let odd = h - h.floor() == 0.5;
        let sign = if dk[l] >= 0.0 { 1.0 } else { -1.0 };
        // 0.0 = no step; the coordinate index is never −1, so k = −1 disables the flip.
        step[l] = sign;
        k[l] = if odd { k[l] } else { -1.0 };
    }
    for (c, row) in f.iter_mut().enumerate() {
        for l in 0..L {
            // A select, not `+= 0.0`, so an untouched −0.0 stays −0.0 as in the scalar code.
            row[l] = if k[l] == c as f32 {
                row[l] + step[l]
            } else {
                row[l]
            };
        }
    }
    f
}

/// [`closest_e8`] on `L` blocks at once (see [`dn_lanes`]).
#[inline(always)]
pub fn e8_lanes<const L: usize>(y: &[[f32; L]; 8]) -> [[f32; L]; 8] {
    let a = dn_lanes(y);
    let mut shifted = [[0.0f32; L]; 8];
    for c in 0..8 {
        for l in 0..L {
            shifted[c][l] = y[c][l] - 0.5;
        }
    }
    let mut b = dn_lanes(&shifted);
    for row in b.iter_mut() {
        for v in row.iter_mut() {
            *v += 0.5;
        }
    }
    let dist = |p: &[[f32; L]; 8]| {
        let mut e = [[0.0f32; L]; 8];
        for c in 0..8 {
            for l in 0..L {
                let d = y[c][l] - p[c][l];
                e[c][l] = d * d;
            }
        }
        let mut out = [0.0f32; L];
        for l in 0..L {
            out[l] = ((e[0][l] + e[1][l]) + (e[2][l] + e[3][l]))
                + ((e[4][l] + e[5][l]) + (e[6][l] + e[7][l]));
        }
        out
    };
    let (da, db) = (dist(&a), dist(&b));
    let mut out = [[0.0f32; L]; 8];
    for c in 0..8 {
        for l in 0..L {
            out[c][l] = if da[l] <= db[l] { a[c][l] } else { b[c][l] };
        }
    }
    out
}

/// [`closest_dn`] on eight blocks at once ([`dn_lanes`] with 8 lanes).
#[inline(always)]
pub fn closest_dn_lanes<const N: usize>(y: &[Lanes; N]) -> [Lanes; N] {
    dn_lanes(y)
}

/// [`closest_e8`] on eight blocks at once ([`e8_lanes`] with 8 lanes).
#[inline(always)]
pub fn closest_e8_lanes(y: &[Lanes; 8]) -> [Lanes; 8] {
    e8_lanes(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_anchors() {
        let mut y = [0.0f32; 8];
        y[0] = 1.0;
        assert_eq!(closest_d8(&y), [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        y[0] = 1.25;
        y[1] = 0.25;
        assert_eq!(closest_d8(&y), [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let half = [0.5f32; 8];
        assert_eq!(closest_d8(&half), [0.0; 8]);
        assert_eq!(closest_e8(&half), half);
        let neg = closest_d8(&[-0.5f32; 8]);
        assert!(neg.iter().all(|v| *v == 0.0));
        let y = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 0.0];
        assert_eq!(closest_d8(&y), [0.0, 2.0, 2.0, 0.0, -2.0, -2.0, 4.0, 0.0]);
        assert_eq!(closest_e8(&y), [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 0.5]);
        assert_eq!(closest_d4(&[2.5, 0.0, 0.0, 0.0]), [2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn lanes_match_scalar() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for round in 0..4000 {
            let mut y = [[0.0f32; 8]; 8];
            for row in y.iter_mut() {
                for cell in row.iter_mut() {
                    let v = next() * 40.0;
                    // Every fourth round uses exact halves and integers to hit the tie rules.
                    *cell = if round % 4 == 0 {
                        (v * 2.0).round() / 2.0
                    } else {
                        v
                    };
                }
            }
            let e = closest_e8_lanes(&y);
            let d = closest_dn_lanes(&y);
            let mut y4 = [[0.0f32; 8]; 4];
            y4.copy_from_slice(&y[..4]);
            let d4 = closest_dn_lanes(&y4);
            for l in 0..8 {
                let col: [f32; 8] = std::array::from_fn(|c| y[c][l]);
                let se = closest_e8(&col);
                let sd = closest_d8(&col);
                let s4 = closest_d4(&[col[0], col[1], col[2], col[3]]);
                for c in 0..8 {
                    assert_eq!(e[c][l].to_bits(), se[c].to_bits(), "E8 {col:?}");
                    assert_eq!(d[c][l].to_bits(), sd[c].to_bits(), "D8 {col:?}");
                }
                for c in 0..4 {
                    assert_eq!(d4[c][l].to_bits(), s4[c].to_bits(), "D4 {col:?}");
                }
            }
        }
    }

    #[test]
    fn results_are_lattice_points() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut y = [0.0f32; 8];
            for v in y.iter_mut() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 20.0;
            }
            let d = closest_d8(&y);
            assert_eq!(d.iter().sum::<f32>() as i64 % 2, 0);
            let e = closest_e8(&y);
            let frac: Vec<f32> = e.iter().map(|v| v - v.floor()).collect();
            assert!(frac.iter().all(|f| *f == 0.0) || frac.iter().all(|f| *f == 0.5));
        }
    }
}
