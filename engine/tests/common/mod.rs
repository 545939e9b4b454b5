//! Tiny models for the engine's integration tests (written into temp dirs, never downloaded).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kakeya_engine::model::{Arch, CausalLm, LoadOptions};
use kakeya_engine::tiny::{self, DraftSpec, TinySpec};

pub mod cli;

pub fn spec(arch: Arch, seed: u64) -> TinySpec {
    let mut s = TinySpec::new(arch, seed);
    s.layers = 2;
    s.hidden = 64;
    s.heads = 4;
    s.kv_heads = 2;
    s.vocab = 320;
    s.fill_defaults();
    s
}

pub fn write(dir: &Path, name: &str, s: &TinySpec) -> PathBuf {
    let out = dir.join(name);
    tiny::write_tiny(s, &out).expect("write tiny model");
    out
}

pub fn draft(
    dir: &Path,
    from: &Path,
    name: &str,
    keep: Option<usize>,
    noise: f32,
    seed: u64,
) -> PathBuf {
    let out = dir.join(name);
    tiny::derive_draft(
        from,
        &out,
        &DraftSpec {
            keep_layers: keep,
            noise,
            seed,
        },
    )
    .expect("derive draft");
    out
}

pub fn load(dir: &Path) -> CausalLm {
    CausalLm::load(dir, &LoadOptions::default()).expect("load model")
}
