//! A requester's signing key as people hold it, and how it signs.
//!
//! A key file can be:
//!
//! * an unencrypted private key (ed25519, ECDSA, RSA): signs in this process;
//! * a public key (`.pub`) whose private half is in ssh-agent: signs through
//!   the agent. When the agent lacks it but the private file sits next to
//!   the `.pub` (as `ssh-keygen` writes them), that file is used instead;
//! * a passphrase-protected private key: signs through the agent when it is
//!   loaded there; otherwise `ssh-keygen` asks for the passphrase, but only
//!   on an interactive terminal, never in a daemon or a script;
//! * a security key (`sk-`) handle: signs through the agent, or through
//!   `ssh-keygen` with the device attached.
//!
//! Whatever signs, the signature is verified against the expected public key
//! before it is returned, so a misbehaving agent or tool cannot make us push
//! a request that runners would refuse.

use std::path::{Path, PathBuf};

use ssh_key::{PrivateKey, PublicKey};

use super::keys::{KeyFile, fingerprint, public_path, read_key_file};
use super::keytype::{check_key, is_security_key, key_type};
use super::openssh::{self, agent_view};
use super::{SigError, sshsig};

/// Something that signs records with an SSH key: an in-memory private key or
/// a [`RequesterKey`].
pub trait Signer {
    /// The key that signatures verify with.
    fn public_key(&self) -> &PublicKey;
    /// An armored SSHSIG over `message` in `namespace`.
    fn sign(&self, namespace: &str, message: &[u8]) -> Result<String, SigError>;
}

impl Signer for PrivateKey {
    fn public_key(&self) -> &PublicKey {
        PrivateKey::public_key(self)
    }

    fn sign(&self, namespace: &str, message: &[u8]) -> Result<String, SigError> {
        sshsig::sign(self, namespace, message)
    }
}

/// How a [`RequesterKey`] signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningPath {
    /// An unencrypted private key file, in this process.
    File,
    /// ssh-agent (`SSH_AUTH_SOCK`), through `ssh-keygen -Y sign`.
    Agent,
    /// `ssh-keygen -Y sign` with the key file: a passphrase prompt on this
    /// terminal, or a security key's touch.
    SshKeygen,
}

impl SigningPath {
    /// `file`, `ssh-agent` or `ssh-keygen`, as `doctor --json` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningPath::File => "file",
            SigningPath::Agent => "ssh-agent",
            SigningPath::SshKeygen => "ssh-keygen",
        }
    }
}

/// Whether `ssh-keygen` may ask for a passphrase (stdin is a terminal).
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveOptions {
    pub interactive: bool,
}

/// A requester's key, resolved to one way of signing.
#[derive(Debug)]
pub struct RequesterKey {
    public: PublicKey,
    how: How,
    note: String,
}

#[derive(Debug)]
enum How {
    InProcess(Box<PrivateKey>),
    Agent,
    SshKeygen { path: PathBuf, interactive: bool },
}

impl RequesterKey {
    /// Resolve the key file at `path` (see the module documentation).
    pub fn from_file(path: &Path, options: ResolveOptions) -> Result<Self, SigError> {
        let what = format!("key file {}", path.display());
        match read_key_file(path)? {
            KeyFile::Private(key) => Self::from_private(path, *key, options),
            KeyFile::Public(public) => {
                let agent = agent_view(&public);
                if agent.holds {
                    return Ok(Self::agent(public, agent.note));
                }
                if let Some(private) = sibling_private(path, &public) {
                    return Self::from_private(&private.0, private.1, options);
                }
                Err(SigError::KeyUnavailable(format!(
                    "{what} is a public key and its private half ({} {}) is not in ssh-agent: {}; \
                     load it with `ssh-add PRIVATE_KEY_FILE`, or pass the private key file",
                    key_type(public.key_data()),
                    fingerprint(&public),
                    agent.note
                )))
            }
        }
    }

    /// A key given only as its public half (git's `user.signingkey =
    /// key::ssh-ed25519 AAAA...`): it can only sign through the agent.
    pub fn from_public_key(public: PublicKey, what: &str) -> Result<Self, SigError> {
        check_key(what, public.key_data())?;
        let agent = agent_view(&public);
        if agent.holds {
            return Ok(Self::agent(public, agent.note));
        }
        Err(SigError::KeyUnavailable(format!(
            "{what} ({} {}) is not in ssh-agent: {}; load it with `ssh-add PRIVATE_KEY_FILE`",
            key_type(public.key_data()),
            fingerprint(&public),
            agent.note
        )))
    }

    /// An in-memory private key (tests, self-test).
    pub fn from_private_key(key: PrivateKey) -> Result<Self, SigError> {
        check_key("signing key", key.public_key().key_data())?;
        Ok(Self {
            public: key.public_key().clone(),
            how: How::InProcess(Box::new(key)),
            note: "in-memory key".to_owned(),
        })
    }

    fn from_private(
        path: &Path,
        key: PrivateKey,
        options: ResolveOptions,
    ) -> Result<Self, SigError> {
        let public = key.public_key().clone();
        let sk = is_security_key(public.key_data());
        if !key.is_encrypted() && !sk {
            return Ok(Self {
                public,
                how: How::InProcess(Box::new(key)),
                note: format!("unencrypted private key {}", path.display()),
            });
        }
        let agent = agent_view(&public);
        if agent.holds {
            return Ok(Self::agent(public, agent.note));
        }
        let what = if key.is_encrypted() {
            "passphrase-protected"
        } else {
            "security-key"
        };
        // A security key without a passphrase needs only a touch, which works
        // without a terminal; a passphrase needs one.
        if (sk && !key.is_encrypted()) || options.interactive {
            return Ok(Self {
                public,
                how: How::SshKeygen {
                    path: path.to_path_buf(),
                    interactive: options.interactive,
                },
                note: format!(
                    "{what} key {} signed by ssh-keygen ({})",
                    path.display(),
                    if key.is_encrypted() {
                        "it asks for the passphrase on this terminal"
                    } else {
                        "touch the device when it blinks"
                    }
                ),
            });
        }
        Err(SigError::KeyUnavailable(format!(
            "key file {} is passphrase-protected and its key ({} {}) is not in ssh-agent: {}; \
             run `ssh-add {}` first (macbridge asks for a passphrase only on an interactive \
             terminal)",
            path.display(),
            key_type(public.key_data()),
            fingerprint(&public),
            agent.note,
            path.display()
        )))
    }

    fn agent(public: PublicKey, note: String) -> Self {
        Self {
            public,
            how: How::Agent,
            note,
        }
    }

    /// How this key signs.
    pub fn signing_path(&self) -> SigningPath {
        match self.how {
            How::InProcess(_) => SigningPath::File,
            How::Agent => SigningPath::Agent,
            How::SshKeygen { .. } => SigningPath::SshKeygen,
        }
    }

    /// One sentence on where the key is and how it signs, for `doctor`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} signs via {}: {}",
            key_type(self.public.key_data()),
            fingerprint(&self.public),
            self.signing_path().as_str(),
            self.note
        )
    }
}

impl Signer for RequesterKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, namespace: &str, message: &[u8]) -> Result<String, SigError> {
        if namespace.is_empty() {
            return Err(SigError::EmptyNamespace);
        }
        let armored = match &self.how {
            How::InProcess(key) => return sshsig::sign(key, namespace, message),
            How::Agent => openssh::sign_with_agent(&self.public, namespace, message)?,
            How::SshKeygen { path, interactive } => {
                openssh::sign_with_key_file(path, namespace, message, *interactive)?
            }
        };
        let signer = sshsig::verify(&armored, namespace, message)?;
        if signer.key_data() != self.public.key_data() {
            return Err(SigError::External {
                action: "the signature OpenSSH produced does not verify",
                detail: format!(
                    "made by {} instead of {}",
                    fingerprint(&signer),
                    fingerprint(&self.public)
                ),
            });
        }
        Ok(armored)
    }
}

/// `KEY` next to `KEY.pub`, when it is a private key with the same public half.
fn sibling_private(public_file: &Path, public: &PublicKey) -> Option<(PathBuf, PrivateKey)> {
    let name = public_file.to_str()?.strip_suffix(".pub")?;
    let private = PathBuf::from(name);
    debug_assert_eq!(public_path(&private), public_file);
    match read_key_file(&private).ok()? {
        KeyFile::Private(key) if key.public_key().key_data() == public.key_data() => {
            Some((private, *key))
        }
        _ => None,
    }
}
