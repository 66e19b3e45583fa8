//! OCR results as files people use: plain text (a page's lines in reading order, a form feed
//! between pages, as `pdftotext` does), JSON (page, line, box, text, plus what the model wrote
//! that held no line), and hOCR (the open standard search indexers and PDF text-layer tools read).

use super::tiles::PageLine;

/// One page's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PageResult {
    /// 1-based page number (the file's page, not the position in a `--pages` selection).
    pub page: usize,
    /// The page image's size in pixels (upright).
    pub width: u32,
    pub height: u32,
    pub lines: Vec<PageLine>,
    /// Text that held no line (flagged, never dropped).
    pub unparsed: Vec<String>,
}

/// Plain text: lines in reading order, pages separated by a form feed.
pub fn text(pages: &[PageResult]) -> String {
    pages
        .iter()
        .map(|p| {
            let mut s: String = p.lines.iter().map(|l| format!("{}\n", l.text)).collect();
            for u in &p.unparsed {
                s.push_str(&format!("{u}\n"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("\u{c}")
}

/// JSON: `{"source", "pages": [{"page", "width", "height", "lines": [{"text", "bbox": [x1, y1, x2,
/// y2], "tile", "repaired"}], "unparsed": […]}]}`; boxes in whole pixels of the upright page.
pub fn json(source: &str, pages: &[PageResult]) -> String {
    let pages: Vec<serde_json::Value> = pages
        .iter()
        .map(|p| {
            serde_json::json!({
                "page": p.page,
                "width": p.width,
                "height": p.height,
                "lines": p.lines.iter().map(|l| serde_json::json!({
                    "text": l.text, "bbox": l.bbox.rounded(), "tile": l.tile, "repaired": l.repaired,
                })).collect::<Vec<_>>(),
                "unparsed": p.unparsed,
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({"source": source, "pages": pages})).expect("a result serialises")
        + "\n"
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
        for (i, l) in p.lines.iter().enumerate() {
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
        };
        vec![
            PageResult {
                page: 1,
                width: 800,
                height: 600,
                lines: vec![line("A & B", 10.0), line("<c>", 40.0)],
                unparsed: vec![],
            },
            PageResult {
                page: 3,
                width: 800,
                height: 600,
                lines: vec![line("last", 10.0)],
                unparsed: vec!["??".into()],
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
    }
}
