//! Media of a chat request: base64 → decoded images, 16 kHz audio and sampled video frames, on a blocking worker
//! (never on the engine thread, never on an async worker). WAV is decoded in memory; other
//! containers go through FFmpeg via a private temporary file, removed right after.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;

use super::validate::EncodedMedia;
use crate::engine::media::{load_audio, load_video, MediaItem, VideoRequest};

/// Fetching `http(s)://` media (`[server] remote_media`).
#[derive(Debug, Clone)]
pub struct RemoteFetch {
    pub max_bytes: usize,
    pub timeout: std::time::Duration,
    /// Loopback, private and link-local addresses may be reached.
    pub allow_private: bool,
}

/// Redirects a remote URL may take (each hop's address is checked again).
const MAX_REDIRECTS: u32 = 3;

impl RemoteFetch {
    /// The body at `url`, at most `max_bytes`.
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let allow_private = self.allow_private;
        let agent = ureq::AgentBuilder::new()
            .timeout(self.timeout)
            .redirects(MAX_REDIRECTS)
            // Checked where the connection is made, so neither a redirect nor a DNS answer that
            // changes between checks can reach an address the check refused.
            .resolver(move |host: &str| -> std::io::Result<Vec<std::net::SocketAddr>> {
                use std::net::ToSocketAddrs;
                let all: Vec<_> = host.to_socket_addrs()?.collect();
                let ok: Vec<_> = all.iter().copied().filter(|a| allow_private || is_public(a.ip())).collect();
                if ok.is_empty() && !all.is_empty() {
                    return Err(std::io::Error::other(format!(
                        "{host} is a loopback, private or link-local address ([server] remote_media_allow_private is off)"
                    )));
                }
                Ok(ok)
            })
            .build();
        let response = agent.get(url).call().map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("{url}: the server answered HTTP {code}"),
            other => format!("{url}: {other}"),
        })?;
        let mut body = Vec::new();
        use std::io::Read as _;
        response
            .into_reader()
            .take(self.max_bytes as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("{url}: {e}"))?;
        if body.len() > self.max_bytes {
            return Err(format!("{url}: larger than {} bytes ([server] max_request_bytes)", self.max_bytes));
        }
        Ok(body)
    }
}

/// Addresses a request may make the daemon reach by default: not loopback, private, link-local,
/// carrier-grade NAT, unspecified or multicast.
fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// How the model takes media.
pub struct MediaSettings<'a> {
    /// `None`: remote URLs were refused by validation already.
    pub remote: Option<RemoteFetch>,
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
        EncodedMedia::ImageBase64(data) => Ok(MediaItem::Image(decode_image_base64(data, max_pixels)?)),
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
        EncodedMedia::ImageRemote(url) | EncodedMedia::VideoRemote(url) => {
            let remote = settings.remote.as_ref().ok_or("remote media are off; this is a bug")?;
            let bytes = remote.get(url)?;
            if matches!(item, EncodedMedia::ImageRemote(_)) {
                let img = omnid_codecs::image_decode::decode_image_bytes(&bytes, max_pixels)
                    .map_err(|e| format!("image: {e}"))?;
                return Ok(MediaItem::Image(img));
            }
            // FFmpeg recognises the container from its content.
            let path = TempFile::write(&bytes, "bin").map_err(|e| format!("video: cannot stage the download ({e})"))?;
            load_video(&path.0, &settings.video).map_err(|e| format!("video: {e}"))
        }
        EncodedMedia::VideoBase64 { data, ext } => {
            let bytes = b64.decode(data.trim()).map_err(|e| format!("video data is not valid base64 ({e})"))?;
            let path = TempFile::write(&bytes, ext).map_err(|e| format!("video: cannot stage the upload ({e})"))?;
            load_video(&path.0, &settings.video).map_err(|e| format!("{ext} video: {e}"))
        }
    }
}

/// The base64 payload of a `data:image/…;base64,` URL.
pub fn image_data_url_payload(url: &str) -> Result<&str, String> {
    let rest = url.strip_prefix("data:").ok_or("expected a data: URL (data:image/png;base64,…)")?;
    let (head, payload) = rest.split_once(',').ok_or("a data: URL without a comma")?;
    if !head.starts_with("image/") || !head.ends_with(";base64") {
        return Err(format!("data URL of type {head:?}: expected image/…;base64"));
    }
    Ok(payload)
}

/// A base64 image (any format the media layer decodes), within the pixel budget.
pub fn decode_image_base64(data: &str, max_pixels: u64) -> Result<image::RgbImage, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("image data is not valid base64 ({e})"))?;
    omnid_codecs::image_decode::decode_image_bytes(&bytes, max_pixels).map_err(|e| format!("image: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
