//! One page read: tiled when it exceeds the pixel budget, each tile asked the mode's question,
//! the answer parsed whatever shape it came in, its boxes mapped from the model's 0–1000 frame
//! through the tile to the upright page, lines read twice in overlapping tiles merged, and the
//! boxes finally mapped through the EXIF orientation to the pixels as stored.

use std::sync::atomic::AtomicBool;

use super::document::PageImage;
use super::formats::PageResult;
use super::geometry::{PixelBox, Region};
use super::mode::{Ask, Mode};
use super::model::{AskError, PageModel};
use super::parse::{parse_html, parse_markdown, parse_spotting, rewrite_boxes, ParsedOcr};
use super::tiles::{merge_tiles, plan_tiles, PageLine};
use crate::prompt::fence::strip_fence;

/// How pages are read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSettings {
    pub mode: Mode,
    pub lang: Option<String>,
    /// Answer tokens per page or tile.
    pub max_new_tokens: usize,
    /// Pixels per image the model is given; larger pages are tiled.
    pub max_pixels: u64,
}

/// Reads page `page` (its number in the file); a model failure is returned for the caller to
/// record against the page.
pub fn read_page(
    model: &dyn PageModel,
    page: usize,
    img: PageImage,
    s: &ReadSettings,
    stop: &AtomicBool,
) -> Result<PageResult, AskError> {
    let (uw, uh) = img.image.dimensions();
    let regions: Vec<Region> = plan_tiles(uw, uh, s.max_pixels).into_iter().map(whole_pixels).collect();
    let tiled = regions.len() > 1;
    let ask = s.mode.ask(tiled);
    let prompt = ask.prompt(s.lang.as_deref());
    let orientation = img.orientation;
    let to_stored = |b: &PixelBox| orientation.box_to_stored(b, (uw as f64, uh as f64));
    let (sw, sh) = if orientation.swaps_axes() { (uh, uw) } else { (uw, uh) };
    let mut out = PageResult {
        page,
        width: sw,
        height: sh,
        orientation: orientation.exif(),
        dpi: img.dpi,
        tiles: regions.len(),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let mut image = Some(img.image);
    for (t, region) in regions.iter().enumerate() {
        let crop = if tiled {
            let full = image.as_ref().expect("kept while tiles remain");
            image::imageops::crop_imm(full, region.x as u32, region.y as u32, region.width as u32, region.height as u32)
                .to_image()
        } else {
            image.take().expect("one tile")
        };
        let answer = model.read(crop, prompt.clone(), s.max_new_tokens, stop)?;
        out.prompt_tokens += answer.prompt_tokens;
        out.completion_tokens += answer.completion_tokens;
        out.encode_ms += answer.encode_ms;
        out.generate_ms += answer.generate_ms;
        let tag = |u: String| if tiled { format!("tile {}: {u}", t + 1) } else { u };
        let pixels = |b: &super::geometry::RelativeBox| to_stored(&region.to_page(b)).rounded();
        match ask {
            Ask::Read => out.text = strip_fence(&answer.text).to_string(),
            Ask::Spotting | Ask::Html => {
                let parsed = if ask == Ask::Html { parse_html(&answer.text) } else { parse_spotting(&answer.text) };
                if ask == Ask::Html {
                    out.document = Some(rewrite_boxes(&answer.text, false, pixels));
                }
                collect_items(parsed, region, t, &mut lines, &mut out, tag);
            }
            Ask::Markdown => {
                let (markdown, located) = parse_markdown(&answer.text);
                out.text = markdown;
                out.document = Some(rewrite_boxes(&answer.text, true, pixels));
                let parsed = ParsedOcr { items: located, ..Default::default() };
                collect_items(parsed, region, t, &mut lines, &mut out, tag);
            }
        }
        out.answers.push(answer.text);
    }
    // The model's own order stands for a page read whole (it follows columns; a geometric sort
    // would not); tiles are put back together by position.
    let lines = if tiled { merge_tiles(lines) } else { lines };
    out.lines = lines.into_iter().map(|l| PageLine { bbox: to_stored(&l.bbox), ..l }).collect();
    if ask != Ask::Read && ask != Ask::Markdown {
        out.text = out.lines.iter().map(|l| l.text.as_str()).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n");
    }
    if tiled && matches!(s.mode, Mode::Markdown | Mode::Html) {
        out.document = Some(rebuilt_document(&out.lines, s.mode == Mode::Html));
    }
    Ok(out)
}

/// A tile's region in whole pixels (the crop and the box mapping must agree exactly).
fn whole_pixels(r: Region) -> Region {
    Region { x: r.x.floor(), y: r.y.floor(), width: r.width.floor(), height: r.height.floor() }
}

/// Items with a box become lines in upright page pixels; the rest is kept as unparsed text.
fn collect_items(
    parsed: ParsedOcr,
    region: &Region,
    tile: usize,
    lines: &mut Vec<PageLine>,
    out: &mut PageResult,
    tag: impl Fn(String) -> String,
) {
    out.truncated |= parsed.truncated;
    for item in parsed.items {
        match item.bbox {
            Some(b) => lines.push(PageLine {
                text: item.text,
                bbox: region.to_page(&b),
                tile,
                repaired: b.clamped || b.swapped,
                kind: item.kind,
            }),
            None if !item.text.is_empty() => out.unparsed.push(tag(format!("(no usable box) {}", item.text))),
            None => {}
        }
    }
    out.unparsed.extend(parsed.unparsed.into_iter().map(&tag));
}

/// A tiled page's Markdown or HTML, rebuilt from its merged lines (one paragraph each).
fn rebuilt_document(lines: &[PageLine], html: bool) -> String {
    let texts = lines.iter().filter(|l| !l.text.is_empty());
    if html {
        texts
            .map(|l| {
                let [a, b, c, d] = l.bbox.rounded();
                let text = l.text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                format!("<p data-bbox=\"{a} {b} {c} {d}\">{text}</p>\n")
            })
            .collect()
    } else {
        texts.map(|l| format!("{}\n\n", l.text)).collect::<String>().trim_end().to_string() + "\n"
    }
}
