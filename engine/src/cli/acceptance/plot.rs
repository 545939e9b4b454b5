//! A hand-written SVG scatter of speedup vs acceptance rate, one colour per drafter (no
//! plotting crate: its text rendering would want system fonts, and this needs none).
//! Synthetic (`replay`) points are drawn hollow and labelled so in the legend.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 420.0;
/// Margins: left, right (legend), top, bottom.
const L: f64 = 60.0;
const R: f64 = 150.0;
const T: f64 = 30.0;
const B: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// One point: drafter, acceptance rate in [0, 1], speedup, block size.
pub struct Point {
    pub drafter: String,
    pub synthetic: bool,
    pub acceptance: f64,
    pub speedup: f64,
    pub block_size: usize,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn svg(points: &[Point], title: &str) -> String {
    let ymax = points
        .iter()
        .map(|p| p.speedup)
        .filter(|s| s.is_finite())
        .fold(1.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let x = |a: f64| L + a.clamp(0.0, 1.0) * (W - L - R);
    let y = |s: f64| H - B - (s.clamp(0.0, ymax) / ymax) * (H - T - B);
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        o,
        r#"<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>"#
    );
    let _ = writeln!(
        o,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    // Axes, ticks, and the break-even line at speedup 1.
    let _ = writeln!(
        o,
        r#"<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        H - B,
        W - R,
        H - B
    );
    let _ = writeln!(
        o,
        r#"<line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="black"/>"#,
        H - B
    );
    for i in 0..=5 {
        let a = i as f64 / 5.0;
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{a:.1}</text>"#,
            x(a),
            H - B + 15.0
        );
        let s = ymax * i as f64 / 5.0;
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{s:.2}</text>"#,
            L - 5.0,
            y(s) + 4.0
        );
    }
    let _ = writeln!(
        o,
        r##"<line x1="{L}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#999" stroke-dasharray="4 3"/>"##,
        y(1.0),
        W - R
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">acceptance rate (drafts accepted / proposed)</text>"#,
        (L + W - R) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        o,
        r#"<text x="15" y="{:.1}" text-anchor="middle" transform="rotate(-90 15 {:.1})">speedup vs AR</text>"#,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    let mut names: Vec<(String, bool)> = Vec::new();
    for p in points {
        if !names.iter().any(|(n, _)| *n == p.drafter) {
            names.push((p.drafter.clone(), p.synthetic));
        }
    }
    for p in points {
        let ci = names.iter().position(|(n, _)| *n == p.drafter).unwrap_or(0) % COLOURS.len();
        let c = COLOURS[ci];
        let fill = if p.synthetic { "none" } else { c };
        let _ = writeln!(
            o,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{c}" data-drafter="{}" data-block-size="{}" data-acceptance="{:.4}" data-speedup="{:.4}"/>"#,
            x(p.acceptance),
            y(p.speedup),
            esc(&p.drafter),
            p.block_size,
            p.acceptance,
            p.speedup
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" font-size="9" fill="{c}">L{}</text>"#,
            x(p.acceptance) + 5.0,
            y(p.speedup) - 5.0,
            p.block_size
        );
    }
    for (i, (n, synth)) in names.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let ly = T + 10.0 + 18.0 * i as f64;
        let fill = if *synth { "none" } else { c };
        let label = if *synth {
            format!("{n} (synthetic)")
        } else {
            n.clone()
        };
        let _ = writeln!(
            o,
            r#"<circle cx="{:.1}" cy="{ly:.1}" r="4" fill="{fill}" stroke="{c}"/>"#,
            W - R + 15.0
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            W - R + 25.0,
            ly + 4.0,
            esc(&label)
        );
    }
    o.push_str("</svg>\n");
    o
}
