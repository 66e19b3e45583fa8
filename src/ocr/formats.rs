//! OCR results as files people use: plain text (a page's lines in reading order, a form feed
//! between pages, as `pdftotext` does), JSON (page, line, box, text, plus what the model wrote
//! that held no line), and hOCR (the open standard search indexers and PDF text-layer tools read).

use super::tiles::PageLine;

/// One page's result. Boxes are in pixels of the page as stored in the file (for a photo with
/// an EXIF orientation, before turning it; for a PDF page, of its rendering at `dpi`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageResult {
    /// 1-based page number (the file's page, not the position in a `--pages` selection).
    pub page: usize,
    /// The page image's size in pixels, as stored.
    pub width: u32,
    pub height: u32,
    /// EXIF orientation (1–8) that turns the stored page upright.
    pub orientation: u8,
    /// Resolution a PDF page was rendered at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
    /// Tiles the page was read in (1 when it fitted the model's pixel budget).
    pub tiles: usize,
    /// Located lines (or blocks, in document modes) in reading order.
    pub lines: Vec<PageLine>,
    /// The page's plain text (what a search index takes).
    pub text: String,
    /// The page as Markdown or HTML (document modes), boxes in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    /// Text that held no line (flagged, never dropped).
    pub unparsed: Vec<String>,
    /// An answer stopped inside an item (the token budget ran out).
    pub truncated: bool,
    /// Why the page has no result (it could not be rendered, the model failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The model's answers as written, one per tile.
    pub answers: Vec<String>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub encode_ms: f64,
    pub generate_ms: f64,
}

/// Plain text: each page's text (its unparsed text after it), pages separated by a form feed
/// as `pdftotext` does.
pub fn text(pages: &[PageResult]) -> String {
    pages.iter().map(page_text).collect::<Vec<_>>().join("\u{c}")
}

/// One page's searchable text: its text, then what the model wrote that held no line.
pub fn page_text(p: &PageResult) -> String {
    let mut s = p.text.trim_end().to_string();
    for u in &p.unparsed {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(u);
    }
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// The document modes' pages one after another (Markdown: a rule between pages; HTML: one
/// `<div class="page">` each); a page without a document contributes its text.
pub fn document(pages: &[PageResult], html: bool) -> String {
    if html {
        let body: String = pages
            .iter()
            .map(|p| {
                let inner = p.document.clone().unwrap_or_else(|| format!("<pre>{}</pre>", escape(&page_text(p))));
                format!("<div class=\"page\" data-page=\"{}\">\n{}\n</div>\n", p.page, inner.trim())
            })
            .collect();
        format!("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n<body>\n{body}</body>\n</html>\n")
    } else {
        pages
            .iter()
            .map(|p| p.document.clone().unwrap_or_else(|| page_text(p)).trim().to_string() + "\n")
            .collect::<Vec<_>>()
            .join("\n---\n\n")
    }
}

/// JSON: `{"source", "pages": [{"page", "width", "height", "orientation", "dpi", "tiles", "lines":
/// [{"text", "bbox": [x1, y1, x2, y2], "kind", "tile", "repaired"}], "text", "unparsed",
/// "truncated", "error"}]}`; boxes in whole pixels.
pub fn json(source: &str, pages: &[PageResult]) -> String {
    serde_json::to_string_pretty(&json_value(source, pages)).expect("a result serialises") + "\n"
}

/// The JSON result as a value (the HTTP API embeds it).
pub fn json_value(source: &str, pages: &[PageResult]) -> serde_json::Value {
    let pages: Vec<serde_json::Value> = pages
        .iter()
        .map(|p| {
            serde_json::json!({
                "page": p.page,
                "width": p.width,
                "height": p.height,
                "orientation": p.orientation,
                "dpi": p.dpi,
                "tiles": p.tiles,
                "lines": p.lines.iter().map(|l| serde_json::json!({
                    "text": l.text, "bbox": l.bbox.rounded(), "kind": l.kind, "tile": l.tile, "repaired": l.repaired,
                })).collect::<Vec<_>>(),
                "text": p.text,
                "unparsed": p.unparsed,
                "truncated": p.truncated,
                "error": p.error,
            })
        })
        .collect();
    serde_json::json!({"source": source, "pages": pages})
}

/// hOCR 1.2: one `ocr_page` per page with its size, one `ocr_line` per line with its box.
pub fn hocr(source: &str, pages: &[PageResult]) -> String {
    let mut s = String::from(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n",
        "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n<head>\n<title></title>\n",
        "<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n",
        "<meta name=\"ocr-system\" content=\"omnid\"/>\n",
        "<meta name=\"ocr-capabilities\" content=\"ocr_page ocr_line\"/>\n</head>\n<body>\n"
    ));
    for p in pages {
        s.push_str(&format!(
            "<div class=\"ocr_page\" id=\"page_{n}\" title=\"image &quot;{src}&quot;; bbox 0 0 {w} {h}; ppageno {pno}\">\n",
            n = p.page,
            src = escape(source),
            w = p.width,
            h = p.height,
            pno = p.page - 1
        ));
        for (i, l) in p.lines.iter().filter(|l| !l.text.is_empty()).enumerate() {
            let [x1, y1, x2, y2] = l.bbox.rounded();
            s.push_str(&format!(
                "<span class=\"ocr_line\" id=\"line_{}_{}\" title=\"bbox {x1} {y1} {x2} {y2}\">{}</span>\n",
                p.page,
                i + 1,
                escape(&l.text)
            ));
        }
        s.push_str("</div>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocr::geometry::PixelBox;

    fn pages() -> Vec<PageResult> {
        let line = |t: &str, y: f64| PageLine {
            text: t.into(),
            bbox: PixelBox { x1: 10.2, y1: y, x2: 200.7, y2: y + 20.0 },
            tile: 0,
            repaired: false,
            kind: None,
        };
        vec![
            PageResult {
                page: 1,
                width: 800,
                height: 600,
                orientation: 1,
                lines: vec![line("A & B", 10.0), line("<c>", 40.0)],
                text: "A & B\n<c>".into(),
                ..Default::default()
            },
            PageResult {
                page: 3,
                width: 800,
                height: 600,
                orientation: 1,
                lines: vec![line("last", 10.0)],
                text: "last".into(),
                unparsed: vec!["??".into()],
                document: Some("<p data-bbox=\"1 2 3 4\">last</p>".into()),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn text_json_and_hocr_carry_lines_and_boxes() {
        assert_eq!(text(&pages()), "A & B\n<c>\n\u{c}last\n??\n");
        let j: serde_json::Value = serde_json::from_str(&json("scan.pdf", &pages())).unwrap();
        assert_eq!(j["pages"][0]["lines"][0]["bbox"], serde_json::json!([10, 10, 201, 30]));
        assert_eq!(j["pages"][1]["page"], 3);
        assert_eq!(j["pages"][1]["unparsed"][0], "??");
        let h = hocr("scan.pdf", &pages());
        assert!(h.contains("<div class=\"ocr_page\" id=\"page_1\" title=\"image &quot;scan.pdf&quot;; bbox 0 0 800 600; ppageno 0\">"), "{h}");
        assert!(
            h.contains("<span class=\"ocr_line\" id=\"line_1_1\" title=\"bbox 10 10 201 30\">A &amp; B</span>"),
            "{h}"
        );
        assert!(h.contains(">&lt;c&gt;</span>") && h.contains("ppageno 2"), "{h}");
        let html = document(&pages(), true);
        assert!(
            html.contains("<div class=\"page\" data-page=\"1\">\n<pre>A &amp; B\n&lt;c&gt;\n</pre>\n</div>"),
            "{html}"
        );
        assert!(html.contains("<p data-bbox=\"1 2 3 4\">last</p>"), "{html}");
        assert_eq!(document(&pages(), false), "A & B\n<c>\n\n---\n\n<p data-bbox=\"1 2 3 4\">last</p>\n");
    }
}
