//! Raw storage: one preallocated token-major buffer per K and V, written in place with
//! `slice_set`. Appending copies only the new tokens (the stock candle models `cat` the whole
//! cache on every step), truncation just moves the length, and the view is a contiguous
//! narrow of the buffer.

use candle_core::Tensor;

use super::{CacheError, KvStore, StoreSpec};

pub struct RawStore {
    spec: StoreSpec,
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    cap: usize,
    skipped: u64,
    boundary: bool,
}

impl RawStore {
    /// `boundary` only changes the label: a boundary layer of a lattice channel.
    pub fn new(spec: StoreSpec, boundary: bool) -> Self {
        RawStore {
            spec,
            k: None,
            v: None,
            len: 0,
            cap: 0,
            skipped: 0,
            boundary,
        }
    }

    fn grow(&mut self, need: usize) -> Result<(), CacheError> {
        if need <= self.cap {
            return Ok(());
        }
        let cap = need.next_power_of_two().max(64);
        let shape = (cap, self.spec.kv_heads, self.spec.head_dim);
        let nk = Tensor::zeros(shape, self.spec.dtype, &self.spec.device)?;
        let nv = Tensor::zeros(shape, self.spec.dtype, &self.spec.device)?;
        if let (Some(k), Some(v)) = (&self.k, &self.v)
            && self.len > 0
        {
            nk.slice_set(&k.narrow(0, 0, self.len)?, 0, 0)?;
            nv.slice_set(&v.narrow(0, 0, self.len)?, 0, 0)?;
        }
        self.k = Some(nk);
        self.v = Some(nv);
        self.cap = cap;
        Ok(())
    }
}

impl KvStore for RawStore {
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(), CacheError> {
        let l = self.spec.check(k)?;
        if self.spec.check(v)? != l {
            return Err(CacheError::Shape {
                got: v.dims().to_vec(),
                kv_heads: self.spec.kv_heads,
                head_dim: self.spec.head_dim,
            });
        }
        self.grow(self.len + l)?;
        if let (Some(bk), Some(bv)) = (&self.k, &self.v) {
            bk.slice_set(&k.to_dtype(self.spec.dtype)?.contiguous()?, 0, self.len)?;
            bv.slice_set(&v.to_dtype(self.spec.dtype)?.contiguous()?, 0, self.len)?;
        }
        self.len += l;
        self.skipped += 1;
        Ok(())
    }

    fn len(&self) -> usize {
        self.len
    }

    fn truncate(&mut self, len: usize) -> Result<(), CacheError> {
        if len > self.len {
            return Err(CacheError::Truncate {
                len: self.len,
                to: len,
            });
        }
        self.len = len;
        Ok(())
    }

    fn view(&self) -> Result<(Tensor, Tensor), CacheError> {
        match (&self.k, &self.v) {
            (Some(k), Some(v)) => Ok((k.narrow(0, 0, self.len)?, v.narrow(0, 0, self.len)?)),
            _ => {
                let shape = (0, self.spec.kv_heads, self.spec.head_dim);
                let e = Tensor::zeros(shape, self.spec.dtype, &self.spec.device)?;
                Ok((e.clone(), e))
            }
        }
    }

    fn bytes_held(&self) -> usize {
        self.spec.raw_bytes(self.cap)
    }

    fn counters(&self) -> (u64, u64) {
        (0, self.skipped)
    }

    fn label(&self) -> String {
        if self.boundary {
            "raw-boundary".into()
        } else {
            "raw".into()
        }
    }
}
