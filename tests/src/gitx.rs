//! Git plumbing with the system `git`: building request commits by hand in a scratch
//! repository, pushing them to a bus, and reading a bus back.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::proc::{self, Finished};

/// Longest any single git command may take.
const GIT_LIMIT: Duration = Duration::from_secs(60);

/// A `git` command isolated from the machine's git configuration, with a fixed identity.
pub fn git_cmd(git_dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir")
        .arg(git_dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "e2e crafter")
        .env("GIT_AUTHOR_EMAIL", "crafter@e2e.invalid")
        .env("GIT_COMMITTER_NAME", "e2e crafter")
        .env("GIT_COMMITTER_EMAIL", "crafter@e2e.invalid");
    cmd
}

/// Run git in `git_dir`, panicking on failure; returns trimmed stdout.
#[track_caller]
pub fn git(git_dir: &Path, args: &[&str]) -> String {
    git_in(git_dir, args, None).ok().stdout.trim().to_string()
}

/// Run git in `git_dir` with optional stdin, returning the raw outcome.
pub fn git_in(git_dir: &Path, args: &[&str], input: Option<&[u8]>) -> Finished {
    proc::run_with_input(git_cmd(git_dir).args(args), input, GIT_LIMIT)
}

/// Create an empty bare repository at `dir`.
#[track_caller]
pub fn init_bare(dir: &Path) {
    let out = proc::run(
        Command::new("git")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["init", "--quiet", "--bare"])
            .arg(dir),
        GIT_LIMIT,
    );
    out.ok();
}

/// Store `bytes` as a blob in `repo`; returns its id.
#[track_caller]
pub fn write_blob(repo: &Path, bytes: &[u8]) -> String {
    git_in(repo, &["hash-object", "-w", "--stdin"], Some(bytes))
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// One entry of a tree being built with `git mktree`.
pub struct Entry {
    pub mode: &'static str,
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

/// Build a tree from `entries` with `git mktree`; returns its id.
#[track_caller]
pub fn write_tree(repo: &Path, entries: &[Entry]) -> String {
    let listing: String = entries
        .iter()
        .map(|e| format!("{} {} {}\t{}\n", e.mode, e.kind, e.id, e.name))
        .collect();
    git_in(repo, &["mktree"], Some(listing.as_bytes()))
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// The entries of the tree of commit `commit`, as `git ls-tree` lists them.
#[track_caller]
pub fn tree_entries(repo: &Path, commit: &str) -> Vec<Entry> {
    git(repo, &["ls-tree", commit])
        .lines()
        .map(|line| {
            let (meta, name) = line.split_once('\t').expect("ls-tree line has a tab");
            let mut parts = meta.split_whitespace();
            let mode = parts.next().expect("mode");
            let kind = parts.next().expect("kind");
            Entry {
                mode: if mode == "040000" { "040000" } else { "100644" },
                kind: if kind == "tree" { "tree" } else { "blob" },
                id: parts.next().expect("id").to_string(),
                name: name.to_string(),
            }
        })
        .collect()
}

/// Build a commit whose tree is `base`'s tree (if any) plus a `.mac-bridge/` folder holding
/// `files` (name → bytes), with `base` as its only parent. Returns the commit id.
#[track_caller]
pub fn request_commit(repo: &Path, files: &[(&str, &[u8])], base: Option<&str>) -> String {
    let inner: Vec<Entry> = files
        .iter()
        .map(|(name, bytes)| Entry {
            mode: "100644",
            kind: "blob",
            id: write_blob(repo, bytes),
            name: name.to_string(),
        })
        .collect();
    let dir = write_tree(repo, &inner);
    let mut root: Vec<Entry> = match base {
        Some(commit) => tree_entries(repo, commit)
            .into_iter()
            .filter(|e| e.name != ".mac-bridge")
            .collect(),
        None => Vec::new(),
    };
    root.push(Entry {
        mode: "040000",
        kind: "tree",
        id: dir,
        name: ".mac-bridge".to_string(),
    });
    let tree = write_tree(repo, &root);
    let mut args = vec!["commit-tree", tree.as_str(), "-m", "crafted request"];
    if let Some(parent) = base {
        args.extend(["-p", parent]);
    }
    git(repo, &args)
}

/// Build a plain commit (no parent) whose root holds `files`; used as a workload.
#[track_caller]
pub fn plain_commit(repo: &Path, files: &[(&str, &[u8])]) -> String {
    let entries: Vec<Entry> = files
        .iter()
        .map(|(name, bytes)| Entry {
            mode: "100644",
            kind: "blob",
            id: write_blob(repo, bytes),
            name: name.to_string(),
        })
        .collect();
    let tree = write_tree(repo, &entries);
    git(repo, &["commit-tree", &tree, "-m", "crafted workload"])
}

/// Push `commit` from `repo` to `remote` as `dst` (a full ref name), panicking on refusal.
#[track_caller]
pub fn push(repo: &Path, remote: &Path, commit: &str, dst: &str) {
    let remote = remote.to_str().expect("utf-8 path");
    git_in(
        repo,
        &["push", "--quiet", remote, &format!("{commit}:{dst}")],
        None,
    )
    .ok();
}

/// Every ref in `repo` under `prefix`, as `(name, id)`.
pub fn refs(repo: &Path, prefix: &str) -> Vec<(String, String)> {
    git(
        repo,
        &["for-each-ref", "--format=%(refname) %(objectname)", prefix],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(n, id)| (n.to_string(), id.to_string()))
    .collect()
}

/// The id `rev` resolves to in `repo`, if it exists.
pub fn resolve(repo: &Path, rev: &str) -> Option<String> {
    let out = git_in(repo, &["rev-parse", "--verify", "--quiet", rev], None);
    out.status.success().then(|| out.stdout.trim().to_string())
}

/// The bytes of `path` in the tree of `rev`, if it exists.
pub fn read_file(repo: &Path, rev: &str, path: &str) -> Option<Vec<u8>> {
    let out = git_cmd(repo)
        .args(["cat-file", "blob", &format!("{rev}:{path}")])
        .output()
        .expect("running git cat-file");
    out.status.success().then_some(out.stdout)
}

/// The parents of commit `rev`.
#[track_caller]
pub fn parents(repo: &Path, rev: &str) -> Vec<String> {
    git(repo, &["rev-list", "--parents", "-n", "1", rev])
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Fetch `refspec` (e.g. `refs/heads/x:refs/heads/x`) from `remote` into `repo`.
#[track_caller]
pub fn fetch(repo: &Path, remote: &Path, refspec: &str) {
    let remote = remote.to_str().expect("utf-8 path");
    git_in(repo, &["fetch", "--quiet", remote, refspec], None).ok();
}

/// Delete `dst` (a full ref name) on `remote` with a push from `repo`.
#[track_caller]
pub fn push_delete(repo: &Path, remote: &Path, dst: &str) {
    let remote = remote.to_str().expect("utf-8 path");
    git_in(repo, &["push", "--quiet", remote, &format!(":{dst}")], None).ok();
}

/// The blobs named by `specs` (`<rev>:<path>`), read with one `git cat-file --batch`;
/// `None` for each spec that does not name a blob.
#[track_caller]
pub fn cat_blobs(repo: &Path, specs: &[String]) -> Vec<Option<Vec<u8>>> {
    if specs.is_empty() {
        return Vec::new();
    }
    let input: String = specs.iter().map(|s| format!("{s}\n")).collect();
    let out = git_cmd(repo)
        .args(["cat-file", "--batch"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let mut stdin = child.stdin.take().expect("piped stdin");
            std::io::Write::write_all(&mut stdin, input.as_bytes())?;
            drop(stdin);
            child.wait_with_output()
        })
        .expect("running git cat-file --batch");
    let bytes = out.stdout;
    let mut pos = 0;
    let mut found = Vec::with_capacity(specs.len());
    for spec in specs {
        let end = pos
            + bytes[pos..]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or_else(|| panic!("cat-file output ends early at {spec}"));
        let header = String::from_utf8_lossy(&bytes[pos..end]).into_owned();
        pos = end + 1;
        let fields: Vec<&str> = header.split_whitespace().collect();
        match fields.as_slice() {
            [_, kind, size] => {
                let size: usize = size.parse().expect("cat-file object size");
                let body = bytes[pos..pos + size].to_vec();
                pos += size + 1;
                found.push((*kind == "blob").then_some(body));
            }
            _ => found.push(None),
        }
    }
    found
}

/// Every `lease.json` on the claim ref of `request_id`, oldest first (empty without a claim).
pub fn lease_chain(repo: &Path, request_id: &str) -> Vec<serde_json::Value> {
    let claim = format!("refs/mac-bridge/claims/{request_id}");
    if resolve(repo, &claim).is_none() {
        return Vec::new();
    }
    let specs: Vec<String> = git(repo, &["log", "--reverse", "--format=%H", &claim])
        .lines()
        .map(|commit| format!("{commit}:lease.json"))
        .collect();
    cat_blobs(repo, &specs)
        .into_iter()
        .zip(&specs)
        .map(|(blob, spec)| {
            let blob = blob.unwrap_or_else(|| panic!("{spec} is missing"));
            serde_json::from_slice(&blob).unwrap_or_else(|e| panic!("{spec}: {e}"))
        })
        .collect()
}

/// Names of the entries of `dir`, sorted; empty when it does not exist.
pub fn sorted_entries(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
