//! Repo-relative paths: the lexical rules (checked when params are validated, before any
//! checkout exists) and the run-time symlink check (once the workspace is on disk).
//!
//! The lexical rules alone cannot stop `tests/link -> /etc`, because a symlink is content of
//! the signed commit; that is why [`resolve_within`] walks the real tree.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{PresetError, show};

/// Normalises a repo-relative path or says which rule it breaks.
///
/// Refused: empty, a leading `/` or `~`, a backslash, a Windows drive prefix (`C:`), control
/// characters, any `..` component, and a result that begins with `-` (it would read as an
/// option when the path is a whole argv token). `.` and empty components are dropped; the
/// result must still name something.
pub(crate) fn normalise_relative(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("a path must not be empty");
    }
    if raw.chars().any(char::is_control) {
        return Err("a path must not contain control characters");
    }
    if raw.starts_with('/') {
        return Err("a path must be repo-relative (no leading `/`)");
    }
    if raw.starts_with('~') {
        return Err("a path must be repo-relative (no leading `~`)");
    }
    if raw.contains('\\') {
        return Err("a path must use `/` separators (no backslashes)");
    }
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("a path must not start with a drive prefix");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err("a path must not contain a `..` component"),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err("a path must name something below the root (not only `.` or `/`)");
    }
    let normal = parts.join("/");
    if normal.starts_with('-') {
        return Err("a path must not start with `-`");
    }
    Ok(normal)
}

/// True when the normalised `path` equals `under` or lies below it (component-wise, so
/// `under: tests` does not admit `testsuite`).
pub(crate) fn is_under(path: &str, under: &str) -> bool {
    path == under
        || path
            .strip_prefix(under)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Joins repo-relative `rel` onto `root` and proves that the result stays inside `root` on
/// the real filesystem.
///
/// `rel` must pass the lexical rules. The walk goes component by component with
/// `symlink_metadata`: every symlink met on the way is resolved and must land inside the
/// canonicalised root; a dangling symlink is refused because its target cannot be checked.
/// Components that do not exist yet are fine (a job may create them): the deepest existing
/// ancestor has been checked, and the remaining components contain no `..`.
///
/// Returns the path below the canonical root, with in-root symlinks resolved.
pub fn resolve_within(root: &Path, rel: &str) -> Result<PathBuf, PresetError> {
    let escape = |rule: String| PresetError::PathEscape {
        preset: None,
        param: None,
        value: show(rel),
        rule,
    };
    let normal = normalise_relative(rel).map_err(|rule| escape(rule.to_owned()))?;
    let canonical_root = root.canonicalize().map_err(|e| PresetError::Io {
        path: root.display().to_string(),
        message: format!("cannot canonicalise the root: {e}"),
    })?;

    let mut current = canonical_root.clone();
    let mut components = normal.split('/');
    for part in components.by_ref() {
        let next = current.join(part);
        match next.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = next.canonicalize().map_err(|e| {
                    escape(format!(
                        "symlink {part:?} cannot be resolved ({e}); a dangling link is refused"
                    ))
                })?;
                if !target.starts_with(&canonical_root) {
                    return Err(escape(format!(
                        "symlink {part:?} points outside the root (to {})",
                        show(&target.display().to_string())
                    )));
                }
                current = target;
            }
            Ok(_) => current = next,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                // Nothing below here exists, so nothing below here can be a symlink.
                current = next;
                break;
            }
            Err(e) => {
                return Err(PresetError::Io {
                    path: next.display().to_string(),
                    message: format!("cannot inspect path component: {e}"),
                });
            }
        }
    }
    for part in components {
        current.push(part);
    }
    Ok(current)
}

#[cfg(test)]
mod tests;
