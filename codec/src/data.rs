//! Seeded synthetic rows for evaluations and benchmarks: Gaussian, heavy-tailed (Student-t)
//! and Gaussian rows with a few outlier channels, the shape real attention keys have (a handful
//! of channels with large magnitude and a non-zero mean). Deterministic for a given seed on
//! every platform: the generator is SplitMix64 and the transforms use only f64 basics.

/// SplitMix64: tiny, fast, and good enough for test data; not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    ///
    /// ```
    /// let mut r = kakeya_lattice::data::Rng::new(7);
    /// assert_ne!(r.next_u64(), r.next_u64());
    /// ```
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller; one value per call for simplicity).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Student-t with `nu` degrees of freedom (integer ν: a normal over √(χ²_ν/ν)).
    pub fn student_t(&mut self, nu: u32) -> f64 {
        let z = self.normal();
        let chi2: f64 = (0..nu).map(|_| self.normal().powi(2)).sum();
        z / (chi2 / f64::from(nu)).sqrt().max(1e-12)
    }
}

/// The data sources an evaluation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// N(0, 0.3²) per value, as the reference's parity tests use.
    Gaussian,
    /// Student-t with ν = 3, scaled by 0.3: heavy tails.
    StudentT,
    /// N(0, 0.3²) plus 4 fixed channels (per seed) with scale ×12 and mean +2.
    Outliers,
}

impl Source {
    /// Every source, in report order.
    pub const ALL: [Source; 3] = [Source::Gaussian, Source::StudentT, Source::Outliers];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Source::Gaussian => "gaussian",
            Source::StudentT => "student_t3",
            Source::Outliers => "outlier_channels",
        }
    }
}

/// `rows × dim` row-major values from `source`, deterministic in `seed`.
pub fn generate(source: Source, rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let tag = match source {
        Source::Gaussian => 1,
        Source::StudentT => 2,
        Source::Outliers => 3,
    };
    let mut rng = Rng::new(seed.wrapping_mul(0x100_0000_01b3).wrapping_add(tag));
    let outliers: Vec<usize> = (0..4.min(dim))
        .map(|_| (rng.next_u64() % dim as u64) as usize)
        .collect();
    let mut x = Vec::with_capacity(rows * dim);
    for _ in 0..rows {
        for j in 0..dim {
            let v = match source {
                Source::Gaussian => 0.3 * rng.normal(),
                Source::StudentT => 0.3 * rng.student_t(3),
                Source::Outliers => {
                    let g = 0.3 * rng.normal();
                    if outliers.contains(&j) {
                        12.0 * g + 2.0
                    } else {
                        g
                    }
                }
            };
            x.push(v as f32);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_plausible() {
        let a = generate(Source::Gaussian, 100, 64, 9);
        assert_eq!(a, generate(Source::Gaussian, 100, 64, 9));
        assert_ne!(a, generate(Source::Gaussian, 100, 64, 10));
        let var: f64 = a.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / a.len() as f64;
        assert!((var - 0.09).abs() < 0.01, "{var}");
        let o = generate(Source::Outliers, 50, 64, 1);
        assert!(o.iter().any(|v| v.abs() > 3.0));
    }
}
