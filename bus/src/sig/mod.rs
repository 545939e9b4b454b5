//! SSH signatures for the bus: who may ask a runner for what, and how a
//! requester can tell that a result really came from a runner.
//!
//! Everything here speaks OpenSSH's formats so that people can use the keys,
//! agents and tools they already have:
//!
//! * [`sshsig`]: OpenSSH `SSHSIG` signatures (`ssh-keygen -Y sign` /
//!   `-Y verify`) over exact bytes. The namespace is what stops a signed
//!   request from doubling as a signed result, commit or file, so every kind
//!   of signed record has its own namespace constant below.
//! * [`keytype`]: the key types accepted (ed25519, ECDSA P-256/P-384, RSA
//!   2048-4096, security keys) and their checks.
//! * [`keys`]: generating (ed25519), writing and loading OpenSSH key files.
//! * [`requester`]: a requester's key as people hold it (a file, ssh-agent,
//!   a passphrase-protected key, a security key) and the [`Signer`] trait;
//!   [`openssh`] runs `ssh-add` / `ssh-keygen -Y sign` for the paths that
//!   need OpenSSH.
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
pub mod keytype;
pub mod openssh;
mod pattern;
pub mod policy;
pub mod requester;
pub mod sshsig;

pub use allowed_signers::{AllowedSigners, SignerEntry};
pub use error::SigError;
pub use keys::{
    KeyFile, fingerprint, generate_ed25519, load_private_key, load_public_key, parse_public_text,
    public_key_line, read_key_file, write_keypair,
};
pub use keytype::{SUPPORTED_KEY_TYPES, key_type};
pub use policy::Policy;
pub use requester::{RequesterKey, ResolveOptions, Signer, SigningPath};
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
