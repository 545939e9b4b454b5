//! The picture NIAH users expect: one heatmap per KV channel, context length on x, needle
//! depth on y, colour = recall (red 0 → green 1). Hand-written SVG: no font files, no
//! drawing crate, and the text is rendered by whatever displays it.

use std::fmt::Write;

/// One coloured square.
#[derive(Debug, Clone)]
pub struct HeatCell {
    pub context_len: usize,
    pub depth: f64,
    pub recall: f64,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Red → amber → green.
fn colour(recall: f64) -> String {
    let r = recall.clamp(0.0, 1.0);
    let (red, green) = if r < 0.5 {
        (220.0, 60.0 + 2.0 * r * 160.0)
    } else {
        (220.0 - (r - 0.5) * 2.0 * 180.0, 220.0)
    };
    format!("rgb({},{},60)", red.round() as u8, green.round() as u8)
}

/// An SVG heatmap of `cells` (any order; missing combinations stay grey).
pub fn svg(title: &str, lens: &[usize], depths: &[f64], cells: &[HeatCell]) -> String {
    let (cw, ch, left, top) = (70.0, 36.0, 70.0, 50.0);
    let width = left + cw * lens.len() as f64 + 20.0;
    let height = top + ch * depths.len() as f64 + 50.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">
<title>{}</title>
<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>
<text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        escape(title),
        width / 2.0,
        escape(title)
    );
    for (yi, d) in depths.iter().enumerate() {
        let y = top + ch * yi as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{d:.2}</text>"#,
            left - 6.0,
            y + ch / 2.0 + 4.0
        );
        for (xi, len) in lens.iter().enumerate() {
            let x = left + cw * xi as f64;
            let cell = cells
                .iter()
                .find(|c| c.context_len == *len && (c.depth - d).abs() < 1e-9);
            let (fill, label) = match cell {
                Some(c) => (colour(c.recall), format!("{:.2}", c.recall)),
                None => ("rgb(200,200,200)".to_string(), "–".to_string()),
            };
            let _ = writeln!(
                s,
                r#"<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="{fill}" stroke="white"><title>len {len}, depth {d:.2}: recall {label}</title></rect>
<text x="{}" y="{}" text-anchor="middle">{label}</text>"#,
                x + cw / 2.0,
                y + ch / 2.0 + 4.0
            );
        }
    }
    let base = top + ch * depths.len() as f64;
    for (xi, len) in lens.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{len}</text>"#,
            left + cw * xi as f64 + cw / 2.0,
            base + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">context length (tokens)</text>
<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">needle depth</text>
</svg>"#,
        left + cw * lens.len() as f64 / 2.0,
        base + 36.0,
        top + ch * depths.len() as f64 / 2.0,
        top + ch * depths.len() as f64 / 2.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_span_red_to_green_and_titles_are_escaped() {
        assert_eq!(colour(0.0), "rgb(220,60,60)");
        assert_eq!(colour(1.0), "rgb(40,220,60)");
        let s = svg("a<b", &[512], &[0.0], &[]);
        assert!(s.contains("a&lt;b") && s.contains("rgb(200,200,200)"));
    }
}
