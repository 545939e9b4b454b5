//! The `dflash` drafter for parity runs. DFlash drafts from the target's hidden states, so a
//! side is a target plus a DFlash checkpoint: the target prefills the context (capturing the
//! layers the drafter reads), its argmax is the bonus, and the drafter proposes the block
//! after it; a block is `[bonus, drafts…]`. `cached` keeps the target cache and the drafter's context K/V between calls and
//! feeds only the tokens a teacher-forced context gained; `recomputed` rebuilds both per call.

use crate::generate::{GreedyLm, Session};
use crate::model::{CausalLm, KvChannel, ModelError};
use crate::specdec::dflash::{DFlashDrafter, DFlashModel};
use crate::specdec::drafter::Drafter;

use super::DraftSource;
use super::model::ContextMode;

struct Live<'a> {
    target: Session<'a>,
    drafter: DFlashDrafter<'a>,
    /// Tokens the target cache and the drafter's context hold.
    seen: Vec<u32>,
    /// The target's argmax after `seen`.
    bonus: u32,
}

pub struct DFlashSource<'a> {
    target: &'a CausalLm,
    model: &'a DFlashModel,
    mode: ContextMode,
    live: Option<Live<'a>>,
}

impl<'a> DFlashSource<'a> {
    pub fn new(target: &'a CausalLm, model: &'a DFlashModel, mode: ContextMode) -> Self {
        DFlashSource {
            target,
            model,
            mode,
            live: None,
        }
    }

    fn fresh(&self, context: &[u32]) -> Result<Live<'a>, ModelError> {
        let mut target = Session::new(self.target, &KvChannel::Raw)?;
        let mut drafter = DFlashDrafter::new(self.model, self.target);
        let layers = drafter.target_layers().to_vec();
        let (preds, hidden) = target.feed_capture(context, false, &layers)?;
        drafter.begin(context, hidden.as_ref())?;
        Ok(Live {
            target,
            drafter,
            seen: context.to_vec(),
            bonus: last(&preds)?,
        })
    }
}

fn last(preds: &[u32]) -> Result<u32, ModelError> {
    preds
        .last()
        .copied()
        .ok_or_else(|| ModelError::Internal("the target returned no prediction".into()))
}

impl DraftSource for DFlashSource<'_> {
    fn propose(&mut self, context: &[u32], n: usize) -> Result<Vec<u32>, ModelError> {
        if context.is_empty() {
            return Err(ModelError::Input("the context has no tokens".into()));
        }
        let reuse = self.mode == ContextMode::Cached
            && self
                .live
                .as_ref()
                .is_some_and(|l| context.len() >= l.seen.len() && context.starts_with(&l.seen));
        let mut live = match (reuse, self.live.take()) {
            (true, Some(mut l)) => {
                let new = &context[l.seen.len()..];
                if !new.is_empty() {
                    let layers = l.drafter.target_layers().to_vec();
                    let (preds, hidden) = l.target.feed_capture(new, false, &layers)?;
                    l.drafter.observe(context, new.len(), hidden.as_ref())?;
                    l.bonus = last(&preds)?;
                    l.seen = context.to_vec();
                }
                l
            }
            _ => self.fresh(context)?,
        };
        // A DFlash block starts with the target's bonus and the drafts follow it, so the
        // block (and a teacher-forced context extended by it) stays coherent.
        let mut block = vec![live.bonus];
        block.extend(
            live.drafter
                .propose(context, live.bonus, n.saturating_sub(1))?,
        );
        block.truncate(n);
        if self.mode == ContextMode::Cached {
            self.live = Some(live);
        }
        Ok(block)
    }
}
