//! Speech output of a Qwen3-Omni checkpoint: the talker (with its code predictor) and Code2Wav,
//! loaded together because one is useless without the other.

use crate::models::weights::Weights;
use candle_core::Result;

use super::config::TalkerConfig;
use super::talker::Talker;
use crate::models::code2wav::{Code2Wav, Code2WavConfig};

/// The speech models.
#[derive(Debug, Clone)]
pub struct OmniSpeech {
    pub talker: Talker,
    pub code2wav: Code2Wav,
}

impl OmniSpeech {
    /// `vb` is the checkpoint root; the configs must have passed `Qwen3OmniMoeConfig::speech`.
    pub fn new(talker: &TalkerConfig, code2wav: &Code2WavConfig, vb: Weights) -> Result<Self> {
        Ok(Self { talker: Talker::new(talker, vb.clone())?, code2wav: Code2Wav::new(code2wav, vb)? })
    }

    /// Speaker names of the checkpoint (lower case), for messages and listings.
    pub fn speakers(&self) -> Vec<&str> {
        self.talker.config().speaker_id.keys().map(String::as_str).collect()
    }
}
