//! OpenSSH's pattern matching (`match_pattern` / `match_pattern_list` in
//! OpenSSH's match.c), used for `namespaces=` in allowed_signers.

/// OpenSSH `match_pattern_list` semantics: list of patterns, any
/// positive match allows, any negated (`!pat`) match denies outright.
pub(crate) fn pattern_list_matches(value: &str, patterns: &[String]) -> bool {
    let mut allowed = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_match(negated.as_bytes(), value.as_bytes()) {
                return false;
            }
        } else if glob_match(pattern.as_bytes(), value.as_bytes()) {
            allowed = true;
        }
    }
    allowed
}

/// `*` matches any run of bytes, `?` any single byte; everything else is literal.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Position of the last `*` and the text position it is currently absorbing up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}
