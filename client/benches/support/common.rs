//! Pieces both bus benchmarks use: finding the built binaries, env knobs, percentiles, and a
//! child process that is stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A numeric knob from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `target/release/`, checked to hold the three binaries the benchmarks run.
pub fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for name in ["macbridge", "macbridge-runner", "kakeya"] {
        assert!(
            dir.join(name).is_file(),
            "{} missing: run `cargo build --release --workspace` first",
            dir.join(name).display()
        );
    }
    dir
}

/// The q-quantile (nearest rank) of `values`; NaN when empty.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// A runner process, stopped with SIGTERM (it shuts down between polls) when dropped.
pub struct Stopped(pub Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: sending SIGTERM to our own child process.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

/// Runs the real `macbridge` client with its own cache, failing the benchmark on an error.
pub struct Client {
    pub bin: PathBuf,
    pub cache: PathBuf,
}

impl Client {
    /// stdout of `macbridge ARGS`.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .env("MACBRIDGE_CACHE", &self.cache)
            .output()
            .expect("running macbridge");
        assert!(
            out.status.success(),
            "macbridge {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
