//! Which presets each principal may request.
//!
//! `allowed_signers` says who a signer is; the policy says what they may ask
//! for. It is a small YAML file on the runner:
//!
//! ```yaml
//! principals:
//!   alice@example.com: {presets: ["*"], workload: true}
//!   ci-bot: {presets: [env-probe, codec-eval], key_types: [ssh-ed25519]}
//! default: {presets: []}
//! ```
//!
//! * `principals`: map from principal (exactly as returned by
//!   [`AllowedSigners::authorize`](super::AllowedSigners::authorize), so a
//!   pattern principal such as `*@example.com` is matched as that literal
//!   string) to a grant.
//! * A grant has `presets` (preset names, or `"*"` for all) and `workload`
//!   (default `false`).
//!   - An **engine** preset is allowed when it is listed or `"*"` is.
//!   - A **workload** preset runs code from the request, so it additionally
//!     needs `workload: true`; `"*"` then covers workload presets too.
//!   - `key_types` (optional): the key types the principal may sign with,
//!     named as in `.pub` files (`ssh-ed25519`, `ecdsa-sha2-nistp256`,
//!     `ecdsa-sha2-nistp384`, `ssh-rsa`, `sk-ssh-ed25519@openssh.com`,
//!     `sk-ecdsa-sha2-nistp256@openssh.com`). Absent means every supported
//!     type; a name outside that list is an error, not a silent no-op.
//! * `default`: the grant for principals not listed. Absent means nothing.
//!
//! Unknown fields anywhere are errors, so a misspelt `worklaod: true` cannot
//! silently grant less (or more) than intended.
//!
//! When a signer has several principals (one `allowed_signers` line can name
//! several), the request is allowed if any one of them is allowed (preset and
//! key type by the same grant): the key holder is each of those principals.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::SigError;
use super::keytype::SUPPORTED_KEY_TYPES;

const MAX_FILE: u64 = 1024 * 1024;
const WILDCARD: &str = "*";

/// The preset ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    principals: BTreeMap<String, Grant>,
    default: Option<Grant>,
}

/// What one principal may request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    #[serde(default)]
    presets: Vec<String>,
    #[serde(default)]
    workload: bool,
    #[serde(default)]
    key_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    principals: BTreeMap<String, Grant>,
    #[serde(default)]
    default: Option<Grant>,
}

impl Policy {
    /// Parses policy YAML.
    pub fn from_yaml(text: &str) -> Result<Self, SigError> {
        Self::from_yaml_named(text, "policy")
    }

    /// Reads and parses a policy file; errors name the path.
    pub fn from_file(path: &Path) -> Result<Self, SigError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
            .map_err(|source| SigError::Io {
                action: "cannot read policy file",
                path: path.to_path_buf(),
                source,
            })?;
        let origin = path.display().to_string();
        if bytes.len() as u64 > MAX_FILE {
            return Err(SigError::FileTooLarge {
                path: path.to_path_buf(),
                len: bytes.len() as u64,
                max: MAX_FILE,
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| SigError::PolicySyntax {
            origin: origin.clone(),
            message: "not valid UTF-8".to_owned(),
        })?;
        Self::from_yaml_named(&text, &origin)
    }

    fn from_yaml_named(text: &str, origin: &str) -> Result<Self, SigError> {
        let syntax = |message: String| SigError::PolicySyntax {
            origin: origin.to_owned(),
            message,
        };
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err(syntax(
                "the policy is empty; write `principals: {}` to grant nothing".to_owned(),
            ));
        }
        let file: PolicyFile = serde_saphyr::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let grants = file.principals.iter().map(|(p, g)| (p.as_str(), g));
        let default = file.default.iter().map(|g| ("default", g));
        for (who, grant) in grants.chain(default) {
            if who.trim().is_empty() {
                return Err(syntax("empty principal name".to_owned()));
            }
            if let Some(bad) = grant.presets.iter().find(|p| p.trim().is_empty()) {
                return Err(syntax(format!("{who}: empty preset name {bad:?}")));
            }
            if let Some(bad) = grant
                .key_types
                .iter()
                .flatten()
                .find(|t| !SUPPORTED_KEY_TYPES.contains(&t.as_str()))
            {
                return Err(syntax(format!(
                    "{who}: unknown key type {bad:?} in key_types (known: {})",
                    SUPPORTED_KEY_TYPES.join(", ")
                )));
            }
        }
        Ok(Self {
            principals: file.principals,
            default: file.default,
        })
    }

    /// The policy used when a runner has no policy file: every principal in
    /// `allowed_signers` may request every engine preset (they only run the
    /// bundled binary) and no workload preset (those run requester code).
    pub fn default_engine_only() -> Self {
        Self {
            principals: BTreeMap::new(),
            default: Some(Grant {
                presets: vec![WILDCARD.to_owned()],
                workload: false,
                key_types: None,
            }),
        }
    }

    /// Allows the request if one of `principals` may request `preset` with a
    /// key of type `key_type` (`ssh-ed25519`, ...); `workload` is true for
    /// workload-class presets. The error names the principals and the preset,
    /// or the key type when only the key type stood in the way.
    pub fn allows(
        &self,
        principals: &[String],
        preset: &str,
        workload: bool,
        key_type: &str,
    ) -> Result<(), SigError> {
        let grants: Vec<&Grant> = principals
            .iter()
            .filter_map(|p| self.principals.get(p).or(self.default.as_ref()))
            .collect();
        let for_preset: Vec<&&Grant> = grants
            .iter()
            .filter(|g| g.allows(preset, workload))
            .collect();
        if for_preset.iter().any(|g| g.allows_key(key_type)) {
            return Ok(());
        }
        if for_preset.is_empty() {
            return Err(SigError::PresetNotAllowed {
                principals: principals.to_vec(),
                preset: preset.to_owned(),
                workload,
            });
        }
        let mut allowed: Vec<String> = for_preset
            .iter()
            .flat_map(|g| g.key_types.iter().flatten().cloned())
            .collect();
        allowed.sort();
        allowed.dedup();
        Err(SigError::KeyTypeNotAllowed {
            principals: principals.to_vec(),
            key_type: key_type.to_owned(),
            allowed,
        })
    }
}

impl Grant {
    fn allows(&self, preset: &str, workload: bool) -> bool {
        if workload && !self.workload {
            return false;
        }
        self.presets.iter().any(|p| p == WILDCARD || p == preset)
    }

    fn allows_key(&self, key_type: &str) -> bool {
        self.key_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == key_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519";

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const SAMPLE: &str = r#"
# who may ask for what
principals:
  alice@example.com: {presets: ["*"], workload: true}
  ci-bot: {presets: [env-probe, codec-eval]}
  carol:
    presets: [cargo-test]
    workload: true
default: {presets: [self-test]}
"#;

    #[test]
    fn sample_policy_grants_as_documented() -> Result<(), SigError> {
        let policy = Policy::from_yaml(SAMPLE)?;
        let alice = names(&["alice@example.com"]);
        policy.allows(&alice, "codec-bench", false, ED)?;
        policy.allows(&alice, "cargo-test", true, ED)?;

        let bot = names(&["ci-bot"]);
        policy.allows(&bot, "env-probe", false, ED)?;
        assert!(policy.allows(&bot, "codec-bench", false, ED).is_err());
        assert!(
            policy.allows(&bot, "env-probe", true, ED).is_err(),
            "not a workload principal"
        );

        let carol = names(&["carol"]);
        policy.allows(&carol, "cargo-test", true, ED)?;
        assert!(policy.allows(&carol, "other-workload", true, ED).is_err());

        // Unlisted principals fall back to `default`.
        policy.allows(&names(&["mallory"]), "self-test", false, ED)?;
        assert!(
            policy
                .allows(&names(&["mallory"]), "env-probe", false, ED)
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn any_principal_of_the_signer_suffices() -> Result<(), SigError> {
        let policy = Policy::from_yaml(SAMPLE)?;
        policy.allows(&names(&["nobody", "ci-bot"]), "codec-eval", false, ED)
    }

    #[test]
    fn star_without_workload_flag_excludes_workload_presets() -> Result<(), SigError> {
        let policy = Policy::from_yaml("principals:\n  dave: {presets: ['*']}\n")?;
        policy.allows(&names(&["dave"]), "niah", false, ED)?;
        assert!(
            policy
                .allows(&names(&["dave"]), "cargo-test", true, ED)
                .is_err()
        );
        // workload: true alone, without the preset listed, is not enough.
        let policy = Policy::from_yaml("principals:\n  erin: {presets: [x], workload: true}\n")?;
        assert!(
            policy
                .allows(&names(&["erin"]), "cargo-test", true, ED)
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn without_default_unlisted_principals_get_nothing() -> Result<(), SigError> {
        let policy = Policy::from_yaml("principals: {}\n")?;
        assert!(
            policy
                .allows(&names(&["alice"]), "env-probe", false, ED)
                .is_err()
        );
        assert!(policy.allows(&[], "env-probe", false, ED).is_err());
        Ok(())
    }

    #[test]
    fn default_engine_only_allows_engine_presets_to_everyone() -> Result<(), SigError> {
        let policy = Policy::default_engine_only();
        policy.allows(&names(&["anyone"]), "spec-decode", false, ED)?;
        assert!(
            policy
                .allows(&names(&["anyone"]), "cargo-test", true, ED)
                .is_err()
        );
        assert!(
            policy.allows(&[], "spec-decode", false, ED).is_err(),
            "a signer needs a principal"
        );
        Ok(())
    }

    #[test]
    fn error_names_principals_and_preset() -> Result<(), SigError> {
        let policy = Policy::from_yaml(SAMPLE)?;
        let err = policy
            .allows(&names(&["ci-bot", "x"]), "niah", false, ED)
            .err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            text,
            r#"principals "ci-bot", "x" may not request engine preset "niah""#
        );
        let err = policy
            .allows(&names(&["ci-bot"]), "cargo-test", true, ED)
            .err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with(r#"principal "ci-bot" may not request workload preset "cargo-test" (workload presets need"#), "{text}");
        Ok(())
    }

    #[test]
    fn key_types_restrict_a_grant() -> Result<(), SigError> {
        let policy = Policy::from_yaml(
            "principals:\n  bot: {presets: ['*'], key_types: [ssh-ed25519, sk-ssh-ed25519@openssh.com]}\n  \
             any: {presets: ['*']}\n",
        )?;
        let bot = names(&["bot"]);
        policy.allows(&bot, "sleep", false, "ssh-ed25519")?;
        policy.allows(&bot, "sleep", false, "sk-ssh-ed25519@openssh.com")?;
        let text = policy
            .allows(&bot, "sleep", false, "ssh-rsa")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            text,
            r#"principal "bot" may not sign with ssh-rsa keys (the policy's key_types for them: sk-ssh-ed25519@openssh.com, ssh-ed25519)"#
        );
        // Without key_types every supported type is fine; another principal of the
        // same signer with no restriction also lets it through.
        policy.allows(&names(&["any"]), "sleep", false, "ssh-rsa")?;
        policy.allows(&names(&["bot", "any"]), "sleep", false, "ssh-rsa")?;
        // A preset refusal stays a preset refusal.
        let none = Policy::from_yaml("principals:\n  bot: {presets: [x], key_types: [ssh-rsa]}\n")?;
        assert!(matches!(
            none.allows(&bot, "sleep", false, "ssh-ed25519"),
            Err(SigError::PresetNotAllowed { .. })
        ));
        Ok(())
    }

    #[test]
    fn unknown_fields_and_bad_shapes_are_refused() {
        for bad in [
            "principals:\n  a: {presets: [x], worklaod: true}\n",
            "principal:\n  a: {presets: [x]}\n",
            "principals:\n  a: {presets: x}\n",
            "principals:\n  a: {presets: ['']}\n",
            "principals: [a, b]\n",
            "default: {presets: [x], extra: 1}\n",
            "",
            "# only a comment\n",
            "principals: {a: {presets: [x]}\n",
            "principals:\n  a: {presets: [x], key_types: [ssh-dss]}\n",
            "principals:\n  a: {presets: [x], key_types: ssh-rsa}\n",
        ] {
            let res = Policy::from_yaml(bad);
            assert!(
                matches!(res, Err(SigError::PolicySyntax { .. })),
                "{bad:?} gave {res:?}"
            );
        }
    }

    #[test]
    fn from_file_names_the_path() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "principals:\n  a: {bogus: 1}\n")?;
        let text = Policy::from_file(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        std::fs::write(&path, SAMPLE)?;
        Policy::from_file(&path)?.allows(&names(&["ci-bot"]), "env-probe", false, ED)?;
        Ok(())
    }
}
