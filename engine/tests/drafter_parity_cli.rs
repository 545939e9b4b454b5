//! `kakeya drafter-parity` through the binary: identical configurations agree exactly (and
//! cached vs recomputed context too, under the exact kernels); a perturbed drafter (noised
//! weights) agrees below 100 % with its mismatch positions reported; a reference JSONL round
//! trip; the gate passes sound reports and refuses tampered ones; the DFlash drafter (target +
//! checkpoint) is exact between cached and recomputed contexts.

mod common;

use common::cli::{gate, kakeya, read, run};

use serde_json::Value;

#[test]
fn exact_configs_agree_and_a_perturbed_drafter_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    kakeya(&[
        "make-tiny-model",
        "--out",
        &p("d"),
        "--seed",
        "21",
        "--vocab",
        "300",
    ]);
    kakeya(&[
        "make-tiny-model",
        "--from",
        &p("d"),
        "--out",
        &p("dn"),
        "--noise",
        "0.05",
        "--seed",
        "2",
    ]);
    // Cached (A) vs recomputed (B), same weights: exact.
    kakeya(&[
        "drafter-parity",
        "--draft",
        &p("d"),
        "--prompt-set",
        "short",
        "--n-blocks",
        "3",
        "--block-size",
        "6",
        "--write-reference",
        &p("ref.jsonl"),
        "--out",
        &p("same.json"),
    ]);
    let same = read(&dir.path().join("same.json"));
    assert_eq!(gate(&dir.path().join("same.json")), Vec::<String>::new());
    assert_eq!(same["config"]["exact_configs"], true);
    assert_eq!(same["agreement"], 1.0);
    assert_eq!(same["config"]["b"]["context"], "recomputed");
    // The recorded drafts, replayed against the same drafter: exact as well.
    kakeya(&[
        "drafter-parity",
        "--draft",
        &p("d"),
        "--reference",
        &p("ref.jsonl"),
        "--out",
        &p("replay.json"),
    ]);
    let replay = read(&dir.path().join("replay.json"));
    assert_eq!(replay["agreement"], 1.0);
    assert_eq!(replay["total_tokens"], same["total_tokens"]);
    // Noised weights: below 100 %, positions reported, and the default exact threshold fails.
    let out = run(&[
        "drafter-parity",
        "--draft",
        &p("d"),
        "--draft-b",
        &p("dn"),
        "--n-blocks",
        "3",
        "--block-size",
        "6",
        "--out",
        &p("noisy.json"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("below the required"));
    let noisy = read(&dir.path().join("noisy.json"));
    assert_eq!(noisy["config"]["exact_configs"], false);
    let a = noisy["agreement"].as_f64().unwrap();
    assert!(a < 1.0, "noised drafter agreed on every position");
    let mis: usize = noisy["samples"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["blocks"].as_array().unwrap())
        .map(|b| b["mismatch_positions"].as_array().unwrap().len())
        .sum();
    assert!(mis > 0);
    let v = gate(&dir.path().join("noisy.json"));
    assert!(v.iter().any(|m| m.starts_with("BELOW_THRESHOLD")), "{v:?}");
    kakeya(&[
        "drafter-parity",
        "--draft",
        &p("d"),
        "--draft-b",
        &p("dn"),
        "--n-blocks",
        "3",
        "--block-size",
        "6",
        "--min-agreement",
        "0",
        "--out",
        &p("noisy0.json"),
    ]);
    assert_eq!(gate(&dir.path().join("noisy0.json")), Vec::<String>::new());
    // Tampering: an exact pair that claims a mismatch, and a doctored agreement.
    let mut bad = same.clone();
    bad["samples"][0]["blocks"][0]["b_ids"][0] = Value::from(7u32 + 1000);
    std::fs::write(dir.path().join("bad.json"), bad.to_string()).unwrap();
    let v = gate(&dir.path().join("bad.json"));
    assert!(
        v.iter().any(|m| m.starts_with("AGREEMENT_MISMATCH")),
        "{v:?}"
    );
    let mut bad = noisy.clone();
    bad["agreement"] = Value::from(1.0);
    std::fs::write(dir.path().join("bad2.json"), bad.to_string()).unwrap();
    assert!(!gate(&dir.path().join("bad2.json")).is_empty());
    // dflash needs its target; a broken reference file is refused.
    let out = run(&["drafter-parity", "--drafter", "dflash", "--draft", &p("d")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
    std::fs::write(dir.path().join("broken.jsonl"), "{\"context_ids\": [1]}\n").unwrap();
    let out = run(&[
        "drafter-parity",
        "--draft",
        &p("d"),
        "--reference",
        &p("broken.jsonl"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

#[test]
fn dflash_cached_and_recomputed_contexts_agree_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    kakeya(&[
        "make-tiny-model",
        "--arch",
        "qwen3",
        "--out",
        &p("t"),
        "--seed",
        "8",
        "--layers",
        "4",
    ]);
    kakeya(&[
        "make-tiny-model",
        "--arch",
        "dflash",
        "--target",
        &p("t"),
        "--out",
        &p("df"),
        "--seed",
        "3",
    ]);
    kakeya(&[
        "drafter-parity",
        "--drafter",
        "dflash",
        "--target",
        &p("t"),
        "--draft",
        &p("df"),
        "--prompt-set",
        "short",
        "--n-blocks",
        "3",
        "--block-size",
        "4",
        "--out",
        &p("df.json"),
    ]);
    let r = read(&dir.path().join("df.json"));
    assert_eq!(r["config"]["drafter"], "dflash");
    assert_eq!(r["config"]["exact_configs"], true);
    assert_eq!(r["agreement"], 1.0);
    assert!(r["total_tokens"].as_u64().unwrap() > 0);
    assert!(
        gate(&dir.path().join("df.json")).is_empty(),
        "{:?}",
        gate(&dir.path().join("df.json"))
    );
    // A different checkpoint on side B is not an exact pair and is compared honestly.
    kakeya(&[
        "make-tiny-model",
        "--arch",
        "dflash",
        "--target",
        &p("t"),
        "--out",
        &p("df2"),
        "--seed",
        "4",
    ]);
    let out = run(&[
        "drafter-parity",
        "--drafter",
        "dflash",
        "--target",
        &p("t"),
        "--draft",
        &p("df"),
        "--draft-b",
        &p("df2"),
        "--min-agreement",
        "0",
        "--out",
        &p("df2.json"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r2 = read(&dir.path().join("df2.json"));
    assert_eq!(r2["config"]["exact_configs"], false);
    assert!(gate(&dir.path().join("df2.json")).is_empty());
}
