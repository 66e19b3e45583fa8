#!/usr/bin/env python3
"""Writes a Qwen3-VL(-MoE) checkpoint the way llama.cpp ships it: a text GGUF (`qwen3vlmoe` / `qwen3vl`
layout) and an `mmproj` GGUF for the vision tower, next to the checkpoint's config, tokenizer and processor
files. `tests/fixtures/vl_moe_a_gguf` comes from it (`omnid` must load such a directory and give the
reference's tokens).

    /tmp/pyllama/bin/python scripts/make_llama_gguf_fixture.py --model tests/fixtures/vl_moe_a \\
        --out tests/fixtures/vl_moe_a_gguf

Tensor names and transforms follow llama.cpp's converter (`Qwen3VLVisionModel`, `Qwen3MoeModel`):
vision blocks `v.blk.N.{attn_qkv,attn_out,ln1,ln2,ffn_up,ffn_down}`, the Conv3d patch embedding split into
`v.patch_embd.weight` / `.weight.1` (one per temporal slice), `v.position_embd`, the merger as `v.post_ln`,
`mm.0`, `mm.2`, DeepStack mergers as `v.deepstack.<vision layer>.{norm,fc1,fc2}`; text experts split into
`ffn_gate_exps` / `ffn_up_exps` `[E, I, H]` and `ffn_down_exps` `[E, H, I]`. Matrices whose rows fill
32-value blocks are written in q8_0 by the gguf package's quantizer (`--quant q8_0`, default), the rest f32.
"""
import argparse, json, os, shutil

import numpy as np
import gguf

from bench_llama_cpp import read_safetensors


def add(wr, name, arr, qtype):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if qtype != gguf.GGMLQuantizationType.F32 and arr.ndim >= 2 and arr.shape[-1] % 32 == 0:
        wr.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
    else:
        wr.add_tensor(name, arr)


def write_text(cfg, w, path, qtype):
    t = cfg["text_config"]
    moe = "moe_intermediate_size" in t and (t.get("num_experts") or t.get("num_local_experts"))
    arch = "qwen3vlmoe" if moe else "qwen3vl"
    wr = gguf.GGUFWriter(path, arch)
    wr.add_block_count(t["num_hidden_layers"])
    wr.add_embedding_length(t["hidden_size"])
    wr.add_head_count(t["num_attention_heads"])
    wr.add_head_count_kv(t["num_key_value_heads"])
    p = "model.language_model."
    add(wr, "token_embd.weight", w[p + "embed_tokens.weight"], qtype)
    add(wr, "output_norm.weight", w[p + "norm.weight"], gguf.GGMLQuantizationType.F32)
    if "lm_head.weight" in w:
        add(wr, "output.weight", w["lm_head.weight"], qtype)
    plain = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
             "mlp.gate": "ffn_gate_inp", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    h = t["hidden_size"]
    for i in range(t["num_hidden_layers"]):
        lp = f"{p}layers.{i}."
        for ours, theirs in plain.items():
            for kind in ("weight", "bias"):
                if lp + f"{ours}.{kind}" in w:
                    norm = "norm" in theirs or theirs == "ffn_gate_inp" or kind == "bias"
                    add(wr, f"blk.{i}.{theirs}.{kind}", w[lp + f"{ours}.{kind}"],
                        gguf.GGMLQuantizationType.F32 if norm else qtype)
        if lp + "mlp.experts.gate_up_proj" in w:
            gu, dn = w[lp + "mlp.experts.gate_up_proj"], w[lp + "mlp.experts.down_proj"]
            if gu.shape[2] != h:  # hub orientation [E, H, 2I]
                gu = gu.transpose(0, 2, 1)
            if dn.shape[1] != h:  # hub orientation [E, I, H]
                dn = dn.transpose(0, 2, 1)
            inter = gu.shape[1] // 2
            add(wr, f"blk.{i}.ffn_gate_exps.weight", gu[:, :inter, :], qtype)
            add(wr, f"blk.{i}.ffn_up_exps.weight", gu[:, inter:, :], qtype)
            add(wr, f"blk.{i}.ffn_down_exps.weight", dn, qtype)
    wr.write_header_to_file(); wr.write_kv_data_to_file(); wr.write_tensors_to_file(); wr.close()


def write_mmproj(cfg, w, path, qtype):
    v = cfg["vision_config"]
    wr = gguf.GGUFWriter(path, "clip")
    wr.add_bool("clip.has_vision_encoder", True)
    wr.add_string("clip.projector_type", "qwen3vl_merger")
    f32 = gguf.GGMLQuantizationType.F32
    pe = w["model.visual.patch_embed.proj.weight"]
    add(wr, "v.patch_embd.weight", pe[:, :, 0], f32)
    add(wr, "v.patch_embd.weight.1", pe[:, :, 1], f32)
    add(wr, "v.patch_embd.bias", w["model.visual.patch_embed.proj.bias"], f32)
    add(wr, "v.position_embd.weight", w["model.visual.pos_embed.weight"], f32)
    block = {"attn.qkv": "attn_qkv", "attn.proj": "attn_out", "norm1": "ln1", "norm2": "ln2",
             "mlp.linear_fc1": "ffn_up", "mlp.linear_fc2": "ffn_down"}
    for i in range(v["depth"]):
        for ours, theirs in block.items():
            for kind in ("weight", "bias"):
                src = f"model.visual.blocks.{i}.{ours}.{kind}"
                add(wr, f"v.blk.{i}.{theirs}.{kind}", w[src], f32 if "ln" in theirs or kind == "bias" else qtype)
    merger = {"norm": "v.post_ln", "linear_fc1": "mm.0", "linear_fc2": "mm.2"}
    for ours, theirs in merger.items():
        for kind in ("weight", "bias"):
            add(wr, f"{theirs}.{kind}", w[f"model.visual.merger.{ours}.{kind}"], f32 if ours == "norm" or kind == "bias" else qtype)
    for j, layer in enumerate(v.get("deepstack_visual_indexes", [])):
        for ours, theirs in (("norm", "norm"), ("linear_fc1", "fc1"), ("linear_fc2", "fc2")):
            for kind in ("weight", "bias"):
                add(wr, f"v.deepstack.{layer}.{theirs}.{kind}", w[f"model.visual.deepstack_merger_list.{j}.{ours}.{kind}"],
                    f32 if ours == "norm" or kind == "bias" else qtype)
    wr.write_header_to_file(); wr.write_kv_data_to_file(); wr.write_tensors_to_file(); wr.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quant", default="q8_0", choices=["q8_0", "f32"])
    a = ap.parse_args()
    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "f32": gguf.GGMLQuantizationType.F32}[a.quant]
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    w = read_safetensors(os.path.join(a.model, "model.safetensors"))
    os.makedirs(a.out, exist_ok=True)
    for f in sorted(os.listdir(a.model)):
        src = os.path.join(a.model, f)
        if os.path.isfile(src) and not f.endswith(".safetensors") and f not in ("reference.json",):
            shutil.copy(src, os.path.join(a.out, f))
    name = os.path.basename(os.path.normpath(a.model))
    write_text(cfg, w, os.path.join(a.out, f"{name}-{a.quant}.gguf"), qtype)
    write_mmproj(cfg, w, os.path.join(a.out, f"mmproj-{name}-f32.gguf" if a.quant == "f32" else f"mmproj-{name}-{a.quant}.gguf"), qtype)


if __name__ == "__main__":
    main()
