//! The one error type of the signing module.
//!
//! Messages are written for the person who has to fix the problem (a
//! requester whose request was refused, an operator editing
//! `allowed_signers`), so each one says what was found and what was expected.

use std::path::PathBuf;

/// Everything that can go wrong while handling keys, signatures,
/// `allowed_signers` files and policies.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigError {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing, e.g. "cannot read key file".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `write_keypair` never overwrites keys: losing a private key is not
    /// recoverable.
    #[error("refusing to overwrite existing file {}", path.display())]
    AlreadyExists { path: PathBuf },

    /// A file that is not big enough to be a key/signers file legitimately.
    #[error("{} is too large ({len} bytes, limit {max})", path.display())]
    FileTooLarge { path: PathBuf, len: u64, max: u64 },

    /// The private key is encrypted and we cannot prompt for a passphrase.
    #[error(
        "key file {} is passphrase-protected: macbridge cannot prompt for passphrases; \
         sign through ssh-agent (`ssh-keygen -Y sign` with the key loaded in the agent) \
         or use a dedicated unencrypted ed25519 key (`ssh-keygen -t ed25519 -N '' -f FILE`)",
        path.display()
    )]
    Encrypted { path: PathBuf },

    /// The file exists but does not hold a key in a format we read.
    #[error("{what} is not a usable OpenSSH key: {detail}")]
    KeyFormat { what: String, detail: String },

    /// Only ssh-ed25519 keys are accepted anywhere in macbridge.
    #[error("{what} is a {algorithm} key; macbridge only accepts ssh-ed25519 keys")]
    UnsupportedKey { what: String, algorithm: String },

    /// Key generation or encoding failed inside the SSH library.
    #[error("{action}: {detail}")]
    Crypto {
        action: &'static str,
        detail: String,
    },

    /// The armored signature is larger than any real ed25519 signature.
    #[error("SSH signature is {len} bytes, larger than the {max}-byte limit")]
    SignatureTooLarge { len: usize, max: usize },

    /// The armored signature could not be parsed.
    #[error("malformed SSH signature: {0}")]
    MalformedSignature(String),

    /// A signature made for another purpose (another namespace).
    #[error("signature namespace is {found:?}, expected {expected:?}")]
    NamespaceMismatch { found: String, expected: String },

    /// The signature was made with a key type we do not accept.
    #[error("signature was made with a {algorithm} key; only ssh-ed25519 signatures are accepted")]
    UnsupportedSignatureKey { algorithm: String },

    /// The signature uses a hash we do not accept.
    #[error("signature uses hash algorithm {0}; only sha256 and sha512 are accepted")]
    UnsupportedHash(String),

    /// The signature does not cover these bytes with this key.
    #[error(
        "signature verification failed: the signed bytes were modified or the signature is corrupt"
    )]
    BadSignature,

    /// An empty namespace is not allowed by the SSHSIG format.
    #[error("signature namespace must not be empty")]
    EmptyNamespace,

    /// A syntax error in an `allowed_signers` file.
    #[error("{origin}:{line}: {message}")]
    AllowedSignersSyntax {
        /// File path, or "allowed_signers" when parsed from a string.
        origin: String,
        line: usize,
        message: String,
    },

    /// The signing key is not in `allowed_signers` at all.
    #[error("key {fingerprint} is not listed in allowed_signers")]
    UnknownKey { fingerprint: String },

    /// The key is listed, but its `namespaces=` option excludes this one.
    #[error(
        "key {fingerprint} (allowed_signers line {line}) may not sign in namespace {namespace:?}; \
         it is restricted to namespaces=\"{allowed}\""
    )]
    NamespaceNotAllowed {
        fingerprint: String,
        namespace: String,
        allowed: String,
        line: usize,
    },

    /// `valid-after` is in the future.
    #[error("key {fingerprint} (allowed_signers line {line}) is not valid until {valid_after}")]
    KeyNotYetValid {
        fingerprint: String,
        valid_after: String,
        line: usize,
    },

    /// `valid-before` is in the past.
    #[error("key {fingerprint} (allowed_signers line {line}) expired at {valid_before}")]
    KeyExpired {
        fingerprint: String,
        valid_before: String,
        line: usize,
    },

    /// A syntax or schema error in a policy file.
    #[error("{origin}: {message}")]
    PolicySyntax { origin: String, message: String },

    /// The policy does not let any of the signer's principals request this preset.
    #[error(
        "{} {} may not request {} preset {preset:?}{}",
        if principals.len() == 1 { "principal" } else { "principals" },
        display_list(principals),
        if *workload { "workload" } else { "engine" },
        if *workload { " (workload presets need `workload: true` and the preset listed or \"*\")" } else { "" }
    )]
    PresetNotAllowed {
        principals: Vec<String>,
        preset: String,
        workload: bool,
    },
}

/// Formats principals for messages: quoted, comma-separated, "(none)" if empty.
fn display_list(items: &[String]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
