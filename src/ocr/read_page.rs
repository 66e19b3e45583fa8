//! One page read: tiled when it exceeds the pixel budget (plain reading and lines; document
//! parsing instead gets the whole page resized into its recommended range), each tile asked the
//! mode's question, the answer parsed whatever shape it came in, its boxes mapped from the
//! model's 0–1000 frame through the tile to the upright page, lines read twice in overlapping
//! tiles merged, and the boxes finally mapped through the EXIF orientation to the pixels as
//! stored.

use std::sync::atomic::AtomicBool;

use image::RgbImage;

use super::document::PageImage;
use super::formats::PageResult;
use super::geometry::{PixelBox, Region};
use super::mode::{Ask, Mode, DOCUMENT_MIN_PIXELS};
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
    /// Pixels per image the model is given; larger pages are tiled, or in document modes shrunk.
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
    let regions: Vec<Region> = if s.mode.parses_documents() {
        vec![Region::page(uw, uh)]
    } else {
        plan_tiles(uw, uh, s.max_pixels).into_iter().map(whole_pixels).collect()
    };
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
    // The model's boxes are relative to the image it saw, so a resized page maps back to the
    // page's own pixels unchanged.
    let mut image = Some(if s.mode.parses_documents() {
        fit_pixels(img.image, DOCUMENT_MIN_PIXELS.min(s.max_pixels), s.max_pixels)
    } else {
        img.image
    });
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

/// `img` resized (aspect kept) so its area lies within `min..=max` pixels; as it is otherwise.
fn fit_pixels(img: RgbImage, min: u64, max: u64) -> RgbImage {
    let (w, h) = img.dimensions();
    let area = f64::from(w) * f64::from(h);
    let target = if area > max as f64 {
        max as f64
    } else if area < min as f64 {
        min as f64
    } else {
        return img;
    };
    let scale = (target / area).sqrt();
    // Rounded down, so a shrunk page stays within the budget.
    let (nw, nh) = (((f64::from(w) * scale) as u32).max(1), ((f64::from(h) * scale) as u32).max(1));
    image::imageops::resize(&img, nw, nh, image::imageops::FilterType::CatmullRom)
}
