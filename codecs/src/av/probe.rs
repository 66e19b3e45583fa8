//! What a media file holds, read from its headers without decoding: container, duration, and the main
//! video and audio streams. Values no real recording has (a 100,000-pixel-wide frame, a 500-hour
//! duration, 90,000 fps) are refused here, so nothing downstream sizes a buffer from them.

use std::path::Path;

use ffmpeg_next as ffmpeg;

use super::{best_audio_stream, best_video_stream, origin_seconds, stream_start, ticks_to_seconds, StreamKind};
use crate::{CodecError, Result};

/// The main video stream of a file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoInfo {
    /// Stream index in the container.
    pub index: usize,
    /// FFmpeg's codec name (`h264`, `hevc`, `vp9`, `av1`, …).
    pub codec: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Average frame rate (frames per second).
    pub fps: f64,
    /// Number of frames: the container's count when it stores one, else `duration × fps` rounded.
    pub frames: u64,
    /// Duration of the stream in seconds.
    pub duration_s: f64,
    /// Whether this FFmpeg build can decode the codec.
    pub decodable: bool,
}

/// The main audio stream of a file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioInfo {
    /// Stream index in the container.
    pub index: usize,
    /// FFmpeg's codec name (`aac`, `mp3`, `opus`, `vorbis`, `flac`, `pcm_s16le`, …).
    pub codec: String,
    /// Sample rate in Hz.
    pub sample_rate_hz: u32,
    /// Channel count.
    pub channels: u16,
    /// Where the stream starts on the file's clock (see the module docs of [`crate::av`]), in seconds.
    pub start_s: f64,
    /// Duration of the stream in seconds.
    pub duration_s: f64,
    /// Whether this FFmpeg build can decode the codec.
    pub decodable: bool,
}

/// A media file's container and main streams.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MediaInfo {
    /// FFmpeg's demuxer name (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, `wav`, …).
    pub container: String,
    /// Duration in seconds (the container's, or the longest stream's).
    pub duration_s: f64,
    /// The main video stream, if any (cover art of audio files is not video).
    pub video: Option<VideoInfo>,
    /// The main audio stream, if any.
    pub audio: Option<AudioInfo>,
}

/// Reads the headers of the media file at `path`.
pub fn probe(path: &Path) -> Result<MediaInfo> {
    let mut input = super::open_file(path)?;
    let source_name = path.display().to_string();
    let mut info = describe_input(&input, &source_name)?;
    if info.duration_s <= 0.0 {
        measure_by_demuxing(&mut input, &mut info, &source_name)?;
    }
    Ok(info)
}

/// Files written to a pipe (browser and phone recorders, `ffmpeg … -f webm -`) declare no duration. Their
/// length is measured by reading every packet's timestamp, without decoding (a gigabyte in about a second):
/// the end of the last packet of each stream, and the exact number of video frames.
fn measure_by_demuxing(
    input: &mut ffmpeg::format::context::Input,
    info: &mut MediaInfo,
    source_name: &str,
) -> Result<()> {
    let (video_index, audio_index) = (info.video.as_ref().map(|v| v.index), info.audio.as_ref().map(|a| a.index));
    let mut ends = [0f64; 2];
    let mut video_packets = 0u64;
    let mut errors = 0usize;
    loop {
        // A fresh packet each time: `av_read_frame` does not release what the packet held, so reusing one
        // would leak every packet read (LeakSanitizer found this through the `media_decode` fuzz target).
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(input) {
            Ok(()) => errors = 0,
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::InvalidData) if errors < super::MAX_CONSECUTIVE_DECODE_ERRORS => {
                errors += 1;
                continue;
            }
            Err(e) => {
                return Err(CodecError::MediaDecode {
                    source_name: source_name.into(),
                    detail: format!("reading packets to measure the length: {}", super::describe(&e)),
                })
            }
        }
        let slot = match Some(packet.stream()) {
            i if i == video_index => 0,
            i if i == audio_index => 1,
            _ => continue,
        };
        if slot == 0 {
            video_packets += 1;
        }
        let Some(stream) = input.stream(packet.stream()) else { continue };
        let Some(pts) = packet.pts().or(packet.dts()) else { continue };
        let end = pts.saturating_sub(stream_start(&stream)).saturating_add(packet.duration().max(0));
        ends[slot] = ends[slot].max(ticks_to_seconds(end, stream.time_base()));
    }
    if let Some(v) = info.video.as_mut() {
        v.duration_s = ends[0];
        v.frames = video_packets;
    }
    if let Some(a) = info.audio.as_mut() {
        a.duration_s = ends[1];
    }
    info.duration_s = ends[0].max(ends[1]);
    check_duration(info.duration_s, source_name)
}

/// Reads the headers of a media file held in memory (an upload). Only the demuxer runs; nothing is decoded.
pub fn probe_bytes(bytes: &[u8]) -> Result<MediaInfo> {
    super::init();
    let source_name = format!("in-memory media ({} bytes)", bytes.len());
    if bytes.is_empty() {
        return Err(CodecError::NotMedia { source_name, detail: "no bytes".into() });
    }
    let io = ffmpeg::format::context::StreamIo::from_read_seek(std::io::Cursor::new(bytes.to_vec()))
        .map_err(|e| CodecError::NotMedia { source_name: source_name.clone(), detail: super::describe(&e) })?;
    let input = ffmpeg::format::input_from_stream(io, None, Some(super::demuxer_options(false)))
        .map_err(|e| CodecError::NotMedia { source_name: source_name.clone(), detail: super::describe(&e) })?;
    describe_input(&input, &source_name)
}

pub(crate) fn describe_input(input: &ffmpeg::format::context::Input, source_name: &str) -> Result<MediaInfo> {
    let video = best_video_stream(input).map(|i| video_info(input, i, source_name)).transpose()?;
    let audio = best_audio_stream(input).map(|i| audio_info(input, i, source_name)).transpose()?;
    if video.is_none() && audio.is_none() {
        return Err(CodecError::NotMedia {
            source_name: source_name.into(),
            detail: "holds no video or audio stream".into(),
        });
    }
    let duration_s = [
        container_duration(input),
        video.as_ref().map_or(0.0, |v| v.duration_s),
        audio.as_ref().map_or(0.0, |a| a.duration_s),
    ]
    .into_iter()
    .fold(0.0, f64::max);
    check_duration(duration_s, source_name)?;
    Ok(MediaInfo { container: input.format().name().to_owned(), duration_s, video, audio })
}

/// The container's declared duration in seconds, 0 when it declares none (a live recording written to a
/// pipe). Only a hint: decoding runs to the end of the data, not to this.
pub(crate) fn container_duration(input: &ffmpeg::format::context::Input) -> f64 {
    let d = input.duration();
    if d == ffmpeg::ffi::AV_NOPTS_VALUE || d <= 0 {
        0.0
    } else {
        d as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE)
    }
}

fn check_duration(duration_s: f64, source_name: &str) -> Result<()> {
    if !duration_s.is_finite() || duration_s > super::MAX_DURATION_S {
        return Err(CodecError::MediaLimit {
            source_name: source_name.into(),
            problem: format!(
                "declared duration {duration_s:.0} s is beyond the supported {} hours",
                super::MAX_DURATION_S / 3600.0
            ),
        });
    }
    Ok(())
}

fn stream_duration(input: &ffmpeg::format::context::Input, s: &ffmpeg::format::stream::Stream) -> f64 {
    let d = s.duration();
    if d == ffmpeg::ffi::AV_NOPTS_VALUE || d <= 0 {
        container_duration(input)
    } else {
        ticks_to_seconds(d, s.time_base())
    }
}

fn codec_name(s: &ffmpeg::format::stream::Stream) -> String {
    format!("{:?}", s.parameters().id()).to_lowercase()
}

fn decodable(s: &ffmpeg::format::stream::Stream) -> bool {
    ffmpeg::decoder::find(s.parameters().id()).is_some()
}

/// Describes and checks video stream `index` (and nothing else of the file, so a broken secondary stream
/// does not make the video unreadable).
pub(crate) fn video_info(input: &ffmpeg::format::context::Input, index: usize, source_name: &str) -> Result<VideoInfo> {
    let limit = |problem: String| CodecError::MediaLimit { source_name: source_name.into(), problem };
    let s = input
        .stream(index)
        .ok_or_else(|| CodecError::NoStream { source_name: source_name.into(), kind: StreamKind::Video })?;
    // SAFETY: `parameters()` wraps the stream's live AVCodecParameters, valid while `input` lives.
    let (width, height) = unsafe {
        let p = s.parameters();
        let raw = p.as_ptr();
        ((*raw).width, (*raw).height)
    };
    if width <= 0 || height <= 0 {
        return Err(limit(format!("video stream {index} declares an empty frame size {width}x{height}")));
    }
    let (width, height) = (width as u32, height as u32);
    if width > super::MAX_FRAME_SIDE
        || height > super::MAX_FRAME_SIDE
        || u64::from(width) * u64::from(height) > super::MAX_FRAME_PIXELS
    {
        return Err(limit(format!(
            "video frame size {width}x{height} is beyond the supported {0}x{0} pixels",
            (super::MAX_FRAME_PIXELS as f64).sqrt() as u64
        )));
    }
    let fps = [s.avg_frame_rate(), s.rate()]
        .into_iter()
        .filter(|r| r.numerator() > 0 && r.denominator() > 0)
        .map(f64::from)
        .find(|f| f.is_finite() && *f > 0.0)
        .ok_or_else(|| limit(format!("video stream {index} has no frame rate")))?;
    if fps > super::MAX_FPS {
        return Err(limit(format!("video frame rate {fps:.1} fps is beyond {} fps", super::MAX_FPS)));
    }
    let duration_s = stream_duration(input, &s);
    check_duration(duration_s, source_name)?;
    let frames = if s.frames() > 0 { s.frames() as u64 } else { (duration_s * fps).round().max(0.0) as u64 };
    Ok(VideoInfo { index, codec: codec_name(&s), width, height, fps, frames, duration_s, decodable: decodable(&s) })
}

/// Describes and checks audio stream `index`.
pub(crate) fn audio_info(input: &ffmpeg::format::context::Input, index: usize, source_name: &str) -> Result<AudioInfo> {
    let limit = |problem: String| CodecError::MediaLimit { source_name: source_name.into(), problem };
    let s = input
        .stream(index)
        .ok_or_else(|| CodecError::NoStream { source_name: source_name.into(), kind: StreamKind::Audio })?;
    // SAFETY: as in `video_info`.
    let (rate, channels) = unsafe {
        let p = s.parameters();
        let raw = p.as_ptr();
        ((*raw).sample_rate, (*raw).ch_layout.nb_channels)
    };
    if rate <= 0 || rate > 768_000 {
        return Err(limit(format!("audio stream {index} declares a sample rate of {rate} Hz")));
    }
    if channels <= 0 || channels > 64 {
        return Err(limit(format!("audio stream {index} declares {channels} channels")));
    }
    let duration_s = stream_duration(input, &s);
    check_duration(duration_s, source_name)?;
    Ok(AudioInfo {
        index,
        codec: codec_name(&s),
        sample_rate_hz: rate as u32,
        channels: channels as u16,
        start_s: ticks_to_seconds(stream_start(&s), s.time_base()) - origin_seconds(input),
        duration_s,
        decodable: decodable(&s),
    })
}

impl MediaInfo {
    /// The video stream, or a [`CodecError::NoStream`] naming the file.
    pub fn require_video(&self, source_name: &str) -> Result<&VideoInfo> {
        self.video
            .as_ref()
            .ok_or_else(|| CodecError::NoStream { source_name: source_name.into(), kind: StreamKind::Video })
    }

    /// The audio stream, or a [`CodecError::NoStream`] naming the file.
    pub fn require_audio(&self, source_name: &str) -> Result<&AudioInfo> {
        self.audio
            .as_ref()
            .ok_or_else(|| CodecError::NoStream { source_name: source_name.into(), kind: StreamKind::Audio })
    }
}
