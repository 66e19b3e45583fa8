//! `omnid ask`: one user turn (media in command-line order, then the prompt), generation
//! streamed to stdout, or one JSON object with `--json`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::ArgMatches;

use super::{load_model, ModelArgs};
use crate::config::{OmnidConfig, SpeechSection};
use crate::engine::ask::{ask, AskRequest, MediaRef};
use crate::engine::generate::GenerationOutput;
use crate::engine::model_dir::LoadedModel;
use crate::engine::speech::{ask_spoken, speech_models, ResponseEvent, SpeechOptions};
use omnid_codecs::wav::{WavSampleFormat, WavSink};

/// Arguments of `omnid ask`.
#[derive(Debug, clap::Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System prompt (a system turn before the user turn).
    #[arg(long)]
    pub system: Option<String>,
    /// Image file (any format the image crate decodes). Repeatable.
    #[arg(long, value_name = "PATH", action = clap::ArgAction::Append)]
    pub image: Vec<String>,
    /// Audio file: WAV, MP3, M4A/AAC, Opus, Ogg Vorbis, FLAC, or the sound of a video file; any rate
    /// and channel count. Repeatable.
    #[arg(long, value_name = "PATH", action = clap::ArgAction::Append)]
    pub audio: Vec<String>,
    /// Video: a file (mp4, mov, mkv, webm, avi, …) or a folder of frames (frame_*.png/jpg,
    /// optional meta.json with fps/timestamps, optional audio.wav for its sound track). Repeatable.
    #[arg(long, value_name = "PATH", action = clap::ArgAction::Append)]
    pub video: Vec<String>,
    /// Feed each video's sound track (its audio stream, or audio.wav in a frame folder) interleaved with
    /// the frames (Qwen3-Omni).
    #[arg(long)]
    pub use_audio_in_video: bool,
    /// Frames per second sampled from videos (default: the config file's, else the checkpoint's,
    /// else 2, the rate Qwen evaluates at).
    #[arg(long)]
    pub video_fps: Option<f64>,
    /// Use video files from this time on, in seconds (long recordings are asked about window by window).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub video_start: f64,
    /// Use video files up to this time, in seconds (default: the end).
    #[arg(long, value_name = "SECONDS")]
    pub video_end: Option<f64>,
    /// Lower pixel bound for video frames (per frame for Qwen3-Omni, per clip for Qwen3-VL);
    /// default: the checkpoint processor's.
    #[arg(long)]
    pub video_min_pixels: Option<u64>,
    /// Upper pixel bound for video frames (per frame for Qwen3-Omni, per clip for Qwen3-VL);
    /// lower it to spend fewer tokens on video. Default: the checkpoint processor's.
    #[arg(long)]
    pub video_max_pixels: Option<u64>,
    /// Maximum new tokens (default: `[limits] max_new_tokens` of the --config file, else 256).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Sampling temperature (default: the checkpoint's generation_config, else 1.0).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Top-k (0 disables; default from generation_config, else 50).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Top-p (1 disables; default from generation_config, else 1.0).
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Repetition penalty (1 disables; default from generation_config, else 1.0).
    #[arg(long)]
    pub repetition_penalty: Option<f64>,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Greedy (argmax) decoding. Also the default when generation_config does not ask to sample
    /// and no sampling option is given.
    #[arg(long)]
    pub greedy: bool,
    /// A chat-template variable, `KEY=VALUE` (VALUE as JSON when it parses, else a string),
    /// e.g. `--template-arg enable_thinking=false`. Repeatable.
    #[arg(long, value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    pub template_arg: Vec<String>,
    /// Print one JSON object (text, token_ids, prompt_tokens, first_step_top5, timings; with
    /// --speak also `audio` and the speech timings).
    #[arg(long)]
    pub json: bool,
    /// Also answer in speech: write 24 kHz mono WAV to PATH, streamed while the answer is produced
    /// (Qwen3-Omni Instruct checkpoints: the talker, code predictor and Code2Wav).
    #[arg(long, value_name = "PATH")]
    pub speak: Option<std::path::PathBuf>,
    /// Voice for --speak (case-insensitive; default Ethan, or the checkpoint's first speaker).
    #[arg(long, requires = "speak")]
    pub speaker: Option<String>,
    /// Sample format of the --speak file: s16 (16-bit PCM) or f32 (the samples exactly as decoded).
    #[arg(long, value_enum, default_value_t = SpeakFormat::S16, requires = "speak")]
    pub speak_format: SpeakFormat,
    /// Longest speech, in 80 ms frames (default: `[speech] max_frames` of the config, 4095).
    #[arg(long, requires = "speak")]
    pub speak_max_frames: Option<usize>,
    /// `exact` (default): Code2Wav keeps its state between chunks, the stream equals one full
    /// decode; a number N: each chunk re-decodes N earlier frames instead (vLLM-Omni: 25).
    #[arg(long, requires = "speak")]
    pub speak_context: Option<String>,
    /// Frames per Code2Wav decode after the first, which is one frame (default: the config's, 10).
    #[arg(long, requires = "speak")]
    pub speak_chunk: Option<usize>,
    /// The question (goes last in the user turn).
    pub prompt: String,
}

/// Sample format of the `--speak` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpeakFormat {
    S16,
    F32,
}

/// Runs `omnid ask`.
pub fn run(args: AskArgs, matches: &ArgMatches, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    // Media in the order they appear on the command line, whatever the flag.
    let mut media: Vec<(usize, MediaRef)> = Vec::new();
    for (flag, make) in [
        ("image", MediaRef::Image as fn(String) -> MediaRef),
        ("audio", MediaRef::Audio as fn(String) -> MediaRef),
        ("video", MediaRef::Video as fn(String) -> MediaRef),
    ] {
        if let (Some(idx), Some(vals)) = (matches.indices_of(flag), matches.get_many::<String>(flag)) {
            media.extend(idx.zip(vals).map(|(i, v)| (i, make(v.clone()))));
        }
    }
    media.sort_by_key(|(i, _)| *i);
    let mut loaded = load_model(&args.model, cfg)?;
    if let Some(p) = args.video_min_pixels {
        loaded.processor.video.pixels.min_pixels = p;
    }
    if let Some(p) = args.video_max_pixels {
        loaded.processor.video.pixels.max_pixels = p;
    }
    if let Some(fps) = args.video_fps {
        anyhow::ensure!(fps.is_finite() && fps > 0.0, "--video-fps must be > 0 (got {fps})");
    }
    if args.max_tokens == Some(0) {
        anyhow::bail!("--max-tokens must be at least 1");
    }
    anyhow::ensure!(
        loaded.processor.video.pixels.min_pixels <= loaded.processor.video.pixels.max_pixels,
        "--video-min-pixels {} is above --video-max-pixels {}",
        loaded.processor.video.pixels.min_pixels,
        loaded.processor.video.pixels.max_pixels
    );
    if loaded.dir.is_none() && !args.json {
        eprintln!(
            "omnid: no --model given: using the embedded tiny random-weight Qwen3-Omni. It proves the pipeline, \
             not the answers — its text is noise. Point --model at a checkpoint directory for real answers."
        );
    }
    let mut sampling = loaded.generation.sampling_defaults();
    let asked_to_sample = args.temperature.is_some() || args.top_k.is_some() || args.top_p.is_some();
    if asked_to_sample {
        sampling.greedy = false;
    }
    if args.greedy {
        sampling.greedy = true;
    }
    sampling.temperature = args.temperature.unwrap_or(sampling.temperature);
    sampling.top_k = args.top_k.unwrap_or(sampling.top_k);
    sampling.top_p = args.top_p.unwrap_or(sampling.top_p);
    sampling.repetition_penalty = args.repetition_penalty.unwrap_or(sampling.repetition_penalty);
    sampling.seed = args.seed;
    let mut template_vars = serde_json::Map::new();
    for kv in &args.template_arg {
        let (k, v) = kv.split_once('=').ok_or_else(|| anyhow::anyhow!("--template-arg {kv:?}: expected KEY=VALUE"))?;
        anyhow::ensure!(!k.is_empty(), "--template-arg {kv:?}: empty key");
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        template_vars.insert(k.to_string(), value);
    }
    let req = AskRequest {
        system: args.system.clone(),
        media: media.into_iter().map(|(_, m)| m).collect(),
        prompt: args.prompt.clone(),
        use_audio_in_video: args.use_audio_in_video,
        video_fps: args.video_fps.or(cfg.video.fps).or(loaded.processor.video.fps).unwrap_or(2.0),
        video_window: (args.video_start, args.video_end),
        sampling,
        max_new_tokens: args.max_tokens.unwrap_or(cfg.limits.max_new_tokens),
        template_vars,
    };
    if let Some(path) = &args.speak {
        return run_spoken(&args, &loaded, &req, path, &cfg.speech);
    }
    let stdout = std::io::stdout();
    let stream = !args.json;
    let out = ask(&loaded, &req, |chunk| {
        if stream {
            let mut lock = stdout.lock();
            let _ = lock.write_all(chunk.as_bytes());
            let _ = lock.flush();
        }
        true
    })?;
    if args.json {
        let obj = answer_json(&loaded, &out.text, &out.generation);
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--json` object of a text answer.
fn answer_json(loaded: &LoadedModel, text: &str, generation: &GenerationOutput) -> serde_json::Value {
    let top5: Vec<serde_json::Value> =
        generation.first_step_top5.iter().map(|(id, v)| serde_json::json!({"id": id, "logit": v})).collect();
    serde_json::json!({
        "text": text,
        "token_ids": generation.token_ids,
        "prompt_tokens": generation.prompt_tokens,
        "first_step_top5": top5,
        "stop_reason": generation.stop_reason,
        "prefill_ms": generation.prefill_ms,
        "first_token_ms": generation.first_token_ms,
        "decode_tokens_per_s": generation.decode_tokens_per_s,
        "model": {
            "family": loaded.family.name(),
            "dir": loaded.dir.as_ref().map(|d| d.display().to_string()),
            "embedded_random_weights": loaded.dir.is_none(),
            "dtype": format!("{:?}", loaded.dtype).to_lowercase(),
        },
    })
}

/// `omnid ask --speak`: text to stdout and speech to a WAV file, both streamed.
fn run_spoken(
    args: &AskArgs,
    loaded: &LoadedModel,
    req: &AskRequest,
    path: &Path,
    cfg: &SpeechSection,
) -> anyhow::Result<ExitCode> {
    let (_, speech) = speech_models(loaded)?;
    let speaker = match args.speaker.as_ref().or(cfg.speaker.as_ref()) {
        Some(s) => s.clone(),
        None if speech.talker.config().speaker_id.contains_key("ethan") => "Ethan".into(),
        None => speech.speakers().first().map(|s| s.to_string()).unwrap_or_default(),
    };
    // The talker samples by default (transformers' talker_do_sample=True) whatever the thinker
    // does; --greedy makes all three greedy.
    let mut opts = SpeechOptions::new(&speaker, args.greedy, args.seed);
    opts.max_frames = args.speak_max_frames.unwrap_or(cfg.max_frames);
    opts.chunk_frames = args.speak_chunk.unwrap_or(cfg.chunk_frames);
    opts.left_context = match args.speak_context.as_deref() {
        None => cfg.left_context,
        Some("exact") => None,
        Some(n) => Some(
            n.parse().map_err(|_| anyhow::anyhow!("--speak-context {n:?}: expected a number of frames or `exact`"))?,
        ),
    };
    opts.validate().map_err(anyhow::Error::msg)?;
    speech.talker.config().speaker(&speaker).map_err(anyhow::Error::msg)?;
    let format = match args.speak_format {
        SpeakFormat::S16 => WavSampleFormat::Pcm16,
        SpeakFormat::F32 => WavSampleFormat::Float32,
    };
    let mut sink = WavSink::create(path, 24_000, format)?;
    let stdout = std::io::stdout();
    let stream = !args.json;
    let mut write_error = None;
    let result = ask_spoken(loaded, req, &opts, |ev| match ev {
        ResponseEvent::Text(chunk) => {
            if stream {
                let mut lock = stdout.lock();
                let _ = lock.write_all(chunk.as_bytes());
                let _ = lock.flush();
            }
            true
        }
        ResponseEvent::Audio(samples) => match sink.write(&samples) {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        },
    });
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            // No half-written file is left behind a failed request.
            drop(sink);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    };
    if let Some(e) = write_error {
        return Err(anyhow::Error::new(e).context(format!("{}: writing the speech", path.display())));
    }
    sink.finish()?;
    let s = &out.speech;
    if args.json {
        let mut obj = answer_json(loaded, &out.text, &out.generation);
        obj["audio"] = serde_json::json!({
            "path": path.display().to_string(),
            "samples": s.samples,
            "sample_rate": s.sample_rate,
            "speaker": s.speaker,
            "format": match args.speak_format { SpeakFormat::S16 => "s16", SpeakFormat::F32 => "f32" },
            "frames": s.frames,
            "stop_reason": s.stop,
        });
        obj["first_audio_ms"] = serde_json::json!(s.first_audio_ms);
        obj["audio_rtf"] = serde_json::json!(s.audio_rtf);
        obj["speech_timings"] = serde_json::json!({
            "talker_prefill_ms": s.talker_prefill_ms,
            "talker_first_frame_ms": s.talker_first_frame_ms,
            "talker_step_ms": s.talker_step_ms,
            "code_predictor_ms_per_frame": s.code_predictor_ms_per_frame,
            "code2wav_chunks": s.code2wav_chunks,
            "code2wav_ms_per_chunk": s.code2wav_ms_per_chunk,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!();
        eprintln!(
            "omnid: {} ({:.2} s, {} frames, voice {}, ended by {:?})",
            path.display(),
            s.samples as f64 / s.sample_rate as f64,
            s.frames,
            s.speaker,
            s.stop
        );
    }
    Ok(ExitCode::SUCCESS)
}
