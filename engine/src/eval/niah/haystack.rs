//! Building one needle-in-a-haystack prompt, at the token level.
//!
//! Every piece (each filler sentence, the needle, the question) is encoded on its own and
//! the ids are concatenated, so a BPE tokenizer can never merge the needle with its
//! neighbours: the needle's ids in the prompt are exactly the ids of the needle text, and
//! the prompt is exactly `context_len` tokens (the last filler sentence is cut at a token).

use crate::model::ModelError;
use crate::tiny::Rng;

/// The needle: the key is found again in the question; the value is what must come back.
pub const NEEDLE_TEMPLATE: &str = " Remember the code [{KEY}={VALUE}].";
pub const QUESTION_TEMPLATE: &str = " What is the code for {KEY}? Answer: [{KEY}=";
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const VALUE_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const KEY_LEN: usize = 4;
pub const VALUE_LEN: usize = 6;

const SUBJECTS: [&str; 10] = [
    "the river",
    "an old farmer",
    "the small dog",
    "a quiet village",
    "the morning train",
    "my neighbour",
    "the wind",
    "a tired teacher",
    "the garden",
    "every child",
];
const VERBS: [&str; 10] = [
    "walks past",
    "looks at",
    "waits for",
    "sings about",
    "forgets",
    "remembers",
    "follows",
    "paints",
    "carries",
    "dreams of",
];
const OBJECTS: [&str; 10] = [
    "the green hills",
    "a basket of apples",
    "the long road",
    "some warm bread",
    "the bright lamp",
    "a letter from home",
    "the frozen lake",
    "an empty chair",
    "the market square",
    "a pile of books",
];
const TAILS: [&str; 6] = [
    "",
    " in the evening",
    " after the rain",
    " without a word",
    " once again",
    " before lunch",
];

/// The built-in filler: `n` lowercase sentences (no digits, capitals or brackets, so a key
/// or value never occurs in it by accident).
pub fn builtin_sentences(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed ^ 0x0004_e1a4);
    let mut pick = |len: usize| (rng.next_u64() % len as u64) as usize;
    (0..n)
        .map(|_| {
            format!(
                " {} {} {}{}.",
                SUBJECTS[pick(SUBJECTS.len())],
                VERBS[pick(VERBS.len())],
                OBJECTS[pick(OBJECTS.len())],
                TAILS[pick(TAILS.len())]
            )
        })
        .collect()
}

/// Sentences of a user haystack file: split after `.`, `!`, `?` and at newlines.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c == '\n' || c == '\r' {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
            cur.push(' ');
            continue;
        }
        cur.push(c);
        if matches!(c, '.' | '!' | '?') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

/// A random key and value for one trial.
pub fn key_value(rng: &mut Rng) -> (String, String) {
    let mut draw = |alphabet: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize] as char)
            .collect()
    };
    let key = draw(KEY_ALPHABET, KEY_LEN);
    let value = draw(VALUE_ALPHABET, VALUE_LEN);
    (key, value)
}

/// One prompt, ready to run.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub key: String,
    pub value: String,
    /// Token index where the needle starts.
    pub needle_start: usize,
    pub needle_len: usize,
    /// Where the needle really sits in the filler: tokens of filler before it / all filler.
    pub actual_depth: f64,
}

/// Encodes text pieces; the harness only needs this much of a tokenizer.
pub trait Encode {
    fn encode_piece(&self, text: &str) -> Result<Vec<u32>, ModelError>;
}

/// What goes into the haystack and what must come back.
#[derive(Debug, Clone, Copy)]
pub struct Needle<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

/// Build a prompt of exactly `context_len` tokens: `[bos] filler… needle filler… question`,
/// the needle at the sentence boundary closest to `depth` (0 = first, 1 = right before the
/// question). `sentences` are pre-encoded filler pieces, used cyclically from `start`.
pub fn build_prompt(
    enc: &dyn Encode,
    sentences: &[Vec<u32>],
    start: usize,
    bos: Option<u32>,
    context_len: usize,
    depth: f64,
    needle: Needle,
) -> Result<Prompt, ModelError> {
    let Needle { key, value } = needle;
    if !(0.0..=1.0).contains(&depth) {
        return Err(ModelError::Input(format!(
            "depth {depth} is outside [0, 1]"
        )));
    }
    if sentences.iter().all(|s| s.is_empty()) {
        return Err(ModelError::Input("the haystack has no tokens".into()));
    }
    let needle = enc.encode_piece(
        &NEEDLE_TEMPLATE
            .replace("{KEY}", key)
            .replace("{VALUE}", value),
    )?;
    let question = enc.encode_piece(&QUESTION_TEMPLATE.replace("{KEY}", key))?;
    let fixed = usize::from(bos.is_some()) + needle.len() + question.len();
    if context_len <= fixed {
        return Err(ModelError::Input(format!(
            "context length {context_len} leaves no room for filler (needle + question take {fixed} tokens)"
        )));
    }
    let budget = context_len - fixed;
    // Filler sentences in order, the last one cut so the total is exact.
    let mut pieces: Vec<&[u32]> = Vec::new();
    let mut filled = 0;
    let mut i = start;
    while filled < budget {
        let s = &sentences[i % sentences.len()];
        i += 1;
        if s.is_empty() {
            continue;
        }
        let take = s.len().min(budget - filled);
        pieces.push(&s[..take]);
        filled += take;
    }
    // Boundary b puts the needle before pieces[b]; pick the one nearest depth × filler.
    let target = depth * budget as f64;
    let mut best = (0usize, f64::INFINITY);
    let mut before = 0usize;
    for b in 0..=pieces.len() {
        let d = (before as f64 - target).abs();
        if d < best.1 {
            best = (b, d);
        }
        if b < pieces.len() {
            before += pieces[b].len();
        }
    }
    let mut ids = Vec::with_capacity(context_len);
    ids.extend(bos);
    let mut needle_start = 0;
    let mut filler_before = 0;
    for (b, p) in pieces.iter().enumerate() {
        if b == best.0 {
            needle_start = ids.len();
            filler_before = ids.len() - usize::from(bos.is_some());
            ids.extend(&needle);
        }
        ids.extend_from_slice(p);
    }
    if best.0 == pieces.len() {
        needle_start = ids.len();
        filler_before = budget;
        ids.extend(&needle);
    }
    ids.extend(&question);
    debug_assert_eq!(ids.len(), context_len);
    Ok(Prompt {
        ids,
        key: key.to_string(),
        value: value.to_string(),
        needle_start,
        needle_len: needle.len(),
        actual_depth: filler_before as f64 / budget as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One id per byte: enough to check placement arithmetic.
    struct Bytes;
    impl Encode for Bytes {
        fn encode_piece(&self, text: &str) -> Result<Vec<u32>, ModelError> {
            Ok(text.bytes().map(u32::from).collect())
        }
    }

    const N: Needle = Needle {
        key: "ABCD",
        value: "X1Y2Z3",
    };

    fn sentences() -> Vec<Vec<u32>> {
        builtin_sentences(50, 1)
            .iter()
            .map(|s| Bytes.encode_piece(s).unwrap())
            .collect()
    }

    #[test]
    fn needle_at_depth_zero_and_one_and_exact_length() {
        let s = sentences();
        let p0 = build_prompt(&Bytes, &s, 0, Some(0), 300, 0.0, N).unwrap();
        assert_eq!(p0.ids.len(), 300);
        assert_eq!(
            p0.needle_start, 1,
            "depth 0 puts the needle right after bos"
        );
        assert_eq!(p0.actual_depth, 0.0);
        let p1 = build_prompt(&Bytes, &s, 0, Some(0), 300, 1.0, N).unwrap();
        let q = Bytes
            .encode_piece(&QUESTION_TEMPLATE.replace("{KEY}", "ABCD"))
            .unwrap();
        assert_eq!(
            p1.needle_start + p1.needle_len + q.len(),
            300,
            "depth 1: needle, then question"
        );
        assert_eq!(p1.actual_depth, 1.0);
        let text: Vec<u8> = p1.ids[p1.needle_start..][..p1.needle_len]
            .iter()
            .map(|&b| b as u8)
            .collect();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            " Remember the code [ABCD=X1Y2Z3]."
        );
        let mid = build_prompt(&Bytes, &s, 3, None, 500, 0.5, N).unwrap();
        assert!((mid.actual_depth - 0.5).abs() < 0.1, "{}", mid.actual_depth);
        assert!(build_prompt(&Bytes, &s, 0, None, 40, 0.5, N).is_err());
        assert!(build_prompt(&Bytes, &s, 0, None, 400, 1.5, N).is_err());
    }

    #[test]
    fn filler_has_no_key_or_value_characters_and_files_split() {
        for s in builtin_sentences(200, 7) {
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b' ' || b == b'.'),
                "{s}"
            );
        }
        let parts = split_sentences("One. Two!\nThree\n\nfour? five");
        assert_eq!(parts, vec!["One.", " Two!", " Three", " four?", " five"]);
    }
}
