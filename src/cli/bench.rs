//! `omnid bench`: prefill and decode throughput and peak memory on a text prompt of a
//! chosen length, greedy, ignoring stop tokens so every run decodes the same number of
//! tokens. `--json` also prints the prompt ids so `scripts/bench_reference.py` can run the
//! identical prompt through transformers and report the ratio.

use std::process::ExitCode;
use std::time::Instant;

use super::bench_model::BenchModelArgs;
use crate::config::OmnidConfig;
use crate::engine::generate::{generate, GenerateParams};
use crate::engine::sampling::SamplingParams;
use crate::models::multimodal::MultimodalInputs;

/// Arguments of `omnid bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens to decode per run.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Timed runs (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `omnid bench`.
pub fn run(args: BenchArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.prompt_tokens > 0 && args.new_tokens > 1 && args.runs > 0,
        "prompt-tokens, runs must be ≥ 1 and new-tokens ≥ 2"
    );
    let load_start = Instant::now();
    let loaded = args.model.load(cfg)?;
    let load_s = load_start.elapsed().as_secs_f64();
    // A deterministic text prompt: ordinary English, repeated and cut to length.
    let sentence = "The quick brown fox jumps over the lazy dog while the omni model listens, looks and answers. ";
    let mut ids = Vec::new();
    while ids.len() < args.prompt_tokens {
        ids.extend(loaded.tokenizer.encode(sentence)?);
    }
    ids.truncate(args.prompt_tokens);
    let inputs = MultimodalInputs { ids: ids.clone(), ..Default::default() };
    let params =
        GenerateParams { sampling: SamplingParams::default(), max_new_tokens: args.new_tokens, stop_ids: Vec::new() };
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for run in 0..=args.runs {
        let out = generate(&loaded.model, &inputs, &params, |_| true)?;
        if run > 0 {
            prefill.push(args.prompt_tokens as f64 / (out.prefill_ms / 1e3));
            decode.push(out.decode_tokens_per_s);
        }
    }
    let prefill_tps = median(prefill);
    let decode_tps = median(decode);
    let peak = peak_rss_bytes();
    if args.json {
        let obj = serde_json::json!({
            "model": loaded.dir.as_ref().map(|d| d.display().to_string()),
            "embedded_random_weights": loaded.dir.is_none(),
            "measured": args.model.describe(&loaded),
            "quant": loaded.quant.as_ref().map(|q| q.spec().to_string()),
            "weights": loaded.describe_weights(),
            "family": loaded.family.name(),
            "dtype": format!("{:?}", loaded.dtype).to_lowercase(),
            "threads": candle_core::utils::get_num_threads(),
            "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens,
            "runs": args.runs,
            "prefill_tokens_per_s": prefill_tps,
            "decode_tokens_per_s": decode_tps,
            "peak_rss_bytes": peak,
            "load_s": load_s,
            "prompt_ids": ids,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!("model        {}", args.model.describe(&loaded));
        println!("family/dtype {} / {:?}", loaded.family.name(), loaded.dtype);
        println!("weights      {}", loaded.describe_weights());
        println!("threads      {}", candle_core::utils::get_num_threads());
        println!("prefill      {prefill_tps:.1} tokens/s ({} tokens, median of {})", args.prompt_tokens, args.runs);
        println!("decode       {decode_tps:.1} tokens/s ({} tokens, median of {})", args.new_tokens, args.runs);
        if let Some(p) = peak {
            println!("peak memory  {:.1} MiB (process RSS high-water mark)", p as f64 / (1 << 20) as f64);
        }
        println!("load         {load_s:.2} s");
    }
    Ok(ExitCode::SUCCESS)
}
