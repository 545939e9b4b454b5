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
