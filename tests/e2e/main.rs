//! End-to-end tests: the real `macbridge`, `macbridge-runner`, `kakeya` and `evidence-gate`
//! binaries against real bare repositories. Build first:
//!
//! ```text
//! cargo build --release --workspace && cargo test --release -p macbridge-e2e
//! ```

mod cancel;
mod cleanup;
mod client_cli;
mod clock_skew;
mod evidence_gate;
mod faults;
mod flaky_remote;
mod forgery;
mod full_disk;
mod happy;
mod harness;
mod limits;
mod partition;
mod queue;
mod race;
mod refusals_manifest;
mod refusals_policy;
mod refusals_signature;
