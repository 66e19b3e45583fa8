//! llama.cpp's GGUF files of a Qwen3-VL model, read under the Hugging Face checkpoint's names.
//!
//! llama.cpp ships a Qwen3-VL model as two files: the text decoder (`general.architecture`
//! `qwen3vl` or `qwen3vlmoe`) and the vision tower with its mergers (`mmproj-*.gguf`, architecture
//! `clip`). A directory holding them next to the checkpoint's `config.json`, tokenizer, template and
//! processor files loads like a checkpoint: every GGUF tensor is mapped to the name the model code
//! asks for, in whatever block format the file has (q4_k, q8_0, …, or f16/f32), following the
//! transforms of llama.cpp's converter (`Qwen3VLVisionModel`, `Qwen3MoeModel`):
//!
//! | GGUF | checkpoint |
//! |---|---|
//! | `token_embd`, `output_norm`, `output` | `model.language_model.embed_tokens`, `….norm`, `lm_head` |
//! | `blk.N.attn_{norm,q,k,v,output,q_norm,k_norm}`, `ffn_norm` | `….layers.N.input_layernorm`, `self_attn.{q,k,v,o}_proj`, `q_norm`, `k_norm`, `post_attention_layernorm` |
//! | `blk.N.ffn_gate_inp`, `ffn_{gate,up}_exps` `[E,I,H]`, `ffn_down_exps` | `mlp.gate`, `mlp.experts.gate_up_proj` `[E,2I,H]` (gate rows, then up, per expert), `mlp.experts.down_proj` |
//! | `blk.N.ffn_{gate,up,down}` | `mlp.{gate,up,down}_proj` (dense layers) |
//! | `v.patch_embd.weight` + `.weight.1` | `model.visual.patch_embed.proj.weight` (the two temporal slices of the Conv3d) |
//! | `v.position_embd`, `v.blk.N.{attn_qkv,attn_out,ln1,ln2,ffn_up,ffn_down}` | `pos_embed`, `blocks.N.{attn.qkv,attn.proj,norm1,norm2,mlp.linear_fc1,mlp.linear_fc2}` |
//! | `v.post_ln`, `mm.0`, `mm.2` | `merger.norm`, `merger.linear_fc1`, `merger.linear_fc2` |
//! | `v.deepstack.L.{norm,fc1,fc2}` | `deepstack_merger_list.j.{norm,linear_fc1,linear_fc2}`, `L` = `deepstack_visual_indexes[j]` |
//!
//! llama.cpp has no converter for Qwen3-Omni (its audio tower, talker and Code2Wav), so Omni
//! checkpoints are quantized with `omnid quantize` instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::store::{GgufFile, QuantStore, Source};

/// Text architectures of llama.cpp that carry a Qwen3-VL decoder: its own, and the plain Qwen3 /
/// Qwen3-MoE ones with the same tensors (positions and rotary come from config.json either way).
const TEXT_ARCHS: &[&str] = &["qwen3vl", "qwen3vlmoe", "qwen3", "qwen3moe"];

fn gguf_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "gguf")
                        && p.file_name().is_some_and(|n| n != super::store::FILE_NAME)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Whether `dir` holds GGUF files other than omnid's `model.gguf`.
pub fn has_gguf(dir: &Path) -> bool {
    !gguf_files(dir).is_empty()
}

fn err(problem: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::msg(problem.to_string())
}

/// Opens the text GGUF and the mmproj of `dir` for the model `config` describes.
pub fn open_dir(dir: &Path, config: &serde_json::Value) -> candle_core::Result<QuantStore> {
    let arch_of = |f: &GgufFile| match f.content.metadata.get("general.architecture") {
        Some(candle_core::quantized::gguf_file::Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let mut text: Option<GgufFile> = None;
    let mut vision: Option<GgufFile> = None;
    for path in gguf_files(dir) {
        let f = GgufFile::open(&path)?;
        let arch = arch_of(&f);
        let slot = if arch == "clip" {
            &mut vision
        } else if TEXT_ARCHS.contains(&arch.as_str()) {
            &mut text
        } else {
            return Err(err(format!(
                "{}: a GGUF of architecture {arch:?}; omnid reads llama.cpp's Qwen3-VL files ({} and their clip mmproj) \
                 — Qwen3-Omni checkpoints are quantized with `omnid quantize`",
                path.display(),
                TEXT_ARCHS.join(", ")
            )));
        };
        if let Some(prev) = slot {
            return Err(err(format!(
                "{} and {} are both {arch} GGUF files; keep one per directory",
                prev.path.display(),
                path.display()
            )));
        }
        *slot = Some(f);
    }
    let Some(text) = text else {
        return Err(err(format!(
            "{}: no llama.cpp text GGUF ({}) in this directory",
            dir.display(),
            TEXT_ARCHS.join(", ")
        )));
    };
    let deepstack: Vec<u64> = config
        .pointer("/vision_config/deepstack_visual_indexes")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
        .unwrap_or_default();
    let mut names = HashMap::new();
    map_text(&text, 0, &mut names)?;
    let mut files = vec![text];
    let hint = match vision {
        Some(v) => {
            map_vision(&v, 1, &deepstack, &mut names)?;
            files.push(v);
            format!(
                "{} lack the tensor",
                files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>().join(" and ")
            )
        }
        None => format!(
            "{} has no vision tower (llama.cpp keeps it in an mmproj-*.gguf file: put it in {}); missing",
            files[0].path.display(),
            dir.display()
        ),
    };
    Ok(QuantStore::from_parts(files, names, hint))
}

/// `(gguf name without .weight/.bias, kind)`.
fn split_kind(name: &str) -> Option<(&str, &str)> {
    name.strip_suffix(".weight").map(|b| (b, "weight")).or_else(|| name.strip_suffix(".bias").map(|b| (b, "bias")))
}

fn unknown(f: &GgufFile, name: &str) -> candle_core::Error {
    err(format!("{}: tensor {name} is not part of the Qwen3-VL layout omnid maps", f.path.display()))
}

fn map_text(f: &GgufFile, file: usize, names: &mut HashMap<String, Source>) -> candle_core::Result<()> {
    let lm = "model.language_model";
    let one = |n: &str| Source::One { file, name: n.to_string() };
    for name in f.content.tensor_infos.keys() {
        let Some((base, kind)) = split_kind(name) else { return Err(unknown(f, name)) };
        let hf = match base {
            "token_embd" => format!("{lm}.embed_tokens.{kind}"),
            "output_norm" => format!("{lm}.norm.{kind}"),
            "output" => format!("lm_head.{kind}"),
            _ => {
                let Some((layer, part)) = base.strip_prefix("blk.").and_then(|r| r.split_once('.')) else {
                    return Err(unknown(f, name));
                };
                let ours = match part {
                    "attn_norm" => "input_layernorm",
                    "ffn_norm" => "post_attention_layernorm",
                    "attn_q" => "self_attn.q_proj",
                    "attn_k" => "self_attn.k_proj",
                    "attn_v" => "self_attn.v_proj",
                    "attn_output" => "self_attn.o_proj",
                    "attn_q_norm" => "self_attn.q_norm",
                    "attn_k_norm" => "self_attn.k_norm",
                    "ffn_gate_inp" => "mlp.gate",
                    "ffn_gate" => "mlp.gate_proj",
                    "ffn_up" => "mlp.up_proj",
                    "ffn_down" => "mlp.down_proj",
                    "ffn_down_exps" => {
                        names.insert(format!("{lm}.layers.{layer}.mlp.experts.down_proj"), one(name));
                        continue;
                    }
                    "ffn_gate_exps" => {
                        let up = format!("blk.{layer}.ffn_up_exps.weight");
                        if !f.content.tensor_infos.contains_key(&up) {
                            return Err(err(format!("{}: {name} has no {up} beside it", f.path.display())));
                        }
                        let src = Source::GateUp { file, gate: name.clone(), up };
                        names.insert(format!("{lm}.layers.{layer}.mlp.experts.gate_up_proj"), src);
                        continue;
                    }
                    "ffn_up_exps" => continue, // read with ffn_gate_exps
                    _ => return Err(unknown(f, name)),
                };
                format!("{lm}.layers.{layer}.{ours}.{kind}")
            }
        };
        names.insert(hf, one(name));
    }
    Ok(())
}

fn map_vision(
    f: &GgufFile,
    file: usize,
    deepstack: &[u64],
    names: &mut HashMap<String, Source>,
) -> candle_core::Result<()> {
    let vis = "model.visual";
    let one = |n: &str| Source::One { file, name: n.to_string() };
    for name in f.content.tensor_infos.keys() {
        if name == "v.patch_embd.weight" {
            let second = "v.patch_embd.weight.1".to_string();
            if !f.content.tensor_infos.contains_key(&second) {
                return Err(err(format!(
                    "{}: v.patch_embd.weight has no second temporal slice {second}",
                    f.path.display()
                )));
            }
            let src = Source::TemporalSlices { file, first: name.clone(), second };
            names.insert(format!("{vis}.patch_embed.proj.weight"), src);
            continue;
        }
        if name == "v.patch_embd.weight.1" {
            continue;
        }
        let Some((base, kind)) = split_kind(name) else { return Err(unknown(f, name)) };
        let hf = match base {
            "v.patch_embd" => format!("{vis}.patch_embed.proj.{kind}"),
            "v.position_embd" => format!("{vis}.pos_embed.{kind}"),
            "v.post_ln" => format!("{vis}.merger.norm.{kind}"),
            "mm.0" => format!("{vis}.merger.linear_fc1.{kind}"),
            "mm.2" => format!("{vis}.merger.linear_fc2.{kind}"),
            _ => {
                if let Some((layer, part)) = base.strip_prefix("v.blk.").and_then(|r| r.split_once('.')) {
                    let ours = match part {
                        "attn_qkv" => "attn.qkv",
                        "attn_out" => "attn.proj",
                        "ln1" => "norm1",
                        "ln2" => "norm2",
                        "ffn_up" => "mlp.linear_fc1",
                        "ffn_down" => "mlp.linear_fc2",
                        _ => return Err(unknown(f, name)),
                    };
                    format!("{vis}.blocks.{layer}.{ours}.{kind}")
                } else if let Some((layer, part)) = base.strip_prefix("v.deepstack.").and_then(|r| r.split_once('.')) {
                    let j = layer.parse::<u64>().ok().and_then(|l| deepstack.iter().position(|d| *d == l));
                    let Some(j) = j else {
                        return Err(err(format!(
                            "{}: {name} is a DeepStack merger of vision layer {layer}, which config.json's deepstack_visual_indexes {deepstack:?} does not list",
                            f.path.display()
                        )));
                    };
                    let ours = match part {
                        "norm" => "norm",
                        "fc1" => "linear_fc1",
                        "fc2" => "linear_fc2",
                        _ => return Err(unknown(f, name)),
                    };
                    format!("{vis}.deepstack_merger_list.{j}.{ours}.{kind}")
                } else {
                    return Err(unknown(f, name));
                }
            }
        };
        names.insert(hf, one(name));
    }
    Ok(())
}
