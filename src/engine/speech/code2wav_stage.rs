//! The Code2Wav stage: frames in, audio chunks out (the first frame decoded alone, then chunks
//! of `chunk_frames`), with the decoder's state carried between chunks or, if asked, each chunk
//! re-decoding `left_context` earlier frames (spec §8.10).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Instant;

use super::{ResponseEvent, SpeechOptions, StageMsg};
use crate::models::code2wav::{Code2Wav, Code2WavStream, StreamConfig};

/// What the stage did.
pub struct Code2WavReport {
    pub chunks: usize,
    pub ms_per_chunk: f64,
}

pub fn run(
    model: &Code2Wav,
    opts: &SpeechOptions,
    frames: Receiver<Vec<u32>>,
    out: &SyncSender<StageMsg>,
    cancel: &AtomicBool,
) -> anyhow::Result<Code2WavReport> {
    let cfg = StreamConfig {
        left_context: opts.left_context,
        min_new_frames: opts.chunk_frames,
        first_new_frames: opts.first_chunk_frames,
    };
    let mut stream = Code2WavStream::new(model, cfg)?;
    let mut report = Code2WavReport { chunks: 0, ms_per_chunk: 0.0 };
    let mut busy = 0.0;
    let mut emit = |wav: Vec<f32>, busy_s: f64, report: &mut Code2WavReport| -> bool {
        report.chunks += 1;
        busy += busy_s;
        out.send(StageMsg::Event(ResponseEvent::Audio(wav))).is_ok()
    };
    for frame in frames.iter() {
        if cancel.load(Ordering::Relaxed) {
            return Ok(report);
        }
        let codes: Vec<i64> = frame.iter().map(|&c| c as i64).collect();
        let t = Instant::now();
        let wav = stream.push(model, &codes)?;
        if !wav.is_empty() && !emit(wav, t.elapsed().as_secs_f64(), &mut report) {
            return Ok(report); // the caller is gone
        }
    }
    // The talker has finished: decode what is pending (nothing when no frame came).
    if stream.pushed_frames() > 0 && !cancel.load(Ordering::Relaxed) {
        let t = Instant::now();
        let wav = stream.finish(model)?;
        if !wav.is_empty() {
            emit(wav, t.elapsed().as_secs_f64(), &mut report);
        }
    }
    report.ms_per_chunk = if report.chunks > 0 { busy * 1e3 / report.chunks as f64 } else { 0.0 };
    Ok(report)
}
