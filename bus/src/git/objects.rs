//! Reading and writing commits in the cache repository's object database.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{FileMode, ObjectType, Oid, Repository, Signature, Tree};

use super::GitError;

/// One file to add, replace or remove in a commit's tree (`/`-separated path).
#[derive(Debug, Clone)]
pub struct TreeChange {
    pub path: String,
    /// New contents, or `None` to remove the file.
    pub contents: Option<Vec<u8>>,
}

impl TreeChange {
    pub fn put(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        TreeChange {
            path: path.into(),
            contents: Some(contents.into()),
        }
    }
}

/// Read the file at `path` in `commit`, refusing anything over `limit` bytes.
pub fn read_blob(
    repo: &Repository,
    commit: Oid,
    path: &str,
    limit: usize,
) -> Result<Option<Vec<u8>>, GitError> {
    let tree = repo.find_commit(commit)?.tree()?;
    let entry = match tree.get_path(Path::new(path)) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(None);
    }
    let blob = repo.find_blob(entry.id())?;
    if blob.size() > limit {
        return Err(GitError::TooLarge {
            commit: commit.to_string(),
            path: path.to_string(),
            size: blob.size(),
            limit,
        });
    }
    Ok(Some(blob.content().to_vec()))
}

/// Write a commit whose tree is `base` (or empty) with `changes` applied. No ref is moved.
pub fn write_commit(
    repo: &Repository,
    parents: &[Oid],
    base: Option<Oid>,
    changes: &[TreeChange],
    message: &str,
) -> Result<Oid, GitError> {
    let base_tree = match base {
        Some(commit) => Some(repo.find_commit(commit)?.tree()?),
        None => None,
    };
    let mut edits: BTreeMap<Vec<String>, Option<Oid>> = BTreeMap::new();
    for change in changes {
        let blob = match &change.contents {
            Some(bytes) => Some(repo.blob(bytes)?),
            None => None,
        };
        let parts: Vec<String> = change
            .path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        edits.insert(parts, blob);
    }
    let tree_id = edit_tree(repo, base_tree.as_ref(), &edits)?;
    let tree = repo.find_tree(tree_id)?;
    let parent_commits = parents
        .iter()
        .map(|p| repo.find_commit(*p))
        .collect::<Result<Vec<_>, _>>()?;
    let parent_refs: Vec<&git2::Commit> = parent_commits.iter().collect();
    let sig = Signature::now("macbridge", "macbridge@localhost")?;
    Ok(repo.commit(None, &sig, &sig, message, &tree, &parent_refs)?)
}

fn edit_tree(
    repo: &Repository,
    base: Option<&Tree>,
    edits: &BTreeMap<Vec<String>, Option<Oid>>,
) -> Result<Oid, GitError> {
    let mut builder = repo.treebuilder(base)?;
    // Group edits by their first path component: leaves are applied here, the rest recurse.
    let mut nested: BTreeMap<String, BTreeMap<Vec<String>, Option<Oid>>> = BTreeMap::new();
    for (parts, blob) in edits {
        match parts.as_slice() {
            [] => {}
            [name] => match blob {
                Some(oid) => {
                    builder.insert(name, *oid, FileMode::Blob.into())?;
                }
                None => {
                    if builder.get(name)?.is_some() {
                        builder.remove(name)?;
                    }
                }
            },
            [dir, rest @ ..] => {
                nested
                    .entry(dir.clone())
                    .or_default()
                    .insert(rest.to_vec(), *blob);
            }
        }
    }
    for (dir, sub_edits) in nested {
        let existing = match builder.get(&dir)? {
            Some(entry) if entry.kind() == Some(ObjectType::Tree) => {
                Some(repo.find_tree(entry.id())?)
            }
            _ => None,
        };
        let sub = edit_tree(repo, existing.as_ref(), &sub_edits)?;
        if repo.find_tree(sub)?.is_empty() {
            if builder.get(&dir)?.is_some() {
                builder.remove(&dir)?;
            }
        } else {
            builder.insert(&dir, sub, FileMode::Tree.into())?;
        }
    }
    Ok(builder.write()?)
}

/// Write the tree of `commit` into `dest` (which must not exist yet), keeping executable
/// bits and symlinks as they are in git. Used to materialise a signed workload commit.
pub fn checkout_commit(repo: &Repository, commit: Oid, dest: &Path) -> Result<(), GitError> {
    let tree = repo.find_commit(commit)?.tree()?;
    let io = |source| GitError::Cache {
        path: dest.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dest).map_err(io)?;
    write_tree(repo, &tree, dest)
}

fn write_tree(repo: &Repository, tree: &Tree, dir: &Path) -> Result<(), GitError> {
    for entry in tree.iter() {
        let Ok(name) = entry.name() else { continue };
        // Names come from a commit someone pushed: refuse anything that is not one plain
        // path component.
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('\0')
        {
            continue;
        }
        let path = dir.join(name);
        let io = |source| GitError::Cache {
            path: path.display().to_string(),
            source,
        };
        match entry.kind() {
            Some(ObjectType::Tree) => {
                std::fs::create_dir(&path).map_err(io)?;
                write_tree(repo, &repo.find_tree(entry.id())?, &path)?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(entry.id())?;
                if entry.filemode() == i32::from(FileMode::Link) {
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    std::os::unix::fs::symlink(target, &path).map_err(io)?;
                } else {
                    std::fs::write(&path, blob.content()).map_err(io)?;
                    if entry.filemode() == i32::from(FileMode::BlobExecutable) {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                            .map_err(io)?;
                    }
                }
            }
            // Submodules (commits) are not fetched; leave them out.
            _ => {}
        }
    }
    Ok(())
}

/// Every file directly inside `dir` in `commit` (not recursive), each capped at `limit` bytes;
/// larger files are skipped. Names are single path components by construction of git trees.
pub fn read_dir_blobs(
    repo: &Repository,
    commit: Oid,
    dir: &str,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>, GitError> {
    let tree = repo.find_commit(commit)?.tree()?;
    let entry = match tree.get_path(Path::new(dir)) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if entry.kind() != Some(ObjectType::Tree) {
        return Ok(Vec::new());
    }
    let sub = repo.find_tree(entry.id())?;
    let mut files = Vec::new();
    for item in sub.iter() {
        let Ok(name) = item.name() else { continue };
        if item.kind() != Some(ObjectType::Blob) || name.starts_with('.') || name.contains('/') {
            continue;
        }
        let blob = repo.find_blob(item.id())?;
        if blob.size() <= limit {
            files.push((name.to_string(), blob.content().to_vec()));
        }
    }
    Ok(files)
}
