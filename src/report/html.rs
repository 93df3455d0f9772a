//! Small pieces of HTML: escaping, tables, figures. Everything the page shows goes through
//! here, so the page is well-formed and its text is escaped once.

use std::fmt::Write;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// One table cell: text (escaped when rendered) or HTML made by this module.
pub enum Cell {
    Text(String),
    Number(String),
    Html(String),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        Cell::Text(s.into())
    }

    /// A right-aligned number; NaN (a class absent from the split) shows as an en dash.
    pub fn num(value: f64, decimals: usize) -> Self {
        if value.is_nan() {
            Cell::Number("–".into())
        } else {
            Cell::Number(format!("{value:.decimals$}"))
        }
    }

    pub fn percent(value: f64) -> Self {
        if value.is_nan() {
            Cell::Number("–".into())
        } else {
            Cell::Number(format!("{:.2}%", 100.0 * value))
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            Cell::Text(t) => {
                let _ = write!(out, "<td>{}</td>", escape(t));
            }
            Cell::Number(n) => {
                let _ = write!(out, "<td class=\"num\">{}</td>", escape(n));
            }
            Cell::Html(h) => {
                let _ = write!(out, "<td>{h}</td>");
            }
        }
    }
}

pub struct Row {
    pub cells: Vec<Cell>,
    /// Shown in bold with a marker word, so it stands out without colour too.
    pub highlight: bool,
}

impl Row {
    pub fn new(cells: Vec<Cell>) -> Self {
        Row {
            cells,
            highlight: false,
        }
    }
}

pub struct Table {
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(caption: impl Into<String>, headers: &[&str]) -> Self {
        Table {
            caption: caption.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, cells: Vec<Cell>) {
        self.rows.push(Row::new(cells));
    }

    pub fn render(&self) -> String {
        let mut out = String::from("<div class=\"table-wrap\"><table>");
        let _ = write!(
            out,
            "<caption>{}</caption><thead><tr>",
            escape(&self.caption)
        );
        for h in &self.headers {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            out.push_str(if row.highlight {
                "<tr class=\"highlight\">"
            } else {
                "<tr>"
            });
            for cell in &row.cells {
                cell.render(&mut out);
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>\n");
        out
    }
}

/// An image with its alternative text and a caption; `src` is relative to the page.
pub fn figure(src: &str, alt: &str, caption: &str) -> String {
    format!(
        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
        escape(src),
        escape(alt),
        escape(caption)
    )
}

pub fn image(src: &str, alt: &str) -> String {
    format!("<img src=\"{}\" alt=\"{}\">", escape(src), escape(alt))
}

/// A paragraph saying a figure is missing and how to draw it (never a broken image).
pub fn missing(what: &str, hint: &str) -> String {
    format!(
        "<p class=\"missing\">{} is missing: {}</p>\n",
        escape(what),
        escape(hint)
    )
}

/// Seconds as "45 s", "7.4 min" or "1 h 05 min".
pub fn duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 3600.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        let minutes = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    }
}

/// Thousands separated by commas: 1,682,954.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1d1d1f; background: #f6f6f4; line-height: 1.5; }
header, main { max-width: 1120px; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1.5rem; }
h1 { margin: 0 0 .25rem; font-size: 1.8rem; }
h2 { margin-top: 0; font-size: 1.4rem; }
h3 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.lede { color: #444; margin-top: 0; }
section.run, section.compare { background: #fff; border: 1px solid #dcdcd6; border-radius: 8px;
  padding: 1rem 1.25rem 1.25rem; margin: 1.25rem 0; }
.headline { font-size: 1.05rem; }
.headline strong { font-size: 1.2rem; }
nav ul { padding-left: 1.2rem; }
img { max-width: 100%; height: auto; }
figure { margin: .75rem 0 1.25rem; }
figcaption { color: #555; font-size: .9rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding-bottom: .25rem; }
th, td { border: 1px solid #c8c8c2; padding: .3rem .65rem; text-align: left; vertical-align: middle; }
th { background: #efefea; }
td.num { text-align: right; }
tr.highlight td { font-weight: 700; background: #fff1c2; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 0 1.25rem; }
.missing { color: #8a4b00; font-style: italic; }
details { margin: .5rem 0 1rem; }
summary { cursor: pointer; }
footer { max-width: 1120px; margin: 0 auto 2rem; padding: 0 1rem; color: #666; font-size: .85rem; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_read_well() {
        assert_eq!(
            escape("T-shirt/top <b> & \"x\""),
            "T-shirt/top &lt;b&gt; &amp; &quot;x&quot;"
        );
        assert_eq!(count(1_682_954), "1,682,954");
        assert_eq!(count(999), "999");
        assert_eq!(duration(45.4), "45 s");
        assert_eq!(duration(444.0), "7.4 min");
        assert_eq!(duration(3_930.0), "1 h 06 min");
    }

    #[test]
    fn a_table_has_one_row_per_entry_and_marks_the_highlight() {
        let mut t = Table::new("Per-class", &["class", "acc"]);
        t.push(vec![Cell::text("Shirt"), Cell::percent(0.793)]);
        t.push(vec![Cell::text("Bag"), Cell::num(f64::NAN, 3)]);
        t.rows[0].highlight = true;
        let html = t.render();
        assert_eq!(html.matches("<tr").count(), 3);
        assert!(
            html.contains("<tr class=\"highlight\"><td>Shirt</td><td class=\"num\">79.30%</td>")
        );
        assert!(html.contains("<td class=\"num\">–</td>"));
    }
}
