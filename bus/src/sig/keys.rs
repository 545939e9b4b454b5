//! OpenSSH key files: generate, write, load, fingerprint.
//!
//! `keygen` makes ed25519 keys only: it is the default of `ssh-keygen`, its
//! signatures are deterministic and small. Loading accepts every type in
//! [`super::keytype`] (ed25519, ECDSA P-256/P-384, RSA 2048-4096, and the
//! public halves of security keys), since requesters sign with the keys they
//! already hold.
//!
//! Encrypted (passphrase-protected) private keys are never decrypted here:
//! their public half is read in the clear, and signing goes through ssh-agent
//! or `ssh-keygen -Y sign` (see [`super::requester`]). A runner daemon cannot
//! prompt for a passphrase, so its key must be unencrypted.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};

use super::SigError;
use super::keytype::{SUPPORTED_KEY_TYPES, check_key, is_security_key};

/// Key files are a few hundred bytes; the cap stops a misconfigured path
/// (a log, a disk image) from being read into memory.
const MAX_KEY_FILE: u64 = 64 * 1024;

const OPENSSH_PRIVATE_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// Generates a fresh ed25519 key pair from the operating system's RNG.
pub fn generate_ed25519(comment: &str) -> Result<PrivateKey, SigError> {
    let mut key =
        PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(|e| SigError::Crypto {
            action: "cannot generate an ed25519 key",
            detail: e.to_string(),
        })?;
    key.set_comment(comment);
    Ok(key)
}

/// Writes `key` as an OpenSSH private key at `path` (mode 0600) and its
/// public half at `path.pub`, the layout `ssh-keygen` uses.
///
/// Both files are created exclusively: an existing file at either path is an
/// error, because overwriting a private key destroys an identity that
/// allowed_signers files elsewhere may still trust. If the public file cannot
/// be written, the private file just created is removed again, so a failed
/// call leaves nothing behind.
pub fn write_keypair(path: &Path, key: &PrivateKey) -> Result<(), SigError> {
    require_ed25519(&format!("key {:?}", key.comment()), key.algorithm())?;
    let pub_path = public_path(path);
    if fs::symlink_metadata(&pub_path).is_ok() {
        return Err(SigError::AlreadyExists { path: pub_path });
    }
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| SigError::Crypto {
            action: "cannot encode the private key",
            detail: e.to_string(),
        })?;
    let mut line = public_line_with_comment(key.public_key())?;
    line.push('\n');

    write_new(path, pem.as_bytes(), 0o600)?;
    if let Err(err) = write_new(&pub_path, line.as_bytes(), 0o644) {
        // Best effort: we created this file a moment ago and nobody else can
        // have a use for a private key whose public half was never written.
        let _ = fs::remove_file(path);
        return Err(err);
    }
    Ok(())
}

/// A key file as found on disk: a private key (possibly encrypted, possibly a
/// security-key handle) or only a public key line.
#[derive(Debug, Clone)]
pub enum KeyFile {
    Private(Box<PrivateKey>),
    Public(PublicKey),
}

impl KeyFile {
    /// The public key, which both forms carry in the clear.
    pub fn public_key(&self) -> &PublicKey {
        match self {
            KeyFile::Private(key) => key.public_key(),
            KeyFile::Public(key) => key,
        }
    }
}

/// Reads a private or public OpenSSH key file of a supported type without
/// decrypting anything.
pub fn read_key_file(path: &Path) -> Result<KeyFile, SigError> {
    let text = read_capped(path, "cannot read key file")?;
    let what = format!("key file {}", path.display());
    let file = if text.contains(OPENSSH_PRIVATE_BEGIN) {
        warn_if_exposed(path);
        KeyFile::Private(Box::new(parse_private(path, &text)?))
    } else {
        KeyFile::Public(parse_public_text(&what, &text)?)
    };
    check_key(&what, file.public_key().key_data())?;
    Ok(file)
}

/// Parses the first public key line of `text` (`ssh-ed25519 AAAA... [comment]`),
/// skipping blank lines and `#` comments.
pub fn parse_public_text(what: &str, text: &str) -> Result<PublicKey, SigError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| SigError::KeyFormat {
            what: what.to_owned(),
            detail: "the file is empty".to_owned(),
        })?;
    if line.starts_with("-----BEGIN") {
        return Err(unsupported_pem(what, line));
    }
    PublicKey::from_openssh(line).map_err(|e| SigError::KeyFormat {
        what: what.to_owned(),
        detail: format!("expected a public key line `TYPE AAAA... [comment]`: {e}"),
    })
}

/// Loads an unencrypted OpenSSH private key that can sign in this process
/// (ed25519, ECDSA P-256/P-384, RSA 2048-4096; not a security key).
///
/// Logs a warning when the file is readable by group or others: OpenSSH
/// refuses such files outright; we only warn because the key may live on a
/// filesystem without Unix permissions (a CI secret mount, for instance).
pub fn load_private_key(path: &Path) -> Result<PrivateKey, SigError> {
    let text = read_capped(path, "cannot read key file")?;
    warn_if_exposed(path);
    let key = parse_private(path, &text)?;
    let what = format!("key file {}", path.display());
    check_key(&what, key.public_key().key_data())?;
    if key.is_encrypted() {
        return Err(SigError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    if is_security_key(key.public_key().key_data()) {
        return Err(SigError::SecurityKeyFile { what });
    }
    Ok(key)
}

/// Loads a public key from a `.pub` file (`ssh-ed25519 AAAA... [comment]`)
/// or from an OpenSSH private key file, whose public half is stored in the
/// clear even when the key is passphrase-protected.
pub fn load_public_key(path: &Path) -> Result<PublicKey, SigError> {
    Ok(read_key_file(path)?.public_key().clone())
}

/// The SHA-256 fingerprint in the form `ssh-keygen -lf` prints:
/// `SHA256:` followed by unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `ssh-ed25519 AAAA...` without the comment, for embedding in records: the
/// comment is free text chosen by the key's owner and is not part of the
/// identity.
pub fn public_key_line(key: &PublicKey) -> String {
    match PublicKey::new(key.key_data().clone(), "").to_openssh() {
        Ok(line) => line,
        // Encoding an in-memory key only fails for key types the library
        // cannot serialise; such a key could never have been loaded or
        // verified here, so the fingerprint is an adequate stand-in.
        Err(e) => {
            tracing::error!(error = %e, "cannot encode public key");
            fingerprint(key)
        }
    }
}

/// `PATH.pub`, appending to the full file name as `ssh-keygen` does.
pub(crate) fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub(crate) fn require_ed25519(what: &str, algorithm: Algorithm) -> Result<(), SigError> {
    if algorithm == Algorithm::Ed25519 {
        Ok(())
    } else {
        Err(SigError::UnsupportedKey {
            what: what.to_owned(),
            algorithm: algorithm.as_str().to_owned(),
        })
    }
}

fn public_line_with_comment(key: &PublicKey) -> Result<String, SigError> {
    key.to_openssh().map_err(|e| SigError::Crypto {
        action: "cannot encode the public key",
        detail: e.to_string(),
    })
}

/// Parses an OpenSSH private key, turning the other key formats people have
/// lying around into errors that name the format.
fn parse_private(path: &Path, text: &str) -> Result<PrivateKey, SigError> {
    let what = format!("key file {}", path.display());
    let trimmed = text.trim_start();
    if !trimmed.starts_with(OPENSSH_PRIVATE_BEGIN) {
        if trimmed.starts_with("-----BEGIN") {
            let first = trimmed.lines().next().unwrap_or_default();
            return Err(unsupported_pem(&what, first));
        }
        let detail = if trimmed.starts_with("ssh-") || trimmed.starts_with("sk-") {
            "this is a public key; a private key file is needed to sign".to_owned()
        } else {
            format!("expected a file starting with {OPENSSH_PRIVATE_BEGIN}")
        };
        return Err(SigError::KeyFormat { what, detail });
    }
    PrivateKey::from_openssh(trimmed).map_err(|e| match private_key_algorithm(trimmed) {
        // The library refuses some types it does not support (P-521, DSA) with a format
        // error; name the type instead, as the public-key path does.
        Some(algorithm) if !SUPPORTED_KEY_TYPES.contains(&algorithm.as_str()) => {
            SigError::UnsupportedKey { what, algorithm }
        }
        _ => SigError::KeyFormat {
            what,
            detail: e.to_string(),
        },
    })
}

/// The algorithm name of the first key in an `openssh-key-v1` file, read from its clear
/// header (magic, cipher, kdf, kdf options, key count, then the public key blob whose first
/// field is the algorithm). None when the file is not shaped like one.
fn private_key_algorithm(armored: &str) -> Option<String> {
    use base64ct::{Base64, Encoding};
    let body: String = armored
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    let bytes = Base64::decode_vec(&body).ok()?;
    let mut rest = bytes.strip_prefix(b"openssh-key-v1\0".as_slice())?;
    let field = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + len)?.to_vec();
        *rest = rest.get(4 + len..)?;
        Some(value)
    };
    for _ in 0..3 {
        field(&mut rest)?;
    }
    rest = rest.get(4..)?;
    let blob = field(&mut rest)?;
    let mut blob = blob.as_slice();
    let name = field(&mut blob)?;
    String::from_utf8(name).ok()
}

fn unsupported_pem(what: &str, first_line: &str) -> SigError {
    SigError::KeyFormat {
        what: what.to_owned(),
        detail: format!(
            "{first_line} is not supported; only OpenSSH-format keys \
             (as written by `ssh-keygen`, or converted with `ssh-keygen -p -f FILE`) can be used"
        ),
    }
}

/// Reads a small text file, refusing anything over [`MAX_KEY_FILE`].
fn read_capped(path: &Path, action: &'static str) -> Result<String, SigError> {
    let io_err = |source| SigError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    let len = bytes.len() as u64;
    if len > MAX_KEY_FILE {
        return Err(SigError::FileTooLarge {
            path: path.to_path_buf(),
            len,
            max: MAX_KEY_FILE,
        });
    }
    String::from_utf8(bytes).map_err(|_| SigError::KeyFormat {
        what: format!("key file {}", path.display()),
        detail: "the file is not UTF-8 text".to_owned(),
    })
}

/// Creates `path` exclusively with `mode` (Unix) and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == ErrorKind::AlreadyExists {
            SigError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            SigError::Io {
                action: "cannot create",
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| SigError::Io {
            action: "cannot write",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(unix)]
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "private key file is readable by group or others; run `chmod 600` on it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_exposed(_path: &Path) {}

#[cfg(test)]
mod header_tests {
    use base64ct::{Base64, Encoding};

    fn string(out: &mut Vec<u8>, value: &[u8]) {
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }

    #[test]
    fn the_algorithm_is_read_from_the_clear_header() {
        let mut blob = Vec::new();
        string(&mut blob, b"ecdsa-sha2-nistp521");
        string(&mut blob, b"nistp521");
        let mut file = b"openssh-key-v1\0".to_vec();
        for field in [b"none".as_slice(), b"none", b""] {
            string(&mut file, field);
        }
        file.extend_from_slice(&1u32.to_be_bytes());
        string(&mut file, &blob);
        let armored = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            Base64::encode_string(&file)
        );
        assert_eq!(
            super::private_key_algorithm(&armored).as_deref(),
            Some("ecdsa-sha2-nistp521")
        );
        assert_eq!(super::private_key_algorithm("garbage"), None);
        let truncated = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            Base64::encode_string(&file[..20])
        );
        assert_eq!(super::private_key_algorithm(&truncated), None);
    }
}
