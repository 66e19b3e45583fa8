//! Opening a model: a Hugging Face checkpoint directory exactly as published
//! (`config.json`, sharded or single safetensors, `tokenizer.json`, chat template,
//! `preprocessor_config.json`, `generation_config.json`), or the embedded tiny default.
//! Every failure names the file and the problem.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};

use super::generation_config::GenerationConfig;
use super::processor_settings::ProcessorSettings;
use crate::models::checkpoint::{Checkpoint, CheckpointError};
use crate::models::family::{Family, MultimodalModel};
use crate::prompt::template::{ChatTemplate, TemplateError};
use crate::prompt::tokenizer::{Tokenizer, TokenizerError};

/// Why a model could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{dir}: {problem}")]
    Model { dir: PathBuf, problem: String },
}

/// Activation/weight dtype on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DTypeChoice {
    /// f32 on the CPU (candle's fastest CPU matmul, and exact parity); bf16 on a GPU.
    Auto,
    Exact(DType),
}

impl DTypeChoice {
    /// Parses `auto`, `f32`, `bf16`, `f16`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::Exact(DType::F32)),
            "bf16" => Ok(Self::Exact(DType::BF16)),
            "f16" => Ok(Self::Exact(DType::F16)),
            other => Err(format!("unknown dtype {other:?} (auto, f32, bf16, f16)")),
        }
    }

    fn resolve(self, device: &Device) -> DType {
        match self {
            Self::Exact(d) => d,
            Self::Auto if device.is_cuda() => DType::BF16,
            Self::Auto => DType::F32,
        }
    }
}

/// Everything needed to run one model.
pub struct LoadedModel {
    /// `None` for the embedded default.
    pub dir: Option<PathBuf>,
    pub family: Family,
    pub model: MultimodalModel,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub processor: ProcessorSettings,
    pub generation: GenerationConfig,
    pub dtype: DType,
    pub device: Device,
}

impl LoadedModel {
    /// Opens a checkpoint directory.
    pub fn open(dir: &Path, dtype: DTypeChoice, device: &Device) -> Result<Self, LoadError> {
        if !dir.is_dir() {
            return Err(LoadError::File {
                path: dir.into(),
                problem: "not a directory (expected a Hugging Face model folder)".into(),
            });
        }
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| LoadError::File { path: config_path.clone(), problem: format!("cannot read: {e}") })?;
        let config: serde_json::Value = serde_json::from_str(&config_text)
            .map_err(|e| LoadError::File { path: config_path.clone(), problem: format!("invalid JSON: {e}") })?;
        let family =
            Family::detect(&config).map_err(|problem| LoadError::File { path: config_path.clone(), problem })?;
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let template = ChatTemplate::from_dir(dir)?;
        let processor =
            ProcessorSettings::from_dir(dir, family).map_err(|(path, problem)| LoadError::File { path, problem })?;
        let gen_path = dir.join("generation_config.json");
        let generation =
            GenerationConfig::from_file(&gen_path).map_err(|problem| LoadError::File { path: gen_path, problem })?;
        let ckpt = Arc::new(Checkpoint::open_dir(dir)?);
        let dtype = dtype.resolve(device);
        let vb = ckpt.var_builder(dtype, device);
        let model = MultimodalModel::load(family, &config, vb)
            .map_err(|e| LoadError::Model { dir: dir.into(), problem: e.to_string() })?;
        Self {
            dir: Some(dir.to_path_buf()),
            family,
            model,
            tokenizer,
            template,
            processor,
            generation,
            dtype,
            device: device.clone(),
        }
        .checked()
    }

    /// Final checks shared by checkpoint and embedded models: the tokenizer and the processor
    /// files must fit the model.
    pub(crate) fn checked(self) -> Result<Self, LoadError> {
        let problem = |problem: String| LoadError::Model {
            dir: self.dir.clone().unwrap_or_else(|| PathBuf::from("<embedded>")),
            problem,
        };
        check_tokenizer(&self.tokenizer, &self.model).map_err(|e| problem(e.to_string()))?;
        check_processor(&self.processor, &self.model).map_err(problem)?;
        let vocab = self.model.decoder().config().vocab_size;
        if self.tokenizer.vocab_size() > vocab {
            return Err(problem(format!(
                "tokenizer does not match the model config: the tokenizer has {} tokens, the model's vocabulary {vocab}",
                self.tokenizer.vocab_size()
            )));
        }
        Ok(self)
    }

    /// Stop ids: generation_config's eos ids and `<|im_end|>` (the chat templates end every
    /// turn with it, even when generation_config.json does not list it).
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.generation.eos_ids();
        ids.extend(self.tokenizer.token_id("<|im_end|>"));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Checks that the processor files and config.json describe the same towers (a mismatch
/// would otherwise surface as a shape error at the first request).
fn check_processor(p: &ProcessorSettings, model: &MultimodalModel) -> Result<(), String> {
    let v = model.vision_config();
    for (what, px) in [("image", &p.image.pixels), ("video", &p.video.pixels)] {
        for (key, proc_value, model_value) in [
            ("patch_size", px.patch_size, v.patch_size),
            ("temporal_patch_size", px.temporal_patch_size, v.temporal_patch_size),
            ("merge_size", px.merge_size, v.spatial_merge_size),
        ] {
            if proc_value != model_value {
                return Err(format!(
                    "the {what} processor's {key} is {proc_value} but the vision tower's is {model_value} (preprocessor files from another model?)"
                ));
            }
        }
    }
    match (&p.audio, model.audio_config()) {
        (Some(fe), Some(a)) if fe.feature_size != a.num_mel_bins => Err(format!(
            "the feature extractor makes {} mel bins but the audio tower expects {}",
            fe.feature_size, a.num_mel_bins
        )),
        (None, Some(_)) => Err("the checkpoint has an audio tower but no feature-extractor settings".into()),
        _ => Ok(()),
    }
}

/// Checks that the tokenizer's special tokens sit at the ids config.json names.
fn check_tokenizer(tok: &Tokenizer, model: &MultimodalModel) -> Result<(), TokenizerError> {
    let ids = model.media_tokens();
    tok.expect_id("<|image_pad|>", ids.image_pad)?;
    tok.expect_id("<|video_pad|>", ids.video_pad)?;
    tok.expect_id("<|vision_start|>", ids.vision_start)?;
    if let Some(id) = ids.vision_end {
        tok.expect_id("<|vision_end|>", id)?;
    }
    if let Some(id) = ids.audio_pad {
        tok.expect_id("<|audio_pad|>", id)?;
    }
    if let Some(id) = ids.audio_start {
        tok.expect_id("<|audio_start|>", id)?;
    }
    if let Some(id) = ids.audio_end {
        tok.expect_id("<|audio_end|>", id)?;
    }
    Ok(())
}
