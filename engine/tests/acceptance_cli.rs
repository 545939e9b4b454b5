//! `kakeya make-tiny-model --arch dflash`, `kakeya spec-decode --drafter ...` and `kakeya
//! bench acceptance` through the binary: reports the evidence gate passes (and a tampered
//! one it fails), prompt files in all four JSONL shapes, and an SVG plot that parses.

mod common;

use common::cli::{gate, kakeya, read};

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Elements of a (simple, attribute-quoted) XML document, checking that tags nest.
fn svg_elements(s: &str) -> Vec<(String, String)> {
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        let j = rest[i..].find('>').expect("unterminated tag") + i;
        let tag = &rest[i + 1..j];
        rest = &rest[j + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
            continue;
        }
        let name = tag
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        assert!(
            tag.matches('"').count().is_multiple_of(2),
            "unbalanced quotes in <{tag}>"
        );
        out.push((name.to_string(), tag.to_string()));
        if !tag.ends_with('/') {
            stack.push(name.to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    out
}

#[test]
fn drafters_through_the_binary_and_the_acceptance_report_through_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    kakeya(&[
        "make-tiny-model",
        "--arch",
        "llama",
        "--out",
        &p("t"),
        "--seed",
        "5",
        "--layers",
        "2",
        "--hidden",
        "64",
        "--vocab",
        "300",
    ]);
    let made = kakeya(&[
        "make-tiny-model",
        "--arch",
        "dflash",
        "--target",
        &p("t"),
        "--out",
        &p("d"),
        "--seed",
        "6",
    ]);
    let desc: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(desc["mask_token_id"], 299);
    kakeya(&[
        "make-tiny-model",
        "--from",
        &p("t"),
        "--keep-layers",
        "1",
        "--out",
        &p("m"),
    ]);
    // Refusals with a clear message.
    let bad = Command::new(env!("CARGO_BIN_EXE_kakeya"))
        .args(["make-tiny-model", "--arch", "dflash", "--out", &p("x")])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--target"));

    for (drafter, dir_flag) in [("ngram", None), ("model", Some("m")), ("dflash", Some("d"))] {
        let out = p(&format!("sd_{drafter}.json"));
        let t = p("t");
        let mut args = vec![
            "spec-decode",
            "--target",
            &t,
            "--drafter",
            drafter,
            "--block-size",
            "6",
            "--prompt-set",
            "repeat",
            "--max-new-tokens",
            "20",
            "--out",
            &out,
        ];
        let d = dir_flag.map(p);
        if let Some(d) = &d {
            args.extend(["--draft", d.as_str()]);
        }
        kakeya(&args);
        let r = read(Path::new(&out));
        assert_eq!(r["summary"]["drafter"], drafter);
        assert_eq!(r["summary"]["lossless"], true);
        assert!(
            gate(Path::new(&out)).is_empty(),
            "{drafter}: {:?}",
            gate(Path::new(&out))
        );
    }

    let jsonl = dir.path().join("mixed.jsonl");
    std::fs::write(&jsonl, concat!(
        "{\"prompt\": \"the cache stores the key and value. the cache stores\"}\n",
        "\n",
        "{\"question\": \"a token reads sixteen values?\", \"answer\": \"so\\n#### 16\"}\n",
        "{\"prompt\": \"fn step(x: u32) -> u32 {\", \"canonical_solution\": \"\\n    x + 1\\n}\"}\n",
        "{\"question_id\": 81, \"category\": \"writing\", \"turns\": [\"Write a block.\", \"Again.\"]}\n",
    )).unwrap();
    let rep = p("acc.json");
    let svg = p("acc.svg");
    kakeya(&[
        "bench",
        "acceptance",
        "--target",
        &p("t"),
        "--draft",
        &p("m"),
        "--dflash",
        &p("d"),
        "--drafters",
        "ngram,model,dflash,replay",
        "--kv",
        "raw,e8-q10",
        "--block-sizes",
        "1,4",
        "--prompts",
        &jsonl.display().to_string(),
        "--max-new-tokens",
        "12",
        "--replay-acceptance",
        "0.8",
        "--out",
        &rep,
        "--plot",
        &svg,
    ]);
    let r = read(Path::new(&rep));
    assert_eq!(r["kind"], "acceptance_bench");
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2 * 4 * 2);
    for row in rows {
        for k in [
            "drafter",
            "kv",
            "block_size",
            "accept_len_mean",
            "accept_len_p50",
            "accept_len_p95",
            "tokens_per_s",
            "ar_tokens_per_s",
            "speedup_vs_ar",
            "ttft_s",
            "lossless",
        ] {
            assert!(row.get(k).is_some(), "row lacks {k}");
        }
        assert_eq!(row["lossless"], true);
        assert_eq!(row["synthetic"], row["drafter"] == "replay");
        assert_eq!(row["category"], "mixed");
        assert!(row["correctness_proxy"].is_number());
    }
    assert!(
        r["summary"]["best_speedup_by_drafter"]
            .get("replay")
            .is_none()
    );
    assert!(
        gate(Path::new(&rep)).is_empty(),
        "{:?}",
        gate(Path::new(&rep))
    );

    let text = std::fs::read_to_string(&svg).unwrap();
    let els = svg_elements(&text);
    assert_eq!(els[0].0, "svg");
    let points: Vec<_> = els
        .iter()
        .filter(|(n, t)| n == "circle" && t.contains("data-drafter"))
        .collect();
    assert_eq!(points.len(), rows.len());
    assert!(text.contains("replay (synthetic)"));

    // Tampering: a synthetic row claimed as drafter evidence, and a lossy row.
    let mut bad = r.clone();
    bad["summary"]["best_speedup_by_drafter"]["replay"] = 9.0.into();
    bad["rows"][0]["lossless"] = false.into();
    let bad_path = dir.path().join("bad.json");
    std::fs::write(&bad_path, bad.to_string()).unwrap();
    let v = gate(&bad_path).join("\n");
    assert!(
        v.contains("SYNTHETIC_AS_EVIDENCE") && v.contains("LOSSY"),
        "{v}"
    );
}
