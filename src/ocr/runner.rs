//! A document read page by page: each page loaded (rendered, decoded) only when its turn comes
//! and dropped once read, so memory does not grow with the page count; each result stored as it
//! finishes (with an output folder), and pages stored by an earlier run with the same settings
//! reused. A page that fails is recorded with its reason and the others go on.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::document::{Document, DEFAULT_DPI};
use super::formats::PageResult;
use super::mode::{Mode, DOCUMENT_MAX_PIXELS};
use super::model::{AskError, PageModel};
use super::page_range::PageRange;
use super::page_store::DocFolder;
use super::read_page::{read_page, ReadSettings};

/// Answer tokens per page unless asked otherwise: a dense page of text is 1,000–3,000 tokens.
pub const DEFAULT_MAX_TOKENS: usize = 4096;
/// The smallest image worth asking about, in vision tokens.
const MIN_IMAGE_TOKENS: u64 = 16;

/// What an OCR run asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrRequest {
    pub mode: Mode,
    pub lang: Option<String>,
    pub pages: PageRange,
    pub dpi: u32,
    pub max_new_tokens: Option<usize>,
    /// A lower pixel budget per image than the model's (smaller tiles: faster, sharper text).
    pub max_pixels: Option<u64>,
    /// Most pages a document may have selected (the daemon's `[ocr] max_pages`).
    pub max_pages: Option<usize>,
}

impl Default for OcrRequest {
    fn default() -> Self {
        Self {
            mode: Mode::Text,
            lang: None,
            pages: PageRange::default(),
            dpi: DEFAULT_DPI,
            max_new_tokens: None,
            max_pixels: None,
            max_pages: None,
        }
    }
}

/// What happened, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A document opened with this many selected pages.
    Started { name: String, pages: usize },
    /// A page finished (`done` of the document's selected pages), with its result.
    Page {
        name: String,
        page: usize,
        done: usize,
        of: usize,
        reused: bool,
        failed: bool,
        ms: f64,
        result: Box<PageResult>,
    },
}

/// One document's result.
#[derive(Debug, Clone)]
pub struct DocumentResult {
    pub name: String,
    pub pages: Vec<PageResult>,
    /// Why no page could be read (the file is missing, unknown, encrypted, empty).
    pub error: Option<String>,
}

impl DocumentResult {
    /// Pages that failed, with their reasons.
    pub fn failures(&self) -> Vec<String> {
        let mut f: Vec<String> = self.error.iter().cloned().collect();
        f.extend(self.pages.iter().filter_map(|p| p.error.as_ref().map(|e| format!("page {}: {e}", p.page))));
        f
    }
}

/// The run was interrupted (Ctrl-C, a cancelled request, shutdown).
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupted;

/// The settings pages are read with for `req` on `model`, checked.
pub fn read_settings(model: &dyn PageModel, req: &OcrRequest) -> Result<ReadSettings, String> {
    let traits = model.traits();
    let max_new_tokens = match req.max_new_tokens {
        Some(0) => return Err("max_tokens must be at least 1".into()),
        Some(n) => n,
        None => DEFAULT_MAX_TOKENS.min(traits.context.map_or(usize::MAX, |c| c / 2)),
    };
    let per_token = u64::from(traits.token_side).pow(2);
    let smallest = MIN_IMAGE_TOKENS * per_token;
    if let Some(room) = traits.context_pixels(max_new_tokens) {
        if room < smallest {
            return Err(format!(
                "{max_new_tokens} answer tokens leave room for an image of only {room} pixels in the model's \
                 context of {} tokens: lower max_tokens",
                traits.context.unwrap_or_default()
            ));
        }
    }
    if req.max_pixels.is_some_and(|p| p < smallest) {
        return Err(format!("max_pixels must be at least {smallest} ({MIN_IMAGE_TOKENS} vision tokens)"));
    }
    let mut max_pixels = traits.pixels_for(max_new_tokens);
    // Document parsing reads the page whole at the size its cookbook recommends unless asked
    // otherwise; reading tiles at the model's own budget, at most.
    let asked = req.max_pixels.or(req.mode.parses_documents().then_some(DOCUMENT_MAX_PIXELS));
    if let Some(p) = asked {
        max_pixels = max_pixels.min(p);
    }
    Ok(ReadSettings { mode: req.mode, lang: req.lang.clone(), max_new_tokens, max_pixels })
}

/// Reads `path` (shown as `name`). With a folder, finished pages are stored as they come and
/// pages stored under the same settings are reused.
pub fn read_document(
    model: &dyn PageModel,
    path: &Path,
    name: &str,
    req: &OcrRequest,
    folder: Option<&DocFolder>,
    progress: &mut dyn FnMut(Progress),
    stop: &AtomicBool,
) -> Result<DocumentResult, Interrupted> {
    let fail = |e: String| DocumentResult { name: name.to_string(), pages: vec![], error: Some(e) };
    let settings = match read_settings(model, req) {
        Ok(s) => s,
        Err(e) => return Ok(fail(e)),
    };
    let doc = match Document::open(path) {
        Ok(d) => d,
        Err(e) => return Ok(fail(e)),
    };
    let pages = match req.pages.pages_of(doc.pages) {
        Ok(p) => p,
        Err(e) => return Ok(fail(format!("{}: {e}", path.display()))),
    };
    if let Some(max) = req.max_pages.filter(|&m| pages.len() > m) {
        return Ok(fail(format!(
            "{}: {} pages selected, more than {max} may be read at once; choose some with pages=",
            path.display(),
            pages.len()
        )));
    }
    let fingerprint = fingerprint(model, &settings, req.dpi, path);
    progress(Progress::Started { name: name.to_string(), pages: pages.len() });
    let mut results = Vec::with_capacity(pages.len());
    for (i, &page) in pages.iter().enumerate() {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Interrupted);
        }
        let t0 = Instant::now();
        let stored = folder.and_then(|f| f.load(page, &fingerprint));
        let reused = stored.is_some();
        let result = match stored {
            Some(r) => r,
            None => {
                let r = match doc.load_page(page, req.dpi) {
                    Ok(img) => match read_page(model, page, img, &settings, stop) {
                        Ok(r) => r,
                        Err(AskError::Interrupted) => return Err(Interrupted),
                        Err(AskError::Failed(m)) => failed_page(page, format!("the model failed: {m}")),
                    },
                    Err(e) => failed_page(page, e),
                };
                if let Some(f) = folder {
                    if let Err(e) = f.save(&fingerprint, &r) {
                        return Ok(DocumentResult { name: name.to_string(), pages: results, error: Some(e) });
                    }
                }
                r
            }
        };
        progress(Progress::Page {
            name: name.to_string(),
            page,
            done: i + 1,
            of: pages.len(),
            reused,
            failed: result.error.is_some(),
            ms: t0.elapsed().as_secs_f64() * 1e3,
            result: Box::new(result.clone()),
        });
        results.push(result);
    }
    Ok(DocumentResult { name: name.to_string(), pages: results, error: None })
}

fn failed_page(page: usize, error: String) -> PageResult {
    PageResult { page, error: Some(error), ..Default::default() }
}

/// What a stored page must have been read with to be reused: the settings, the model, and the
/// file as it was (size and modification time).
fn fingerprint(model: &dyn PageModel, s: &ReadSettings, dpi: u32, path: &Path) -> serde_json::Value {
    let (size, mtime_ns) = std::fs::metadata(path)
        .map(|m| {
            let ns = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            (m.len(), ns)
        })
        .unwrap_or((0, 0));
    serde_json::json!({
        "mode": s.mode, "lang": s.lang, "max_tokens": s.max_new_tokens, "max_pixels": s.max_pixels, "dpi": dpi,
        "model": model.traits().identity, "file_size": size, "file_mtime_ns": mtime_ns,
    })
}
