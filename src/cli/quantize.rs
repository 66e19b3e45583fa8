//! `omnid quantize --model DIR --quant q4_k --out DIR`: quantizes a checkpoint once and writes a
//! model directory that loads without the original weights and without re-quantizing: the
//! checkpoint's config, tokenizer, template and processor files, and one `model.gguf`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use super::bench::peak_rss_bytes;
use crate::config::OmnidConfig;
use crate::engine::model_dir::{DTypeChoice, LoadedModel};
use crate::models::quant::plan::{format_name, QuantPlan, TensorClass};
use crate::models::quant::store;
use crate::models::weights::Recorded;

/// Arguments of `omnid quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// The Hugging Face checkpoint directory to quantize.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// q8_0, q6_k or q4_k, optionally with per-class overrides (see `omnid ask --help`).
    #[arg(long, value_name = "SCHEME")]
    pub quant: String,
    /// Directory to write (created if missing; must not be the checkpoint's).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a model.gguf already in --out.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Files of a checkpoint directory that hold weights (not copied: model.gguf replaces them).
fn is_weight_file(name: &str) -> bool {
    name.ends_with(".safetensors")
        || name == "model.safetensors.index.json"
        || name == store::FILE_NAME
        || name.ends_with(".bin")
        || name.ends_with(".pt")
}

/// Runs `omnid quantize`.
pub fn run(args: QuantizeArgs, _cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    let plan = QuantPlan::parse(&args.quant).map_err(|e| anyhow::anyhow!("--quant: {e}"))?;
    check_out_dir(&args.model, &args.out, args.force)?;
    let start = Instant::now();
    // f32: quantization reads f32 rows, and dense tensors are written in f32.
    let (lm, recorded) = LoadedModel::open_with(
        &args.model,
        DTypeChoice::Exact(candle_core::DType::F32),
        &candle_core::Device::Cpu,
        Some(&plan),
        true,
    )?;
    let load_s = start.elapsed().as_secs_f64();
    let config_path = args.model.join("config.json");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)
        .with_context(|| format!("{}: invalid JSON", config_path.display()))?;
    let sizes = class_sizes(&recorded);
    let tensors = recorded.len();
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let copied = copy_model_files(&args.model, &args.out)?;
    let bytes = store::write(&args.out.join(store::FILE_NAME), &plan, &config, recorded)?;
    drop(lm);
    let report = serde_json::json!({
        "model": args.model,
        "out": args.out,
        "quant": plan.spec(),
        "plan": plan.describe(),
        "tensors": tensors,
        "file_bytes": bytes,
        "classes": sizes.iter().map(|(class, s)| serde_json::json!({
            "class": class, "formats": s.formats.keys().collect::<Vec<_>>(), "tensors": s.tensors, "bytes": s.bytes, "params": s.params
        })).collect::<Vec<_>>(),
        "copied_files": copied,
        "seconds": start.elapsed().as_secs_f64(),
        "load_and_quantize_seconds": load_s,
        "peak_rss_bytes": peak_rss_bytes(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} → {} ({}, {:.2} GB, {tensors} tensors, {:.0} s)",
            args.model.display(),
            args.out.join(store::FILE_NAME).display(),
            plan.spec(),
            bytes as f64 / 1e9,
            start.elapsed().as_secs_f64()
        );
        for (class, s) in &sizes {
            let formats: Vec<&str> = s.formats.keys().copied().collect();
            println!(
                "  {class:<10} {:>7.3} GB  {:>14} params  {:>5} tensors  {}",
                s.bytes as f64 / 1e9,
                s.params,
                s.tensors,
                formats.join("+")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses to write over the checkpoint or over an earlier result (unless `force`).
fn check_out_dir(model: &Path, out: &Path, force: bool) -> anyhow::Result<()> {
    anyhow::ensure!(model.is_dir(), "--model {}: not a directory", model.display());
    if out.exists() {
        anyhow::ensure!(out.is_dir(), "--out {}: exists and is not a directory", out.display());
        let same = std::fs::canonicalize(model).ok() == std::fs::canonicalize(out).ok();
        anyhow::ensure!(
            !same,
            "--out {} is the checkpoint directory; write the quantized model to another one",
            out.display()
        );
        let has_weights = std::fs::read_dir(out)?
            .flatten()
            .any(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".safetensors")));
        anyhow::ensure!(!has_weights, "--out {} holds safetensors weights, which would be loaded instead of model.gguf; choose an empty directory", out.display());
        anyhow::ensure!(
            force || !out.join(store::FILE_NAME).exists(),
            "--out {} already has a {}; pass --force to replace it",
            out.display(),
            store::FILE_NAME
        );
    }
    Ok(())
}

/// Copies the checkpoint's files other than weights (config, tokenizer, template, processor).
fn copy_model_files(from: &Path, to: &Path) -> anyhow::Result<Vec<String>> {
    let mut copied = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(from)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if is_weight_file(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name))
            .with_context(|| format!("cannot copy {} to {}", entry.path().display(), to.display()))?;
        copied.push(name);
    }
    Ok(copied)
}

/// Bytes, parameters and formats per tensor class.
#[derive(Default)]
struct ClassSize {
    tensors: usize,
    params: usize,
    bytes: usize,
    formats: BTreeMap<&'static str, ()>,
}

fn class_sizes(recorded: &[(String, Recorded)]) -> BTreeMap<&'static str, ClassSize> {
    // Names are unique: the recorder keeps one entry per tensor.
    let mut out: BTreeMap<&'static str, ClassSize> = BTreeMap::new();
    for (name, t) in recorded {
        let class = TensorClass::of(name).map_or("other", |c| c.name());
        let (params, bytes, format) = match t {
            Recorded::Dense(t) => (t.elem_count(), t.elem_count() * 4, "f32"),
            Recorded::Quantized(q) => (q.shape().elem_count(), q.storage_size_in_bytes(), format_name(Some(q.dtype()))),
        };
        let s = out.entry(class).or_default();
        s.tensors += 1;
        s.params += params;
        s.bytes += bytes;
        s.formats.insert(format, ());
    }
    out
}
