//! The explicit per-layer KV cache. Each layer owns a [`KvStore`]: append the new tokens'
//! K/V, read everything back as token-major `[T, kv_heads, head_dim]` tensors, and truncate
//! to any length in O(1) — which is what speculative decoding needs to drop a rejected tail
//! (the reference's sliding-ring cache could not, and diverged; spec §2.3).
//!
//! Two stores: [`RawStore`] keeps tensors in the model dtype; [`PackedStore`] keeps the
//! codec's packed bytes (memory actually shrinks) and reads back exactly the codec's round
//! trip. A [`KvChannel`] (`raw`, `e8-q38`, `d4-q10-b2`, …) picks the store per layer, keeping
//! boundary layers raw at both ends.

use candle_core::{DType, Device, Tensor};

mod channel;
mod packed;
mod raw;

pub use channel::KvChannel;
pub use packed::PackedStore;
pub use raw::RawStore;

/// Errors from a cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot truncate a cache of {len} tokens to {to}")]
    Truncate { len: usize, to: usize },
    #[error("K/V shape {got:?} does not match [tokens, {kv_heads}, {head_dim}]")]
    Shape {
        got: Vec<usize>,
        kv_heads: usize,
        head_dim: usize,
    },
    #[error("invalid kv channel `{channel}`: {reason}")]
    Channel { channel: String, reason: String },
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// One layer's K/V storage.
pub trait KvStore: Send {
    /// Append `k`, `v` of shape `[L, kv_heads, head_dim]`.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(), CacheError>;
    /// Tokens held.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Keep the first `len` tokens (must be ≤ the current length).
    fn truncate(&mut self, len: usize) -> Result<(), CacheError>;
    /// Everything held, as `[T, kv_heads, head_dim]` contiguous tensors in the model dtype.
    fn view(&self) -> Result<(Tensor, Tensor), CacheError>;
    /// Bytes this store keeps allocated for K/V data.
    fn bytes_held(&self) -> usize;
    /// Appends that went through the codec / that were stored raw.
    fn counters(&self) -> (u64, u64);
    /// `raw` or the channel name.
    fn label(&self) -> String;
}

/// Shape facts every store needs.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: DType,
    pub device: Device,
}

impl StoreSpec {
    /// Bytes of `tokens` tokens of K and V stored raw in the model dtype.
    pub fn raw_bytes(&self, tokens: usize) -> usize {
        2 * tokens * self.kv_heads * self.head_dim * self.dtype.size_in_bytes()
    }

    pub(crate) fn check(&self, t: &Tensor) -> Result<usize, CacheError> {
        match t.dims() {
            [l, h, d] if *h == self.kv_heads && *d == self.head_dim => Ok(*l),
            other => Err(CacheError::Shape {
                got: other.to_vec(),
                kv_heads: self.kv_heads,
                head_dim: self.head_dim,
            }),
        }
    }
}

/// Per-layer accounting for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerStats {
    pub layer: usize,
    pub store: String,
    pub tokens: usize,
    pub fired: u64,
    pub skipped: u64,
    pub bytes_held: usize,
    pub raw_bytes: usize,
}

/// The whole model's cache: one store per layer, all the same length.
pub struct ModelCache {
    layers: Vec<Box<dyn KvStore>>,
    spec: StoreSpec,
    channel: KvChannel,
}

impl ModelCache {
    /// A fresh cache for `num_layers` layers through `channel`.
    pub fn new(
        num_layers: usize,
        spec: StoreSpec,
        channel: &KvChannel,
    ) -> Result<Self, CacheError> {
        let layers = (0..num_layers)
            .map(|l| channel.store_for(l, num_layers, &spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ModelCache {
            layers,
            spec,
            channel: channel.clone(),
        })
    }

    /// Tokens held (every layer holds the same number once a forward has finished).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn channel(&self) -> &KvChannel {
        &self.channel
    }

    /// Keep the first `len` tokens in every layer.
    pub fn truncate(&mut self, len: usize) -> Result<(), CacheError> {
        self.layers.iter_mut().try_for_each(|l| l.truncate(len))
    }

    pub(crate) fn layer_mut(&mut self, i: usize) -> Option<&mut Box<dyn KvStore>> {
        self.layers.get_mut(i)
    }

    pub fn layer(&self, i: usize) -> Option<&dyn KvStore> {
        self.layers.get(i).map(|b| b.as_ref())
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Per-layer counters and sizes.
    pub fn stats(&self) -> Vec<LayerStats> {
        self.layers
            .iter()
            .enumerate()
            .map(|(layer, s)| {
                let (fired, skipped) = s.counters();
                LayerStats {
                    layer,
                    store: s.label(),
                    tokens: s.len(),
                    fired,
                    skipped,
                    bytes_held: s.bytes_held(),
                    raw_bytes: self.spec.raw_bytes(s.len()),
                }
            })
            .collect()
    }

    /// Bytes held over all layers, and what the same tokens cost raw.
    pub fn bytes(&self) -> (usize, usize) {
        self.stats()
            .iter()
            .fold((0, 0), |(h, r), s| (h + s.bytes_held, r + s.raw_bytes))
    }
}
