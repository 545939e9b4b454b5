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

    /// The private key is encrypted: it cannot be loaded into this process.
    #[error(
        "key file {} is passphrase-protected and cannot be loaded directly; \
         load it into ssh-agent (`ssh-add FILE`) and pass the key (or its .pub) as the signing key, \
         or use a dedicated unencrypted key (`ssh-keygen -t ed25519 -N '' -f FILE`)",
        path.display()
    )]
    Encrypted { path: PathBuf },

    /// A security-key private file holds a handle, not a key: only OpenSSH
    /// with the hardware attached can sign with it.
    #[error(
        "{what} is a security-key (sk-) handle: it signs through ssh-agent or `ssh-keygen -Y sign` \
         with the device attached, not in this process"
    )]
    SecurityKeyFile { what: String },

    /// An RSA key outside the accepted size range.
    #[error(
        "{what} is a {bits}-bit RSA key; macbridge accepts RSA keys of 2048 to 4096 bits \
         (RSA under 2048 bits can be factored; make an ed25519 key: `ssh-keygen -t ed25519`)"
    )]
    RsaKeySize { what: String, bits: usize },

    /// The signing key (or its private half) is not available to sign with.
    #[error("{0}")]
    KeyUnavailable(String),

    /// `ssh-keygen` or `ssh-add` could not be run or failed.
    #[error("{action}: {detail}")]
    External {
        action: &'static str,
        detail: String,
    },

    /// The file exists but does not hold a key in a format we read.
    #[error("{what} is not a usable OpenSSH key: {detail}")]
    KeyFormat { what: String, detail: String },

    /// A key type macbridge does not accept (see `keytype::SUPPORTED_KEY_TYPES`).
    #[error(
        "{what} is a {algorithm} key; macbridge accepts ssh-ed25519, ecdsa-sha2-nistp256, \
         ecdsa-sha2-nistp384, ssh-rsa (2048-4096 bits), sk-ssh-ed25519@openssh.com and \
         sk-ecdsa-sha2-nistp256@openssh.com keys"
    )]
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
    #[error(
        "signature was made with a {algorithm} key; accepted: ssh-ed25519, ecdsa-sha2-nistp256/384, \
         ssh-rsa (2048-4096 bits), sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com"
    )]
    UnsupportedSignatureKey { algorithm: String },

    /// The signature algorithm does not fit the key (e.g. SHA-1 `ssh-rsa`).
    #[error(
        "signature algorithm {found} is not accepted for a {key_type} key (expected {expected})"
    )]
    SignatureAlgorithm {
        found: String,
        key_type: String,
        expected: String,
    },

    /// A security-key signature made without the user touching the device.
    #[error(
        "security-key signature lacks the user-presence flag (flags {flags:#04x}): \
         the key was not touched, so the signature is refused"
    )]
    NoUserPresence { flags: u8 },

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

    /// The policy lets the signer's principals request this preset, but not
    /// with a key of this type.
    #[error(
        "{} {} may not sign with {key_type} keys (the policy's key_types for them: {})",
        if principals.len() == 1 { "principal" } else { "principals" },
        display_list(principals),
        allowed.join(", ")
    )]
    KeyTypeNotAllowed {
        principals: Vec<String>,
        key_type: String,
        allowed: Vec<String>,
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
