//! The preprocessing settings of a checkpoint — feature extractor, image processor, video
//! processor — read from the files a checkpoint ships them in: the hub layout
//! (`preprocessor_config.json` with the feature-extractor and image keys merged, plus
//! `video_preprocessor_config.json`) or the transformers 5.x layout (`processor_config.json`
//! with one object per part).

use std::path::{Path, PathBuf};

use crate::models::family::Family;
use crate::preprocess::{
    FeatureExtractorConfig, ImageProcessorConfig, PreprocessError, VideoProcessorConfig, VideoProcessorKind,
};

/// The preprocessor settings of a checkpoint.
#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// Log-mel front end (models with audio input).
    pub audio: Option<FeatureExtractorConfig>,
    pub image: ImageProcessorConfig,
    pub video: VideoProcessorConfig,
}

impl ProcessorSettings {
    /// Reads `preprocessor_config.json` (and `video_preprocessor_config.json` when present).
    /// Errors are `(file, problem)`.
    pub fn from_dir(dir: &Path, family: Family) -> Result<Self, (PathBuf, String)> {
        fn err(p: &Path) -> impl Fn(PreprocessError) -> (PathBuf, String) + '_ {
            move |e| (p.to_path_buf(), e.to_string())
        }
        let kind = match family {
            Family::Qwen3Omni => VideoProcessorKind::Qwen2Vl,
            Family::Qwen3Vl | Family::Qwen3VlMoe => VideoProcessorKind::Qwen3Vl,
        };
        let pre = dir.join("preprocessor_config.json");
        let native = dir.join("processor_config.json");
        let (audio_json, image_json, video_json, src) = if pre.exists() {
            // Hub layout: one file with the feature-extractor and image-processor keys merged,
            // the video processor in its own file when present.
            let text = std::fs::read_to_string(&pre).map_err(|e| (pre.clone(), format!("cannot read: {e}")))?;
            let video_file = dir.join("video_preprocessor_config.json");
            let video = if video_file.exists() {
                std::fs::read_to_string(&video_file).map_err(|e| (video_file.clone(), format!("cannot read: {e}")))?
            } else {
                text.clone()
            };
            (text.clone(), text, video, pre)
        } else if native.exists() {
            // transformers 5.x layout: one processor_config.json with a sub-object per part.
            let text = std::fs::read_to_string(&native).map_err(|e| (native.clone(), format!("cannot read: {e}")))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| (native.clone(), format!("invalid JSON: {e}")))?;
            let part = |key: &str| -> Result<String, (PathBuf, String)> {
                v.get(key).map(|p| p.to_string()).ok_or_else(|| (native.clone(), format!("has no \"{key}\" object")))
            };
            let audio = if family == Family::Qwen3Omni { part("feature_extractor")? } else { String::new() };
            let image = part("image_processor")?;
            let video = v.get("video_processor").map(|p| p.to_string()).unwrap_or_else(|| image.clone());
            (audio, image, video, native)
        } else {
            return Err((
                pre,
                "file not found (nor processor_config.json): the checkpoint's image/audio preprocessing settings"
                    .into(),
            ));
        };
        let audio = match family {
            Family::Qwen3Omni => Some(FeatureExtractorConfig::from_json_str(&audio_json).map_err(err(&src))?),
            Family::Qwen3Vl | Family::Qwen3VlMoe => None,
        };
        let image = ImageProcessorConfig::from_json_str(&image_json).map_err(err(&src))?;
        let mut video = VideoProcessorConfig::from_json_str(&video_json, kind).map_err(err(&src))?;
        if family == Family::Qwen3Omni {
            // Qwen3OmniMoeProcessor passes its own per-frame budget to the video processor,
            // which wins over the video config (transformers 5.23).
            video = video.with_omni_processor_budget();
        }
        Ok(Self { audio, image, video })
    }

    /// Settings of the embedded default model: the Qwen3-Omni values with a small pixel
    /// budget so its tiny vision tower sees few tokens.
    pub fn embedded() -> Self {
        let json = r#"{"feature_size": 128, "sampling_rate": 16000, "hop_length": 160, "n_fft": 400,
            "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 4096, "max_pixels": 65536,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_resize": true, "resample": 3}"#;
        let parsed = (|| -> Result<Self, PreprocessError> {
            Ok(Self {
                audio: Some(FeatureExtractorConfig::from_json_str(json)?),
                image: ImageProcessorConfig::from_json_str(json)?,
                video: VideoProcessorConfig::from_json_str(json, VideoProcessorKind::Qwen2Vl)?,
            })
        })();
        parsed.expect("the embedded processor config is static; this is a bug")
    }
}
