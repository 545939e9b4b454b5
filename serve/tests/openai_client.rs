//! End-to-end: a real `kakeya serve` on loopback with tiny models, driven by the official
//! `openai` Python client (`max_retries=0`) in `py/client_suite.py`.
//!
//! The interpreter comes from `KAKEYA_TEST_PYTHON` (a venv with `openai`, made by `.ci/run`).
//! Without it the tests skip loudly, unless `KAKEYA_REQUIRE_PY_CLIENT=1` (set by `.ci/run`),
//! in which case they fail — CI cannot pass without having run the client.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Server, tiny_models, two_model_config};

fn python() -> Option<PathBuf> {
    let required = std::env::var("KAKEYA_REQUIRE_PY_CLIENT").is_ok_and(|v| v == "1");
    let found = std::env::var_os("KAKEYA_TEST_PYTHON")
        .map(PathBuf::from)
        .filter(|p| {
            Command::new(p)
                .args(["-c", "import openai"])
                .status()
                .is_ok_and(|s| s.success())
        });
    if found.is_none() {
        let msg = "KAKEYA_TEST_PYTHON does not name a Python with the `openai` package; \
                   run .ci/run (or make a venv: python3 -m venv v && v/bin/pip install openai, \
                   then KAKEYA_TEST_PYTHON=v/bin/python)";
        assert!(!required, "{msg}");
        eprintln!("\n!!!!!!!! SKIPPED openai client tests: {msg} !!!!!!!!\n");
    }
    found
}

fn suite() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/client_suite.py")
}

fn run_groups(server: &Server, groups: &[&str], key: Option<&str>) {
    let Some(py) = python() else { return };
    let mut cmd = Command::new(py);
    cmd.arg(suite())
        .args(groups)
        .env("KAKEYA_BASE_URL", server.base_url())
        .env("KAKEYA_QWEN", "tiny-qwen")
        .env("KAKEYA_LLAMA", "tiny-llama");
    if let Some(k) = key {
        cmd.env("KAKEYA_KEY", k);
    }
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client suite {groups:?} failed:\n{stdout}\n{stderr}"
    );
    for g in groups {
        assert!(
            stdout.contains(&format!("client_suite: {g}: ok")),
            "{stdout}"
        );
    }
}

fn two_model_server(args: &[&str], envs: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = tiny_models(dir.path());
    let cfg = two_model_config(dir.path(), &m);
    let cfg = cfg.display().to_string();
    let mut all = vec!["--config", cfg.as_str()];
    all.extend_from_slice(args);
    let s = Server::start(&all, envs);
    (dir, s)
}

#[test]
fn responses_streaming_sampling_extension_and_templates() {
    if python().is_none() {
        return;
    }
    let (_d, s) = two_model_server(&[], &[]);
    run_groups(&s, &["basic", "sampling", "kakeya", "templates"], None);
}

#[test]
fn every_error_status_has_the_openai_envelope() {
    if python().is_none() {
        return;
    }
    let (_d, s) = two_model_server(&[], &[]);
    run_groups(&s, &["errors"], None);
}

#[test]
fn api_key_from_the_environment_is_enforced() {
    if python().is_none() {
        return;
    }
    let (_d, s) = two_model_server(&[], &[("KAKEYA_API_KEY", "s3cret-key")]);
    run_groups(&s, &["auth"], Some("s3cret-key"));
}

#[test]
fn full_queue_is_refused_with_503() {
    if python().is_none() {
        return;
    }
    let (_d, s) = two_model_server(&["--max-queue", "1"], &[]);
    run_groups(&s, &["queue"], None);
}

#[test]
fn disconnect_cancels_and_concurrent_streams_match_sequential() {
    if python().is_none() {
        return;
    }
    let (_d, s) = two_model_server(&[], &[]);
    run_groups(&s, &["disconnect", "concurrent"], None);
}
