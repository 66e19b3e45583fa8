//! The daemon's TOML configuration (`configs/*.toml`, chosen with `--config`). Command-line
//! flags override the file; the file overrides the built-in defaults. Unknown keys are
//! errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A whole config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OmnidConfig {
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub video: VideoSection,
    #[serde(default)]
    pub speech: SpeechSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub jobs: JobsSection,
    #[serde(default)]
    pub ocr: OcrSection,
    #[serde(default)]
    pub agent: AgentSection,
}

/// `[agent]`: GUI-agent sessions of `omnid serve` (`/v1/agent/sessions`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// X displays a session may drive (a request names one of them). Empty (the default): agent
    /// sessions are off, so no client can make the daemon move a mouse it was not given.
    #[serde(default)]
    pub displays: Vec<String>,
    /// Where each session's step log goes (a folder per session). Absent: `agent-logs` in the
    /// job folder.
    #[serde(default)]
    pub log_dir: Option<PathBuf>,
}

/// `[ocr]`: `POST /v1/ocr` of `omnid serve`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OcrSection {
    /// Documents read at once; more are refused with 429. Each holds one page image and its
    /// vision encoder activations on its own thread, and sends its pages to the engine behind
    /// every interactive request.
    #[serde(default = "ocr_concurrent")]
    pub max_concurrent: usize,
    /// Largest upload (image or PDF), bytes.
    #[serde(default = "ocr_upload_bytes")]
    pub max_upload_bytes: u64,
    /// Most pages one request may read (select fewer with `pages=`).
    #[serde(default = "ocr_max_pages")]
    pub max_pages: usize,
}

impl Default for OcrSection {
    fn default() -> Self {
        Self { max_concurrent: ocr_concurrent(), max_upload_bytes: ocr_upload_bytes(), max_pages: ocr_max_pages() }
    }
}

fn ocr_concurrent() -> usize {
    2
}
fn ocr_upload_bytes() -> u64 {
    512 << 20
}
fn ocr_max_pages() -> usize {
    1000
}

/// `[jobs]`: video analysis jobs of `omnid serve`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobsSection {
    /// Where the job store (`jobs.sqlite`) and uploaded videos live. Absent:
    /// `$XDG_STATE_HOME/omnid`, else `~/.local/state/omnid`. `--jobs-dir` overrides it.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Jobs analysed at once (1–8). Each has one window at the engine at a time, behind every
    /// interactive request.
    #[serde(default = "job_workers")]
    pub workers: usize,
    /// Jobs that may wait to start; more are refused with 429.
    #[serde(default = "max_waiting_jobs")]
    pub max_waiting: usize,
    /// Largest video upload, bytes.
    #[serde(default = "max_upload_bytes")]
    pub max_upload_bytes: u64,
    /// Folders whose videos a job may name by path (`{"video": "/srv/videos/a.mp4"}`). Empty
    /// (the default): only uploads, so a client cannot make the daemon read its files.
    #[serde(default)]
    pub media_dirs: Vec<PathBuf>,
}

impl JobsSection {
    /// The job folder: `dir`, else `$XDG_STATE_HOME/omnid`, else `~/.local/state/omnid`.
    pub fn resolved_dir(&self) -> Result<PathBuf, String> {
        if let Some(d) = &self.dir {
            return Ok(d.clone());
        }
        let state = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/state"));
        state.or(home).map(|d| d.join("omnid")).ok_or_else(|| {
            "no folder for the job store: set [jobs] dir or --jobs-dir (neither XDG_STATE_HOME nor HOME is set)".into()
        })
    }
}

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            dir: None,
            workers: job_workers(),
            max_waiting: max_waiting_jobs(),
            max_upload_bytes: max_upload_bytes(),
            media_dirs: Vec::new(),
        }
    }
}

fn job_workers() -> usize {
    1
}
fn max_waiting_jobs() -> usize {
    64
}
fn max_upload_bytes() -> u64 {
    4 << 30
}

/// `[server]`: `omnid serve`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address and port to listen on. Loopback by default: exposing the daemon is a choice.
    #[serde(default = "bind")]
    pub bind: String,
    /// Bearer key every request must carry (`Authorization: Bearer …`); `OMNID_API_KEY` and
    /// `--api-key` override it. Absent: no authentication (only sensible on loopback).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Requests that may wait behind the running ones; more are refused with 429.
    #[serde(default = "max_queued")]
    pub max_queued: usize,
    /// Answers generated at once, their decode steps batched (continuous batching).
    #[serde(default = "max_batch")]
    pub max_batch: usize,
    /// Largest request body (JSON with base64 media), bytes.
    #[serde(default = "max_request_bytes")]
    pub max_request_bytes: usize,
    /// Images and audio clips per request.
    #[serde(default = "max_media_items")]
    pub max_media_items: usize,
    /// Largest `max_tokens` a request may ask for.
    #[serde(default = "max_tokens_cap")]
    pub max_tokens: usize,
    /// Longest Realtime session, seconds (OpenAI's limit is an hour); then it is closed.
    #[serde(default = "realtime_session_s")]
    pub realtime_session_s: u64,
    /// Fetch `http(s)://` image and video URLs of chat requests (off: only `data:` URLs).
    #[serde(default)]
    pub remote_media: bool,
    /// Let remote URLs reach loopback, private and link-local addresses (off: refused, so a
    /// request cannot make the daemon probe its own network).
    #[serde(default)]
    pub remote_media_allow_private: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            bind: bind(),
            api_key: None,
            max_queued: max_queued(),
            max_batch: max_batch(),
            max_request_bytes: max_request_bytes(),
            max_media_items: max_media_items(),
            max_tokens: max_tokens_cap(),
            realtime_session_s: realtime_session_s(),
            remote_media: false,
            remote_media_allow_private: false,
        }
    }
}

fn bind() -> String {
    "127.0.0.1:8080".into()
}
fn max_queued() -> usize {
    8
}
fn max_batch() -> usize {
    // The CPU's fused MoE decode kernel takes up to 8 rows; beyond that experts run one by one.
    8
}
fn max_request_bytes() -> usize {
    32 << 20
}
fn max_media_items() -> usize {
    16
}
fn realtime_session_s() -> u64 {
    3600
}
fn max_tokens_cap() -> usize {
    4096
}

/// `[speech]`: spoken answers (`omnid ask --speak`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpeechSection {
    /// Voice; absent: Ethan, or the checkpoint's first speaker.
    #[serde(default)]
    pub speaker: Option<String>,
    /// Longest answer in 80 ms frames (transformers: talker_max_new_tokens 4096 → 4095 frames).
    #[serde(default = "max_frames")]
    pub max_frames: usize,
    /// Frames per Code2Wav decode after the first (which is always one frame).
    #[serde(default = "chunk_frames")]
    pub chunk_frames: usize,
    /// Absent (default): Code2Wav carries its state between chunks (exact, each frame decoded
    /// once). A number: each chunk re-decodes that many earlier frames instead (vLLM-Omni: 25).
    #[serde(default)]
    pub left_context: Option<usize>,
}

impl Default for SpeechSection {
    fn default() -> Self {
        Self { speaker: None, max_frames: max_frames(), chunk_frames: chunk_frames(), left_context: None }
    }
}

fn max_frames() -> usize {
    4095
}
fn chunk_frames() -> usize {
    10
}

/// `[model]`: which checkpoint and how to hold it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Checkpoint directory; absent means the embedded tiny random-weight model.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `auto`, `f32`, `bf16` or `f16`.
    #[serde(default = "auto")]
    pub dtype: String,
    /// Quantize the weights as they load (`--quant`): `q8_0`, `q6_k`, `q4_k`, optionally with
    /// per-class overrides (`q4_k,attention=q8_0`). Absent: the checkpoint's precision.
    #[serde(default)]
    pub quant: Option<String>,
    /// `cpu`, or `cuda` / `cuda:N` in a build with the `cuda` feature.
    #[serde(default = "cpu")]
    pub device: String,
}

fn cpu() -> String {
    "cpu".into()
}

impl Default for ModelSection {
    fn default() -> Self {
        Self { path: None, dtype: auto(), quant: None, device: cpu() }
    }
}

/// `[limits]`: what a request may ask for.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest image (or video frame) accepted, in pixels, checked from the header before
    /// decoding. Default: Pillow's decompression-bomb limit.
    #[serde(default = "max_input_pixels")]
    pub max_input_pixels: u64,
    /// Default token budget of a generation.
    #[serde(default = "max_new_tokens")]
    pub max_new_tokens: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self { max_input_pixels: max_input_pixels(), max_new_tokens: max_new_tokens() }
    }
}

/// `[video]`: sampling and the pixel budget of video frames.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VideoSection {
    /// Frames sampled per second. Absent: the checkpoint's video processor `fps`, else 2 (the
    /// rate Qwen3-Omni and Qwen3-VL were evaluated at).
    #[serde(default)]
    pub fps: Option<f64>,
    /// Override of the checkpoint processor's lower pixel bound (per frame for Qwen3-Omni,
    /// per clip for Qwen3-VL).
    #[serde(default)]
    pub min_pixels: Option<u64>,
    /// Override of the upper pixel bound; lower it to spend fewer tokens on video.
    #[serde(default)]
    pub max_pixels: Option<u64>,
}

fn auto() -> String {
    "auto".into()
}
fn max_input_pixels() -> u64 {
    crate::preprocess::image::DEFAULT_MAX_INPUT_PIXELS
}
fn max_new_tokens() -> usize {
    256
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub problem: String,
}

impl OmnidConfig {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let err = |problem: String| ConfigError { path: path.into(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let cfg: Self = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        cfg.validate().map_err(err)?;
        Ok(cfg)
    }

    /// Checks value ranges and relations.
    pub fn validate(&self) -> Result<(), String> {
        crate::engine::model_dir::DTypeChoice::parse(&self.model.dtype).map_err(|e| format!("[model] dtype: {e}"))?;
        if let Some(q) = &self.model.quant {
            crate::models::quant::plan::QuantPlan::parse(q).map_err(|e| format!("[model] quant: {e}"))?;
        }
        if self.limits.max_input_pixels == 0 {
            return Err("[limits] max_input_pixels must be > 0".into());
        }
        if self.limits.max_new_tokens == 0 {
            return Err("[limits] max_new_tokens must be > 0".into());
        }
        if let Some(fps) = self.video.fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(format!("[video] fps must be > 0 (got {fps})"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.video.min_pixels, self.video.max_pixels) {
            if lo > hi {
                return Err(format!("[video] min_pixels {lo} is above max_pixels {hi}"));
            }
        }
        if self.speech.max_frames == 0 || self.speech.chunk_frames == 0 || self.speech.left_context == Some(0) {
            return Err("[speech] max_frames, chunk_frames and left_context must be > 0".into());
        }
        let j = &self.jobs;
        if !(1..=crate::engine::service::BATCH_QUEUE).contains(&j.workers) {
            return Err(format!(
                "[jobs] workers is {}; it must be between 1 and {}",
                j.workers,
                crate::engine::service::BATCH_QUEUE
            ));
        }
        if j.max_waiting == 0 || j.max_upload_bytes == 0 {
            return Err("[jobs] max_waiting and max_upload_bytes must be > 0".into());
        }
        if let Some(d) = self.agent.displays.iter().find(|d| !d.starts_with(':') && !d.contains(':')) {
            return Err(format!("[agent] displays: {d:?} is not an X display name such as \":99\""));
        }
        let o = &self.ocr;
        if !(1..=crate::engine::service::BATCH_QUEUE).contains(&o.max_concurrent) {
            return Err(format!(
                "[ocr] max_concurrent is {}; it must be between 1 and {}",
                o.max_concurrent,
                crate::engine::service::BATCH_QUEUE
            ));
        }
        if o.max_upload_bytes == 0 || o.max_pages == 0 {
            return Err("[ocr] max_upload_bytes and max_pages must be > 0".into());
        }
        if let Some(d) = j.media_dirs.iter().find(|d| !d.is_absolute()) {
            return Err(format!("[jobs] media_dirs: {} is not an absolute path", d.display()));
        }
        let v = &self.server;
        if v.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("[server] bind {:?} is not an address:port such as 127.0.0.1:8080", v.bind));
        }
        if v.realtime_session_s == 0 {
            return Err("[server] realtime_session_s must be at least 1".into());
        }
        if v.max_batch == 0 || v.max_batch > 256 {
            return Err(format!("[server] max_batch is {}; it must be between 1 and 256", v.max_batch));
        }
        if v.max_queued == 0 || v.max_request_bytes < 1024 || v.max_media_items == 0 || v.max_tokens == 0 {
            return Err(
                "[server] max_queued, max_media_items and max_tokens must be > 0, max_request_bytes ≥ 1024".into()
            );
        }
        if v.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err("[server] api_key is empty (remove the key to run without authentication)".into());
        }
        if self.speech.speaker.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err("[speech] speaker is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                OmnidConfig::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 2, "configs/ should hold the documented examples");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let e = toml::from_str::<OmnidConfig>("[model]\ndtyp = \"f32\"").unwrap_err().to_string();
        assert!(e.contains("dtyp"), "{e}");
        let c: OmnidConfig = toml::from_str("[video]\nfps = 0.0").unwrap();
        assert!(c.validate().unwrap_err().contains("fps"));
        let c: OmnidConfig = toml::from_str("[model]\ndtype = \"f8\"").unwrap();
        assert!(c.validate().unwrap_err().contains("dtype"));
        let c: OmnidConfig = toml::from_str("[video]\nmin_pixels = 10\nmax_pixels = 5").unwrap();
        assert!(c.validate().unwrap_err().contains("min_pixels"));
        let c: OmnidConfig = toml::from_str("[speech]\nchunk_frames = 0").unwrap();
        assert!(c.validate().unwrap_err().contains("chunk_frames"));
        let e = toml::from_str::<OmnidConfig>("[speech]\nvoice = \"x\"").unwrap_err().to_string();
        assert!(e.contains("voice"), "{e}");
    }

    #[test]
    fn speech_defaults_match_the_documented_file() {
        let shipped =
            OmnidConfig::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.toml")).unwrap();
        assert_eq!(shipped.speech, SpeechSection::default());
        assert_eq!((shipped.speech.max_frames, shipped.speech.left_context), (4095, None));
    }
}
