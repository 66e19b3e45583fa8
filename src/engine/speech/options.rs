//! How a spoken answer is produced: voice, sampling of the talker and the code predictor, the
//! length limit and the Code2Wav chunking.

use super::super::sampling::SamplingParams;

/// Speech settings of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechOptions {
    /// Speaker name, case-insensitive (the checkpoint's `talker_config.speaker_id`).
    pub speaker: String,
    /// Codebook 0 (the talker). transformers' `generate()` defaults: temperature 0.9, top-k 50,
    /// top-p 1, repetition penalty 1.05 over the codes spoken so far (kept when greedy).
    pub talker: SamplingParams,
    /// Codebooks 1.. (the code predictor): top-k 50, top-p 0.8, temperature 1; greedy when the
    /// talker is (transformers mirrors the talker's `do_sample`).
    pub code_predictor: SamplingParams,
    /// At most this many 80 ms frames (transformers' `talker_max_new_tokens` − 1: its last
    /// token never gets residual codes). 4095 frames = 5.5 minutes.
    pub max_frames: usize,
    /// Frames of the first Code2Wav decode: 1 gives the first audio after one talker token.
    pub first_chunk_frames: usize,
    /// Frames per later decode.
    pub chunk_frames: usize,
    /// `None` (default): Code2Wav carries its state between chunks, so every frame is decoded
    /// once and the stream equals one full decode. `Some(c)`: each chunk re-decodes `c` earlier
    /// frames instead, as vLLM-Omni does with 25 (chunk edges then differ by ≈1e-3).
    pub left_context: Option<usize>,
}

impl SpeechOptions {
    /// transformers' defaults for `speaker`, sampled (seeded) or all greedy.
    pub fn new(speaker: &str, greedy: bool, seed: u64) -> Self {
        Self {
            speaker: speaker.to_string(),
            talker: SamplingParams {
                greedy,
                temperature: 0.9,
                top_k: 50,
                top_p: 1.0,
                repetition_penalty: 1.05,
                seed: seed ^ 0x7a1c_e0de,
            },
            code_predictor: SamplingParams {
                greedy,
                temperature: 1.0,
                top_k: 50,
                top_p: 0.8,
                repetition_penalty: 1.0,
                seed: seed ^ 0x3c0d_e9ed,
            },
            max_frames: 4095,
            first_chunk_frames: 1,
            chunk_frames: 10,
            left_context: None,
        }
    }

    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        self.talker.validate().map_err(|e| format!("talker sampling: {e}"))?;
        self.code_predictor.validate().map_err(|e| format!("code predictor sampling: {e}"))?;
        if self.max_frames == 0 {
            return Err("speech max_frames must be at least 1".into());
        }
        if self.first_chunk_frames == 0 || self.chunk_frames == 0 {
            return Err("Code2Wav chunks must be at least 1 frame".into());
        }
        Ok(())
    }
}
