//! Video frames at requested times: the frame on screen at each time `t` (the last frame whose
//! presentation time is at or before `t`), as RGB8 with its own presentation timestamp in seconds on the
//! file's clock (see [`crate::av`]).
//!
//! Times are visited in increasing order. The reader seeks (to the key frame before the time) whenever
//! the next time lies more than [`SEEK_GAP_S`] beyond what has been decoded, so a window in the third
//! hour of a file costs the same as one at the start, and sparse sampling skips whole GOPs. Frames that
//! are not asked for are decoded (inter-frame codecs need them) but never converted to RGB.

use std::collections::VecDeque;
use std::path::Path;

use ffmpeg_next as ffmpeg;
use image::RgbImage;

use super::rgb::RgbConverter;
use super::{best_video_stream, open_decoder, seconds_to_ticks, stream_start, ticks_to_seconds, StreamKind};
use crate::{CodecError, Result};

/// Seek instead of decoding forward when the next requested time is this far ahead of the decoder.
/// Decoding forward runs at hundreds of frames per second, a seek costs one GOP (typically 2–10 s of
/// video), so seeking pays off beyond a few seconds.
pub const SEEK_GAP_S: f64 = 5.0;

/// A decoded, converted frame.
#[derive(Debug, Clone)]
pub struct TimedFrame {
    /// The pixels, at the source size or the size the reader was asked for.
    pub image: RgbImage,
    /// Presentation time of this frame on the file's clock, in seconds.
    pub pts_s: f64,
    /// The time that was asked for.
    pub requested_s: f64,
}

/// Reads the frames shown at a list of times from one file's main video stream.
pub struct FrameReader {
    source_name: String,
    input: ffmpeg::format::context::Input,
    stream_index: usize,
    time_base: ffmpeg::Rational,
    /// Stream start in ticks: the file's clock origin for files with video.
    origin_ticks: i64,
    decoder: ffmpeg::decoder::Video,
    converter: RgbConverter,
    /// Requested times still to answer, ascending.
    pending: VecDeque<f64>,
    /// The most recent decoded frame at or before the current request, with its time.
    current: Option<(f64, ffmpeg::frame::Video)>,
    /// A frame decoded past the current request, kept for the next one.
    lookahead: Option<(f64, ffmpeg::frame::Video)>,
    /// Time of the newest frame decoded since the last seek (or -inf).
    decoded_until_s: f64,
    /// Half a frame interval: a frame whose time is within this of the request counts as "at" it, so that
    /// `index / fps` requests land on frame `index` despite timestamp rounding.
    tolerance_s: f64,
    eof: bool,
    /// Cleared when the container refuses a seek.
    seekable: bool,
    /// Frames decoded so far (converted or not), to show what seeking saves.
    decoded_frames: u64,
    /// Seek when the next time is this far ahead. Starts at [`SEEK_GAP_S`]; a seek that lands no later than
    /// what was already decoded (key frames are rarer than the gap) raises it to twice the distance it fell
    /// back, so a file with one key frame per minute is not re-decoded from that key frame for every time.
    seek_gap_s: f64,
}

impl FrameReader {
    /// Opens `path` for reading frames at `times_s` (seconds on the file's clock, any order; duplicates
    /// allowed and answered with the same frame). `size` = `Some((w, h))` scales every frame to that size
    /// with swscale, `None` keeps the source size.
    pub fn open(path: &Path, times_s: &[f64], size: Option<(u32, u32)>) -> Result<Self> {
        let source_name = path.display().to_string();
        let input = super::open_file(path)?;
        let stream_index = best_video_stream(&input)
            .ok_or_else(|| CodecError::NoStream { source_name: source_name.clone(), kind: StreamKind::Video })?;
        let fps = super::probe::video_info(&input, stream_index, &source_name)?.fps;
        let stream = input
            .stream(stream_index)
            .ok_or_else(|| CodecError::NoStream { source_name: source_name.clone(), kind: StreamKind::Video })?;
        let time_base = stream.time_base();
        let origin_ticks = stream_start(&stream);
        let decoder = open_decoder(&input, stream_index, StreamKind::Video, &source_name)?
            .video()
            .map_err(|e| CodecError::MediaDecode { source_name: source_name.clone(), detail: super::describe(&e) })?;
        let mut times: Vec<f64> = times_s.to_vec();
        if let Some(bad) = times.iter().find(|t| !t.is_finite() || **t < 0.0) {
            return Err(CodecError::InvalidRequest {
                source_name,
                problem: format!("frame time {bad} s is not a time in the video (must be finite and >= 0)"),
            });
        }
        times.sort_by(f64::total_cmp);
        Ok(FrameReader {
            source_name,
            input,
            stream_index,
            time_base,
            origin_ticks,
            decoder,
            converter: RgbConverter::new(size),
            pending: times.into(),
            current: None,
            lookahead: None,
            decoded_until_s: f64::NEG_INFINITY,
            tolerance_s: 0.5 / fps,
            eof: false,
            seekable: true,
            decoded_frames: 0,
            seek_gap_s: SEEK_GAP_S,
        })
    }

    /// The frame for the next requested time, `None` once every time has been answered.
    pub fn next_frame(&mut self) -> Result<Option<TimedFrame>> {
        let Some(&t) = self.pending.front() else { return Ok(None) };
        if self.seekable && t - self.decoded_until_s > self.seek_gap_s {
            self.seek_before(t)?;
        }
        // Advance until the lookahead frame lies after `t` (or the stream ends).
        loop {
            if let Some((lt, _)) = &self.lookahead {
                if *lt > t + self.tolerance_s {
                    break;
                }
                self.current = self.lookahead.take();
                continue;
            }
            if self.eof {
                break;
            }
            self.lookahead = self.decode_one()?;
        }
        // A time before the first frame after a seek (or before the stream's first frame) gets the first
        // frame; otherwise the latest frame at or before the time.
        let chosen = match (&self.current, &self.lookahead) {
            (Some(c), _) => c,
            (None, Some(l)) => l,
            (None, None) => {
                return Err(CodecError::InvalidRequest {
                    source_name: self.source_name.clone(),
                    problem: format!(
                        "no video frame decoded at or near {t:.3} s (the stream holds no decodable frames)"
                    ),
                })
            }
        };
        let (pts_s, frame) = chosen;
        // Past the last frame: a time more than two frame intervals (and 0.1 s) after it is not in the
        // video, and answering with the last frame would be a silent wrong answer.
        if self.lookahead.is_none() && self.eof && t > *pts_s + (4.0 * self.tolerance_s).max(0.1) {
            return Err(CodecError::InvalidRequest {
                source_name: self.source_name.clone(),
                problem: format!(
                    "no video frame at {t:.3} s: the last decodable frame is at {pts_s:.3} s (the video is shorter, or truncated)"
                ),
            });
        }
        let image = self
            .converter
            .convert(frame)
            .map_err(|detail| CodecError::MediaDecode { source_name: self.source_name.clone(), detail })?;
        let pts_s = *pts_s;
        self.pending.pop_front();
        Ok(Some(TimedFrame { image, pts_s, requested_s: t }))
    }

    /// Frames decoded so far, including the ones decoded only to reach a requested time.
    pub fn decoded_frames(&self) -> u64 {
        self.decoded_frames
    }

    /// Repositions the decoder so that the first frame it returns is at or before `t`. Containers that seek
    /// by byte position (MPEG-TS) may land after the key frame before `t`, and the decoder then skips to the
    /// next key frame: such a landing is retried further back (1, 2, 4, … s before `t`, down to the start).
    fn seek_before(&mut self, t: f64) -> Result<()> {
        let decoded_before = self.decoded_until_s;
        let mut back = 0.0;
        loop {
            let target = (t - back).max(0.0);
            if !self.seek(target) {
                return Ok(()); // not seekable: decode forward from where we are
            }
            let first = self.decode_one()?;
            // Landing after `t`, or at the end of the data (a byte-position seek can overshoot), both mean
            // the key frame before `t` lies further back.
            let landed_after = first.as_ref().is_none_or(|(ft, _)| *ft > t + self.tolerance_s);
            if landed_after && target > 0.0 {
                back = if back == 0.0 { 1.0 } else { back * 2.0 };
                continue;
            }
            if let Some((ft, _)) = &first {
                if *ft <= decoded_before {
                    self.seek_gap_s = self.seek_gap_s.max(2.0 * (t - ft));
                }
            }
            self.lookahead = first;
            return Ok(());
        }
    }

    /// Seeks to the key frame at or before `t` and resets the decoder; `false` if the container refuses
    /// (then this reader decodes forward only).
    fn seek(&mut self, t: f64) -> bool {
        let target = self.origin_ticks.saturating_add(seconds_to_ticks(t, self.time_base));
        // `avformat_seek_file` with stream -1 takes AV_TIME_BASE units.
        let global = ticks_to_seconds(target, self.time_base) * f64::from(ffmpeg::ffi::AV_TIME_BASE);
        let global = global.floor() as i64;
        if self.input.seek(global, ..global.saturating_add(1)).is_err() {
            self.seekable = false;
            return false;
        }
        self.decoder.flush();
        self.current = None;
        self.lookahead = None;
        self.eof = false;
        self.decoded_until_s = f64::NEG_INFINITY;
        true
    }

    /// Decodes the next frame of the stream (in presentation order), `None` at the end.
    fn decode_one(&mut self) -> Result<Option<(f64, ffmpeg::frame::Video)>> {
        let mut frame = ffmpeg::frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let ts = frame.timestamp().or(frame.pts()).unwrap_or(self.origin_ticks);
                    let t = ticks_to_seconds(ts.saturating_sub(self.origin_ticks), self.time_base);
                    self.decoded_until_s = self.decoded_until_s.max(t);
                    self.decoded_frames += 1;
                    return Ok(Some((t, frame)));
                }
                Err(ffmpeg::Error::Eof) => {
                    self.eof = true;
                    return Ok(None);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => return Err(self.decode_error(&e)),
            }
            // The decoder wants input.
            if let Err(e) = feed_decoder(&mut self.input, &mut self.decoder, self.stream_index) {
                return Err(self.decode_error(&e));
            }
        }
    }

    fn decode_error(&self, e: &ffmpeg::Error) -> CodecError {
        let detail = match e {
            // What the decoder says when a frame exceeds `max_pixels` (or the data is nonsense).
            ffmpeg::Error::Other { errno } if *errno == ffmpeg::util::error::EINVAL => format!(
                "video: a frame is larger than {0}x{0} pixels, or its data is corrupt",
                (super::MAX_FRAME_PIXELS as f64).sqrt() as u64
            ),
            other => format!("video: {}", super::describe(other)),
        };
        CodecError::MediaDecode { source_name: self.source_name.clone(), detail }
    }
}

impl Iterator for FrameReader {
    type Item = Result<TimedFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

/// Sends the next packet of stream `index` to `decoder`, or end-of-stream when the container is exhausted.
/// Damaged packets are skipped (FFmpeg conceals the damage in the frames that depend on them) until
/// [`super::MAX_CONSECUTIVE_DECODE_ERRORS`] in a row say the rest of the stream is garbage. A read error
/// (I/O failure, a file truncated while it is read) is an error, not the end of the stream.
pub(crate) fn feed_decoder(
    input: &mut ffmpeg::format::context::Input,
    decoder: &mut ffmpeg::decoder::Opened,
    index: usize,
) -> std::result::Result<(), ffmpeg::Error> {
    let mut errors = 0usize;
    loop {
        // A fresh packet each time: `av_read_frame` does not release what the packet held, so reusing one
        // would leak every skipped packet (found by LeakSanitizer through the `media_decode` fuzz target).
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::InvalidData) if errors < super::MAX_CONSECUTIVE_DECODE_ERRORS => {
                errors += 1;
                continue;
            }
            Err(e) => return Err(e),
        }
        if packet.stream() != index {
            continue;
        }
        match decoder.send_packet(&packet) {
            Ok(()) => return Ok(()),
            Err(ffmpeg::Error::InvalidData) if errors < super::MAX_CONSECUTIVE_DECODE_ERRORS => errors += 1,
            Err(e) => return Err(e),
        }
    }
    // End of the container: let the decoder drain what it holds. A second EOF is refused harmlessly.
    decoder.send_eof().or_else(|e| if e == ffmpeg::Error::Eof { Ok(()) } else { Err(e) })
}
