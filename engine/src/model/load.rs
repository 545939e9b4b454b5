//! Finding a model directory's files: the config, the weight shards (one
//! `model.safetensors` or a `model.safetensors.index.json` naming shards), digests for
//! report provenance.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ModelError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The safetensors files holding the weights, in a stable order.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let bytes = std::fs::read(&index).map_err(io(&index))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ModelError::Weights(format!("{}: {e}", index.display())))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| {
                ModelError::Weights(format!("{}: no `weight_map` object", index.display()))
            })?;
        let mut files = BTreeSet::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| {
                ModelError::Weights(format!(
                    "{}: weight_map[{name}] is not a string",
                    index.display()
                ))
            })?;
            // Shards must be plain file names in the model directory: an index must not be
            // able to point the loader at arbitrary files.
            let plain = Path::new(file).components().count() == 1
                && !file.starts_with('.')
                && file.ends_with(".safetensors");
            if !plain {
                return Err(ModelError::Weights(format!(
                    "{}: shard name {file:?} is not a plain *.safetensors file name",
                    index.display()
                )));
            }
            files.insert(file.to_string());
        }
        if files.is_empty() {
            return Err(ModelError::Weights(format!(
                "{}: weight_map is empty",
                index.display()
            )));
        }
        let paths: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
        for p in &paths {
            if !p.is_file() {
                return Err(ModelError::Weights(format!(
                    "shard {} is missing",
                    p.display()
                )));
            }
        }
        return Ok(paths);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(ModelError::Weights(format!(
        "{} has neither model.safetensors nor model.safetensors.index.json",
        dir.display()
    )))
}

/// sha256 (hex) of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// `(file name, sha256)` for the config, tokenizer (if any) and weight files of a model.
pub fn digests(dir: &Path) -> Result<Vec<(String, String)>, ModelError> {
    let mut files = vec![dir.join("config.json")];
    let tok = dir.join("tokenizer.json");
    if tok.is_file() {
        files.push(tok);
    }
    files.extend(weight_files(dir)?);
    files
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, sha256_file(p)?))
        })
        .collect()
}
