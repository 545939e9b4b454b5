//! Which OpenSSH key types macbridge accepts for signing and verifying, and
//! the checks that go with each type.
//!
//! Accepted: `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ecdsa-sha2-nistp384`,
//! `ssh-rsa` (2048 to 4096 bits, `rsa-sha2-512` signatures only),
//! `sk-ssh-ed25519@openssh.com` and `sk-ecdsa-sha2-nistp256@openssh.com`
//! (security keys; every signature must carry the user-presence flag).
//!
//! Refused: DSA (broken), ECDSA P-521 (rare, and one curve fewer to audit),
//! RSA under 2048 bits (factorable), RSA over 4096 bits (the RSA library
//! refuses to verify them, so accepting them would only move the error), and
//! `ssh-rsa` (SHA-1) or `rsa-sha2-256` signatures.

use ssh_key::public::KeyData;
use ssh_key::{Algorithm, EcdsaCurve};

use super::SigError;

/// Key type names accepted everywhere, as they appear in `.pub` files,
/// `allowed_signers` and the policy's `key_types`.
pub const SUPPORTED_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the `rsa` crate's verification limit).
pub const MAX_RSA_BITS: usize = 4096;

/// The key type name of `key` (`ssh-ed25519`, `ssh-rsa`, ...).
pub fn key_type(key: &KeyData) -> String {
    key.algorithm().as_str().to_owned()
}

/// Whether `key` lives on a security key (FIDO authenticator): its private
/// half is a handle that only the hardware (through OpenSSH) can use.
pub fn is_security_key(key: &KeyData) -> bool {
    matches!(
        key.algorithm(),
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256
    )
}

/// Refuses key types macbridge does not accept, and RSA keys of the wrong size.
/// `what` names the key in the message ("key file ~/.ssh/id_rsa").
pub fn check_key(what: &str, key: &KeyData) -> Result<(), SigError> {
    let supported = match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256 => true,
        Algorithm::Ecdsa { curve } => matches!(curve, EcdsaCurve::NistP256 | EcdsaCurve::NistP384),
        Algorithm::Rsa { .. } => {
            let bits = key.rsa().map(|k| mpint_bits(k.n.as_bytes())).unwrap_or(0);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(SigError::RsaKeySize {
                    what: what.to_owned(),
                    bits,
                });
            }
            true
        }
        _ => false,
    };
    if supported {
        Ok(())
    } else {
        Err(SigError::UnsupportedKey {
            what: what.to_owned(),
            algorithm: key_type(key),
        })
    }
}

/// Bits in a big-endian two's-complement integer (OpenSSH `mpint` body),
/// ignoring leading zero bytes.
fn mpint_bits(bytes: &[u8]) -> usize {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => return 0,
    };
    trimmed.len() * 8 - trimmed[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpint_bits_counts_significant_bits() {
        assert_eq!(mpint_bits(&[]), 0);
        assert_eq!(mpint_bits(&[0, 0]), 0);
        assert_eq!(mpint_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(mpint_bits(&[0x01]), 1);
        assert_eq!(mpint_bits(&[0x00, 0x7f, 0xff]), 15);
    }
}
