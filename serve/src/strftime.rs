//! `strftime_now(fmt)` for chat templates: the current UTC time in the common strftime
//! directives (`%Y %y %m %d %e %H %I %M %S %p %b %B %a %A %j %%`); others are kept verbatim.

use time::OffsetDateTime;

pub fn now(fmt: &str) -> String {
    format(OffsetDateTime::now_utc(), fmt)
}

pub fn format(t: OffsetDateTime, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let month = t.month();
        let wd = t.weekday();
        let h12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let s = match d {
            'Y' => t.year().to_string(),
            'y' => format!("{:02}", t.year().rem_euclid(100)),
            'm' => format!("{:02}", u8::from(month)),
            'd' => format!("{:02}", t.day()),
            'e' => format!("{:>2}", t.day()),
            'H' => format!("{:02}", t.hour()),
            'I' => format!("{h12:02}"),
            'M' => format!("{:02}", t.minute()),
            'S' => format!("{:02}", t.second()),
            'p' => (if t.hour() < 12 { "AM" } else { "PM" }).to_string(),
            'B' => month.to_string(),
            'b' => month.to_string().chars().take(3).collect(),
            'A' => wd.to_string(),
            'a' => wd.to_string().chars().take(3).collect(),
            'j' => format!("{:03}", t.ordinal()),
            '%' => "%".to_string(),
            other => format!("%{other}"),
        };
        out.push_str(&s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_common_directives() {
        let t = datetime!(2026-03-07 15:04:05 UTC);
        assert_eq!(format(t, "%d %b %Y"), "07 Mar 2026");
        assert_eq!(
            format(t, "%A, %B %e %I:%M:%S %p %j %%q %Q"),
            "Saturday, March  7 03:04:05 PM 066 %q %Q"
        );
    }
}
