//! KV channel names, as the seeds spell them: `raw` (also `bf16`/`f16`/`f32`/`none`: the
//! model's own dtype), or `<variant>-q<Q>[-b<boundary>]` such as `e8-q38` or `d4-q10-b2`.
//! Boundary layers (the first and last `boundary` layers) stay raw, as in the reference's
//! `KakeyaLatticeCache(boundary=…)`.

use std::fmt;

use super::{CacheError, KvStore, PackedStore, RawStore, StoreSpec};
use crate::codec::Variant;

/// Which store each layer gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvChannel {
    Raw,
    Lattice {
        variant: Variant,
        q: u32,
        boundary: usize,
    },
}

impl std::str::FromStr for KvChannel {
    type Err = CacheError;

    fn from_str(s: &str) -> Result<Self, CacheError> {
        let bad = |reason: &str| CacheError::Channel {
            channel: s.to_string(),
            reason: reason.to_string(),
        };
        let lower = s.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "raw" | "none" | "bf16" | "f16" | "f32" | "fp16"
        ) {
            return Ok(KvChannel::Raw);
        }
        let mut parts = lower.split('-');
        let variant: Variant = parts
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|e: String| bad(&e))?;
        let q = parts
            .next()
            .and_then(|p| p.strip_prefix('q'))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|q| *q >= 1)
            .ok_or_else(|| bad("expected q<Q> with Q ≥ 1 after the variant, e.g. e8-q38"))?;
        let boundary = match parts.next() {
            None => 0,
            Some(p) => p
                .strip_prefix('b')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| bad("expected b<layers> as the third part, e.g. d4-q10-b2"))?,
        };
        if parts.next().is_some() {
            return Err(bad("too many parts (expected variant-qQ[-bN])"));
        }
        Ok(KvChannel::Lattice {
            variant,
            q,
            boundary,
        })
    }
}

impl fmt::Display for KvChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvChannel::Raw => f.write_str("raw"),
            KvChannel::Lattice {
                variant,
                q,
                boundary: 0,
            } => write!(f, "{variant}-q{q}"),
            KvChannel::Lattice {
                variant,
                q,
                boundary,
            } => write!(f, "{variant}-q{q}-b{boundary}"),
        }
    }
}

impl KvChannel {
    /// Whether layer `layer` of `num_layers` is kept raw as a boundary layer.
    pub fn is_boundary(&self, layer: usize, num_layers: usize) -> bool {
        match self {
            KvChannel::Raw => true,
            KvChannel::Lattice { boundary, .. } => {
                *boundary > 0 && (layer < *boundary || layer + *boundary >= num_layers)
            }
        }
    }

    pub(crate) fn store_for(
        &self,
        layer: usize,
        num_layers: usize,
        spec: &StoreSpec,
    ) -> Result<Box<dyn KvStore>, CacheError> {
        match self {
            KvChannel::Lattice { variant, q, .. } if !self.is_boundary(layer, num_layers) => {
                Ok(Box::new(PackedStore::new(
                    spec.clone(),
                    *variant,
                    *q,
                    self.to_string(),
                )?))
            }
            KvChannel::Lattice { .. } => Ok(Box::new(RawStore::new(spec.clone(), true))),
            KvChannel::Raw => Ok(Box::new(RawStore::new(spec.clone(), false))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seed_syntax() {
        let c: KvChannel = "e8-q38".parse().unwrap();
        assert_eq!(c.to_string(), "e8-q38");
        let c: KvChannel = "D4-Q10-B2".parse().unwrap();
        assert_eq!(c.to_string(), "d4-q10-b2");
        assert!(c.is_boundary(0, 6) && c.is_boundary(1, 6) && c.is_boundary(4, 6));
        assert!(!c.is_boundary(2, 6) && !c.is_boundary(3, 6));
        assert_eq!("bf16".parse::<KvChannel>().unwrap(), KvChannel::Raw);
        for bad in [
            "e9-q38",
            "e8",
            "e8-q0",
            "e8-38",
            "e8-q38-2",
            "e8-q38-b2-x",
            "",
        ] {
            assert!(bad.parse::<KvChannel>().is_err(), "{bad}");
        }
    }
}
