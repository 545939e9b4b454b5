//! The public contract through the `kakeya` binary: make-tiny-model (target and drafts),
//! generate --json, spec-decode --out and kv-quant-eval reports that the evidence gate
//! passes, and a tampered report that it fails.

mod common;

use common::cli::{gate, kakeya};

use std::process::Command;

#[test]
fn tiny_models_generate_spec_decode_and_gate() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    kakeya(&[
        "make-tiny-model",
        "--arch",
        "qwen3",
        "--out",
        &p("t"),
        "--seed",
        "77",
        "--layers",
        "3",
        "--hidden",
        "96",
        "--heads",
        "6",
        "--kv-heads",
        "2",
        "--vocab",
        "260",
    ]);
    // Same seed, same bytes.
    kakeya(&[
        "make-tiny-model",
        "--arch",
        "qwen3",
        "--out",
        &p("t2"),
        "--seed",
        "77",
        "--layers",
        "3",
        "--hidden",
        "96",
        "--heads",
        "6",
        "--kv-heads",
        "2",
        "--vocab",
        "260",
    ]);
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(dir.path().join("t").join(f)).unwrap(),
            std::fs::read(dir.path().join("t2").join(f)).unwrap(),
            "{f}"
        );
    }
    kakeya(&[
        "make-tiny-model",
        "--from",
        &p("t"),
        "--out",
        &p("d"),
        "--keep-layers",
        "1",
        "--noise",
        "0.1",
        "--seed",
        "3",
    ]);
    let out = kakeya(&[
        "generate",
        "--model",
        &p("t"),
        "--prompt",
        "the cache stores",
        "--max-new-tokens",
        "9",
        "--kv",
        "e8-q38",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tokens = v["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty() && tokens.len() <= 9);
    assert!(v["text"].is_string());

    let report = dir.path().join("sd.json");
    kakeya(&[
        "spec-decode",
        "--target",
        &p("t"),
        "--draft",
        &p("d"),
        "--block-size",
        "5",
        "--prompt",
        "Note 0042: the quick",
        "--max-new-tokens",
        "23",
        "--kv",
        "d4-q10-b1",
        "--out",
        &report.display().to_string(),
    ]);
    assert_eq!(gate(&report), Vec::<String>::new());
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["summary"]["lossless"], true);
    assert!(r["samples"].as_array().unwrap().len() >= 3);
    for s in r["samples"].as_array().unwrap() {
        assert_eq!(s["tokens"], s["ar_tokens"]);
    }
    r["samples"][0]["tokens"][0] = serde_json::json!(3);
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, r.to_string()).unwrap();
    assert!(gate(&tampered).iter().any(|v| v.starts_with("LOSSY")));

    let kvq = dir.path().join("kvq.json");
    kakeya(&[
        "kv-quant-eval",
        "--model",
        &p("t"),
        "--prompt-set",
        "long",
        "--eval-tokens",
        "6",
        "--out",
        &kvq.display().to_string(),
    ]);
    assert_eq!(gate(&kvq), Vec::<String>::new());
    let genr = dir.path().join("gen.json");
    kakeya(&[
        "generate",
        "--model",
        &p("t"),
        "--prompt-set",
        "code",
        "--max-new-tokens",
        "5",
        "--out",
        &genr.display().to_string(),
    ]);
    assert_eq!(gate(&genr), Vec::<String>::new());
}

#[test]
fn small_vocab_and_llama_models_work() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    kakeya(&[
        "make-tiny-model",
        "--arch",
        "llama",
        "--out",
        &p("l"),
        "--seed",
        "5",
        "--vocab",
        "256",
    ]);
    let out = kakeya(&[
        "generate",
        "--model",
        &p("l"),
        "--prompt",
        "abc",
        "--max-new-tokens",
        "4",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["tokens"].as_array().unwrap().len().min(4),
        v["tokens"].as_array().unwrap().len()
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_kakeya"))
        .args([
            "generate",
            "--model",
            &p("missing"),
            "--prompt",
            "x",
            "--max-new-tokens",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
