//! Measured samples for reports and benchmarks: the same prompt decoded plainly (AR) and
//! speculatively on fresh caches, with timings, and the summary derived from them.

use serde_json::{Value, json};

use super::dflash::{DFlashDrafter, DFlashModel};
use super::ngram::{NgramDrafter, NgramParams};
use super::replay::ReplayDrafter;
use super::{BlockPolicy, Drafter, ModelDrafter, SpecOptions, SpecOutput, speculative_with};
use crate::generate::{GenOutput, Session, greedy};
use crate::model::{CausalLm, KvChannel, LayerStats, ModelError};

/// One prompt decoded both ways.
pub struct Sample {
    pub prompt_index: usize,
    pub repeat: usize,
    pub prompt_tokens: usize,
    pub spec: SpecOutput,
    pub ar: GenOutput,
    /// Target cache of the speculative run at the end.
    pub kv_layers: Vec<LayerStats>,
}

/// Where drafts come from.
pub enum DraftSource<'a> {
    /// A separate causal LM with its own cache channel.
    Model { model: &'a CausalLm, kv: KvChannel },
    /// Prompt lookup.
    Ngram(NgramParams),
    /// A DFlash drafter conditioned on the target's hidden states.
    DFlash(&'a DFlashModel),
    /// SYNTHETIC: the target's own greedy continuation, each token corrupted with
    /// probability `corrupt`.
    Replay { corrupt: f64, seed: u64 },
}

impl DraftSource<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            DraftSource::Model { .. } => "model",
            DraftSource::Ngram(_) => "ngram",
            DraftSource::DFlash(_) => "dflash",
            DraftSource::Replay { .. } => "replay",
        }
    }

    pub fn synthetic(&self) -> bool {
        matches!(self, DraftSource::Replay { .. })
    }
}

/// Models and caches of a run.
pub struct Pair<'a> {
    pub target: &'a CausalLm,
    /// Target cache channel (the AR reference uses the same one).
    pub kv: KvChannel,
    pub source: DraftSource<'a>,
    pub policy: BlockPolicy,
}

impl<'a> Pair<'a> {
    /// A pair with a draft model (fixed block length).
    pub fn with_model(
        target: &'a CausalLm,
        draft: &'a CausalLm,
        kv: KvChannel,
        draft_kv: KvChannel,
    ) -> Self {
        Pair {
            target,
            kv,
            source: DraftSource::Model {
                model: draft,
                kv: draft_kv,
            },
            policy: BlockPolicy::Fixed,
        }
    }

    /// Untimed decode on both models so first-call costs (page faults, thread pool start-up)
    /// do not land in the first sample.
    pub fn warmup(&self, prompt: &[u32]) -> Result<(), ModelError> {
        let mut t = Session::new(self.target, &self.kv)?;
        greedy(&mut t, prompt, 4, &[])?;
        if let DraftSource::Model { model, kv } = &self.source {
            let mut d = Session::new(model, kv)?;
            greedy(&mut d, prompt, 4, &[])?;
        }
        let opts = SpecOptions {
            block_size: 4,
            max_new_tokens: 4,
            stop: Vec::new(),
        };
        self.run_spec(prompt, &opts, None)?;
        Ok(())
    }

    fn run_spec(
        &self,
        prompt: &[u32],
        opts: &SpecOptions,
        reference: Option<&[u32]>,
    ) -> Result<(SpecOutput, Vec<LayerStats>), ModelError> {
        let mut t = Session::new(self.target, &self.kv)?;
        let mut d_session;
        let mut boxed: Box<dyn Drafter + '_> = match &self.source {
            DraftSource::Model { model, kv } => {
                d_session = Session::new(model, kv)?;
                Box::new(ModelDrafter::new(&mut d_session))
            }
            DraftSource::Ngram(p) => Box::new(NgramDrafter::new(*p)?),
            DraftSource::DFlash(m) => Box::new(DFlashDrafter::new(m, self.target)),
            DraftSource::Replay { corrupt, seed } => Box::new(ReplayDrafter::new(
                reference.map(<[u32]>::to_vec).unwrap_or_default(),
                *corrupt,
                *seed,
                self.target.config().vocab_size,
            )?),
        };
        let out = speculative_with(&mut t, boxed.as_mut(), prompt, opts, self.policy)?;
        Ok((out, t.cache.stats()))
    }

    /// Decode `prompt` plainly and speculatively; the order alternates with `repeat` so slow
    /// drift of the machine does not favour one side.
    pub fn sample(
        &self,
        prompt: &[u32],
        opts: &SpecOptions,
        prompt_index: usize,
        repeat: usize,
    ) -> Result<Sample, ModelError> {
        let run_ar = || -> Result<GenOutput, ModelError> {
            let mut s = Session::new(self.target, &self.kv)?;
            greedy(&mut s, prompt, opts.max_new_tokens, &opts.stop)
        };
        // Replay needs the answer before the timed runs: an extra untimed plain decode.
        let reference = if self.source.synthetic() {
            Some(run_ar()?.tokens)
        } else {
            None
        };
        let run_spec = || self.run_spec(prompt, opts, reference.as_deref());
        let (ar, (spec, kv_layers)) = if repeat.is_multiple_of(2) {
            let ar = run_ar()?;
            (ar, run_spec()?)
        } else {
            let s = run_spec()?;
            (run_ar()?, s)
        };
        Ok(Sample {
            prompt_index,
            repeat,
            prompt_tokens: prompt.len(),
            spec,
            ar,
            kv_layers,
        })
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl Sample {
    pub fn lossless(&self) -> bool {
        self.spec.tokens == self.ar.tokens
    }

    pub fn to_json(&self, index: usize, text: Option<String>) -> Value {
        let s = &self.spec;
        let ar_total = self.ar.prefill_s + self.ar.decode_s;
        json!({
            "sample": index,
            "prompt_index": self.prompt_index,
            "repeat": self.repeat,
            "prompt_tokens": self.prompt_tokens,
            "tokens": s.tokens,
            "ar_tokens": self.ar.tokens,
            "text": text,
            "match": self.lossless(),
            "blocks": s.blocks(),
            "accepted_lens": s.accepted_lens,
            "block_lens": s.block_lens,
            "acceptance_rate": s.acceptance_rate(),
            "stopped_on_eos": s.stopped_on_eos,
            "cancelled": s.cancelled,
            "plain_steps": s.plain_steps,
            "draft_forwards": s.draft_forwards,
            "verify_forwards": s.verify_forwards,
            "timings_s": {"prefill": s.prefill_s, "draft": s.draft_s, "verify": s.verify_s,
                          "total": s.total_s},
            "ar_timings_s": {"prefill": self.ar.prefill_s, "decode": self.ar.decode_s,
                             "total": ar_total},
            "ar_forwards": self.ar.forwards,
            "kv_cache": {
                "bytes_held": self.kv_layers.iter().map(|l| l.bytes_held).sum::<usize>(),
                "raw_bytes": self.kv_layers.iter().map(|l| l.raw_bytes).sum::<usize>(),
                "layers": self.kv_layers,
            },
        })
    }
}

/// Totals over samples; every derived number follows from the per-sample measurements in
/// the same way the evidence gate recomputes it.
pub fn summary(samples: &[Sample]) -> Value {
    let tokens: usize = samples.iter().map(|s| s.spec.tokens.len()).sum();
    let ar_tokens: usize = samples.iter().map(|s| s.ar.tokens.len()).sum();
    let accepted: usize = samples.iter().flat_map(|s| &s.spec.accepted_lens).sum();
    let blocks: usize = samples.iter().map(|s| s.spec.blocks()).sum();
    let proposed: usize = samples
        .iter()
        .flat_map(|s| &s.spec.block_lens)
        .map(|l| l - 1)
        .sum();
    let drafted_ok: usize = samples
        .iter()
        .flat_map(|s| &s.spec.accepted_lens)
        .map(|a| a - 1)
        .sum();
    let spec_s: f64 = samples.iter().map(|s| s.spec.total_s).sum();
    let spec_prefill_s: f64 = samples.iter().map(|s| s.spec.prefill_s).sum();
    let ar_s: f64 = samples.iter().map(|s| s.ar.prefill_s + s.ar.decode_s).sum();
    let ar_decode_s: f64 = samples.iter().map(|s| s.ar.decode_s).sum();
    let tps = ratio(tokens as f64, spec_s);
    let ar_tps = ratio(ar_tokens as f64, ar_s);
    let dec_tps = ratio(tokens as f64, spec_s - spec_prefill_s);
    let ar_dec_tps = ratio(ar_tokens as f64, ar_decode_s);
    json!({
        "samples": samples.len(),
        "lossless": samples.iter().all(Sample::lossless),
        "tokens": tokens,
        "ar_tokens": ar_tokens,
        "blocks": blocks,
        "mean_accept_len": ratio(accepted as f64, blocks as f64),
        "acceptance_rate": if proposed > 0 { Some(drafted_ok as f64 / proposed as f64) } else { None },
        "spec_seconds": spec_s,
        "ar_seconds": ar_s,
        "tokens_per_s": tps,
        "ar_tokens_per_s": ar_tps,
        "speedup_vs_ar": ratio(tps, ar_tps),
        "decode_tokens_per_s": dec_tps,
        "ar_decode_tokens_per_s": ar_dec_tps,
        "decode_speedup_vs_ar": ratio(dec_tps, ar_dec_tps),
        "timing_scope": "e2e_prefill_plus_decode",
    })
}
