//! Reading and writing row files for `kakeya codec roundtrip`: JSON arrays of arrays of
//! numbers, or raw little-endian float32 (`.f32`). Every malformed input is an error that says
//! what is wrong and where, never a panic or a silently truncated result.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// Rows read from a file, flattened row-major.
pub struct Rows {
    pub dim: usize,
    pub values: Vec<f32>,
}

pub fn is_f32(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("f32"))
}

pub fn read_rows(path: &Path, dim: Option<usize>) -> anyhow::Result<Rows> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows = if is_f32(path) {
        let Some(dim) = dim else {
            bail!("--dim is required for raw .f32 input {}", path.display());
        };
        if dim == 0 {
            bail!("--dim must be positive");
        }
        let stride = dim.checked_mul(4).context("--dim is too large")?;
        if bytes.len() % stride != 0 {
            bail!(
                "{} holds {} bytes, not a multiple of 4·D = {stride} (D={dim}): not whole float32 rows",
                path.display(),
                bytes.len()
            );
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Rows { dim, values }
    } else {
        parse_json(&bytes, dim).with_context(|| format!("in {}", path.display()))?
    };
    if rows.values.is_empty() {
        bail!("{} holds no rows", path.display());
    }
    if let Some(i) = rows.values.iter().position(|v| !v.is_finite()) {
        bail!(
            "row {} column {} is not a finite number",
            i / rows.dim,
            i % rows.dim
        );
    }
    Ok(rows)
}

fn parse_json(bytes: &[u8], dim: Option<usize>) -> anyhow::Result<Rows> {
    let value: Value = serde_json::from_slice(bytes).context("not valid JSON")?;
    let Value::Array(rows) = value else {
        bail!("expected a JSON array of rows (arrays of numbers)");
    };
    let width = match (rows.first(), dim) {
        (Some(Value::Array(first)), _) => first.len(),
        (Some(_), _) => bail!("row 0 is not an array of numbers"),
        (None, Some(d)) => d,
        (None, None) => 0,
    };
    if let Some(d) = dim
        && d != width
    {
        bail!("rows have {width} values but --dim is {d}");
    }
    if width == 0 && !rows.is_empty() {
        bail!("row 0 is empty");
    }
    let mut values = Vec::with_capacity(rows.len() * width);
    for (i, row) in rows.iter().enumerate() {
        let Value::Array(row) = row else {
            bail!("row {i} is not an array of numbers");
        };
        if row.len() != width {
            bail!(
                "ragged input: row {i} has {} values, row 0 has {width}",
                row.len()
            );
        }
        for (j, v) in row.iter().enumerate() {
            let Some(x) = v.as_f64() else {
                bail!("row {i} column {j} is not a number: {v}");
            };
            values.push(x as f32);
        }
    }
    Ok(Rows { dim: width, values })
}

pub fn write_rows(path: &Path, values: &[f32], dim: usize) -> anyhow::Result<()> {
    let bytes = if is_f32(path) {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    } else {
        let rows: Vec<&[f32]> = values.chunks_exact(dim).collect();
        let mut b = serde_json::to_vec(&rows)?;
        b.push(b'\n');
        b
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}
