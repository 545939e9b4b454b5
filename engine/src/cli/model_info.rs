use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kakeya_engine::report::{self, ReportBuilder};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

#[derive(clap::Args)]
pub struct Args {
    /// A local model directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Where to write the `model_info` report.
    #[arg(long, default_value = "model_info.json")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = &args.model;
    if !dir.is_dir() {
        bail!("model directory {} does not exist", dir.display());
    }
    let config_path = dir.join("config.json");
    let config: Value = serde_json::from_slice(
        &std::fs::read(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?,
    )
    .with_context(|| format!("parsing {}", config_path.display()))?;
    let mut params = Map::new();
    params.insert("model".into(), dir.display().to_string().into());
    let mut builder = ReportBuilder::start("model_info", "cpu", params);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut files = Vec::new();
    for name in &names {
        let (bytes, sha) = sha256_file(&dir.join(name))?;
        builder.model_digest(name, &sha);
        files.push(json!({"name": name, "bytes": bytes, "sha256": sha}));
    }
    let report = builder.finish(json!({
        "model_dir": dir.display().to_string(),
        "files": files,
        "config": config,
    }))?;
    report::write_report(&args.out, &report)
        .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}

fn sha256_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}
