//! Deciding whether a request may run: the one function the runner uses to refuse, and the
//! client uses to check before pushing.
//!
//! Order matters. The signature is checked over the committed bytes before they are parsed,
//! the signer must be in `allowed_signers` for the request namespace at this moment, and the
//! manifest must name the signer's own key; only then are the manifest's claims believed.

use std::collections::BTreeMap;

use macbridge_presets::{Preset, PresetClass, ValidatedParams};
use serde::Serialize;
use time::OffsetDateTime;

use crate::manifest::{Manifest, TimeProblem};
use crate::sig::{self, AllowedSigners, Policy};

/// Why a request is refused: a stable code for scripts and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

/// Stable refusal codes, recorded in rejected results as `reason` prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    NoManifest,
    Unsigned,
    BadSignature,
    UnknownSigner,
    SignerMismatch,
    InvalidManifest,
    Replay,
    WrongAudience,
    Expired,
    NotYetValid,
    UnknownPreset,
    PresetChanged,
    InvalidParams,
    NotAllowed,
    MissingEnv,
    BadWorkload,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::NoManifest => "no_manifest",
            RefusalCode::Unsigned => "unsigned",
            RefusalCode::BadSignature => "bad_signature",
            RefusalCode::UnknownSigner => "unknown_signer",
            RefusalCode::SignerMismatch => "signer_mismatch",
            RefusalCode::InvalidManifest => "invalid_manifest",
            RefusalCode::Replay => "replay",
            RefusalCode::WrongAudience => "wrong_audience",
            RefusalCode::Expired => "expired",
            RefusalCode::NotYetValid => "not_yet_valid",
            RefusalCode::UnknownPreset => "unknown_preset",
            RefusalCode::PresetChanged => "preset_changed",
            RefusalCode::InvalidParams => "invalid_params",
            RefusalCode::NotAllowed => "not_allowed",
            RefusalCode::MissingEnv => "missing_env",
            RefusalCode::BadWorkload => "bad_workload",
        }
    }
}

impl Refusal {
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// `code: message`, as written into a rejected result's `reason`.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.code.as_str(), self.message)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

/// What a runner trusts: who may sign, and what each signer may ask for.
pub struct Trust {
    pub allowed_signers: AllowedSigners,
    pub policy: Policy,
    /// This bus's id; a manifest addressed to another bus is refused.
    pub bus_id: Option<String>,
}

/// A request that passed every check.
#[derive(Debug)]
pub struct VerifiedRequest {
    pub manifest: Manifest,
    pub principals: Vec<String>,
    pub preset: &'static Preset,
    pub params: ValidatedParams,
}

/// Verify a request found on `branch_ref` (full ref name) at time `now`.
pub fn verify_request(
    branch_ref: &str,
    manifest_bytes: Option<&[u8]>,
    signature: Option<&[u8]>,
    trust: &Trust,
    now: OffsetDateTime,
) -> Result<VerifiedRequest, Refusal> {
    let bytes = manifest_bytes.ok_or_else(|| {
        Refusal::new(
            RefusalCode::NoManifest,
            "the branch has no .mac-bridge/request.json",
        )
    })?;
    let signature = signature.ok_or_else(|| {
        Refusal::new(
            RefusalCode::Unsigned,
            "the branch has no .mac-bridge/request.sig",
        )
    })?;
    let armored = std::str::from_utf8(signature)
        .map_err(|_| Refusal::new(RefusalCode::BadSignature, "request.sig is not text"))?;
    let signer = sig::verify(armored, sig::REQUEST_NAMESPACE, bytes)
        .map_err(|e| Refusal::new(RefusalCode::BadSignature, e.to_string()))?;
    let principals = trust
        .allowed_signers
        .authorize(&signer, sig::REQUEST_NAMESPACE, now)
        .map_err(|e| Refusal::new(RefusalCode::UnknownSigner, e.to_string()))?;
    let manifest = Manifest::parse(bytes)
        .map_err(|e| Refusal::new(RefusalCode::InvalidManifest, e.to_string()))?;
    let fingerprint = sig::fingerprint(&signer);
    if manifest.requested_by != fingerprint {
        return Err(Refusal::new(
            RefusalCode::SignerMismatch,
            format!(
                "requested_by is {} but the request was signed by {fingerprint}",
                manifest.requested_by
            ),
        ));
    }
    let expected_branch = manifest.branch_ref();
    if branch_ref != expected_branch {
        return Err(Refusal::new(
            RefusalCode::Replay,
            format!(
                "this signed manifest belongs to {expected_branch}, not {branch_ref} (replayed onto another branch)"
            ),
        ));
    }
    if let Some(audience) = &manifest.audience
        && trust.bus_id.as_deref() != Some(audience.as_str())
    {
        return Err(Refusal::new(
            RefusalCode::WrongAudience,
            format!(
                "the request is addressed to bus {audience}, and this is bus {}",
                trust.bus_id.as_deref().unwrap_or("(without an id)")
            ),
        ));
    }
    match manifest.check_times(now) {
        Ok(()) => {}
        Err(TimeProblem::Expired { expires_at }) => {
            return Err(Refusal::new(
                RefusalCode::Expired,
                format!("the request expired at {expires_at}"),
            ));
        }
        Err(other) => return Err(Refusal::new(RefusalCode::NotYetValid, other.to_string())),
    }
    let (preset, params) = check_against_catalog(&manifest)?;
    trust
        .policy
        .allows(
            &principals,
            &preset.name,
            preset.class == PresetClass::Workload,
            &sig::key_type(signer.key_data()),
        )
        .map_err(|e| Refusal::new(RefusalCode::NotAllowed, e.to_string()))?;
    Ok(VerifiedRequest {
        manifest,
        principals,
        preset,
        params,
    })
}

/// The checks that need no keys: preset known and unchanged, params valid, workload present
/// exactly when the preset runs one. The client runs these before pushing.
pub fn check_against_catalog(
    manifest: &Manifest,
) -> Result<(&'static Preset, ValidatedParams), Refusal> {
    let catalog = macbridge_presets::catalog()
        .map_err(|e| Refusal::new(RefusalCode::UnknownPreset, e.to_string()))?;
    let preset = catalog
        .get(&manifest.preset)
        .map_err(|e| Refusal::new(RefusalCode::UnknownPreset, e.to_string()))?;
    let digest = preset.digest();
    if manifest.preset_digest != digest {
        return Err(Refusal::new(
            RefusalCode::PresetChanged,
            format!(
                "preset {} is {digest} on this runner but the request was made against {}",
                preset.name, manifest.preset_digest
            ),
        ));
    }
    let params = preset
        .validate_params(&manifest.params)
        .map_err(|e| Refusal::new(RefusalCode::InvalidParams, e.to_string()))?;
    match (preset.class, &manifest.workload) {
        (PresetClass::Workload, None) => {
            return Err(Refusal::new(
                RefusalCode::BadWorkload,
                format!("workload preset {} needs a workload commit", preset.name),
            ));
        }
        (PresetClass::Engine, Some(_)) => {
            return Err(Refusal::new(
                RefusalCode::BadWorkload,
                format!(
                    "engine preset {} runs no workload; drop `workload`",
                    preset.name
                ),
            ));
        }
        _ => {}
    }
    Ok((preset, params))
}

/// Whether a runner with `runner_labels` can serve a request needing `needed`. A label of the
/// form `name>=N` on the request is met by a runner label `name=M` (or `name>=M`) with M ≥ N.
pub fn labels_satisfied(needed: &[String], runner_labels: &[String]) -> bool {
    let have: BTreeMap<&str, Option<f64>> = runner_labels
        .iter()
        .map(|l| match l.split_once(">=").or_else(|| l.split_once('=')) {
            Some((k, v)) => (k, v.parse::<f64>().ok()),
            None => (l.as_str(), None),
        })
        .collect();
    needed.iter().all(|want| match want.split_once(">=") {
        Some((k, min)) => match (have.get(k), min.parse::<f64>()) {
            (Some(Some(v)), Ok(min)) => *v >= min,
            _ => false,
        },
        None => runner_labels.iter().any(|l| l == want) || have.contains_key(want.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn labels_match_plain_and_numeric() {
        let runner = s(&["metal", "m4", "mem=64"]);
        assert!(labels_satisfied(&[], &runner));
        assert!(labels_satisfied(&s(&["metal", "m4"]), &runner));
        assert!(labels_satisfied(&s(&["mem>=64"]), &runner));
        assert!(labels_satisfied(&s(&["mem>=32"]), &runner));
        assert!(!labels_satisfied(&s(&["mem>=65"]), &runner));
        assert!(!labels_satisfied(&s(&["cuda"]), &runner));
        assert!(!labels_satisfied(&s(&["gpu>=1"]), &runner));
    }
}
