//! SSH signatures for the bus: who may ask a runner for what, and how a
//! requester can tell that a result really came from a runner.
//!
//! Everything here speaks OpenSSH's formats so that people can use the keys,
//! agents and tools they already have:
//!
//! * [`sshsig`]: OpenSSH `SSHSIG` signatures (`ssh-keygen -Y sign` /
//!   `-Y verify`) over exact bytes, ed25519 only. The namespace is what stops
//!   a signed request from doubling as a signed result, commit or file, so
//!   every kind of signed record has its own namespace constant below.
//! * [`keys`]: generating, writing and loading OpenSSH ed25519 key files.
//! * [`allowed_signers`]: git's / OpenSSH's `allowed_signers` file, which maps
//!   keys to principals, optionally restricted to namespaces and validity
//!   windows.
//! * [`policy`]: which presets each principal may request.
//!
//! The verification order a runner should follow is: [`verify`] the
//! signature over the committed bytes (this yields the signer's key), then
//! [`AllowedSigners::authorize`] the key for the namespace at the current time
//! (this yields principals), then [`Policy::allows`] the requested preset for
//! those principals. Only then parse and act on the bytes.

pub mod allowed_signers;
mod error;
pub mod keys;
mod pattern;
pub mod policy;
pub mod sshsig;

pub use allowed_signers::{AllowedSigners, SignerEntry};
pub use error::SigError;
pub use keys::{
    fingerprint, generate_ed25519, load_private_key, load_public_key, public_key_line,
    write_keypair,
};
pub use policy::Policy;
pub use sshsig::{sign, verify};

/// Namespace of signatures over request manifests (`request.json`).
pub const REQUEST_NAMESPACE: &str = "macbridge-request-v1";
/// Namespace of runner signatures over results (`result.json`).
pub const RESULT_NAMESPACE: &str = "macbridge-result-v1";
/// Namespace of requester signatures over cancel records.
pub const CANCEL_NAMESPACE: &str = "macbridge-cancel-v1";
/// Namespace of runner signatures over claim records.
pub const CLAIM_NAMESPACE: &str = "macbridge-claim-v1";
/// Namespace of runner signatures over presence records (`runner.json`).
pub const PRESENCE_NAMESPACE: &str = "macbridge-runner-v1";
