//! One module per `kakeya` subcommand.

pub mod acceptance;
pub mod bench;
pub mod bench_model;
pub mod codec;
pub mod drafter_parity;
pub mod env_probe;
pub mod generate;
pub mod kv_quant_eval;
pub mod lm_common;
pub mod make_tiny_model;
pub mod model_info;
pub mod niah;
pub mod serve;
pub mod sleep;
pub mod spec_decode;
