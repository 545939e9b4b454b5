//! Every drafter is lossless on real (tiny) targets: llama, qwen2 and qwen3 over several
//! seeds, block sizes 1–64 (fixed and adaptive), a compressed KV channel (AR reference on the
//! same channel), a one-token prompt, a stop token in the middle of a block; plus the
//! streaming sink (early stop) and the drafter's next block outside the loop.

mod common;

use std::ops::ControlFlow;

use kakeya_engine::generate::{Session, greedy};
use kakeya_engine::model::{Arch, CausalLm, KvChannel};
use kakeya_engine::specdec::dflash::{DFlashDrafter, DFlashModel};
use kakeya_engine::specdec::ngram::{NgramDrafter, NgramParams};
use kakeya_engine::specdec::replay::ReplayDrafter;
use kakeya_engine::specdec::{
    BlockPolicy, Drafter, ModelDrafter, SpecOptions, propose_after, speculative_stream,
    speculative_with,
};
use kakeya_engine::tiny::dflash::{DFlashSpec, write_dflash};

const NGRAM: NgramParams = NgramParams {
    min_n: 1,
    max_n: 3,
    draft_max: 64,
};

struct World {
    target: CausalLm,
    draft: CausalLm,
    dflash: DFlashModel,
}

fn world(dir: &std::path::Path, arch: Arch, seed: u64) -> World {
    let t = common::write(dir, &format!("t{seed}"), &common::spec(arch, seed));
    let dm = common::draft(dir, &t, &format!("m{seed}"), Some(1), 0.05, seed);
    let df = dir.join(format!("f{seed}"));
    let spec = DFlashSpec {
        seed,
        layers: 1,
        block_size: 16,
    };
    write_dflash(&t, &df, &spec).unwrap();
    let target = common::load(&t);
    let dflash = DFlashModel::load(&df, &target).unwrap();
    World {
        draft: common::load(&dm),
        target,
        dflash,
    }
}

fn check(
    w: &World,
    kv: &KvChannel,
    prompt: &[u32],
    block: usize,
    max_new: usize,
    stop: &[u32],
    policy: BlockPolicy,
) {
    let mut ar = Session::new(&w.target, kv).unwrap();
    let want = greedy(&mut ar, prompt, max_new, stop).unwrap();
    let opts = SpecOptions {
        block_size: block,
        max_new_tokens: max_new,
        stop: stop.to_vec(),
    };
    let vocab = w.target.config().vocab_size;
    for name in ["ngram", "model", "dflash", "replay"] {
        let mut ds = Session::new(&w.draft, &KvChannel::Raw).unwrap();
        let mut d: Box<dyn Drafter> = match name {
            "ngram" => Box::new(NgramDrafter::new(NGRAM).unwrap()),
            "model" => Box::new(ModelDrafter::new(&mut ds)),
            "dflash" => Box::new(DFlashDrafter::new(&w.dflash, &w.target)),
            _ => {
                Box::new(ReplayDrafter::new(want.tokens.clone(), 0.3, block as u64, vocab).unwrap())
            }
        };
        let mut t = Session::new(&w.target, kv).unwrap();
        let got = speculative_with(&mut t, d.as_mut(), prompt, &opts, policy).unwrap();
        assert_eq!(
            got.tokens, want.tokens,
            "{name}: block {block}, max_new {max_new}, kv {kv}, stop {stop:?}, {policy:?}"
        );
        assert_eq!(got.accepted_lens.iter().sum::<usize>(), got.tokens.len());
        assert!(
            got.block_lens
                .iter()
                .all(|&l| (1..=block.max(1)).contains(&l))
        );
        assert_eq!(got.stopped_on_eos, want.stopped_on_eos);
    }
}

#[test]
fn every_drafter_is_lossless_on_every_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let q10: KvChannel = "e8-q10".parse().unwrap();
    for (i, arch) in [Arch::Llama, Arch::Qwen2, Arch::Qwen3]
        .into_iter()
        .enumerate()
    {
        for seed in 0..2u64 {
            let seed = seed + 10 * i as u64;
            let w = world(dir.path(), arch, seed);
            let long: Vec<u32> = (0..23).map(|j| ((j * 7 + seed as u32) % 40) + 2).collect();
            let rep: Vec<u32> = [5u32, 6, 7, 8].repeat(4);
            for (b, prompt) in [
                (1usize, &long),
                (2, &rep),
                (5, &long),
                (16, &rep),
                (64, &long),
            ] {
                let kv = if b % 2 == 0 { &q10 } else { &KvChannel::Raw };
                check(&w, kv, prompt, b, 37, &[], BlockPolicy::Fixed);
            }
            check(&w, &KvChannel::Raw, &[3], 8, 20, &[], BlockPolicy::Adaptive);
            check(&w, &q10, &rep, 12, 30, &[], BlockPolicy::Adaptive);
            // A stop token in the middle of a block: the plain decode's 6th token.
            let mut ar = Session::new(&w.target, &KvChannel::Raw).unwrap();
            let plain = greedy(&mut ar, &long, 30, &[]).unwrap();
            check(
                &w,
                &KvChannel::Raw,
                &long,
                8,
                30,
                &[plain.tokens[5]],
                BlockPolicy::Fixed,
            );
        }
    }
}

#[test]
fn the_sink_streams_every_commit_and_can_stop_early() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path(), Arch::Qwen3, 42);
    let prompt: Vec<u32> = [9u32, 10, 11].repeat(5);
    let mut ar = Session::new(&w.target, &KvChannel::Raw).unwrap();
    let want = greedy(&mut ar, &prompt, 40, &[]).unwrap();
    let opts = SpecOptions {
        block_size: 6,
        max_new_tokens: 40,
        stop: Vec::new(),
    };
    let mut seen = Vec::new();
    let mut d = DFlashDrafter::new(&w.dflash, &w.target);
    let mut t = Session::new(&w.target, &KvChannel::Raw).unwrap();
    let full = speculative_stream(
        &mut t,
        &mut d,
        &prompt,
        &opts,
        BlockPolicy::Fixed,
        &mut |c| {
            seen.extend_from_slice(c);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(seen, want.tokens);
    assert!(!full.cancelled);
    // Break after 10 tokens: generation ends at that commit, everything sent is correct.
    let mut sent = Vec::new();
    let mut d = NgramDrafter::new(NGRAM).unwrap();
    let mut t = Session::new(&w.target, &KvChannel::Raw).unwrap();
    let cut = speculative_stream(
        &mut t,
        &mut d,
        &prompt,
        &opts,
        BlockPolicy::Fixed,
        &mut |c| {
            sent.extend_from_slice(c);
            if sent.len() >= 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap();
    assert!(cut.cancelled);
    assert_eq!(cut.tokens, sent);
    assert!(sent.len() >= 10 && sent.len() < 40);
    assert_eq!(&want.tokens[..sent.len()], &sent[..]);
}

#[test]
fn the_next_block_outside_the_loop_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path(), Arch::Llama, 7);
    let ctx: Vec<u32> = (2..30).collect();
    let run = || {
        let mut t = Session::new(&w.target, &KvChannel::Raw).unwrap();
        let mut d = DFlashDrafter::new(&w.dflash, &w.target);
        propose_after(&mut t, &mut d, &ctx, 15).unwrap()
    };
    let (b1, d1) = run();
    let (b2, d2) = run();
    assert_eq!((b1, &d1), (b2, &d2));
    assert_eq!(d1.len(), 15);
    assert!(!d1.contains(&w.dflash.cfg.mask_token_id));
    // The bonus is the target's greedy next token.
    let mut ar = Session::new(&w.target, &KvChannel::Raw).unwrap();
    assert_eq!(greedy(&mut ar, &ctx, 1, &[]).unwrap().tokens, vec![b1]);
}
