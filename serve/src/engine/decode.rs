//! One generation on the worker thread: plain decoding (greedy or sampled) or, for greedy
//! requests with a drafter, speculative decoding through [`super::spec`]. Both feed committed
//! tokens to the same [`Committer`], which applies EOS, `max_tokens`, stop strings and
//! cancellation, so the two paths end identically.

use std::ops::ControlFlow;
use std::time::Instant;

use kakeya_engine::model::{Logits, ModelCache, ModelError};

use super::model::{DrafterKind, LoadedModel};
use super::sample::Sampler;
use super::spec::Draft;
use super::text::TextStream;
use super::{GenRequest, Summary};

/// Applies the end conditions to committed tokens and hands out text.
pub struct Committer<'a> {
    text: TextStream<'a>,
    eos: &'a [u32],
    max: usize,
    cancelled: &'a dyn Fn() -> bool,
    emit: &'a mut dyn FnMut(String),
    finish: Option<&'static str>,
    eos_tokens: usize,
    cancelled_hit: bool,
}

impl Committer<'_> {
    /// Take newly committed tokens; `Break` when generation must end.
    pub fn commit(&mut self, ids: &[u32]) -> ControlFlow<()> {
        if self.finish.is_some() || self.cancelled_hit {
            return ControlFlow::Break(());
        }
        let mut take = ids.len().min(self.max.saturating_sub(self.text.tokens()));
        let mut hit_eos = false;
        if let Some(i) = ids[..take].iter().position(|t| self.eos.contains(t)) {
            take = i;
            hit_eos = true;
        }
        let push = self.text.push(&ids[..take]);
        (self.emit)(push.text);
        if push.stopped || hit_eos {
            if hit_eos && !push.stopped {
                (self.emit)(self.text.finish().text);
                // The EOS token counts as generated, as in OpenAI's usage.
                self.eos_tokens = 1;
            }
            self.finish = Some("stop");
            return ControlFlow::Break(());
        }
        if self.text.tokens() >= self.max {
            let rest = self.text.finish();
            (self.emit)(rest.text);
            self.finish = Some(if rest.stopped { "stop" } else { "length" });
            return ControlFlow::Break(());
        }
        if (self.cancelled)() {
            self.cancelled_hit = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// Run `req` to its end.
pub fn generate(
    model: &LoadedModel,
    req: &GenRequest,
    cancelled: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(String),
) -> Result<Summary, ModelError> {
    let t0 = Instant::now();
    let no_eos: [u32; 0] = [];
    let mut c = Committer {
        text: TextStream::new(&model.tokenizer, req.stop.clone()),
        eos: if req.ignore_eos { &no_eos } else { &model.eos },
        max: req.max_tokens,
        cancelled,
        emit,
        finish: None,
        eos_tokens: 0,
        cancelled_hit: false,
    };
    let mut summary = Summary {
        prompt_tokens: req.prompt.len(),
        kv: req.kv.to_string(),
        drafter: "none".into(),
        ..Summary::default()
    };
    let spec_ok = req.sampling.is_greedy() && req.block_size.is_some_and(|b| b > 1);
    let draft = match (model.drafter, &model.draft, &model.dflash) {
        (DrafterKind::Model, Some(m), _) => Some(Draft::Model(m)),
        (DrafterKind::Ngram, _, _) => Some(Draft::Ngram),
        (DrafterKind::Dflash, _, Some(m)) => Some(Draft::DFlash(m)),
        _ => None,
    };
    let cache = match (spec_ok, draft) {
        (true, Some(draft)) if req.max_tokens > 0 => {
            let block = req.block_size.unwrap_or(1);
            let (cache, counts) =
                super::spec::run(&model.lm, draft, &req.kv, &req.prompt, block, &mut |ids| {
                    c.commit(ids)
                })?;
            summary.drafter = model.drafter.name().into();
            summary.block_size = Some(block);
            summary.drafted_tokens = counts.drafted;
            summary.accepted_tokens = counts.accepted;
            summary.spec_blocks = counts.blocks;
            summary.prefill_s = counts.prefill_s;
            if counts.blocks > 0 {
                summary.mean_accepted_len =
                    Some((counts.accepted + counts.blocks) as f64 / counts.blocks as f64);
            }
            cache
        }
        _ => plain(model, req, &mut c, &mut summary)?,
    };
    if c.finish.is_none() && !c.cancelled_hit {
        // max_tokens == 0, or the loop ended on its own.
        let rest = c.text.finish();
        (c.emit)(rest.text);
        c.finish = Some("length");
    }
    let (held, raw) = cache.bytes();
    for l in cache.stats() {
        summary.codec_fired += l.fired;
        summary.codec_skipped += l.skipped;
    }
    summary.kv_bytes_held = held as u64;
    summary.kv_bytes_raw = raw as u64;
    summary.completion_tokens = c.text.tokens() + c.eos_tokens;
    summary.cancelled = c.cancelled_hit;
    summary.finish_reason = c.finish.unwrap_or("stop");
    summary.total_s = t0.elapsed().as_secs_f64();
    Ok(summary)
}

fn plain(
    model: &LoadedModel,
    req: &GenRequest,
    c: &mut Committer,
    summary: &mut Summary,
) -> Result<ModelCache, ModelError> {
    let t0 = Instant::now();
    let mut cache = model.lm.new_cache(&req.kv)?;
    if req.max_tokens == 0 {
        return Ok(cache);
    }
    let mut sampler = Sampler::new(req.sampling);
    let mut logits = model.lm.forward(&req.prompt, &mut cache, Logits::Last)?;
    summary.prefill_s = t0.elapsed().as_secs_f64();
    loop {
        let row = logits.squeeze(0)?.to_vec1::<f32>()?;
        let next = sampler.pick(&row);
        if c.commit(&[next]).is_break() {
            return Ok(cache);
        }
        logits = model.lm.forward(&[next], &mut cache, Logits::Last)?;
    }
}
