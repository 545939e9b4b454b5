//! The loop against fake models (no weights): exact stream equality with greedy decoding
//! for any drafter, and the bookkeeping of blocks and accepted lengths.

use super::*;
use crate::generate::greedy;

/// A "model" whose greedy next token is a function of the whole prefix.
struct Fake {
    stream: Vec<u32>,
    next: fn(&[u32]) -> u32,
    fed: u64,
}

impl Fake {
    fn new(next: fn(&[u32]) -> u32) -> Self {
        Fake {
            stream: Vec::new(),
            next,
            fed: 0,
        }
    }
}

impl GreedyLm for Fake {
    fn feed(&mut self, tokens: &[u32], all: bool) -> Result<Vec<u32>, ModelError> {
        self.fed += 1;
        let mut out = Vec::new();
        for t in tokens {
            self.stream.push(*t);
            out.push((self.next)(&self.stream));
        }
        if !all {
            out = out.split_off(out.len() - 1);
        }
        Ok(out)
    }
    fn len(&self) -> usize {
        self.stream.len()
    }
    fn truncate(&mut self, len: usize) -> Result<(), ModelError> {
        if len > self.stream.len() {
            return Err(ModelError::Internal("truncate past end".into()));
        }
        self.stream.truncate(len);
        Ok(())
    }
}

fn successor(s: &[u32]) -> u32 {
    (s.last().copied().unwrap_or(0) + 1) % 50
}
fn mixing(s: &[u32]) -> u32 {
    let h = s
        .iter()
        .fold(7u32, |a, &t| a.wrapping_mul(31).wrapping_add(t));
    h % 50
}
fn mostly_right(s: &[u32]) -> u32 {
    if s.len().is_multiple_of(5) {
        49 - successor(s)
    } else {
        successor(s)
    }
}
fn always_wrong(s: &[u32]) -> u32 {
    (successor(s) + 7) % 50
}

#[test]
fn perfect_draft_accepts_whole_blocks() {
    let (mut t, mut d) = (Fake::new(successor), Fake::new(successor));
    let opts = SpecOptions {
        block_size: 4,
        max_new_tokens: 10,
        stop: vec![],
    };
    let out = speculative(&mut t, &mut d, &[5, 6, 7], &opts).unwrap();
    assert_eq!(out.tokens, (8..18).collect::<Vec<u32>>());
    assert_eq!(out.accepted_lens, vec![4, 4, 2]);
    assert_eq!(out.block_lens, vec![4, 4, 2]);
    // Target: prefill + 3 verifies; caches end at the committed length minus the carried bonus.
    assert_eq!(out.verify_forwards, 4);
    assert_eq!(t.len(), 3 + 10);
}

#[test]
fn wrong_draft_still_commits_one_per_block() {
    let (mut t, mut d) = (Fake::new(successor), Fake::new(always_wrong));
    let opts = SpecOptions {
        block_size: 5,
        max_new_tokens: 7,
        stop: vec![],
    };
    let out = speculative(&mut t, &mut d, &[1], &opts).unwrap();
    assert_eq!(out.tokens, (2..9).collect::<Vec<u32>>());
    assert!(out.accepted_lens.iter().all(|&a| a == 1));
    assert_eq!(out.acceptance_rate(), Some(0.0));
}

#[test]
fn equals_greedy_for_any_draft_block_and_length() {
    let targets: [fn(&[u32]) -> u32; 2] = [successor, mixing];
    let drafts: [fn(&[u32]) -> u32; 4] = [successor, mixing, mostly_right, always_wrong];
    for tf in targets {
        for df in drafts {
            for block in 1..=16 {
                for max_new in [0, 1, 2, 7, 13, 33] {
                    for stop in [vec![], vec![12], vec![3, 40]] {
                        let prompt: Vec<u32> = (0..(block as u32 % 5 + 1)).collect();
                        let mut ar = Fake::new(tf);
                        let want = greedy(&mut ar, &prompt, max_new, &stop).unwrap();
                        let (mut t, mut d) = (Fake::new(tf), Fake::new(df));
                        let opts = SpecOptions {
                            block_size: block,
                            max_new_tokens: max_new,
                            stop: stop.clone(),
                        };
                        let got = speculative(&mut t, &mut d, &prompt, &opts).unwrap();
                        assert_eq!(
                            got.tokens, want.tokens,
                            "block {block} max {max_new} stop {stop:?}"
                        );
                        assert_eq!(got.accepted_lens.iter().sum::<usize>(), got.tokens.len());
                        assert!(
                            got.accepted_lens
                                .iter()
                                .zip(&got.block_lens)
                                .all(|(a, l)| 1 <= *a && a <= l && *l <= block)
                        );
                        assert_eq!(got.stopped_on_eos, want.stopped_on_eos);
                    }
                }
            }
        }
    }
}

#[test]
fn stop_token_mid_block_cuts_the_block() {
    let (mut t, mut d) = (Fake::new(successor), Fake::new(successor));
    let opts = SpecOptions {
        block_size: 8,
        max_new_tokens: 20,
        stop: vec![11],
    };
    let out = speculative(&mut t, &mut d, &[7], &opts).unwrap();
    assert_eq!(out.tokens, vec![8, 9, 10, 11]);
    assert_eq!(out.accepted_lens, vec![4]);
    assert!(out.stopped_on_eos);
}

#[test]
fn refuses_bad_input() {
    let (mut t, mut d) = (Fake::new(successor), Fake::new(successor));
    let opts = SpecOptions {
        block_size: 0,
        max_new_tokens: 3,
        stop: vec![],
    };
    assert!(speculative(&mut t, &mut d, &[1], &opts).is_err());
    let opts = SpecOptions {
        block_size: 2,
        max_new_tokens: 3,
        stop: vec![],
    };
    assert!(speculative(&mut t, &mut d, &[], &opts).is_err());
}

#[test]
fn a_drafter_that_proposes_nothing_costs_plain_steps_only() {
    use crate::specdec::ngram::{NgramDrafter, NgramParams};
    // `mixing` never repeats a short n-gram early, so prompt lookup often has nothing.
    let prompt = [3u32, 9, 27];
    let mut ar = Fake::new(mixing);
    let want = greedy(&mut ar, &prompt, 30, &[]).unwrap();
    let mut t = Fake::new(mixing);
    let mut d = NgramDrafter::new(NgramParams {
        min_n: 2,
        max_n: 3,
        draft_max: 8,
    })
    .unwrap();
    let opts = SpecOptions {
        block_size: 8,
        max_new_tokens: 30,
        stop: vec![],
    };
    let got = speculative_with(&mut t, &mut d, &prompt, &opts, BlockPolicy::Fixed).unwrap();
    assert_eq!(got.tokens, want.tokens);
    assert!(got.plain_steps > 0);
    // Plain blocks are exactly the blocks of length 1; every block but a final
    // forward-free one is one target forward (plus the prefill).
    let ones = got.block_lens.iter().filter(|&&l| l == 1).count() as u64;
    assert!(got.plain_steps <= ones && ones <= got.plain_steps + 1);
    assert!(got.verify_forwards <= got.blocks() as u64 + 1);
}
