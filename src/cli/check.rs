//! `omnid check DIR`: open a checkpoint and report what omnid understood, or the first
//! problem found (missing file, corrupt shard, unsupported architecture, mismatched tokenizer).

use std::process::ExitCode;

use super::{load_model, ModelArgs};
use crate::config::OmnidConfig;
use crate::models::text_decoder::FfnConfig;

/// Arguments of `omnid check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `omnid check`.
pub fn run(args: CheckArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    let loaded = load_model(&args.model, cfg)?;
    let dec = loaded.model.decoder().config();
    let moe_layers = dec.layers.iter().filter(|l| matches!(l, FfnConfig::Moe(_))).count();
    println!(
        "model       {}",
        loaded.dir.as_ref().map_or("<embedded tiny random-weight Qwen3-Omni>".into(), |d| d.display().to_string())
    );
    println!("family      {}", loaded.family.name());
    println!("dtype       {:?}", loaded.dtype);
    println!("weights     {}", loaded.describe_weights());
    println!(
        "decoder     {} layers ({moe_layers} MoE), hidden {}, {} q / {} kv heads × {}, vocab {}",
        dec.layers.len(),
        dec.hidden_size,
        dec.attention.num_heads,
        dec.attention.num_kv_heads,
        dec.attention.head_dim,
        dec.vocab_size
    );
    println!("tokenizer   {} tokens ({})", loaded.tokenizer.vocab_size(), loaded.tokenizer.path().display());
    println!("audio input {}", if loaded.model.accepts_audio() { "yes" } else { "no" });
    println!("stop ids    {:?}", loaded.stop_ids());
    Ok(ExitCode::SUCCESS)
}
