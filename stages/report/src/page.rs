//! The page shell: head and CSS, title, nav, the sections in order, and the inputs footer.

use std::fmt::Write as _;

use anyhow::Result;

use crate::html::{esc, missing};
use crate::inputs::Inputs;
use crate::sections::Section;
use crate::{Args, STAGE};

/// `--title`, or "saha run <run folder name>".
pub fn title(args: &Args) -> String {
    let run_name = args
        .run
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| args.run.display().to_string());
    args.title.clone().unwrap_or_else(|| format!("saha run {run_name}"))
}

/// Each section under its heading (or its `empty` notice), with a nav link to it.
fn sections_html(sections: &[Section]) -> Result<(String, String)> {
    let mut nav = String::new();
    let mut body = String::new();
    for s in sections {
        write!(nav, "<a href=\"#{}\">{}</a>", s.id, esc(s.heading))?;
        write!(
            body,
            "<section id=\"{}\">\n<h2>{}</h2>\n{}</section>\n",
            s.id,
            esc(s.heading),
            s.html.clone().unwrap_or_else(|| missing(s.empty))
        )?;
    }
    Ok((nav, body))
}

const CSS: &str = "body{font-family:\"DejaVu Sans\",\"Helvetica Neue\",Arial,sans-serif;margin:0;background:#f4f5f7;\
color:#1d232b;font-size:14px}\
main{max-width:1120px;margin:0 auto;padding:10px 20px 30px}\
h1{font-size:22px;margin:10px 0 4px}h2{font-size:17px;margin:4px 0 8px}\
nav a{margin-right:14px;color:#1f5fa0;text-decoration:none;font-size:13px}\
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 16px 12px;margin:12px 0}\
p{margin:6px 0}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:10px 16px}\
.grid.small{grid-template-columns:repeat(auto-fill,minmax(340px,1fr))}\
figure{margin:0}figcaption{font-size:13px;margin:4px 0 2px}\
svg{max-width:100%;height:auto;display:block}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}\
th,td{padding:3px 10px;border-bottom:1px solid #e6e8eb;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}th{background:#f4f5f7;font-weight:600}\
tr.total td{font-weight:600}\
.chip{display:inline-block;margin-right:12px;font-size:12px}\
.chip i{display:inline-block;width:11px;height:11px;margin-right:5px;vertical-align:-1px;border-radius:2px}\
.missing{color:#6b5315;background:#fcf5dc;border:1px solid #efe0a6;padding:6px 10px;border-radius:4px}\
.dim{color:#6a7380}\
footer{font-size:12px;color:#4a525c}footer td{font-family:\"DejaVu Sans Mono\",monospace;font-size:11px}";

/// The whole page.
pub fn render(title: &str, sections: &[Section], inputs: &Inputs, args: &Args) -> Result<String> {
    let (nav, body) = sections_html(sections)?;
    let mut html = String::new();
    write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n\
<meta name=\"generator\" content=\"{STAGE} {v}\">\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
<h1>{t}</h1>\n<p class=\"dim\">Run folder <code>{run}</code>. Written by {STAGE} {v} from the artefacts listed at the end.</p>\n\
<nav>{nav}</nav>\n{body}",
        t = esc(title),
        v = env!("CARGO_PKG_VERSION"),
        run = esc(&args.run.display().to_string()),
    )?;
    html.push_str(&footer(inputs, args)?);
    Ok(html)
}

/// The inputs read, with their hashes, those not in the run, and the parameters.
fn footer(inputs: &Inputs, args: &Args) -> Result<String> {
    let mut html = String::from(
        "<footer>\n<section id=\"inputs\">\n<h2>Inputs</h2>\n<table><tr><th>file</th><th>written by</th>\
<th>bytes</th><th>SHA-256</th></tr>\n",
    );
    for (name, made_by, hash) in &inputs.used {
        writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(made_by.as_deref().unwrap_or("")),
            hash.bytes,
            hash.sha256
        )?;
    }
    html.push_str("</table>\n");
    if !inputs.missing.is_empty() {
        writeln!(
            html,
            "<p>Not in this run: {}.</p>",
            inputs
                .missing
                .iter()
                .map(|m| format!("<code>{}</code>", esc(m)))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    writeln!(
        html,
        "<p>Parameters: {}</p>\n</section>\n</footer>\n</main>\n</body>\n</html>",
        esc(&serde_json::to_string(args).unwrap_or_default())
    )?;
    Ok(html)
}
