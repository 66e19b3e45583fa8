#!/usr/bin/env python3
"""Weight memory of Qwen3-Omni-30B-A3B-Instruct under each `--quant` scheme, computed from the model
transformers builds for the real config (on the meta device: no memory, no weights) with the rules of
src/models/quant/plan.rs.

    /work/pyref-fx/bin/python scripts/quant_memory.py [--json]

Which weights omnid quantizes (mirrors the loader, src/models/weights.rs and its callers): the matrices of
every nn.Linear (omnid's `Linear`), the routed experts, and the thinker's token embeddings. Everything else
(norms, biases, routers, convolutions, position tables, the small codec tables) stays dense in the
activation dtype: f32 on the CPU, bf16 on a GPU. The class of a tensor and the fallback of rows that do not
fill 256-value blocks (to q8_0) follow plan.rs. The real config's values are those of the spec, §1.3.1;
the thinker's parameter count is checked against the published 31,719,205,488.
"""
import argparse, json, os

import torch
from transformers import Qwen3OmniMoeConfig, Qwen3OmniMoeForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "omni_a", "config.json")

# ggml block formats: (values per block, bytes per block).
FORMATS = {"q4_0": (32, 18), "q8_0": (32, 34), "q4_k": (256, 144), "q5_k": (256, 176), "q6_k": (256, 210)}
CLASSES = ["experts", "attention", "ffn", "embedding", "head", "encoder", "codec"]
SCHEMES = {
    "q8_0": dict.fromkeys(CLASSES, "q8_0"),
    "q6_k": dict(experts="q6_k", attention="q6_k", ffn="q6_k", embedding="q6_k", head="q6_k", encoder="q8_0", codec="q8_0"),
    "q4_k": dict(experts="q4_k", attention="q6_k", ffn="q4_k", embedding="q4_k", head="q6_k", encoder="q8_0", codec="q8_0"),
}


def real_config():
    cfg = json.load(open(FIXTURE))
    t = cfg["thinker_config"]
    t["text_config"].update(vocab_size=152064, hidden_size=2048, num_hidden_layers=48, num_attention_heads=32,
                            num_key_value_heads=4, head_dim=128, num_experts=128, num_experts_per_tok=8,
                            moe_intermediate_size=768, intermediate_size=768, mlp_only_layers=[], decoder_sparse_step=1)
    t["vision_config"].update(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, patch_size=16,
                              temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=2048,
                              num_position_embeddings=2304, deepstack_visual_indexes=[8, 16, 24])
    t["audio_config"].update(num_mel_bins=128, encoder_layers=32, encoder_attention_heads=20, d_model=1280,
                             encoder_ffn_dim=5120, downsample_hidden_size=480, output_dim=2048)
    k = cfg["talker_config"]
    k["text_config"].update(vocab_size=3072, hidden_size=1024, num_hidden_layers=20, num_attention_heads=16,
                            num_key_value_heads=2, head_dim=128, intermediate_size=2048, moe_intermediate_size=384,
                            num_local_experts=128, num_experts_per_tok=6, shared_expert_intermediate_size=768)
    k["code_predictor_config"].update(vocab_size=2048, hidden_size=1024, num_hidden_layers=5, num_attention_heads=16,
                                      num_key_value_heads=8, head_dim=128, intermediate_size=3072, num_code_groups=16,
                                      layer_types=["full_attention"] * 5)
    k.update(num_code_groups=16, accept_hidden_layer=24, thinker_hidden_size=2048)
    cfg["code2wav_config"].update(codebook_size=2048, num_quantizers=16, hidden_size=1024, num_hidden_layers=8,
                                  num_attention_heads=16, num_key_value_heads=16, intermediate_size=3072,
                                  upsample_rates=[8, 5, 4, 3], upsampling_ratios=[2, 2], decoder_dim=1536)
    return cfg


def tensor_class(name):
    """plan.rs TensorClass::of, for the tensors the loader quantizes."""
    if name.startswith("code2wav."):
        return "codec"
    if "audio_tower." in name or "visual." in name:
        return "encoder"
    if ".experts." in name or name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
        return "experts"
    if "embed_tokens" in name:
        return "embedding"
    if "lm_head" in name or "codec_head" in name:
        return "head"
    if "self_attn." in name:
        return "attention"
    return "ffn"


def quantized_tensors(model):
    """(name, rows, row_len, class) of every matrix omnid quantizes (names as transformers holds them in
    memory, e.g. `thinker.model.language_model.…`; the classes come out as for the checkpoint's names)."""
    out = []
    for mname, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            w = mod.weight
            name = f"{mname}.weight"
            if name.endswith(".gate.weight") or "shared_expert_gate" in name:
                continue  # routers stay dense
            out.append((name, w.shape[0], w.shape[1], tensor_class(name)))
    for pname, p in model.named_parameters():
        if pname.endswith("experts.gate_up_proj") or pname.endswith("experts.down_proj"):
            # transformers holds fused experts as [E, 2I, H] / [E, H, I] (rows along the last dim).
            e, a, b = p.shape
            out.append((pname, e * a, b, "experts"))
        elif pname.startswith("thinker.") and pname.endswith("embed_tokens.weight"):
            out.append((pname, p.shape[0], p.shape[1], "embedding"))
    return out


def fit(fmt, row_len):
    block, _ = FORMATS[fmt]
    if row_len % block == 0:
        return fmt
    if fmt in ("q4_k", "q5_k", "q6_k"):
        return fit("q8_0", row_len)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    config = Qwen3OmniMoeConfig(**real_config())
    with torch.device("meta"):
        model = Qwen3OmniMoeForConditionalGeneration(config)
    total = sum(p.numel() for p in model.parameters())
    thinker = sum(p.numel() for n, p in model.named_parameters() if n.startswith("thinker."))
    assert thinker == 31_719_205_488, f"thinker has {thinker} parameters, the published model 31,719,205,488"
    quant = quantized_tensors(model)
    quant_params = sum(r * c for _, r, c, _ in quant)
    report = {"total_params": total, "thinker_params": thinker, "quantizable_params": quant_params, "schemes": {}}
    for dense_name, dense_bytes in (("bf16", 2), ("f32", 4)):
        report["schemes"][dense_name] = {"bytes": total * dense_bytes}
    thinker_rest = thinker - sum(r * c for n, r, c, _ in quant if n.startswith("thinker."))
    for scheme, per_class in SCHEMES.items():
        by_class, qbytes, thinker_q = {}, 0, 0
        for name, rows, row_len, cls in quant:
            fmt = fit(per_class[cls], row_len)
            if fmt is None:
                b = rows * row_len * 4
            else:
                block, size = FORMATS[fmt]
                b = rows * row_len // block * size
            by_class[cls] = by_class.get(cls, 0) + b
            qbytes += b
            thinker_q += b if name.startswith("thinker.") else 0
        rest = total - quant_params
        report["schemes"][scheme] = {
            "quantized_bytes": qbytes, "by_class": by_class,
            "dense_rest_params": rest,
            "bytes_cpu_f32_rest": qbytes + rest * 4,
            "bytes_gpu_bf16_rest": qbytes + rest * 2,
            "thinker_only_bytes_gpu_bf16_rest": thinker_q + thinker_rest * 2,
        }
    if a.json:
        print(json.dumps(report, indent=1))
        return
    print(f"parameters: {total:,} (thinker {thinker:,}); quantized by omnid: {quant_params:,}")
    for name in ("bf16", "f32"):
        print(f"  dense {name:<5} {report['schemes'][name]['bytes'] / 1e9:6.2f} GB")
    for scheme in SCHEMES:
        s = report["schemes"][scheme]
        cls = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in sorted(s["by_class"].items(), key=lambda kv: -kv[1]))
        print(f"  {scheme:<5} {s['bytes_cpu_f32_rest'] / 1e9:6.2f} GB on the CPU (rest in f32), "
              f"{s['bytes_gpu_bf16_rest'] / 1e9:6.2f} GB on a GPU (rest in bf16), thinker alone "
              f"{s['thinker_only_bytes_gpu_bf16_rest'] / 1e9:.2f} GB; quantized: {cls}")


if __name__ == "__main__":
    main()
