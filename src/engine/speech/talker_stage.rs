//! The talker stage: waits for the thinker's prompt pass and first token, runs the talker
//! prefill, then produces one codec frame per step, each sent to Code2Wav before the stage waits
//! for the text token of the next step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Instant;

use super::super::sampling::Sampler;
use super::{SpeechOptions, SpeechStop, ThinkerMsg};
use crate::models::multimodal::MultimodalInputs;
use crate::models::qwen3_omni::speech::OmniSpeech;
use crate::models::qwen3_omni::talker_prompt::{assistant_prompt, TalkerInputs, TextTrack, ThinkerPrompt};
use crate::models::qwen3_omni::talker_session::TalkerSession;
use crate::models::qwen3_omni::thinker::Thinker;

/// What the talker stage did.
pub struct TalkerReport {
    pub codes: Vec<Vec<u32>>,
    pub stop: SpeechStop,
    pub first_frame_ms: Option<f64>,
    pub prefill_ms: f64,
    pub code_predictor_ms_per_frame: f64,
    pub step_ms: f64,
}

/// Everything the stage reads.
pub struct TalkerJob<'a> {
    pub thinker: &'a Thinker,
    pub speech: &'a OmniSpeech,
    pub inputs: &'a MultimodalInputs,
    pub speaker_id: u32,
    pub opts: &'a SpeechOptions,
    pub stop_ids: &'a [u32],
    pub start: Instant,
}

/// Receives the next thinker message into `track`; `false` once the thinker is gone.
fn receive(rx: &Receiver<ThinkerMsg>, track: &mut TextTrack, prompt: &mut Option<candle_core::Tensor>) -> bool {
    match rx.recv() {
        Ok(ThinkerMsg::Prompt(h)) => *prompt = Some(h),
        Ok(ThinkerMsg::Token(id)) => track.push(id),
        Ok(ThinkerMsg::End) | Err(_) => {
            track.end();
            return false;
        }
    }
    true
}

impl TalkerJob<'_> {
    pub fn run(
        self,
        rx: Receiver<ThinkerMsg>,
        frame_tx: SyncSender<Vec<u32>>,
        cancel: &AtomicBool,
    ) -> anyhow::Result<TalkerReport> {
        let talker = &self.speech.talker;
        let cfg = self.thinker.config();
        let mut report = TalkerReport {
            codes: Vec::new(),
            stop: SpeechStop::Cancelled,
            first_frame_ms: None,
            prefill_ms: 0.0,
            code_predictor_ms_per_frame: 0.0,
            step_ms: 0.0,
        };
        let mut track = TextTrack::new(assistant_prompt(&self.inputs.ids, cfg)?);
        let mut hidden = None;
        // The prefill needs the prompt pass and the first token.
        while hidden.is_none() || (track.head().is_none() && !track.ended()) {
            if !receive(&rx, &mut track, &mut hidden) && hidden.is_none() {
                return Ok(report); // the thinker failed or was cancelled before its prompt pass
            }
        }
        let Some(head) = track.head().map(<[u32]>::to_vec) else { return Ok(report) };
        // An answer that is only its end token has nothing to say.
        if track.generated_ids().first().is_none_or(|id| self.stop_ids.contains(id)) {
            report.stop = SpeechStop::NoText;
            return Ok(report);
        }
        if cancel.load(Ordering::Relaxed) {
            return Ok(report);
        }
        let hidden = hidden.expect("checked above");
        let layout = self.thinker.media_layout(self.inputs)?;
        let rows = TalkerInputs::new(talker, &self.thinker.decoder, cfg)?;
        let prompt = ThinkerPrompt { ids: &self.inputs.ids, accept_hidden: &hidden, layout: &layout };
        let t0 = Instant::now();
        let prefill = rows.prefill(&prompt, &head, self.speaker_id)?;
        let mut session = TalkerSession::start(talker, &prefill)?;
        report.prefill_ms = t0.elapsed().as_secs_f64() * 1e3;

        let mut c0_sampler = Sampler::new(self.opts.talker.clone());
        let mut cp_sampler = Sampler::new(self.opts.code_predictor.clone());
        let (mut predictor_s, mut step_s) = (0.0, 0.0);
        report.stop = loop {
            if cancel.load(Ordering::Relaxed) {
                break SpeechStop::Cancelled;
            }
            if session.frames() == self.opts.max_frames {
                break SpeechStop::Length;
            }
            let t = Instant::now();
            let frame = session.next_frame(
                |logits, history| c0_sampler.sample(logits, history),
                |_, logits| {
                    // Host sync: each residual code is sampled on the host (one 2048-entry row).
                    let v: Vec<f32> = logits.to_dtype(candle_core::DType::F32)?.to_vec1()?;
                    Ok(cp_sampler.sample(&v, &[]))
                },
            )?;
            predictor_s += t.elapsed().as_secs_f64();
            let Some(frame) = frame else { break SpeechStop::Eos };
            report.first_frame_ms.get_or_insert_with(|| self.start.elapsed().as_secs_f64() * 1e3);
            report.codes.push(frame.clone());
            if frame_tx.send(frame.clone()).is_err() {
                break SpeechStop::Cancelled; // Code2Wav has stopped (failed or cancelled)
            }
            // The text row of this step: wait for the thinker if it is behind.
            let k = session.frames() - 1;
            let entry = loop {
                if let Some(e) = track.entry(k) {
                    break e;
                }
                receive(&rx, &mut track, &mut None);
            };
            let t = Instant::now();
            session.advance(&frame, &rows.track_row(entry)?)?;
            step_s += t.elapsed().as_secs_f64();
        };
        let n = report.codes.len().max(1) as f64;
        report.code_predictor_ms_per_frame = predictor_s * 1e3 / n;
        report.step_ms = step_s * 1e3 / n;
        Ok(report)
    }
}
