//! OCR end to end on pages the tests draw with a real font (DejaVu Sans, Debian's
//! fonts-dejavu-core) at known positions. The model is a scripted stand-in that reads only the
//! pixels it is given: every word is drawn in its own colour (line and word number coded in the
//! red and green channels), so the stand-in can name the words it sees whole and box them in
//! the 0–1000 frame of the image it was handed, as Qwen3-VL does. What comes back is checked
//! against the ink on the page with numbers (box IoU): the mapping through tiles, the EXIF
//! orientation, TIFF pages and PDF rendering, the parsing of sloppy and cut-short answers, the
//! merging of lines read twice, resume, and bad files. One run goes through the tiny real model.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{ImageEncoder, Rgb, RgbImage};
use omnid::ocr::document::collect_inputs;
use omnid::ocr::formats::PageResult;
use omnid::ocr::geometry::PixelBox;
use omnid::ocr::mode::Mode;
use omnid::ocr::model::{Answer, AskError, PageModel, PageTraits};
use omnid::ocr::page_range::PageRange;
use omnid::ocr::page_store::DocFolder;
use omnid::ocr::runner::{read_document, DocumentResult, OcrRequest};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT_PX: f32 = 24.0;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnid-ocr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn font() -> FontRef<'static> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes =
        BYTES.get_or_init(|| std::fs::read(FONT).expect("fonts-dejavu-core is installed (scripts/install-deps.sh)"));
    FontRef::try_from_slice(bytes).expect("DejaVu Sans parses")
}

// ---- colour code: word `w` of line `l` is drawn in (20 + 12 l, 20 + 12 w, 60) ----

const CODE_STEP: i32 = 12;
const CODE_BASE: i32 = 20;
const CODE_BLUE: i32 = 60;
/// Renderers blend a little even at 1:1 (poppler); interior pixels stay this close.
const CODE_TOLERANCE: i32 = 4;

fn colour(line: usize, word: usize) -> Rgb<u8> {
    assert!(line < 19 && word < 19);
    Rgb([(CODE_BASE + CODE_STEP * line as i32) as u8, (CODE_BASE + CODE_STEP * word as i32) as u8, CODE_BLUE as u8])
}

fn decode(p: &Rgb<u8>) -> Option<(usize, usize)> {
    let near = |v: u8| {
        let v = v as i32 - CODE_BASE;
        let c = (v as f64 / CODE_STEP as f64).round() as i32;
        ((0..19).contains(&c) && (v - c * CODE_STEP).abs() <= CODE_TOLERANCE).then_some(c as usize)
    };
    if (p[2] as i32 - CODE_BLUE).abs() > CODE_TOLERANCE {
        return None;
    }
    Some((near(p[0])?, near(p[1])?))
}

/// Ink boxes per (line, word), pixel edges: `[min_x, min_y, max_x + 1, max_y + 1]`.
fn word_boxes(img: &RgbImage) -> BTreeMap<(usize, usize), [u32; 4]> {
    let mut boxes: BTreeMap<(usize, usize), [u32; 4]> = BTreeMap::new();
    for (x, y, p) in img.enumerate_pixels() {
        if let Some(k) = decode(p) {
            let b = boxes.entry(k).or_insert([x, y, x + 1, y + 1]);
            *b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
        }
    }
    boxes
}

fn union(a: [u32; 4], b: [u32; 4]) -> [u32; 4] {
    [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])]
}

fn pixel_box(b: [u32; 4]) -> PixelBox {
    PixelBox { x1: b[0] as f64, y1: b[1] as f64, x2: b[2] as f64, y2: b[3] as f64 }
}

/// A drawn page: its image and its words (the stand-in's "font knowledge": what each colour says).
struct Page {
    image: RgbImage,
    words: Vec<Vec<String>>,
}

impl Page {
    /// White `w` × `h` with each `(x, y_top, text)` drawn without anti-aliasing, so every ink
    /// pixel carries its word's exact colour.
    fn draw(w: u32, h: u32, lines: &[(u32, u32, &str)]) -> Page {
        Page::draw_sized(w, h, FONT_PX, lines)
    }

    /// As [`Page::draw`], with type `px` pixels high.
    fn draw_sized(w: u32, h: u32, px: f32, lines: &[(u32, u32, &str)]) -> Page {
        let font = font();
        let scale = PxScale::from(px);
        let scaled = font.as_scaled(scale);
        let mut image = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
        let mut words = Vec::new();
        for (li, &(x0, y0, text)) in lines.iter().enumerate() {
            let baseline = y0 as f32 + scaled.ascent();
            let mut caret = x0 as f32;
            let line_words: Vec<String> = text.split_whitespace().map(String::from).collect();
            for (wi, word) in line_words.iter().enumerate() {
                let mut prev = None;
                for c in word.chars() {
                    let id = font.glyph_id(c);
                    if let Some(p) = prev {
                        caret += scaled.kern(p, id);
                    }
                    let glyph = id.with_scale_and_position(scale, ab_glyph::point(caret, baseline));
                    if let Some(o) = font.outline_glyph(glyph) {
                        let b = o.px_bounds();
                        o.draw(|gx, gy, cov| {
                            let (px, py) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                            if cov > 0.5 && px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                                image.put_pixel(px as u32, py as u32, colour(li, wi));
                            }
                        });
                    }
                    caret += scaled.h_advance(id);
                    prev = Some(id);
                }
                caret += scaled.h_advance(font.glyph_id(' '));
            }
            words.push(line_words);
        }
        Page { image, words }
    }

    /// The lines' texts and ink boxes as found in `img` (this page, or a turned or rendered copy).
    fn truth(&self, img: &RgbImage) -> Vec<(String, PixelBox)> {
        let mut lines: BTreeMap<usize, [u32; 4]> = BTreeMap::new();
        for ((l, _), b) in word_boxes(img) {
            lines.entry(l).and_modify(|u| *u = union(*u, b)).or_insert(b);
        }
        lines.into_iter().map(|(l, b)| (self.words[l].join(" "), pixel_box(b))).collect()
    }
}

// ---- the scripted stand-in ----

#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// JSON in a fence, as asked.
    Clean,
    /// Python quotes, every other box with its corners swapped, prose after the list.
    Sloppy,
    /// The answer stops in the middle of its last item (the token budget ran out).
    CutShort,
}

struct Reader {
    words: Vec<Vec<String>>,
    style: Style,
    max_pixels: u64,
    /// (width, height, prompt) of every image asked about.
    calls: Mutex<Vec<(u32, u32, String)>>,
    /// Answer this many questions, then report an interruption (a Ctrl-C).
    interrupt_after: Option<usize>,
    answered: AtomicUsize,
    traits: PageTraits,
}

impl Reader {
    fn new(page: &Page, style: Style, max_pixels: u64) -> Reader {
        Reader {
            words: page.words.clone(),
            style,
            max_pixels,
            calls: Mutex::new(Vec::new()),
            interrupt_after: None,
            answered: AtomicUsize::new(0),
            traits: PageTraits { max_pixels, token_side: 32, context: None, identity: "scripted reader".into() },
        }
    }

    fn calls(&self) -> Vec<(u32, u32, String)> {
        self.calls.lock().unwrap().clone()
    }

    /// The lines it sees: words whose ink does not touch the image's edge (a word cut by a
    /// tile border is not read), joined per line; boxes relative 0–1000.
    fn see(&self, img: &RgbImage) -> Vec<(String, [i64; 4])> {
        let (w, h) = img.dimensions();
        let mut lines: BTreeMap<usize, (Vec<String>, [u32; 4])> = BTreeMap::new();
        for ((l, wi), b) in word_boxes(img) {
            if b[0] == 0 || b[1] == 0 || b[2] == w || b[3] == h {
                continue;
            }
            let e = lines.entry(l).or_insert((Vec::new(), b));
            // A colour it has no word for (another page's code) reads as "?".
            e.0.push(self.words.get(l).and_then(|ws| ws.get(wi)).map_or("?", String::as_str).to_string());
            e.1 = union(e.1, b);
        }
        let rel = |v: u32, d: u32| (v as f64 * 1000.0 / d as f64).round() as i64;
        lines
            .into_values()
            .map(|(ws, b)| (ws.join(" "), [rel(b[0], w), rel(b[1], h), rel(b[2], w), rel(b[3], h)]))
            .collect()
    }
}

impl PageModel for Reader {
    fn traits(&self) -> &PageTraits {
        &self.traits
    }

    fn read(&self, image: RgbImage, prompt: String, _max: usize, _stop: &AtomicBool) -> Result<Answer, AskError> {
        if self.interrupt_after.is_some_and(|n| self.answered.load(Ordering::SeqCst) >= n) {
            return Err(AskError::Interrupted);
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        assert!(u64::from(image.width()) * u64::from(image.height()) <= self.max_pixels, "over the budget");
        self.calls.lock().unwrap().push((image.width(), image.height(), prompt.clone()));
        let lines = self.see(&image);
        let text = if prompt.starts_with("Spotting") {
            let items: Vec<String> = lines
                .iter()
                .enumerate()
                .map(|(i, (t, b))| match self.style {
                    Style::Sloppy if i % 2 == 1 => {
                        format!("{{'bbox_2d': [{}, {}, {}, {}], 'text_content': '{t}'}}", b[2], b[3], b[0], b[1])
                    }
                    Style::Sloppy => {
                        format!("{{'bbox_2d': [{}, {}, {}, {}], 'text_content': '{t}'}}", b[0], b[1], b[2], b[3])
                    }
                    _ => {
                        format!("{{\"bbox_2d\": [{}, {}, {}, {}], \"text_content\": \"{t}\"}}", b[0], b[1], b[2], b[3])
                    }
                })
                .collect();
            match self.style {
                Style::Clean => format!("```json\n[\n  {}\n]\n```", items.join(",\n  ")),
                Style::Sloppy => format!("[{}]\nThese are all the lines I can see.", items.join(", ")),
                Style::CutShort => {
                    let all = format!("[{}]", items.join(", "));
                    let last = all.rfind("\"text_content\"").unwrap();
                    all[..last + 20].to_string()
                }
            }
        } else if prompt.starts_with("qwenvl html") {
            let body: String = lines
                .iter()
                .map(|(t, b)| format!("<p data-bbox=\"{} {} {} {}\">{t}</p>\n", b[0], b[1], b[2], b[3]))
                .collect();
            format!("```html\n<html><body>\n{body}</body></html>\n```")
        } else {
            lines.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join("\n")
        };
        Ok(Answer { text, ..Default::default() })
    }
}

// ---- helpers ----

fn request(mode: Mode) -> OcrRequest {
    OcrRequest { mode, ..Default::default() }
}

fn read(model: &Reader, path: &Path, req: &OcrRequest, folder: Option<&DocFolder>) -> DocumentResult {
    let stop = AtomicBool::new(false);
    read_document(model, path, "doc", req, folder, &mut |_| {}, &stop).expect("not interrupted")
}

/// Every truth line is found once, with its text and a box of IoU ≥ `min_iou`; nothing else.
fn assert_lines(page: &PageResult, truth: &[(String, PixelBox)], min_iou: f64) {
    assert_eq!(page.error, None);
    let mut found: Vec<(&str, PixelBox)> = page.lines.iter().map(|l| (l.text.as_str(), l.bbox)).collect();
    for (text, tb) in truth {
        let i = found
            .iter()
            .position(|(t, _)| t == text)
            .unwrap_or_else(|| panic!("line {text:?} not found on page {}; read: {:?}", page.page, page.lines));
        let (_, b) = found.remove(i);
        let iou = b.iou(tb);
        assert!(iou >= min_iou, "page {} line {text:?}: box {b:?} vs drawn {tb:?}, IoU {iou:.3}", page.page);
    }
    assert!(found.is_empty(), "lines read that are not on the page: {found:?}");
}

/// A 1400 × 1000 page: two columns, a line across the whole width, lines near every edge.
fn wide_page() -> Page {
    Page::draw(
        1400,
        1000,
        &[
            (60, 50, "Omnid reads every page"),
            (60, 110, "Tiles share a margin"),
            (820, 110, "right column text"),
            (60, 300, "a long line runs on and on from the left side of this page to the far right"),
            (700, 470, "in the middle"),
            (60, 640, "first of two"),
            (820, 640, "second of two"),
            (1000, 930, "bottom right"),
        ],
    )
}

fn save_png(img: &RgbImage, path: &Path, exif_orientation: Option<u16>) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = image::codecs::png::PngEncoder::new(file);
    if let Some(o) = exif_orientation {
        // A big-endian TIFF header with one IFD entry: Orientation (0x0112), SHORT, 1, value.
        let mut exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        exif.extend_from_slice(&o.to_be_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        enc.set_exif_metadata(exif).unwrap();
    }
    enc.write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8).unwrap();
}

// ---- tests ----

#[test]
fn lines_come_back_where_they_were_drawn_through_tiles() {
    let dir = scratch("tiles");
    let page = wide_page();
    let path = dir.join("page.png");
    save_png(&page.image, &path, None);
    let truth = page.truth(&page.image);
    assert_eq!(truth.len(), 8);

    // A budget of 0.3 Mpx: the 1.4 Mpx page is read in overlapping tiles.
    let model = Reader::new(&page, Style::Clean, 300_000);
    let doc = read(&model, &path, &request(Mode::Json), None);
    let p = &doc.pages[0];
    assert!(p.tiles >= 6, "{} tiles", p.tiles);
    assert_eq!(model.calls().len(), p.tiles);
    assert!(model.calls().iter().all(|(_, _, q)| q.starts_with("Spotting all the text")));
    // The long line was never seen whole; it is stitched from its pieces. Lines inside an
    // overlap were read twice and are there once.
    assert_lines(p, &truth, 0.9);
    assert_eq!(p.unparsed, Vec::<String>::new());
    assert_eq!((p.width, p.height, p.orientation), (1400, 1000, 1));
    // Reading order: top to bottom, left to right within a line's height.
    let order: Vec<&str> = p.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(order[..3], ["Omnid reads every page", "Tiles share a margin", "right column text"]);

    // The same page read whole: the same lines, boxes within the relative frame's rounding.
    let whole = Reader::new(&page, Style::Clean, 2_000_000);
    let doc = read(&whole, &path, &request(Mode::Json), None);
    assert_eq!(doc.pages[0].tiles, 1);
    assert_lines(&doc.pages[0], &truth, 0.93);
}

#[test]
fn sloppy_and_cut_short_answers_are_repaired_and_nothing_is_dropped() {
    let dir = scratch("sloppy");
    let page = wide_page();
    let path = dir.join("page.png");
    save_png(&page.image, &path, None);
    let truth = page.truth(&page.image);

    let sloppy = Reader::new(&page, Style::Sloppy, 2_000_000);
    let p = read(&sloppy, &path, &request(Mode::Lines), None).pages.remove(0);
    assert_lines(&p, &truth, 0.93);
    assert_eq!(p.lines.iter().filter(|l| l.repaired).count(), 4, "every other box had its corners swapped");
    assert_eq!(p.unparsed, ["These are all the lines I can see."]);
    assert!(!p.truncated);

    let cut = Reader::new(&page, Style::CutShort, 2_000_000);
    let p = read(&cut, &path, &request(Mode::Lines), None).pages.remove(0);
    assert!(p.truncated);
    assert_lines(&p, &truth[..7], 0.93);
    assert_eq!(p.unparsed.len(), 1);
    assert!(
        p.unparsed[0].starts_with("{\"bbox_2d\": [") && p.unparsed[0].contains("\"text_content\": \""),
        "{:?}",
        p.unparsed
    );
    // The page's text (the sidecar) holds the kept part too.
    assert!(omnid::ocr::formats::page_text(&p).contains("\"text_content\""));
}

#[test]
fn boxes_go_back_through_the_exif_orientation_to_the_stored_pixels() {
    let dir = scratch("exif");
    let page = wide_page();
    // Stored so that a viewer must turn it: 6 = 90° clockwise, 8 = 90° anticlockwise, 3 = 180°.
    for (exif, stored) in [
        (6u16, image::imageops::rotate270(&page.image)),
        (8, image::imageops::rotate90(&page.image)),
        (3, image::imageops::rotate180(&page.image)),
    ] {
        let path = dir.join(format!("photo-{exif}.png"));
        save_png(&stored, &path, Some(exif));
        let model = Reader::new(&page, Style::Clean, 2_000_000);
        let p = read(&model, &path, &request(Mode::Json), None).pages.remove(0);
        // The model saw the page upright …
        assert_eq!(model.calls()[0].0, 1400, "orientation {exif}");
        // … and the boxes are on the pixels as stored.
        assert_eq!((p.width, p.height, p.orientation), (stored.width(), stored.height(), exif as u8));
        assert_lines(&p, &page.truth(&stored), 0.93);
    }
}

#[test]
fn tiff_pages_are_read_one_by_one_with_their_own_orientation_and_a_page_selection() {
    let dir = scratch("tiff");
    let pages = [
        Page::draw(700, 500, &[(40, 40, "first page"), (40, 300, "of three")]),
        Page::draw(600, 800, &[(50, 60, "second page upside down"), (300, 700, "lower right")]),
        Page::draw(500, 400, &[(30, 30, "third page")]),
    ];
    let path = dir.join("scan.tif");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut tiff = tiff::encoder::TiffEncoder::new(file).unwrap();
        for (i, p) in pages.iter().enumerate() {
            let stored = if i == 1 { image::imageops::rotate180(&p.image) } else { p.image.clone() };
            let mut img = tiff.new_image::<tiff::encoder::colortype::RGB8>(stored.width(), stored.height()).unwrap();
            if i == 1 {
                img.encoder().write_tag(tiff::tags::Tag::Orientation, 3u16).unwrap();
            }
            img.write_data(stored.as_raw()).unwrap();
        }
    }
    let mut model = Reader::new(&pages[0], Style::Clean, 2_000_000);
    // Each page's lines are coded from 0; give the stand-in each page's words in turn.
    for (i, p) in pages.iter().enumerate() {
        model.words = p.words.clone();
        let req = OcrRequest { pages: PageRange::parse(&format!("{}", i + 1)).unwrap(), ..request(Mode::Json) };
        let doc = read(&model, &path, &req, None);
        assert_eq!(doc.pages.len(), 1);
        let r = &doc.pages[0];
        assert_eq!(r.page, i + 1);
        let stored = if i == 1 { image::imageops::rotate180(&p.image) } else { p.image.clone() };
        assert_eq!((r.width, r.height, r.orientation), (stored.width(), stored.height(), if i == 1 { 3 } else { 1 }));
        assert_lines(r, &p.truth(&stored), 0.93);
    }
    let req = OcrRequest { pages: PageRange::parse("2-").unwrap(), ..request(Mode::Text) };
    let doc = read(&model, &path, &req, None);
    assert_eq!(doc.pages.iter().map(|p| p.page).collect::<Vec<_>>(), [2, 3]);
    let req = OcrRequest { pages: PageRange::parse("4-9").unwrap(), ..request(Mode::Text) };
    let err = read(&model, &path, &req, None).error.unwrap();
    assert!(err.contains("3 page(s)"), "{err}");
}

/// A PDF whose pages are the drawn images, placed at 1 pt per pixel.
fn write_image_pdf(path: &Path, images: &[&RgbImage]) {
    let n = images.len();
    let mut objs: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {n} >>",
            (0..n).map(|i| format!("{} 0 R", 3 + 3 * i)).collect::<Vec<_>>().join(" ")
        )
        .into_bytes(),
    ];
    for (i, img) in images.iter().enumerate() {
        let (w, h) = img.dimensions();
        let (page, xobj, content) = (3 + 3 * i, 4 + 3 * i, 5 + 3 * i);
        objs.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] /Resources << /XObject << /Im0 {xobj} 0 R >> >> /Contents {content} 0 R >>"
            )
            .into_bytes(),
        );
        debug_assert_eq!(objs.len(), page);
        let mut x = format!(
            "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {} >>\nstream\n",
            img.as_raw().len()
        )
        .into_bytes();
        x.extend_from_slice(img.as_raw());
        x.extend_from_slice(b"\nendstream");
        objs.push(x);
        let c = format!("q {w} 0 0 {h} 0 0 cm /Im0 Do Q");
        objs.push(format!("<< /Length {} >>\nstream\n{c}\nendstream", c.len()).into_bytes());
    }
    std::fs::write(path, omnid_codecs::pdf::assemble_pdf(&objs)).unwrap();
}

#[test]
fn pdf_pages_are_rendered_at_the_resolution_asked_and_boxes_scale_with_it() {
    let dir = scratch("pdf");
    let a = Page::draw(600, 400, &[(40, 40, "PDF page one"), (200, 300, "with two lines")]);
    let b = Page::draw(500, 300, &[(60, 100, "page two")]);
    let path = dir.join("doc.pdf");
    write_image_pdf(&path, &[&a.image, &b.image]);
    for dpi in [72u32, 144] {
        let scale = dpi as f64 / 72.0;
        for (i, p) in [&a, &b].into_iter().enumerate() {
            let model = Reader::new(p, Style::Clean, 4_000_000);
            let req = OcrRequest { dpi, pages: PageRange::parse(&(i + 1).to_string()).unwrap(), ..request(Mode::Json) };
            let doc = read(&model, &path, &req, None);
            let r = &doc.pages[0];
            assert_eq!(
                (r.width, r.height, r.dpi),
                ((p.image.width() as f64 * scale) as u32, (p.image.height() as f64 * scale) as u32, Some(dpi))
            );
            let truth: Vec<(String, PixelBox)> = p
                .truth(&p.image)
                .into_iter()
                .map(|(t, b)| (t, PixelBox { x1: b.x1 * scale, y1: b.y1 * scale, x2: b.x2 * scale, y2: b.y2 * scale }))
                .collect();
            // Poppler filters the image a little even at 1:1, so the stand-in finds a pixel or
            // two less ink at the glyphs' edges than was drawn.
            assert_lines(r, &truth, 0.8);
        }
    }
}

#[test]
fn every_mode_asks_its_prompt_and_writes_its_document() {
    let dir = scratch("modes");
    // Inside document parsing's pixel range (0.5–2.1 Mpx), so no mode resizes it.
    let page = Page::draw(1000, 600, &[(50, 40, "Title line"), (50, 200, "body text here")]);
    let path = dir.join("page.png");
    save_png(&page.image, &path, None);
    let truth = page.truth(&page.image);

    let model = Reader::new(&page, Style::Clean, 2_000_000);
    let p = read(&model, &path, &request(Mode::Text), None).pages.remove(0);
    assert_eq!(model.calls()[0].2, "Read all the text in the image.");
    assert_eq!(p.text, "Title line\nbody text here");

    let model = Reader::new(&page, Style::Clean, 2_000_000);
    let req = OcrRequest { lang: Some("English".into()), ..request(Mode::Html) };
    let p = read(&model, &path, &req, None).pages.remove(0);
    assert_eq!(model.calls()[0].2, "qwenvl html\nThe text is in English.");
    assert_lines(&p, &truth, 0.93);
    assert_eq!(p.lines[0].kind.as_deref(), Some("p"));
    // The HTML's data-bbox values are page pixels, the same as the lines' boxes.
    let doc = p.document.clone().unwrap();
    for l in &p.lines {
        let [a, b, c, d] = l.bbox.rounded();
        assert!(doc.contains(&format!("data-bbox=\"{a} {b} {c} {d}\">{}</p>", l.text)), "{doc}");
    }
    assert_eq!(p.text, "Title line\nbody text here");

    let model = Reader::new(&page, Style::Clean, 2_000_000);
    let p = read(&model, &path, &request(Mode::Markdown), None).pages.remove(0);
    assert_eq!(model.calls()[0].2, "qwenvl markdown");
    assert_eq!(p.document.as_deref(), Some("Title line\nbody text here"));

    // Over the budget, plain reading asks for located lines per tile and puts them together.
    let model = Reader::new(&page, Style::Clean, 150_000);
    let p = read(&model, &path, &request(Mode::Text), None).pages.remove(0);
    assert!(p.tiles > 1 && model.calls().iter().all(|(_, _, q)| q.starts_with("Spotting")));
    assert_eq!(p.text, "Title line\nbody text here");
}

#[test]
fn document_parsing_reads_the_whole_page_resized_into_its_range() {
    let dir = scratch("docsize");
    // Large type, so that the strokes keep pure-coloured pixels after shrinking.
    let page = Page::draw_sized(2400, 1600, 64.0, &[(100, 100, "Big title"), (100, 900, "and body")]);
    let path = dir.join("page.png");
    save_png(&page.image, &path, None);
    let truth = page.truth(&page.image);
    // 3.84 Mpx against the cookbook's 2048·32·32 = 2.1 Mpx: shrunk, not tiled, one question.
    let model = Reader::new(&page, Style::Clean, 16_000_000);
    let p = read(&model, &path, &request(Mode::Html), None).pages.remove(0);
    let calls = model.calls();
    assert_eq!((p.tiles, calls.len()), (1, 1));
    let (w, h) = (calls[0].0 as u64, calls[0].1 as u64);
    assert!(w * h <= 2048 * 32 * 32 && w * h > 2_000_000, "{w} × {h}");
    assert!((w as f64 / h as f64 - 1.5).abs() < 0.01, "aspect kept: {w} × {h}");
    // The boxes are on the page's own pixels.
    assert_eq!((p.width, p.height), (2400, 1600));
    assert_lines(&p, &truth, 0.9);
    // A lower --max-pixels shrinks further; a small page is enlarged to the range's floor.
    let model = Reader::new(&page, Style::Clean, 16_000_000);
    let req = OcrRequest { max_pixels: Some(1_000_000), ..request(Mode::Markdown) };
    read(&model, &path, &req, None);
    let (w, h) = (model.calls()[0].0 as u64, model.calls()[0].1 as u64);
    assert!(w * h <= 1_000_000 && w * h > 950_000, "{w} × {h}");
    let small = Page::draw_sized(400, 300, 24.0, &[(20, 20, "small")]);
    save_png(&small.image, &dir.join("small.png"), None);
    let model = Reader::new(&small, Style::Clean, 16_000_000);
    let p = read(&model, &dir.join("small.png"), &request(Mode::Html), None).pages.remove(0);
    let (w, h) = (model.calls()[0].0 as u64, model.calls()[0].1 as u64);
    assert!(w * h >= 510_000 && w * h <= 512 * 32 * 32, "{w} × {h}");
    assert_lines(&p, &small.truth(&small.image), 0.85);
}

#[test]
fn an_interrupted_run_resumes_with_the_pages_already_read() {
    let dir = scratch("resume");
    let pages: Vec<Page> = (0..4)
        .map(|i| Page::draw(400, 300, &[(30, 30, &format!("page number {}", i + 1)), (30, 200, "same words")]))
        .collect();
    let path = dir.join("doc.pdf");
    write_image_pdf(&path, &pages.iter().map(|p| &p.image).collect::<Vec<_>>());
    // Every page has the same two lines coded 0 and 1; word 2 of line 0 differs in text only,
    // so one stand-in reads them all — page numbers come from the calls' order.
    let words = Page {
        image: RgbImage::new(1, 1),
        words: vec![vec!["page".into(), "number".into(), "N".into()], vec!["same".into(), "words".into()]],
    };
    let req = OcrRequest { dpi: 72, ..request(Mode::Json) };
    let folder = DocFolder::create(&dir.join("out")).unwrap();

    let mut first = Reader::new(&words, Style::Clean, 1_000_000);
    first.interrupt_after = Some(2);
    let stop = AtomicBool::new(false);
    let end = read_document(&first, &path, "doc", &req, Some(&folder), &mut |_| {}, &stop);
    assert!(end.is_err(), "the stand-in interrupted the run");
    assert!(dir.join("out/page-0001.json").is_file() && dir.join("out/page-0002.txt").is_file());
    assert!(!dir.join("out/page-0003.json").exists());
    assert_eq!(std::fs::read_to_string(dir.join("out/page-0002.txt")).unwrap(), "page number N\nsame words\n");

    let second = Reader::new(&words, Style::Clean, 1_000_000);
    let mut seen = Vec::new();
    let doc = read_document(&second, &path, "doc", &req, Some(&folder), &mut |p| seen.push(p), &stop).unwrap();
    assert_eq!(second.calls().len(), 2, "only pages 3 and 4 are read again");
    assert_eq!(doc.pages.iter().map(|p| p.page).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let reused: Vec<bool> = seen
        .iter()
        .filter_map(|p| match p {
            omnid::ocr::runner::Progress::Page { reused, .. } => Some(*reused),
            _ => None,
        })
        .collect();
    assert_eq!(reused, [true, true, false, false]);
    let files = folder.write_results(Mode::Json, "doc.pdf", &doc.pages).unwrap();
    assert_eq!(files.len(), 2, "result.json and result.hocr");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(j["pages"].as_array().unwrap().len(), 4);
    assert!(std::fs::read_to_string(&files[1]).unwrap().contains("class=\"ocr_line\""));

    // Other settings (another mode) read everything again.
    let third = Reader::new(&words, Style::Clean, 1_000_000);
    read_document(&third, &path, "doc", &request(Mode::Lines), Some(&folder), &mut |_| {}, &stop).unwrap();
    assert_eq!(third.calls().len(), 4);
}

#[test]
fn folders_are_walked_in_name_order_skipping_hidden_and_unknown_files() {
    let dir = scratch("walk");
    let img = RgbImage::from_pixel(8, 8, Rgb([255, 255, 255]));
    std::fs::create_dir_all(dir.join("in/sub")).unwrap();
    for name in ["in/b.png", "in/a.png", "in/sub/c.png", "in/.hidden.png", "in/Z.png"] {
        save_png(&img, &dir.join(name), None);
    }
    std::fs::write(dir.join("in/notes.txt"), "not an image").unwrap();
    // A link back up the tree is walked once, not forever.
    std::os::unix::fs::symlink(dir.join("in"), dir.join("in/sub/loop")).unwrap();
    let found = collect_inputs(&[dir.join("in")]).unwrap();
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["Z.png", "a.png", "b.png", "sub/c.png"]);
}

/// A PNG whose header declares `w` × `h` and whose pixels are missing: the size is refused first.
fn png_header_only(path: &Path, w: u32, h: u32) {
    fn crc(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // A few bytes of (invalid) image data: readers look for the first IDAT before the size.
    chunk(b"IDAT", &[0x78, 0x9c, 0, 0]);
    chunk(b"IEND", &[]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn bad_files_fail_alone_with_their_reason_and_the_batch_completes() {
    let dir = scratch("bad");
    let good = Page::draw(300, 200, &[(20, 20, "fine")]);
    save_png(&good.image, &dir.join("good.png"), None);
    std::fs::write(dir.join("broken.pdf"), b"%PDF-1.4\nthis is not a PDF body\n").unwrap();
    std::fs::write(dir.join("empty.png"), b"").unwrap();
    std::fs::write(dir.join("notes.txt"), "plain text, not a page").unwrap();
    png_header_only(&dir.join("huge.png"), 20_000, 20_000);
    // Encrypted with a password: pdfinfo cannot open it.
    write_image_pdf(&dir.join("plain.pdf"), &[&good.image]);
    let qpdf = Command::new("qpdf")
        .args(["--encrypt", "secret", "secret", "256", "--"])
        .arg(dir.join("plain.pdf"))
        .arg(dir.join("locked.pdf"))
        .status()
        .unwrap();
    assert!(qpdf.success());

    let out = dir.join("out");
    let names = ["broken.pdf", "empty.png", "good.png", "huge.png", "locked.pdf", "notes.txt", "missing.png"];
    let res = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .arg("ocr")
        .args(names.iter().map(|n| dir.join(n)))
        .args(["--mode", "lines", "--max-tokens", "8", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    for (name, why) in [
        ("broken.pdf", "not a readable PDF"),
        ("empty.png", "the file is empty"),
        ("huge.png", "400000000"),
        ("locked.pdf", "password"),
        ("notes.txt", "not an image, TIFF or PDF"),
        ("missing.png", "no such file"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.starts_with("omnid: ") && !l.starts_with("omnid: reading") && l.contains(name))
            .unwrap_or_else(|| panic!("{name} not reported: {stderr}"));
        assert!(line.contains(why), "{name}: {line}");
    }
    // The good file completed: its page, its sidecar and its results.
    for f in ["page-0001.json", "page-0001.txt", "result.txt", "result.hocr"] {
        assert!(out.join("good.png").join(f).is_file(), "{f}: {stderr}");
    }
}

#[test]
fn the_tiny_real_model_reads_a_page_end_to_end() {
    let dir = scratch("real");
    let page = Page::draw(320, 240, &[(20, 20, "tiny model")]);
    save_png(&page.image, &dir.join("page.png"), None);
    let out = dir.join("out");
    let res = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .args(["ocr", "--model"])
        .arg(common::fixture_dir("vl_dense_a"))
        .arg(dir.join("page.png"))
        .args(["--mode", "json", "--max-tokens", "24", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("page.png/page-0001.json")).unwrap()).unwrap();
    let r = &rec["result"];
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(320), Some(240)));
    // The fixture's image budget is 64 × 64 pixels: the page is read in tiles, one answer each.
    let tiles = r["tiles"].as_u64().unwrap() as usize;
    assert_eq!(r["answers"].as_array().unwrap().len(), tiles);
    assert!(r["prompt_tokens"].as_u64().unwrap() > 10);
    assert!(r["completion_tokens"].as_u64().unwrap() >= tiles as u64, "{r}");
    // Whatever the random weights wrote is kept: as lines, or flagged as unparsed.
    let answer = r["answers"][0].as_str().unwrap();
    assert!(!answer.trim().is_empty());
    let kept = r["lines"].as_array().unwrap().len() + r["unparsed"].as_array().unwrap().len();
    assert!(kept >= 1, "{r}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("page.png/result.json")).unwrap()).unwrap();
    assert_eq!(result["pages"][0]["page"], 1);
}

// ---- the daemon's POST /v1/ocr ----

fn post(server: &common::Server, query: &str, body: &[u8]) -> (u16, String, String) {
    let url = format!("http://{}/v1/ocr?{query}", server.addr);
    // A fresh connection each time: a refusal sent before the body was read closes the
    // connection, which a pooled client would try to reuse.
    let agent = ureq::AgentBuilder::new().max_idle_connections(0).timeout(std::time::Duration::from_secs(120)).build();
    match agent.post(&url).send_bytes(body) {
        Ok(r) => {
            let ct = r.header("content-type").unwrap_or_default().to_string();
            (r.status(), ct, r.into_string().unwrap())
        }
        Err(ureq::Error::Status(code, r)) => (code, String::new(), r.into_string().unwrap()),
        Err(e) => panic!("POST {url}: {e}"),
    }
}

fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[test]
fn the_daemon_reads_uploads_streams_pages_and_refuses_what_it_cannot_read() {
    let dir = scratch("http");
    let config = dir.join("omnid.toml");
    std::fs::write(&config, "[ocr]\nmax_concurrent = 1\nmax_upload_bytes = 3000000\nmax_pages = 30\n").unwrap();
    let server = common::Server::start(&["--config", config.to_str().unwrap()]);
    let page = Page::draw(300, 200, &[(20, 20, "upload")]);
    let png = png_bytes(&page.image);

    let (status, ct, body) = post(&server, "mode=json&max_tokens=4&name=scan.png", &png);
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["object"].as_str(), v["source"].as_str(), v["mode"].as_str()),
        (Some("ocr.document"), Some("scan.png"), Some("json"))
    );
    assert_eq!((v["pages"][0]["width"].as_u64(), v["pages"][0]["height"].as_u64()), (Some(300), Some(200)));
    assert_eq!(v["usage"]["pages"], 1);
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() >= 1);

    // A PDF: one page selected, its text as plain text; then hOCR.
    let pdf = dir.join("two.pdf");
    write_image_pdf(&pdf, &[&page.image, &page.image]);
    let pdf_bytes = std::fs::read(&pdf).unwrap();
    let (status, ct, body) = post(&server, "pages=2&dpi=72&max_tokens=4&response_format=raw", &pdf_bytes);
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(!body.contains('\u{c}'), "one page, no page break");
    let (status, ct, body) = post(&server, "mode=lines&dpi=72&max_tokens=4&response_format=hocr", &pdf_bytes);
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/xhtml+xml"), "{ct}");
    assert_eq!(body.matches("class=\"ocr_page\"").count(), 2, "{body}");

    // Streamed: one event per page as it finishes, then the document without its pages.
    let (status, _, body) = post(&server, "stream=true&dpi=72&max_tokens=4", &pdf_bytes);
    assert_eq!(status, 200, "{body}");
    let events: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events, ["page", "page", "done"], "{body}");
    assert!(body.contains("\"done\":2,") && body.contains("\"of\":2"), "{body}");

    // Refusals, each naming the problem.
    for (query, bytes, code, says) in [
        ("mode=pdf", &png[..], 400, "unknown OCR mode"),
        ("colour=red", &png[..], 400, "colour: unknown field"),
        ("dpi=5", &png[..], 400, "outside 18–1200"),
        ("pages=0-1", &png[..], 400, "pages start at 1"),
        ("lang=%3Cscript%3E", &png[..], 400, "language hint"),
        ("stream=true&response_format=raw", &png[..], 400, "leave response_format out"),
        ("name=notes.txt", &b"just some text"[..], 400, "notes.txt: not an image, TIFF or PDF"),
        ("name=broken.pdf", &b"%PDF-1.4 nothing"[..], 400, "broken.pdf: not a readable PDF"),
        ("", &[][..], 400, "the upload is empty"),
        ("pages=3", &pdf_bytes[..], 400, "past the end"),
        // Just over the limit: the server stops reading at the limit, and the rest must fit the
        // socket's buffers or the client sees the connection reset before the answer.
        ("", &vec![0u8; 3_010_000][..], 413, "[ocr] max_upload_bytes"),
    ] {
        let (status, _, body) = post(&server, query, bytes);
        assert_eq!(status, code, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
        assert!(!body.contains("omnid-ocr-"), "the scratch path is not shown: {body}");
    }
    // Small pages, so that 31 of them stay under the upload limit.
    let small = Page::draw(160, 100, &[(10, 10, "small")]);
    let many: Vec<&RgbImage> = std::iter::repeat_n(&small.image, 31).collect();
    let big = dir.join("many.pdf");
    write_image_pdf(&big, &many);
    let (status, _, body) = post(&server, "dpi=72", &std::fs::read(&big).unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("31 pages selected, more than 30"), "{body}");

    // One document at a time ([ocr] max_concurrent = 1): while a long one streams, another is
    // refused; when its client leaves, the reading stops and the slot frees.
    let long = dir.join("long.pdf");
    write_image_pdf(&long, &std::iter::repeat_n(&small.image, 30).collect::<Vec<_>>());
    let url = format!("http://{}/v1/ocr?stream=true&dpi=72&max_tokens=64", server.addr);
    let res = ureq::post(&url).send_bytes(&std::fs::read(&long).unwrap()).unwrap();
    let mut reader = std::io::BufReader::new(res.into_reader());
    let mut line = String::new();
    while !line.starts_with("event: page") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0, "the stream ended early");
    }
    let (status, _, body) = post(&server, "max_tokens=4", &png);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("[ocr] max_concurrent"), "{body}");
    drop(reader);
    let t0 = std::time::Instant::now();
    loop {
        let (status, _, body) = post(&server, "max_tokens=4", &png);
        if status == 200 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(t0.elapsed().as_secs() < 30, "the abandoned document kept its slot");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
