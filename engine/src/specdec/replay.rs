//! The `replay` drafter — SYNTHETIC, benchmark only. It is handed the target's own greedy
//! continuation of the prompt (decoded plainly beforehand, in the same run) and proposes it
//! back, replacing each token by a wrong one with probability `corrupt` (decided per output
//! position from the seed, so the same position is corrupted however the blocks fall). The
//! acceptance rate is therefore set by the experimenter, which isolates what the loop makes
//! of a given acceptance: it measures the loop, never a drafter, and every report marks it.

use candle_core::Tensor;

use super::drafter::{DraftCost, Drafter};
use crate::model::ModelError;
use crate::tiny::Rng;

pub struct ReplayDrafter {
    reference: Vec<u32>,
    prompt_len: usize,
    corrupt: f64,
    seed: u64,
    vocab: u32,
    cost: DraftCost,
}

impl ReplayDrafter {
    /// `reference`: the plain greedy continuation of the prompt; `corrupt` in `[0, 1]`.
    pub fn new(
        reference: Vec<u32>,
        corrupt: f64,
        seed: u64,
        vocab: usize,
    ) -> Result<Self, ModelError> {
        if !(0.0..=1.0).contains(&corrupt) {
            return Err(ModelError::Input(format!(
                "replay corruption rate {corrupt} is outside [0, 1]"
            )));
        }
        if vocab < 2 {
            return Err(ModelError::Input("replay needs a vocabulary of 2+".into()));
        }
        Ok(ReplayDrafter {
            reference,
            prompt_len: 0,
            corrupt,
            seed,
            vocab: vocab as u32,
            cost: DraftCost::default(),
        })
    }

    /// The token proposed for output position `i`: the reference, or a different id.
    fn token(&self, i: usize) -> u32 {
        let r = self.reference[i];
        let mut rng = Rng::new(self.seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if u < self.corrupt {
            let shift = 1 + (rng.next_u64() % u64::from(self.vocab - 1)) as u32;
            (r + shift) % self.vocab
        } else {
            r
        }
    }
}

impl Drafter for ReplayDrafter {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn synthetic(&self) -> bool {
        true
    }

    fn begin(&mut self, prompt: &[u32], _hidden: Option<&Tensor>) -> Result<(), ModelError> {
        self.prompt_len = prompt.len();
        Ok(())
    }

    fn propose(
        &mut self,
        committed: &[u32],
        _bonus: u32,
        k: usize,
    ) -> Result<Vec<u32>, ModelError> {
        // Output index of the first draft: the bonus sits at committed.len() − prompt_len.
        let from = committed.len().saturating_sub(self.prompt_len) + 1;
        let to = (from + k).min(self.reference.len());
        let d: Vec<u32> = (from..to).map(|i| self.token(i)).collect();
        self.cost.proposed += d.len() as u64;
        Ok(d)
    }

    fn observe(&mut self, _c: &[u32], _n: usize, _h: Option<&Tensor>) -> Result<(), ModelError> {
        Ok(())
    }

    fn cost(&self) -> DraftCost {
        self.cost
    }
}
