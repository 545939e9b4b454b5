//! Optional GitHub integration (cargo feature `github`): commit statuses on request commits and
//! `repository_dispatch` to start the Actions workflow. The bus itself never needs it: every
//! call here is best effort, and without a token nothing is sent.

use serde::{Deserialize, Serialize};

/// Where and how to talk to GitHub.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    /// `owner/name`; default: parsed from a github.com remote URL.
    #[serde(default)]
    pub repo: Option<String>,
    /// Environment variable holding the token (default `MACBRIDGE_GITHUB_TOKEN`, then
    /// `GITHUB_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// API root (default `https://api.github.com`; GitHub Enterprise or a test stub otherwise).
    #[serde(default)]
    pub api_url: Option<String>,
}

/// Errors talking to GitHub.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("no GitHub repository: set github.repo (owner/name) or use a github.com remote")]
    NoRepo,
    #[error("no GitHub token in {0}")]
    NoToken(String),
    #[error("this build has no GitHub support (rebuild with --features github)")]
    NotBuilt,
    #[error("GitHub API: {0}")]
    Api(String),
}

/// Commit status states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

/// `owner/name` from `git@github.com:owner/name.git`, `https://github.com/owner/name(.git)`,
/// or `ssh://git@github.com/owner/name`.
pub fn repo_from_remote(remote: &str) -> Option<String> {
    let rest = remote
        .strip_prefix("git@github.com:")
        .or_else(|| remote.strip_prefix("https://github.com/"))
        .or_else(|| remote.strip_prefix("ssh://git@github.com/"))?;
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = rest.split('/');
    let (owner, name) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && !owner.is_empty() && !name.is_empty())
        .then(|| format!("{owner}/{name}"))
}

impl GitHubConfig {
    /// Resolve repo, token and API root; `Err(NoToken)` means "skip quietly".
    pub fn resolve(&self, remote: &str) -> Result<(String, String, String), GitHubError> {
        let repo = self
            .repo
            .clone()
            .or_else(|| repo_from_remote(remote))
            .ok_or(GitHubError::NoRepo)?;
        let names: Vec<String> = match &self.token_env {
            Some(n) => vec![n.clone()],
            None => vec!["MACBRIDGE_GITHUB_TOKEN".into(), "GITHUB_TOKEN".into()],
        };
        let token = names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|t| !t.is_empty()))
            .ok_or_else(|| GitHubError::NoToken(names.join(" or ")))?;
        let api = self
            .api_url
            .clone()
            .unwrap_or_else(|| "https://api.github.com".to_string());
        Ok((repo, token, api))
    }
}

#[cfg(feature = "github")]
mod api {
    use serde_json::{Value, json};

    use super::{GitHubError, StatusState};

    /// A current-thread runtime and a client built inside it (octocrab's middleware needs a
    /// runtime at construction).
    fn client(
        token: &str,
        api: &str,
    ) -> Result<(tokio::runtime::Runtime, octocrab::Octocrab), GitHubError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GitHubError::Api(e.to_string()))?;
        let gh = {
            let _inside = rt.enter();
            octocrab::Octocrab::builder()
                .base_uri(api)
                .map_err(|e| GitHubError::Api(e.to_string()))?
                .personal_token(token.to_string())
                .build()
                .map_err(|e| GitHubError::Api(e.to_string()))?
        };
        Ok((rt, gh))
    }

    pub fn set_status(
        (repo, token, api): &(String, String, String),
        sha: &str,
        state: StatusState,
        description: &str,
    ) -> Result<(), GitHubError> {
        let (rt, gh) = client(token, api)?;
        let body = json!({
            "state": state,
            "context": "macbridge",
            // GitHub caps descriptions at 140 characters.
            "description": description.chars().take(140).collect::<String>(),
        });
        let route = format!("/repos/{repo}/statuses/{sha}");
        rt.block_on(async { gh.post::<_, Value>(route, Some(&body)).await })
            .map(|_| ())
            .map_err(|e| GitHubError::Api(e.to_string()))
    }

    pub fn dispatch(
        (repo, token, api): &(String, String, String),
        branch: &str,
    ) -> Result<(), GitHubError> {
        let (rt, gh) = client(token, api)?;
        let body =
            json!({"event_type": "mac-bridge-request", "client_payload": {"branch": branch}});
        let route = format!("/repos/{repo}/dispatches");
        // 204 No Content on success: read it as raw, not JSON.
        let response = rt
            .block_on(async { gh._post(route, Some(&body)).await })
            .map_err(|e| GitHubError::Api(e.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(GitHubError::Api(format!(
                "dispatch answered {}",
                response.status()
            )))
        }
    }

    pub fn statuses(
        (repo, token, api): &(String, String, String),
        sha: &str,
    ) -> Result<Vec<Value>, GitHubError> {
        let (rt, gh) = client(token, api)?;
        let route = format!("/repos/{repo}/commits/{sha}/statuses");
        rt.block_on(async { gh.get::<Vec<Value>, _, ()>(route, None).await })
            .map_err(|e| GitHubError::Api(e.to_string()))
    }
}

/// Set the `macbridge` commit status on `sha`.
pub fn set_status(
    resolved: &(String, String, String),
    sha: &str,
    state: StatusState,
    description: &str,
) -> Result<(), GitHubError> {
    #[cfg(feature = "github")]
    return api::set_status(resolved, sha, state, description);
    #[cfg(not(feature = "github"))]
    {
        let _ = (resolved, sha, state, description);
        Err(GitHubError::NotBuilt)
    }
}

/// Start the Actions workflow for `branch` (`repository_dispatch`, type `mac-bridge-request`).
pub fn dispatch(resolved: &(String, String, String), branch: &str) -> Result<(), GitHubError> {
    #[cfg(feature = "github")]
    return api::dispatch(resolved, branch);
    #[cfg(not(feature = "github"))]
    {
        let _ = (resolved, branch);
        Err(GitHubError::NotBuilt)
    }
}

/// The commit statuses on `sha`, newest first, as GitHub returns them.
pub fn statuses(
    resolved: &(String, String, String),
    sha: &str,
) -> Result<Vec<serde_json::Value>, GitHubError> {
    #[cfg(feature = "github")]
    return api::statuses(resolved, sha);
    #[cfg(not(feature = "github"))]
    {
        let _ = (resolved, sha);
        Err(GitHubError::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repos_parse_from_github_remotes_only() {
        for remote in [
            "git@github.com:acme/bus.git",
            "https://github.com/acme/bus",
            "https://github.com/acme/bus.git/",
            "ssh://git@github.com/acme/bus.git",
        ] {
            assert_eq!(
                repo_from_remote(remote).as_deref(),
                Some("acme/bus"),
                "{remote}"
            );
        }
        for remote in [
            "/srv/bus.git",
            "https://gitlab.com/acme/bus",
            "git@github.com:acme",
            "https://github.com/a/b/c",
        ] {
            assert_eq!(repo_from_remote(remote), None, "{remote}");
        }
    }
}
