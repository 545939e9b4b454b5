//! `request`: validate locally (the same checks a runner makes), sign, and push.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use macbridge_bus::git::Bus;
use macbridge_bus::manifest::{MAX_LIFETIME_SECS, Manifest, is_label};
use macbridge_bus::submit::{self, RequestSpec};
use macbridge_bus::{clock, layout, verify};
use macbridge_presets::PresetClass;
use serde::Serialize;
use serde_json::Value;

use crate::common::usage;

/// What a successful `request` prints.
#[derive(Debug, Serialize)]
pub struct Submitted {
    pub branch: String,
    pub request_id: String,
    pub remote: String,
    pub preset: String,
    pub commit: String,
    pub issued_at: String,
    pub expires_at: String,
}

pub struct RequestArgs<'a> {
    /// `--key`; `None` uses git's SSH signing key.
    pub key: Option<&'a Path>,
    pub preset: &'a str,
    pub params: &'a [String],
    pub labels: &'a [String],
    pub expires_in: i64,
    pub workload: Option<(&'a str, &'a str)>,
}

/// Parse `K=V` pairs; values stay strings and are typed by the preset's definition.
pub fn parse_params(pairs: &[String]) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut params = BTreeMap::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(usage(format!("--param {pair:?} is not KEY=VALUE")));
        };
        if k.is_empty() {
            return Err(usage(format!("--param {pair:?} has an empty key")));
        }
        if params
            .insert(k.to_string(), Value::String(v.to_string()))
            .is_some()
        {
            return Err(usage(format!("--param {k} is given more than once")));
        }
    }
    Ok(params)
}

/// Build, check, sign and push a request.
pub fn submit_request(bus: &Bus, args: &RequestArgs<'_>) -> anyhow::Result<Submitted> {
    if !(1..=MAX_LIFETIME_SECS).contains(&args.expires_in) {
        return Err(usage(format!(
            "--expires-in {} is outside 1..={MAX_LIFETIME_SECS} seconds (1 s to 7 days)",
            args.expires_in
        )));
    }
    for label in args.labels {
        if !is_label(label) {
            return Err(usage(format!(
                "--label {label:?} is not a valid label (lowercase letters, digits, ._:=<>-; e.g. metal, mem>=64)"
            )));
        }
    }
    let catalog = macbridge_presets::catalog().context("loading the preset allowlist")?;
    let preset = catalog.get(args.preset).map_err(|e| usage(e.to_string()))?;
    let params = parse_params(args.params)?;
    preset
        .validate_params(&params)
        .map_err(|e| usage(e.to_string()))?;
    let workload = match (preset.class, args.workload) {
        (PresetClass::Workload, Some((repo, rev))) => Some(
            bus.import_commit(repo, rev)
                .with_context(|| format!("reading workload {rev} from {repo}"))?,
        ),
        (PresetClass::Workload, None) => {
            return Err(usage(format!(
                "preset {} runs a workload: give --workload REV (and --repo PATH if not the current folder)",
                preset.name
            )));
        }
        (PresetClass::Engine, Some(_)) => {
            return Err(usage(format!(
                "preset {} is an engine preset; it takes no --workload",
                preset.name
            )));
        }
        (PresetClass::Engine, None) => None,
    };
    let key = crate::key::requester_key(args.key)?;
    // Address the request to this bus, so it cannot be replayed onto another one.
    let audience = macbridge_bus::busid::read(bus).context("reading the bus id")?;
    let spec = RequestSpec {
        preset,
        params,
        labels: args.labels.to_vec(),
        expires_in_secs: args.expires_in,
        workload,
        audience,
    };
    let manifest: Manifest = submit::build_manifest(&spec, &key, clock::now())?;
    // The same checks the runner makes, on the exact manifest about to be signed.
    verify::check_against_catalog(&Manifest::parse(&manifest.to_bytes())?)
        .map_err(|r| usage(r.to_string()))?;
    let commit = submit::submit(bus, &manifest, &key).map_err(crate::common::submit_error)?;
    Ok(Submitted {
        branch: layout::short_branch(&manifest.branch_ref()).to_string(),
        request_id: manifest.request_id.clone(),
        remote: bus.remote().to_string(),
        preset: manifest.preset.clone(),
        commit: commit.to_string(),
        issued_at: manifest.issued_at.clone(),
        expires_at: manifest.expires_at.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_split_on_the_first_equals_and_refuse_duplicates() {
        let p = parse_params(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
        assert_eq!(p["b"], Value::String("x=y".into()));
        assert_eq!(p["c"], Value::String(String::new()));
        assert!(parse_params(&["a".into()]).is_err());
        assert!(parse_params(&["=1".into()]).is_err());
        assert!(parse_params(&["a=1".into(), "a=2".into()]).is_err());
    }
}
