//! Helpers shared by the parity tests: fixture paths and building a reference case's prompt
//! the way the engine builds a request's.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use omnid::engine::media::MediaItem;
use omnid::engine::media::{frame_rule, load_audio, load_video, VideoRequest};
use omnid::engine::model_dir::LoadedModel;
use omnid::engine::processor::{build_prompt, media_parts, PromptOptions};
use serde_json::Value;

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// Loads the media of a case the way the engine does for a request.
pub fn load_media(lm: &LoadedModel, dir: &Path, case: &Value) -> Vec<MediaItem> {
    let rule = frame_rule(lm.family);
    let fps = case["processor_call"]["videos_kwargs"]["fps"].as_f64().or(case["video_fps"].as_f64()).unwrap_or(2.0);
    let video = VideoRequest {
        fps,
        rule,
        processor: &lm.processor.video,
        max_tokens: None,
        audio_rate_hz: case["use_audio_in_video"].as_bool().unwrap_or(false).then_some(16_000),
        window: (0.0, None),
    };
    media_parts(&case["messages"])
        .into_iter()
        .map(|(kind, src)| {
            let path = dir.join(&src);
            match kind {
                "image" => MediaItem::Image(omnid_codecs::image_decode::decode_image_file(&path, u64::MAX).unwrap()),
                "audio" => MediaItem::Audio(load_audio(&path, 16_000).unwrap()),
                _ => load_video(&path, &video).unwrap(),
            }
        })
        .collect()
}

/// Applies the reference call's processor kwargs to `lm` (the video size it passed), loads the
/// case's media and builds the prompt the way the engine does for a request.
pub fn build_case(
    lm: &mut LoadedModel,
    default_video: &omnid::preprocess::VideoProcessorConfig,
    dir: &Path,
    case: &Value,
) -> Result<omnid::engine::processor::BuiltPrompt, omnid::engine::processor::ProcessError> {
    lm.processor.video = default_video.clone();
    if let Some(size) = case["processor_call"]["videos_kwargs"].get("size") {
        lm.processor.video.pixels.min_pixels = size["shortest_edge"].as_u64().unwrap();
        lm.processor.video.pixels.max_pixels = size["longest_edge"].as_u64().unwrap();
    }
    let mut template_vars = case["chat_template_kwargs"].as_object().cloned().unwrap_or_default();
    if !case["tools"].is_null() {
        template_vars.insert("tools".into(), case["tools"].clone());
    }
    let opts = PromptOptions {
        add_generation_prompt: true,
        use_audio_in_video: case["use_audio_in_video"].as_bool().unwrap_or(false),
        template_vars,
    };
    let media = load_media(lm, dir, case);
    build_prompt(lm, &case["messages"], &media, &opts)
}

/// A fixture path (model directory or file under tests/fixtures) as a string argument.
pub fn fixture(rel: &str) -> String {
    fixture_dir(rel).display().to_string()
}

/// Runs the ffmpeg CLI (Debian package `ffmpeg`, installed by .ci/run) to make a test video.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("this test needs the ffmpeg CLI: apt-get install ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running `omnid serve` on a free loopback port, stopped on drop.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The job folder made for it (removed on drop).
    jobs_dir: Option<PathBuf>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        // Each daemon gets its own job store (a store is locked by the process that works it).
        let jobs_dir = std::env::temp_dir().join(format!("omnid-test-jobs-{}-{}", std::process::id(), next_id()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_omnid"));
        cmd.args(["serve", "--bind", "127.0.0.1:0"]).args(args);
        let own_jobs_dir = !args.contains(&"--jobs-dir");
        if own_jobs_dir {
            cmd.arg("--jobs-dir").arg(&jobs_dir);
        }
        let mut child = cmd
            .env_remove("OMNID_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start omnid serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("the listening line");
        let addr =
            line.trim().strip_prefix("omnid: listening on http://").unwrap_or_else(|| panic!("{line:?}")).to_string();
        Server { child, addr, jobs_dir: own_jobs_dir.then_some(jobs_dir) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.jobs_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
