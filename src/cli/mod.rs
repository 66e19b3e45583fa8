//! Command-line interface: argument types and the subcommands.
//!
//! | subcommand | job |
//! |---|---|
//! | `ask` | one question with text, images, audio and video → streamed answer (or `--json`) |
//! | `bench` | prefill/decode throughput and peak memory of a model |
//! | `check` | open a model directory and report what was found, without generating |
//! | `gpu-selftest` | (CUDA builds) prove the GPU path works on this machine |

mod ask;
mod bench;
mod check;
#[cfg(feature = "cuda")]
mod gpu_selftest;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// omnid — Qwen3-Omni and Qwen3-VL in one Rust binary.
#[derive(Debug, Parser)]
#[command(name = "omnid", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the model comes from and how it is held.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json, …).
    /// Without it omnid builds its embedded tiny random-weight model.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Weight/activation dtype: auto (f32 on CPU, bf16 on CUDA), f32, bf16, f16.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// Run on the first CUDA GPU (builds with the `cuda` feature).
    #[arg(long)]
    pub cuda: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask one question; media go into the user turn in command-line order, the prompt last.
    Ask(ask::AskArgs),
    /// Measure prefill and decode speed and peak memory.
    Bench(bench::BenchArgs),
    /// Open a model directory and print what omnid understood of it.
    Check(check::CheckArgs),
    /// Check that the CUDA path works (CUDA builds only).
    #[cfg(feature = "cuda")]
    GpuSelftest,
}

/// Parses and runs a command line.
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches)?;
    match cli.command {
        Command::Ask(a) => {
            let sub = matches.subcommand_matches("ask").expect("clap routed to ask; this is a bug");
            ask::run(a, sub)
        }
        Command::Bench(b) => bench::run(b),
        Command::Check(c) => check::run(c),
        #[cfg(feature = "cuda")]
        Command::GpuSelftest => gpu_selftest::run(),
    }
}

/// Logging to stderr, `RUST_LOG` to tune (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub(crate) fn device(cuda: bool) -> anyhow::Result<candle_core::Device> {
    if cuda {
        #[cfg(feature = "cuda")]
        return Ok(candle_core::Device::new_cuda(0)?);
        #[cfg(not(feature = "cuda"))]
        anyhow::bail!("--cuda: this omnid was built without the `cuda` feature");
    }
    Ok(candle_core::Device::Cpu)
}

/// Opens `--model` or builds the embedded model.
pub(crate) fn load_model(args: &ModelArgs) -> anyhow::Result<crate::engine::model_dir::LoadedModel> {
    use crate::engine::model_dir::{DTypeChoice, LoadedModel};
    let dev = device(args.cuda)?;
    let dtype = DTypeChoice::parse(&args.dtype).map_err(anyhow::Error::msg)?;
    Ok(match &args.model {
        Some(dir) => LoadedModel::open(dir, dtype, &dev)?,
        None => {
            let d = match dtype {
                DTypeChoice::Exact(d) => d,
                DTypeChoice::Auto => candle_core::DType::F32,
            };
            crate::engine::embedded::load_embedded(d, &dev)?
        }
    })
}
