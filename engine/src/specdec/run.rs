//! Measured samples for reports and benchmarks: the same prompt decoded plainly (AR) and
//! speculatively on fresh caches, with timings, and the summary derived from them.

use serde_json::{Value, json};

use super::{SpecOptions, SpecOutput, speculative};
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

/// Models and caches of a run.
pub struct Pair<'a> {
    pub target: &'a CausalLm,
    pub draft: &'a CausalLm,
    /// Target cache channel (the AR reference uses the same one).
    pub kv: KvChannel,
    /// Draft cache channel.
    pub draft_kv: KvChannel,
}

impl Pair<'_> {
    /// Untimed decode on both models so first-call costs (page faults, thread pool start-up)
    /// do not land in the first sample.
    pub fn warmup(&self, prompt: &[u32]) -> Result<(), ModelError> {
        let mut t = Session::new(self.target, &self.kv)?;
        greedy(&mut t, prompt, 4, &[])?;
        let mut d = Session::new(self.draft, &self.draft_kv)?;
        greedy(&mut d, prompt, 4, &[])?;
        Ok(())
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
        let run_spec = || -> Result<(SpecOutput, Vec<LayerStats>), ModelError> {
            let mut t = Session::new(self.target, &self.kv)?;
            let mut d = Session::new(self.draft, &self.draft_kv)?;
            let out = speculative(&mut t, &mut d, prompt, opts)?;
            Ok((out, t.cache.stats()))
        };
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
