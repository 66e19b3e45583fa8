//! An audio track (the main audio stream of an audio or video file) as mono `f32` at a requested rate,
//! for a time range on the file's clock (see [`crate::av`]).
//!
//! Decoded frames are placed by their timestamps, not just concatenated: samples before the range start
//! (codec priming, Opus pre-skip, the part of the first packet before a seek point) are cut, a gap in the
//! timestamps becomes silence, so sample `i` of the result plays at `start_s + i / rate` and lines up with
//! the video frames of the same file. Channels are mixed down by their mean (as librosa and the WAV reader
//! do) and the rate is converted with the streaming rubato resampler, so memory grows with the output only.

use std::path::Path;

use ffmpeg_next as ffmpeg;

use super::video::feed_decoder;
use super::{best_audio_stream, open_decoder, origin_seconds, seconds_to_ticks, ticks_to_seconds};
use super::{StreamKind, MAX_DURATION_S};
use crate::stream_resample::StreamResampler;
use crate::{CodecError, Result};

/// Seek instead of decoding from the start when the range starts this far into the file. Audio packets
/// decode at hundreds of times real time, so short distances are cheaper to decode than to seek.
const SEEK_AFTER_S: f64 = 2.0;

/// How far before the range start a seek lands. Decoders need the packets before a point to produce it
/// correctly (AAC's overlapped transform, Opus's 80 ms pre-roll, MP3's bit reservoir); the samples decoded
/// from the pre-roll are cut by timestamp.
const SEEK_PREROLL_S: f64 = 0.5;

/// Largest jump forward in the audio timestamps filled with silence. Recordings paused for a moment have
/// gaps of a second or two; a jump of hours is a broken or hostile file and must not become gigabytes of
/// silence.
const MAX_GAP_S: f64 = 10.0;

/// Timestamp jitter we ignore when placing frames, in seconds: containers round timestamps to their
/// time base (1 ms for Matroska), which must not insert or drop samples between contiguous frames.
const PLACEMENT_TOLERANCE_S: f64 = 0.002;

/// What part of the track to decode, and at which rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioRequest {
    /// Output sample rate in Hz (16000 for the Qwen3-Omni audio encoder).
    pub rate_hz: u32,
    /// Start of the range on the file's clock, in seconds (>= 0).
    pub start_s: f64,
    /// End of the range, exclusive; `None` = to the end of the track.
    pub end_s: Option<f64>,
    /// Refuse ranges longer than this many seconds (memory guard: a 16 kHz hour is 230 MB of `f32`).
    pub max_duration_s: f64,
}

impl AudioRequest {
    /// The whole track at `rate_hz`, up to the 48-hour media limit.
    pub fn whole(rate_hz: u32) -> Self {
        AudioRequest { rate_hz, start_s: 0.0, end_s: None, max_duration_s: MAX_DURATION_S }
    }
}

/// A decoded, resampled mono track.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    /// Mono samples in [-1, 1]; sample `i` plays at `start_s + i / sample_rate_hz`.
    pub samples: Vec<f32>,
    /// Rate of `samples`.
    pub sample_rate_hz: u32,
    /// Time of the first sample on the file's clock (the request's start).
    pub start_s: f64,
    /// The stream's own rate and channel count, for reporting.
    pub source_rate_hz: u32,
    /// Channels mixed down into `samples`.
    pub source_channels: u16,
}

impl AudioTrack {
    /// Duration of the decoded samples in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate_hz)
    }
}

/// Decodes the requested range of the main audio stream of `path`.
pub fn decode_audio(path: &Path, req: &AudioRequest) -> Result<AudioTrack> {
    let source_name = path.display().to_string();
    let invalid = |problem: String| CodecError::InvalidRequest { source_name: source_name.clone(), problem };
    if req.rate_hz == 0 {
        return Err(invalid("output sample rate must be > 0".into()));
    }
    if !(req.start_s.is_finite() && req.start_s >= 0.0) {
        return Err(invalid(format!("audio range start {} s must be a finite time >= 0", req.start_s)));
    }
    if let Some(end) = req.end_s {
        if !(end.is_finite() && end > req.start_s) {
            return Err(invalid(format!("audio range end {end} s must be after its start {} s", req.start_s)));
        }
    }
    let mut input = super::open_file(path)?;
    let index = best_audio_stream(&input)
        .ok_or_else(|| CodecError::NoStream { source_name: source_name.clone(), kind: StreamKind::Audio })?;
    let info = super::probe::audio_info(&input, index, &source_name)?;
    // With no end, decode to the end of the data (a declared duration may be missing or wrong), up to the
    // limit; a range longer than the limit is refused before decoding when the length is known.
    let limit_end = req.start_s + req.max_duration_s;
    let known_end = req.end_s.or((info.duration_s > 0.0).then_some(info.duration_s));
    if let Some(end) = known_end {
        if end - req.start_s > req.max_duration_s {
            return Err(too_long(&source_name, req.start_s, end, req.max_duration_s));
        }
    }
    let end_s = req.end_s.unwrap_or(limit_end);
    let origin = origin_seconds(&input);
    let time_base = input
        .stream(index)
        .ok_or_else(|| CodecError::NoStream { source_name: source_name.clone(), kind: StreamKind::Audio })?
        .time_base();
    let mut decoder = open_decoder(&input, index, StreamKind::Audio, &source_name)?
        .audio()
        .map_err(|e| CodecError::MediaDecode { source_name: source_name.clone(), detail: super::describe(&e) })?;
    let source_rate = decoder.rate();
    if source_rate == 0 {
        return Err(CodecError::MediaLimit {
            source_name,
            problem: "audio stream declares a sample rate of 0 Hz".into(),
        });
    }
    if req.start_s > SEEK_AFTER_S {
        let at = origin + req.start_s - SEEK_PREROLL_S;
        let target = seconds_to_ticks(at, ffmpeg::Rational::new(1, ffmpeg::ffi::AV_TIME_BASE));
        // Only an optimisation: on failure we decode from the start and cut by timestamps.
        if input.seek(target, ..target.saturating_add(1)).is_ok() {
            decoder.flush();
        }
    }

    let decode_error = |detail: String| CodecError::MediaDecode { source_name: source_name.clone(), detail };
    let mut placer = Placer::new(source_rate, req.start_s, end_s);
    let mut resampler = StreamResampler::new(source_rate, req.rate_hz)?;
    let mut out = Vec::new();
    let mut mono = Vec::new();
    let mut frame = ffmpeg::frame::Audio::empty();
    let mut channels = 0u16;
    let mut decoded_any = false;
    let mut overflow = false;
    loop {
        match decoder.receive_frame(&mut frame) {
            Ok(()) => {
                decoded_any = true;
                if frame.rate() != source_rate {
                    return Err(decode_error(format!(
                        "the audio sample rate changes from {source_rate} Hz to {} Hz mid-stream (joined files?)",
                        frame.rate()
                    )));
                }
                channels = to_mono(&frame, &mut mono).map_err(|problem| decode_error(format!("audio: {problem}")))?;
                let ts = frame.timestamp().or(frame.pts());
                // Frames without a timestamp continue where the previous one ended.
                let frame_t = ts.map(|ts| ticks_to_seconds(ts, time_base) - origin);
                let near_s = placer.time_s();
                let placed = placer.place(frame_t, &mono).map_err(|gap_s| {
                    decode_error(format!(
                        "the audio timestamps jump ahead by {gap_s:.1} s near {near_s:.3} s (more than {MAX_GAP_S} s: a broken or spliced file)"
                    ))
                })?;
                resampler.push(placed, &mut out)?;
                if placer.full() {
                    // The range is complete; for an open range, more audio means it is over the limit.
                    overflow = req.end_s.is_none() && placer.dropped_after_full > 0;
                    if req.end_s.is_some() || overflow {
                        break;
                    }
                }
            }
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                feed_decoder(&mut input, &mut decoder, index)
                    .map_err(|e| decode_error(format!("audio: {}", super::describe(&e))))?;
            }
            Err(e) => return Err(decode_error(format!("audio: {}", super::describe(&e)))),
        }
    }
    if overflow {
        return Err(too_long(&source_name, req.start_s, f64::INFINITY, req.max_duration_s));
    }
    if placer.written == 0 {
        return Err(if decoded_any || req.start_s == 0.0 {
            CodecError::EmptyAudio { source_name }
        } else {
            invalid(format!("the audio track ends before the requested start {:.3} s", req.start_s))
        });
    }
    resampler.finish(&mut out)?;
    out.truncate(crate::resample::output_len(placer.written, source_rate, req.rate_hz));
    // Resampling a full-scale signal with sharp edges overshoots by a few percent (Gibbs ringing); the
    // track promises samples in [-1, 1], as the WAV reader and the wire decoders deliver them.
    for s in out.iter_mut() {
        *s = s.clamp(-1.0, 1.0);
    }
    Ok(AudioTrack {
        samples: out,
        sample_rate_hz: req.rate_hz,
        start_s: req.start_s,
        source_rate_hz: source_rate,
        source_channels: channels,
    })
}

fn too_long(source_name: &str, start_s: f64, end_s: f64, limit_s: f64) -> CodecError {
    let end = if end_s.is_finite() { format!("{end_s:.1} s") } else { "beyond".into() };
    CodecError::InvalidRequest {
        source_name: source_name.into(),
        problem: format!(
            "audio range {start_s:.1} s to {end} is longer than the limit of {limit_s:.0} s; decode it in windows"
        ),
    }
}

/// Places decoded frames on the range's sample grid at the source rate.
struct Placer {
    rate: f64,
    start_s: f64,
    /// Samples in the whole range.
    capacity: usize,
    /// Samples emitted so far (silence included).
    written: usize,
    /// Samples that arrived after the range was full (non-zero means the audio goes on past its end).
    dropped_after_full: usize,
    scratch: Vec<f32>,
}

impl Placer {
    fn new(rate: u32, start_s: f64, end_s: f64) -> Self {
        let capacity = ((end_s - start_s) * f64::from(rate)).round().clamp(0.0, usize::MAX as f64 / 2.0) as usize;
        Placer { rate: f64::from(rate), start_s, capacity, written: 0, dropped_after_full: 0, scratch: Vec::new() }
    }

    fn full(&self) -> bool {
        self.written >= self.capacity
    }

    /// Time of the next sample to write, on the file's clock.
    fn time_s(&self) -> f64 {
        self.start_s + self.written as f64 / self.rate
    }

    /// Returns the part of `samples` (a frame starting at `frame_t` seconds) that belongs in the range
    /// after what was already written, preceded by silence for any gap; `Err(gap seconds)` for a gap over
    /// [`MAX_GAP_S`].
    fn place(&mut self, frame_t: Option<f64>, samples: &[f32]) -> std::result::Result<&[f32], f64> {
        self.scratch.clear();
        let expected = self.written as f64;
        // In f64 sample units, so hostile timestamps cannot overflow integer arithmetic.
        let at = match frame_t {
            Some(t) if t.is_finite() => ((t - self.start_s) * self.rate).round(),
            _ => expected,
        };
        let jitter = (PLACEMENT_TOLERANCE_S * self.rate).floor();
        // Contiguous frames keep their place despite rounded timestamps; the first frame is placed exactly.
        let at = if self.written > 0 && (at - expected).abs() <= jitter { expected } else { at };
        let gap = (at - expected).max(0.0);
        if gap > MAX_GAP_S * self.rate && self.written > 0 {
            return Err(gap / self.rate);
        }
        let room = self.capacity - self.written.min(self.capacity);
        // A late first frame (audio starting after the range start) is bounded by the range itself.
        let silence = (gap.min(room as f64)) as usize;
        let skip = ((expected - at).max(0.0)).min(samples.len() as f64) as usize;
        self.scratch.resize(silence, 0.0);
        let available = samples.len() - skip;
        let take = available.min(room - silence);
        self.dropped_after_full += available - take;
        self.scratch.extend_from_slice(&samples[skip..skip + take]);
        self.written += self.scratch.len();
        Ok(&self.scratch)
    }
}

/// Mixes a decoded frame down to mono `f32` in `out`, whatever its sample format; returns the channel count.
fn to_mono(frame: &ffmpeg::frame::Audio, out: &mut Vec<f32>) -> std::result::Result<u16, String> {
    use ffmpeg::format::sample::{Sample, Type};
    let n = frame.samples();
    let channels = frame.channels() as usize;
    if channels == 0 {
        return Err("decoded frame has no channels".into());
    }
    let (width, read): (usize, fn(&[u8]) -> f32) = match frame.format() {
        Sample::U8(_) => (1, |b| (f32::from(b[0]) - 128.0) / 128.0),
        Sample::I16(_) => (2, |b| f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32768.0),
        Sample::I32(_) => (4, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0),
        Sample::I64(_) => {
            (8, |b| i64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32 / 9.223_372e18)
        }
        Sample::F32(_) => (4, |b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        Sample::F64(_) => (8, |b| f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32),
        Sample::None => return Err("decoded frame has no sample format".into()),
    };
    let planar = matches!(
        frame.format(),
        Sample::U8(Type::Planar)
            | Sample::I16(Type::Planar)
            | Sample::I32(Type::Planar)
            | Sample::I64(Type::Planar)
            | Sample::F32(Type::Planar)
            | Sample::F64(Type::Planar)
    );
    out.clear();
    out.resize(n, 0.0);
    let scale = 1.0 / channels as f32;
    if planar {
        for c in 0..channels {
            let data = frame.data(c);
            if data.len() < n * width {
                return Err(format!("channel {c} holds {} bytes, expected {}", data.len(), n * width));
            }
            for (o, b) in out.iter_mut().zip(data.chunks_exact(width)) {
                *o += read(b) * scale;
            }
        }
    } else {
        let data = frame.data(0);
        if data.len() < n * width * channels {
            return Err(format!("frame holds {} bytes, expected {}", data.len(), n * width * channels));
        }
        for (o, s) in out.iter_mut().zip(data.chunks_exact(width * channels)) {
            *o = s.chunks_exact(width).map(read).sum::<f32>() * scale;
        }
    }
    // Decoders of lossy codecs overshoot slightly; NaN would poison the resampler.
    for o in out.iter_mut() {
        *o = if o.is_finite() { o.clamp(-1.0, 1.0) } else { 0.0 };
    }
    Ok(channels as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placer_trims_fills_and_tolerates_jitter() {
        // Range 1.0 .. 1.01 s at 1 kHz: 10 samples.
        let mut p = Placer::new(1000, 1.0, 1.01);
        // A frame starting 3 samples before the range: the first 3 are cut.
        assert_eq!(p.place(Some(0.997), &[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap(), &[4.0, 5.0]);
        // Next frame 1 ms late (within tolerance): contiguous.
        assert_eq!(p.place(Some(1.003), &[6.0, 7.0]).unwrap(), &[6.0, 7.0]);
        // A 3 ms gap becomes silence, and the range end cuts the frame.
        assert_eq!(p.place(Some(1.007), &[8.0, 9.0, 10.0, 11.0]).unwrap(), &[0.0, 0.0, 0.0, 8.0, 9.0, 10.0]);
        assert!(p.full());
        assert_eq!(p.written, 10);
        assert_eq!(p.dropped_after_full, 1);
    }

    #[test]
    fn placer_starts_with_silence_when_audio_starts_late() {
        let mut p = Placer::new(100, 0.0, 1.0);
        assert_eq!(p.place(Some(0.05), &[1.0]).unwrap(), &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(p.place(None, &[2.0]).unwrap(), &[2.0]);
    }

    #[test]
    fn placer_refuses_huge_jumps_and_survives_absurd_timestamps() {
        let mut p = Placer::new(16_000, 0.0, 48.0 * 3600.0);
        assert_eq!(p.place(Some(0.0), &[0.5; 4]).unwrap().len(), 4);
        // A ten-hour jump is an error, not 576 M samples of silence.
        assert_eq!(p.place(Some(36_000.0), &[0.5; 4]).unwrap_err().round(), 36_000.0);
        // Timestamps far in the past or not finite do not overflow; they are cut or continue in place.
        assert!(p.place(Some(-1e300), &[0.5; 4]).unwrap().is_empty());
        assert_eq!(p.place(Some(f64::NAN), &[0.5; 4]).unwrap().len(), 4);
    }
}
