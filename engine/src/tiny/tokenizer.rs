//! Tokenizers for tiny models, made with the `tokenizers` crate and no downloads: a
//! byte-level BPE trained on a small built-in corpus (vocab ≥ 258: 2 specials + 256 bytes +
//! merges), or, for smaller vocabularies, a character-level one over printable ASCII.

use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder, Vocab};
use tokenizers::{AddedToken, Tokenizer};

use crate::model::ModelError;

/// Id of `<s>` and `</s>` in every tiny tokenizer.
pub const BOS_ID: u32 = 0;
pub const EOS_ID: u32 = 1;
/// Smallest vocabulary a tiny model can have (specials + printable ASCII + newline).
pub const MIN_VOCAB: usize = 100;

fn err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// A few hundred deterministic lines of plain English and code-ish text.
pub fn corpus() -> Vec<String> {
    const SUBJECTS: [&str; 8] = [
        "the cache",
        "a token",
        "the model",
        "our engine",
        "the draft",
        "every layer",
        "the lattice",
        "a block",
    ];
    const VERBS: [&str; 8] = [
        "stores",
        "reads",
        "verifies",
        "compresses",
        "accepts",
        "rejects",
        "predicts",
        "decodes",
    ];
    const OBJECTS: [&str; 8] = [
        "the next word",
        "sixteen values",
        "a short prompt",
        "the key and value",
        "one more block",
        "the greedy answer",
        "every position",
        "the secret code",
    ];
    let mut lines = Vec::new();
    for (i, s) in SUBJECTS.iter().enumerate() {
        for (j, v) in VERBS.iter().enumerate() {
            for (k, o) in OBJECTS.iter().enumerate() {
                if (i + 2 * j + 3 * k) % 3 == 0 {
                    lines.push(format!("{s} {v} {o}."));
                }
            }
        }
    }
    for n in 0..64 {
        lines.push(format!(
            "fn step_{n}(x: u32) -> u32 {{ x * {} + {} }}",
            n % 7 + 1,
            n * 3
        ));
        lines.push(format!(
            "Note {n:04}: the quick brown fox jumps over the lazy dog {n} times."
        ));
    }
    lines
}

/// A tokenizer whose ids are all below `vocab`.
pub fn build(vocab: usize) -> Result<Tokenizer, ModelError> {
    if vocab < MIN_VOCAB {
        return Err(err(format!(
            "vocab {vocab} is below the minimum {MIN_VOCAB}"
        )));
    }
    if vocab < 258 {
        return char_level();
    }
    let specials = vec![
        AddedToken::from("<s>", true),
        AddedToken::from("</s>", true),
    ];
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab)
        .min_frequency(2)
        .initial_alphabet(
            tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
                .into_iter()
                .collect(),
        )
        .special_tokens(specials)
        .build()
        .into();
    let mut tok = Tokenizer::new(BPE::default());
    // add_prefix_space=false so a round trip does not gain a leading space.
    tok.with_pre_tokenizer(Some(
        tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, false),
    ));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.train(&mut trainer, corpus().iter()).map_err(err)?;
    Ok(tok)
}

fn char_level() -> Result<Tokenizer, ModelError> {
    let mut vocab = Vocab::default();
    for (i, t) in ["<s>", "</s>", "<unk>"].iter().enumerate() {
        vocab.insert((*t).to_string(), i as u32);
    }
    for c in (0x20u8..0x7f).chain([b'\n']) {
        let id = vocab.len() as u32;
        vocab.insert((c as char).to_string(), id);
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .unk_token("<unk>".into())
        .build()
        .map_err(err)?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_decoder(Some(Fuse::new()));
    tok.add_special_tokens([
        AddedToken::from("<s>", true),
        AddedToken::from("</s>", true),
    ])
    .map_err(err)?;
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(vocab: usize, text: &str) -> (usize, String) {
        let tok = build(vocab).unwrap();
        assert!(tok.get_vocab_size(true) <= vocab);
        let enc = tok.encode(text, true).unwrap();
        assert!(enc.get_ids().iter().all(|&i| (i as usize) < vocab));
        (
            enc.get_ids().len(),
            tok.decode(enc.get_ids(), true).unwrap(),
        )
    }

    #[test]
    fn byte_level_and_char_level_round_trip() {
        let text = "the cache stores the next word.\nfn step_3(x: u32) -> u32 { x }";
        let (n, back) = roundtrip(400, text);
        assert_eq!(back, text);
        assert!(n < text.len(), "BPE merges should shorten the encoding");
        assert_eq!(roundtrip(258, "héllo ✓").1, "héllo ✓");
        assert_eq!(roundtrip(128, text).1, text);
        assert!(build(MIN_VOCAB - 1).is_err());
    }
}
