#!/usr/bin/env python3
"""The official OpenAI Python SDK against `omnid serve` (CI runs this after the Rust tests).

    python scripts/sdk_check.py --omnid target/debug/omnid

Starts the daemon on a free loopback port with an API key and the committed omni_c checkpoint
(text, images, audio in; speech out), then drives it only through the `openai` package
(scripts/requirements-sdk.txt): model listing, a greedy chat completion, the same request
streamed (deltas must add up to the same text and usage), an image + audio request answered in
speech (a WAV whose length follows Code2Wav's 1920·frames − 555 law), and the SDK's own error
types for a bad request and a wrong key. Exits non-zero with the failing check's message.
"""
import argparse, base64, io, os, subprocess, sys, wave

import openai

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")


def b64(rel):
    with open(os.path.join(FIX, rel), "rb") as f:
        return base64.b64encode(f.read()).decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--omnid", required=True)
    a = ap.parse_args()
    proc = subprocess.Popen([a.omnid, "serve", "--model", os.path.join(FIX, "omni_c"), "--bind", "127.0.0.1:0",
                             "--api-key", "sdk-key"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("omnid: listening on http://"), line
        base = line.strip().split("listening on ")[1] + "/v1"
        client = openai.OpenAI(base_url=base, api_key="sdk-key")

        assert [m.id for m in client.models.list().data] == ["omni_c"]

        msgs = [{"role": "user", "content": "Hello there"}]
        r = client.chat.completions.create(model="omni_c", messages=msgs, max_tokens=6, temperature=0)
        text = r.choices[0].message.content
        assert r.usage.completion_tokens == 6 or r.choices[0].finish_reason == "stop", r
        stream = client.chat.completions.create(model="omni_c", messages=msgs, max_tokens=6, temperature=0,
                                                stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == text, (streamed, text)
        assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens

        spoken = client.chat.completions.create(
            model="omni_c", temperature=0, max_tokens=8, modalities=["text", "audio"],
            audio={"voice": "chelsie", "format": "wav"},
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64("omni_a/inputs/img_0.png")}},
                {"type": "input_audio", "input_audio": {"data": b64("omni_a/inputs/aud_short.wav"), "format": "wav"}},
                {"type": "text", "text": "Describe what you see and hear."}]}])
        w = wave.open(io.BytesIO(base64.b64decode(spoken.choices[0].message.audio.data)))
        n = w.getnframes()
        assert w.getframerate() == 24000 and n > 0 and (n + 555) % 1920 == 0, (w.getframerate(), n)

        try:
            client.chat.completions.create(model="omni_c", messages=msgs, max_tokens=10**6)
            raise AssertionError("an oversized max_tokens was accepted")
        except openai.BadRequestError as e:
            assert "max_tokens" in str(e), e
        try:
            openai.OpenAI(base_url=base, api_key="wrong").models.list()
            raise AssertionError("a wrong key was accepted")
        except openai.AuthenticationError:
            pass
        print(f"sdk_check: ok (openai {openai.__version__}; text {len(text)} chars; speech {n} samples)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
