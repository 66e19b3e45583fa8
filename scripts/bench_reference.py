#!/usr/bin/env python3
"""Runs the prompt of an `omnid bench --json` report through the transformers reference on the
same checkpoint, same machine, same thread count, and prints both figures and their ratio.

    omnid bench --model DIR --json > omnid.json
    python scripts/bench_reference.py --model DIR --omnid omnid.json

Needs torch and transformers==5.23.0 (scripts/requirements-fixtures.txt). The reference runs
in float32 on the CPU with the model's default attention (sdpa), greedy, with a KV cache:
prefill = one forward over the prompt; decode = one forward per new token, the same number of
tokens omnid decoded (stop tokens are ignored on both sides).
"""
import argparse, json, statistics, time

import torch
import transformers
from transformers import AutoConfig


def load(model_dir):
    cfg = AutoConfig.from_pretrained(model_dir)
    arch = (cfg.architectures or [""])[0]
    if arch == "Qwen3OmniMoeForConditionalGeneration":
        from transformers import Qwen3OmniMoeForConditionalGeneration as M
        return M.from_pretrained(model_dir, dtype=torch.float32).thinker.eval()
    if arch == "Qwen3VLForConditionalGeneration":
        from transformers import Qwen3VLForConditionalGeneration as M
    elif arch == "Qwen3VLMoeForConditionalGeneration":
        from transformers import Qwen3VLMoeForConditionalGeneration as M
    else:
        raise SystemExit(f"{model_dir}: unsupported architecture {arch!r}")
    return M.from_pretrained(model_dir, dtype=torch.float32).eval()


@torch.no_grad()
def run_once(model, ids, new_tokens):
    # Text-only prompt: the 3-D positions are plain 1-D positions on all three axes; passing them
    # explicitly keeps the reference on its documented decode path (position = cache length).
    n = len(ids)
    x = torch.tensor([ids])
    pos = torch.arange(n).view(1, 1, -1).expand(3, 1, -1)
    t0 = time.perf_counter()
    out = model(input_ids=x, attention_mask=torch.ones_like(x), position_ids=pos, use_cache=True)
    past = out.past_key_values
    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    t1 = time.perf_counter()
    for i in range(new_tokens - 1):
        p = torch.full((3, 1, 1), n + i)
        mask = torch.ones(1, n + i + 1, dtype=torch.long)
        out = model(input_ids=nxt, attention_mask=mask, position_ids=p, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    t2 = time.perf_counter()
    return n / (t1 - t0), (new_tokens - 1) / (t2 - t1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--omnid", required=True, help="JSON printed by `omnid bench --json`")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: omnid's)")
    a = ap.parse_args()
    o = json.load(open(a.omnid))
    torch.set_num_threads(a.threads or o["threads"])
    model = load(a.model)
    ids, n, runs = o["prompt_ids"], o["new_tokens"], o["runs"]
    run_once(model, ids, n)  # warm-up
    res = [run_once(model, ids, n) for _ in range(runs)]
    pre = statistics.median(r[0] for r in res)
    dec = statistics.median(r[1] for r in res)
    report = {
        "transformers": transformers.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "prompt_tokens": len(ids), "new_tokens": n, "runs": runs,
        "reference_prefill_tokens_per_s": pre, "reference_decode_tokens_per_s": dec,
        "omnid_prefill_tokens_per_s": o["prefill_tokens_per_s"], "omnid_decode_tokens_per_s": o["decode_tokens_per_s"],
        "prefill_ratio_omnid_over_reference": o["prefill_tokens_per_s"] / pre,
        "decode_ratio_omnid_over_reference": o["decode_tokens_per_s"] / dec,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
