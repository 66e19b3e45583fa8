//! Command-line interface: argument types and the subcommands.
//!
//! | subcommand | job |
//! |---|---|
//! | `agent` | the GUI agent on an X11 display or a phone: steps checked, logged, stoppable |
//! | `analyze` | a video job: timed events over a long video, resumable with `--db` |
//! | `ask` | one question with text, images, audio and video → streamed answer (or `--json`) |
//! | `bench` | prefill/decode throughput and peak memory of a model |
//! | `bench-agent` | agent steps on a display (a dry run): seconds per step by stage |
//! | `bench-analyze` | a video job's wall time per hour of video by stage, and peak memory |
//! | `bench-ocr` | OCR of a many-page PDF: pages per minute by stage, peak memory per page |
//! | `bench-speech` | first-audio latency, real-time factor and per-stage times of spoken answers |
//! | `quantize` | quantize a checkpoint once into a directory with one `model.gguf` |
//! | `ocr` | images, TIFFs, PDFs and folders read into text, lines with boxes, Markdown, HTML, JSON |
//! | `serve` | the OpenAI-compatible HTTP API (`/v1/chat/completions`, `/v1/models`, `/health`) |
//! | `check` | open a model directory and report what was found, without generating |
//! | `config-check` | validate `configs/*.toml` files |
//! | `probe` | what a media file holds (container, streams, duration) |
//! | `devices` | microphones, speakers, screens and cameras, and what is absent |
//! | `capture` | record the microphone to WAV, or a screen / camera to a folder of frames |

mod agent;
mod analyze;
mod ask;
mod bench;
mod bench_agent;
mod bench_analyze;
mod bench_load;
mod bench_model;
mod bench_ocr;
mod bench_speech;
mod check;
#[cfg(feature = "cuda")]
mod gpu_selftest;
mod media;
mod ocr;
mod quantize;
mod serve;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::OmnidConfig;

/// omnid — Qwen3-Omni and Qwen3-VL in one Rust binary.
#[derive(Debug, Parser)]
#[command(name = "omnid", version, about)]
pub struct Cli {
    /// TOML configuration (see configs/); command-line flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the model comes from and how it is held.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json, …).
    /// Without it (here or in the config) omnid builds its embedded tiny random-weight model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Weight/activation dtype: auto (f32 on the CPU), f32, bf16, f16 (default: the config's, else auto).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Quantize the weights as they load: q8_0, q6_k or q4_k, optionally followed by per-class
    /// overrides, e.g. `q4_k,attention=q8_0,encoder=dense` (classes: experts, attention, ffn,
    /// embedding, head, encoder, codec). A `model.gguf` from `omnid quantize` is already quantized.
    #[arg(long, value_name = "SCHEME")]
    pub quant: Option<String>,
    /// Where the model runs: cpu, or cuda / cuda:N in a build with the `cuda` feature
    /// (default: the config's, else cpu).
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
}

impl ModelArgs {
    /// The quantization plan of `--quant`, else of the config's `[model] quant`.
    pub fn quant_plan(&self, cfg: &OmnidConfig) -> anyhow::Result<Option<crate::models::quant::plan::QuantPlan>> {
        match self.quant.as_ref().or(cfg.model.quant.as_ref()) {
            Some(spec) => Ok(Some(
                crate::models::quant::plan::QuantPlan::parse(spec).map_err(|e| anyhow::anyhow!("--quant: {e}"))?,
            )),
            None => Ok(None),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask one question; media go into the user turn in command-line order, the prompt last.
    Ask(Box<ask::AskArgs>),
    /// Let the model drive an X11 display (or a phone through adb) towards a goal, step by step.
    Agent(Box<agent::AgentArgs>),
    /// Analyse a long video window by window: timed events as JSON, SRT, WebVTT or Markdown.
    Analyze(Box<analyze::AnalyzeArgs>),
    /// Read images, TIFFs, PDFs and folders of them: text, lines with boxes, Markdown, HTML, JSON.
    Ocr(Box<ocr::OcrArgs>),
    /// Measure prefill and decode speed and peak memory.
    Bench(bench::BenchArgs),
    /// Measure agent steps on an X display (a dry run): seconds per step by stage, peak memory.
    BenchAgent(Box<bench_agent::BenchAgentArgs>),
    /// Measure a video job: wall time per hour of video (decode, encoders, generation) and peak memory.
    BenchAnalyze(Box<bench_analyze::BenchAnalyzeArgs>),
    /// Measure OCR of a many-page PDF: pages per minute (render, encoders, generation), peak memory.
    BenchOcr(Box<bench_ocr::BenchOcrArgs>),
    /// Measure first-audio latency and real-time factor of spoken answers, per stage.
    BenchSpeech(Box<bench_speech::BenchSpeechArgs>),
    /// Measure N concurrent Realtime voice sessions: first audio p50/p95, real-time factor, the
    /// highest N that stays real-time.
    BenchLoad(Box<bench_load::BenchLoadArgs>),
    /// Quantize a checkpoint once (q8_0, q6_k, q4_k, per-class overrides) into a directory that
    /// `--model` loads without re-quantizing: model.gguf plus the checkpoint's config and tokenizer files.
    Quantize(Box<quantize::QuantizeArgs>),
    /// Check the GPU for omnid (builds with the `cuda` feature): a matmul against the CPU, bf16
    /// throughput, omnid's kernels against their CPU definitions, the tiny model on both devices.
    /// Exits non-zero unless every check passes.
    #[cfg(feature = "cuda")]
    GpuSelftest,
    /// Serve the OpenAI-compatible HTTP API.
    Serve(Box<serve::ServeArgs>),
    /// Open a model directory and print what omnid understood of it.
    Check(check::CheckArgs),
    /// Print what media files hold (one JSON line per file).
    Probe(media::ProbeArgs),
    /// List audio devices, screens and cameras, and say which are absent.
    Devices,
    /// Record the microphone to a WAV file, or a screen / camera / test source to a folder of frames.
    Capture(media::CaptureArgs),
    /// Validate configuration files (also `omnid check-config`).
    #[command(alias = "check-config")]
    ConfigCheck {
        /// The TOML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Parses and runs a command line.
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches)?;
    let cfg = match &cli.config {
        Some(path) => OmnidConfig::from_file(path)?,
        None => OmnidConfig::default(),
    };
    match cli.command {
        Command::Ask(a) => {
            let sub = matches.subcommand_matches("ask").expect("clap routed to ask; this is a bug");
            ask::run(*a, sub, &cfg)
        }
        Command::Agent(a) => agent::run(*a, &cfg),
        Command::Analyze(a) => analyze::run(*a, &cfg),
        Command::Ocr(o) => ocr::run(*o, &cfg),
        Command::Bench(b) => bench::run(b, &cfg),
        Command::BenchAgent(b) => bench_agent::run(*b, &cfg),
        Command::BenchAnalyze(b) => bench_analyze::run(*b, &cfg),
        Command::BenchOcr(b) => bench_ocr::run(*b, &cfg),
        Command::BenchSpeech(b) => bench_speech::run(*b, &cfg),
        Command::BenchLoad(b) => bench_load::run(*b, &cfg),
        Command::Quantize(q) => quantize::run(*q, &cfg),
        #[cfg(feature = "cuda")]
        Command::GpuSelftest => gpu_selftest::run(),
        Command::Serve(s) => serve::run_serve(*s, &cfg),
        Command::Check(c) => check::run(c, &cfg),
        Command::Probe(p) => media::probe(&p),
        Command::Devices => media::devices(),
        Command::Capture(c) => media::capture(&c),
        Command::ConfigCheck { files } => {
            for f in &files {
                OmnidConfig::from_file(f)?;
                println!("{}: ok", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logging to stderr, `RUST_LOG` to tune (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The engine thread for a command that runs one piece of batch work at a time in this process
/// (`analyze`, `ocr`, `agent` and their benchmarks): one slot, nothing queued behind it.
pub(crate) fn start_single_engine(
    lm: &std::sync::Arc<crate::engine::model_dir::LoadedModel>,
) -> anyhow::Result<std::sync::Arc<crate::engine::service::EngineService>> {
    use crate::engine::service::{EngineService, ServiceLimits};
    let limits = ServiceLimits { queue_capacity: 1, max_batch: 1 };
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    Ok(std::sync::Arc::new(EngineService::start(lm.clone(), limits, metrics)?))
}

/// Opens `--model` (or the config's model) or builds the embedded model, quantized as `--quant`
/// says, and applies the config's limits and video budget.
pub(crate) fn load_model(args: &ModelArgs, cfg: &OmnidConfig) -> anyhow::Result<crate::engine::model_dir::LoadedModel> {
    use crate::engine::model_dir::{DTypeChoice, LoadedModel};
    let dev = crate::models::device::open(args.device.as_deref().unwrap_or(&cfg.model.device))
        .map_err(|e| anyhow::anyhow!("device (--device or [model] device): {e}"))?;
    let dtype = DTypeChoice::parse(args.dtype.as_deref().unwrap_or(&cfg.model.dtype)).map_err(anyhow::Error::msg)?;
    let quant = args.quant_plan(cfg)?;
    let mut lm = match args.model.as_ref().or(cfg.model.path.as_ref()) {
        Some(dir) => LoadedModel::open_with(dir, dtype, &dev, quant.as_ref(), false)?.0,
        None => {
            let d = match dtype {
                DTypeChoice::Exact(d) => d,
                DTypeChoice::Auto => candle_core::DType::F32,
            };
            use crate::engine::embedded::{load_synthetic_quantized, EmbeddedSize};
            load_synthetic_quantized(&EmbeddedSize::Tiny, d, &dev, quant.as_ref())?
        }
    };
    lm.processor.image.max_input_pixels = cfg.limits.max_input_pixels;
    lm.processor.video.max_input_pixels = cfg.limits.max_input_pixels;
    if let Some(p) = cfg.video.min_pixels {
        lm.processor.video.pixels.min_pixels = p;
    }
    if let Some(p) = cfg.video.max_pixels {
        lm.processor.video.pixels.max_pixels = p;
    }
    Ok(lm)
}
