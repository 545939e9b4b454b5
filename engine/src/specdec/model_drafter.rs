//! The `model` drafter: a separate small causal LM decoding greedily after the bonus. Its
//! cache only ever holds a prefix of the committed stream plus the current proposal, and is
//! cut back to the committed length after every block.

use candle_core::Tensor;

use super::drafter::{DraftCost, Drafter};
use crate::generate::GreedyLm;
use crate::model::ModelError;

pub struct ModelDrafter<'a> {
    draft: &'a mut dyn GreedyLm,
    cost: DraftCost,
}

impl<'a> ModelDrafter<'a> {
    /// `draft` must start with an empty cache.
    pub fn new(draft: &'a mut dyn GreedyLm) -> Self {
        ModelDrafter {
            draft,
            cost: DraftCost::default(),
        }
    }
}

impl Drafter for ModelDrafter<'_> {
    fn name(&self) -> &'static str {
        "model"
    }

    fn begin(&mut self, _prompt: &[u32], _hidden: Option<&Tensor>) -> Result<(), ModelError> {
        // The prompt is fed lazily with the first proposal, so a run that never drafts
        // (block size 1) never pays for it.
        self.draft.truncate(0)
    }

    fn propose(&mut self, committed: &[u32], bonus: u32, k: usize) -> Result<Vec<u32>, ModelError> {
        if k == 0 {
            return Ok(Vec::new());
        }
        if self.draft.len() > committed.len() {
            self.draft.truncate(committed.len())?;
        }
        let mut pending = committed[self.draft.len()..].to_vec();
        pending.push(bonus);
        let mut d = crate::generate::last(self.draft.feed(&pending, false)?)?;
        self.cost.forwards += 1;
        let mut drafts = vec![d];
        while drafts.len() < k {
            d = crate::generate::last(self.draft.feed(&[d], false)?)?;
            self.cost.forwards += 1;
            drafts.push(d);
        }
        self.cost.proposed += drafts.len() as u64;
        Ok(drafts)
    }

    fn observe(
        &mut self,
        committed: &[u32],
        _new: usize,
        _hidden: Option<&Tensor>,
    ) -> Result<(), ModelError> {
        // What the draft fed beyond the accepted run is wrong context; cut it.
        let keep = self.draft.len().min(committed.len());
        self.draft.truncate(keep)
    }

    fn cost(&self) -> DraftCost {
        self.cost
    }
}
