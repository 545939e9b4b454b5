use std::fs;
use std::os::unix::fs::symlink;

use super::*;

#[test]
fn lexical_rules_refuse_escapes() {
    for bad in [
        "",
        "/etc/passwd",
        "~/x",
        "~root",
        "..",
        "../x",
        "tests/../../x",
        "tests/..",
        "a\\b",
        "C:/x",
        "c:x",
        "a\0b",
        "a\nb",
        ".",
        "./",
        "//",
        "-rf",
        "./-k",
    ] {
        assert!(normalise_relative(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn lexical_rules_normalise() {
    assert_eq!(normalise_relative("tests/./x").as_deref(), Ok("tests/x"));
    assert_eq!(normalise_relative("tests//x/").as_deref(), Ok("tests/x"));
    assert_eq!(
        normalise_relative("./Cargo.toml").as_deref(),
        Ok("Cargo.toml")
    );
    assert_eq!(normalise_relative("tests/-k").as_deref(), Ok("tests/-k"));
    // `..` only counts as a whole component.
    assert_eq!(normalise_relative("a..b/c").as_deref(), Ok("a..b/c"));
}

#[test]
fn under_is_component_wise() {
    assert!(is_under("tests", "tests"));
    assert!(is_under("tests/x", "tests"));
    assert!(!is_under("testsuite", "tests"));
    assert!(!is_under("src/tests", "tests"));
    assert!(is_under("a/b/c", "a/b"));
}

#[test]
fn resolve_plain_and_missing_paths() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("tests")).unwrap();
    let root = dir.path().canonicalize().unwrap();
    assert_eq!(
        resolve_within(dir.path(), "tests/./new/file.rs").unwrap(),
        root.join("tests/new/file.rs")
    );
    assert_eq!(
        resolve_within(dir.path(), "tests").unwrap(),
        root.join("tests")
    );
}

#[test]
fn resolve_refuses_symlink_out_of_root() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("tests")).unwrap();
    symlink(outside.path(), dir.path().join("tests/link")).unwrap();
    let err = resolve_within(dir.path(), "tests/link/x").unwrap_err();
    assert_eq!(err.code(), "path_escape", "{err}");
    assert!(err.to_string().contains("outside the root"), "{err}");
    // The link itself (not only what is below it) is refused.
    assert!(resolve_within(dir.path(), "tests/link").is_err());
}

#[test]
fn resolve_refuses_relative_symlink_climbing_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("tests")).unwrap();
    symlink("../..", root.join("tests/up")).unwrap();
    assert!(resolve_within(&root, "tests/up/root/tests").is_err());
}

#[test]
fn resolve_accepts_symlink_inside_root() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("real/sub")).unwrap();
    symlink("real", dir.path().join("alias")).unwrap();
    let root = dir.path().canonicalize().unwrap();
    assert_eq!(
        resolve_within(dir.path(), "alias/sub/f").unwrap(),
        root.join("real/sub/f")
    );
}

#[test]
fn resolve_refuses_dangling_symlink() {
    let dir = tempfile::tempdir().unwrap();
    symlink("/nonexistent/macbridge-target", dir.path().join("d")).unwrap();
    let err = resolve_within(dir.path(), "d/x").unwrap_err();
    assert!(err.to_string().contains("dangling"), "{err}");
}

#[test]
fn resolve_through_a_symlinked_root_is_fine() {
    // The root itself may be reached through a symlink (macOS /var -> /private/var).
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("real")).unwrap();
    symlink(dir.path().join("real"), dir.path().join("root")).unwrap();
    assert!(resolve_within(&dir.path().join("root"), "x").is_ok());
}

#[test]
fn resolve_applies_lexical_rules_and_needs_a_root() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        resolve_within(dir.path(), "../x").unwrap_err().code(),
        "path_escape"
    );
    assert_eq!(
        resolve_within(&dir.path().join("missing"), "x")
            .unwrap_err()
            .code(),
        "io"
    );
}

#[test]
fn resolve_below_a_file_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), "x").unwrap();
    assert!(resolve_within(dir.path(), "f/g").is_ok());
}
