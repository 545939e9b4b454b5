//! `kakeya bench model` through the binary: the public report contract (`results[]` with
//! `kernels`, `prefill_tok_s`, `decode_tok_s`, `block_cost_in_single_steps`), `--dtype`,
//! clear refusals, and the `--peer-gguf` plumbing. llama.cpp is never installed by CI, so the
//! peer side here is a stand-in interpreter script that answers like the real driver
//! (labelled: it checks our ratio arithmetic, not llama.cpp).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::cli::{kakeya, read, run};
use kakeya_engine::model::Arch;

fn tiny(dir: &std::path::Path) -> String {
    common::write(dir, "m", &common::spec(Arch::Llama, 3))
        .display()
        .to_string()
}

#[test]
fn report_has_the_contract_fields_for_each_kernel_path() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let out = dir.path().join("r.json");
    let out_s = out.display().to_string();
    let args = [
        "bench",
        "model",
        "--model",
        &model,
        "--prompt-len",
        "12",
        "--decode",
        "3",
        "--reps",
        "1",
        "--blocks",
        "1,2,5",
        "--dtype",
        "bf16",
        "--out",
        &out_s,
    ];
    let o = kakeya(&args);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("exact") && table.contains("candle"),
        "{table}"
    );
    let r = read(&out);
    let body = if r.get("body").is_some() {
        &r["body"]
    } else {
        &r
    };
    assert_eq!(body["dtype"], "bf16");
    let results = body["results"].as_array().unwrap();
    let kernels: Vec<&str> = results
        .iter()
        .map(|x| x["kernels"].as_str().unwrap())
        .collect();
    assert_eq!(kernels, ["exact", "candle"]);
    for row in results {
        assert!(row["prefill_tok_s"].as_f64().unwrap() > 0.0);
        assert!(row["decode_tok_s"].as_f64().unwrap() > 0.0);
        let blocks: Vec<u64> = row["block_cost_in_single_steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                assert!(b["cost"].as_f64().unwrap() > 0.0);
                b["block"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(blocks, [1, 2, 5]);
    }
    assert!(body["decode_bound_tok_s"].as_f64().unwrap() > 0.0);
    assert!(body.get("peer").is_none(), "no peer was asked for");
}

#[test]
fn bad_flags_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let cases: [(&[&str], &str); 4] = [
        (&["--blocks", "0"], "--blocks"),
        (&["--dtype", "f8"], "dtype"),
        (&["--kernels", "blas"], "unknown kernels"),
        (&["--peer-gguf", "/nonexistent/x.gguf"], "no such file"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["bench", "model", "--model", &model, "--reps", "1"];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(!o.status.success(), "{extra:?} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{extra:?}: {err}");
    }
}

#[test]
fn peer_ratios_use_the_peer_reply() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path());
    let gguf = dir.path().join("same-weights.gguf");
    std::fs::write(&gguf, b"GGUF stand-in").unwrap();
    // Stand-in interpreter: `-c "import llama_cpp"` succeeds; running the driver prints the
    // driver's JSON shape with fixed figures.
    let py = dir.path().join("python");
    std::fs::write(
        &py,
        "#!/bin/sh\nif [ \"$1\" = -c ]; then exit 0; fi\n\
         echo '{\"engine\": \"stand-in\", \"prefill_tok_s\": 1000.0, \"decode_tok_s\": 50.0, \"runs\": []}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("r.json");
    let (g, p, o) = (
        gguf.display().to_string(),
        py.display().to_string(),
        out.display().to_string(),
    );
    kakeya(&[
        "bench",
        "model",
        "--model",
        &model,
        "--prompt-len",
        "8",
        "--decode",
        "2",
        "--reps",
        "1",
        "--blocks",
        "1",
        "--kernels",
        "exact",
        "--peer-gguf",
        &g,
        "--peer-python",
        &p,
        "--out",
        &o,
    ]);
    let r = read(&out);
    let body = if r.get("body").is_some() {
        &r["body"]
    } else {
        &r
    };
    let peer = &body["peer"];
    assert_eq!(peer["prefill_tok_s"], 1000.0);
    assert_eq!(
        peer["runs"].as_array().unwrap().len(),
        2,
        "peer runs before and after ours"
    );
    let ratio = &peer["ratios"][0];
    assert_eq!(ratio["kernels"], "exact");
    let ours = body["results"][0]["decode_tok_s_best"].as_f64().unwrap();
    assert!((ratio["decode_ratio"].as_f64().unwrap() - ours / 50.0).abs() < 1e-9);

    // A peer that fails says so.
    std::fs::write(
        &py,
        "#!/bin/sh\nif [ \"$1\" = -c ]; then exit 0; fi\necho boom >&2; exit 3\n",
    )
    .unwrap();
    let bad = run(&[
        "bench",
        "model",
        "--model",
        &model,
        "--reps",
        "1",
        "--kernels",
        "exact",
        "--peer-gguf",
        &g,
        "--peer-python",
        &p,
        "--out",
        &o,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("peer failed"));
}
