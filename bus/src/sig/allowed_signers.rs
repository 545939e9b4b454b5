//! A strict parser for git's / OpenSSH's `allowed_signers` file
//! (ssh-keygen(1), "ALLOWED SIGNERS"), and the authorization check built on it.
//!
//! Each non-blank, non-`#` line is
//!
//! ```text
//! principals [options] keytype base64 [comment]
//! ```
//!
//! * `principals`: comma-separated; the whole field may be wrapped in double
//!   quotes. Principals containing `*`/`?` are OpenSSH patterns; they are kept
//!   verbatim and returned as such by [`AllowedSigners::authorize`].
//! * `options`: comma-separated, values in double quotes (`\"` escapes a
//!   quote), option names case-insensitive:
//!   - `namespaces="a,b*"`: the key may sign only in these namespaces. Entries
//!     are OpenSSH patterns (`*`, `?`; a leading `!` excludes, and an excluded
//!     match wins), matched case-sensitively.
//!   - `valid-after="YYYYMMDD[HHMM[SS]][Z]"`, `valid-before=...`: the validity
//!     window, inclusive at both ends like OpenSSH.
//!
//!   **Times without a trailing `Z` are read as UTC here. OpenSSH reads them
//!   as the verifier's local time**, so write the `Z` when a file is shared
//!   with `ssh-keygen`/git to get the same window everywhere.
//!   `cert-authority` and unknown options are refused: a file that grants more
//!   than this parser understands must not be half-applied.
//!
//! Keys of any type parse (a file shared with git may list RSA keys), but only
//! ed25519 signatures ever verify (see [`super::sshsig`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use ssh_key::{Algorithm, PublicKey};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::SigError;
use super::keys::fingerprint;
use super::pattern::pattern_list_matches;

/// Generous for thousands of signers; stops a wrong path from being slurped.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// A parsed `allowed_signers` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedSigners {
    entries: Vec<SignerEntry>,
}

/// One line of an `allowed_signers` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerEntry {
    /// Principals named on the line, verbatim (patterns included).
    pub principals: Vec<String>,
    /// `namespaces=` patterns; `None` means every namespace.
    pub namespaces: Option<Vec<String>>,
    /// `valid-after=`; the key is refused before this instant.
    pub valid_after: Option<OffsetDateTime>,
    /// `valid-before=`; the key is refused after this instant.
    pub valid_before: Option<OffsetDateTime>,
    /// The signer's public key (with the line's comment, if any).
    pub key: PublicKey,
    /// 1-based line number, for messages.
    pub line: usize,
}

impl AllowedSigners {
    /// Parses the text of an `allowed_signers` file. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, SigError> {
        Self::parse_named(text, "allowed_signers")
    }

    /// Reads and parses an `allowed_signers` file; errors name the path.
    pub fn from_file(path: &Path) -> Result<Self, SigError> {
        let io_err = |source| SigError::Io {
            action: "cannot read allowed_signers file",
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
            .map_err(io_err)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(SigError::FileTooLarge {
                path: path.to_path_buf(),
                len: bytes.len() as u64,
                max: MAX_FILE,
            });
        }
        let origin = path.display().to_string();
        let text = String::from_utf8(bytes).map_err(|e| SigError::AllowedSignersSyntax {
            origin: origin.clone(),
            line: 1 + text_line_of(e.as_bytes(), e.utf8_error().valid_up_to()),
            message: "not valid UTF-8".to_owned(),
        })?;
        Self::parse_named(&text, &origin)
    }

    fn parse_named(text: &str, origin: &str) -> Result<Self, SigError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            match parse_line(raw, line) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(message) => {
                    return Err(SigError::AllowedSignersSyntax {
                        origin: origin.to_owned(),
                        line,
                        message,
                    });
                }
            }
        }
        Ok(Self { entries })
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[SignerEntry] {
        &self.entries
    }

    /// Principals for which `key` may sign in `namespace` at time `at`: the
    /// union over every line listing the key whose options allow it.
    ///
    /// When no line allows it, the error explains why, using the first line
    /// that lists the key: unknown key, namespace not allowed, not yet valid,
    /// or expired.
    pub fn authorize(
        &self,
        key: &PublicKey,
        namespace: &str,
        at: OffsetDateTime,
    ) -> Result<Vec<String>, SigError> {
        let mut principals: Vec<String> = Vec::new();
        let mut refusal = None;
        for entry in self
            .entries
            .iter()
            .filter(|e| e.key.key_data() == key.key_data())
        {
            match entry.check(key, namespace, at) {
                Ok(()) => push_unique(&mut principals, &entry.principals),
                Err(e) => {
                    refusal.get_or_insert(e);
                }
            }
        }
        if !principals.is_empty() {
            return Ok(principals);
        }
        Err(refusal.unwrap_or_else(|| SigError::UnknownKey {
            fingerprint: fingerprint(key),
        }))
    }

    /// Every principal named in the file, deduplicated, in file order.
    pub fn principals(&self) -> Vec<String> {
        let mut all = Vec::new();
        for entry in &self.entries {
            push_unique(&mut all, &entry.principals);
        }
        all
    }
}

impl SignerEntry {
    /// Whether this line lets its key sign in `namespace` at `at`.
    fn check(&self, key: &PublicKey, namespace: &str, at: OffsetDateTime) -> Result<(), SigError> {
        if let Some(patterns) = &self.namespaces
            && !pattern_list_matches(namespace, patterns)
        {
            return Err(SigError::NamespaceNotAllowed {
                fingerprint: fingerprint(key),
                namespace: namespace.to_owned(),
                allowed: patterns.join(","),
                line: self.line,
            });
        }
        if let Some(after) = self.valid_after
            && at < after
        {
            return Err(SigError::KeyNotYetValid {
                fingerprint: fingerprint(key),
                valid_after: show_time(after),
                line: self.line,
            });
        }
        if let Some(before) = self.valid_before
            && at > before
        {
            return Err(SigError::KeyExpired {
                fingerprint: fingerprint(key),
                valid_before: show_time(before),
                line: self.line,
            });
        }
        Ok(())
    }
}

fn push_unique(into: &mut Vec<String>, items: &[String]) {
    for item in items {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

fn show_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn text_line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Parses one line; `Ok(None)` for blank and comment lines.
fn parse_line(raw: &str, line: usize) -> Result<Option<SignerEntry>, String> {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let (principals_field, rest) = take_principals(text)?;
    let principals: Vec<String> = principals_field.split(',').map(str::to_owned).collect();
    if principals.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("empty principal in {principals_field:?}"));
    }
    if matches!(Algorithm::new(principals_field), Ok(a) if !matches!(a, Algorithm::Other(_))) {
        return Err(format!(
            "the line starts with key type {principals_field}; principals are missing"
        ));
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Err("missing public key after the principals".to_owned());
    }

    let first = rest.split_whitespace().next().unwrap_or_default();
    let (options, key_text) = if looks_like_options(first) {
        let (field, after) = split_options_field(rest)?;
        (parse_options(field)?, after.trim_start())
    } else {
        (Options::default(), rest)
    };
    if key_text.is_empty() {
        return Err("missing public key after the options".to_owned());
    }
    let key = parse_key(key_text)?;
    Ok(Some(SignerEntry {
        principals,
        namespaces: options.namespaces,
        valid_after: options.valid_after,
        valid_before: options.valid_before,
        key,
        line,
    }))
}

/// The principals field: a quoted string (no escapes, as in OpenSSH) or a
/// run of non-whitespace.
fn take_principals(text: &str) -> Result<(&str, &str), String> {
    if let Some(quoted) = text.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or("unterminated quote in the principals field")?;
        let (field, after) = (&quoted[..end], &quoted[end + 1..]);
        if !after.is_empty() && !after.starts_with(char::is_whitespace) {
            return Err("the closing quote of the principals must be followed by a space".into());
        }
        Ok((field, after))
    } else {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        Ok(text.split_at(end))
    }
}

/// Key type names never contain `=`, `"` or `,`; option fields usually do.
/// A bare word that is not a key type is treated as an (unknown) option so
/// that the error talks about options.
fn looks_like_options(token: &str) -> bool {
    token.contains(['=', '"', ','])
        || token.eq_ignore_ascii_case("cert-authority")
        || Algorithm::new(token).is_err()
}

/// Splits off the options field: everything up to the first whitespace
/// outside double quotes.
fn split_options_field(text: &str) -> Result<(&str, &str), String> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quote && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if !in_quote && c.is_whitespace() {
            return Ok(text.split_at(i));
        }
    }
    if in_quote {
        return Err("unterminated quote in the options".to_owned());
    }
    Ok((text, ""))
}

#[derive(Default)]
struct Options {
    namespaces: Option<Vec<String>>,
    valid_after: Option<OffsetDateTime>,
    valid_before: Option<OffsetDateTime>,
}

fn parse_options(field: &str) -> Result<Options, String> {
    let mut options = Options::default();
    let mut rest = field;
    while !rest.is_empty() {
        let name_end = rest.find(['=', ',']).unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = &rest[name_end..];
        let value = match rest.strip_prefix('=') {
            Some(after_eq) => {
                let (value, after) =
                    dequote(after_eq).map_err(|e| format!("option {name}: {e}"))?;
                rest = after;
                Some(value)
            }
            None => None,
        };
        match rest.strip_prefix(',') {
            Some("") => return Err("trailing comma in the options".into()),
            Some(after) => rest = after,
            None if rest.is_empty() => {}
            None => return Err(format!("expected a comma after option {name}")),
        }
        apply_option(&mut options, name, value)?;
    }
    if let (Some(after), Some(before)) = (options.valid_after, options.valid_before)
        && before <= after
    {
        return Err("valid-before is not later than valid-after".to_owned());
    }
    Ok(options)
}

fn apply_option(options: &mut Options, name: &str, value: Option<String>) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let known = ["namespaces", "valid-after", "valid-before"];
    if lower == "cert-authority" {
        return Err(
            "the cert-authority option is not supported: list each signer's own key".into(),
        );
    }
    if !known.contains(&lower.as_str()) {
        let shown = if name.is_empty() { "(empty)" } else { name };
        return Err(format!(
            "unsupported option or unknown key type {shown:?} \
             (supported options: namespaces, valid-after, valid-before)"
        ));
    }
    let value = value.ok_or_else(|| format!("option {lower} needs a quoted value"))?;
    let duplicate = || format!("option {lower} given twice");
    match lower.as_str() {
        "namespaces" => {
            if options.namespaces.is_some() {
                return Err(duplicate());
            }
            let list: Vec<String> = value.split(',').map(str::to_owned).collect();
            if list.iter().any(|n| n.is_empty()) {
                return Err(format!("empty namespace in namespaces=\"{value}\""));
            }
            options.namespaces = Some(list);
        }
        "valid-after" => {
            if options.valid_after.is_some() {
                return Err(duplicate());
            }
            options.valid_after = Some(parse_time(&value)?);
        }
        _ => {
            if options.valid_before.is_some() {
                return Err(duplicate());
            }
            options.valid_before = Some(parse_time(&value)?);
        }
    }
    Ok(())
}

/// Reads a `"..."` value at the start of `text` (with `\"` escapes) and
/// returns it with the text after the closing quote.
fn dequote(text: &str) -> Result<(String, &str), String> {
    let body = text
        .strip_prefix('"')
        .ok_or("value must be in double quotes")?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[i + 1..])),
            '\\' if body[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            _ => value.push(c),
        }
    }
    Err("missing closing quote".to_owned())
}

/// `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, optionally followed by
/// `Z`; always interpreted as UTC (see the module docs).
fn parse_time(value: &str) -> Result<OffsetDateTime, String> {
    let digits = value.strip_suffix(['Z', 'z']).unwrap_or(value);
    let bad = || format!("invalid time {value:?}: expected YYYYMMDD[HHMM[SS]][Z]");
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let field = |range: std::ops::Range<usize>| -> u16 {
        digits.get(range).and_then(|s| s.parse().ok()).unwrap_or(0)
    };
    let year = i32::from(field(0..4));
    let month = Month::try_from(field(4..6) as u8).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year, month, field(6..8) as u8).map_err(|_| bad())?;
    let time = Time::from_hms(field(8..10) as u8, field(10..12) as u8, field(12..14) as u8)
        .map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

/// `keytype base64 [comment]`, whitespace-separated.
fn parse_key(text: &str) -> Result<PublicKey, String> {
    let mut parts = text.splitn(2, char::is_whitespace);
    let kind = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default().trim_start();
    let mut parts = rest.splitn(2, char::is_whitespace);
    let data = parts.next().unwrap_or_default();
    let comment = parts.next().unwrap_or_default().trim();
    if data.is_empty() {
        return Err(format!("missing base64 key data after key type {kind:?}"));
    }
    let normalized = if comment.is_empty() {
        format!("{kind} {data}")
    } else {
        format!("{kind} {data} {comment}")
    };
    PublicKey::from_openssh(&normalized)
        .map_err(|e| format!("invalid public key ({kind} ...): {e}"))
}

#[cfg(test)]
mod tests;
