//! What the model wrote, as lines and blocks with boxes. Qwen3-VL answers text spotting with a
//! JSON list of `{"bbox_2d": [x1, y1, x2, y2], "text_content": "…"}` (often in a code fence, in
//! Python's single-quoted style when the prompt showed that style, cut short when the answer ran
//! out of tokens, with prose after it), and document parsing with QwenVL HTML (`data-bbox="x1 y1
//! x2 y2"` on each element) or QwenVL Markdown (`<!-- Image (x1, y1, x2, y2) -->` comments).
//! Nothing is dropped silently: what does not parse is returned as unparsed text.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::geometry::RelativeBox;
use crate::prompt::fence::strip_fence;

/// One piece of text the model located (or not: a line without a usable box keeps its text).
#[derive(Debug, Clone, PartialEq)]
pub struct Spotted {
    pub text: String,
    pub bbox: Option<RelativeBox>,
    /// The element's kind in document parsing (`p`, `h1`, `table`, `formula`, `image`, …).
    pub kind: Option<String>,
}

/// A parsed answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedOcr {
    pub items: Vec<Spotted>,
    /// Text that held no item (prose, a broken object), kept for the output and flagged.
    pub unparsed: Vec<String>,
    /// The answer stopped inside an item (token budget): what came before is kept.
    pub truncated: bool,
}

/// Parses a text-spotting answer.
pub fn parse_spotting(answer: &str) -> ParsedOcr {
    let body = strip_fence(answer);
    let mut out = ParsedOcr::default();
    let Some(open) = body.find(['[', '{']) else {
        push_prose(&mut out, body);
        return out;
    };
    push_prose(&mut out, &body[..open]);
    let (objects, rest, truncated) = split_objects(&body[open..]);
    out.truncated = truncated;
    for raw in objects {
        match parse_object(raw) {
            Some(v) => match spotted(&v) {
                Some(item) => out.items.push(item),
                None => out.unparsed.push(raw.to_string()),
            },
            None => out.unparsed.push(raw.to_string()),
        }
    }
    push_prose(&mut out, rest.trim_start_matches([']', ',', ' ', '\n']));
    out
}

fn push_prose(out: &mut ParsedOcr, s: &str) {
    let s = s.trim();
    if !s.is_empty() {
        out.unparsed.push(s.to_string());
    }
}

/// The top-level `{…}` objects of `s` (a list, one object, or objects one after another), what
/// follows the last complete one, and whether an object was left open.
fn split_objects(s: &str) -> (Vec<&str>, &str, bool) {
    let mut objects = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut end_of_last = 0;
    let mut list_depth = 0usize;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' if depth > 0 => quote = Some(c),
            '[' if depth == 0 => list_depth += 1,
            ']' if depth == 0 => {
                list_depth = list_depth.saturating_sub(1);
                if list_depth == 0 && !objects.is_empty() {
                    return (objects, &s[i + 1..], false);
                }
            }
            '{' => {
                if depth == 0 {
                    start = Some(i);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    if let Some(st) = start.take() {
                        objects.push(&s[st..=i]);
                        end_of_last = i + 1;
                    }
                }
            }
            _ => {}
        }
    }
    let truncated = depth > 0;
    // A cut-short object is returned as the rest, kept as unparsed text by the caller.
    let rest = match (truncated, start) {
        (true, Some(st)) => &s[st..],
        _ => &s[end_of_last..],
    };
    (objects, rest, truncated)
}

/// One object as JSON, or in Python's literal style (single quotes, `None`, `True`).
fn parse_object(raw: &str) -> Option<Value> {
    serde_json::from_str(raw).ok().or_else(|| serde_json::from_str(&python_to_json(raw)).ok())
}

/// Rewrites a Python dict literal as JSON: single-quoted strings become double-quoted (inner
/// double quotes escaped), `None`/`True`/`False` their JSON words.
fn python_to_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                out.push('"');
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                if e == '\'' {
                                    out.push('\'');
                                } else {
                                    out.push('\\');
                                    out.push(e);
                                }
                            }
                        }
                        '\'' => break,
                        '"' => out.push_str("\\\""),
                        d => out.push(d),
                    }
                }
                out.push('"');
            }
            '"' => {
                // Already JSON-style: copied through to its end.
                out.push('"');
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            out.push(e);
                        }
                    } else if d == '"' {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() => {
                // A bare word (outside strings): Python's constants in JSON's spelling.
                let mut word = String::from(c);
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_alphanumeric() || **d == '_') {
                    word.push(d);
                    chars.next();
                }
                out.push_str(match word.as_str() {
                    "None" => "null",
                    "True" => "true",
                    "False" => "false",
                    w => w,
                });
            }
            _ => out.push(c),
        }
    }
    out
}

fn spotted(v: &Value) -> Option<Spotted> {
    let text = ["text_content", "text", "content", "label"].iter().find_map(|k| v.get(k).and_then(Value::as_str))?;
    let bbox = v.get("bbox_2d").or_else(|| v.get("bbox")).and_then(relative_box);
    Some(Spotted { text: text.to_string(), bbox, kind: None })
}

/// `[x1, y1, x2, y2]` of numbers or numeric strings, or the string `"x1 y1 x2 y2"`.
fn relative_box(v: &Value) -> Option<RelativeBox> {
    let nums: Vec<f64> = match v {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_f64().or_else(|| x.as_str().and_then(|s| s.trim().parse().ok())))
            .collect::<Option<_>>()?,
        Value::String(s) => numbers(s)?,
        _ => return None,
    };
    RelativeBox::repair(nums.try_into().ok()?)
}

/// Four numbers separated by spaces or commas.
fn numbers(s: &str) -> Option<Vec<f64>> {
    let v: Vec<f64> = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    (v.len() == 4).then_some(v)
}

fn html_element_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"<(?P<tag>[a-zA-Z][a-zA-Z0-9]*)(?P<attrs>[^>]*?)\bdata-bbox\s*=\s*["'](?P<bbox>[^"']*)["'](?P<more>[^>]*)>"#)
            .expect("a valid pattern")
    })
}

fn class_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"\bclass\s*=\s*["']([^"']*)["']"#).expect("a valid pattern"))
}

fn tag_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?s)<[^>]*>").expect("a valid pattern"))
}

/// Parses a QwenVL HTML answer: each element with a `data-bbox` becomes an item (its class, or
/// else its tag, as the kind; its text with inner tags removed and entities decoded). Text
/// outside such elements is kept as unparsed.
pub fn parse_html(answer: &str) -> ParsedOcr {
    let body = strip_fence(answer);
    let mut out = ParsedOcr::default();
    let mut last = 0;
    let mut truncated = false;
    while let Some(c) = html_element_re().captures_at(body, last) {
        let open = c.get(0).expect("group 0");
        let tag = c["tag"].to_lowercase();
        let Some((inner_end, close_end)) = closing_tag(body, open.end(), &tag) else {
            // Opened and never closed: the answer was cut short; its text is kept as unparsed.
            truncated = true;
            break;
        };
        let between = tag_re().replace_all(&body[last..open.start()], " ");
        push_prose(&mut out, &entities(&between));
        last = close_end;
        let attrs = format!("{} {}", &c["attrs"], &c["more"]);
        let kind = class_re().captures(&attrs).map(|k| k[1].to_string()).unwrap_or(tag);
        let inner = &body[open.end()..inner_end];
        let text = entities(&tag_re().replace_all(inner, " ")).split_whitespace().collect::<Vec<_>>().join(" ");
        let bbox = numbers(&c["bbox"]).and_then(|n| RelativeBox::repair(n.try_into().ok()?));
        if bbox.is_none() {
            out.unparsed.push(format!("data-bbox {:?} is not four numbers: {text}", &c["bbox"]));
        }
        out.items.push(Spotted { text, bbox, kind: Some(kind) });
    }
    let tail = tag_re().replace_all(&body[last..], " ");
    push_prose(&mut out, &entities(&tail));
    out.truncated = truncated;
    out
}

/// Where the element opened just before `from` ends: the start of its `</tag>` and the end of
/// it, counting nested elements of the same name.
fn closing_tag(body: &str, from: usize, tag: &str) -> Option<(usize, usize)> {
    let lower = body[from..].to_ascii_lowercase();
    let (open, close) = (format!("<{tag}"), format!("</{tag}"));
    let mut depth = 1usize;
    let mut i = 0;
    while i < lower.len() {
        let rest = &lower[i..];
        if rest.starts_with(&close) {
            depth -= 1;
            let end = rest.find('>')? + 1;
            if depth == 0 {
                return Some((from + i, from + i + end));
            }
            i += end;
        } else if rest.starts_with(&open) && rest[open.len()..].starts_with(|c: char| c == '>' || c.is_whitespace()) {
            depth += 1;
            i += open.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    None
}

fn entities(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn md_comment_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"<!--\s*(?P<kind>[A-Za-z][A-Za-z ]*?)\s*\((?P<bbox>[^)]*)\)\s*-->").expect("a valid pattern")
    })
}

/// The located regions of a QwenVL Markdown answer (`<!-- Image (x1, y1, x2, y2) -->`, tables,
/// formulas), and the Markdown itself with those comments removed.
pub fn parse_markdown(answer: &str) -> (String, Vec<Spotted>) {
    let body = strip_fence(answer);
    let regions = md_comment_re()
        .captures_iter(body)
        .map(|c| Spotted {
            text: String::new(),
            bbox: numbers(&c["bbox"]).and_then(|n| RelativeBox::repair(n.try_into().ok()?)),
            kind: Some(c["kind"].trim().to_lowercase()),
        })
        .collect();
    let text = md_comment_re().replace_all(body, "").trim().to_string();
    (text, regions)
}

fn data_bbox_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"\bdata-bbox\s*=\s*["'](?P<bbox>[^"']*)["']"#).expect("a valid pattern"))
}

/// The answer of a document-parsing prompt with every box rewritten by `to_pixels` (relative
/// 0–1000 → page pixels): `data-bbox="x1 y1 x2 y2"` in HTML, `(x1, y1, x2, y2)` in Markdown's
/// region comments. A box that is not four numbers is left as written (the parser flags it).
pub fn rewrite_boxes(answer: &str, markdown: bool, to_pixels: impl Fn(&RelativeBox) -> [i64; 4]) -> String {
    let body = strip_fence(answer);
    let map = |raw: &str| numbers(raw).and_then(|n| RelativeBox::repair(n.try_into().ok()?)).map(|b| to_pixels(&b));
    if markdown {
        md_comment_re()
            .replace_all(body, |c: &regex::Captures| match map(&c["bbox"]) {
                Some([a, b, x, y]) => format!("<!-- {} ({a}, {b}, {x}, {y}) -->", c["kind"].trim()),
                None => c[0].to_string(),
            })
            .into_owned()
    } else {
        data_bbox_re()
            .replace_all(body, |c: &regex::Captures| match map(&c["bbox"]) {
                Some([a, b, x, y]) => format!("data-bbox=\"{a} {b} {x} {y}\""),
                None => c[0].to_string(),
            })
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(p: &ParsedOcr) -> Vec<[f64; 4]> {
        p.items.iter().map(|i| i.bbox.unwrap().coords).collect()
    }

    #[test]
    fn spotting_json_in_a_fence_with_prose() {
        let a = "Here you go:\n```json\n[\n  {\"bbox_2d\": [10, 20, 300, 60], \"text_content\": \"Hello\"},\n  {\"bbox_2d\": [10, 80, 400, 120], \"text_content\": \"World\"}\n]\n```\nDone.";
        let p = parse_spotting(a);
        assert_eq!(p.items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>(), ["Hello", "World"]);
        assert_eq!(boxes(&p), [[10.0, 20.0, 300.0, 60.0], [10.0, 80.0, 400.0, 120.0]]);
        assert!(!p.truncated);
        // The prose inside the fence's language line is gone; after the fence it is not seen.
        assert!(p.unparsed.is_empty(), "{:?}", p.unparsed);
        let bare = parse_spotting("[{\"bbox_2d\": [1,2,3,4], \"text_content\": \"x\"}] and some words after");
        assert_eq!(bare.unparsed, ["and some words after"]);
    }

    #[test]
    fn python_style_truncated_and_broken_items() {
        let a = "[{'bbox_2d': [5, 5, 50, 20], 'text_content': 'It\\'s \"quoted\" None', 'score': None}, {'bbox_2d': [60, 5, 40, 20], 'text_content': 'swapped'}, {'bbox_2d': [1, 2], 'text_content': 'short box'}, {'oops': 1}, {'bbox_2d': [7, 8, 9";
        let p = parse_spotting(a);
        assert_eq!(p.items.len(), 3, "{p:?}");
        assert_eq!(p.items[0].text, "It's \"quoted\" None");
        let swapped = p.items[1].bbox.unwrap();
        assert_eq!(swapped.coords, [40.0, 5.0, 60.0, 20.0]);
        assert!(swapped.swapped);
        assert_eq!(p.items[2].bbox, None, "a box that is not four numbers keeps its text, without a box");
        assert_eq!(p.unparsed, ["{'oops': 1}", "{'bbox_2d': [7, 8, 9"], "the cut-short object is kept");
        assert!(p.truncated, "the last object was cut short");
    }

    #[test]
    fn spotting_without_json_is_all_kept() {
        let p = parse_spotting("I cannot read this image.");
        assert!(p.items.is_empty());
        assert_eq!(p.unparsed, ["I cannot read this image."]);
    }

    #[test]
    fn qwenvl_html_elements_with_boxes() {
        let a = "```html\n<html><body>\n<h1 data-bbox=\"50 40 950 90\">Annual &amp; Report</h1>\n<p data-bbox=\"50 120 950 300\">First <b>bold</b> line.</p>\n<div class=\"formula\" data-bbox=\"100 320 900 380\">E = mc^2</div>\n<p data-bbox=\"a b c d\">bad box</p>\nloose text\n</body></html>\n```";
        let p = parse_html(a);
        let kinds: Vec<&str> = p.items.iter().map(|i| i.kind.as_deref().unwrap()).collect();
        assert_eq!(kinds, ["h1", "p", "formula", "p"]);
        assert_eq!(p.items[0].text, "Annual & Report");
        assert_eq!(p.items[1].text, "First bold line.");
        assert_eq!(p.items[2].bbox.unwrap().coords, [100.0, 320.0, 900.0, 380.0]);
        assert_eq!(p.items[3].bbox, None);
        assert!(p.unparsed.iter().any(|u| u.contains("not four numbers")), "{:?}", p.unparsed);
        assert!(p.unparsed.iter().any(|u| u == "loose text"), "{:?}", p.unparsed);
        assert!(!p.truncated);
        assert!(parse_html("<p data-bbox=\"1 2 3 4\">cut sho").truncated);
    }

    #[test]
    fn qwenvl_markdown_regions() {
        let (text, regions) = parse_markdown(
            "# Title\n\n<!-- Image (100, 200, 500, 600) -->\n\nBody text.\n<!-- Table (0, 0, 1000, 400) -->",
        );
        assert_eq!(text, "# Title\n\n\n\nBody text.");
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].kind.as_deref(), Some("image"));
        assert_eq!(regions[1].bbox.unwrap().coords, [0.0, 0.0, 1000.0, 400.0]);
    }

    #[test]
    fn boxes_are_rewritten_in_pixels_in_html_and_markdown() {
        let px = |b: &RelativeBox| b.coords.map(|v| (v * 2.0) as i64);
        let html = "```html\n<p data-bbox=\"10 20 30 40\">a</p><p data-bbox='x'>b</p>\n```";
        assert_eq!(rewrite_boxes(html, false, px), "<p data-bbox=\"20 40 60 80\">a</p><p data-bbox='x'>b</p>");
        let md = "# T\n<!-- Image (300, 10, 100, 20) -->\ntext";
        assert_eq!(rewrite_boxes(md, true, px), "# T\n<!-- Image (200, 20, 600, 40) -->\ntext");
    }
}
