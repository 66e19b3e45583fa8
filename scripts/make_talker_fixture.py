#!/usr/bin/env python3
"""Reference speech output of Qwen3-Omni (talker + code predictor + Code2Wav) for omnid's parity tests.

For two tiny checkpoints with speech it runs transformers 5.23's own
`Qwen3OmniMoeForConditionalGeneration.generate(..., return_audio=True, talker_do_sample=False)` on chat cases of
tests/fixtures/omni_a/reference.json (the same prompts and media the thinker parity test uses) and records, per
case, the greedy thinker ids, the greedy talker codes and the waveform:

* omni_a (committed by make_fixtures.py; read, never rewritten): num_code_groups 4, accept_hidden_layer 2 (the
  output of thinker layer 1, *before* the DeepStack addition of that layer: transformers records a layer's own
  output), talker codec_eos never raised, so every case ends at talker_max_new_tokens.
* omni_c (written here, into tests/fixtures/omni_c): omni_a's thinker, tokenizer and processor files with a
  different talker and Code2Wav: num_code_groups 6, accept_hidden_layer 3 (= the thinker's layer count, so the
  talker reads the thinker's *final-norm* state: transformers replaces the last recorded hidden state by the
  normed one), codebook 24, other codec control ids, a fourth speaker, 3 talker layers with 6 experts top-3, a
  2-layer Code2Wav with an 8-frame attention window; every talker and Code2Wav tensor gets seeded random values
  (transformers 5.23 leaves the talker routers at zero and its experts uninitialised) and the codec_eos row of
  codec_head is raised so that speech ends by itself, at different frames per case.

Outputs, per model directory: talker_reference.json (cases, speakers, settings, frame counts, stop reasons) and
talker_reference.safetensors:

  {case}.thinker_ids      int64 [N]          greedy thinker ids (generated part only)
  {case}.codes            int64 [F, G]       talker codes, frame-major (codebook 0 first)
  {case}.waveform         f32   [1920 F - 555]  what generate() returns
  {case}.prefill_embeds   f32   [R, hidden]  the talker's prefill rows (spec §7.4)
  {case}.prefill_positions f32  [3, R]       its 3-D positions
  {case}.first_logits     f32   [vocab]      codec_head logits at the last prefill row (before suppression)

Settings of every generate() call: greedy thinker (no repetition penalty, the case's max_new_tokens and the
tokenizer's eos ids, as the thinker parity test), talker_do_sample=False (the code predictor follows; the
talker's repetition penalty 1.05 stays on, as in transformers), talker_max_new_tokens per case.
transformers 5.23 crashes in the talker's position ids for prompts with audio (its talker config has no
audio_config); as the spec (§11.12) says, the thinker's audio_config is attached to the talker config first.

Run after make_fixtures.py (omni_a) — deterministic, byte-identical output:
    /work/pyref-fx/bin/python scripts/make_talker_fixture.py
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "tests", "fixtures")

SEED = 20261129
# (case, speaker, talker_max_new_tokens) per model. omni_a never stops by itself: the budget is the length.
CASES = {
    "omni_a": [("image_text", "Chelsie", 6), ("audio_text", "aiden", 7), ("video", "Ethan", 5),
               ("video_audio_in_video", "Ethan", 6), ("multi_turn", "Chelsie", 8)],
    "omni_c": [("audio_text", "Serena", 60), ("image_audio_text", "Ethan", 60), ("two_images_audio", "aiden", 60),
               ("video", "chelsie", 60), ("multi_turn", "Serena", 60)],
}
EOS_SCALE_C = 1.15


def omni_c_config(cfg_a: dict) -> dict:
    cfg = copy.deepcopy(cfg_a)
    cb, groups = 24, 6
    t = cfg["talker_config"]
    tt = t["text_config"]
    tt.update(vocab_size=cb + 1024, hidden_size=24, intermediate_size=36, num_hidden_layers=3,
              num_attention_heads=3, num_key_value_heads=1, head_dim=12, moe_intermediate_size=10,
              num_local_experts=6, num_experts_per_tok=3, shared_expert_intermediate_size=14)
    tt.pop("num_experts", None)
    tt["rope_parameters"]["mrope_section"] = [2, 2, 2]
    cp = t["code_predictor_config"]
    cp.update(vocab_size=cb, hidden_size=24, intermediate_size=30, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=2, head_dim=12, num_code_groups=groups)
    t.update(num_code_groups=groups, accept_hidden_layer=3, codec_pad_id=cb + 300, codec_bos_id=cb + 301,
             codec_eos_token_id=cb + 302, codec_nothink_id=cb + 310, codec_think_bos_id=cb + 311,
             codec_think_eos_id=cb + 312,
             speaker_id={"ethan": cb + 500, "chelsie": cb + 501, "aiden": cb + 502, "serena": cb + 503})
    c = cfg["code2wav_config"]
    c.update(codebook_size=cb, num_quantizers=groups, num_hidden_layers=2, sliding_window=8)
    return cfg


def load(model_dir):
    from transformers import Qwen3OmniMoeForConditionalGeneration

    m = Qwen3OmniMoeForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager").eval()
    # transformers 5.23: the talker's get_rope_index reads talker_config.audio_config.n_window (spec §11.12)
    m.talker.config.audio_config = m.config.thinker_config.audio_config
    return m


def build_omni_c(model_a_dir, out_dir):
    """omni_a's thinker + fresh talker / Code2Wav, saved like a real checkpoint (one f32 file)."""
    from fixtures import weights as W
    from transformers import Qwen3OmniMoeConfig, Qwen3OmniMoeForConditionalGeneration

    with open(os.path.join(model_a_dir, "config.json")) as f:
        cfg_a = json.load(f)
    cfg_c = omni_c_config(cfg_a)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    for name in os.listdir(model_a_dir):
        src = os.path.join(model_a_dir, name)
        if name.endswith((".json", ".jinja")) and name not in ("config.json", "model.safetensors.index.json",
                                                               "reference.json", "talker_reference.json"):
            shutil.copy(src, os.path.join(out_dir, name))
    config = Qwen3OmniMoeConfig(**cfg_c)
    torch.manual_seed(SEED)
    model = Qwen3OmniMoeForConditionalGeneration(config).eval()
    W.randomize_(model.talker, SEED)
    W.randomize_(model.code2wav, SEED + 1)
    a = load(model_a_dir)
    model.thinker.load_state_dict(a.thinker.state_dict())
    # codec_eos reachable: its row of codec_head := 0.3 * row + scale * 3 * unit direction (as the thinker stop rows)
    eos = config.talker_config.codec_eos_token_id
    w = model.talker.codec_head.weight
    with torch.no_grad():
        w[eos] = w[eos] * 0.3 + EOS_SCALE_C * 3.0 * W.unit_direction(w.shape[1], SEED + 2)
    tame_code2wav_gain_(model.code2wav)
    model.save_pretrained(out_dir)
    # save_pretrained writes a bare generation config; keep omni_a's (its eos id and sampling defaults)
    shutil.copy(os.path.join(model_a_dir, "generation_config.json"), os.path.join(out_dir, "generation_config.json"))
    return load(out_dir)


def tame_code2wav_gain_(code2wav):
    """Random Code2Wav weights amplify ~100x (omni_a's waveform is clamped nearly everywhere, so float32 rounding
    inside moves its samples by up to 1.4e-2). The output is linear in the last conv's weight and bias: scale them
    so that the unclamped waveform of seeded random codes peaks at 0.6, leaving float32 differences at ~1e-6."""
    g = torch.Generator().manual_seed(SEED + 3)
    c = code2wav.config
    codes = torch.randint(0, c.codebook_size, (1, c.num_quantizers, 40), generator=g)
    last = code2wav.decoder[-1].conv
    with torch.no_grad():
        hidden = code2wav.code_embedding(codes + code2wav.code_offset).mean(1)
        hidden = code2wav.pre_transformer(inputs_embeds=hidden).last_hidden_state.permute(0, 2, 1)
        for blocks in code2wav.upsample:
            for block in blocks:
                hidden = block(hidden)
        for block in code2wav.decoder:
            hidden = block(hidden)
        k = 0.6 / float(hidden.abs().max())
        last.weight.mul_(k)
        last.bias.mul_(k)


def media_info(spec):
    info = {}
    for name in spec["media"]["images"]:
        info[name] = {"type": "image", "path": f"inputs/{name}.png"}
    for name in spec["media"].get("audios", {}):
        info[name] = {"type": "audio", "path": f"inputs/{name}.wav"}
    for name in spec["media"]["videos"]:
        info[name] = {"type": "video", "path": f"inputs/{name}"}
    return info


class Recorder:
    """The talker's first forward: prefill rows, positions, codec_head logits at the last row."""

    def __init__(self, talker):
        self.first = None
        self.logits = None
        talker.model.register_forward_pre_hook(self.pre, with_kwargs=True)
        talker.codec_head.register_forward_hook(self.head)

    def reset(self):
        self.first, self.logits = None, None

    def pre(self, _mod, _args, kwargs):
        if self.first is None:
            self.first = (kwargs["inputs_embeds"][0].clone(), kwargs["position_ids"][:, 0].clone())

    def head(self, _mod, _inp, out):
        if self.logits is None:
            self.logits = out[0, -1].clone()


def run_model(name, model, spec, proc, media, ref, eos_ids):
    from fixtures import runner as R

    rec = Recorder(model.talker)
    store, cases = {}, []
    for case_name, speaker, talker_max in CASES[name]:
        case = next(c for c in spec["cases"] if c["name"] == case_name)
        inputs, _, _, _, _ = R.prepare_case(spec, proc, os.path.join(FIX, "omni_a"), media, case)
        want_ids = next(c for c in ref["cases"] if c["name"] == case_name)["greedy"]["generated_ids"]
        S = inputs["input_ids"].shape[1]
        rec.reset()
        seqs, wav = model.generate(
            **inputs, speaker=speaker, thinker_max_new_tokens=case["max_new_tokens"], thinker_eos_token_id=eos_ids,
            thinker_do_sample=False, thinker_repetition_penalty=1.0, thinker_temperature=None, thinker_top_k=None,
            thinker_top_p=None, talker_max_new_tokens=talker_max, talker_do_sample=False)
        gen = seqs[0, S:].tolist()
        assert gen == want_ids, (name, case_name, gen, want_ids)
        codes = CODES.pop()
        frames = codes.shape[0]
        wav = wav.reshape(-1)
        assert wav.shape[0] == 1920 * frames - 555, (wav.shape, frames)
        stopped = "eos" if frames < talker_max - 1 else "length"
        p = f"{case_name}."
        store[p + "thinker_ids"] = torch.tensor(gen, dtype=torch.int64)
        store[p + "codes"] = codes.to(torch.int64).contiguous()
        store[p + "waveform"] = wav.float().contiguous()
        store[p + "prefill_embeds"] = rec.first[0].float().contiguous()
        store[p + "prefill_positions"] = rec.first[1].float().contiguous()
        store[p + "first_logits"] = rec.logits.float().contiguous()
        cases.append({"name": case_name, "speaker": speaker, "talker_max_new_tokens": talker_max,
                      "frames": frames, "stopped_by": stopped, "prefill_rows": int(rec.first[0].shape[0]),
                      "waveform_peak": float(wav.abs().max()), "thinker_max_new_tokens": case["max_new_tokens"]})
        print(name, cases[-1], flush=True)
    return store, cases


CODES = []


class _Zero(torch.nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def planted_bugs(model, spec, proc, media, eos_ids):
    """Plants the bugs a port could make and records how the fixture sees each (codes and first logits of the
    first case): every one must change the codes, or the fixture could not catch it."""
    from fixtures import runner as R

    case_name, speaker, talker_max = CASES["omni_c"][1]
    case = next(c for c in spec["cases"] if c["name"] == case_name)
    inputs, _, _, _, _ = R.prepare_case(spec, proc, os.path.join(FIX, "omni_a"), media, case)
    rec = Recorder(model.talker)

    def run(spk=speaker):
        rec.reset()
        model.generate(**inputs, speaker=spk, thinker_max_new_tokens=case["max_new_tokens"],
                       thinker_eos_token_id=eos_ids, thinker_do_sample=False, thinker_repetition_penalty=1.0,
                       thinker_temperature=None, thinker_top_k=None, thinker_top_p=None,
                       talker_max_new_tokens=talker_max, talker_do_sample=False)
        return CODES.pop(), rec.logits.clone()

    base_codes, base_logits = run()
    out = {}

    def record(name, codes, logits):
        same = codes.shape == base_codes.shape and bool(torch.equal(codes, base_codes))
        out[name] = {"codes_differ": not same, "first_logits_max_diff": float((logits - base_logits).abs().max())}
        assert not same, f"planted bug {name} leaves the codes unchanged: the fixture could not catch it"

    tc = model.config.talker_config
    accept = tc.accept_hidden_layer
    tc.accept_hidden_layer = accept - 1
    record("accept_hidden_layer_off_by_one", *run())
    tc.accept_hidden_layer = accept
    saved = [layer.mlp.shared_expert for layer in model.talker.model.layers]
    for layer in model.talker.model.layers:
        layer.mlp.shared_expert = _Zero()
    record("no_shared_expert", *run())
    for layer, s in zip(model.talker.model.layers, saved):
        layer.mlp.shared_expert = s
    other = next(k for k in tc.speaker_id if k != speaker.lower())
    record(f"speaker_{other}_instead", *run(other))
    assert torch.equal(run()[0], base_codes), "restoring the model did not restore the codes"
    return out


def capture_codes(model):
    """generate() stacks the per-step residual codes; keep them (frames x groups) for the record."""
    orig = model.code2wav.chunked_decode

    def wrapped(codes, chunk_size=300, left_context_size=25):
        CODES.append(codes[0].transpose(0, 1).clone())
        return orig(codes, chunk_size=chunk_size, left_context_size=left_context_size)

    model.code2wav.chunked_decode = wrapped


def main():
    from safetensors.torch import save_file
    from transformers.models.whisper import feature_extraction_whisper
    from transformers.utils import logging as hf_logging

    import transformers
    from fixtures import build as B
    from fixtures.specs import SPECS

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    hf_logging.set_verbosity_error()
    feature_extraction_whisper.is_torch_available = lambda: False  # as make_fixtures.py (numpy log-mel)

    spec = dict(next(s for s in SPECS if s["name"] == "omni_a"))
    dir_a = os.path.join(FIX, "omni_a")
    proc = B.load_processor(dir_a)
    media = media_info(spec)
    with open(os.path.join(dir_a, "reference.json")) as f:
        ref = json.load(f)
    eos_ids = ref["eos_token_ids"]

    models = {"omni_a": load(dir_a), "omni_c": build_omni_c(dir_a, os.path.join(FIX, "omni_c"))}
    for name, model in models.items():
        capture_codes(model)
        store, cases = run_model(name, model, spec, proc, media, ref, eos_ids)
        bugs = planted_bugs(model, spec, proc, media, eos_ids) if name == "omni_c" else None
        out = os.path.join(FIX, name)
        meta = {
            "generator": "scripts/make_talker_fixture.py",
            "transformers_version": transformers.__version__, "torch_version": torch.__version__.split("+")[0],
            "cases_from": "omni_a/reference.json", "thinker_eos_token_ids": eos_ids,
            "talker": {k: v for k, v in model.config.talker_config.to_dict().items()
                       if k in ("num_code_groups", "accept_hidden_layer", "speaker_id", "codec_eos_token_id")},
            "talker_do_sample": False, "talker_repetition_penalty": 1.05, "cases": cases,
        }
        if bugs is not None:
            meta["planted_bugs"] = bugs
        with open(os.path.join(out, "talker_reference.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        save_file(store, os.path.join(out, "talker_reference.safetensors"))
    print("done")


if __name__ == "__main__":
    main()
