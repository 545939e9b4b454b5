//! Compressed storage: K and V rows (one per token and kv head) go through the lattice
//! codec's packed encoding, and only the bytes are kept. Reading decodes every row, which
//! equals the codec's round trip bit for bit — so attention sees exactly the reconstruction
//! the reference's `KakeyaLatticeCache` would hand back, while memory holds the packed form.
//! The price is a decode of the whole layer per forward; that is the trade this store makes.

use candle_core::{DType, Device, Tensor};

use super::{CacheError, KvStore, StoreSpec};
use crate::codec::{self, Codec, PackedRows, Packer, Variant};

/// Packed rows with a compact index: `ends[i]` is where row i's bytes end (u32, so the index
/// costs 4 bytes per row rather than the 8 of a `usize` offset).
#[derive(Default)]
struct Rows {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

pub struct PackedStore {
    spec: StoreSpec,
    packer: Packer,
    k: Rows,
    v: Rows,
    len: usize,
    fired: u64,
    label: String,
}

fn host_rows(t: &Tensor) -> Result<Vec<f32>, CacheError> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

fn extend(store: &mut Rows, new: PackedRows) -> Result<(), CacheError> {
    let base = store.bytes.len();
    store.bytes.extend_from_slice(&new.bytes);
    for o in new.offsets.iter().skip(1) {
        let end = u32::try_from(base + o).map_err(|_| {
            CacheError::Codec(codec::CodecError::Malformed {
                reason: "a layer's packed K/V exceeds 4 GiB".into(),
            })
        })?;
        store.ends.push(end);
    }
    Ok(())
}

fn cut(store: &mut Rows, rows: usize) {
    store.ends.truncate(rows);
    let end = store.ends.last().copied().unwrap_or(0) as usize;
    store.bytes.truncate(end);
}

impl PackedStore {
    /// A codec store; fails if the head dimension or Q is not supported by packed storage.
    pub fn new(
        spec: StoreSpec,
        variant: Variant,
        q: u32,
        label: String,
    ) -> Result<Self, CacheError> {
        let codec = Codec::new(variant, spec.head_dim, i64::from(q))?;
        let packer = Packer::new(codec)?;
        Ok(PackedStore {
            spec,
            packer,
            k: Rows::default(),
            v: Rows::default(),
            len: 0,
            fired: 0,
            label,
        })
    }

    fn decode(&self, rows: &Rows) -> Result<Tensor, CacheError> {
        let data = if self.len == 0 {
            Vec::new()
        } else {
            // The codec's batch decoder wants its own container; the copy is of the packed
            // (small) form and lives only for this call.
            let mut offsets = Vec::with_capacity(rows.ends.len() + 1);
            offsets.push(0);
            offsets.extend(rows.ends.iter().map(|&e| e as usize));
            let packed = PackedRows {
                dim: self.spec.head_dim,
                bytes: rows.bytes.clone(),
                offsets,
                escapes: 0,
            };
            codec::decode_rows(&self.packer, &packed)?
        };
        let t = Tensor::from_vec(
            data,
            (self.len, self.spec.kv_heads, self.spec.head_dim),
            &Device::Cpu,
        )?;
        Ok(t.to_device(&self.spec.device)?.to_dtype(self.spec.dtype)?)
    }
}

impl KvStore for PackedStore {
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(), CacheError> {
        let l = self.spec.check(k)?;
        if self.spec.check(v)? != l {
            return Err(CacheError::Shape {
                got: v.dims().to_vec(),
                kv_heads: self.spec.kv_heads,
                head_dim: self.spec.head_dim,
            });
        }
        // Token-major rows, so truncating to n tokens keeps the first n·kv_heads rows.
        let pk = codec::encode_rows(&self.packer, &host_rows(k)?)?;
        let pv = codec::encode_rows(&self.packer, &host_rows(v)?)?;
        extend(&mut self.k, pk)?;
        extend(&mut self.v, pv)?;
        self.len += l;
        self.fired += 1;
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
        let rows = len * self.spec.kv_heads;
        cut(&mut self.k, rows);
        cut(&mut self.v, rows);
        self.len = len;
        Ok(())
    }

    fn view(&self) -> Result<(Tensor, Tensor), CacheError> {
        Ok((self.decode(&self.k)?, self.decode(&self.v)?))
    }

    fn bytes_held(&self) -> usize {
        // Payload plus the per-row index the store needs to find each row.
        self.k.bytes.len() + self.v.bytes.len() + 4 * (self.k.ends.len() + self.v.ends.len())
    }

    fn counters(&self) -> (u64, u64) {
        (self.fired, 0)
    }

    fn label(&self) -> String {
        self.label.clone()
    }
}
