//! Evaluations that run a model: the KV-quantization shoot-out on K/V captured from a real
//! forward pass.

pub mod kv_quant;
