//! `omnid bench-speech`: first-audio latency and real-time factor of spoken answers, with the
//! breakdown the Qwen3-Omni report gives (thinker prefill and first token, talker prefill and
//! first frame, code predictor per frame, talker step, Code2Wav per chunk). Greedy, text prompt
//! of a chosen length, a fixed number of frames (random weights never say codec_eos), median of
//! several runs after a warm-up. `--synthetic real-widths` builds Qwen3-Omni-30B-A3B-Instruct's
//! real widths with fewer layers in-process; without it, `--model` or the embedded tiny model.

use std::process::ExitCode;
use std::time::Instant;

use super::bench::peak_rss_bytes;
use super::bench_model::BenchModelArgs;
use crate::config::OmnidConfig;
use crate::engine::generate::GenerateParams;
use crate::engine::sampling::SamplingParams;
use crate::engine::speech::{respond_spoken, SpeechOptions, SpokenAnswer, ThinkerSource};
use crate::models::multimodal::MultimodalInputs;

/// Arguments of `omnid bench-speech`.
#[derive(Debug, clap::Args)]
pub struct BenchSpeechArgs {
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: usize,
    /// Text tokens the thinker writes (it ignores stop tokens, so every run is the same).
    #[arg(long, default_value_t = 24)]
    pub text_tokens: usize,
    /// Speech frames per run (80 ms each).
    #[arg(long, default_value_t = 25)]
    pub frames: usize,
    /// Code2Wav frames per decode after the first (which is one frame).
    #[arg(long, default_value_t = 10)]
    pub chunk: usize,
    /// `exact`: Code2Wav keeps its state between chunks; N: each chunk re-decodes N earlier frames.
    #[arg(long, default_value = "exact")]
    pub context: String,
    /// Timed runs after one warm-up; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `omnid bench-speech`.
pub fn run(args: BenchSpeechArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.prompt_tokens > 0 && args.text_tokens > 1 && args.frames > 0 && args.runs > 0 && args.chunk > 0,
        "prompt-tokens, frames, chunk and runs must be ≥ 1 and text-tokens ≥ 2"
    );
    let load_start = Instant::now();
    let loaded = args.model.load(cfg)?;
    let load_s = load_start.elapsed().as_secs_f64();
    // A text prompt ending in the assistant turn the talker speaks.
    let sentence = "The quick brown fox jumps over the lazy dog while the omni model listens and answers. ";
    let mut body = Vec::new();
    while body.len() < args.prompt_tokens {
        body.extend(loaded.tokenizer.encode(sentence)?);
    }
    body.truncate(args.prompt_tokens);
    let turn = |s: &str| loaded.tokenizer.encode(s);
    let mut ids = turn("<|im_start|>user\n")?;
    ids.extend(body);
    ids.extend(turn("<|im_end|>\n<|im_start|>assistant\n")?);
    let inputs = MultimodalInputs { ids: ids.clone(), ..Default::default() };
    let params =
        GenerateParams { sampling: SamplingParams::default(), max_new_tokens: args.text_tokens, stop_ids: Vec::new() };
    let mut opts = SpeechOptions::new("ethan", true, 0);
    opts.max_frames = args.frames;
    opts.chunk_frames = args.chunk;
    opts.left_context = match args.context.as_str() {
        "exact" => None,
        n => Some(n.parse().map_err(|_| anyhow::anyhow!("--context {n:?}: a number of frames or `exact`"))?),
    };
    let mut runs: Vec<SpokenAnswer> = Vec::new();
    for run in 0..=args.runs {
        let ans = respond_spoken(&loaded, &inputs, &params, &opts, Instant::now(), ThinkerSource::Run, |_| true)?;
        anyhow::ensure!(ans.speech.frames == args.frames, "the talker stopped after {} frames", ans.speech.frames);
        if run > 0 {
            runs.push(ans);
        }
    }
    let m = |f: &dyn Fn(&SpokenAnswer) -> f64| median(runs.iter().map(f).collect());
    let row = serde_json::json!({
        "thinker_prefill_ms": m(&|a| a.generation.prefill_ms),
        "thinker_first_token_ms": m(&|a| a.generation.first_token_ms),
        "thinker_tokens_per_s": m(&|a| a.generation.decode_tokens_per_s),
        "talker_prefill_ms": m(&|a| a.speech.talker_prefill_ms),
        "talker_first_frame_ms": m(&|a| a.speech.talker_first_frame_ms.unwrap_or(f64::NAN)),
        "code_predictor_ms_per_frame": m(&|a| a.speech.code_predictor_ms_per_frame),
        "talker_step_ms": m(&|a| a.speech.talker_step_ms),
        "code2wav_ms_per_chunk": m(&|a| a.speech.code2wav_ms_per_chunk),
        "code2wav_chunks": runs[0].speech.code2wav_chunks,
        "first_audio_ms": m(&|a| a.speech.first_audio_ms.unwrap_or(f64::NAN)),
        "audio_rtf": m(&|a| a.speech.audio_rtf),
    });
    let model = args.model.describe(&loaded);
    let obj = serde_json::json!({
        "model": model,
        "threads": candle_core::utils::get_num_threads(),
        "prompt_tokens": ids.len(),
        "text_tokens": args.text_tokens,
        "frames": args.frames,
        "chunk": args.chunk,
        "context": args.context,
        "runs": args.runs,
        "median": row,
        "peak_rss_bytes": peak_rss_bytes(),
        "load_s": load_s,
        "prompt_ids": ids,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!("model    {model}");
        println!(
            "prompt   {} tokens, {} text tokens, {} frames ({:.2} s of audio)",
            ids.len(),
            args.text_tokens,
            args.frames,
            args.frames as f64 * 0.08
        );
        for (k, v) in row.as_object().expect("built as an object") {
            println!("{k:<28} {v}");
        }
        println!("load     {load_s:.1} s; medians of {} runs", args.runs);
    }
    Ok(ExitCode::SUCCESS)
}
