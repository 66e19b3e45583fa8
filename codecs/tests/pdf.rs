//! PDF pages through poppler: page counts, pages rendered at a resolution with the text where
//! the PDF draws it, and every broken input refused with its reason. The PDFs are written by
//! the test (a few objects of PDF 1.4 with the standard Helvetica font); qpdf (Debian) encrypts one.

use std::path::{Path, PathBuf};
use std::process::Command;

use omnid_codecs::pdf::{pdf_info, render_page, write_text_pdf};
use omnid_codecs::CodecError;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnid-pdf-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A letter-size PDF with one line of 24 pt text per page, drawn at (72 pt, 700 pt) from the
/// bottom left: on a 72 dpi rendering its baseline lies 92 px from the top.
fn write_pdf(path: &Path, pages: &[&str]) {
    let pages: Vec<Vec<String>> = pages.iter().map(|p| vec![p.to_string()]).collect();
    write_text_pdf(path, &pages, 24.0).unwrap();
}

#[test]
fn pages_are_counted_and_rendered_with_the_text_where_the_pdf_draws_it() {
    let dir = scratch("render");
    let pdf = dir.join("two.pdf");
    write_pdf(&pdf, &["Hello page one", "Second"]);
    let info = pdf_info(&pdf).unwrap();
    assert_eq!((info.pages, info.encrypted, info.page_size_pt), (2, false, Some((612.0, 792.0))));
    let page = render_page(&pdf, 2, 72, 10_000_000).unwrap();
    assert_eq!(page.dimensions(), (612, 792));
    // Dark pixels: only in the text's band (cap height above the 92 px baseline), from x = 72 on.
    let dark: Vec<(u32, u32)> =
        page.enumerate_pixels().filter(|(_, _, p)| p[0] < 128).map(|(x, y, _)| (x, y)).collect();
    assert!(dark.len() > 100, "{} dark pixels", dark.len());
    assert!(dark.iter().all(|&(x, y)| (72..200).contains(&x) && (70..100).contains(&y)), "text outside its place");
    // "Second" is shorter than "Hello page one": page 1's text reaches further right.
    let right = |img: &image::RgbImage| img.enumerate_pixels().filter(|(_, _, p)| p[0] < 128).map(|(x, ..)| x).max();
    assert!(right(&render_page(&pdf, 1, 72, 10_000_000).unwrap()) > right(&page));
    // 150 dpi: the size scales.
    assert_eq!(render_page(&pdf, 1, 150, 10_000_000).unwrap().dimensions(), (1275, 1650));
}

/// The error's message (the call must fail).
fn message<T: std::fmt::Debug>(r: Result<T, CodecError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn broken_encrypted_empty_and_oversized_inputs_are_refused_with_the_reason() {
    let dir = scratch("bad");
    let garbage = dir.join("garbage.pdf");
    std::fs::write(&garbage, b"this is not a PDF").unwrap();
    assert!(message(pdf_info(&garbage)).contains("not a readable PDF"));
    assert!(message(pdf_info(&dir.join("missing.pdf"))).contains("file not found"));
    let empty = dir.join("empty.pdf");
    write_pdf(&empty, &[]);
    assert!(message(pdf_info(&empty)).contains("has no pages"));
    let one = dir.join("one.pdf");
    write_pdf(&one, &["x"]);
    assert!(message(render_page(&one, 1, 600, 1_000_000)).contains("over the limit of 1000000"));
    assert!(message(render_page(&one, 1, 5, 1_000_000)).contains("choose between 18 and 1200"));
    assert!(message(render_page(&one, 0, 72, 1_000_000)).contains("start at 1"));
    assert!(message(render_page(&one, 2, 72, 10_000_000)).contains("page 2: the document has fewer pages"));
    // A user password: refused as encrypted (qpdf from Debian writes it).
    let locked = dir.join("locked.pdf");
    let made = Command::new("qpdf")
        .args(["--encrypt", "secret", "owner", "256", "--"])
        .arg(&one)
        .arg(&locked)
        .status()
        .expect("this test needs qpdf (scripts/install-deps.sh)");
    assert!(made.success());
    assert!(message(pdf_info(&locked)).contains("encrypted and needs a password"), "{}", message(pdf_info(&locked)));
    // Owner restrictions only (no user password): readable, reported as encrypted.
    let restricted = dir.join("restricted.pdf");
    assert!(Command::new("qpdf")
        .args(["--encrypt", "", "owner", "256", "--"])
        .arg(&one)
        .arg(&restricted)
        .status()
        .unwrap()
        .success());
    let info = pdf_info(&restricted).unwrap();
    assert!(info.encrypted && info.pages == 1);
    assert_eq!(render_page(&restricted, 1, 72, 10_000_000).unwrap().dimensions(), (612, 792));
}
