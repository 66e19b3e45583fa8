//! `omnid bench-ocr`: OCR of a many-page PDF through the same path as `omnid ocr` and
//! `POST /v1/ocr` (poppler renders each page, the vision encoder runs on the reading thread, the
//! engine thread generates), reporting pages per minute, the time per page split into
//! rendering, encoders and generation, and the peak resident memory after each page — which must
//! stay flat as pages go by. Without `--pdf` it writes its own document: US-letter pages of
//! 11 pt Helvetica text, 40 lines each.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::bench::peak_rss_bytes;
use super::bench_model::BenchModelArgs;
use crate::config::OmnidConfig;
use crate::ocr::local_model::EnginePageModel;
use crate::ocr::mode::Mode;
use crate::ocr::runner::{read_document, OcrRequest, Progress};

/// Arguments of `omnid bench-ocr`.
#[derive(Debug, clap::Args)]
pub struct BenchOcrArgs {
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// Read this PDF instead of a generated one.
    #[arg(long)]
    pub pdf: Option<PathBuf>,
    /// Pages of the generated document.
    #[arg(long, default_value_t = 50)]
    pub pages: usize,
    /// Rendering resolution.
    #[arg(long, default_value_t = crate::ocr::document::DEFAULT_DPI)]
    pub dpi: u32,
    /// Tokens written per page or tile.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// OCR mode.
    #[arg(long, default_value = "lines", value_parser = |s: &str| s.parse::<Mode>())]
    pub mode: Mode,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Words of the generated pages (their text only needs to look like text to the renderer).
const WORDS: [&str; 24] = [
    "the", "model", "reads", "every", "page", "of", "this", "document", "and", "writes", "its", "lines", "with",
    "boxes", "in", "reading", "order", "while", "memory", "stays", "flat", "across", "many", "pages",
];

/// A generated document: `pages` US-letter pages of 40 lines (deterministic text).
fn write_document(path: &std::path::Path, pages: usize) -> std::io::Result<()> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let doc: Vec<Vec<String>> = (0..pages)
        .map(|p| {
            let mut lines = vec![format!("Page {} of {pages}", p + 1)];
            lines.extend((0..39).map(|_| {
                (0..9 + next() % 4).map(|_| WORDS[(next() % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
            }));
            lines
        })
        .collect();
    omnid_codecs::pdf::write_text_pdf(path, &doc, 11.0)
}

/// Runs `omnid bench-ocr`.
pub fn run(args: BenchOcrArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    let scratch = std::env::temp_dir().join(format!("omnid-bench-ocr-{}", std::process::id()));
    let pdf = match &args.pdf {
        Some(p) => p.clone(),
        None => {
            anyhow::ensure!(args.pages >= 1, "--pages must be at least 1");
            std::fs::create_dir_all(&scratch)?;
            let p = scratch.join("document.pdf");
            write_document(&p, args.pages)?;
            p
        }
    };
    let result = bench(&args, cfg, &pdf);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn bench(args: &BenchOcrArgs, cfg: &OmnidConfig, pdf: &std::path::Path) -> anyhow::Result<ExitCode> {
    let lm = Arc::new(args.model.load(cfg)?);
    let described = args.model.describe(&lm);
    let rss_model = peak_rss_bytes();
    let engine = super::start_single_engine(&lm)?;
    let model = EnginePageModel::new(lm, engine);
    let budget = crate::ocr::runner::read_settings(
        &model,
        &OcrRequest { max_new_tokens: Some(args.max_tokens), ..Default::default() },
    )
    .map_err(anyhow::Error::msg)?
    .max_pixels;
    let req =
        OcrRequest { mode: args.mode, dpi: args.dpi, max_new_tokens: Some(args.max_tokens), ..Default::default() };
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    let mut peaks = Vec::new();
    let mut load_ms = 0.0;
    let mut track = |p: Progress| {
        if let Progress::Page { ms, result, .. } = p {
            load_ms += ms - result.encode_ms - result.generate_ms;
            peaks.push(mb(peak_rss_bytes().unwrap_or(0)));
        }
    };
    let t0 = Instant::now();
    let stop = AtomicBool::new(false);
    let doc = read_document(&model, pdf, "bench", &req, None, &mut track, &stop)
        .map_err(|_| anyhow::anyhow!("interrupted"))?;
    let wall_s = t0.elapsed().as_secs_f64();
    if let Some(e) = &doc.error {
        anyhow::bail!("{e}");
    }
    if let Some(f) = doc.failures().first() {
        anyhow::bail!("{f}");
    }
    let pages = doc.pages.len();
    let sum = |f: fn(&crate::ocr::formats::PageResult) -> f64| doc.pages.iter().map(f).sum::<f64>() / 1e3;
    let (encode_s, generate_s) = (sum(|p| p.encode_ms), sum(|p| p.generate_ms));
    let first = &doc.pages[0];
    let report = serde_json::json!({
        "model": described,
        "pdf": pdf.display().to_string(),
        "pages": pages,
        "dpi": args.dpi,
        "mode": args.mode,
        "page_pixels": [first.width, first.height],
        "tiles_per_page": first.tiles,
        "max_pixels_per_image": budget,
        "prompt_tokens": doc.pages.iter().map(|p| p.prompt_tokens).sum::<usize>(),
        "completion_tokens": doc.pages.iter().map(|p| p.completion_tokens).sum::<usize>(),
        "wall_s": wall_s,
        "pages_per_min": pages as f64 / wall_s * 60.0,
        "render_s": load_ms / 1e3,
        "encode_s": encode_s,
        "generate_s": generate_s,
        "s_per_page": {"render": load_ms / 1e3 / pages as f64, "encode": encode_s / pages as f64, "generate": generate_s / pages as f64},
        "peak_rss_mb_after_load": rss_model.map(mb),
        "peak_rss_mb": peak_rss_bytes().map(mb),
        "peak_rss_mb_by_page": peaks,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{described}\n{pages} pages at {} dpi ({} × {} px, {} tile(s) each of at most {budget} px): {wall_s:.1} s, {:.2} pages/min \
             (per page: render {:.2} s, encoders {:.2} s, generation {:.2} s); peak memory {:.0} MB ({:.0} MB after loading)",
            args.dpi,
            first.width,
            first.height,
            first.tiles,
            pages as f64 / wall_s * 60.0,
            load_ms / 1e3 / pages as f64,
            encode_s / pages as f64,
            generate_s / pages as f64,
            peak_rss_bytes().map_or(0.0, mb),
            rss_model.map_or(0.0, mb),
        );
    }
    Ok(ExitCode::SUCCESS)
}
