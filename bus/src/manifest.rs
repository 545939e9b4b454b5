//! The request manifest: what a requester asks for, signed over its exact bytes.
//!
//! `request.json` is written in canonical JSON with a trailing newline. The runner verifies
//! the signature over the committed bytes *before* parsing them, then parses strictly
//! (unknown fields and duplicate keys refused) and recomputes `request_id`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::clock;
use crate::json::{self, JsonError};

/// The only manifest schema this build understands.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Longest a request may stay valid.
pub const MAX_LIFETIME_SECS: i64 = 7 * 24 * 3600;
/// Clock skew tolerated between requester and runner.
pub const CLOCK_SKEW_SECS: i64 = 300;
/// Prefix of every request branch.
pub const BRANCH_PREFIX: &str = "refs/heads/mac-bridge/";

/// The signed request. Field order here is irrelevant: the bytes are canonical JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    /// Hex sha256 of the canonical manifest without this field.
    pub request_id: String,
    /// 128 random bits as 32 lowercase hex digits; also names the branch.
    pub nonce: String,
    pub preset: String,
    /// `sha256:<hex>` of the preset definition the requester validated against.
    pub preset_digest: String,
    /// Parameter values as the requester gave them (strings or native JSON scalars).
    pub params: BTreeMap<String, Value>,
    /// Runner labels the request needs, on top of the preset's own.
    pub labels: Vec<String>,
    /// `SHA256:...` fingerprint of the signing key.
    pub requested_by: String,
    pub issued_at: String,
    pub expires_at: String,
    /// For workload presets: the commit whose tree the job runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// The id of the bus this request is for (`refs/mac-bridge/bus-id`); absent when the bus
    /// had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The code a workload preset runs against, pinned by commit id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub commit: String,
}

/// Why a manifest is not acceptable (before any signature or policy question).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {0}")]
    Json(#[from] JsonError),
    #[error("manifest does not match the schema: {0}")]
    Schema(String),
    #[error("manifest field `{field}` is invalid: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("request_id {claimed} does not match the manifest (computed {computed})")]
    RequestIdMismatch { claimed: String, computed: String },
}

fn field(field: &'static str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field,
        reason: reason.into(),
    }
}

impl Manifest {
    /// Parse manifest bytes strictly and check every field's form (not expiry: see
    /// [`Manifest::check_times`], which needs a clock).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let value = json::parse_strict(bytes, MAX_MANIFEST_BYTES)?;
        // serde's message for a wrong type does not name the field; this one matters most.
        if value.get("schema_version").is_some_and(|v| !v.is_u64()) {
            return Err(field(
                "schema_version",
                format!(
                    "must be the integer {SCHEMA_VERSION}, not {}",
                    value["schema_version"]
                ),
            ));
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| ManifestError::Schema(e.to_string()))?;
        manifest.check_form()?;
        let computed = manifest.compute_request_id();
        if computed != manifest.request_id {
            return Err(ManifestError::RequestIdMismatch {
                claimed: manifest.request_id.clone(),
                computed,
            });
        }
        Ok(manifest)
    }

    /// The id: sha256 over the canonical manifest with `request_id` removed.
    pub fn compute_request_id(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.remove("request_id");
        }
        hex::encode(Sha256::digest(json::canonical(&value)))
    }

    /// Fill in `request_id` (used when building a new manifest).
    pub fn seal(mut self) -> Self {
        self.request_id = self.compute_request_id();
        self
    }

    /// The exact bytes that go on the branch and get signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = json::canonical(&serde_json::to_value(self).unwrap_or(Value::Null));
        bytes.push(b'\n');
        bytes
    }

    /// The branch this manifest must live on: the nonce binds it to exactly one branch.
    pub fn branch_ref(&self) -> String {
        format!("{BRANCH_PREFIX}{}-{}", self.preset, self.nonce)
    }

    pub fn issued(&self) -> Option<OffsetDateTime> {
        clock::parse(&self.issued_at)
    }

    pub fn expires(&self) -> Option<OffsetDateTime> {
        clock::parse(&self.expires_at)
    }

    /// Whether the request is usable at `now`: issued not in the future (beyond skew) and
    /// not expired. Returns a reason when it is not.
    pub fn check_times(&self, now: OffsetDateTime) -> Result<(), TimeProblem> {
        let (Some(issued), Some(expires)) = (self.issued(), self.expires()) else {
            return Err(TimeProblem::Unparseable);
        };
        if issued > clock::plus_seconds(now, CLOCK_SKEW_SECS as f64) {
            return Err(TimeProblem::FromTheFuture {
                issued_at: self.issued_at.clone(),
            });
        }
        if now > expires {
            return Err(TimeProblem::Expired {
                expires_at: self.expires_at.clone(),
            });
        }
        Ok(())
    }

    fn check_form(&self) -> Result<(), ManifestError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(field(
                "schema_version",
                format!(
                    "{} is not supported (this build speaks {SCHEMA_VERSION})",
                    self.schema_version
                ),
            ));
        }
        if !is_hex(&self.request_id, 64) {
            return Err(field("request_id", "must be 64 lowercase hex digits"));
        }
        if !is_hex(&self.nonce, 32) {
            return Err(field(
                "nonce",
                "must be 32 lowercase hex digits (128 random bits)",
            ));
        }
        if !is_name(&self.preset) {
            return Err(field("preset", "must match [a-z][a-z0-9-]{0,63}"));
        }
        match self.preset_digest.strip_prefix("sha256:") {
            Some(h) if is_hex(h, 64) => {}
            _ => return Err(field("preset_digest", "must be sha256:<64 hex digits>")),
        }
        if self.params.len() > 64 {
            return Err(field("params", "more than 64 parameters"));
        }
        if self.labels.len() > 32 || !self.labels.iter().all(|l| is_label(l)) {
            return Err(field(
                "labels",
                "at most 32 labels, each 1-64 chars of [a-z0-9._:=<>-] starting with a letter or digit",
            ));
        }
        match self.requested_by.strip_prefix("SHA256:") {
            Some(b64) if !b64.is_empty() && b64.len() <= 64 && b64.bytes().all(is_b64) => {}
            _ => {
                return Err(field(
                    "requested_by",
                    "must be an SSH key fingerprint SHA256:...",
                ));
            }
        }
        let (Some(issued), Some(expires)) = (self.issued(), self.expires()) else {
            return Err(field("issued_at/expires_at", "must be RFC 3339 timestamps"));
        };
        let lifetime = (expires - issued).whole_seconds();
        if lifetime <= 0 || lifetime > MAX_LIFETIME_SECS {
            return Err(field(
                "expires_at",
                format!("must be after issued_at and at most {MAX_LIFETIME_SECS} s later"),
            ));
        }
        if let Some(w) = &self.workload
            && !is_hex(&w.commit, 40)
        {
            return Err(field("workload.commit", "must be a 40-hex-digit commit id"));
        }
        if let Some(a) = &self.audience
            && !is_hex(a, 32)
        {
            return Err(field(
                "audience",
                "must be a bus id: 32 lowercase hex digits",
            ));
        }
        Ok(())
    }
}

/// Why a well-formed manifest cannot run now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeProblem {
    #[error("issued_at/expires_at are not RFC 3339 timestamps")]
    Unparseable,
    #[error("issued_at {issued_at} is in the future beyond the allowed clock skew")]
    FromTheFuture { issued_at: String },
    #[error("request expired at {expires_at}")]
    Expired { expires_at: String },
}

/// A fresh 128-bit nonce.
pub fn new_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Preset names, as they appear in branch names.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Runner labels: `metal`, `m4`, `mem>=64`.
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._:=<>-".contains(c))
}

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn sample() -> Manifest {
        Manifest {
            schema_version: 1,
            request_id: String::new(),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            preset: "sleep".into(),
            preset_digest: format!("sha256:{}", "a".repeat(64)),
            params: [("ms".to_string(), Value::String("5".into()))].into(),
            labels: vec!["metal".into()],
            requested_by: "SHA256:abcDEF123+/x".into(),
            issued_at: "2026-11-21T10:00:00Z".into(),
            expires_at: "2026-11-21T11:00:00Z".into(),
            workload: None,
            audience: None,
        }
        .seal()
    }

    fn edit(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
        let mut v = serde_json::to_value(sample()).unwrap();
        f(v.as_object_mut().unwrap());
        let mut bytes = json::canonical(&v);
        bytes.push(b'\n');
        bytes
    }

    #[test]
    fn round_trips_through_its_bytes() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        assert_eq!(
            m.branch_ref(),
            "refs/heads/mac-bridge/sleep-0123456789abcdef0123456789abcdef"
        );
        assert!(m.to_bytes().ends_with(b"}\n"));
    }

    #[test]
    fn request_id_covers_every_field() {
        let bytes = edit(|m| {
            m.insert("preset".into(), "env-probe".into());
        });
        assert!(matches!(
            Manifest::parse(&bytes),
            Err(ManifestError::RequestIdMismatch { .. })
        ));
    }

    #[test]
    fn schema_version_must_be_the_integer_one() {
        for bad in [
            Value::Bool(true),
            Value::from(1.0),
            Value::from("1"),
            Value::from(2),
        ] {
            let bytes = edit(|m| {
                m.insert("schema_version".into(), bad.clone());
            });
            assert!(Manifest::parse(&bytes).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn unknown_fields_and_duplicates_are_refused() {
        let bytes = edit(|m| {
            m.insert("ref".into(), "HEAD".into());
        });
        assert!(matches!(
            Manifest::parse(&bytes),
            Err(ManifestError::Schema(_))
        ));
        let text = String::from_utf8(sample().to_bytes()).unwrap();
        let dup = text.replacen("{\"expires_at\"", "{\"nonce\":\"x\",\"expires_at\"", 1);
        assert!(Manifest::parse(dup.as_bytes()).is_err());
    }

    #[test]
    fn field_forms_are_checked() {
        let cases: Vec<(&str, Value)> = vec![
            ("nonce", "short".into()),
            ("nonce", "0123456789ABCDEF0123456789ABCDEF".into()),
            ("preset", "Sleep".into()),
            ("preset", "../x".into()),
            ("preset_digest", "md5:abc".into()),
            ("requested_by", "alice".into()),
            ("labels", serde_json::json!(["Metal"])),
            ("labels", serde_json::json!(["a b"])),
            ("issued_at", "yesterday".into()),
            ("expires_at", "2026-11-21T09:00:00Z".into()),
            ("expires_at", "2026-12-01T10:00:00Z".into()),
            ("workload", serde_json::json!({"commit": "HEAD"})),
            ("audience", "bus-1".into()),
        ];
        for (field, value) in cases {
            let mut v = serde_json::to_value(sample()).unwrap();
            v[field] = value.clone();
            v.as_object_mut().unwrap().remove("request_id");
            let id = hex::encode(Sha256::digest(json::canonical(&v)));
            v["request_id"] = id.into();
            assert!(
                Manifest::parse(&json::canonical(&v)).is_err(),
                "{field}={value} accepted"
            );
        }
    }

    #[test]
    fn times_expire_and_refuse_the_future() {
        let m = sample();
        let t = |s: &str| clock::parse(s).unwrap();
        assert!(m.check_times(t("2026-11-21T10:30:00Z")).is_ok());
        assert!(matches!(
            m.check_times(t("2026-11-21T11:00:01Z")),
            Err(TimeProblem::Expired { .. })
        ));
        assert!(matches!(
            m.check_times(t("2026-11-21T09:50:00Z")),
            Err(TimeProblem::FromTheFuture { .. })
        ));
        // Within the allowed skew.
        assert!(m.check_times(t("2026-11-21T09:57:00Z")).is_ok());
    }

    #[test]
    fn oversized_manifests_are_refused() {
        let bytes = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            Manifest::parse(&bytes),
            Err(ManifestError::Json(JsonError::TooLarge { .. }))
        ));
    }
}
