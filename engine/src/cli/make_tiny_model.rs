//! `kakeya make-tiny-model`: write a seeded tiny Llama/Qwen3 directory, derive a draft from
//! one (fewer layers sharing embeddings and head, and/or perturbed weights), or write a
//! random-weight DFlash drafter for one (`--arch dflash --target DIR`).

use std::path::PathBuf;

use anyhow::Context;
use kakeya_engine::model::Arch;
use kakeya_engine::tiny::{self, DraftSpec, TinySpec};
use serde_json::json;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ArchArg {
    Llama,
    Qwen2,
    Qwen3,
    /// A random-weight DFlash drafter for `--target` (mask id: the target's last id).
    Dflash,
}

#[derive(clap::Args)]
pub struct Args {
    /// Architecture of a new model (ignored with --from); `dflash` needs --target.
    #[arg(long, value_enum, default_value = "llama")]
    arch: ArchArg,
    /// With --arch dflash: the target model the drafter is for.
    #[arg(long)]
    target: Option<PathBuf>,
    /// With --arch dflash: the drafter's block size recorded in its config.
    #[arg(long, default_value_t = 16)]
    block_size: usize,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Query heads (default: hidden/16, or hidden/64 from hidden 256).
    #[arg(long)]
    heads: Option<usize>,
    /// KV heads (default: half the query heads).
    #[arg(long)]
    kv_heads: Option<usize>,
    #[arg(long, default_value_t = 384)]
    vocab: usize,
    /// MLP width (default ≈ 2.75 × hidden).
    #[arg(long)]
    intermediate: Option<usize>,
    /// Tie lm_head to the embeddings (default: qwen3 yes, llama no).
    #[arg(long)]
    tie: Option<bool>,
    /// Derive a draft from this model directory instead of writing a new model.
    #[arg(long)]
    from: Option<PathBuf>,
    /// With --from: keep only the first N layers (embeddings and head shared).
    #[arg(long)]
    keep_layers: Option<usize>,
    /// With --from: add N(0, (noise·std(W))²) to every weight (0 = exact copy).
    #[arg(long, default_value_t = 0.0)]
    noise: f32,
    /// A constructed model instead of random weights: `retrieval` writes a Llama whose
    /// previous-token + induction heads copy what followed a key earlier in the context
    /// (NIAH recall); --seed permutes its basis, other size flags are ignored.
    #[arg(long, value_enum)]
    recipe: Option<RecipeArg>,
    /// With --recipe retrieval: identity layers before and after the 2-layer circuit.
    #[arg(long, default_value_t = 2)]
    pad_layers: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RecipeArg {
    Retrieval,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(RecipeArg::Retrieval) = args.recipe {
        if args.from.is_some() {
            anyhow::bail!("--recipe and --from cannot be combined");
        }
        let spec = tiny::retrieval::RetrievalSpec {
            seed: args.seed,
            pad: args.pad_layers,
            ..Default::default()
        };
        let params = tiny::retrieval::write_retrieval(&spec, &args.out)
            .with_context(|| format!("writing {}", args.out.display()))?;
        println!(
            "{}",
            json!({"out": args.out.display().to_string(), "recipe": "retrieval", "arch": "llama",
            "seed": spec.seed, "layers": 2 * spec.pad + 2, "pad_layers": spec.pad,
            "hidden": tiny::retrieval::HIDDEN, "vocab": tiny::retrieval::VOCAB, "params": params})
        );
        return Ok(());
    }
    if let Some(from) = &args.from {
        let d = DraftSpec {
            keep_layers: args.keep_layers,
            noise: args.noise,
            seed: args.seed,
        };
        tiny::derive_draft(from, &args.out, &d).with_context(|| {
            format!(
                "deriving a draft of {} into {}",
                from.display(),
                args.out.display()
            )
        })?;
        println!(
            "{}",
            json!({"out": args.out.display().to_string(), "from": from.display().to_string(),
            "keep_layers": args.keep_layers, "noise": args.noise, "seed": args.seed})
        );
        return Ok(());
    }
    let arch = match args.arch {
        ArchArg::Llama => Arch::Llama,
        ArchArg::Qwen2 => Arch::Qwen2,
        ArchArg::Qwen3 => Arch::Qwen3,
        ArchArg::Dflash => {
            let target = args
                .target
                .as_ref()
                .context("--arch dflash needs --target DIR (the model it drafts for)")?;
            let spec = tiny::dflash::DFlashSpec {
                seed: args.seed,
                layers: args.layers,
                block_size: args.block_size,
            };
            let desc = tiny::dflash::write_dflash(target, &args.out, &spec).with_context(|| {
                format!(
                    "writing a DFlash drafter for {} into {}",
                    target.display(),
                    args.out.display()
                )
            })?;
            println!("{desc}");
            return Ok(());
        }
    };
    let mut spec = TinySpec::new(arch, args.seed);
    spec.layers = args.layers;
    spec.hidden = args.hidden;
    spec.heads = args.heads.unwrap_or(0);
    spec.kv_heads = args.kv_heads.unwrap_or(0);
    spec.intermediate = args.intermediate.unwrap_or(0);
    spec.vocab = args.vocab;
    if let Some(t) = args.tie {
        spec.tie = t;
    }
    spec.fill_defaults();
    let params = tiny::write_tiny(&spec, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}",
        json!({"out": args.out.display().to_string(), "arch": arch.name(), "seed": spec.seed,
        "layers": spec.layers, "hidden": spec.hidden, "heads": spec.heads, "kv_heads": spec.kv_heads,
        "vocab": spec.vocab, "intermediate": spec.intermediate, "tied": spec.tie, "params": params})
    );
    Ok(())
}
