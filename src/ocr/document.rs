//! The documents OCR reads: a still image (every format the media layer decodes, turned upright
//! by its EXIF orientation), a multi-page TIFF, or a PDF rendered page by page through poppler.
//! The kind is sniffed from the content, not the name. Pages are loaded one at a time, so a
//! document's size never sits in memory.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::RgbImage;
use omnid_codecs::image_decode::decode_image_file_oriented;
use omnid_codecs::pdf::{pdf_info, render_page};
use omnid_codecs::tiff_pages::{decode_tiff_page, is_tiff, tiff_page_count};

use super::geometry::Orientation;

/// Largest page image read, in pixels: an A0 poster at 200 dpi is 62 Mpx; 3 bytes a pixel.
pub const MAX_PAGE_PIXELS: u64 = 64_000_000;
/// Rendering resolution of PDF pages unless asked otherwise: body text at 10 pt is then 28 px
/// high, well inside what the vision encoder resolves.
pub const DEFAULT_DPI: u32 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Image,
    Tiff,
    Pdf,
}

/// An opened document.
#[derive(Debug, Clone)]
pub struct Document {
    pub path: PathBuf,
    pub kind: Kind,
    pub pages: usize,
}

/// One page as the model will see it: upright, with what turned it.
pub struct PageImage {
    pub image: RgbImage,
    pub orientation: Orientation,
    /// Resolution it was rendered at (PDF pages).
    pub dpi: Option<u32>,
}

impl Document {
    /// Opens `path`, counting its pages; an error names the file and the problem.
    pub fn open(path: &Path) -> Result<Self, String> {
        let name = path.display();
        let mut head = [0u8; 8];
        let n = std::fs::File::open(path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(|e| format!("{name}: {}", io_problem(&e)))?;
        let head = &head[..n];
        let (kind, pages) = if head.starts_with(b"%PDF") {
            (Kind::Pdf, pdf_info(path).map_err(|e| e.to_string())?.pages)
        } else if is_tiff(head) {
            (Kind::Tiff, tiff_page_count(path).map_err(|e| e.to_string())?)
        } else if head.is_empty() {
            return Err(format!("{name}: the file is empty"));
        } else {
            // Decoded for real when the page is read; the header is checked now so that an
            // unknown format is reported before any model work.
            let reader = image::ImageReader::open(path)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| format!("{name}: {}", io_problem(&e)))?;
            if reader.format().is_none() {
                return Err(format!("{name}: not an image, TIFF or PDF this build can read"));
            }
            let (w, h) = reader.into_dimensions().map_err(|e| format!("{name}: {e}"))?;
            let pixels = u64::from(w) * u64::from(h);
            if pixels > MAX_PAGE_PIXELS {
                return Err(format!(
                    "{name}: {w} × {h} is {pixels} pixels, more than a page may have ({MAX_PAGE_PIXELS})"
                ));
            }
            (Kind::Image, 1)
        };
        Ok(Self { path: path.to_path_buf(), kind, pages })
    }

    /// Loads page `page` (1-based), PDF pages at `dpi`.
    pub fn load_page(&self, page: usize, dpi: u32) -> Result<PageImage, String> {
        let oriented = |o: omnid_codecs::image_decode::OrientedImage| PageImage {
            image: o.image,
            orientation: Orientation::from_exif(o.exif_orientation.into()),
            dpi: None,
        };
        match self.kind {
            Kind::Image => decode_image_file_oriented(&self.path, MAX_PAGE_PIXELS).map(oriented),
            Kind::Tiff => decode_tiff_page(&self.path, page, MAX_PAGE_PIXELS).map(oriented),
            Kind::Pdf => render_page(&self.path, page, dpi, MAX_PAGE_PIXELS).map(|image| PageImage {
                image,
                orientation: Orientation::Upright,
                dpi: Some(dpi),
            }),
        }
        .map_err(|e| e.to_string())
    }
}

fn io_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// The files named on a command line, directories walked: each directory's entries sorted by
/// name (byte order, so the order is the same on every machine and run), hidden files
/// skipped, only files whose content looks like an image, TIFF or PDF kept from a walk (named
/// files are kept and reported if unreadable). Returns (path, name relative to its argument).
pub fn collect_inputs(args: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            walk(a, a, &mut out, &mut std::collections::HashSet::new())?;
        } else {
            let name = a.file_name().map_or_else(|| a.display().to_string(), |n| n.to_string_lossy().into_owned());
            out.push((a.clone(), name));
        }
    }
    Ok(out)
}

/// `seen` holds the folders walked so far (resolved), so a link back up the tree is not
/// followed round forever.
fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(PathBuf, String)>,
    seen: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), String> {
    if !seen.insert(dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {}", dir.display(), io_problem(&e)))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    entries.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    for p in entries {
        if p.is_dir() {
            walk(root, &p, out, seen)?;
        } else if looks_readable(&p) {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
            out.push((p, rel));
        }
    }
    Ok(())
}

/// Whether a file found in a walk starts like a PDF, a TIFF or an image format `image` knows.
fn looks_readable(p: &Path) -> bool {
    let mut head = [0u8; 16];
    let Ok(n) = std::fs::File::open(p).and_then(|mut f| f.read(&mut head)) else { return false };
    let head = &head[..n];
    head.starts_with(b"%PDF") || is_tiff(head) || image::guess_format(head).is_ok()
}
