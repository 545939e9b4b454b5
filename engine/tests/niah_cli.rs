//! NIAH through the `kakeya` binary: the constructed retrieval model recalls the needle with
//! the raw cache up to 2 048 tokens, the report passes the gate (and a tampered one does
//! not), the heatmaps are valid SVG, and chunked prefill equals one-shot prefill.

mod common;

use common::cli::{gate, kakeya};

use std::process::Command;

use kakeya_engine::eval::niah;
use kakeya_engine::model::{CausalLm, KernelChoice, KvChannel, LoadOptions};
use kakeya_engine::tiny::retrieval::{RetrievalSpec, write_retrieval};
use serde_json::Value;

/// Well-formed enough to be an SVG: XML prolog, one `<svg>` root closed at the end, every
/// element closed in order.
fn assert_valid_svg(text: &str, cells: usize) {
    assert!(text.starts_with("<?xml"), "no XML prolog");
    let body = text.trim_end();
    assert!(body.ends_with("</svg>"));
    let mut stack: Vec<String> = Vec::new();
    let mut rest = &body[body.find("?>").unwrap() + 2..];
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert!(body.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    // One rect per cell plus the background.
    assert_eq!(body.matches("<rect").count(), cells + 1);
}

#[test]
fn retrieval_model_recalls_and_the_report_gates() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let made = kakeya(&[
        "make-tiny-model",
        "--recipe",
        "retrieval",
        "--out",
        &p("ret"),
        "--seed",
        "3",
        "--pad-layers",
        "0",
    ]);
    let made: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(made["recipe"], "retrieval");
    kakeya(&[
        "niah",
        "--model",
        &p("ret"),
        "--kv",
        "raw,e8-q38",
        "--context-lens",
        "300,2048",
        "--depths",
        "0,0.5,1",
        "--seed",
        "5",
        "--out",
        &p("r/niah.json"),
    ]);
    let report_path = dir.path().join("r/niah.json");
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(gate(&report_path), Vec::<String>::new());
    let raw = report["summary"]["recall_by_kv"]["raw"].as_f64().unwrap();
    assert!(raw >= 0.9, "raw-cache recall {raw}");
    let cells = report["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2 * 2 * 3);
    for c in cells {
        for k in ["kv", "context_len", "depth", "recall", "agrees_with_raw"] {
            assert!(c.get(k).is_some(), "cell lacks {k}");
        }
    }
    for s in report["samples"].as_array().unwrap() {
        assert_eq!(s["prompt_tokens"], s["context_len"]);
        if s["depth"] == 0.0 {
            assert_eq!(s["needle_token_index"], 1, "depth 0: right after <s>");
        }
    }
    for kv in ["raw", "e8-q38"] {
        let svg = std::fs::read_to_string(dir.path().join(format!("r/niah-{kv}.svg"))).unwrap();
        assert_valid_svg(&svg, 6);
    }
    // Tampering: flip a hit against its answer, or drop the oracle.
    let mut bad = report.clone();
    let s0 = &mut bad["samples"][1];
    let hit = s0["hit"].as_bool().unwrap();
    s0["hit"] = Value::from(!hit);
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
    let v = gate(&dir.path().join("bad.json"));
    assert!(v.iter().any(|m| m.starts_with("RECALL_MISMATCH")), "{v:?}");
    let mut bad = report.clone();
    let kept: Vec<Value> = bad["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kv"] != "raw")
        .cloned()
        .collect();
    bad["samples"] = Value::from(kept);
    std::fs::write(dir.path().join("bad2.json"), bad.to_string()).unwrap();
    let v = gate(&dir.path().join("bad2.json"));
    assert!(v.iter().any(|m| m.starts_with("NO_ORACLE")), "{v:?}");
}

#[test]
fn chunked_prefill_equals_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ret");
    write_retrieval(
        &RetrievalSpec {
            pad: 0,
            ..Default::default()
        },
        &path,
    )
    .unwrap();
    let prompt: Vec<u32> = (0..400u32).map(|i| 3 + (i * 7 + i / 13) % 90).collect();
    for kernels in [KernelChoice::Auto, KernelChoice::Candle] {
        let model = CausalLm::load(
            &path,
            &LoadOptions {
                kernels,
                ..Default::default()
            },
        )
        .unwrap();
        for ch in ["raw", "e8-q10"] {
            let ch: KvChannel = ch.parse().unwrap();
            let last = |chunk: usize| -> Vec<f32> {
                let mut cache = model.new_cache(&ch).unwrap();
                niah::prefill(&model, &mut cache, &prompt, chunk)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let one = last(prompt.len());
            let scale = one.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
            for chunk in [7, 128] {
                let got = last(chunk);
                let d = one
                    .iter()
                    .zip(&got)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
                    / scale;
                if kernels == KernelChoice::Auto {
                    assert_eq!(d, 0.0, "exact kernels: chunk {chunk} differs on {ch}");
                } else {
                    assert!(d <= niah::CHUNK_TOLERANCE, "chunk {chunk} on {ch}: {d}");
                }
            }
        }
    }
}

#[test]
fn bad_niah_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("ret");
    write_retrieval(
        &RetrievalSpec {
            pad: 0,
            ..Default::default()
        },
        &m,
    )
    .unwrap();
    let m = m.display().to_string();
    for (args, want) in [
        (vec!["--depths", "1.5"], "--depths"),
        (vec!["--context-lens", "20"], "no room for filler"),
        (vec!["--kv", "e9-q3"], "invalid kv channel"),
        (vec!["--context-lens", "9000"], "max_position_embeddings"),
        (vec!["--haystack", "/nonexistent/file"], "haystack"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kakeya"))
            .args(["niah", "--model", &m, "--out"])
            .arg(dir.path().join("x.json"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
}
