#!/usr/bin/env python3
"""Runs the prompt of an `omnid bench-speech --json` report through transformers'
`Qwen3OmniMoeForConditionalGeneration.generate(..., return_audio=True)` on the same checkpoint, machine and
thread count, and compares the time to the first audio sample.

    omnid bench-speech --model DIR --json > omnid-speech.json
    python scripts/bench_speech_reference.py --model DIR --omnid omnid-speech.json

The reference produces speech only after the whole text (thinker, then talker + code predictor, then Code2Wav),
so its first audio arrives with its last; omnid streams. Same work on both sides: the report's prompt ids, greedy
thinker with the same number of text tokens (no stop token), greedy talker with the same number of frames
(talker_max_new_tokens = frames + 1: its last token gets no frame), float32 on the CPU. Needs torch and
transformers==5.23.0.
"""
import argparse, json, statistics, time

import torch
import transformers
from transformers import Qwen3OmniMoeForConditionalGeneration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--omnid", required=True, help="JSON printed by `omnid bench-speech --json`")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    rep = json.load(open(a.omnid))
    torch.set_num_threads(rep["threads"])
    model = Qwen3OmniMoeForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32).eval()
    model.talker.config.audio_config = model.config.thinker_config.audio_config  # spec §11.12
    ids = torch.tensor([rep["prompt_ids"]])
    frames, text = rep["frames"], rep["text_tokens"]

    def once():
        t0 = time.perf_counter()
        with torch.no_grad():
            _, wav = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), speaker="ethan",
                                    thinker_max_new_tokens=text, thinker_eos_token_id=None, thinker_do_sample=False,
                                    thinker_min_new_tokens=text, talker_max_new_tokens=frames + 1,
                                    talker_do_sample=False)
        return (time.perf_counter() - t0) * 1e3, wav.shape[-1]

    once()  # warm-up
    times, samples = zip(*[once() for _ in range(a.runs)])
    ref_ms = statistics.median(times)
    ours = rep["median"]
    audio_s = samples[0] / 24000
    print(json.dumps({
        "transformers": transformers.__version__, "torch": torch.__version__, "threads": rep["threads"],
        "frames": frames, "reference_samples": samples[0],
        "reference_first_audio_ms": ref_ms, "omnid_first_audio_ms": ours["first_audio_ms"],
        "first_audio_ratio": ref_ms / ours["first_audio_ms"],
        "reference_rtf": ref_ms / 1e3 / audio_s, "omnid_rtf": ours["audio_rtf"],
        "rtf_ratio": (ref_ms / 1e3 / audio_s) / ours["audio_rtf"],
    }, indent=1))


if __name__ == "__main__":
    main()
