#!/usr/bin/env python3
"""Builds a random-weight Qwen3-Omni thinker checkpoint at the real model's widths with fewer layers,
for `omnid bench` and `scripts/bench_reference.py` (the speed comparison with transformers).

    python scripts/make_bench_model.py --out /tmp/omni-bench [--layers 4] [--experts 32] [--vocab 32000]

Real Qwen3-Omni-30B-A3B thinker widths are kept where they set the per-token cost: hidden 2048, 32 query /
4 KV heads of head_dim 128, MoE with top-8 routing over experts of width 768, interleaved M-RoPE [24,20,20].
Depth, expert count and vocabulary are reduced so the checkpoint fits comfortably twice in 24 GB (omnid
and the reference run one after the other). The tokenizer, chat template and processor files are copied
from tests/fixtures/omni_b (a thinker-only Omni fixture); the encoders are tiny (text-only benchmark).
Weights are written in bf16 (both engines load them into f32). Needs torch + transformers==5.23.0.
"""
import argparse, json, os, shutil

import torch
from transformers import Qwen3OmniMoeConfig, Qwen3OmniMoeForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "omni_b")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--speech", action="store_true",
                    help="also a talker (real widths, --talker-layers layers, 128 experts) and the real Code2Wav")
    ap.add_argument("--talker-layers", type=int, default=2)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    text = cfg["thinker_config"]["text_config"]
    text.update(hidden_size=2048, num_hidden_layers=a.layers, num_attention_heads=32, num_key_value_heads=4,
                head_dim=128, num_experts=a.experts, num_experts_per_tok=8, moe_intermediate_size=768,
                intermediate_size=768, mlp_only_layers=[], decoder_sparse_step=1, norm_topk_prob=True,
                vocab_size=a.vocab)
    text["rope_parameters"]["mrope_section"] = [24, 20, 20]
    cfg["thinker_config"]["vision_config"]["out_hidden_size"] = 2048
    cfg["thinker_config"]["audio_config"]["output_dim"] = 2048
    if a.speech:
        # Qwen3-Omni-30B-A3B-Instruct's talker and Code2Wav widths (spec §1.3.1); codec ids as in the real model.
        cfg["enable_audio_output"] = True
        t = cfg["talker_config"]
        t["text_config"].update(vocab_size=3072, hidden_size=1024, intermediate_size=2048,
                                num_hidden_layers=a.talker_layers, num_attention_heads=16, num_key_value_heads=2,
                                head_dim=128, moe_intermediate_size=384, num_experts=128, num_experts_per_tok=6,
                                shared_expert_intermediate_size=768)
        t["text_config"].pop("num_local_experts", None)
        t["text_config"]["rope_parameters"]["mrope_section"] = [24, 20, 20]
        t["code_predictor_config"].update(vocab_size=2048, hidden_size=1024, intermediate_size=3072,
                                          num_hidden_layers=5, num_attention_heads=16, num_key_value_heads=8,
                                          head_dim=128, num_code_groups=16)
        t["code_predictor_config"].pop("layer_types", None)
        t["text_config"].pop("layer_types", None)
        cfg["code2wav_config"].pop("layer_types", None)
        t.update(num_code_groups=16, accept_hidden_layer=min(24, a.layers), thinker_hidden_size=2048,
                 codec_pad_id=2148, codec_bos_id=2149, codec_eos_token_id=2150, codec_nothink_id=2155,
                 codec_think_bos_id=2156, codec_think_eos_id=2157,
                 speaker_id={"chelsie": 2301, "ethan": 2302, "aiden": 2303})
        cfg["code2wav_config"].update(codebook_size=2048, num_quantizers=16, hidden_size=1024, intermediate_size=3072,
                                      num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=16,
                                      decoder_dim=1536)
    for k in ("architectures", "transformers_version", "dtype", "torch_dtype", "model_type"):
        cfg.pop(k, None)
    torch.manual_seed(0)
    model = Qwen3OmniMoeForConditionalGeneration(Qwen3OmniMoeConfig(**cfg)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".ln_" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.dim() >= 2:
                p.normal_(0, p.shape[-1] ** -0.5)
            else:
                p.normal_(0, 0.02)
    os.makedirs(a.out, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(a.out)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json",
              "generation_config.json"):
        shutil.copy(os.path.join(SRC, f), os.path.join(a.out, f))
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"out": a.out, "params": n, "layers": a.layers, "experts": a.experts, "vocab": a.vocab}))


if __name__ == "__main__":
    main()
