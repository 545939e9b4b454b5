//! The Kakeya engine: the E8/D4 nested-lattice KV-cache codec, causal LMs with an explicit
//! truncatable KV cache, lossless speculative decoding, and the evaluations that measure
//! them. Every command writes a JSON report in the evidence gate's envelope
//! (`kind`, `schema_version`, `provenance`), stating what it measured and on which device.

pub mod bench;
/// The lattice codec, now its own crate (`kakeya-lattice`); re-exported so the engine's
/// `crate::codec::...` paths stay valid.
pub use kakeya_lattice as codec;
pub mod device;
pub mod eval;
pub mod generate;
pub mod model;
pub mod probe;
pub mod report;
pub mod specdec;
pub mod tiny;
pub mod tokenizer;

/// Engine version stamped into every report.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");
