//! Git access for the bus: the network goes through the system `git` (so a remote's usual
//! credentials, ssh config and credential helpers just work), while objects are read and
//! written with libgit2 in a private bare cache repository. Nothing here ever checks out
//! into, or even looks at, a user's work tree.

mod command;
mod objects;

use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::Repository;

pub use command::GitCommandError;
pub use git2::Oid;
pub use objects::{TreeChange, checkout_commit, read_blob, read_dir_blobs, write_commit};

/// Where fetched remote refs are mirrored in the cache: `refs/heads/x` → `refs/bus/heads/x`.
const LOCAL_PREFIX: &str = "refs/bus/";

/// Errors from bus git operations.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(transparent)]
    Command(#[from] GitCommandError),
    #[error("git object database: {0}")]
    Git2(#[from] git2::Error),
    #[error("cannot prepare cache repository {path}: {source}")]
    Cache {
        path: String,
        source: std::io::Error,
    },
    #[error("object {path} in commit {commit} is {size} bytes, over the {limit} byte limit")]
    TooLarge {
        commit: String,
        path: String,
        size: usize,
        limit: usize,
    },
    #[error("unexpected output from git {what}: {line:?}")]
    Parse { what: &'static str, line: String },
}

/// One ref update in a push. Updates are never forced: a new ref is created only if absent
/// (its commit has no parent there to fast-forward from), and an existing ref moves only
/// by fast-forward from the value the pusher built on. Git's ref locking makes each of these
/// a compare-and-swap on the server.
#[derive(Debug, Clone)]
pub struct PushUpdate {
    pub src: Oid,
    pub dst: String,
}

/// What the remote said to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Some ref was not updated (someone else moved it first); with `--atomic`, none was.
    Rejected {
        reasons: Vec<(String, String)>,
    },
}

/// A bus remote plus the local cache repository used to talk to it.
pub struct Bus {
    remote: String,
    cache_path: PathBuf,
    repo: Repository,
    /// Limit on each network command; a `Cell` so a runner holding a lease can shorten it
    /// for the calls it makes while its lease is about to lapse.
    timeout: std::cell::Cell<Duration>,
}

impl Bus {
    /// Open (creating if needed) the cache repository at `cache_path` for `remote`.
    pub fn open(remote: &str, cache_path: &Path) -> Result<Self, GitError> {
        let repo = match Repository::open_bare(cache_path) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(cache_path).map_err(|source| GitError::Cache {
                    path: cache_path.display().to_string(),
                    source,
                })?;
                // Another process may have created it between our two calls.
                Repository::init_bare(cache_path).or_else(|_| Repository::open_bare(cache_path))?
            }
        };
        Ok(Bus {
            remote: remote.to_string(),
            cache_path: cache_path.to_path_buf(),
            repo,
            timeout: std::cell::Cell::new(Duration::from_secs(120)),
        })
    }

    /// Limit every network command to `timeout`.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.timeout.set(timeout);
        self
    }

    /// Run `f` with every network command limited to `limit` (at most the usual limit), then
    /// restore the usual limit. A runner whose lease lapses soon uses it so that a hung
    /// connection cannot keep it past the moment it must stop its job.
    pub fn within<T>(&self, limit: Duration, f: impl FnOnce(&Bus) -> T) -> T {
        let usual = self.timeout.get();
        self.timeout.set(limit.min(usual));
        let out = f(self);
        self.timeout.set(usual);
        out
    }

    pub fn remote(&self) -> &str {
        &self.remote
    }

    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Refs on the remote matching any of `patterns` (git ls-remote patterns, e.g.
    /// `refs/heads/mac-bridge/*`), with their commit ids.
    pub fn ls_remote(&self, patterns: &[&str]) -> Result<Vec<(String, Oid)>, GitError> {
        let mut args = vec!["ls-remote", "--", self.remote.as_str()];
        args.extend_from_slice(patterns);
        let out = command::run(&self.cache_path, &args, self.timeout.get())?;
        let mut refs = Vec::new();
        for line in out.stdout.lines().filter(|l| !l.is_empty()) {
            let Some((oid, name)) = line.split_once('\t') else {
                return Err(GitError::Parse {
                    what: "ls-remote",
                    line: line.to_string(),
                });
            };
            let oid = Oid::from_str(oid).map_err(|_| GitError::Parse {
                what: "ls-remote",
                line: line.to_string(),
            })?;
            refs.push((name.to_string(), oid));
        }
        Ok(refs)
    }

    /// Fetch the named remote refs into the cache. Refs that vanished in between are
    /// reported by git as an error, so callers list first and fetch what exists.
    pub fn fetch(&self, refs: &[String]) -> Result<(), GitError> {
        if refs.is_empty() {
            return Ok(());
        }
        // Many refs at once keep the command line short enough by chunking.
        for chunk in refs.chunks(200) {
            let specs: Vec<String> = chunk
                .iter()
                .map(|r| format!("+{r}:{}", local_name(r)))
                .collect();
            let mut args = vec![
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--quiet",
                "--",
                self.remote.as_str(),
            ];
            args.extend(specs.iter().map(String::as_str));
            command::run(&self.cache_path, &args, self.timeout.get())?;
        }
        Ok(())
    }

    /// Copy commit `rev` of another repository (e.g. the requester's checkout) into the cache,
    /// without touching that repository's work tree. Returns the commit id.
    pub fn import_commit(&self, repo: &str, rev: &str) -> Result<Oid, GitError> {
        let local = "refs/bus-import/workload";
        let spec = format!("+{rev}:{local}");
        command::run(
            &self.cache_path,
            &[
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--quiet",
                "--",
                repo,
                &spec,
            ],
            self.timeout.get(),
        )?;
        Ok(self.repo.refname_to_id(local)?)
    }

    /// Drop cached copies of remote refs under `prefix` that are not in `present` (deleted on
    /// the remote), so their objects become garbage for [`Bus::gc_auto`].
    pub fn prune_cache(&self, prefix: &str, present: &[String]) -> Result<usize, GitError> {
        let keep: std::collections::BTreeSet<String> =
            present.iter().map(|r| local_name(r)).collect();
        let mut removed = 0;
        for reference in self
            .repo
            .references_glob(&format!("{}*", local_name(prefix)))?
        {
            let mut reference = reference?;
            let Ok(name) = reference.name().map(str::to_string) else {
                continue;
            };
            if !keep.contains(&name) {
                reference.delete()?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Let git pack and prune the cache when it thinks it is worth it.
    pub fn gc_auto(&self) -> Result<(), GitError> {
        command::run(
            &self.cache_path,
            &["gc", "--auto", "--quiet"],
            self.timeout.get(),
        )?;
        Ok(())
    }

    /// The commit a remote ref pointed to at the last fetch.
    pub fn fetched(&self, remote_ref: &str) -> Option<Oid> {
        self.repo.refname_to_id(&local_name(remote_ref)).ok()
    }

    /// Push updates; with `atomic`, all of them land or none does.
    pub fn push(&self, updates: &[PushUpdate], atomic: bool) -> Result<PushOutcome, GitError> {
        let specs: Vec<String> = updates
            .iter()
            .map(|u| format!("{}:{}", u.src, u.dst))
            .collect();
        let mut args = vec!["push", "--porcelain", "--no-verify"];
        if atomic {
            args.push("--atomic");
        }
        args.push("--");
        args.push(self.remote.as_str());
        args.extend(specs.iter().map(String::as_str));
        push_outcome(command::run(&self.cache_path, &args, self.timeout.get()))
    }

    /// Update some refs and delete others in one atomic push (used by retention clean-up).
    /// Each deletion names the value it expects, so a ref that moved meanwhile is left alone
    /// and, the push being atomic, nothing else changes either.
    pub fn push_and_delete(
        &self,
        updates: &[PushUpdate],
        deletions: &[(String, Oid)],
    ) -> Result<PushOutcome, GitError> {
        if updates.is_empty() && deletions.is_empty() {
            return Ok(PushOutcome::Accepted);
        }
        let leases: Vec<String> = deletions
            .iter()
            .map(|(r, oid)| format!("--force-with-lease={r}:{oid}"))
            .collect();
        let mut specs: Vec<String> = updates
            .iter()
            .map(|u| format!("{}:{}", u.src, u.dst))
            .collect();
        specs.extend(deletions.iter().map(|(r, _)| format!(":{r}")));
        let mut args = vec!["push", "--porcelain", "--no-verify", "--atomic"];
        args.extend(leases.iter().map(String::as_str));
        args.push("--");
        args.push(self.remote.as_str());
        args.extend(specs.iter().map(String::as_str));
        push_outcome(command::run(&self.cache_path, &args, self.timeout.get()))
    }
}

fn push_outcome(result: Result<command::Output, GitCommandError>) -> Result<PushOutcome, GitError> {
    match result {
        Ok(_) => Ok(PushOutcome::Accepted),
        Err(GitCommandError::Failed {
            command,
            status,
            stdout,
            stderr,
        }) => match parse_rejections(&stdout, &stderr) {
            Some(reasons) => Ok(PushOutcome::Rejected { reasons }),
            None => Err(GitCommandError::Failed {
                command,
                status,
                stdout,
                stderr,
            }
            .into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// The cache-local name of a remote ref.
pub fn local_name(remote_ref: &str) -> String {
    format!(
        "{LOCAL_PREFIX}{}",
        remote_ref.strip_prefix("refs/").unwrap_or(remote_ref)
    )
}

/// Rejected refs from `git push --porcelain` output, or `None` when the failure was not a
/// rejection (network, auth, a missing remote) and may be worth retrying.
fn parse_rejections(stdout: &str, stderr: &str) -> Option<Vec<(String, String)>> {
    let reasons: Vec<(String, String)> = stdout
        .lines()
        .filter(|l| l.starts_with('!'))
        .map(|l| {
            let mut parts = l.splitn(3, '\t');
            let _flag = parts.next();
            let refs = parts.next().unwrap_or("");
            let why = parts.next().unwrap_or("rejected");
            let dst = refs.rsplit(':').next().unwrap_or(refs);
            (dst.to_string(), why.to_string())
        })
        .collect();
    if !reasons.is_empty() {
        return Some(reasons);
    }
    // Older transports report atomic failures only on stderr.
    if stderr.contains("atomic push failed") || stderr.contains("[rejected]") {
        return Some(vec![(String::new(), stderr.trim().to_string())]);
    }
    None
}
