//! The drafter interface the speculative loop drives, and the adaptive block-length rule.
//!
//! A drafter sees the committed stream (prompt + accepted output) and the bonus — the
//! target's own next token, always correct — and proposes up to `k` tokens to follow the
//! bonus. It may propose nothing; the loop then takes one plain decode step. After every
//! block it learns what was committed (with the target's hidden states of those tokens when
//! it asked for them through [`Drafter::target_layers`]).

use candle_core::Tensor;

use crate::model::ModelError;

/// What a drafter has spent so far (the loop measures the wall time itself).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct DraftCost {
    /// Forward passes of a draft network (0 for model-free drafters).
    pub forwards: u64,
    /// Tokens proposed in total.
    pub proposed: u64,
}

pub trait Drafter {
    /// `model`, `ngram`, `dflash` or `replay`.
    fn name(&self) -> &'static str;

    /// Benchmark-only drafters that know the answer (see `replay`) say so; their numbers
    /// measure the loop, never a drafter.
    fn synthetic(&self) -> bool {
        false
    }

    /// Target layers (0-based outputs of decoder layers) whose residual stream this drafter
    /// needs for every committed token. Empty: none, and the target captures nothing.
    fn target_layers(&self) -> &[usize] {
        &[]
    }

    /// Start a new sequence whose committed stream is `prompt`; `hidden` holds the target's
    /// captured states of the prompt rows when [`Drafter::target_layers`] is non-empty.
    fn begin(&mut self, prompt: &[u32], hidden: Option<&Tensor>) -> Result<(), ModelError>;

    /// Up to `k` tokens to follow `committed ++ [bonus]` (fewer or none is fine). Usable
    /// outside the loop: after [`Drafter::begin`] on a context, this is the drafter's next
    /// block, deterministically.
    fn propose(&mut self, committed: &[u32], bonus: u32, k: usize) -> Result<Vec<u32>, ModelError>;

    /// The last `new` tokens of `committed` were just committed; `hidden` holds their rows
    /// of captured target states when asked for.
    fn observe(
        &mut self,
        committed: &[u32],
        new: usize,
        hidden: Option<&Tensor>,
    ) -> Result<(), ModelError>;

    fn cost(&self) -> DraftCost;
}

/// How the candidate length L is chosen per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockPolicy {
    /// Always `block_size` (capped by the tokens still to generate).
    #[default]
    Fixed,
    /// Start at `block_size`; after a block whose drafts were all accepted, L grows by 2;
    /// after a block with a rejection, L shrinks by 1; always within `2..=block_size`
    /// (a block with no proposal leaves L unchanged). Cheap drafters lose little to long
    /// blocks, so the rule only trims verify work when drafts keep failing.
    Adaptive,
}

impl BlockPolicy {
    /// L for the next block given the current one and the last block's outcome.
    pub fn next(self, cur: usize, max: usize, proposed: usize, accepted_drafts: usize) -> usize {
        match self {
            BlockPolicy::Fixed => max,
            BlockPolicy::Adaptive if proposed == 0 || max < 2 => cur,
            BlockPolicy::Adaptive if accepted_drafts == proposed => (cur + 2).min(max),
            BlockPolicy::Adaptive => cur.saturating_sub(1).clamp(2, max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BlockPolicy;

    #[test]
    fn adaptive_rule() {
        let a = BlockPolicy::Adaptive;
        assert_eq!(a.next(8, 8, 7, 7), 8); // all accepted at the cap: stays
        assert_eq!(a.next(4, 8, 3, 3), 6); // all accepted: +2
        assert_eq!(a.next(7, 8, 6, 6), 8); // capped
        assert_eq!(a.next(6, 8, 5, 2), 5); // a rejection: −1
        assert_eq!(a.next(2, 8, 1, 0), 2); // never below 2
        assert_eq!(a.next(5, 8, 0, 0), 5); // no proposal: unchanged
        assert_eq!(a.next(1, 1, 0, 0), 1); // block size 1 stays 1
        assert_eq!(BlockPolicy::Fixed.next(3, 8, 2, 0), 8);
    }
}
