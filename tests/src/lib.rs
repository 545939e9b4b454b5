//! Harness for the macbridge end-to-end tests.
//!
//! Everything here drives the *real* binaries (`macbridge`, `macbridge-runner`, `kakeya`,
//! `evidence-gate`) from the cargo target folder that holds the test executable, against real
//! bare git repositories in a per-test temporary folder. Hostile requests are crafted without
//! any macbridge code: `git` plumbing builds the commits, `ssh-keygen -Y sign` signs them, and
//! the canonical JSON and request id are computed here from the protocol's written rules. That
//! makes the suite an interoperability test of the protocol as well.
//!
//! * [`bins`]: locating the binaries.
//! * [`proc`]: running processes with deadlines, background processes that never leak.
//! * [`gitx`]: git plumbing and bus inspection.
//! * [`craft`]: canonical JSON, timestamps, manifests, `ssh-keygen` signatures.
//! * [`world`]: one isolated bus + keys + runner config per test.
//! * [`fleet`]: several runners on one world's bus; queue, cancel and state polling.
//! * [`agent`]: a real `ssh-agent` per test and `ssh-keygen` keys of every type.
//! * [`sk`]: security-key (`sk-`) SSHSIG signatures made in software (no hardware here).
//! * [`census`]: after a fault run, results, executions, duplicates and latency per request.
//! * [`gitd`]: `git daemon` serving a bus over TCP; [`flaky`]: a fault-injecting TCP proxy;
//!   [`netns`]: network namespaces and veth links a test can cut; [`scenarios`]: fault runs
//!   shared by the e2e suite and the on-demand chaos binary.

pub mod agent;
pub mod bins;
pub mod census;
pub mod craft;
pub mod flaky;
pub mod fleet;
pub mod gitd;
pub mod gitx;
pub mod netns;
pub mod proc;
pub mod scenarios;
pub mod sk;
pub mod world;

pub use craft::{Draft, Sealed};
pub use fleet::{Member, RunnerOpts};
pub use proc::{Background, Finished};
pub use world::{KeyPair, RunnerSetup, World};
