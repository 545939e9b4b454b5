//! Built-in prompt sets. Presets choose a set by name (an enum), so a request can never put
//! free text into a job; the CLI also takes `--prompt TEXT` directly.

/// Names of the built-in sets.
pub const SETS: &[&str] = &["short", "code", "long", "repeat"];

/// The prompts of set `name`.
pub fn prompt_set(name: &str) -> Option<Vec<String>> {
    let v: Vec<String> = match name {
        "short" => vec![
            "The cache stores".into(),
            "Note 0042: the quick brown fox".into(),
            "a block verifies".into(),
        ],
        "code" => vec![
            "fn step_3(x: u32) -> u32 {".into(),
            "fn step_17(x: u32) -> u32 { x * 4 +".into(),
            "fn main() { let total = step_1(".into(),
        ],
        // Longer than any block, so prefill spans several blocks' worth of positions.
        "long" => vec![
            (0..12)
                .map(|i| format!("Note {i:04}: the quick brown fox jumps over the lazy dog."))
                .collect::<Vec<_>>()
                .join("\n"),
            "the model predicts the next word. the draft decodes one more block. \
             every layer stores the key and value. the lattice compresses sixteen values. \
             the engine verifies the greedy answer and"
                .into(),
        ],
        // Text that repeats itself, where prompt lookup has something to find: a list written
        // out twice and started a third time, and a function body quoted then restarted.
        "repeat" => vec![
            {
                let line = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
                format!("{line}\n{line}\n{line}\nalpha beta")
            },
            "fn add(a: u32, b: u32) -> u32 { a + b }\nfn add(a: u32, b: u32) -> u32 { a + b }\nfn add(a: u32,"
                .into(),
            "the cache stores the key and value. the cache stores the key and value. the cache"
                .into(),
        ],
        _ => return None,
    };
    Some(v)
}
