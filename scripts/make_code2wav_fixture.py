#!/usr/bin/env python3
"""Reference outputs of Qwen3-Omni's Code2Wav (codec codes -> 24 kHz waveform) for omnid's parity tests.

Loads the `code2wav.*` weights of the committed tiny checkpoint tests/fixtures/omni_a (bf16 on disk) into
transformers 5.23's `Qwen3OmniMoeCode2Wav` and records into tests/fixtures/omni_a/code2wav_reference.safetensors:

  codes_T{T}          int64 [1, num_quantizers, T]   seeded pseudo-random codes, T = 1, 7, 40
  wav_T{T}            f32   [1, 1, 1920*T - 555]     `forward(codes)` (full decode)
  preclamp_T7         f32   [1, 1, 1920*7 - 555]     the same before the final clamp to [-1, 1]
  chunked_T40         f32   [1, 1, L]                `chunked_decode(codes_T40, chunk_size=16, left_context_size=8)`
  codes_T100          int64 [1, num_quantizers, 100] longer than the 72-frame attention window ...
  hidden_T100         f32   [1, 100, hidden]         ... so the pre-transformer output checks the sliding window
                                                     (the waveform of 100 frames would not fit the size budget)

and the metadata (versions, total upsample, lengths, the length law) in the safetensors header.

Why float64: omni_a's random code2wav weights have a large gain (the waveform before the clamp peaks at ~350 and
93-99 % of the samples are clamped), so float32 rounding alone moves the output by ~1e-2 (torch float32 vs
float64: 0.011 after the clamp). A 1e-4 parity check is only meaningful in float64, so the outputs are computed
in float64 and stored rounded to f32 (error <= 6e-8 after the clamp, <= 2e-5 before). transformers keeps two
float32 steps even in a float64 model -- RMSNorm statistics (`hidden_states.to(torch.float32)`) and the RoPE
cos/sin tables -- whose rounding the gain turns into ~5e-3; `float64_throughout` lifts exactly those two casts
for this run (same formulas, float64 arithmetic). omnid's f64 path computes them in f64 too.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import Qwen3OmniMoeConfig
from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import Qwen3OmniMoeCode2Wav

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "tests", "fixtures", "omni_a")
OUT = os.path.join(MODEL_DIR, "code2wav_reference.safetensors")
FRAMES = (1, 7, 40)
LONG_FRAMES = 100
CHUNK_SIZE, LEFT_CONTEXT = 16, 8
SEED = 20260601


def load_code2wav() -> Qwen3OmniMoeCode2Wav:
    cfg = Qwen3OmniMoeConfig.from_pretrained(MODEL_DIR).code2wav_config
    cfg._attn_implementation = "sdpa"  # transformers' default on CPU
    model = Qwen3OmniMoeCode2Wav._from_config(cfg, dtype=torch.float32).eval()
    index = json.load(open(os.path.join(MODEL_DIR, "model.safetensors.index.json")))["weight_map"]
    state = {}
    for name, shard in index.items():
        if name.startswith("code2wav."):
            with safe_open(os.path.join(MODEL_DIR, shard), "pt") as f:
                state[name[len("code2wav."):]] = f.get_tensor(name).to(torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # code_offset is a non-persistent buffer; everything else must come from the checkpoint.
    assert not unexpected and not [m for m in missing if m != "code_offset"], (missing, unexpected)
    return model


def set_window(model, window):
    model.pre_transformer.config.sliding_window = window
    for layer in model.pre_transformer.layers:
        layer.self_attn.sliding_window = window


def float64_throughout(model):
    """Removes transformers' float32 casts inside RMSNorm and RoPE for a float64 model (see the docstring)."""
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            def rms(x, m=module):
                variance = x.pow(2).mean(-1, keepdim=True)
                return m.weight * (x * torch.rsqrt(variance + m.variance_epsilon))
            module.forward = rms
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    inv_freq = 1.0 / (cfg.rope_parameters["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))

    def rope(x, position_ids):
        freqs = position_ids[..., None].to(torch.float64) * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    model.pre_transformer.rotary_emb.forward = rope
    return model


def f32(x):
    return x.to(torch.float32).contiguous()


def unclamped(model, codes):
    """`forward` without the final clamp (same steps as transformers' Code2Wav.forward)."""
    hidden = model.code_embedding(codes + model.code_offset).mean(1)
    hidden = model.pre_transformer(inputs_embeds=hidden).last_hidden_state.permute(0, 2, 1)
    for blocks in model.upsample:
        for block in blocks:
            hidden = block(hidden)
    for block in model.decoder:
        hidden = block(hidden)
    return hidden


def main():
    torch.manual_seed(0)
    # One thread: the float32 comparison run (metadata) would otherwise vary with the thread count.
    torch.set_num_threads(1)
    model32 = load_code2wav()
    model = float64_throughout(load_code2wav().double())
    cfg = model.config
    total_upsample = int(np.prod(list(cfg.upsample_rates) + list(cfg.upsampling_ratios)))
    # Samples the last frame cannot produce without the next one (spec §8.8): one input frame of
    # look-ahead in every decoder block's transposed conv, at that block's output rate.
    rates = list(cfg.upsample_rates)
    lookahead = sum(int(np.prod(rates[i:])) for i in range(len(rates)))
    rng = np.random.default_rng(SEED)
    out, meta = {}, {}
    with torch.no_grad():
        for t in FRAMES:
            codes = torch.from_numpy(rng.integers(0, cfg.codebook_size, size=(1, cfg.num_quantizers, t)))
            wav = model(codes)
            want = total_upsample * t - lookahead
            assert wav.shape == (1, 1, want), (wav.shape, want)
            # Prefix causality: the decode of a prefix is the prefix of the decode.
            if t > 1:
                head = model(codes[..., : t - 1])
                prefix_diff = float((head - wav[..., : head.shape[-1]]).abs().max())
                assert prefix_diff < 1e-9, prefix_diff
            out[f"codes_T{t}"] = codes.contiguous()
            out[f"wav_T{t}"] = f32(wav)
            meta[f"T{t}"] = {"samples": want, "clamped_fraction": float((wav.abs() >= 1).double().mean())}
            if t == 7:
                out["preclamp_T7"] = f32(unclamped(model, codes))
                meta["T7"]["torch_f32_vs_f64"] = float((model32(codes).double() - wav).abs().max())
        codes40 = out["codes_T40"]
        chunked = model.chunked_decode(codes40, chunk_size=CHUNK_SIZE, left_context_size=LEFT_CONTEXT)
        out["chunked_T40"] = f32(chunked)
        meta["chunked_T40"] = {"chunk_size": CHUNK_SIZE, "left_context_size": LEFT_CONTEXT, "samples": chunked.shape[-1]}

        codes_long = torch.from_numpy(rng.integers(0, cfg.codebook_size, size=(1, cfg.num_quantizers, LONG_FRAMES)))
        hidden = model.code_embedding(codes_long + model.code_offset).mean(1)
        hidden = model.pre_transformer(inputs_embeds=hidden).last_hidden_state
        # The window must matter here, or this case would not test it: the same pass with a window
        # longer than the sequence has to differ.
        window = cfg.sliding_window
        set_window(model, LONG_FRAMES + 1)
        unwindowed = model.pre_transformer(inputs_embeds=model.code_embedding(codes_long + model.code_offset).mean(1))
        set_window(model, window)
        window_effect = float((unwindowed.last_hidden_state - hidden).abs().max())
        assert window_effect > 1e-3, window_effect
        meta["hidden_T100"] = {"sliding_window": window, "max_diff_without_window": window_effect}
        out["codes_T100"] = codes_long.contiguous()
        out["hidden_T100"] = f32(hidden)

    metadata = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "attn_implementation": cfg._attn_implementation,
        "compute_dtype": "float64 throughout, RMSNorm and RoPE included (stored as f32)",
        "total_upsample": total_upsample,
        "lookahead_samples": lookahead,
        "length_law": f"len = {total_upsample}*T - {lookahead}",
        "cases": meta,
    }
    # One metadata key: safetensors writes its metadata map in hash order, so several keys would make
    # the file differ byte-wise from run to run.
    save_file(out, OUT, metadata={"reference": json.dumps(metadata, sort_keys=True)})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
    print(json.dumps(metadata, indent=1))


if __name__ == "__main__":
    main()
