//! Token choice from one row of logits: greedy at temperature 0 (the engine's own argmax, so
//! plain and speculative greedy agree), otherwise temperature + nucleus (top-p) sampling from
//! a per-request seeded generator, so the same seed gives the same tokens.

use kakeya_engine::model::argmax;

/// Sampling parameters of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 = greedy.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
    pub seed: u64,
}

impl Sampling {
    pub fn greedy() -> Self {
        Sampling {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// SplitMix64: tiny, seedable and identical on every platform.
pub struct Sampler {
    params: Sampling,
    state: u64,
}

impl Sampler {
    pub fn new(params: Sampling) -> Self {
        Sampler {
            params,
            state: params.seed ^ 0xD1B5_4A32_D192_ED03,
        }
    }

    fn next_f64(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next token given the logits after the last committed one.
    pub fn pick(&mut self, row: &[f32]) -> u32 {
        if self.params.is_greedy() || row.is_empty() {
            return argmax(row);
        }
        let t = self.params.temperature as f64;
        let max = row
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .fold(f32::NEG_INFINITY, f32::max) as f64;
        if !max.is_finite() {
            return argmax(row);
        }
        let mut probs: Vec<(u32, f64)> = row
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let p = if x.is_finite() {
                    ((x as f64 - max) / t).exp()
                } else {
                    0.0
                };
                (i as u32, p)
            })
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let top_p = self.params.top_p.clamp(0.0, 1.0) as f64;
        if top_p < 1.0 {
            // Ties broken by id so the kept set is deterministic.
            probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut cum = 0.0;
            let mut keep = 0;
            for (_, p) in &probs {
                cum += p / total;
                keep += 1;
                if cum >= top_p {
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let kept: f64 = probs.iter().map(|p| p.1).sum();
        let mut u = self.next_f64() * kept;
        for (id, p) in &probs {
            if u < *p {
                return *id;
            }
            u -= p;
        }
        probs.last().map_or(0, |p| p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_and_seed_repeats() {
        let row = [0.1, 2.0, 1.9, -1.0];
        assert_eq!(Sampler::new(Sampling::greedy()).pick(&row), 1);
        let p = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 7,
        };
        let a: Vec<u32> = (0..50)
            .map({
                let mut s = Sampler::new(p);
                move |_| s.pick(&row)
            })
            .collect();
        let b: Vec<u32> = (0..50)
            .map({
                let mut s = Sampler::new(p);
                move |_| s.pick(&row)
            })
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|&t| t != a[0]), "temperature 1 should vary");
    }

    #[test]
    fn tiny_top_p_keeps_only_the_best() {
        let row = [0.1, 2.0, 1.9, -1.0];
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_p: 0.01,
            seed: 3,
        });
        assert!((0..100).all(|_| s.pick(&row) == 1));
    }
}
