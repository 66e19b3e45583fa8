//! PDF pages as images, through poppler (Debian's `poppler-utils`: `pdfinfo` and `pdftoppm`).
//!
//! Why poppler, and why as processes: it is the renderer Debian maintains and every Linux
//! desktop uses (no PDF renderer in pure Rust reaches its fidelity; pdfium has no Debian
//! package, and MuPDF's bindings build a large C library into the binary). Running it per page
//! in a child process keeps a hostile or broken PDF from taking the daemon down with it: a crash
//! or a hang (killed after [`RENDER_TIMEOUT`]) fails that page, and memory is the child's. Pages
//! are rendered one at a time, so a 500-page document never sits in memory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use image::RgbImage;

use crate::child::{run_with_limit, ChildError, ChildOutput};
use crate::{CodecError, Result};

/// Longest a single page may take to render (a page of vector art at 300 dpi takes seconds).
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest `pdfinfo` may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(30);

/// What a PDF holds, from `pdfinfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct PdfInfo {
    pub pages: usize,
    /// Encrypted without a user password (owner restrictions only): readable.
    pub encrypted: bool,
    /// The first page's size in points (1/72 inch).
    pub page_size_pt: Option<(f64, f64)>,
}

fn pdf_error(path: &Path, problem: impl Into<String>) -> CodecError {
    CodecError::Pdf { source_name: path.display().to_string(), problem: problem.into() }
}

/// Reads the page count of `path`; a broken, password-protected or page-less PDF is an error
/// that says which.
pub fn pdf_info(path: &Path) -> Result<PdfInfo> {
    if !path.is_file() {
        return Err(CodecError::NotFound { source_name: path.display().to_string() });
    }
    let out = run(Command::new("pdfinfo").arg(path), path, INFO_TIMEOUT, "pdfinfo")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.success {
        return Err(pdf_error(path, explain(&stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let pages: usize = field("Pages:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| pdf_error(path, "pdfinfo reported no page count: not a readable PDF"))?;
    if pages == 0 {
        return Err(pdf_error(path, "the PDF has no pages"));
    }
    let page_size_pt = field("Page size:").and_then(|v| {
        let mut it = v.split_whitespace();
        let w: f64 = it.next()?.parse().ok()?;
        it.next().filter(|x| *x == "x")?;
        let h: f64 = it.next()?.parse().ok()?;
        Some((w, h))
    });
    Ok(PdfInfo { pages, encrypted: field("Encrypted:").is_some_and(|v| v.starts_with("yes")), page_size_pt })
}

/// Renders page `page` (1-based) at `dpi`, refusing a page that would exceed `max_pixels`
/// before rendering it.
pub fn render_page(path: &Path, page: usize, dpi: u32, max_pixels: u64) -> Result<RgbImage> {
    if !(18..=1200).contains(&dpi) {
        return Err(pdf_error(path, format!("{dpi} dpi: choose between 18 and 1200")));
    }
    if page == 0 {
        return Err(pdf_error(path, "page numbers start at 1"));
    }
    // The page's size at this resolution, from pdfinfo for this page, checked first.
    let out = run(
        Command::new("pdfinfo").args(["-f", &page.to_string(), "-l", &page.to_string()]).arg(path),
        path,
        INFO_TIMEOUT,
        "pdfinfo",
    )?;
    if !out.success {
        return Err(pdf_error(path, format!("page {page}: {}", explain(&String::from_utf8_lossy(&out.stderr)))));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let size = text.lines().find(|l| l.starts_with(&format!("Page {page:>4} size:")) || l.starts_with("Page size:"));
    if let Some((w, h)) = size.and_then(|l| {
        let v: Vec<f64> = l.split(':').nth(1)?.split_whitespace().filter_map(|t| t.parse().ok()).collect();
        (v.len() >= 2).then(|| (v[0], v[1]))
    }) {
        let px = (w * dpi as f64 / 72.0).ceil() * (h * dpi as f64 / 72.0).ceil();
        if px > max_pixels as f64 {
            return Err(pdf_error(
                path,
                format!(
                    "page {page} at {dpi} dpi would be {px:.0} pixels, over the limit of {max_pixels}: lower the dpi"
                ),
            ));
        }
    }
    let p = page.to_string();
    let out = run(
        // PPM (pdftoppm's default): raw pixels, no compressing and decompressing per page.
        Command::new("pdftoppm").args(["-f", &p, "-l", &p, "-r", &dpi.to_string()]).arg(path),
        path,
        RENDER_TIMEOUT,
        "pdftoppm",
    )?;
    if !out.success || out.stdout.is_empty() {
        let why = explain(&String::from_utf8_lossy(&out.stderr));
        return Err(pdf_error(path, format!("page {page} could not be rendered: {why}")));
    }
    let img = image::load_from_memory_with_format(&out.stdout, image::ImageFormat::Pnm)
        .map_err(|e| pdf_error(path, format!("page {page}: the renderer's image does not decode: {e}")))?;
    Ok(img.to_rgb8())
}

/// Writes a US-letter PDF with `pages` of text lines in Helvetica at `size_pt`, the first
/// baseline 92 pt from the top and the left margin at 72 pt, lines 1.25 × the size apart (test
/// documents and the OCR benchmark's).
pub fn write_text_pdf(path: &Path, pages: &[Vec<String>], size_pt: f64) -> std::io::Result<()> {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
    let mut objs = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len()).map(|i| format!("{} 0 R", 4 + 2 * i)).collect::<Vec<_>>().join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    for (i, lines) in pages.iter().enumerate() {
        let leading = size_pt * 1.25;
        let body: String = lines.iter().map(|l| format!("({}) Tj 0 -{leading:.2} Td ", escape(l))).collect();
        let content = format!("BT /F1 {size_pt} Tf 72 700 Td {body}ET");
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objs.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
    }
    let objs: Vec<Vec<u8>> = objs.into_iter().map(String::into_bytes).collect();
    std::fs::write(path, assemble_pdf(&objs))
}

/// A PDF 1.4 file of `objects` (numbered from 1, the first the catalog) with its cross-reference
/// table and trailer.
pub fn assemble_pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// The renderer's complaint in words.
fn explain(stderr: &str) -> String {
    if stderr.contains("Incorrect password") {
        return "the PDF is encrypted and needs a password to open".into();
    }
    if stderr.contains("Invalid page count 0") {
        return "the PDF has no pages".into();
    }
    if stderr.contains("Wrong page range") {
        return "the document has fewer pages".into();
    }
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("Syntax Warning"));
    match first {
        Some(l) => format!("not a readable PDF ({l})"),
        None => "not a readable PDF".into(),
    }
}

/// Runs a poppler tool with a time limit.
fn run(cmd: &mut Command, path: &Path, limit: Duration, tool: &str) -> Result<ChildOutput> {
    run_with_limit(cmd, limit).map_err(|e| {
        pdf_error(
            path,
            match e {
                ChildError::NotInstalled => {
                    format!("{tool} is not installed (Debian package poppler-utils); PDFs need it")
                }
                ChildError::Spawn(e) => format!("cannot run {tool}: {e}"),
                ChildError::TimedOut => format!("{tool} took longer than {} s; stopped", limit.as_secs()),
                ChildError::Wait(e) => format!("{tool}: {e}"),
            },
        )
    })
}
