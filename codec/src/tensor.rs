//! Candle entry point so a KV cache can call the codec on its own tensors. The codec's
//! arithmetic is the CPU float32 pipeline; a tensor on another device is copied to host
//! memory, coded on all cores and copied back, in its original dtype and shape.

use candle_core::{DType, Device, Tensor};

use crate::{Codec, CodecError, batch};

fn terr(e: candle_core::Error) -> CodecError {
    CodecError::Tensor(e.to_string())
}

/// Round-trip a tensor whose last dimension is D; returns a tensor of the same shape, dtype
/// and device.
pub fn roundtrip_tensor(codec: &Codec, t: &Tensor) -> Result<Tensor, CodecError> {
    let dims = t.dims();
    let last = dims.last().copied().unwrap_or(0);
    if last != codec.dim() {
        return Err(CodecError::RowLength {
            len: last,
            dim: codec.dim(),
        });
    }
    let (device, dtype) = (t.device().clone(), t.dtype());
    let host = t
        .to_dtype(DType::F32)
        .and_then(|h| h.to_device(&Device::Cpu))
        .and_then(|h| h.flatten_all())
        .and_then(|h| h.to_vec1::<f32>())
        .map_err(terr)?;
    let out = batch::roundtrip_rows(codec, &host)?;
    Tensor::from_vec(out, t.shape(), &Device::Cpu)
        .and_then(|o| o.to_device(&device))
        .and_then(|o| o.to_dtype(dtype))
        .map_err(terr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Variant;

    #[test]
    fn tensor_matches_rows() {
        let codec = Codec::new(Variant::E8, 64, 38).unwrap();
        let data: Vec<f32> = (0..2 * 3 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
        let t = Tensor::from_vec(data.clone(), (2, 3, 64), &Device::Cpu).unwrap();
        let out = roundtrip_tensor(&codec, &t).unwrap();
        assert_eq!(out.dims(), &[2, 3, 64]);
        let flat = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat, batch::roundtrip_rows(&codec, &data).unwrap());
        let bad = Tensor::zeros((2, 32), DType::F32, &Device::Cpu).unwrap();
        assert!(roundtrip_tensor(&codec, &bad).is_err());
    }
}
