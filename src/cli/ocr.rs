//! `omnid ocr INPUT...`: images, multi-page TIFFs, PDFs and folders of them read into text,
//! lines with boxes, Markdown, HTML or JSON. With `--out DIR` each document gets a folder
//! (`DIR/<name>/`) where every page's result and searchable-text sidecar is written as it
//! finishes, and the document's results once all its pages are in; running the same command
//! again after an interruption reuses the pages already read. Without `--out` the results go
//! to stdout. A file that cannot be read is reported and the others still complete; the exit
//! status is 1 when any page or file failed.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::{load_model, ModelArgs};
use crate::config::OmnidConfig;
use crate::ocr::document::{collect_inputs, DEFAULT_DPI};
use crate::ocr::formats;
use crate::ocr::local_model::EnginePageModel;
use crate::ocr::mode::{check_lang, Mode};
use crate::ocr::page_range::PageRange;
use crate::ocr::page_store::{render, DocFolder};
use crate::ocr::runner::{read_document, DocumentResult, OcrRequest, Progress};

/// Arguments of `omnid ocr`.
#[derive(Debug, clap::Args)]
pub struct OcrArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Images, TIFFs, PDFs, or folders of them (walked in name order).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// text, lines (text + hOCR with a box per line), markdown, html (with data-bbox) or json.
    #[arg(long, default_value = "text", value_parser = |s: &str| s.parse::<Mode>())]
    pub mode: Mode,
    /// The language of the text, as a hint to the model ("German", "zh").
    #[arg(long, value_parser = |s: &str| check_lang(s))]
    pub lang: Option<String>,
    /// Pages to read: 1-5,8,12- (default all).
    #[arg(long, value_parser = |s: &str| PageRange::parse(s))]
    pub pages: Option<PageRange>,
    /// Resolution PDF pages are rendered at.
    #[arg(long, default_value_t = DEFAULT_DPI)]
    pub dpi: u32,
    /// Write per-page results and the final files under this folder (resumable), not stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Tokens the model may write per page or tile (default 4096, at most half the context).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Pixels per image given to the model. Larger pages are tiled (text, lines, json; default:
    /// the model's budget) or shrunk (markdown, html; default 2048·32·32, the Qwen3-VL
    /// document-parsing cookbook's).
    #[arg(long)]
    pub max_pixels: Option<u64>,
}

/// Runs `omnid ocr`.
pub fn run(args: OcrArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    let inputs = collect_inputs(&args.inputs).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!inputs.is_empty(), "no images, TIFFs or PDFs found in {:?}", args.inputs);
    let req = OcrRequest {
        mode: args.mode,
        lang: args.lang.clone(),
        pages: args.pages.clone().unwrap_or_default(),
        dpi: args.dpi,
        max_new_tokens: args.max_tokens,
        max_pixels: args.max_pixels,
        max_pages: None,
    };
    let lm = Arc::new(load_model(&args.model, cfg)?);
    let engine = super::start_single_engine(&lm)?;
    let model = EnginePageModel::new(lm, engine);
    let stop = AtomicBool::new(false);
    let mut bar = Bar::new(std::io::stderr().is_terminal());
    let mut used_names = HashSet::new();
    let mut printed = Vec::new();
    let mut failures = 0usize;
    for (path, name) in &inputs {
        let folder = match &args.out {
            Some(out) => match DocFolder::create(&out.join(unique(name, &mut used_names))) {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("omnid: {e}");
                    failures += 1;
                    continue;
                }
            },
            None => None,
        };
        let result = read_document(&model, path, name, &req, folder.as_ref(), &mut |p| bar.show(&p), &stop)
            .map_err(|_| anyhow::anyhow!("interrupted"))?;
        bar.finish();
        for f in result.failures() {
            // Errors about the file itself already name it.
            if f.starts_with(&path.display().to_string()) {
                eprintln!("omnid: {f}");
            } else {
                eprintln!("omnid: {name}: {f}");
            }
            failures += 1;
        }
        match &folder {
            Some(folder) if result.error.is_none() => {
                match folder.write_results(args.mode, &path.display().to_string(), &result.pages) {
                    Ok(files) => {
                        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                        eprintln!("omnid: {name}: {} page(s) → {}", result.pages.len(), files.join(", "));
                    }
                    Err(e) => {
                        eprintln!("omnid: {name}: {e}");
                        failures += 1;
                    }
                }
            }
            Some(folder) => {
                // Nothing was read: leave no empty folder behind (fails harmlessly when pages were stored).
                let _ = std::fs::remove_dir(folder.dir());
            }
            None => printed.push((path.display().to_string(), result)),
        }
    }
    if args.out.is_none() {
        print_results(args.mode, &printed)?;
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `name`, or `name-2`, `name-3`… when two inputs share a name.
fn unique(name: &str, used: &mut HashSet<String>) -> String {
    let mut candidate = name.to_string();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

/// Results on stdout: one document as its mode's format; several as a JSON array (json mode)
/// or one after another under `==> name <==` headers.
fn print_results(mode: Mode, docs: &[(String, DocumentResult)]) -> anyhow::Result<()> {
    let readable: Vec<&(String, DocumentResult)> = docs.iter().filter(|(_, d)| d.error.is_none()).collect();
    let mut out = std::io::stdout().lock();
    match (mode, readable.as_slice()) {
        (_, []) => {}
        (_, [(source, d)]) => out.write_all(render(mode, source, &d.pages).as_bytes())?,
        (Mode::Json, many) => {
            let all: Vec<serde_json::Value> = many.iter().map(|(s, d)| formats::json_value(s, &d.pages)).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        }
        (_, many) => {
            for (source, d) in many {
                writeln!(out, "==> {source} <==")?;
                out.write_all(render(mode, source, &d.pages).as_bytes())?;
            }
        }
    }
    Ok(())
}

/// Progress on stderr: redrawn in place on a terminal, one line per page otherwise.
struct Bar {
    tty: bool,
    started: Instant,
    drawn: bool,
}

impl Bar {
    fn new(tty: bool) -> Self {
        Self { tty, started: Instant::now(), drawn: false }
    }

    fn show(&mut self, p: &Progress) {
        match p {
            Progress::Started { name, pages } => {
                self.started = Instant::now();
                eprintln!("omnid: reading {name}: {pages} page(s)");
            }
            Progress::Page { name, page, done, of, reused, failed, ms, .. } => {
                let width = 30;
                let filled = width * done / of.max(&1);
                let eta = self.started.elapsed().as_secs_f64() / *done as f64 * (of - done) as f64;
                let how = if *failed {
                    "failed".to_string()
                } else if *reused {
                    "stored earlier".to_string()
                } else {
                    format!("{:.1} s", ms / 1e3)
                };
                let line = format!(
                    "[{}{}] {name} page {page} ({done}/{of}) {how}, eta {eta:.0} s",
                    "#".repeat(filled),
                    ".".repeat(width - filled)
                );
                if self.tty {
                    eprint!("\r{line}\x1b[K");
                    self.drawn = true;
                } else {
                    eprintln!("{line}");
                }
            }
        }
    }

    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
