//! `generation_config.json`: stop ids and the checkpoint's sampling defaults.

use std::path::Path;

use serde::Deserialize;

use super::sampling::SamplingParams;

/// `eos_token_id` is an int or a list in the published files.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    /// As a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            OneOrMany::One(x) => vec![*x],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The fields omnid uses (others are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub eos_token_id: Option<OneOrMany>,
    #[serde(default)]
    pub do_sample: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub repetition_penalty: Option<f64>,
}

impl GenerationConfig {
    /// Reads the file; a missing file means "no defaults" (greedy, no extra stop ids).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: invalid generation config: {e}", path.display()))
    }

    /// The checkpoint's sampling defaults as [`SamplingParams`] (transformers defaults for
    /// missing fields: temperature 1, top-k 50, top-p 1, penalty 1; greedy unless `do_sample`).
    pub fn sampling_defaults(&self) -> SamplingParams {
        SamplingParams {
            greedy: !self.do_sample.unwrap_or(false),
            temperature: self.temperature.unwrap_or(1.0),
            top_k: self.top_k.unwrap_or(50),
            top_p: self.top_p.unwrap_or(1.0),
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            seed: 0,
        }
    }

    /// Stop ids listed by the file.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id.as_ref().map(|e| e.to_vec()).unwrap_or_default()
    }
}
