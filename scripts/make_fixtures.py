#!/usr/bin/env python3
"""Reference fixtures for omnid's parity tests (Qwen3-Omni-MoE, Qwen3-VL, Qwen3-VL-MoE).

What it does, for each of six tiny random-weight models (see scripts/fixtures/specs.py):
  1. trains a byte-level BPE tokenizer in the Qwen2/Qwen3 layout (tokenizers library), appends the chat and
     multimodal markers, and writes tokenizer.json / tokenizer_config.json, the chat template and the
     image/video/audio processor configs in one of the layouts real checkpoints use;
  2. writes deterministic inputs (16 kHz PCM16 WAVs, PNG images, videos as PNG-frame folders + meta.json);
  3. builds the model with the reference implementation (transformers), gives every parameter seeded random
     values that can catch bugs (norm weights 1+0.1N, biases 0.05N, routers/experts random, audio convs
     scaled, raised stop-token rows), rounds them to the on-disk dtype and saves the checkpoint with
     `save_pretrained` (sharded for some models; Qwen3-VL-MoE experts also written in the hub orientation);
  4. runs every chat case through the real processor (the directory's own files, slow PIL image processor,
     Whisper log-mel on its deterministic numpy path)
     and the float32 model, and records prompt ids, processor tensors, encoder outputs, DeepStack features,
     3-D positions, final hidden states, last-position logits (f32 and a bf16 run) and a greedy generation
     (checked against a hand-written argmax loop with a KV cache) into reference.json + reference.safetensors;
  5. plants bugs (no DeepStack, no q/k norm, 1-D positions, chunked M-RoPE, hard-coded mean/std) and checks
     that the recorded logits would catch them;
  6. self-check: reloads every directory with from_pretrained / AutoProcessor and reproduces one case exactly.

Usage (deterministic, re-runnable, byte-identical output; CPU only, about a minute):
    python3.11 -m venv /work/pyref-fx && /work/pyref-fx/bin/pip install -r scripts/requirements-fixtures.txt
    /work/pyref-fx/bin/python scripts/make_fixtures.py --out tests/fixtures
(/work/pyref has torch 2.15 and no torchvision: its video processors cannot be built, hence the separate venv.)

Exact versions (scripts/requirements-fixtures.txt; video processing in transformers needs torchvision, whose
newest release 0.29.2 pairs with torch 2.14.1):
    python 3.11, torch==2.14.1, torchvision==0.29.2, transformers==5.23.0, tokenizers==0.23.3,
    numpy==2.4.6, pillow==13.0.0, safetensors==0.8.0, jinja2==3.1.6
The script refuses to run with other versions of torch/torchvision/transformers/tokenizers/pillow unless
--allow-other-versions is given (outputs would then not be byte-identical to the committed fixtures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PINNED = {"torch": "2.14.1", "torchvision": "0.29.2", "transformers": "5.23.0", "tokenizers": "0.23.3",
          "PIL": "13.0.0", "numpy": "2.4.6", "safetensors": "0.8.0"}


def check_versions(allow_other):
    import importlib

    found = {}
    for mod, want in PINNED.items():
        v = importlib.import_module(mod).__version__.split("+")[0]
        found[mod] = v
        if v != want and not allow_other:
            sys.exit(f"{mod} {v} found, {want} required (see scripts/requirements-fixtures.txt)")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "tests", "fixtures"))
    ap.add_argument("--only", nargs="*", help="build only these model names")
    ap.add_argument("--allow-other-versions", action="store_true")
    args = ap.parse_args()
    versions = check_versions(args.allow_other_versions)

    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    # Log-mel through WhisperFeatureExtractor's numpy (float64) path, not its torch path: with torch
    # installed, __call__ uses torch.stft in float32 (MKL/pocketfft, CPU-dependent), which moves the features
    # by up to ~4e-5 from machine to machine. The numpy path is the same reference code, deterministic.
    from transformers.models.whisper import feature_extraction_whisper

    feature_extraction_whisper.is_torch_available = lambda: False

    from fixtures import pipeline
    from fixtures.specs import SPECS

    os.makedirs(args.out, exist_ok=True)
    summary = []
    for spec in SPECS:
        if args.only and spec["name"] not in args.only:
            continue
        t0 = time.time()
        info = pipeline.build_one(spec, args.out, versions)
        info["seconds"] = round(time.time() - t0, 1)
        summary.append(info)
        print(json.dumps(info), flush=True)
    print("done:", ", ".join(s["name"] for s in summary))


if __name__ == "__main__":
    main()
