//! Drafter parity: do two configurations of one drafter (or a drafter and a recorded
//! reference) propose the same token ids given the same inputs?
//!
//! Per context, `n_blocks` blocks: both sides propose `block_size` ids after the same
//! context; positions are compared; then the context is extended by side A's block
//! (teacher forcing, so one early flip does not make every later block differ). A mismatch
//! at position i is a **root** mismatch when side B, given side A's own prefix
//! `context + a[..i]`, still predicts something other than `a[i]` — a real disagreement on
//! identical inputs. Mismatches after the first divergence that are not roots are only the
//! consequence of the two sides having diverged. A block is **prefix-consistent** when its
//! only root mismatch (if any) is its first mismatch, i.e. the sides agree on a prefix,
//! flip once (a near tie), and differ afterwards only because their prefixes differ.
//!
//! Drafters plug in through [`DraftSource`] ("given a context, return the proposed ids"):
//! [`model::ModelDrafter`] here; the DFlash drafter of the speculative-decoding work plugs
//! in the same way.

pub mod dflash;
pub mod model;
pub mod reference;

use serde::Serialize;

use crate::model::ModelError;

/// Anything that proposes draft ids after a context.
pub trait DraftSource {
    /// `n` proposed ids after `context` (greedy, deterministic).
    fn propose(&mut self, context: &[u32], n: usize) -> Result<Vec<u32>, ModelError>;
}

/// One block compared.
#[derive(Debug, Clone, Serialize)]
pub struct BlockResult {
    pub context_len: usize,
    pub a_ids: Vec<u32>,
    pub b_ids: Vec<u32>,
    pub matches: usize,
    pub mismatch_positions: Vec<usize>,
    pub root_mismatch_positions: Vec<usize>,
    pub prefix_consistent: bool,
    pub a_draft_s: f64,
    pub b_draft_s: f64,
}

/// Positions where `a` and `b` differ (a length difference counts as mismatches).
pub fn mismatches(a: &[u32], b: &[u32]) -> Vec<usize> {
    (0..a.len().max(b.len()))
        .filter(|&i| a.get(i) != b.get(i))
        .collect()
}

/// Compare one block after `context`.
pub fn compare_block(
    a: &mut dyn DraftSource,
    b: &mut dyn DraftSource,
    context: &[u32],
    block_size: usize,
) -> Result<BlockResult, ModelError> {
    let t = std::time::Instant::now();
    let a_ids = a.propose(context, block_size)?;
    let a_draft_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let b_ids = b.propose(context, block_size)?;
    let b_draft_s = t.elapsed().as_secs_f64();
    classify(b, context, a_ids, b_ids, a_draft_s, b_draft_s)
}

/// Match counts and root-mismatch analysis for two drafts of the same context.
pub fn classify(
    b: &mut dyn DraftSource,
    context: &[u32],
    a_ids: Vec<u32>,
    b_ids: Vec<u32>,
    a_draft_s: f64,
    b_draft_s: f64,
) -> Result<BlockResult, ModelError> {
    let mis = mismatches(&a_ids, &b_ids);
    let mut roots = Vec::new();
    for &i in &mis {
        if i >= a_ids.len() {
            roots.push(i);
            continue;
        }
        let mut forced = context.to_vec();
        forced.extend_from_slice(&a_ids[..i]);
        let tf = b.propose(&forced, 1)?;
        if tf.first() != a_ids.get(i) {
            roots.push(i);
        }
    }
    let prefix_consistent = roots.iter().all(|r| Some(r) == mis.first());
    Ok(BlockResult {
        context_len: context.len(),
        matches: a_ids.len().max(b_ids.len()) - mis.len(),
        mismatch_positions: mis,
        root_mismatch_positions: roots,
        prefix_consistent,
        a_ids,
        b_ids,
        a_draft_s,
        b_draft_s,
    })
}

/// `n_blocks` blocks after `context`, extending it by A's block each time.
pub fn run_context(
    a: &mut dyn DraftSource,
    b: &mut dyn DraftSource,
    context: &[u32],
    n_blocks: usize,
    block_size: usize,
) -> Result<Vec<BlockResult>, ModelError> {
    if context.is_empty() {
        return Err(ModelError::Input("a parity context has no tokens".into()));
    }
    if block_size == 0 || n_blocks == 0 {
        return Err(ModelError::Input(
            "block size and block count must be ≥ 1".into(),
        ));
    }
    let mut ctx = context.to_vec();
    let mut out = Vec::with_capacity(n_blocks);
    for _ in 0..n_blocks {
        let r = compare_block(a, b, &ctx, block_size)?;
        ctx.extend_from_slice(&r.a_ids);
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Next token = (last + step) mod 50, except that `flip` positions (by context length)
    /// answer 49 — a controllable disagreement.
    struct Counter {
        step: u32,
        flip: Vec<usize>,
    }

    impl DraftSource for Counter {
        fn propose(&mut self, context: &[u32], n: usize) -> Result<Vec<u32>, ModelError> {
            let mut ctx = context.to_vec();
            for _ in 0..n {
                let next = if self.flip.contains(&ctx.len()) {
                    49
                } else {
                    (ctx.last().copied().unwrap_or(0) + self.step) % 50
                };
                ctx.push(next);
            }
            Ok(ctx[context.len()..].to_vec())
        }
    }

    #[test]
    fn identical_sources_agree_and_a_flip_is_a_prefix_consistent_root() {
        let (mut a, mut b) = (
            Counter {
                step: 1,
                flip: vec![],
            },
            Counter {
                step: 1,
                flip: vec![],
            },
        );
        let r = run_context(&mut a, &mut b, &[3, 4], 2, 4).unwrap();
        assert!(r.iter().all(|x| x.matches == 4 && x.prefix_consistent));
        // B flips at context length 4 (third draft of the first block): one root, then
        // downstream mismatches only.
        let mut b = Counter {
            step: 1,
            flip: vec![4],
        };
        let r = run_context(&mut a, &mut b, &[3, 4], 1, 5).unwrap();
        assert_eq!(r[0].mismatch_positions, vec![2, 3, 4]);
        assert_eq!(r[0].root_mismatch_positions, vec![2]);
        assert!(r[0].prefix_consistent);
        // A different rule everywhere: every mismatch is a root.
        let mut b = Counter {
            step: 2,
            flip: vec![],
        };
        let r = run_context(&mut a, &mut b, &[3, 4], 1, 3).unwrap();
        assert_eq!(r[0].root_mismatch_positions, vec![0, 1, 2]);
        assert!(!r[0].prefix_consistent);
    }
}
