//! Evaluations that run a model: the KV-quantization shoot-out on K/V captured from a real
//! forward pass, needle-in-a-haystack recall under KV compression, and drafter parity.

pub mod drafter_parity;
pub mod kv_quant;
pub mod niah;
