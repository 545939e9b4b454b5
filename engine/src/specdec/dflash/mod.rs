//! The `dflash` drafter: a small non-causal Qwen3-style stack that writes a whole block in
//! one forward, conditioned on the target's hidden states (public reference: z-lab/dflash;
//! this is our own implementation).
//!
//! It has no embedding or head of its own: blocks are embedded with the target's table and
//! scored with the target's lm_head. For every committed token the target's residual stream
//! after each layer in `target_layer_ids` (captured during prefill and verify, no extra
//! forward) is concatenated → `fc` → `hidden_norm`, and each drafter layer turns that into
//! context K/V (`k_proj` → `k_norm` → RoPE at the token's position; `v_proj`). The context
//! only grows with committed tokens. A block is `[bonus, MASK × (B−1)]` at positions
//! `C .. C+B−1`, attending to all context K/V and all block positions; the mask id's logit
//! is −∞ and the argmax of positions 1..B−1 are the drafts. The target's correction after a
//! partly rejected block is simply the next block's bonus.

pub mod config;
pub mod model;

use candle_core::Tensor;

pub use config::DFlashConfig;
pub use model::{ContextKv, DFlashModel};

use super::drafter::{DraftCost, Drafter};
use crate::model::{CausalLm, ModelError, argmax};

pub struct DFlashDrafter<'a> {
    model: &'a DFlashModel,
    target: &'a CausalLm,
    ctx: ContextKv,
    cost: DraftCost,
}

impl<'a> DFlashDrafter<'a> {
    pub fn new(model: &'a DFlashModel, target: &'a CausalLm) -> Self {
        DFlashDrafter {
            model,
            target,
            ctx: ContextKv::default(),
            cost: DraftCost::default(),
        }
    }

    /// The context K/V built so far (for tests and diagnostics).
    pub fn context(&self) -> &ContextKv {
        &self.ctx
    }

    fn need(hidden: Option<&Tensor>, rows: usize) -> Result<&Tensor, ModelError> {
        let h = hidden.ok_or_else(|| {
            ModelError::Internal("the DFlash drafter got no target hidden states".into())
        })?;
        if h.dim(0)? != rows {
            return Err(ModelError::Internal(format!(
                "{} hidden rows for {rows} committed tokens",
                h.dim(0)?
            )));
        }
        Ok(h)
    }
}

impl Drafter for DFlashDrafter<'_> {
    fn name(&self) -> &'static str {
        "dflash"
    }

    fn target_layers(&self) -> &[usize] {
        &self.model.cfg.target_layer_ids
    }

    fn begin(&mut self, prompt: &[u32], hidden: Option<&Tensor>) -> Result<(), ModelError> {
        self.ctx = ContextKv::default();
        let h = Self::need(hidden, prompt.len())?;
        self.model.extend_context(&mut self.ctx, h)
    }

    fn propose(&mut self, committed: &[u32], bonus: u32, k: usize) -> Result<Vec<u32>, ModelError> {
        if k == 0 {
            return Ok(Vec::new());
        }
        if self.ctx.len != committed.len() {
            return Err(ModelError::Internal(format!(
                "DFlash context holds {} tokens, {} are committed",
                self.ctx.len,
                committed.len()
            )));
        }
        let mut block = vec![self.model.cfg.mask_token_id; k + 1];
        block[0] = bonus;
        let logits = self.model.block_logits(self.target, &self.ctx, &block)?;
        self.cost.forwards += 1;
        let rows: Vec<Vec<f32>> = logits.to_vec2()?;
        let d: Vec<u32> = rows.iter().map(|r| argmax(r)).collect();
        self.cost.proposed += d.len() as u64;
        Ok(d)
    }

    fn observe(
        &mut self,
        committed: &[u32],
        new: usize,
        hidden: Option<&Tensor>,
    ) -> Result<(), ModelError> {
        if self.ctx.len + new != committed.len() {
            return Err(ModelError::Internal(format!(
                "DFlash context holds {} tokens; {} + {new} committed do not line up",
                self.ctx.len,
                committed.len() - new
            )));
        }
        let h = Self::need(hidden, new)?;
        self.model.extend_context(&mut self.ctx, h)
    }

    fn cost(&self) -> DraftCost {
        self.cost
    }
}
