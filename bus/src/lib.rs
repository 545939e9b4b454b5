//! The macbridge git bus: everything that crosses the wire between requesters and runners.
//!
//! It owns the manifest schema and its canonical bytes, SSH signatures (SSHSIG) and the
//! `allowed_signers` + policy trust model, the ref layout, git transport (system `git` for
//! the network, libgit2 for objects in a private cache), the records runners write (leases,
//! results) and requesters write (cancels), and reading a request's state back. The
//! protocol itself is specified in `docs/PROTOCOL.md`.

pub mod archive;
pub mod busid;
pub mod clock;
pub mod doctor;
pub mod git;
pub mod github;
pub mod json;
pub mod layout;
pub mod lease;
pub mod manifest;
pub mod presence;
pub mod records;
pub mod sig;
pub mod status;
pub mod submit;
pub mod verify;
pub mod view;
