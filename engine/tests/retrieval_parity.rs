//! The constructed retrieval model is an ordinary Llama directory: candle-transformers' stock
//! llama reads it and computes the same logits as our model, and both copy the value that
//! followed the key earlier in the context.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama;
use kakeya_engine::model::{CausalLm, KvChannel, LoadOptions, Logits, argmax};
use kakeya_engine::tiny::retrieval::{RetrievalSpec, write_retrieval};
use kakeya_engine::tokenizer::TextTokenizer;

fn rows(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn stock_llama_reads_the_retrieval_model_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ret");
    write_retrieval(
        &RetrievalSpec {
            seed: 9,
            pad: 1,
            ..Default::default()
        },
        &path,
    )
    .unwrap();
    let tok = TextTokenizer::from_dir(&path).unwrap();
    let text = " a dog sings. Remember the code [QWER=7K2P9Z]. the lake waits. Answer: [QWER=";
    let prompt = tok.encode_piece(text).unwrap();
    let value = tok.encode_piece("7K2P9Z").unwrap();

    let ours = CausalLm::load(&path, &LoadOptions::default()).unwrap();
    let mut cache = ours.new_cache(&KvChannel::Raw).unwrap();
    let mut our_rows = vec![rows(
        &ours.forward(&prompt, &mut cache, Logits::Last).unwrap(),
    )];
    for t in &value[..value.len() - 1] {
        our_rows.push(rows(
            &ours.forward(&[*t], &mut cache, Logits::Last).unwrap(),
        ));
    }

    let cfg: llama::LlamaConfig =
        serde_json::from_slice(&std::fs::read(path.join("config.json")).unwrap()).unwrap();
    let cfg = cfg.into_config(false);
    // SAFETY: the file was just written by this test and is not modified while mapped.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[path.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap();
    let stock = llama::Llama::load(vb, &cfg).unwrap();
    let mut sc = llama::Cache::new(true, DType::F32, &cfg, &Device::Cpu).unwrap();
    let input = |ids: &[u32]| {
        Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    };
    let mut stock_rows = vec![rows(&stock.forward(&input(&prompt), 0, &mut sc).unwrap())];
    for (i, t) in value[..value.len() - 1].iter().enumerate() {
        stock_rows.push(rows(
            &stock
                .forward(&input(&[*t]), prompt.len() + i, &mut sc)
                .unwrap(),
        ));
    }
    for (i, (a, b)) in our_rows.iter().zip(&stock_rows).enumerate() {
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale;
        assert!(d < 1e-3, "step {i}: max relative diff {d}");
        // Both models retrieve the value, token by token.
        assert_eq!(argmax(a), value[i], "ours, step {i}");
        assert_eq!(argmax(b), value[i], "stock, step {i}");
    }
}
