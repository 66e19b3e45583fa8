//! Media files and capture devices through the system FFmpeg libraries (ffmpeg-next, built against
//! Debian 12's FFmpeg 5.1).
//!
//! # Layout
//! - [`probe`]: what a file holds (container, duration, video and audio streams) without decoding it.
//! - [`video`]: RGB frames at requested times, with presentation timestamps in seconds; seeks to the
//!   first requested time instead of decoding from the start, so long files are read window by window.
//! - [`audio`]: an audio track (of an audio or a video file) as mono `f32` at a requested rate,
//!   resampled with rubato, placed on the same clock as the video frames.
//! - [`live`]: camera, screen and FFmpeg test sources (v4l2, x11grab, lavfi) sampled at a requested fps.
//! - [`rgb`]: pixel-format conversion of decoded frames to packed RGB8.
//!
//! # One clock per file
//! Streams need not start at zero (a WebM's video may start at 0.007 s and its Opus audio at -0.007 s
//! because of the codec's pre-skip). Every time this module reports is measured from the file's
//! *origin*: the start time of its video stream when it has one, otherwise of its audio stream. So
//! the first video frame is at 0 s, and an audio sample reported at `t` plays together with the frame
//! reported at `t`; audio that starts before the origin is cut, audio that starts after it is preceded
//! by silence.

pub mod audio;
pub mod live;
pub mod probe;
pub mod rgb;
pub mod video;

use std::path::Path;
use std::sync::Once;

use ffmpeg_next as ffmpeg;

use crate::{io_error, CodecError, Result};

/// Largest frame we agree to decode, in pixels (8192 × 8192): above this a corrupt or hostile header
/// would make the decoder allocate gigabytes per frame.
pub const MAX_FRAME_PIXELS: u64 = 8192 * 8192;
/// Largest frame side we accept.
pub const MAX_FRAME_SIDE: u32 = 16384;
/// Longest media we accept, in seconds (48 hours). Anything longer is a broken header, not a recording.
pub const MAX_DURATION_S: f64 = 48.0 * 3600.0;
/// Highest frame rate we accept as genuine; container rates above this are timebase artefacts.
pub const MAX_FPS: f64 = 1000.0;
/// Consecutive packets the decoder may reject before we call the file corrupt: a few damaged packets
/// are skipped (FFmpeg conceals the damage), an unbroken run means nothing decodable is left.
pub(crate) const MAX_CONSECUTIVE_DECODE_ERRORS: usize = 64;

/// Initialises FFmpeg once per process and keeps its own logging to errors only: every failure we
/// care about comes back as a return code and is reported through [`CodecError`].
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // `init` only registers devices and sets up networking, it cannot fail on FFmpeg 5.
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// Which kind of stream a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Video,
    Audio,
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamKind::Video => "video",
            StreamKind::Audio => "audio",
        })
    }
}

/// Opens a media file for demuxing after checking what FFmpeg would otherwise fail on obscurely (or,
/// inside ffmpeg-next, panic on: a path that is not UTF-8 or holds a NUL byte).
pub(crate) fn open_file(path: &Path) -> Result<ffmpeg::format::context::Input> {
    init();
    let source_name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| io_error(&source_name, e))?;
    if meta.is_dir() {
        return Err(CodecError::NotMedia { source_name, detail: "is a directory, not a media file".into() });
    }
    if meta.len() == 0 {
        return Err(CodecError::NotMedia { source_name, detail: "file is empty (0 bytes)".into() });
    }
    match path.to_str() {
        Some(s) if !s.contains('\0') => {}
        _ => {
            return Err(CodecError::NotMedia {
                source_name,
                detail: "path is not valid UTF-8 (FFmpeg needs a UTF-8 path)".into(),
            })
        }
    }
    ffmpeg::format::input_with_dictionary(path, demuxer_options(true)).map_err(|e| {
        let detail = match e {
            ffmpeg::Error::InvalidData | ffmpeg::Error::DemuxerNotFound => {
                format!("{} (supported containers: {})", describe(&e), ALLOWED_DEMUXERS.replace(',', ", "))
            }
            other => describe(&other),
        };
        CodecError::NotMedia { source_name, detail }
    })
}

/// The demuxers omnid opens, by FFmpeg name: recordings users have. Playlists and indirections (HLS, DASH,
/// concat, image sequences, `tee`, …) are left out on purpose: a file that names other files or URLs would
/// make an upload read whatever it points at on the server.
pub const ALLOWED_DEMUXERS: &str = "mov,mp4,m4a,matroska,webm,avi,mpegts,mpeg,flv,asf,ogg,mp3,wav,w64,flac,aac,ac3,\
eac3,amr,aiff,caf,ivf,obu,h264,hevc,m4v,yuv4mpegpipe";

/// Options for opening untrusted media: only [`ALLOWED_DEMUXERS`], and only the `file` protocol for paths
/// (nothing at all for in-memory input, which reads through our own I/O callbacks).
pub(crate) fn demuxer_options(file: bool) -> ffmpeg::Dictionary<'static> {
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", ALLOWED_DEMUXERS);
    options.set("protocol_whitelist", if file { "file" } else { "" });
    options
}

/// FFmpeg's error text, with the two codes users meet most spelled out.
pub(crate) fn describe(e: &ffmpeg::Error) -> String {
    match e {
        ffmpeg::Error::InvalidData => "not a recognised media container, or its data is corrupt".into(),
        ffmpeg::Error::Eof => "the file ends before its headers are complete (truncated?)".into(),
        other => other.to_string(),
    }
}

/// A stream's start time in its own time base; FFmpeg's "no value" (`AV_NOPTS_VALUE`) means 0.
pub(crate) fn stream_start(stream: &ffmpeg::format::stream::Stream) -> i64 {
    let start = stream.start_time();
    if start == ffmpeg::ffi::AV_NOPTS_VALUE {
        0
    } else {
        start
    }
}

/// Seconds of `ts` ticks in time base `tb`.
pub(crate) fn ticks_to_seconds(ts: i64, tb: ffmpeg::Rational) -> f64 {
    if tb.denominator() == 0 {
        return 0.0;
    }
    ts as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
}

/// Ticks of time base `tb` in `seconds`, rounded down (saturating, so absurd inputs cannot overflow).
pub(crate) fn seconds_to_ticks(seconds: f64, tb: ffmpeg::Rational) -> i64 {
    if tb.numerator() == 0 {
        return 0;
    }
    let ticks = (seconds * f64::from(tb.denominator()) / f64::from(tb.numerator())).floor();
    ticks.clamp(i64::MIN as f64 / 2.0, i64::MAX as f64 / 2.0) as i64
}

/// The file's clock origin in seconds of container time: its video stream's start when it has a video
/// stream, else its audio stream's (see the module docs).
pub(crate) fn origin_seconds(input: &ffmpeg::format::context::Input) -> f64 {
    let best = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .filter(|s| !is_cover_art(s))
        .or_else(|| input.streams().best(ffmpeg::media::Type::Audio));
    best.map(|s| ticks_to_seconds(stream_start(&s), s.time_base())).unwrap_or(0.0)
}

/// Whether a video stream is only an attached picture (the cover of an MP3 or M4A), which is not video.
pub(crate) fn is_cover_art(stream: &ffmpeg::format::stream::Stream) -> bool {
    stream.disposition().contains(ffmpeg::format::stream::Disposition::ATTACHED_PIC)
}

/// The main video stream, ignoring cover art.
pub(crate) fn best_video_stream(input: &ffmpeg::format::context::Input) -> Option<usize> {
    input.streams().best(ffmpeg::media::Type::Video).filter(|s| !is_cover_art(s)).map(|s| s.index())
}

/// The main audio stream.
pub(crate) fn best_audio_stream(input: &ffmpeg::format::context::Input) -> Option<usize> {
    input.streams().best(ffmpeg::media::Type::Audio).map(|s| s.index())
}

/// Opens a decoder for stream `index`, with frame threading (count 0 lets FFmpeg pick), failing with a
/// clear error when this FFmpeg build has no decoder for the codec.
pub(crate) fn open_decoder(
    input: &ffmpeg::format::context::Input,
    index: usize,
    kind: StreamKind,
    source_name: &str,
) -> Result<ffmpeg::decoder::Opened> {
    let stream = input.stream(index).ok_or_else(|| CodecError::NoStream { source_name: source_name.into(), kind })?;
    let params = stream.parameters();
    let codec_id = params.id();
    let mut ctx = ffmpeg::codec::Context::from_parameters(params)
        .map_err(|e| CodecError::MediaDecode { source_name: source_name.into(), detail: describe(&e) })?;
    if ffmpeg::decoder::find(codec_id).is_none() {
        return Err(CodecError::UnsupportedCodec {
            source_name: source_name.into(),
            kind,
            codec: format!("{codec_id:?}").to_lowercase(),
        });
    }
    // The decoder enforces the frame budget itself too, so a stream that switches to a huge size mid-way
    // (the header only describes its start) fails instead of allocating it.
    // SAFETY: `ctx` owns a valid AVCodecContext that is not opened yet; `max_pixels` is a plain field.
    unsafe {
        (*ctx.as_mut_ptr()).max_pixels = MAX_FRAME_PIXELS as i64;
    }
    ctx.set_threading(ffmpeg::threading::Config {
        kind: ffmpeg::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    let mut decoder = ctx.decoder();
    decoder.set_packet_time_base(stream.time_base());
    decoder.open_as(codec_id).map_err(|e| CodecError::MediaDecode {
        source_name: source_name.into(),
        detail: format!("cannot open the {kind} decoder: {}", describe(&e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_conversions_round_trip_and_saturate() {
        let tb = ffmpeg::Rational::new(1, 90_000);
        assert_eq!(seconds_to_ticks(1.5, tb), 135_000);
        assert!((ticks_to_seconds(135_000, tb) - 1.5).abs() < 1e-12);
        assert!(seconds_to_ticks(1e300, tb) > 0);
        assert_eq!(ticks_to_seconds(5, ffmpeg::Rational::new(1, 0)), 0.0);
    }

    fn open_error(path: &Path) -> String {
        match open_file(path) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_paths_are_named() {
        let dir = std::env::temp_dir().join(format!("omnid-av-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        let err = open_error(&empty);
        assert!(err.contains("empty.mp4") && err.contains("empty (0 bytes)"), "{err}");
        let err = open_error(&dir);
        assert!(err.contains("directory"), "{err}");
        let err = open_error(&dir.join("missing.mkv"));
        assert!(err.contains("missing.mkv") && err.contains("not found"), "{err}");
        let junk = dir.join("junk.mp4");
        std::fs::write(&junk, vec![0x5au8; 4096]).unwrap();
        let err = open_error(&junk);
        assert!(err.contains("junk.mp4") && err.contains("not a recognised media"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
