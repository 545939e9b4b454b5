//! Wall-clock helpers. Every timestamp on the bus is RFC 3339 in UTC.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// Now, in UTC, truncated to whole seconds so timestamps are short and compare exactly.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Format as RFC 3339 UTC (`2026-11-21T23:59:00Z`).
pub fn format(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Parse an RFC 3339 timestamp.
pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Seconds from `a` to `b` (negative when `b` is earlier).
pub fn seconds_between(a: OffsetDateTime, b: OffsetDateTime) -> f64 {
    (b - a).as_seconds_f64()
}

/// `t` plus a number of seconds (saturating).
pub fn plus_seconds(t: OffsetDateTime, secs: f64) -> OffsetDateTime {
    t.checked_add(Duration::seconds_f64(secs))
        .unwrap_or(OffsetDateTime::from_unix_timestamp(253_402_300_799).unwrap_or(t))
}
