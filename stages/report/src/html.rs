//! Small pieces of HTML text shared by the sections and the page.

use crate::plot::hex;

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

pub fn opt_pct(v: Option<f64>) -> String {
    v.map(pct).unwrap_or_else(|| "n/a".into())
}

/// A notice that something is not there.
pub fn missing(what: &str) -> String {
    format!("<p class=\"missing\">{what}</p>\n")
}

/// A legend entry: a colour swatch and its label.
pub fn chip(color: plotters::style::RGBColor, label: &str) -> String {
    format!(
        "<span class=\"chip\"><i style=\"background:{}\"></i>{}</span>",
        hex(color),
        esc(label)
    )
}
