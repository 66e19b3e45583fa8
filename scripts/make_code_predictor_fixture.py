#!/usr/bin/env python3
"""Reference outputs of Qwen3-Omni's code predictor (the talker's MTP) for omnid's parity tests.

Loads the `talker.code_predictor.*` weights and the talker's codec embedding `talker.model.codec_embedding`
of the committed tiny checkpoint tests/fixtures/omni_a (bf16 on disk) into transformers 5.23's
`Qwen3OmniMoeTalkerCodePredictorModelForConditionalGeneration`, and runs it for one codec frame per case
exactly as `Qwen3OmniMoeTalkerForConditionalGeneration.prepare_inputs_for_generation` does:

    code_predictor.generate(inputs_embeds=cat([h_last, E_talker(c0)]), max_new_tokens=num_code_groups - 1,
                            do_sample=False)

(greedy: the talker mirrors its own `do_sample` onto the predictor). It records into
tests/fixtures/omni_a/code_predictor_reference.safetensors, with G = num_code_groups (4 in omni_a, so
G - 1 = 3 residual codes per frame; 15 in the real model):

  h_last        f32   [N, hidden]        the talker's final-norm hidden state, seeded N(0, 1)
  c0            int64 [N]                first codebook token of the frame (0, codebook - 1, seeded others)
  tokens        int64 [N, G - 1]         greedy c1 .. c_{G-1}
  logits        f32   [N, G - 1, vocab]  raw logits of each step (step g - 1 produces c_g)
  e_talker_c0   f32   [N, hidden]        E_talker(c0), the second prefill row (a weight lookup, for debugging)
  codec_sum     f32   [N, hidden]        the codec part of the talker's next input row (spec §7.5 step 3),
                                         built as the talker builds it: E_talker(c0) + the predictor's step
                                         inputs (`hidden_states[1:][0]`) + codec_embedding[G-2](c_{G-1})

and the metadata (versions, margins, planted-bug effects) in the safetensors header.

The greedy tokens are also reproduced by a hand-written loop (fresh DynamicCache, prefill of the two rows
through lm_head[0], then codec_embedding[g - 2](c_{g-1}) through lm_head[g - 1]) to pin down the procedure.

Precision: float32, as transformers runs it. The whole computation is repeated in float64 (RMSNorm statistics
and RoPE tables included) to bound float32's own rounding: the recorded float32-vs-float64 logit difference
is 8e-6, inside the 1e-4 test tolerance, and the smallest top-1/top-2 margin is recorded so greedy
stability is visible. No float64 was needed.

Run after make_fixtures.py (which recreates omni_a/ and deletes this file):
    /work/pyref-fx/bin/python scripts/make_code_predictor_fixture.py
Deterministic: the output is byte-identical from run to run.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import DynamicCache
from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import Qwen3OmniMoeConfig
from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
    Qwen3OmniMoeTalkerCodePredictorModelForConditionalGeneration as CodePredictor,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "tests", "fixtures", "omni_a")
OUT = os.path.join(MODEL_DIR, "code_predictor_reference.safetensors")
SEED = 20261128
CASES = 5
PREFIX = "talker.code_predictor."
TALKER_EMBEDDING = "talker.model.codec_embedding.weight"


def read_tensors(predicate):
    index = json.load(open(os.path.join(MODEL_DIR, "model.safetensors.index.json")))["weight_map"]
    out = {}
    for name, shard in sorted(index.items()):
        if predicate(name):
            with safe_open(os.path.join(MODEL_DIR, shard), "pt") as f:
                out[name] = f.get_tensor(name).to(torch.float32)
    return out


def load(dtype):
    cfg = Qwen3OmniMoeConfig.from_pretrained(MODEL_DIR).talker_config
    cp_cfg = cfg.code_predictor_config
    cp_cfg._attn_implementation = "sdpa"  # transformers' default on CPU
    model = CodePredictor._from_config(cp_cfg, dtype=torch.float32).eval()
    state = {k[len(PREFIX):]: v for k, v in read_tensors(lambda n: n.startswith(PREFIX)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    emb = read_tensors(lambda n: n == TALKER_EMBEDDING)[TALKER_EMBEDDING]
    assert cfg.num_code_groups == cp_cfg.num_code_groups
    model = model.to(dtype)
    return cfg, model, emb.to(dtype)


def float64_throughout(model):
    """Lifts transformers' float32 casts in RMSNorm and RoPE for the float64 comparison run."""
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            def rms(x, m=module):
                variance = x.pow(2).mean(-1, keepdim=True)
                return m.weight * (x * torch.rsqrt(variance + m.variance_epsilon))
            module.forward = rms
    cfg = model.config
    head_dim = cfg.head_dim
    theta = cfg.rope_parameters["rope_theta"]
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))

    def rope(x, position_ids):
        freqs = position_ids[..., None].to(torch.float64) * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

    model.model.rotary_emb.forward = rope
    return model


def generate(model, emb, h_last, c0, groups):
    """The talker's call (greedy), returning tokens [G-1] and logits [G-1, vocab]."""
    rows = torch.cat([h_last[None, None, :], emb[c0][None, None, :]], dim=1)  # 1, 2, hidden
    res = model.generate(inputs_embeds=rows, max_new_tokens=groups - 1, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    tokens = res.sequences[0]
    assert tokens.shape == (groups - 1,), tokens.shape
    logits = torch.stack([lg[0] for lg in res.logits])
    return tokens, logits


def codec_sum(model, emb, h_last, c0, groups):
    """The codec rows of the talker's next input, as `prepare_inputs_for_generation` sums them."""
    rows = torch.cat([h_last[None, None, :], emb[c0][None, None, :]], dim=1)
    res = model.generate(inputs_embeds=rows, max_new_tokens=groups - 1, do_sample=False, output_hidden_states=True,
                         return_dict_in_generate=True)
    mid = [hid[0] for hid in res.hidden_states[1:]]
    last = model.get_input_embeddings()[-1](res.sequences[..., -1:])
    return torch.cat([emb[c0][None, None, :]] + mid + [last], dim=1).sum(1)[0]


def manual(model, emb, h_last, c0, groups):
    """The per-frame procedure written out (spec §7.5), with a fresh cache."""
    cache = DynamicCache(config=model.config)
    rows = torch.cat([h_last[None, None, :], emb[c0][None, None, :]], dim=1)
    tokens, logits = [], []
    for g in range(1, groups):
        if g == 1:
            hidden = model.model(inputs_embeds=rows, past_key_values=cache, use_cache=True).last_hidden_state
        else:
            row = model.model.codec_embedding[g - 2](torch.tensor([[tokens[-1]]]))
            hidden = model.model(inputs_embeds=row, past_key_values=cache, use_cache=True).last_hidden_state
        lg = model.lm_head[g - 1](hidden[0, -1])
        logits.append(lg)
        tokens.append(int(lg.argmax()))
    return torch.tensor(tokens), torch.stack(logits)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg, model, emb = load(torch.float32)
    _, model64, emb64 = load(torch.float64)
    model64 = float64_throughout(model64)
    cp = cfg.code_predictor_config
    groups, hidden, codebook = cfg.num_code_groups, cp.hidden_size, cp.vocab_size
    rng = np.random.default_rng(SEED)
    h_all = torch.from_numpy(rng.standard_normal((CASES, hidden))).to(torch.float32)
    c0_all = [0, codebook - 1] + [int(c) for c in rng.integers(0, codebook, size=CASES - 2)]

    out_tokens, out_logits, out_sums, margins, f64_diff, planted = [], [], [], [], 0.0, {}
    with torch.no_grad():
        for h_last, c0 in zip(h_all, c0_all):
            tokens, logits = generate(model, emb, h_last, c0, groups)
            m_tokens, m_logits = manual(model, emb, h_last, c0, groups)
            assert torch.equal(tokens, m_tokens), (tokens, m_tokens)
            assert float((logits - m_logits).abs().max()) < 1e-5
            tokens64, logits64 = generate(model64, emb64, h_last.double(), c0, groups)
            assert torch.equal(tokens64, tokens), (tokens64, tokens)
            f64_diff = max(f64_diff, float((logits64 - logits.double()).abs().max()))
            top2 = logits.topk(2, dim=-1).values
            margins.append([round(float(v), 6) for v in top2[:, 0] - top2[:, 1]])
            out_tokens.append(tokens)
            out_logits.append(logits)
            out_sums.append(codec_sum(model, emb, h_last, c0, groups))

        # Planted bugs: how far each would move the recorded logits (the Rust test tolerance is 1e-4).
        def effect(run):
            return max(float((run(h, c)[1] - lg).abs().max()) for h, c, lg in zip(h_all, c0_all, out_logits))

        saved = [(layer.self_attn.q_norm.forward, layer.self_attn.k_norm.forward) for layer in model.model.layers]
        for layer in model.model.layers:
            layer.self_attn.q_norm.forward = lambda x: x
            layer.self_attn.k_norm.forward = lambda x: x
        planted["no_qk_norm"] = effect(lambda h, c: manual(model, emb, h, c, groups))
        for layer, (q, k) in zip(model.model.layers, saved):
            layer.self_attn.q_norm.forward, layer.self_attn.k_norm.forward = q, k
        heads = list(model.lm_head)
        model.lm_head = torch.nn.ModuleList(heads[1:] + heads[:1])
        planted["lm_head_off_by_one"] = effect(lambda h, c: manual(model, emb, h, c, groups))
        model.lm_head = torch.nn.ModuleList(heads)
        assert effect(lambda h, c: manual(model, emb, h, c, groups)) < 1e-5
        assert all(v > 1e-2 for v in planted.values()), planted

    out = {
        "h_last": h_all.contiguous(),
        "c0": torch.tensor(c0_all, dtype=torch.int64),
        "tokens": torch.stack(out_tokens).to(torch.int64).contiguous(),
        "logits": torch.stack(out_logits).to(torch.float32).contiguous(),
        "e_talker_c0": emb[torch.tensor(c0_all)].contiguous(),
        "codec_sum": torch.stack(out_sums).contiguous(),
    }
    metadata = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "attn_implementation": cp._attn_implementation,
        "compute_dtype": "float32 (transformers' own path)",
        "num_code_groups": groups,
        "codebook_size": codebook,
        "hidden_size": hidden,
        "max_abs_diff_float32_vs_float64": f64_diff,
        "top1_minus_top2_logit": margins,
        "planted_bug_max_abs_logit_diff": planted,
        "call": "code_predictor.generate(inputs_embeds=cat([h_last, talker.model.codec_embedding(c0)]), "
                "max_new_tokens=num_code_groups-1, do_sample=False)",
    }
    # One metadata key: safetensors writes its metadata map in hash order (see make_code2wav_fixture.py).
    save_file(out, OUT, metadata={"reference": json.dumps(metadata, sort_keys=True)})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")
    print(json.dumps(metadata, indent=1))


if __name__ == "__main__":
    main()
