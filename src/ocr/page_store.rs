//! A document's results on disk as they finish, so that an interrupted run resumes: one folder
//! per document with `page-0001.json` (the page's result and the settings it was read with) and
//! `page-0001.txt` (its searchable text, the sidecar indexers take) per page, written atomically
//! (a temporary file renamed over), and the whole document's results (`result.<ext>`, plus
//! `result.hocr` for modes with boxes) once every page is in.

use std::path::{Path, PathBuf};

use super::formats::{self, PageResult};
use super::mode::Mode;

/// One document's output folder.
pub struct DocFolder {
    dir: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PageRecord {
    /// What the page was read with: a resumed run reuses it only under the same.
    settings: serde_json::Value,
    result: PageResult,
}

impl DocFolder {
    pub fn create(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the output folder: {e}", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn page_path(&self, page: usize, ext: &str) -> PathBuf {
        self.dir.join(format!("page-{page:04}.{ext}"))
    }

    /// The stored result of `page` if it was read with `settings` and did not fail.
    pub fn load(&self, page: usize, settings: &serde_json::Value) -> Option<PageResult> {
        let text = std::fs::read_to_string(self.page_path(page, "json")).ok()?;
        let rec: PageRecord = serde_json::from_str(&text).ok()?;
        (rec.settings == *settings && rec.result.error.is_none()).then_some(rec.result)
    }

    /// Stores a page's result and its text sidecar.
    pub fn save(&self, settings: &serde_json::Value, result: &PageResult) -> Result<(), String> {
        let rec = PageRecord { settings: settings.clone(), result: result.clone() };
        let json = serde_json::to_string_pretty(&rec).expect("a page record serialises");
        write_atomic(&self.page_path(result.page, "txt"), formats::page_text(result).as_bytes())?;
        write_atomic(&self.page_path(result.page, "json"), json.as_bytes())
    }

    /// Writes the document's results; returns the files written.
    pub fn write_results(&self, mode: Mode, source: &str, pages: &[PageResult]) -> Result<Vec<PathBuf>, String> {
        let mut written = Vec::new();
        let main = self.dir.join(format!("result.{}", mode.extension()));
        write_atomic(&main, render(mode, source, pages).as_bytes())?;
        written.push(main);
        if matches!(mode, Mode::Lines | Mode::Json) {
            let hocr = self.dir.join("result.hocr");
            write_atomic(&hocr, formats::hocr(source, pages).as_bytes())?;
            written.push(hocr);
        }
        Ok(written)
    }
}

/// A document's result in its mode's main format.
pub fn render(mode: Mode, source: &str, pages: &[PageResult]) -> String {
    match mode {
        Mode::Text | Mode::Lines => formats::text(pages),
        Mode::Markdown => formats::document(pages, false),
        Mode::Html => formats::document(pages, true),
        Mode::Json => formats::json(source, pages),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension(format!(
        "{}.part",
        path.extension().map_or_else(String::new, |e| e.to_string_lossy().into_owned())
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| format!("{}: cannot write: {e}", path.display()))
}
