#!/usr/bin/env python3
"""Builds a random-weight Qwen3-VL-30B-A3B (MoE) checkpoint at the real model's widths with fewer layers,
for the OCR and GUI-agent benchmarks (`omnid bench-ocr --model DIR`, `omnid bench-agent --model DIR`).

    python scripts/make_bench_vl_model.py --out /tmp/vl-bench [--layers 2] [--experts 32] [--vision-depth 4]

Real Qwen3-VL-30B-A3B widths are kept where they set the per-token cost: text hidden 2048, 32 query / 4 KV
heads of head_dim 128, MoE with top-8 routing over experts of width 768, interleaved M-RoPE [24,20,20];
the vision encoder at its real width (hidden 1152, MLP 4304, 16 heads, 2304 position embeddings) with
fewer blocks; the real image budget (longest_edge 16384*32*32) and a 65536-token context. Depth, expert
count and vocabulary are reduced so it fits this machine. The tokenizer, chat template and processor files
are copied from tests/fixtures/vl_moe_a. Weights are written in bf16. Needs torch + transformers==5.23.0.
"""
import argparse, json, os, shutil

import torch
from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "vl_moe_a")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--experts", type=int, default=32)
    ap.add_argument("--vision-depth", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    text = cfg["text_config"]
    text.update(hidden_size=2048, num_hidden_layers=a.layers, num_attention_heads=32, num_key_value_heads=4,
                head_dim=128, num_local_experts=a.experts, num_experts_per_tok=8, moe_intermediate_size=768,
                intermediate_size=6144, mlp_only_layers=[], decoder_sparse_step=1, vocab_size=a.vocab,
                max_position_embeddings=65536)
    text["rope_parameters"]["mrope_section"] = [24, 20, 20]
    vision = cfg["vision_config"]
    vision.update(depth=a.vision_depth, hidden_size=1152, intermediate_size=4304, num_heads=16,
                  num_position_embeddings=2304, out_hidden_size=2048,
                  deepstack_visual_indexes=list(range(min(3, a.vision_depth))))
    torch.manual_seed(0)
    model = Qwen3VLMoeForConditionalGeneration(Qwen3VLMoeConfig(**cfg)).to(torch.bfloat16)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    for name in ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"]:
        shutil.copy(os.path.join(SRC, name), a.out)
    # The real Qwen3-VL image budget (the fixture's is tiny).
    pre = json.load(open(os.path.join(SRC, "processor_config.json")))
    pre["image_processor"]["size"] = {"longest_edge": 16384 * 32 * 32, "shortest_edge": 65536}
    json.dump(pre, open(os.path.join(a.out, "processor_config.json"), "w"), indent=2)
    print(f"wrote {a.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters")


if __name__ == "__main__":
    main()
