//! Crafting requests by hand, from the protocol's written rules and independent tools.
//!
//! * canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, strings escaped
//!   the serde_json way (only `"`, `\` and control characters);
//! * `request_id`: hex sha256 of the canonical manifest without `request_id`;
//! * `request.json`: canonical manifest with `request_id`, plus one `\n`;
//! * `request.sig`: `ssh-keygen -Y sign -n <namespace> -f <key>` over those exact bytes.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::bins;
use crate::proc;

/// The namespace requests are signed in.
pub const REQUEST_NAMESPACE: &str = "macbridge-request-v1";
/// The namespace runners sign results in.
pub const RESULT_NAMESPACE: &str = "macbridge-result-v1";

const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// Canonical JSON text of `value`.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs() as i64
}

/// `secs` since the epoch as RFC 3339 UTC with a `Z`, e.g. `2026-11-21T23:51:31Z`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days to civil date (Howard Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `n` random bytes from the kernel, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let mut f = std::fs::File::open("/dev/urandom").expect("opening /dev/urandom");
    std::io::Read::read_exact(&mut f, &mut buf).expect("reading /dev/urandom");
    hex::encode(buf)
}

/// A fresh 128-bit nonce.
pub fn nonce() -> String {
    random_hex(16)
}

/// `macbridge presets --json`, read once per test process.
pub fn presets_json() -> &'static Value {
    static PRESETS: OnceLock<Value> = OnceLock::new();
    PRESETS.get_or_init(|| {
        proc::run(
            Command::new(bins::macbridge()).args(["presets", "--json"]),
            TOOL_LIMIT,
        )
        .ok()
        .json()
    })
}

/// The digest `macbridge presets --json` publishes for `preset`, if it is a known preset.
pub fn preset_digest(preset: &str) -> Option<String> {
    presets_json()["presets"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == preset)
        .and_then(|p| p["digest"].as_str())
        .map(str::to_string)
}

/// The `SHA256:...` fingerprint of a public key file, as `ssh-keygen -lf` prints it.
#[track_caller]
pub fn fingerprint(public_key: &Path) -> String {
    let out = proc::run(
        Command::new("ssh-keygen").arg("-lf").arg(public_key),
        TOOL_LIMIT,
    )
    .ok();
    out.stdout
        .split_whitespace()
        .nth(1)
        .filter(|f| f.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("unexpected ssh-keygen -lf output: {}", out.stdout))
        .to_string()
}

/// Sign `data` with `ssh-keygen -Y sign -n namespace -f key`; returns the armored signature.
/// `scratch` is a folder for the temporary files ssh-keygen works on.
#[track_caller]
pub fn ssh_sign(key: &Path, namespace: &str, data: &[u8], scratch: &Path) -> Vec<u8> {
    let file = scratch.join(format!("to-sign-{}", random_hex(8)));
    std::fs::write(&file, data).expect("writing the data to sign");
    proc::run(
        Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
            .arg(key)
            .arg(&file),
        TOOL_LIMIT,
    )
    .ok();
    // ssh-keygen writes the signature beside the file, with `.sig` appended.
    let sig_path = scratch.join(format!(
        "{}.sig",
        file.file_name().unwrap().to_string_lossy()
    ));
    let sig = std::fs::read(&sig_path).expect("reading the signature ssh-keygen wrote");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&sig_path);
    sig
}

/// Whether `signature` over `data` verifies with `ssh-keygen -Y verify` for `principal` in
/// the `allowed_signers` file, in `namespace`.
pub fn ssh_verify(
    allowed_signers: &Path,
    principal: &str,
    namespace: &str,
    data: &[u8],
    signature: &[u8],
    scratch: &Path,
) -> bool {
    let sig_file = scratch.join(format!("verify-{}.sig", random_hex(8)));
    std::fs::write(&sig_file, signature).expect("writing a signature");
    let out = proc::run_with_input(
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(allowed_signers)
            .args(["-I", principal, "-n", namespace, "-s"])
            .arg(&sig_file),
        Some(data),
        TOOL_LIMIT,
    );
    let _ = std::fs::remove_file(&sig_file);
    out.status.success()
}

/// A manifest under construction: every field except `request_id`.
#[derive(Debug, Clone)]
pub struct Draft {
    pub fields: Map<String, Value>,
}

/// A finished manifest: its id, its exact bytes and the branch it belongs on.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub request_id: String,
    pub bytes: Vec<u8>,
    /// `refs/heads/mac-bridge/<preset>-<nonce>`.
    pub branch: String,
}

impl Sealed {
    /// The branch as people type it: `mac-bridge/<preset>-<nonce>`.
    pub fn short_branch(&self) -> &str {
        self.branch.trim_start_matches("refs/heads/")
    }
}

impl Draft {
    /// A valid request for `preset` by the key with `fingerprint`, issued a few seconds ago
    /// and valid for ten minutes. Unknown presets get an all-zero digest.
    pub fn new(preset: &str, fingerprint: &str) -> Draft {
        let now = unix_now();
        let digest = preset_digest(preset).unwrap_or_else(|| format!("sha256:{}", "0".repeat(64)));
        let value = json!({
            "schema_version": 1,
            "nonce": nonce(),
            "preset": preset,
            "preset_digest": digest,
            "params": {},
            "labels": [],
            "requested_by": fingerprint,
            "issued_at": rfc3339(now - 5),
            "expires_at": rfc3339(now + 600),
        });
        let Value::Object(fields) = value else {
            unreachable!()
        };
        Draft { fields }
    }

    /// Set a parameter to a string value.
    pub fn param(mut self, name: &str, value: &str) -> Draft {
        self.fields["params"]
            .as_object_mut()
            .expect("params is an object")
            .insert(name.to_string(), Value::String(value.to_string()));
        self
    }

    /// Set (or add) any top-level field.
    pub fn set(mut self, field: &str, value: Value) -> Draft {
        self.fields.insert(field.to_string(), value);
        self
    }

    /// The preset as written in the draft.
    pub fn preset(&self) -> &str {
        self.fields["preset"].as_str().unwrap_or("")
    }

    /// The nonce as written in the draft.
    pub fn nonce(&self) -> &str {
        self.fields["nonce"].as_str().unwrap_or("")
    }

    /// The id this draft gets: sha256 of its canonical JSON (no `request_id` in it).
    pub fn compute_id(&self) -> String {
        sha256_hex(canonical(&Value::Object(self.fields.clone())).as_bytes())
    }

    /// Seal with the correct request id.
    pub fn seal(&self) -> Sealed {
        self.seal_with_id(&self.compute_id())
    }

    /// Seal claiming `request_id`, right or wrong.
    pub fn seal_with_id(&self, request_id: &str) -> Sealed {
        let mut full = self.fields.clone();
        full.insert("request_id".into(), Value::String(request_id.to_string()));
        let mut bytes = canonical(&Value::Object(full)).into_bytes();
        bytes.push(b'\n');
        Sealed {
            request_id: request_id.to_string(),
            bytes,
            branch: format!("refs/heads/mac-bridge/{}-{}", self.preset(), self.nonce()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_by_bytes_and_keeps_non_ascii() {
        let v = json!({"b": [1, "x\n"], "a": {"z": null, "Z": true}, "é": "５"});
        assert_eq!(
            canonical(&v),
            "{\"a\":{\"Z\":true,\"z\":null},\"b\":[1,\"x\\n\"],\"é\":\"５\"}"
        );
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_305_091), "2026-11-21T23:51:31Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn request_id_excludes_itself() {
        let d = Draft::new("sleep", "SHA256:abc").param("ms", "1");
        let sealed = d.seal();
        let text = String::from_utf8(sealed.bytes.clone()).unwrap();
        assert!(text.ends_with("}\n") && !text.contains(' '));
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("request_id");
        assert_eq!(sha256_hex(canonical(&v).as_bytes()), sealed.request_id);
    }
}
