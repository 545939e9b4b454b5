//! Security-key (`sk-`) SSH signatures made in software, byte for byte as OpenSSH writes them
//! after a FIDO authenticator signed, so that runners can be tested without hardware.
//!
//! The formats (OpenSSH PROTOCOL.sshsig and PROTOCOL.u2f):
//!
//! * public key blob: `string "sk-ssh-ed25519@openssh.com", string pk[32], string application`
//!   or `string "sk-ecdsa-sha2-nistp256@openssh.com", string "nistp256", string Q (65 bytes,
//!   uncompressed), string application`;
//! * SSHSIG signed data: `"SSHSIG" || string namespace || string "" || string "sha512" ||
//!   string SHA-512(message)`;
//! * what the authenticator signs: `SHA-256(application) || byte flags || uint32 counter ||
//!   SHA-256(signed data)` (ed25519 over those 69 bytes; ECDSA P-256 with SHA-256 over them);
//! * signature blob: `string type, string sig, byte flags, uint32 counter`, where `sig` is the
//!   64-byte ed25519 signature or `mpint r || mpint s`;
//! * SSHSIG blob: `"SSHSIG" || uint32 1 || string public key || string namespace || string "" ||
//!   string "sha512" || string signature`, base64 in 70-column lines between
//!   `-----BEGIN SSH SIGNATURE-----` and `-----END SSH SIGNATURE-----`.
//!
//! Keys come from fixed 32-byte seeds, and both signature schemes are deterministic (ed25519;
//! ECDSA with RFC 6979 nonces), so the same inputs always give the same bytes: the fixture in
//! `bus/tests/data/sk/` can be regenerated and compared.

use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256, Sha512};

/// The application OpenSSH registers security keys under by default.
pub const APPLICATION: &str = "ssh:";
/// Flags byte: user present (the key was touched).
pub const USER_PRESENT: u8 = 0x01;

/// Which security-key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkType {
    Ed25519,
    EcdsaP256,
}

/// A software stand-in for a security key.
pub struct SoftSk {
    kind: SkType,
    seed: [u8; 32],
}

impl SoftSk {
    pub fn new(kind: SkType, seed: [u8; 32]) -> SoftSk {
        SoftSk { kind, seed }
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            SkType::Ed25519 => "sk-ssh-ed25519@openssh.com",
            SkType::EcdsaP256 => "sk-ecdsa-sha2-nistp256@openssh.com",
        }
    }

    /// The public key blob.
    pub fn public_blob(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, self.type_name().as_bytes());
        match self.kind {
            SkType::Ed25519 => {
                let key = ed25519_dalek::SigningKey::from_bytes(&self.seed);
                put_string(&mut out, key.verifying_key().as_bytes());
            }
            SkType::EcdsaP256 => {
                put_string(&mut out, b"nistp256");
                let point = self.p256_key().verifying_key().to_encoded_point(false);
                put_string(&mut out, point.as_bytes());
            }
        }
        put_string(&mut out, APPLICATION.as_bytes());
        out
    }

    /// `TYPE BASE64` as in a `.pub` file or `allowed_signers`.
    pub fn public_line(&self) -> String {
        format!("{} {}", self.type_name(), base64(&self.public_blob()))
    }

    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.public_blob());
        format!("SHA256:{}", base64(&digest).trim_end_matches('='))
    }

    /// An armored SSHSIG over `message` in `namespace` with the given flags and counter.
    pub fn sign(&self, namespace: &str, message: &[u8], flags: u8, counter: u32) -> String {
        let mut signed = b"SSHSIG".to_vec();
        put_string(&mut signed, namespace.as_bytes());
        put_string(&mut signed, b"");
        put_string(&mut signed, b"sha512");
        put_string(&mut signed, &Sha512::digest(message));

        let mut authenticator_data = Sha256::digest(APPLICATION.as_bytes()).to_vec();
        authenticator_data.push(flags);
        authenticator_data.extend(counter.to_be_bytes());
        authenticator_data.extend(Sha256::digest(&signed));

        let raw = match self.kind {
            SkType::Ed25519 => ed25519_dalek::SigningKey::from_bytes(&self.seed)
                .sign(&authenticator_data)
                .to_bytes()
                .to_vec(),
            SkType::EcdsaP256 => {
                let sig: p256::ecdsa::Signature = self.p256_key().sign(&authenticator_data);
                let (r, s) = sig.split_bytes();
                let mut out = Vec::new();
                put_mpint(&mut out, &r);
                put_mpint(&mut out, &s);
                out
            }
        };
        let mut signature = Vec::new();
        put_string(&mut signature, self.type_name().as_bytes());
        put_string(&mut signature, &raw);
        signature.push(flags);
        signature.extend(counter.to_be_bytes());

        let mut blob = b"SSHSIG".to_vec();
        blob.extend(1u32.to_be_bytes());
        put_string(&mut blob, &self.public_blob());
        put_string(&mut blob, namespace.as_bytes());
        put_string(&mut blob, b"");
        put_string(&mut blob, b"sha512");
        put_string(&mut blob, &signature);

        let encoded = base64(&blob);
        let mut armored = String::from("-----BEGIN SSH SIGNATURE-----\n");
        for chunk in encoded.as_bytes().chunks(70) {
            armored.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            armored.push('\n');
        }
        armored.push_str("-----END SSH SIGNATURE-----\n");
        armored
    }

    fn p256_key(&self) -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_bytes(&self.seed.into()).expect("seed is a valid scalar")
    }
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u32).to_be_bytes());
    out.extend(bytes);
}

/// An SSH `mpint`: big-endian, no leading zeros, a zero byte in front when the top bit is set.
fn put_mpint(out: &mut Vec<u8>, bytes: &[u8]) {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut body = Vec::new();
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend(trimmed);
    put_string(out, &body);
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn mpint_adds_a_sign_byte_and_drops_leading_zeros() {
        let mut out = Vec::new();
        put_mpint(&mut out, &[0, 0, 0x80, 1]);
        assert_eq!(out, vec![0, 0, 0, 3, 0, 0x80, 1]);
        let mut out = Vec::new();
        put_mpint(&mut out, &[0, 0x7f]);
        assert_eq!(out, vec![0, 0, 0, 1, 0x7f]);
    }
}
