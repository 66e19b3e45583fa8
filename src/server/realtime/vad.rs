//! Server-side turn detection (`turn_detection: {"type": "server_vad", …}`): an energy detector
//! over 20 ms frames of the 16 kHz input. A frame's "speech probability" is its level mapped
//! linearly from −60 dBFS (0) to −10 dBFS (1), compared with `threshold` (0.5 ↔ −35 dBFS).
//! Speech starts after [`MIN_SPEECH_MS`] of frames above it and stops after
//! `silence_duration_ms` below it. Times are milliseconds of input audio since the session began.
//! (OpenAI's detector is a model; the parameters mean the same, the levels are this detector's.)

/// 20 ms at 16 kHz.
const FRAME: usize = 320;
const FRAME_MS: u64 = 20;
/// Speech must last this long before it counts (a click or a door is not a turn).
pub const MIN_SPEECH_MS: u64 = 60;

/// The OpenAI `server_vad` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    pub threshold: f32,
    pub prefix_padding_ms: u64,
    pub silence_duration_ms: u64,
    pub create_response: bool,
    pub interrupt_response: bool,
}

impl Default for VadConfig {
    /// OpenAI's defaults.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            create_response: true,
            interrupt_response: true,
        }
    }
}

/// A turn boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began at this time (the start of its first loud frame).
    Started { audio_start_ms: u64 },
    /// Speech ended at this time (the end of its last loud frame).
    Stopped { audio_end_ms: u64 },
}

/// Detector state.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    cfg: VadConfig,
    partial: Vec<f32>,
    /// Input time at the start of `partial`.
    now_ms: u64,
    speaking: bool,
    loud_run_ms: u64,
    quiet_run_ms: u64,
    last_loud_end_ms: u64,
}

impl EnergyVad {
    pub fn new(cfg: VadConfig) -> Self {
        Self {
            cfg,
            partial: Vec::with_capacity(FRAME),
            now_ms: 0,
            speaking: false,
            loud_run_ms: 0,
            quiet_run_ms: 0,
            last_loud_end_ms: 0,
        }
    }

    pub fn config(&self) -> &VadConfig {
        &self.cfg
    }

    /// Whether speech is in progress.
    #[cfg(test)]
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Feeds 16 kHz samples; returns the boundaries they complete.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VadEvent> {
        let mut out = Vec::new();
        for &s in samples {
            self.partial.push(s);
            if self.partial.len() == FRAME {
                let mean_sq = self.partial.iter().map(|x| (x * x) as f64).sum::<f64>() / FRAME as f64;
                let dbfs = 10.0 * mean_sq.max(1e-12).log10();
                let p = ((dbfs + 60.0) / 50.0).clamp(0.0, 1.0) as f32;
                self.partial.clear();
                let frame_start = self.now_ms;
                self.now_ms += FRAME_MS;
                if p > self.cfg.threshold {
                    self.quiet_run_ms = 0;
                    self.loud_run_ms += FRAME_MS;
                    self.last_loud_end_ms = self.now_ms;
                    if !self.speaking && self.loud_run_ms >= MIN_SPEECH_MS {
                        self.speaking = true;
                        out.push(VadEvent::Started { audio_start_ms: frame_start + FRAME_MS - self.loud_run_ms });
                    }
                } else {
                    self.loud_run_ms = 0;
                    if self.speaking {
                        self.quiet_run_ms += FRAME_MS;
                        if self.quiet_run_ms >= self.cfg.silence_duration_ms {
                            self.speaking = false;
                            self.quiet_run_ms = 0;
                            out.push(VadEvent::Stopped { audio_end_ms: self.last_loud_end_ms });
                        }
                    }
                }
            }
        }
        out
    }

    /// Starts the clock at `ms` (a detector enabled mid-session).
    pub fn skip_to(&mut self, ms: u64) {
        self.now_ms = ms;
    }

    /// Forgets the current turn (the buffer was cleared or committed by hand).
    pub fn reset_turn(&mut self) {
        self.speaking = false;
        self.loud_run_ms = 0;
        self.quiet_run_ms = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize, amp: f32) -> Vec<f32> {
        (0..ms * 16).map(|i| amp * (i as f32 * 0.05).sin()).collect()
    }

    #[test]
    fn a_turn_is_found_with_its_times() {
        let mut vad = EnergyVad::new(VadConfig { silence_duration_ms: 200, ..Default::default() });
        let mut evs = vad.push(&tone(500, 0.0));
        evs.extend(vad.push(&tone(400, 0.3)));
        evs.extend(vad.push(&tone(300, 0.001)));
        assert_eq!(evs, [VadEvent::Started { audio_start_ms: 500 }, VadEvent::Stopped { audio_end_ms: 900 }]);
        // A 40 ms click is not speech.
        assert!(vad.push(&[tone(40, 0.5), tone(500, 0.0)].concat()).is_empty());
    }

    #[test]
    fn pauses_shorter_than_the_silence_do_not_end_the_turn() {
        let mut vad = EnergyVad::new(VadConfig::default());
        let mut evs = vad.push(&tone(300, 0.3));
        evs.extend(vad.push(&tone(300, 0.0)));
        evs.extend(vad.push(&tone(300, 0.3)));
        assert_eq!(evs, [VadEvent::Started { audio_start_ms: 0 }]);
        assert!(vad.speaking());
        // Chunking does not matter.
        let mut vad2 = EnergyVad::new(VadConfig::default());
        let all = [tone(300, 0.3), tone(300, 0.0), tone(300, 0.3), tone(600, 0.0)].concat();
        let evs: Vec<_> = all.chunks(77).flat_map(|c| vad2.push(c)).collect();
        assert_eq!(evs, [VadEvent::Started { audio_start_ms: 0 }, VadEvent::Stopped { audio_end_ms: 900 }]);
    }
}
