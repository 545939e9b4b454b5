//! Where the workspace binaries under test live, and making sure they are current.
//!
//! `cargo test --workspace` builds every package's binaries before it runs any test, because
//! each binary-owning package (client, runner, engine, evidence-gate) has an integration test.
//! The binaries then sit next to this test executable, in `target/<profile>/`, and are used
//! from there when they are current.
//!
//! Run alone (`cargo test -p macbridge-e2e`), nothing guarantees that: a binary may be missing
//! or older than the sources. A nested `cargo build` into the same target folder would wait
//! forever on the lock the outer `cargo test` holds, so instead the four binaries are built
//! into their own target folder, `target/e2e-bins/`, and used from there. Cargo keeps that
//! folder incremental, so only the first such run pays for a full build.
//!
//! "Current" is decided the way cargo decides it: the dep-info file cargo writes beside each
//! binary (`target/<profile>/<bin>.d`) lists every source file, `include_str!` input and
//! build-script input the binary was built from; the binary is current when none of those
//! inside the workspace is missing or newer than it. A stale binary is never used silently:
//! the reason is printed before the fallback build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The binaries the end-to-end tests run, and the packages that own them.
const BINARIES: &[(&str, &str)] = &[
    ("macbridge", "macbridge"),
    ("macbridge-runner", "macbridge-runner"),
    ("kakeya", "kakeya-engine"),
    ("evidence-gate", "evidence-gate"),
];

/// The cargo profile folder (`target/<profile>/`) that holds the test executable.
///
/// A test executable lives at `target/<profile>/deps/e2e-<hash>`, so the binaries built by
/// the same `cargo test` are two levels up.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test executable location {}", exe.display()))
        .to_path_buf()
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The folder holding current copies of every binary in [`BINARIES`]; decided once per test
/// process, building them if needed.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(locate_or_build) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// The path of workspace binary `name`.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
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

fn locate_or_build() -> Result<PathBuf, String> {
    let root = workspace_root();
    let beside = profile_dir();
    let problems = stale_reasons(&beside, &root);
    if problems.is_empty() {
        return Ok(beside);
    }
    let target = beside
        .parent()
        .map(|t| t.join("e2e-bins"))
        .ok_or_else(|| format!("no target folder above {}", beside.display()))?;
    eprintln!(
        "macbridge-e2e: not using the binaries in {} ({}); building them into {}",
        beside.display(),
        problems.join("; "),
        target.display()
    );
    build_into(&target, &root)?;
    let built = target.join("release");
    let left = stale_reasons(&built, &root);
    if left.is_empty() {
        Ok(built)
    } else {
        Err(format!(
            "after building into {}, binaries are still not current: {}",
            target.display(),
            left.join("; ")
        ))
    }
}

/// Why the binaries in `dir` cannot be used (empty: they are all current).
fn stale_reasons(dir: &Path, root: &Path) -> Vec<String> {
    BINARIES
        .iter()
        .filter_map(|(name, _)| stale_reason(&dir.join(name), root))
        .collect()
}

fn stale_reason(bin: &Path, root: &Path) -> Option<String> {
    let name = bin.file_name()?.to_string_lossy().into_owned();
    let Some(built) = modified(bin) else {
        return Some(format!("{name} is missing"));
    };
    let dep_info = bin.with_file_name(format!("{name}.d"));
    let Ok(text) = std::fs::read_to_string(&dep_info) else {
        return Some(format!(
            "{name} has no dep-info file {}",
            dep_info.display()
        ));
    };
    for input in dep_info_inputs(&text) {
        let path = Path::new(&input);
        if !path.starts_with(root) || path.starts_with(root.join("target")) {
            continue;
        }
        match modified(path) {
            None => return Some(format!("{name} was built from {input}, which is gone")),
            Some(t) if t > built => {
                return Some(format!("{input} changed after {name} was built"));
            }
            Some(_) => {}
        }
    }
    None
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The inputs listed in a Makefile-style dep-info file (`target: in1 in2 ...`), with cargo's
/// `\ ` escapes for spaces undone. Only the first rule (the binary itself) counts.
fn dep_info_inputs(text: &str) -> Vec<String> {
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        return Vec::new();
    };
    let Some((_, inputs)) = line.split_once(": ") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = inputs.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ' ' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `cargo build --release` of the four binaries into `target`, a folder no outer cargo
/// holds a lock on.
fn build_into(target: &Path, root: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--bins"])
        .env("CARGO_TARGET_DIR", target);
    for (_, package) in BINARIES {
        cmd.args(["-p", package]);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cargo:?} to build the binaries under test: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the binaries under test failed ({status}): {cmd:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_is_parsed_like_make() {
        let text = "/t/release/mb: /w/a.rs /w/dir\\ x/b.rs  /w/c.rs\n\n/w/a.rs:\n";
        assert_eq!(
            dep_info_inputs(text),
            vec!["/w/a.rs", "/w/dir x/b.rs", "/w/c.rs"]
        );
        assert!(dep_info_inputs("").is_empty());
    }

    #[test]
    fn a_binary_older_than_a_source_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let src = root.join("a.rs");
        let bin = root.join("out").join("mb");
        std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
        std::fs::write(&src, "x").expect("write");
        std::fs::write(&bin, "bin").expect("write");
        let dep = format!("{}: {}\n", bin.display(), src.display());
        std::fs::write(bin.with_file_name("mb.d"), dep).expect("write");
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let set = |p: &Path, t: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_modified(t))
                .expect("set mtime")
        };
        set(&src, old);
        assert_eq!(stale_reason(&bin, root), None);
        set(&bin, old - std::time::Duration::from_secs(10));
        let reason = stale_reason(&bin, root).unwrap_or_default();
        assert!(reason.contains("changed after mb was built"), "{reason}");
        std::fs::remove_file(&src).expect("rm");
        let reason = stale_reason(&bin, root).unwrap_or_default();
        assert!(reason.contains("which is gone"), "{reason}");
        assert!(
            stale_reason(&root.join("out").join("nope"), root)
                .unwrap_or_default()
                .contains("missing")
        );
    }
}
