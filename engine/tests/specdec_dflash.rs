//! The DFlash drafter on real (tiny) models: strict checkpoint loading (missing, unknown and
//! misshapen tensors, a drafter that does not fit its target), hidden-state capture, one
//! block forward against a straightforward f64 re-implementation written here from the
//! architecture's description, and context K/V built incrementally against a recompute.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use kakeya_engine::model::{Arch, CausalLm, KvChannel, Logits};
use kakeya_engine::specdec::dflash::{ContextKv, DFlashModel};
use kakeya_engine::tiny::dflash::{DFlashSpec, write_dflash};
use serde_json::Value;

fn make(dir: &Path, arch: Arch, seed: u64) -> (std::path::PathBuf, std::path::PathBuf) {
    let t = common::write(dir, &format!("t{seed}"), &common::spec(arch, seed));
    let d = dir.join(format!("d{seed}"));
    let spec = DFlashSpec {
        seed: seed + 100,
        layers: 2,
        block_size: 8,
    };
    write_dflash(&t, &d, &spec).unwrap();
    (t, d)
}

fn err_of(d: &Path, target: &CausalLm) -> String {
    match DFlashModel::load(d, target) {
        Ok(_) => panic!("{} should be refused", d.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_weights(src: &Path, dst: &Path, f: impl FnOnce(&mut HashMap<String, Tensor>)) {
    std::fs::create_dir_all(dst).unwrap();
    std::fs::copy(src.join("config.json"), dst.join("config.json")).unwrap();
    let mut w =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    f(&mut w);
    candle_core::safetensors::save(&w, dst.join("model.safetensors")).unwrap();
}

fn edit_config(src: &Path, dst: &Path, f: impl FnOnce(&mut Value)) {
    std::fs::create_dir_all(dst).unwrap();
    std::fs::copy(src.join("model.safetensors"), dst.join("model.safetensors")).unwrap();
    let mut c: Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    f(&mut c);
    std::fs::write(dst.join("config.json"), c.to_string()).unwrap();
}

#[test]
fn strict_loading_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let (t, d) = make(dir.path(), Arch::Qwen3, 1);
    let target = common::load(&t);
    let m = DFlashModel::load(&d, &target).unwrap();
    assert_eq!(m.cfg.target_layer_ids, vec![0, 1]);
    assert_eq!(m.cfg.mask_token_id, 319);
    let p = |n: &str| dir.path().join(n);
    edit_weights(&d, &p("missing"), |w| {
        w.remove("layers.1.mlp.up_proj.weight");
    });
    assert!(
        err_of(&p("missing"), &target).contains("missing tensors"),
        "{}",
        err_of(&p("missing"), &target)
    );
    edit_weights(&d, &p("unknown"), |w| {
        w.insert(
            "embed_tokens.weight".into(),
            Tensor::zeros((320, 64), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(err_of(&p("unknown"), &target).contains("unknown tensors"));
    edit_weights(&d, &p("shape"), |w| {
        w.insert(
            "fc.weight".into(),
            Tensor::zeros((64, 64), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    assert!(err_of(&p("shape"), &target).contains("fc.weight has shape"));
    // bf16 weights load (converted to the target's dtype).
    edit_weights(&d, &p("bf16"), |w| {
        for v in w.values_mut() {
            *v = v.to_dtype(candle_core::DType::BF16).unwrap();
        }
    });
    assert!(DFlashModel::load(&p("bf16"), &target).is_ok());
    for (name, edit, needle) in [
        (
            "ids",
            Box::new(|c: &mut Value| {
                c["dflash_config"]["target_layer_ids"] = serde_json::json!([0, 5])
            }) as Box<dyn Fn(&mut Value)>,
            "target layer id 5",
        ),
        (
            "ntl",
            Box::new(|c: &mut Value| c["num_target_layers"] = 7.into()),
            "num_target_layers 7",
        ),
        (
            "vocab",
            Box::new(|c: &mut Value| c["vocab_size"] = 1000.into()),
            "vocab_size",
        ),
        (
            "mask",
            Box::new(|c: &mut Value| c["dflash_config"]["mask_token_id"] = 320.into()),
            "mask_token_id 320",
        ),
        (
            "arch",
            Box::new(|c: &mut Value| c["architectures"] = serde_json::json!(["Qwen3ForCausalLM"])),
            "DFlashDraftModel",
        ),
        (
            "nomask",
            Box::new(|c: &mut Value| {
                c["dflash_config"]
                    .as_object_mut()
                    .unwrap()
                    .remove("mask_token_id");
            }),
            "mask_token_id",
        ),
    ] {
        edit_config(&d, &p(name), |c| edit(c));
        let e = err_of(&p(name), &target);
        assert!(e.contains(needle), "{name}: {e}");
    }
    // Top-level fields are accepted too.
    edit_config(&d, &p("top"), |c| {
        let dc = c["dflash_config"].take();
        c["mask_token_id"] = dc["mask_token_id"].clone();
        c["target_layer_ids"] = dc["target_layer_ids"].clone();
    });
    assert!(DFlashModel::load(&p("top"), &target).is_ok());
    // A target of another width.
    let mut s = common::spec(Arch::Qwen3, 9);
    s.hidden = 32;
    s.heads = 2;
    s.kv_heads = 1;
    s.intermediate = 0;
    s.fill_defaults();
    let narrow = common::load(&common::write(dir.path(), "narrow", &s));
    assert!(err_of(&d, &narrow).contains("hidden"));
}

// ---- an independent straightforward implementation (f64, plain loops) ----

struct W(HashMap<String, Tensor>);

impl W {
    fn m(&self, n: &str) -> (Vec<f64>, usize, usize) {
        let t = &self.0[n];
        let (o, i) = t.dims2().unwrap();
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (v.into_iter().map(f64::from).collect(), o, i)
    }
    fn v(&self, n: &str) -> Vec<f64> {
        self.0[n]
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    }
}

fn lin(x: &[Vec<f64>], w: &(Vec<f64>, usize, usize)) -> Vec<Vec<f64>> {
    let (wv, o, i) = w;
    x.iter()
        .map(|r| {
            (0..*o)
                .map(|j| (0..*i).map(|k| r[k] * wv[j * i + k]).sum())
                .collect()
        })
        .collect()
}

fn rms(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ms + 1e-6).sqrt();
    x.iter().zip(w).map(|(a, b)| a * s * b).collect()
}

/// Per-head norm then rotate-half RoPE at `pos`.
fn head_nr(x: &[f64], hd: usize, nw: &[f64], pos: usize, theta: f64) -> Vec<f64> {
    let mut out = Vec::new();
    for h in x.chunks(hd) {
        let h = rms(h, nw);
        let half = hd / 2;
        let mut r = h.clone();
        for j in 0..half {
            let f = (pos as f64) / theta.powf((2 * j) as f64 / hd as f64);
            let (c, s) = (f.cos(), f.sin());
            r[j] = h[j] * c - h[j + half] * s;
            r[j + half] = h[j + half] * c + h[j] * s;
        }
        out.extend(r);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn reference_block(
    dw: &W,
    tw: &W,
    layers: usize,
    (nh, nkv, hd): (usize, usize, usize),
    theta: f64,
    head_name: &str,
    hidden: &[Vec<f64>],
    block: &[u32],
    mask: u32,
) -> Vec<Vec<f64>> {
    let c = lin(hidden, &dw.m("fc.weight"));
    let c: Vec<Vec<f64>> = c
        .iter()
        .map(|r| rms(r, &dw.v("hidden_norm.weight")))
        .collect();
    let ctx = c.len();
    let (emb, _, h) = tw.m("model.embed_tokens.weight");
    let mut x: Vec<Vec<f64>> = block
        .iter()
        .map(|&t| emb[t as usize * h..(t as usize + 1) * h].to_vec())
        .collect();
    for l in 0..layers {
        let p = |n: &str| format!("layers.{l}.{n}");
        let (qn, kn) = (
            dw.v(&p("self_attn.q_norm.weight")),
            dw.v(&p("self_attn.k_norm.weight")),
        );
        let hn: Vec<Vec<f64>> = x
            .iter()
            .map(|r| rms(r, &dw.v(&p("input_layernorm.weight"))))
            .collect();
        // Keys/values: context rows (no input norm), then the block rows.
        let mut keys = Vec::new();
        let mut vals = Vec::new();
        for (pos, row) in c.iter().chain(hn.iter()).enumerate() {
            let k = lin(
                std::slice::from_ref(row),
                &dw.m(&p("self_attn.k_proj.weight")),
            )
            .remove(0);
            keys.push(head_nr(&k, hd, &kn, pos, theta));
            vals.push(
                lin(
                    std::slice::from_ref(row),
                    &dw.m(&p("self_attn.v_proj.weight")),
                )
                .remove(0),
            );
        }
        let q = lin(&hn, &dw.m(&p("self_attn.q_proj.weight")));
        let mut attn = vec![vec![0.0; nh * hd]; block.len()];
        for (i, qi) in q.iter().enumerate() {
            let qi = head_nr(qi, hd, &qn, ctx + i, theta);
            for hh in 0..nh {
                let g = hh / (nh / nkv);
                let qh = &qi[hh * hd..(hh + 1) * hd];
                let sc: Vec<f64> = keys
                    .iter()
                    .map(|k| {
                        (0..hd).map(|d| qh[d] * k[g * hd + d]).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    attn[i][hh * hd + d] = e
                        .iter()
                        .zip(&vals)
                        .map(|(a, v)| a * v[g * hd + d])
                        .sum::<f64>()
                        / z;
                }
            }
        }
        let o = lin(&attn, &dw.m(&p("self_attn.o_proj.weight")));
        for (xr, orow) in x.iter_mut().zip(&o) {
            for (a, b) in xr.iter_mut().zip(orow) {
                *a += b;
            }
        }
        let h2: Vec<Vec<f64>> = x
            .iter()
            .map(|r| rms(r, &dw.v(&p("post_attention_layernorm.weight"))))
            .collect();
        let g = lin(&h2, &dw.m(&p("mlp.gate_proj.weight")));
        let u = lin(&h2, &dw.m(&p("mlp.up_proj.weight")));
        let a: Vec<Vec<f64>> = g
            .iter()
            .zip(&u)
            .map(|(g, u)| {
                g.iter()
                    .zip(u)
                    .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                    .collect()
            })
            .collect();
        let dn = lin(&a, &dw.m(&p("mlp.down_proj.weight")));
        for (xr, d) in x.iter_mut().zip(&dn) {
            for (a, b) in xr.iter_mut().zip(d) {
                *a += b;
            }
        }
    }
    let y: Vec<Vec<f64>> = x[1..]
        .iter()
        .map(|r| rms(r, &dw.v("norm.weight")))
        .collect();
    let mut logits = lin(&y, &tw.m(head_name));
    for r in &mut logits {
        r[mask as usize] = f64::NEG_INFINITY;
    }
    logits
}

#[test]
fn block_forward_matches_a_plain_reimplementation_and_context_is_incremental() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, seed) in [(Arch::Llama, 2u64), (Arch::Qwen3, 3)] {
        let (t, d) = make(dir.path(), arch, seed);
        let target = common::load(&t);
        let m = DFlashModel::load(&d, &target).unwrap();
        let prompt: Vec<u32> = (0..9).map(|i| (i * 37 + 5) % 300 + 2).collect();
        let mut cache = target.new_cache(&KvChannel::Raw).unwrap();
        let (logits, hidden) = target
            .forward_capture(&prompt, &mut cache, Logits::All, &m.cfg.target_layer_ids)
            .unwrap();
        let hidden = hidden.unwrap();
        // Capture is the residual stream after the layer: the last layer's states through
        // the head give the same logits.
        let mut c2 = target.new_cache(&KvChannel::Raw).unwrap();
        let (_, last) = target
            .forward_capture(&prompt, &mut c2, Logits::All, &[1])
            .unwrap();
        let again = target.head(&last.unwrap()).unwrap();
        let diff = (logits - again)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);

        let mut ctx = ContextKv::default();
        m.extend_context(&mut ctx, &hidden).unwrap();
        let mask = m.cfg.mask_token_id;
        let block = [42u32, mask, mask, mask, mask];
        let got = m
            .block_logits(&target, &ctx, &block)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();

        let dw =
            W(candle_core::safetensors::load(d.join("model.safetensors"), &Device::Cpu).unwrap());
        let tw =
            W(candle_core::safetensors::load(t.join("model.safetensors"), &Device::Cpu).unwrap());
        let head_name = if tw.0.contains_key("lm_head.weight") {
            "lm_head.weight"
        } else {
            "model.embed_tokens.weight"
        };
        let hrows: Vec<Vec<f64>> = hidden
            .to_vec2::<f32>()
            .unwrap()
            .into_iter()
            .map(|r| r.into_iter().map(f64::from).collect())
            .collect();
        let mc = &m.cfg.model;
        let want = reference_block(
            &dw,
            &tw,
            mc.num_layers,
            (mc.num_heads, mc.num_kv_heads, mc.head_dim),
            mc.rope_theta,
            head_name,
            &hrows,
            &block,
            mask,
        );
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g[mask as usize], f32::NEG_INFINITY);
            for (j, (a, b)) in g.iter().zip(w).enumerate() {
                if j == mask as usize {
                    continue;
                }
                assert!(
                    (f64::from(*a) - b).abs() <= 1e-3 * (1.0 + b.abs()),
                    "{arch:?} logit {j}: {a} vs {b}"
                );
            }
        }

        // Context K/V grown in pieces equals the context computed at once.
        let mut inc = ContextKv::default();
        for (s, n) in [(0usize, 4usize), (4, 1), (5, 4)] {
            m.extend_context(&mut inc, &hidden.narrow(0, s, n).unwrap())
                .unwrap();
        }
        assert_eq!(inc.len, ctx.len);
        for l in 0..ctx.k.len() {
            for (a, b) in [(&inc.k[l], &ctx.k[l]), (&inc.v[l], &ctx.v[l])] {
                let d = (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(d <= 1e-6, "layer {l}: incremental context differs by {d}");
            }
        }
    }
}
