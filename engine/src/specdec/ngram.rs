//! The `ngram` drafter (prompt lookup): no model. Find the most recent earlier occurrence
//! of the last n tokens of `committed ++ [bonus]`, for n from `max_n` down to `min_n`, and
//! propose what followed it. When the continuation runs into the end of the stream (the
//! match overlaps its own suffix: a repeating pattern), the copy carries on from the tokens
//! it has just proposed, i.e. the period repeats.

use candle_core::Tensor;

use super::drafter::{DraftCost, Drafter};
use crate::model::ModelError;

#[derive(Debug, Clone, Copy)]
pub struct NgramParams {
    pub min_n: usize,
    pub max_n: usize,
    /// Most tokens proposed per block (the block size caps it too).
    pub draft_max: usize,
}

impl NgramParams {
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.min_n == 0 || self.min_n > self.max_n {
            return Err(ModelError::Input(format!(
                "ngram sizes need 1 ≤ min ({}) ≤ max ({})",
                self.min_n, self.max_n
            )));
        }
        Ok(())
    }
}

/// Up to `k` tokens continuing `seq` by prompt lookup (see the module docs).
pub fn lookup(seq: &[u32], p: &NgramParams, k: usize) -> Vec<u32> {
    let k = k.min(p.draft_max);
    if k == 0 {
        return Vec::new();
    }
    let len = seq.len();
    for n in (p.min_n..=p.max_n).rev() {
        if n >= len {
            continue;
        }
        let suffix = &seq[len - n..];
        // Most recent earlier occurrence: start positions from len−n−1 down to 0.
        let Some(start) = (0..len - n).rev().find(|&i| &seq[i..i + n] == suffix) else {
            continue;
        };
        let mut out = Vec::with_capacity(k);
        let from = start + n;
        for j in 0..k {
            let src = from + j;
            let t = if src < len { seq[src] } else { out[src - len] };
            out.push(t);
        }
        return out;
    }
    Vec::new()
}

pub struct NgramDrafter {
    params: NgramParams,
    cost: DraftCost,
    scratch: Vec<u32>,
}

impl NgramDrafter {
    pub fn new(params: NgramParams) -> Result<Self, ModelError> {
        params.validate()?;
        Ok(NgramDrafter {
            params,
            cost: DraftCost::default(),
            scratch: Vec::new(),
        })
    }
}

impl Drafter for NgramDrafter {
    fn name(&self) -> &'static str {
        "ngram"
    }

    fn begin(&mut self, _prompt: &[u32], _hidden: Option<&Tensor>) -> Result<(), ModelError> {
        Ok(())
    }

    fn propose(&mut self, committed: &[u32], bonus: u32, k: usize) -> Result<Vec<u32>, ModelError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(committed);
        self.scratch.push(bonus);
        let d = lookup(&self.scratch, &self.params, k);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(min_n: usize, max_n: usize, draft_max: usize) -> NgramParams {
        NgramParams {
            min_n,
            max_n,
            draft_max,
        }
    }

    #[test]
    fn no_match_proposes_nothing() {
        assert!(lookup(&[1, 2, 3, 4, 5], &p(1, 3, 8), 8).is_empty());
        assert!(lookup(&[], &p(1, 3, 8), 8).is_empty());
        assert!(lookup(&[7], &p(1, 3, 8), 8).is_empty());
        assert!(lookup(&[1, 2, 1], &p(1, 3, 0), 8).is_empty());
        assert!(lookup(&[1, 2, 1], &p(1, 3, 8), 0).is_empty());
    }

    #[test]
    fn proposes_what_followed_the_most_recent_occurrence() {
        // "1 2" occurs at 0 (then 3 4) and at 4 (then 9 9): the most recent one wins.
        let s = [1, 2, 3, 4, 1, 2, 9, 9, 5, 1, 2];
        assert_eq!(lookup(&s, &p(2, 2, 8), 2), vec![9, 9]);
        assert_eq!(lookup(&s, &p(2, 2, 3), 8), vec![9, 9, 5]);
    }

    #[test]
    fn longer_ngrams_are_tried_first() {
        // Suffix "5 1 2": its 3-gram occurs at 0 (then 7); the 2-gram "1 2" most recently
        // at 5 (then 8). max_n 3 follows the 3-gram, max_n 2 the 2-gram.
        let s = [5, 1, 2, 7, 0, 1, 2, 8, 5, 1, 2];
        assert_eq!(lookup(&s, &p(1, 3, 1), 1), vec![7]);
        assert_eq!(lookup(&s, &p(1, 2, 1), 1), vec![8]);
        // min_n above every matching size: nothing.
        assert!(lookup(&[1, 2, 3, 9, 2, 3], &p(3, 3, 4), 4).is_empty());
        assert_eq!(
            lookup(&[1, 2, 3, 9, 2, 3], &p(2, 3, 4), 4),
            vec![9, 2, 3, 9]
        );
    }

    #[test]
    fn overlapping_match_repeats_the_period() {
        // "a b a b a": suffix "b a" recurs one period back; the copy runs past the end and
        // keeps the period going.
        let s = [4, 5, 4, 5, 4];
        assert_eq!(lookup(&s, &p(2, 2, 8), 5), vec![5, 4, 5, 4, 5]);
        // A run of one token: the continuation is the same token.
        assert_eq!(lookup(&[3, 3, 3], &p(1, 2, 8), 4), vec![3, 3, 3, 3]);
    }

    #[test]
    fn match_at_the_end_of_the_stream() {
        // The only earlier occurrence ends right before the suffix: the proposal starts with
        // the suffix's own first token.
        let s = [6, 1, 2, 1, 2];
        assert_eq!(lookup(&s, &p(2, 2, 8), 3), vec![1, 2, 1]);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(NgramDrafter::new(p(0, 2, 4)).is_err());
        assert!(NgramDrafter::new(p(3, 2, 4)).is_err());
        assert!(NgramDrafter::new(p(1, 1, 4)).is_ok());
    }
}
