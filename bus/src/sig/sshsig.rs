//! OpenSSH `SSHSIG` signatures, byte-compatible with `ssh-keygen -Y sign`.
//!
//! A signature covers H(message) together with a namespace (PROTOCOL.sshsig),
//! so a signature made for one purpose (a request) is useless for another (a
//! result, a git commit). We sign with sha512, as `ssh-keygen` does by
//! default; ed25519 signatures are deterministic, so for the same key,
//! namespace and message our armored output is byte-identical to
//! `ssh-keygen -Y sign`. RSA keys sign `rsa-sha2-512`, as `ssh-keygen` does.
//!
//! Key types are those of [`super::keytype`]; security-key (`sk-`) signatures
//! verify here but are only ever made by OpenSSH with the device attached.
//!
//! [`verify`] checks only that the signature is well-formed, is in the
//! expected namespace and matches the message; it returns the signer's key.
//! Whether that key may sign anything is the job of
//! [`AllowedSigners::authorize`](super::AllowedSigners::authorize).

use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::SigError;
use super::keytype::{check_key, is_security_key, key_type};

/// The user-presence bit of a security-key signature's flags (PROTOCOL.u2f).
const SK_USER_PRESENT: u8 = 0x01;
/// A security-key signature ends with `byte flags, uint32 counter`.
const SK_TRAILER: usize = 5;

/// An ed25519 SSHSIG is about 300 bytes armored, an RSA-4096 one about
/// 1.5 KiB. The cap bounds the work an
/// attacker can make us do with a crafted signature file on the bus.
pub const MAX_ARMORED_SIGNATURE: usize = 16 * 1024;

/// Signs `message` in `namespace` with sha512, returning the armored
/// `-----BEGIN SSH SIGNATURE-----` text (LF line endings, trailing newline),
/// exactly as `ssh-keygen -Y sign -n NAMESPACE` writes it.
pub fn sign(key: &PrivateKey, namespace: &str, message: &[u8]) -> Result<String, SigError> {
    if namespace.is_empty() {
        return Err(SigError::EmptyNamespace);
    }
    let what = format!("signing key {:?}", key.comment());
    check_key(&what, key.public_key().key_data())?;
    if is_security_key(key.public_key().key_data()) {
        return Err(SigError::SecurityKeyFile { what });
    }
    if key.is_encrypted() {
        return Err(SigError::Crypto {
            action: "cannot sign",
            detail: "the private key is still encrypted".to_owned(),
        });
    }
    let sig = match key.key_data() {
        ssh_key::private::KeypairData::Rsa(rsa) => rsa_sign(rsa, namespace, message)?,
        _ => key
            .sign(namespace, HashAlg::Sha512, message)
            .map_err(|e| SigError::Crypto {
                action: "cannot sign",
                detail: e.to_string(),
            })?,
    };
    let mut armored = sig.to_pem(LineEnding::LF).map_err(|e| SigError::Crypto {
        action: "cannot encode the signature",
        detail: e.to_string(),
    })?;
    if !armored.ends_with('\n') {
        armored.push('\n');
    }
    Ok(armored)
}

/// `rsa-sha2-512` SSHSIG with a private key assembled here from its components (see the
/// note on the `rsa` dependency in bus/Cargo.toml).
fn rsa_sign(
    keypair: &ssh_key::private::RsaKeypair,
    namespace: &str,
    message: &[u8],
) -> Result<SshSig, SigError> {
    use rsa::signature::{SignatureEncoding, Signer};
    let crypto = |detail: String| SigError::Crypto {
        action: "cannot sign with the RSA key",
        detail,
    };
    let int = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or_else(|| crypto("a key component is not a positive integer".to_owned()))
    };
    let private = rsa::RsaPrivateKey::from_components(
        int(&keypair.public.n)?,
        int(&keypair.public.e)?,
        int(&keypair.private.d)?,
        vec![int(&keypair.private.p)?, int(&keypair.private.q)?],
    )
    .map_err(|e| crypto(e.to_string()))?;
    let signed = SshSig::signed_data(namespace, HashAlg::Sha512, message)
        .map_err(|e| crypto(e.to_string()))?;
    let raw = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha512>::new(private)
        .try_sign(&signed)
        .map_err(|e| crypto(e.to_string()))?;
    let signature = ssh_key::Signature::new(
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        raw.to_vec(),
    )
    .map_err(|e| crypto(e.to_string()))?;
    let public = ssh_key::public::KeyData::Rsa(keypair.public.clone());
    SshSig::new(public, namespace, HashAlg::Sha512, signature).map_err(|e| crypto(e.to_string()))
}

/// Verifies an armored SSHSIG over `message` in `namespace` and returns the
/// signer's public key (without comment).
///
/// Refuses, in this order: oversized input, unparseable armor, unsupported
/// key types (and RSA outside 2048-4096 bits), a signature algorithm that
/// does not fit the key (only `rsa-sha2-512` for RSA), a different namespace,
/// hashes other than sha256/sha512, security-key signatures without the
/// user-presence flag, and a signature that does not match the message. Surrounding whitespace and CRLF
/// line endings are tolerated, since signature files pass through editors and
/// git checkouts.
pub fn verify(armored: &str, namespace: &str, message: &[u8]) -> Result<PublicKey, SigError> {
    if armored.len() > MAX_ARMORED_SIGNATURE {
        return Err(SigError::SignatureTooLarge {
            len: armored.len(),
            max: MAX_ARMORED_SIGNATURE,
        });
    }
    if namespace.is_empty() {
        return Err(SigError::EmptyNamespace);
    }
    let mut normalized = armored.trim().replace("\r\n", "\n");
    normalized.push('\n');
    let sig =
        SshSig::from_pem(&normalized).map_err(|e| SigError::MalformedSignature(e.to_string()))?;

    let key_data = sig.public_key();
    check_key("the signature's key", key_data).map_err(|e| match e {
        SigError::UnsupportedKey { algorithm, .. } => {
            SigError::UnsupportedSignatureKey { algorithm }
        }
        other => other,
    })?;
    let expected = match key_data.algorithm() {
        Algorithm::Rsa { .. } => Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        other => other,
    };
    if sig.algorithm() != expected {
        return Err(SigError::SignatureAlgorithm {
            found: sig.algorithm().as_str().to_owned(),
            key_type: key_type(key_data),
            expected: expected.as_str().to_owned(),
        });
    }
    if sig.namespace() != namespace {
        return Err(SigError::NamespaceMismatch {
            found: sig.namespace().to_owned(),
            expected: namespace.to_owned(),
        });
    }
    match sig.hash_alg() {
        HashAlg::Sha256 | HashAlg::Sha512 => {}
        other => return Err(SigError::UnsupportedHash(other.as_str().to_owned())),
    }
    if is_security_key(key_data) {
        let bytes = sig.signature_bytes();
        let flags = bytes
            .len()
            .checked_sub(SK_TRAILER)
            .map(|at| bytes[at])
            .ok_or_else(|| {
                SigError::MalformedSignature("truncated security-key signature".into())
            })?;
        if flags & SK_USER_PRESENT == 0 {
            return Err(SigError::NoUserPresence { flags });
        }
    }
    let key = PublicKey::from(key_data.clone());
    key.verify(namespace, message, &sig)
        .map_err(|_| SigError::BadSignature)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sig::{REQUEST_NAMESPACE, RESULT_NAMESPACE, generate_ed25519};

    #[test]
    fn sign_then_verify_round_trips_and_returns_the_signer() -> Result<(), SigError> {
        let key = generate_ed25519("t")?;
        let armored = sign(&key, REQUEST_NAMESPACE, b"hello")?;
        assert!(armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"));
        assert!(armored.ends_with("-----END SSH SIGNATURE-----\n"));
        let signer = verify(&armored, REQUEST_NAMESPACE, b"hello")?;
        assert_eq!(signer.key_data(), key.public_key().key_data());
        Ok(())
    }

    #[test]
    fn wrong_namespace_and_tampering_are_refused() -> Result<(), SigError> {
        let key = generate_ed25519("t")?;
        let armored = sign(&key, REQUEST_NAMESPACE, b"hello")?;
        match verify(&armored, RESULT_NAMESPACE, b"hello") {
            Err(e @ SigError::NamespaceMismatch { .. }) => assert_eq!(
                e.to_string(),
                "signature namespace is \"macbridge-request-v1\", expected \"macbridge-result-v1\""
            ),
            other => panic!("expected a namespace mismatch, got {other:?}"),
        }
        assert!(matches!(
            verify(&armored, REQUEST_NAMESPACE, b"hellO"),
            Err(SigError::BadSignature)
        ));
        Ok(())
    }

    #[test]
    fn crlf_and_surrounding_whitespace_are_tolerated() -> Result<(), SigError> {
        let key = generate_ed25519("t")?;
        let armored = sign(&key, REQUEST_NAMESPACE, b"x")?;
        let crlf = format!("\n  {}\r\n", armored.trim_end().replace('\n', "\r\n"));
        verify(&crlf, REQUEST_NAMESPACE, b"x")?;
        Ok(())
    }

    #[test]
    fn garbage_oversize_and_empty_namespace_are_refused() -> Result<(), SigError> {
        assert!(matches!(
            verify("not a signature", REQUEST_NAMESPACE, b""),
            Err(SigError::MalformedSignature(_))
        ));
        let huge = "A".repeat(MAX_ARMORED_SIGNATURE + 1);
        assert!(matches!(
            verify(&huge, REQUEST_NAMESPACE, b""),
            Err(SigError::SignatureTooLarge { .. })
        ));
        let key = generate_ed25519("t")?;
        assert!(matches!(sign(&key, "", b""), Err(SigError::EmptyNamespace)));
        Ok(())
    }

    #[test]
    fn signatures_are_deterministic() -> Result<(), SigError> {
        let key = generate_ed25519("t")?;
        assert_eq!(
            sign(&key, RESULT_NAMESPACE, b"m")?,
            sign(&key, RESULT_NAMESPACE, b"m")?
        );
        Ok(())
    }
}
