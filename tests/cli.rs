//! The `omnid` binary end to end: `ask` on the embedded default and on committed reference
//! checkpoints (its greedy tokens must equal the reference's), `check`, `bench`, and every
//! bad input the engine must refuse with one clear error naming the file and the problem —
//! never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::ffmpeg;

fn omnid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnid")).args(args).env_remove("RUST_BACKTRACE").output().expect("run omnid")
}

fn fixture(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel).display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "omnid failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

/// A failing run: non-zero exit, an `error:` line containing every `needles`, no panic.
fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic instead of an error: {err}");
    assert!(err.contains("error:"), "no error line: {err}");
    for n in needles {
        assert!(err.contains(n), "error does not mention {n:?}: {err}");
    }
}

#[test]
fn ask_embedded_default_streams_and_reports_json() {
    let o = omnid(&["ask", "--max-tokens", "6", "Hello there"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("embedded tiny random-weight"), "the embedded model must say so: {}", stderr(&o));
    let j = json_of(&omnid(&["ask", "--json", "--max-tokens", "6", "Hello there"]));
    // The streamed text is the generated text, then a newline.
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{}\n", j["text"].as_str().unwrap()));
    assert_eq!(ids(&j["token_ids"]).len(), 6);
    assert!(j["prompt_tokens"].as_u64().unwrap() > 5);
    let top5 = j["first_step_top5"].as_array().unwrap();
    assert_eq!(top5.len(), 5);
    let logits: Vec<f64> = top5.iter().map(|t| t["logit"].as_f64().unwrap()).collect();
    assert!(logits.windows(2).all(|w| w[0] >= w[1]), "top5 not sorted: {logits:?}");
    // Greedy's first token is the top logit.
    assert_eq!(ids(&j["token_ids"])[0], top5[0]["id"].as_u64().unwrap());
    for k in ["prefill_ms", "first_token_ms", "decode_tokens_per_s"] {
        assert!(j[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert_eq!(j["model"]["embedded_random_weights"], true);
    // Fixed seed: the embedded model is the same on every run.
    let again = json_of(&omnid(&["ask", "--json", "--max-tokens", "6", "Hello there"]));
    assert_eq!(j["token_ids"], again["token_ids"]);
}

#[test]
fn ask_embedded_with_image_audio_and_sampling() {
    let img = fixture("omni_a/inputs/img_0.png");
    let wav = fixture("omni_a/inputs/aud_1s.wav");
    let base = ["ask", "--json", "--max-tokens", "8", "--image", &img, "--audio", &wav];
    let plain = json_of(&omnid(&[&base[..], &["What is this?"]].concat()));
    let text_only = json_of(&omnid(&["ask", "--json", "--max-tokens", "8", "What is this?"]));
    // 1 s of audio = 13 tokens; the image adds its own; both go into the prompt.
    assert!(plain["prompt_tokens"].as_u64().unwrap() >= text_only["prompt_tokens"].as_u64().unwrap() + 13 + 4);
    let s1 = json_of(&omnid(
        &[&base[..], &["--temperature", "1.5", "--top-k", "20", "--top-p", "0.9", "--seed", "3", "What is this?"]]
            .concat(),
    ));
    let s2 = json_of(&omnid(
        &[&base[..], &["--temperature", "1.5", "--top-k", "20", "--top-p", "0.9", "--seed", "3", "What is this?"]]
            .concat(),
    ));
    let s3 = json_of(&omnid(
        &[&base[..], &["--temperature", "1.5", "--top-k", "20", "--top-p", "0.9", "--seed", "4", "What is this?"]]
            .concat(),
    ));
    assert_eq!(s1["token_ids"], s2["token_ids"], "same seed, same tokens");
    assert_ne!(s1["token_ids"], s3["token_ids"], "another seed, other tokens");
}

/// The CLI on a committed checkpoint reproduces the reference's greedy generation.
fn ask_matches_reference(model: &str, case: &str, flags: &[&str]) {
    let dir = fixture(model);
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&dir).join("reference.json")).unwrap()).unwrap();
    let c = reference["cases"].as_array().unwrap().iter().find(|c| c["name"] == case).unwrap();
    let max = c["greedy"]["max_new_tokens"].to_string();
    let mut args =
        vec!["ask", "--json", "--greedy", "--repetition-penalty", "1", "--model", &dir, "--max-tokens", &max];
    let mut owned = Vec::new();
    let mut prompt = String::new();
    for part in c["messages"][0]["content"].as_array().unwrap() {
        match part["type"].as_str().unwrap() {
            "text" => prompt = part["text"].as_str().unwrap().to_string(),
            kind => owned.push((format!("--{kind}"), format!("{dir}/{}", part[kind].as_str().unwrap()))),
        }
    }
    for (f, p) in &owned {
        args.push(f);
        args.push(p);
    }
    args.extend_from_slice(flags);
    args.push(&prompt);
    let j = json_of(&omnid(&args));
    assert_eq!(
        j["prompt_tokens"].as_u64().unwrap() as usize,
        c["prompt_ids"].as_array().unwrap().len(),
        "{model}/{case}"
    );
    assert_eq!(ids(&j["token_ids"]), ids(&c["greedy"]["generated_ids"]), "{model}/{case}");
    let stop = if c["greedy"]["stopped_by"] == "eos" { "eos" } else { "length" };
    assert_eq!(j["stop_reason"], stop, "{model}/{case}");
}

#[test]
fn ask_on_omni_checkpoint_image_audio_text_matches_reference() {
    ask_matches_reference("omni_a", "image_audio_text", &[]);
}

#[test]
fn ask_on_omni_checkpoint_audio_stops_at_eos_like_reference() {
    ask_matches_reference("omni_a", "audio_text", &[]);
}

#[test]
fn ask_on_omni_checkpoint_video_with_its_audio_track() {
    // The reference call passed the video size of the checkpoint's video config.
    ask_matches_reference(
        "omni_b",
        "video_audio_in_video",
        &["--use-audio-in-video", "--video-min-pixels", "1024", "--video-max-pixels", "4096"],
    );
}

#[test]
fn ask_on_vl_moe_checkpoint_two_images() {
    ask_matches_reference("vl_moe_b", "two_images", &[]);
}

#[test]
fn check_reports_the_architecture() {
    let o = omnid(&["check", "--model", &fixture("vl_moe_a")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Qwen3-VL-MoE") && out.contains("(2 MoE)"), "{out}");
}

#[test]
fn bench_reports_throughput_and_memory() {
    let j = json_of(&omnid(&["bench", "--json", "--prompt-tokens", "16", "--new-tokens", "4", "--runs", "1"]));
    assert!(j["prefill_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(j["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(j["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert_eq!(j["prompt_ids"].as_array().unwrap().len(), 16);
}

/// A copy of a fixture checkpoint in a fresh temp dir, to damage.
fn scratch_copy(model: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("omnid-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(model)).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    dst
}

#[test]
fn missing_model_directory() {
    let o = omnid(&["ask", "--model", "/nonexistent/omnid-model", "hi"]);
    assert_clean_error(&o, &["/nonexistent/omnid-model", "not a directory"]);
}

#[test]
fn truncated_shard_is_named() {
    let dir = scratch_copy("omni_a", "trunc");
    let shard = dir.join("model-00002-of-00003.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let o = omnid(&["ask", "--model", dir.to_str().unwrap(), "hi"]);
    assert_clean_error(&o, &["model-00002-of-00003.safetensors", "truncated"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_shard_is_named() {
    let dir = scratch_copy("vl_dense_b", "noshard");
    std::fs::remove_file(dir.join("model-00003-of-00003.safetensors")).unwrap();
    let o = omnid(&["check", "--model", dir.to_str().unwrap()]);
    assert_clean_error(&o, &["model-00003-of-00003.safetensors", "missing shard"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn corrupt_header_is_named() {
    let dir = scratch_copy("omni_b", "garbage");
    std::fs::write(dir.join("model.safetensors"), b"this is not a safetensors file at all").unwrap();
    let o = omnid(&["check", "--model", dir.to_str().unwrap()]);
    assert_clean_error(&o, &["model.safetensors"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unsupported_architecture() {
    let dir = scratch_copy("vl_dense_a", "arch");
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("Qwen3VLForConditionalGeneration", "LlamaForCausalLM")
        .replace("\"qwen3_vl\"", "\"llama\"");
    std::fs::write(&cfg, text).unwrap();
    let o = omnid(&["check", "--model", dir.to_str().unwrap()]);
    assert_clean_error(&o, &["config.json", "LlamaForCausalLM", "not supported"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tokenizer_from_another_model_is_refused() {
    let dir = scratch_copy("omni_a", "tok");
    std::fs::copy(fixture("omni_b/tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let o = omnid(&["check", "--model", dir.to_str().unwrap()]);
    assert_clean_error(&o, &["tokenizer does not match"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_tokenizer_is_named() {
    let dir = scratch_copy("vl_moe_a", "notok");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let o = omnid(&["check", "--model", dir.to_str().unwrap()]);
    assert_clean_error(&o, &["tokenizer.json", "not found"]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A PNG whose header declares `w × h` pixels (no real pixel data follows).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    // One IDAT chunk (decoders read the header up to the first IDAT; its content is never reached).
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    png.extend(((idat.len() - 4) as u32).to_be_bytes());
    png.extend(idat);
    png.extend(crc32(idat).to_be_bytes());
    png.extend(0u32.to_be_bytes());
    png.extend(b"IEND");
    png.extend(crc32(b"IEND").to_be_bytes());
    png
}

#[test]
fn image_over_the_pixel_budget_is_refused_before_decoding() {
    let path = std::env::temp_dir().join(format!("omnid-huge-{}.png", std::process::id()));
    std::fs::write(&path, png_header_only(30_000, 30_000)).unwrap();
    let o = omnid(&["ask", "--image", path.to_str().unwrap(), "what?"]);
    assert_clean_error(&o, &[path.to_str().unwrap(), "30000"]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn unreadable_audio_is_named() {
    let path = std::env::temp_dir().join(format!("omnid-bad-{}.wav", std::process::id()));
    std::fs::write(&path, b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    let o = omnid(&["ask", "--audio", path.to_str().unwrap(), "what?"]);
    assert_clean_error(&o, &[path.to_str().unwrap(), "WAV"]);
    let _ = std::fs::remove_file(path);
}

#[test]
fn audio_for_a_model_without_an_audio_encoder() {
    let o = omnid(&["ask", "--model", &fixture("vl_dense_a"), "--audio", &fixture("omni_a/inputs/aud_1s.wav"), "hi"]);
    assert_clean_error(&o, &["aud_1s.wav", "no audio input"]);
}

#[test]
fn video_file_that_is_not_media_is_named() {
    let o = omnid(&["ask", "--video", &fixture("omni_a/config.json"), "hi"]);
    assert_clean_error(&o, &["config.json", "cannot open as media"]);
}

#[test]
fn ask_on_a_video_file_matches_the_reference_for_its_frames_and_sound() {
    // The reference case fed omni_b's folder of frames (3 fps) and its audio.wav; the same pixels and
    // samples in a lossless Matroska file (FFV1 RGB, PCM) must give the reference's prompt and tokens.
    let frames = fixture("omni_b/inputs/vid_0");
    let file = std::env::temp_dir().join(format!("omnid-cli-{}-vid_0.mkv", std::process::id()));
    let file_str = file.to_str().unwrap();
    let pattern = format!("{frames}/frame_%03d.png");
    let wav = format!("{frames}/audio.wav");
    ffmpeg(&[
        "-framerate",
        "3",
        "-i",
        &pattern,
        "-i",
        &wav,
        "-c:v",
        "ffv1",
        "-pix_fmt",
        "bgr0",
        "-c:a",
        "pcm_s16le",
        file_str,
    ]);
    let dir = fixture("omni_b");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&dir).join("reference.json")).unwrap()).unwrap();
    let c = reference["cases"].as_array().unwrap().iter().find(|c| c["name"] == "video_audio_in_video").unwrap();
    let max = c["greedy"]["max_new_tokens"].to_string();
    let o = omnid(&[
        "ask",
        "--json",
        "--greedy",
        "--repetition-penalty",
        "1",
        "--model",
        &dir,
        "--max-tokens",
        &max,
        "--video",
        file_str,
        "--use-audio-in-video",
        "--video-min-pixels",
        "1024",
        "--video-max-pixels",
        "4096",
        "Listen and watch.",
    ]);
    let j = json_of(&o);
    assert_eq!(j["prompt_tokens"].as_u64().unwrap() as usize, c["prompt_ids"].as_array().unwrap().len());
    assert_eq!(ids(&j["token_ids"]), ids(&c["greedy"]["generated_ids"]));

    // A window of the file: the second half holds 3 frames, so fewer prompt tokens; a window past the
    // end is refused with the file's length.
    let prompt_tokens = |window: &[&str]| {
        let mut args = vec!["ask", "--json", "--greedy", "--model", &dir, "--max-tokens", "1", "--video", file_str];
        args.extend_from_slice(window);
        args.extend_from_slice(&["--video-min-pixels", "1024", "--video-max-pixels", "4096", "x"]);
        json_of(&omnid(&args))["prompt_tokens"].as_u64().unwrap()
    };
    let (half, whole) = (prompt_tokens(&["--video-start", "1"]), prompt_tokens(&[]));
    assert!(half < whole, "{half} vs {whole} prompt tokens");
    let o = omnid(&["ask", "--model", &dir, "--video", file_str, "--video-start", "5", "x"]);
    assert_clean_error(&o, &["vid_0.mkv", "window starts at 5.000 s but the video is 2.000 s long"]);
    let _ = std::fs::remove_file(file);
}

#[test]
fn compressed_audio_and_video_without_sound() {
    let dir = std::env::temp_dir().join(format!("omnid-cli-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mp3 = dir.join("tone.mp3");
    ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=440:duration=1", mp3.to_str().unwrap()]);
    let o = omnid(&["ask", "--json", "--max-tokens", "2", "--audio", mp3.to_str().unwrap(), "what?"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let silent = dir.join("silent.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "color=c=red:s=64x64:r=4:d=2", "-c:v", "libx264", silent.to_str().unwrap()]);
    let o = omnid(&["ask", "--json", "--max-tokens", "2", "--video", silent.to_str().unwrap(), "what?"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = omnid(&["ask", "--video", silent.to_str().unwrap(), "--use-audio-in-video", "what?"]);
    assert_clean_error(&o, &["silent.mp4", "audio"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_sampling_values() {
    let o = omnid(&["ask", "--top-p", "1.5", "hi"]);
    assert_clean_error(&o, &["top_p"]);
    let o = omnid(&["ask", "--temperature", "0", "hi"]);
    assert_clean_error(&o, &["temperature"]);
}

/// A checkpoint copy whose context (`max_position_embeddings`) is only `n` tokens.
fn with_context(model: &str, tag: &str, n: usize) -> PathBuf {
    let dir = scratch_copy(model, tag);
    let cfg = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    let text =
        if v.get("thinker_config").is_some() { &mut v["thinker_config"]["text_config"] } else { &mut v["text_config"] };
    text["max_position_embeddings"] = n.into();
    std::fs::write(&cfg, v.to_string()).unwrap();
    dir
}

#[test]
fn prompt_longer_than_the_context_is_refused() {
    let dir = with_context("vl_dense_a", "ctx", 12);
    let o = omnid(&["ask", "--model", dir.to_str().unwrap(), "a question that is longer than twelve tokens for sure"]);
    assert_clean_error(&o, &["context is 12", "max_position_embeddings"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn video_over_the_context_is_refused_before_decoding_it_all() {
    let dir = with_context("omni_a", "vctx", 6);
    let video = fixture("omni_a/inputs/vid_0");
    let o = omnid(&["ask", "--model", dir.to_str().unwrap(), "--video", &video, "hi"]);
    assert_clean_error(&o, &["vid_0", "tokens", "context of 6"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn audio_in_video_for_a_model_without_audio() {
    let o = omnid(&[
        "ask",
        "--model",
        &fixture("vl_dense_b"),
        "--video",
        &fixture("vl_dense_b/inputs/vid_0"),
        "--use-audio-in-video",
        "hi",
    ]);
    assert_clean_error(&o, &["vid_0", "no audio input"]);
}

#[test]
fn a_device_this_build_cannot_use_is_refused_by_name() {
    assert_clean_error(&omnid(&["ask", "--device", "tpu", "hi"]), &["device", "`tpu` is not a device"]);
    if !cfg!(feature = "cuda") {
        let o = omnid(&["ask", "--device", "cuda:1", "hi"]);
        assert_clean_error(&o, &["cuda:1", "without the `cuda` feature"]);
    }
}

#[test]
fn zero_token_budget_is_refused() {
    assert_clean_error(&omnid(&["ask", "--max-tokens", "0", "hi"]), &["--max-tokens"]);
}

#[test]
fn template_args_reach_the_chat_template() {
    // omni_b's (Thinking-style) template opens the answer with <think> unless told not to.
    let dir = fixture("omni_b");
    let with = json_of(&omnid(&["ask", "--json", "--max-tokens", "1", "--model", &dir, "hi"]));
    let without = json_of(&omnid(&[
        "ask",
        "--json",
        "--max-tokens",
        "1",
        "--model",
        &dir,
        "--template-arg",
        "enable_thinking=false",
        "hi",
    ]));
    assert_ne!(with["prompt_tokens"], without["prompt_tokens"], "enable_thinking=false must change the prompt");
    assert_clean_error(&omnid(&["ask", "--template-arg", "novalue", "hi"]), &["KEY=VALUE"]);
}

#[test]
fn capture_a_test_source_then_ask_about_the_frames() {
    let out = std::env::temp_dir().join(format!("omnid-cli-capture-{}", std::process::id()));
    let o = omnid(&[
        "capture",
        "lavfi:color=c=blue:size=64x48:rate=10",
        "--out",
        out.to_str().unwrap(),
        "--seconds",
        "1.5",
        "--fps",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).unwrap()).unwrap();
    let stamps: Vec<f64> =
        meta["frames"].as_array().unwrap().iter().map(|f| f["timestamp"].as_f64().unwrap()).collect();
    assert_eq!(stamps, [0.0, 0.5, 1.0]);
    let frame = image::open(out.join("frame_00002.png")).unwrap().to_rgb8();
    assert_eq!(frame.dimensions(), (64, 48));
    assert!(frame.get_pixel(5, 5)[2] > 240 && frame.get_pixel(5, 5)[0] < 15);
    let o = omnid(&["ask", "--json", "--max-tokens", "1", "--video", out.to_str().unwrap(), "what colour?"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn capture_from_absent_devices_is_named() {
    let out = std::env::temp_dir().join(format!("omnid-cli-absent-{}", std::process::id()));
    let o = omnid(&["capture", "camera:/dev/video97", "--out", out.to_str().unwrap(), "--seconds", "1"]);
    assert_clean_error(&o, &["/dev/video97", "no camera"]);
    let o = omnid(&["capture", "screen::193", "--out", out.to_str().unwrap(), "--seconds", "1"]);
    assert_clean_error(&o, &["screen::193", "no X display"]);
    let o = omnid(&["capture", "tape:deck", "--out", out.to_str().unwrap()]);
    assert_clean_error(&o, &["tape:deck"]);
    // A microphone with no sound server and no card: the PulseAudio host is named and absent.
    let o = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .args(["capture", "mic", "--out", out.join("m.wav").to_str().unwrap(), "--seconds", "1"])
        .env("PULSE_SERVER", "unix:/nonexistent/omnid-pulse")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("microphone"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn probe_prints_streams_and_names_bad_files() {
    let dir = std::env::temp_dir().join(format!("omnid-cli-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=d=2",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-c:a",
        "libopus",
        clip.to_str().unwrap(),
    ]);
    let o = omnid(&["probe", clip.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["media"]["video"]["codec"], "vp8");
    assert_eq!(j["media"]["video"]["width"], 160);
    assert_eq!(j["media"]["audio"]["codec"], "opus");
    assert!((j["media"]["duration_s"].as_f64().unwrap() - 2.0).abs() < 0.05);
    let o = omnid(&["probe", &fixture("omni_a/config.json")]);
    assert_clean_error(&o, &["config.json", "cannot open as media"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn devices_reports_every_kind_even_when_absent() {
    let o = Command::new(env!("CARGO_BIN_EXE_omnid"))
        .arg("devices")
        .env_remove("DISPLAY")
        .env("PULSE_SERVER", "unix:/nonexistent/omnid-pulse")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("PulseAudio: unavailable"), "{text}");
    assert!(text.contains("screen: absent (no X display"), "{text}");
    assert!(text.contains("camera:"), "{text}");
}

/// Reads a WAV file omnid wrote: (rate, bits, float?, samples as f32).
fn read_wav(path: &Path) -> (u32, u16, bool, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let float = spec.sample_format == hound::SampleFormat::Float;
    let samples = if float {
        r.samples::<f32>().map(|s| s.unwrap()).collect()
    } else {
        r.samples::<i16>().map(|s| s.unwrap() as f32 / 32768.0).collect()
    };
    (spec.sample_rate, spec.bits_per_sample, float, samples)
}

#[test]
fn ask_speak_writes_the_streamed_speech_and_reports_it() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let (f32_path, s16_path) = (dir.join("speak-omni_c-f32.wav"), dir.join("speak-omni_c-s16.wav"));
    let (model, image) = (fixture("omni_c"), fixture("omni_a/inputs/img_0.png"));
    let run = |path: &Path, format: &str| {
        let p = path.display().to_string();
        let args = [
            "ask",
            "--model",
            &model,
            "--greedy",
            "--max-tokens",
            "8",
            "--speak",
            &p,
            "--speak-format",
            format,
            "--speaker",
            "SERENA",
            "--speak-context",
            "exact",
            "--speak-max-frames",
            "40",
            "--json",
            "--image",
            &image,
            "Describe the image.",
        ];
        json_of(&omnid(&args))
    };
    let j = run(&f32_path, "f32");
    let a = &j["audio"];
    let frames = a["frames"].as_u64().unwrap() as usize;
    assert!(frames > 0, "{j}");
    assert_eq!(a["samples"].as_u64().unwrap() as usize, 1920 * frames - 555, "the length law of Code2Wav");
    assert_eq!(
        (a["sample_rate"].as_u64(), a["speaker"].as_str(), a["format"].as_str()),
        (Some(24000), Some("SERENA"), Some("f32"))
    );
    assert!(matches!(a["stop_reason"].as_str(), Some("eos" | "length")), "{j}");
    let first_audio = j["first_audio_ms"].as_f64().unwrap();
    assert!(first_audio > 0.0 && first_audio >= j["first_token_ms"].as_f64().unwrap(), "{j}");
    assert!(j["audio_rtf"].as_f64().unwrap() > 0.0);
    for k in [
        "talker_prefill_ms",
        "talker_first_frame_ms",
        "talker_step_ms",
        "code_predictor_ms_per_frame",
        "code2wav_ms_per_chunk",
    ] {
        assert!(j["speech_timings"][k].as_f64().is_some_and(|v| v >= 0.0), "{k}: {j}");
    }
    let (rate, bits, float, samples) = read_wav(&f32_path);
    assert_eq!((rate, bits, float, samples.len()), (24000, 32, true, 1920 * frames - 555));
    assert!(samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    assert!(samples.iter().any(|s| s.abs() > 1e-3), "silence");
    // Greedy is deterministic: the s16 file holds the same speech, quantised.
    let j16 = run(&s16_path, "s16");
    assert_eq!(j16["audio"]["frames"], j["audio"]["frames"]);
    let (_, bits16, float16, s16) = read_wav(&s16_path);
    assert_eq!((bits16, float16, s16.len()), (16, false, samples.len()));
    let worst = samples.iter().zip(&s16).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1.0 / 32768.0, "s16 differs from f32 by {worst}");
}

#[test]
fn ask_speak_refuses_what_cannot_be_spoken() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("speak-refused.wav");
    let p = out.display().to_string();
    // An unknown voice names the ones the checkpoint has.
    let o = omnid(&["ask", "--model", &fixture("omni_c"), "--speak", &p, "--speaker", "Nobody", "Hi"]);
    assert_clean_error(&o, &["unknown speaker \"Nobody\"", "aiden, chelsie, ethan, serena"]);
    // A thinker-only checkpoint (Thinking/Captioner style) and Qwen3-VL have no talker.
    let o = omnid(&["ask", "--model", &fixture("omni_b"), "--speak", &p, "Hi"]);
    assert_clean_error(&o, &["no speech output", "enable_audio_output is false"]);
    let o = omnid(&["ask", "--model", &fixture("vl_dense_a"), "--speak", &p, "Hi"]);
    assert_clean_error(&o, &["Qwen3-VL has no speech output"]);
    assert!(!out.exists(), "no file is written for a refused request");
    // Options that cannot work.
    let o = omnid(&["ask", "--speak", &p, "--speak-context", "lots", "Hi"]);
    assert_clean_error(&o, &["--speak-context \"lots\""]);
    let o = omnid(&["ask", "--speak", &p, "--speak-max-frames", "0", "Hi"]);
    assert_clean_error(&o, &["max_frames must be at least 1"]);
    let o = omnid(&["ask", "--speak", "/nonexistent-dir/x.wav", "Hi"]);
    assert_clean_error(&o, &["/nonexistent-dir/x.wav"]);
}
