//! Media and wire-format codecs for omnid. No model code and no candle: this crate turns bytes and files into
//! plain samples and pixels that the daemon's preprocessing can consume.
//!
//! # Layout
//! - [`wav`]: read WAV files or bytes (8/16/24/32-bit PCM, 32-bit float, any channel count) into mono `f32`.
//! - [`resample`]: whole-buffer, delay-free sample-rate conversion of mono `f32` audio (rubato's FFT resampler).
//! - [`stream_resample`]: the same conversion chunk by chunk, with state kept across chunks, for live audio.
//! - [`wire`]: session wire audio formats (PCM16, G.711 µ-law / A-law, f32) to and from model-rate `f32`.
//! - [`image_decode`]: decode any image format the `image` crate is built with into RGB8, honouring EXIF
//!   orientation, taking the first frame of animations, compositing transparency onto white, and refusing
//!   images over a pixel budget before the full decode.
//! - [`pdf`]: PDF page count and pages rendered to RGB8 through poppler's `pdfinfo` / `pdftoppm`, one
//!   page at a time, each in its own process with a time limit.
//! - `audio_io` (feature `audio-io`): live microphone capture and speaker playback through cpal, with
//!   lock-free ring buffers between the real-time callbacks and the caller, and a device discovery report.
//! - `av` (feature `ffmpeg`): media files (probe, frames at times with seeking, audio tracks on the file's
//!   clock) and live camera / screen / test-source capture through the system FFmpeg libraries.
//!
//! Every fallible function returns [`CodecError`], whose messages name the input (file path or an in-memory
//! description) and the problem.

#[cfg(feature = "audio-io")]
pub mod audio_io;
#[cfg(feature = "ffmpeg")]
pub mod av;
pub mod child;
pub mod image_decode;
pub mod pdf;
pub mod resample;
pub mod stream_resample;
#[cfg(test)]
mod test_support;
pub mod tiff_pages;
pub mod wav;
pub mod wire;

/// Everything that can go wrong while decoding or converting media in this crate.
///
/// `source` fields name the input: a file path, or a description such as `in-memory WAV (1234 bytes)`.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input file does not exist.
    #[error("{source_name}: file not found")]
    NotFound {
        /// The path that was asked for.
        source_name: String,
    },
    /// Any other I/O failure while opening or reading the input.
    #[error("{source_name}: I/O error: {error}")]
    Io {
        /// The input being read.
        source_name: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The bytes are not a WAV file hound can parse (wrong magic, broken header, unsupported encoding).
    #[error("{source_name}: not a readable WAV file: {detail}")]
    NotWav {
        /// The input being read.
        source_name: String,
        /// hound's description of the problem.
        detail: String,
    },
    /// The WAV header promises more sample data than the file holds.
    #[error("{source_name}: truncated WAV: header declares {declared} samples but the data ends after {read}")]
    TruncatedWav {
        /// The input being read.
        source_name: String,
        /// Samples (all channels) the header's data-chunk size declares.
        declared: u64,
        /// Samples actually read before the data ran out.
        read: u64,
    },
    /// The WAV header declares zero channels.
    #[error("{source_name}: WAV header declares zero channels")]
    ZeroChannels {
        /// The input being read.
        source_name: String,
    },
    /// The sample encoding is not one we convert (e.g. 64-bit float, or more than 32 bits per integer sample).
    #[error("{source_name}: unsupported WAV sample format: {bits}-bit {format}")]
    UnsupportedSampleFormat {
        /// The input being read.
        source_name: String,
        /// Bits per sample from the header.
        bits: u16,
        /// `"integer"` or `"float"`.
        format: &'static str,
    },
    /// The audio holds no samples at all.
    #[error("{source_name}: audio is empty (no samples)")]
    EmptyAudio {
        /// The input being read.
        source_name: String,
    },
    /// A sample rate of zero was given to the resampler.
    #[error("invalid sample rate for resampling: {from_hz} Hz -> {to_hz} Hz (rates must be > 0)")]
    InvalidSampleRate {
        /// Input rate.
        from_hz: u32,
        /// Output rate.
        to_hz: u32,
    },
    /// rubato refused to build or run the resampler.
    #[error("resampling {from_hz} Hz -> {to_hz} Hz failed: {detail}")]
    Resample {
        /// Input rate.
        from_hz: u32,
        /// Output rate.
        to_hz: u32,
        /// rubato's description of the problem.
        detail: String,
    },
    /// A session's wire audio format is unknown or unsupported, or its byte stream is malformed.
    #[error("wire audio format {format}: {problem}")]
    WireFormat {
        /// The format as given or as parsed (e.g. `audio/pcm;rate=24000`).
        format: String,
        /// What is wrong (unknown name, unsupported rate, a partial sample at the end of the stream).
        problem: String,
    },
    /// The content is not in any image format this build can decode.
    #[error("{source_name}: unrecognised or unsupported image format")]
    UnknownImageFormat {
        /// The input being decoded.
        source_name: String,
    },
    /// The image's declared size exceeds the caller's pixel budget; nothing was decoded.
    #[error("{source_name}: image is {width}x{height} = {pixels} pixels, over the limit of {max_pixels} pixels")]
    ImageTooLarge {
        /// The input being decoded.
        source_name: String,
        /// Declared width in pixels.
        width: u32,
        /// Declared height in pixels.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The budget that was exceeded.
        max_pixels: u64,
    },
    /// The image declares a zero width or height.
    #[error("{source_name}: image has an empty size ({width}x{height})")]
    EmptyImage {
        /// The input being decoded.
        source_name: String,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The decoder failed on the image data (corrupt or truncated file, unsupported variant).
    #[error("{source_name}: cannot decode image: {detail}")]
    ImageDecode {
        /// The input being decoded.
        source_name: String,
        /// The `image` crate's description of the problem.
        detail: String,
    },
    /// An audio host, device or stream is missing or failed: no sound card, no sound server, an unknown device
    /// name, a configuration the device refuses, or an error the running stream reported.
    #[error("{device}: {problem}")]
    AudioDevice {
        /// The device as opened or asked for, with its role and host, e.g. `microphone (ALSA: default)`.
        device: String,
        /// What went wrong, ending with the backend's own words in parentheses where it gave any.
        problem: String,
    },
    /// FFmpeg cannot open the file as media: empty, a directory, not a known container, truncated headers.
    #[cfg(feature = "ffmpeg")]
    #[error("{source_name}: cannot open as media: {detail}")]
    NotMedia {
        /// The file or device being opened.
        source_name: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The media has no stream of the kind asked for (a video without sound, an audio file without samples).
    #[cfg(feature = "ffmpeg")]
    #[error("{source_name}: has no {kind} stream")]
    NoStream {
        /// The file being read.
        source_name: String,
        /// Video or audio.
        kind: av::StreamKind,
    },
    /// The stream's codec has no decoder in the system FFmpeg.
    #[cfg(feature = "ffmpeg")]
    #[error("{source_name}: the {kind} codec '{codec}' is not supported by this FFmpeg build (no decoder)")]
    UnsupportedCodec {
        /// The file being read.
        source_name: String,
        /// Video or audio.
        kind: av::StreamKind,
        /// FFmpeg's codec id, lower case.
        codec: String,
    },
    /// Decoding failed part way (corrupt or truncated stream data).
    #[cfg(feature = "ffmpeg")]
    #[error("{source_name}: cannot decode: {detail}")]
    MediaDecode {
        /// The file being read.
        source_name: String,
        /// What went wrong, with FFmpeg's description.
        detail: String,
    },
    /// The media declares something no real recording has: absurd dimensions, duration or frame rate.
    #[cfg(feature = "ffmpeg")]
    #[error("{source_name}: {problem}")]
    MediaLimit {
        /// The file being read.
        source_name: String,
        /// Which value is out of range, and the range.
        problem: String,
    },
    /// A time range or sampling request that the media cannot satisfy.
    #[cfg(feature = "ffmpeg")]
    #[error("{source_name}: {problem}")]
    InvalidRequest {
        /// The file being read.
        source_name: String,
        /// What was asked and why it cannot be done.
        problem: String,
    },
    /// A PDF that cannot be rendered: broken, encrypted, without pages, or the renderer missing.
    #[error("{source_name}: {problem}")]
    Pdf {
        /// The file being read.
        source_name: String,
        /// What is wrong, in words (the renderer's own message where it has one).
        problem: String,
    },
    /// A camera, screen or test source cannot be opened or read.
    #[cfg(feature = "ffmpeg")]
    #[error("{device}: {problem}")]
    VideoDevice {
        /// The source as `av::live::LiveSource` writes it (e.g. `screen::99`, `camera:/dev/video0`, `lavfi:testsrc`).
        device: String,
        /// What is wrong.
        problem: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, CodecError>;

/// Maps an error from opening or reading `source_name` to [`CodecError::NotFound`] or [`CodecError::Io`].
pub(crate) fn io_error(source_name: &str, error: std::io::Error) -> CodecError {
    if error.kind() == std::io::ErrorKind::NotFound {
        CodecError::NotFound { source_name: source_name.to_owned() }
    } else {
        CodecError::Io { source_name: source_name.to_owned(), error }
    }
}
