//! End-to-end tests: the real `macbridge`, `macbridge-runner`, `kakeya` and `evidence-gate`
//! binaries against real bare repositories:
//!
//! ```text
//! cargo test --release --workspace      # builds every binary first, then runs everything
//! cargo test --release -p macbridge-e2e # alone: stale or missing binaries are rebuilt into
//!                                       # target/e2e-bins (see macbridge_e2e::bins)
//! ```

mod cancel;
mod cleanup;
mod client_cli;
mod clock_skew;
mod doctor_sandbox;
mod ended;
mod evidence_gate;
mod faults;
mod flaky_remote;
mod forgery;
mod full_disk;
mod happy;
mod harness;
mod keys_agent;
mod keys_prompt;
mod keys_sk_fixture;
mod keys_types;
mod limits;
mod partition;
mod queue;
mod race;
mod refusals_manifest;
mod refusals_policy;
mod refusals_signature;
