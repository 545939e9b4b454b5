//! Prompt files for `kakeya bench acceptance`: JSON Lines in one of four shapes, recognised
//! per line — `{"prompt": ...}`, GSM8K `{"question", "answer"}`, HumanEval `{"prompt",
//! "canonical_solution"}` and Spec-Bench `question.jsonl` (`category`, `turns`: the first
//! turn is the prompt). A reference answer, where the shape has one, feeds a correctness
//! proxy.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// One prompt with what the file says about it.
#[derive(Debug, Clone)]
pub struct Item {
    pub text: String,
    pub category: Option<String>,
    /// What a correct output should contain (GSM8K: the number after `####`; HumanEval: the
    /// first non-empty line of the canonical solution).
    pub reference: Option<String>,
}

fn parse_line(v: &Value) -> Option<Item> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let category = s("category");
    if let Some(turns) = v.get("turns").and_then(Value::as_array) {
        let first = turns.first()?.as_str()?.to_string();
        return Some(Item {
            text: first,
            category,
            reference: None,
        });
    }
    if let (Some(q), Some(a)) = (s("question"), s("answer")) {
        let reference = a
            .rsplit_once("####")
            .map(|(_, n)| n.trim().replace(',', ""))
            .filter(|n| !n.is_empty());
        return Some(Item {
            text: q,
            category: category.or(Some("gsm8k".into())),
            reference,
        });
    }
    let prompt = s("prompt")?;
    let reference = s("canonical_solution").and_then(|c| {
        c.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
    });
    let category = category.or_else(|| reference.as_ref().map(|_| "humaneval".to_string()));
    Some(Item {
        text: prompt,
        category,
        reference,
    })
}

/// Read a JSONL prompt file; blank lines are skipped, anything else must parse.
pub fn read(path: &Path) -> anyhow::Result<Vec<Item>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let Some(item) = parse_line(&v) else {
            bail!(
                "{} line {}: expected {{\"prompt\"}}, {{\"question\", \"answer\"}}, \
                 {{\"prompt\", \"canonical_solution\"}} or {{\"category\", \"turns\"}}",
                path.display(),
                i + 1
            );
        };
        if item.text.is_empty() {
            bail!("{} line {}: the prompt is empty", path.display(), i + 1);
        }
        items.push(item);
    }
    if items.is_empty() {
        bail!("{} holds no prompts", path.display());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_shapes() {
        let j = |s: &str| parse_line(&serde_json::from_str(s).unwrap());
        let a = j(r#"{"prompt": "hi"}"#).unwrap();
        assert_eq!((a.text.as_str(), a.reference), ("hi", None));
        let g = j(r#"{"question": "2+2?", "answer": "so\n#### 1,004"}"#).unwrap();
        assert_eq!(g.reference.as_deref(), Some("1004"));
        assert_eq!(g.category.as_deref(), Some("gsm8k"));
        let h = j(r#"{"prompt": "def f():", "canonical_solution": "\n    return 1\n"}"#).unwrap();
        assert_eq!(h.reference.as_deref(), Some("return 1"));
        let s = j(r#"{"question_id": 1, "category": "writing", "turns": ["a", "b"]}"#).unwrap();
        assert_eq!(
            (s.text.as_str(), s.category.as_deref()),
            ("a", Some("writing"))
        );
        assert!(j(r#"{"text": "x"}"#).is_none());
        assert!(j(r#"{"turns": []}"#).is_none());
    }
}
