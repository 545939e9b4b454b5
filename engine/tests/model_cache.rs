//! The block forward and the explicit cache: a block of L tokens equals L single steps bit
//! for bit (exact kernels), truncate-then-re-append equals never having appended, the
//! compressed cache really shrinks and counts what it did, and hostile inputs are refused.

mod common;

use kakeya_engine::model::{Arch, CausalLm, KvChannel, Logits, ModelConfig};

fn rows(t: candle_core::Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

fn block_equals_steps(model: &CausalLm, channel: &KvChannel) {
    let prompt: Vec<u32> = (0..13).map(|i| (i * 37 + 5) % 300).collect();
    let block = [17u32, 250, 3, 3, 99, 120, 7, 8];
    let mut a = model.new_cache(channel).unwrap();
    model.forward(&prompt, &mut a, Logits::Last).unwrap();
    let got = rows(model.forward(&block, &mut a, Logits::All).unwrap());
    let mut b = model.new_cache(channel).unwrap();
    model.forward(&prompt, &mut b, Logits::Last).unwrap();
    for (i, t) in block.iter().enumerate() {
        let one = rows(model.forward(&[*t], &mut b, Logits::Last).unwrap());
        assert_eq!(got[i], one[0], "row {i} differs ({channel})");
    }
    assert_eq!(a.len(), b.len());
}

#[test]
fn block_forward_equals_single_steps_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    for (i, arch) in [Arch::Llama, Arch::Qwen3].into_iter().enumerate() {
        let m = common::load(&common::write(
            dir.path(),
            &format!("m{i}"),
            &common::spec(arch, 21 + i as u64),
        ));
        for ch in ["raw", "e8-q38", "d4-q10"] {
            block_equals_steps(&m, &ch.parse().unwrap());
        }
    }
}

#[test]
fn truncate_then_reappend_equals_never_appended() {
    let dir = tempfile::tempdir().unwrap();
    let m = common::load(&common::write(
        dir.path(),
        "m",
        &common::spec(Arch::Qwen3, 5),
    ));
    for ch in ["raw", "e8-q38-b1"] {
        let ch: KvChannel = ch.parse().unwrap();
        let prompt = [4u32, 9, 16, 25, 36];
        let next = [49u32, 64, 81];
        let mut clean = m.new_cache(&ch).unwrap();
        m.forward(&prompt, &mut clean, Logits::Last).unwrap();
        let want = rows(m.forward(&next, &mut clean, Logits::All).unwrap());
        let mut dirty = m.new_cache(&ch).unwrap();
        m.forward(&prompt, &mut dirty, Logits::Last).unwrap();
        // Grow past the raw store's first capacity so truncation crosses a reallocation.
        let junk: Vec<u32> = (0..70).map(|i| (i * 13) % 300).collect();
        m.forward(&junk, &mut dirty, Logits::All).unwrap();
        dirty.truncate(prompt.len()).unwrap();
        let got = rows(m.forward(&next, &mut dirty, Logits::All).unwrap());
        assert_eq!(got, want, "{ch}");
        assert!(dirty.truncate(100).is_err());
    }
}

#[test]
fn compressed_cache_shrinks_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = common::spec(Arch::Llama, 8);
    s.layers = 4;
    let m = common::load(&common::write(dir.path(), "m", &s));
    let ch: KvChannel = "e8-q38-b1".parse().unwrap();
    let mut cache = m.new_cache(&ch).unwrap();
    let prompt: Vec<u32> = (0..40).collect();
    m.forward(&prompt, &mut cache, Logits::Last).unwrap();
    m.forward(&[7], &mut cache, Logits::Last).unwrap();
    let stats = cache.stats();
    let fired: Vec<u64> = stats.iter().map(|l| l.fired).collect();
    let skipped: Vec<u64> = stats.iter().map(|l| l.skipped).collect();
    assert_eq!(fired, vec![0, 2, 2, 0]);
    assert_eq!(skipped, vec![2, 0, 0, 2]);
    for l in &stats[1..3] {
        assert!(
            l.bytes_held * 2 < l.raw_bytes,
            "packed {} vs raw {}",
            l.bytes_held,
            l.raw_bytes
        );
        assert_eq!(l.tokens, 41);
    }
    // A compressed cache changes the logits (it is lossy) but not wildly.
    let mut raw = m.new_cache(&KvChannel::Raw).unwrap();
    m.forward(&prompt, &mut raw, Logits::Last).unwrap();
    let a = rows(m.forward(&[7], &mut raw, Logits::Last).unwrap());
    let mut c2 = m.new_cache(&"e8-q38".parse().unwrap()).unwrap();
    m.forward(&prompt, &mut c2, Logits::Last).unwrap();
    let b = rows(m.forward(&[7], &mut c2, Logits::Last).unwrap());
    assert_ne!(a, b);
    let diff = a[0]
        .iter()
        .zip(&b[0])
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1.0, "e8-q38 moved a logit by {diff}");
}

#[test]
fn hostile_inputs_are_refused_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::write(dir.path(), "m", &common::spec(Arch::Llama, 1));
    let m = common::load(&good);
    let mut cache = m.new_cache(&KvChannel::Raw).unwrap();
    assert!(
        m.forward(&[320], &mut cache, Logits::Last).is_err(),
        "token outside the vocabulary"
    );
    assert!(m.forward(&[], &mut cache, Logits::Last).is_err());
    assert_eq!(cache.len(), 0);
    // Unsupported head dim for the codec is a clear error, not a panic.
    let mut s = common::spec(Arch::Llama, 1);
    s.hidden = 48;
    s.intermediate = 0;
    s.fill_defaults();
    let odd = common::load(&common::write(dir.path(), "hd12", &s));
    let e = odd
        .new_cache(&"e8-q38".parse().unwrap())
        .err()
        .expect("head_dim 12 is not a power of 2");
    assert!(e.to_string().contains("power of 2"), "{e}");
    assert!(m.new_cache(&"e8-q99999999".parse().unwrap()).is_err());

    let copy = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(good.join(f), d.join(f)).unwrap();
        }
        d
    };
    let d = copy("badcfg");
    std::fs::write(
        d.join("config.json"),
        b"{\"model_type\": \"llama\", \"vocab_size\": -3}",
    )
    .unwrap();
    assert!(CausalLm::load(&d, &Default::default()).is_err());
    let d = copy("shape");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    cfg["hidden_size"] = 128.into();
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    let e = CausalLm::load(&d, &Default::default())
        .err()
        .expect("shape mismatch");
    assert!(e.to_string().contains("weights"), "{e}");
    let d = copy("trunc");
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(CausalLm::load(&d, &Default::default()).is_err());
    std::fs::write(
        d.join("model.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage",
    )
    .unwrap();
    assert!(CausalLm::load(&d, &Default::default()).is_err());
    let d = copy("index");
    std::fs::write(
        d.join("model.safetensors.index.json"),
        br#"{"weight_map": {"model.norm.weight": "../m/model.safetensors"}}"#,
    )
    .unwrap();
    assert!(CausalLm::load(&d, &Default::default()).is_err());
    assert!(ModelConfig::from_dir(&dir.path().join("missing")).is_err());
}

#[test]
fn sharded_index_loads_like_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::write(dir.path(), "m", &common::spec(Arch::Qwen3, 2));
    let tensors =
        candle_core::safetensors::load(good.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let d = dir.path().join("sharded");
    std::fs::create_dir_all(&d).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(good.join(f), d.join(f)).unwrap();
    }
    let (mut a, mut b) = (
        std::collections::HashMap::new(),
        std::collections::HashMap::new(),
    );
    let mut map = serde_json::Map::new();
    for (i, (name, t)) in tensors.into_iter().enumerate() {
        let shard = if i % 2 == 0 {
            "model-00001-of-00002.safetensors"
        } else {
            "model-00002-of-00002.safetensors"
        };
        map.insert(name.clone(), shard.into());
        if i % 2 == 0 {
            a.insert(name, t)
        } else {
            b.insert(name, t)
        };
    }
    candle_core::safetensors::save(&a, d.join("model-00001-of-00002.safetensors")).unwrap();
    candle_core::safetensors::save(&b, d.join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::write(
        d.join("model.safetensors.index.json"),
        serde_json::json!({"weight_map": map}).to_string(),
    )
    .unwrap();
    let (m1, m2) = (common::load(&good), common::load(&d));
    let run = |m: &CausalLm| {
        let mut c = m.new_cache(&KvChannel::Raw).unwrap();
        rows(m.forward(&[1, 2, 3], &mut c, Logits::All).unwrap())
    };
    assert_eq!(run(&m1), run(&m2));
}
