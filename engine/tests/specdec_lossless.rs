//! Speculative decoding on real (tiny) models is token-for-token equal to plain greedy
//! decoding: many seeds, both architectures, drafts from exact copies to unrelated models,
//! block sizes 1–16, lengths that are not multiples of L, prompts longer than a block, a stop
//! token in the middle of a block, and the compressed cache (AR with the same cache).

mod common;

use kakeya_engine::generate::{Session, greedy};
use kakeya_engine::model::{Arch, CausalLm, KvChannel};
use kakeya_engine::specdec::{SpecOptions, speculative};

fn check(
    target: &CausalLm,
    draft: &CausalLm,
    kv: &KvChannel,
    prompt: &[u32],
    block: usize,
    max_new: usize,
    stop: &[u32],
) -> f64 {
    let mut ar = Session::new(target, kv).unwrap();
    let want = greedy(&mut ar, prompt, max_new, stop).unwrap();
    let mut t = Session::new(target, kv).unwrap();
    let mut d = Session::new(draft, &KvChannel::Raw).unwrap();
    let opts = SpecOptions {
        block_size: block,
        max_new_tokens: max_new,
        stop: stop.to_vec(),
    };
    let got = speculative(&mut t, &mut d, prompt, &opts).unwrap();
    assert_eq!(
        got.tokens, want.tokens,
        "block {block}, max_new {max_new}, kv {kv}, stop {stop:?}"
    );
    assert_eq!(got.accepted_lens.iter().sum::<usize>(), got.tokens.len());
    got.acceptance_rate().unwrap_or(1.0)
}

#[test]
fn lossless_across_seeds_drafts_and_block_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rates = Vec::new();
    for seed in 0..4u64 {
        let arch = if seed % 2 == 0 {
            Arch::Llama
        } else {
            Arch::Qwen3
        };
        let tpath = common::write(
            dir.path(),
            &format!("t{seed}"),
            &common::spec(arch, 100 + seed),
        );
        let target = common::load(&tpath);
        let drafts = [
            common::load(&common::draft(
                dir.path(),
                &tpath,
                &format!("copy{seed}"),
                None,
                0.0,
                seed,
            )),
            common::load(&common::draft(
                dir.path(),
                &tpath,
                &format!("noisy{seed}"),
                None,
                0.5,
                seed,
            )),
            common::load(&common::draft(
                dir.path(),
                &tpath,
                &format!("cut{seed}"),
                Some(1),
                0.0,
                seed,
            )),
            // An unrelated model of the other architecture with the same vocabulary.
            common::load(&common::write(
                dir.path(),
                &format!("other{seed}"),
                &common::spec(
                    if arch == Arch::Llama {
                        Arch::Qwen3
                    } else {
                        Arch::Llama
                    },
                    900 + seed,
                ),
            )),
        ];
        let prompts: [Vec<u32>; 2] = [
            vec![1 + seed as u32, 40, 7],
            (0..37)
                .map(|i| ((i * 11 + seed as u32) % 319) + 1)
                .collect(),
        ];
        for (di, draft) in drafts.iter().enumerate() {
            for block in 1..=16 {
                if !(block + di + seed as usize).is_multiple_of(3) && block > 4 {
                    continue; // every block size still runs with several seeds/drafts
                }
                let prompt = &prompts[block % 2];
                rates.push((
                    di,
                    check(&target, draft, &KvChannel::Raw, prompt, block, 23, &[]),
                ));
            }
        }
    }
    let mean = |d: usize| {
        let v: Vec<f64> = rates.iter().filter(|r| r.0 == d).map(|r| r.1).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    // The exact copy is always accepted; the drafts span a range of acceptance rates.
    assert_eq!(mean(0), 1.0);
    assert!(mean(3) < mean(0));
}

#[test]
fn stop_token_mid_block_and_uneven_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let tpath = common::write(dir.path(), "t", &common::spec(Arch::Qwen3, 7));
    let target = common::load(&tpath);
    let draft = common::load(&common::draft(dir.path(), &tpath, "d", None, 0.2, 1));
    let prompt = [3u32, 14, 15, 92, 65];
    let mut ar = Session::new(&target, &KvChannel::Raw).unwrap();
    let free = greedy(&mut ar, &prompt, 40, &[]).unwrap();
    // Stop on tokens the plain decode produces at various depths, so the stop lands at
    // different offsets inside blocks.
    for depth in [0usize, 3, 6, 10, 17] {
        let stop = [free.tokens[depth]];
        for block in [2, 3, 4, 5, 8, 16] {
            check(&target, &draft, &KvChannel::Raw, &prompt, block, 40, &stop);
        }
    }
    for max_new in [1, 2, 5, 9, 31] {
        for block in [3, 4, 7] {
            check(
                &target,
                &draft,
                &KvChannel::Raw,
                &prompt,
                block,
                max_new,
                &[],
            );
        }
    }
}

#[test]
fn lossless_with_compressed_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = common::spec(Arch::Llama, 31);
    s.layers = 3;
    let tpath = common::write(dir.path(), "t", &s);
    let target = common::load(&tpath);
    let draft = common::load(&common::draft(dir.path(), &tpath, "d", Some(2), 0.1, 2));
    let long: Vec<u32> = (0..29).map(|i| (i * 7 + 3) % 300).collect();
    for kv in ["e8-q38", "d4-q10-b1", "e8-q4"] {
        let kv: KvChannel = kv.parse().unwrap();
        for block in [1, 2, 4, 8, 13, 16] {
            check(&target, &draft, &kv, &long, block, 27, &[]);
        }
    }
}
