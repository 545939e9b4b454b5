//! From committed token ids to the text a client sees: incremental detokenization over a
//! short window (never emitting half a UTF-8 character, and costing O(window) per token
//! rather than re-decoding everything), and OpenAI stop strings (generation ends at the first
//! occurrence; the stop text itself is not returned, so text that could still become a stop
//! string is held back until it cannot).

use kakeya_engine::tokenizer::TextTokenizer;

pub struct TextStream<'a> {
    tok: &'a TextTokenizer,
    ids: Vec<u32>,
    /// Window start: decoding `ids[prefix..]` gives the text from where `ids[..prefix]` ended
    /// (decoding from a few tokens back keeps merges like leading spaces right).
    prefix: usize,
    /// Tokens whose text is already in `full`.
    read: usize,
    /// Text decoded so far.
    full: String,
    /// Bytes of `full` already handed out.
    emitted: usize,
    stops: Vec<String>,
    hold: usize,
}

/// What pushing tokens produced.
pub struct Push {
    pub text: String,
    /// A stop string was found; `text` ends right before it.
    pub stopped: bool,
}

impl<'a> TextStream<'a> {
    pub fn new(tok: &'a TextTokenizer, stops: Vec<String>) -> Self {
        let stops: Vec<String> = stops.into_iter().filter(|s| !s.is_empty()).collect();
        let hold = stops.iter().map(|s| s.len()).max().unwrap_or(1) - 1;
        TextStream {
            tok,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
            full: String::new(),
            emitted: 0,
            stops,
            hold,
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tok.decode(ids).unwrap_or_default()
    }

    /// Move settled text of the window into `full`; with `last`, everything.
    fn settle(&mut self, last: bool) {
        let before = self.decode(&self.ids[self.prefix..self.read]);
        let after = self.decode(&self.ids[self.prefix..]);
        // A trailing replacement character is usually a multi-byte character cut in half.
        let incomplete = after.ends_with('\u{FFFD}') && !last;
        if after.len() > before.len() && after.starts_with(before.as_str()) && !incomplete {
            self.full.push_str(&after[before.len()..]);
            self.prefix = self.read;
            self.read = self.ids.len();
        } else if last && after.len() > before.len() {
            let cut = floor_boundary(&after, before.len());
            self.full.push_str(&after[cut..]);
            self.read = self.ids.len();
        }
    }

    /// Add tokens and return the text that is now safe to emit.
    pub fn push(&mut self, ids: &[u32]) -> Push {
        self.ids.extend_from_slice(ids);
        self.settle(false);
        self.advance(false)
    }

    /// Everything not yet emitted (end of generation).
    pub fn finish(&mut self) -> Push {
        self.settle(true);
        self.advance(true)
    }

    fn advance(&mut self, last: bool) -> Push {
        let full = &self.full;
        // Search from far enough back to catch a stop string straddling the boundary.
        let from = floor_boundary(full, self.emitted.saturating_sub(self.hold));
        let found = self
            .stops
            .iter()
            .filter_map(|s| full[from..].find(s.as_str()).map(|i| from + i))
            .min();
        if let Some(at) = found {
            let at = at.max(self.emitted);
            let text = full[self.emitted..at].to_string();
            self.emitted = full.len();
            return Push {
                text,
                stopped: true,
            };
        }
        let safe = if last || self.stops.is_empty() {
            full.len()
        } else {
            floor_boundary(full, full.len().saturating_sub(self.hold)).max(self.emitted)
        };
        let text = full[self.emitted..safe].to_string();
        self.emitted = safe;
        Push {
            text,
            stopped: false,
        }
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> TextTokenizer {
        let t = kakeya_engine::tiny::tokenizer::build(400).expect("tiny tokenizer");
        let json = t.to_string(false).expect("json");
        TextTokenizer::from_bytes(json.as_bytes()).expect("load")
    }

    fn run(t: &TextTokenizer, text: &str, stops: &[&str]) -> (String, bool) {
        let ids = t.encode(text).expect("encode");
        let mut s = TextStream::new(t, stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for id in ids {
            let p = s.push(&[id]);
            out.push_str(&p.text);
            if p.stopped {
                return (out, true);
            }
        }
        let p = s.finish();
        out.push_str(&p.text);
        (out, p.stopped)
    }

    #[test]
    fn streaming_pieces_add_up_to_the_text() {
        let t = tok();
        for text in [
            "the cache stores the next word.",
            "héllo ✓ 日本 fn step_3(x)",
            "",
        ] {
            assert_eq!(run(&t, text, &[]), (text.to_string(), false));
        }
    }

    #[test]
    fn stop_strings_end_before_the_first_match_across_tokens() {
        let t = tok();
        let text = "the cache stores the next word. the model reads sixteen values.";
        assert_eq!(
            run(&t, text, &["next word"]),
            ("the cache stores the ".into(), true)
        );
        assert_eq!(run(&t, text, &["model", "cache"]), ("the ".into(), true));
        assert_eq!(
            run(&t, text, &["values."]).0,
            "the cache stores the next word. the model reads sixteen "
        );
        assert_eq!(run(&t, text, &["absent"]), (text.to_string(), false));
        assert_eq!(run(&t, "日本語 text", &["本"]), ("日".into(), true));
    }
}
