//! Reference drafts recorded as JSONL, one block per line:
//! `{"context_ids": [..], "draft_ids": [..]}` — what another implementation (e.g. a Mac run)
//! proposed after that context. Blank lines and lines starting with `#` are skipped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DraftSource;
use crate::model::ModelError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceBlock {
    pub context_ids: Vec<u32>,
    pub draft_ids: Vec<u32>,
}

/// At most this many blocks (a parity file is small; refuse absurd inputs early).
const MAX_BLOCKS: usize = 100_000;

/// Parse a JSONL reference file.
pub fn read(path: &Path) -> Result<Vec<ReferenceBlock>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text).map_err(|m| ModelError::Input(format!("{}: {m}", path.display())))
}

pub fn parse(text: &str) -> Result<Vec<ReferenceBlock>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let b: ReferenceBlock =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if b.context_ids.is_empty() || b.draft_ids.is_empty() {
            return Err(format!(
                "line {}: context_ids and draft_ids must be non-empty",
                n + 1
            ));
        }
        out.push(b);
        if out.len() > MAX_BLOCKS {
            return Err(format!("more than {MAX_BLOCKS} blocks"));
        }
    }
    if out.is_empty() {
        return Err("no reference blocks".into());
    }
    Ok(out)
}

/// JSONL text of `blocks`.
pub fn to_jsonl(blocks: &[ReferenceBlock]) -> String {
    blocks
        .iter()
        .filter_map(|b| serde_json::to_string(b).ok())
        .map(|l| l + "\n")
        .collect()
}

/// Answers with the recorded draft for a recorded context (and nothing else).
pub struct Recorded<'a>(pub &'a [ReferenceBlock]);

impl DraftSource for Recorded<'_> {
    fn propose(&mut self, context: &[u32], n: usize) -> Result<Vec<u32>, ModelError> {
        let b = self
            .0
            .iter()
            .find(|b| b.context_ids == context)
            .ok_or_else(|| ModelError::Input("no reference block has this context".into()))?;
        Ok(b.draft_ids.iter().take(n).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let ok = parse("# made on a Mac\n{\"context_ids\":[1,2],\"draft_ids\":[3]}\n\n").unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(parse(&to_jsonl(&ok)).unwrap()[0].draft_ids, vec![3]);
        for bad in [
            "",
            "{\"context_ids\":[],\"draft_ids\":[3]}",
            "{\"context_ids\":[1]}",
            "{\"context_ids\":[1],\"draft_ids\":[2],\"x\":1}",
            "{\"context_ids\":[-1],\"draft_ids\":[2]}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
