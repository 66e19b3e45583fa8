//! Media of a chat request: base64 → decoded images, 16 kHz audio and sampled video frames, on a blocking worker
//! (never on the engine thread, never on an async worker). WAV is decoded in memory; other
//! containers go through FFmpeg via a private temporary file, removed right after.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;

use super::validate::EncodedMedia;
use crate::engine::media::{load_audio, load_video, MediaItem, VideoRequest};

/// How the model takes media.
pub struct MediaSettings<'a> {
    pub max_pixels: u64,
    pub audio_rate_hz: u32,
    /// Frame sampling and budgets of videos.
    pub video: VideoRequest<'a>,
}

/// Decodes every media item, naming the one that fails.
pub fn decode_all(items: &[EncodedMedia], settings: &MediaSettings) -> Result<Vec<MediaItem>, String> {
    items.iter().enumerate().map(|(i, m)| decode_one(m, settings).map_err(|e| format!("media item {i}: {e}"))).collect()
}

fn decode_one(item: &EncodedMedia, settings: &MediaSettings) -> Result<MediaItem, String> {
    let (max_pixels, audio_rate_hz) = (settings.max_pixels, settings.audio_rate_hz);
    let b64 = base64::engine::general_purpose::STANDARD;
    match item {
        EncodedMedia::ImageBase64(data) => {
            let bytes = b64.decode(data.trim()).map_err(|e| format!("image data is not valid base64 ({e})"))?;
            let img = omnid_codecs::image_decode::decode_image_bytes(&bytes, max_pixels)
                .map_err(|e| format!("image: {e}"))?;
            Ok(MediaItem::Image(img))
        }
        EncodedMedia::AudioBase64 { data, format } => {
            let bytes = b64.decode(data.trim()).map_err(|e| format!("audio data is not valid base64 ({e})"))?;
            if format == "wav" {
                let wav = omnid_codecs::wav::read_wav_bytes(&bytes).map_err(|e| format!("audio: {e}"))?;
                let samples = omnid_codecs::resample::resample(&wav.samples, wav.sample_rate_hz, audio_rate_hz)
                    .map_err(|e| format!("audio: {e}"))?;
                return Ok(MediaItem::Audio(samples));
            }
            let path = TempFile::write(&bytes, format).map_err(|e| format!("audio: cannot stage the upload ({e})"))?;
            let samples = load_audio(&path.0, audio_rate_hz).map_err(|e| format!("{format} audio: {e}"))?;
            Ok(MediaItem::Audio(samples))
        }
        EncodedMedia::VideoBase64 { data, ext } => {
            let bytes = b64.decode(data.trim()).map_err(|e| format!("video data is not valid base64 ({e})"))?;
            let path = TempFile::write(&bytes, ext).map_err(|e| format!("video: cannot stage the upload ({e})"))?;
            load_video(&path.0, &settings.video).map_err(|e| format!("{ext} video: {e}"))
        }
    }
}

/// A file in the temporary directory, deleted on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn write(bytes: &[u8], ext: &str) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("omnid-upload-{}-{n}.{ext}", std::process::id()));
        std::fs::write(&path, bytes)?;
        Ok(Self(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
