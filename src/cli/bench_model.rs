//! The model a benchmark runs: a checkpoint (`--model`), the embedded default, or a random-weight
//! model of Qwen3-Omni-30B-A3B-Instruct's real widths with fewer layers (`--synthetic real-widths`),
//! which is what the speed of every stage depends on, without 70 GB of weights.

use super::{load_model, ModelArgs};
use crate::config::OmnidConfig;
use crate::engine::embedded::{load_synthetic_quantized, EmbeddedSize};
use crate::engine::model_dir::LoadedModel;

#[derive(Debug, clap::Args)]
pub struct BenchModelArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Build a random-weight model in-process: `real-widths` (the Instruct model's widths).
    #[arg(long, value_parser = ["real-widths"])]
    pub synthetic: Option<String>,
    /// Thinker layers of the synthetic model (the talker reads layer min(24, this)).
    #[arg(long, default_value_t = 2)]
    pub thinker_layers: usize,
    /// Thinker experts of the synthetic model (128 in the real one; top-8 routing either way).
    #[arg(long, default_value_t = 32)]
    pub thinker_experts: usize,
    /// Talker layers of the synthetic model (20 in the real one; 128 experts each, as the real one).
    #[arg(long, default_value_t = 2)]
    pub talker_layers: usize,
}

impl BenchModelArgs {
    /// Loads (or builds) the model.
    pub fn load(&self, cfg: &OmnidConfig) -> anyhow::Result<LoadedModel> {
        if self.synthetic.is_none() {
            return load_model(&self.model, cfg);
        }
        anyhow::ensure!(
            self.thinker_layers > 0 && self.talker_layers > 0 && self.thinker_experts > 0,
            "--thinker-layers, --thinker-experts and --talker-layers must be ≥ 1"
        );
        let size = EmbeddedSize::RealWidths {
            thinker_layers: self.thinker_layers,
            thinker_experts: self.thinker_experts,
            talker_layers: self.talker_layers,
        };
        let quant = self.model.quant_plan(cfg)?;
        let dev = crate::models::device::open(self.model.device.as_deref().unwrap_or(&cfg.model.device))
            .map_err(|e| anyhow::anyhow!("device (--device or [model] device): {e}"))?;
        // bf16 on a GPU (what it would serve in), f32 on the CPU, unless --dtype says otherwise.
        let dtype =
            crate::engine::model_dir::DTypeChoice::parse(self.model.dtype.as_deref().unwrap_or(&cfg.model.dtype))
                .map_err(anyhow::Error::msg)?
                .resolve(&dev);
        Ok(load_synthetic_quantized(&size, dtype, &dev, quant.as_ref())?)
    }

    /// What was measured, for the report.
    pub fn describe(&self, loaded: &LoadedModel) -> String {
        match &self.synthetic {
            Some(s) => format!(
                "synthetic {s}: thinker {} layers × {} experts, talker {} layers{}",
                self.thinker_layers,
                self.thinker_experts,
                self.talker_layers,
                loaded.quant.as_ref().map_or(String::new(), |q| format!(", quantized {}", q.spec()))
            ),
            None => loaded
                .dir
                .as_ref()
                .map_or("<embedded tiny random-weight Qwen3-Omni>".into(), |d| d.display().to_string()),
        }
    }
}
