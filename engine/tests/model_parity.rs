//! Our model against candle-transformers' stock llama / qwen3 on the same weights: same
//! logits within float tolerance, for a prompt and for cached single-token steps.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, qwen2, qwen3};
use kakeya_engine::model::{Arch, CausalLm, KernelChoice, KvChannel, LoadOptions, Logits};

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn ours_steps(model: &CausalLm, prompt: &[u32], steps: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache(&KvChannel::Raw).unwrap();
    let mut rows = vec![
        model
            .forward(prompt, &mut cache, Logits::Last)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap(),
    ];
    for t in steps {
        rows.push(
            model
                .forward(&[*t], &mut cache, Logits::Last)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap(),
        );
    }
    rows
}

fn input(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

const PROMPT: [u32; 9] = [5, 17, 200, 33, 8, 1, 99, 250, 42];
const STEPS: [u32; 4] = [7, 300, 12, 64];

/// The stock model's config and weights for a model directory we wrote.
fn stock_parts<C: serde::de::DeserializeOwned>(path: &Path) -> (C, VarBuilder<'static>) {
    let cfg = serde_json::from_slice(&std::fs::read(path.join("config.json")).unwrap()).unwrap();
    // SAFETY: the file was just written by this test and is not modified while mapped.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[path.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap();
    (cfg, vb)
}

/// Feed the prompt, then each step, through a stock model's `forward(ids, pos)`.
fn stock_steps(
    mut forward: impl FnMut(&Tensor, usize) -> candle_core::Result<Tensor>,
) -> Vec<Vec<f32>> {
    let mut pos = 0;
    let mut feed = |ids: &[u32]| -> Vec<f32> {
        let out = forward(&input(ids), pos)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        pos += ids.len();
        out
    };
    let mut rows = vec![feed(&PROMPT)];
    for t in STEPS {
        rows.push(feed(&[t]));
    }
    rows
}

fn assert_matches(arch: &str, ours: &[Vec<f32>], theirs: &[Vec<f32>]) {
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let d = max_rel_diff(a, b);
        assert!(d < 1e-4, "{arch} step {i}: max relative diff {d}");
    }
}

#[test]
fn llama_matches_stock() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "llama", &common::spec(Arch::Llama, 11));
    let ours = ours_steps(&common::load(&path), &PROMPT, &STEPS);
    let (cfg, vb) = stock_parts::<llama::LlamaConfig>(&path);
    let cfg = cfg.into_config(false);
    let stock = llama::Llama::load(vb, &cfg).unwrap();
    let mut cache = llama::Cache::new(true, DType::F32, &cfg, &Device::Cpu).unwrap();
    let theirs = stock_steps(|x, pos| stock.forward(x, pos, &mut cache));
    assert_matches("llama", &ours, &theirs);
}

#[test]
fn qwen3_matches_stock() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "qwen3", &common::spec(Arch::Qwen3, 12));
    let ours = ours_steps(&common::load(&path), &PROMPT, &STEPS);
    let (cfg, vb) = stock_parts::<qwen3::Config>(&path);
    let mut stock = qwen3::ModelForCausalLM::new(&cfg, vb).unwrap();
    let theirs = stock_steps(|x, pos| stock.forward(x, pos));
    assert_matches("qwen3", &ours, &theirs);
}

#[test]
fn qwen2_with_biases_matches_stock() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "qwen2", &common::spec(Arch::Qwen2, 14));
    let ours = ours_steps(&common::load(&path), &PROMPT, &STEPS);
    let (cfg, vb) = stock_parts::<qwen2::Config>(&path);
    let mut stock = qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
    let theirs = stock_steps(|x, pos| stock.forward(x, pos));
    assert_matches("qwen2", &ours, &theirs);
}

#[test]
fn candle_kernels_and_half_precision_agree_with_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "q", &common::spec(Arch::Qwen3, 13));
    let exact = ours_steps(&common::load(&path), &PROMPT, &STEPS);
    let opts = LoadOptions {
        kernels: KernelChoice::Candle,
        ..Default::default()
    };
    let candle = CausalLm::load(&path, &opts).unwrap();
    assert_eq!(candle.kernels_label(), "candle");
    for (a, b) in exact.iter().zip(ours_steps(&candle, &PROMPT, &STEPS)) {
        assert!(max_rel_diff(a, &b) < 1e-4);
    }
    for dtype in [DType::BF16, DType::F16] {
        let opts = LoadOptions {
            dtype: Some(dtype),
            ..Default::default()
        };
        let half = CausalLm::load(&path, &opts).unwrap();
        for (a, b) in exact.iter().zip(ours_steps(&half, &PROMPT, &STEPS)) {
            assert!(b.iter().all(|x| x.is_finite()));
            assert!(max_rel_diff(a, &b) < 0.1, "{dtype:?} drifted too far");
        }
    }
}
