//! Where the workspace binaries under test live.

use std::path::{Path, PathBuf};

/// The cargo profile folder (`target/<profile>/`) that holds the test executable.
///
/// A test executable lives at `target/<profile>/deps/e2e-<hash>`, so the binaries built by
/// the same `cargo build` are two levels up.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test executable location {}", exe.display()))
        .to_path_buf()
}

/// The path of workspace binary `name`, panicking with the build command if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --release --workspace` first \
         (the e2e tests run the real binaries from the same target folder)",
        path.display()
    );
    path
}

/// The requester CLI.
pub fn macbridge() -> PathBuf {
    bin("macbridge")
}

/// The runner daemon.
pub fn runner() -> PathBuf {
    bin("macbridge-runner")
}

/// The engine.
pub fn kakeya() -> PathBuf {
    bin("kakeya")
}

/// The evidence gate CLI.
pub fn evidence_gate() -> PathBuf {
    bin("evidence-gate")
}
