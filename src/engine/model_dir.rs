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
use crate::models::quant::llama_cpp;
use crate::models::quant::plan::QuantPlan;
use crate::models::quant::store::{self as quant_store, QuantStore};
use crate::models::weights::{Recorded, WeightOptions, Weights};
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
    /// A problem with a quantized model file (the message names the file).
    #[error("{0}")]
    Quantized(String),
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

    /// The dtype on `device`: `auto` is bf16 on a GPU, f32 on the CPU.
    pub fn resolve(self, device: &Device) -> DType {
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
    /// The quantization the weights are held in (`None`: the checkpoint's precision, or files
    /// used as they are quantized, see `as_stored`).
    pub quant: Option<QuantPlan>,
    /// llama.cpp GGUF files whose block formats are used as they are (no omnid plan).
    pub as_stored: Option<String>,
}

impl LoadedModel {
    /// Opens a checkpoint directory (safetensors, or the `model.gguf` of `omnid quantize`).
    pub fn open(dir: &Path, dtype: DTypeChoice, device: &Device) -> Result<Self, LoadError> {
        Ok(Self::open_with(dir, dtype, device, None, false)?.0)
    }

    /// Opens a checkpoint directory, quantizing its matrices as they are read when `quant` is
    /// given, and returns every tensor handed to the model when `record` is set (what
    /// `omnid quantize` writes).
    pub fn open_with(
        dir: &Path,
        dtype: DTypeChoice,
        device: &Device,
        quant: Option<&QuantPlan>,
        record: bool,
    ) -> Result<(Self, Vec<(String, Recorded)>), LoadError> {
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
        let dtype = dtype.resolve(device);
        let (vb, options, quant) = open_weights(dir, &config, dtype, device, quant)?;
        let as_stored = options.stored.as_ref().filter(|s| s.plan().is_none()).map(|s| s.describe());
        let options = Arc::new(WeightOptions { record: record.then(Default::default), ..options });
        let weights = Weights::new(vb, options);
        let model = MultimodalModel::load(family, &config, weights.clone())
            .map_err(|e| LoadError::Model { dir: dir.into(), problem: e.to_string() })?;
        let recorded = weights.take_recorded();
        let lm = Self {
            dir: Some(dir.to_path_buf()),
            family,
            model,
            tokenizer,
            template,
            processor,
            generation,
            dtype,
            device: device.clone(),
            quant,
            as_stored,
        }
        .checked()?;
        Ok((lm, recorded))
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

    /// How the weights are held, for reports: `dense`, `q4_k,…` or the GGUF files used as stored.
    pub fn describe_weights(&self) -> String {
        match (&self.quant, &self.as_stored) {
            (Some(q), _) => format!("quantized {} ({})", q.spec(), q.describe()),
            (None, Some(files)) => format!("as quantized in {files}"),
            (None, None) => "dense (the checkpoint's precision)".into(),
        }
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

/// The weights of `dir`: its safetensors checkpoint, quantized on load by `quant` if given; the
/// `model.gguf` written by `omnid quantize` (which must have been made from this `config.json`,
/// and with the same plan if `quant` is given); or llama.cpp's GGUF files of a Qwen3-VL model (text
/// GGUF + mmproj, used as quantized). Returns the quantization plan in effect.
fn open_weights(
    dir: &Path,
    config: &serde_json::Value,
    dtype: DType,
    device: &Device,
    quant: Option<&QuantPlan>,
) -> Result<(candle_nn::VarBuilder<'static>, WeightOptions, Option<QuantPlan>), LoadError> {
    let gguf = dir.join(quant_store::FILE_NAME);
    match Checkpoint::open_dir(dir) {
        Ok(ckpt) => {
            let vb = Arc::new(ckpt).var_builder(dtype, device);
            Ok((vb, WeightOptions { plan: quant.cloned(), ..Default::default() }, quant.cloned()))
        }
        Err(CheckpointError::NoWeights { .. }) if gguf.is_file() => {
            let file_err = |problem: String| LoadError::File { path: gguf.clone(), problem };
            let store = Arc::new(QuantStore::open(&gguf).map_err(|e| LoadError::Quantized(e.to_string()))?);
            if store.config() != Some(config) {
                return Err(file_err(format!(
                    "was quantized from a different config.json than {}; quantize this checkpoint again",
                    dir.join("config.json").display()
                )));
            }
            let plan = store.plan().cloned();
            if let Some(q) = quant.filter(|q| Some(*q) != plan.as_ref()) {
                return Err(file_err(format!(
                    "holds weights quantized as {}, not {}; quantize the original checkpoint with --quant {} instead",
                    plan.as_ref().map_or("?", |p| p.spec()),
                    q.spec(),
                    q.spec()
                )));
            }
            let vb = store.var_builder(dtype, device);
            Ok((vb, WeightOptions { stored: Some(store), ..Default::default() }, plan))
        }
        Err(CheckpointError::NoWeights { .. }) if llama_cpp::has_gguf(dir) => {
            let store = Arc::new(llama_cpp::open_dir(dir, config).map_err(|e| LoadError::Quantized(e.to_string()))?);
            if let Some(q) = quant {
                return Err(LoadError::Quantized(format!(
                    "{}: llama.cpp's GGUF files are used as they are quantized; --quant {} needs the safetensors checkpoint",
                    store.describe(),
                    q.spec()
                )));
            }
            let vb = store.var_builder(dtype, device);
            Ok((vb, WeightOptions { stored: Some(store), ..Default::default() }, None))
        }
        Err(e) => Err(e.into()),
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
