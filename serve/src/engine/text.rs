//! From committed token ids to the text a client sees: incremental detokenization (never
//! emitting half a UTF-8 character) and OpenAI stop strings (generation ends at the first
//! occurrence; the stop text itself is not returned, so text that could still become a stop
//! string is held back until it cannot).

use kakeya_engine::tokenizer::TextTokenizer;

pub struct TextStream<'a> {
    tok: &'a TextTokenizer,
    ids: Vec<u32>,
    /// Bytes of the decoded text already handed out.
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
            emitted: 0,
            stops,
            hold,
        }
    }

    /// Add tokens and return the text that is now safe to emit.
    pub fn push(&mut self, ids: &[u32]) -> Push {
        self.ids.extend_from_slice(ids);
        let full = self.tok.decode(&self.ids).unwrap_or_default();
        // A trailing replacement character is usually a multi-byte character cut in half.
        let settled = full.trim_end_matches('\u{FFFD}');
        self.advance(settled, false)
    }

    /// Everything not yet emitted (end of generation).
    pub fn finish(&mut self) -> Push {
        let full = self.tok.decode(&self.ids).unwrap_or_default();
        self.advance(&full, true)
    }

    fn advance(&mut self, full: &str, last: bool) -> Push {
        if full.len() < self.emitted || !full.is_char_boundary(self.emitted) {
            // The decoder revised earlier text (rare, e.g. cleanup rules); resync quietly.
            self.emitted = full.len().min(self.emitted);
            while !full.is_char_boundary(self.emitted) {
                self.emitted -= 1;
            }
        }
        // Search from far enough back to catch a stop string straddling the boundary.
        let mut from = self.emitted.saturating_sub(self.hold);
        while !full.is_char_boundary(from) {
            from -= 1;
        }
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
        let mut safe = if last || self.stops.is_empty() {
            full.len()
        } else {
            full.len().saturating_sub(self.hold).max(self.emitted)
        };
        while !full.is_char_boundary(safe) {
            safe -= 1;
        }
        let text = full[self.emitted..safe.max(self.emitted)].to_string();
        self.emitted = safe.max(self.emitted);
        Push {
            text,
            stopped: false,
        }
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}
