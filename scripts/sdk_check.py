#!/usr/bin/env python3
"""The official OpenAI Python SDK against `omnid serve` (CI runs this after the Rust tests).

    python scripts/sdk_check.py --omnid target/debug/omnid

Starts the daemon on a free loopback port with an API key and the committed omni_c checkpoint
(text, images, audio in; speech out), then drives it only through the `openai` package
(scripts/requirements-sdk.txt): model listing, a greedy chat completion, the same request
streamed (deltas must add up to the same text and usage), an image + audio request answered in
speech (a WAV whose length follows Code2Wav's 1920·frames − 555 law), and the SDK's own error
types for a bad request and a wrong key; then, over the SDK's Realtime client (openai[realtime],
websocket_base_url pointed at the daemon): a voice turn (speech in as 24 kHz PCM16, audio deltas and
a transcript out), a barge-in with server VAD (speaking over the answer cancels it), and a function
call round trip (tools declared, a call and its output in the conversation, the next response).
Exits non-zero with the failing check's message.
"""
import argparse, array, base64, contextlib, io, math, os, subprocess, sys, tempfile, wave

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
                             "--api-key", "sdk-key", "--jobs-dir", tempfile.mkdtemp(prefix="omnid-sdk-jobs-")],
                            stdout=subprocess.PIPE, text=True)
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

        # The same multimodal request streamed (text only): the chunks add up to a complete answer.
        mm = [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64("omni_a/inputs/img_0.png")}},
            {"type": "input_audio", "input_audio": {"data": b64("omni_a/inputs/aud_short.wav"), "format": "wav"}},
            {"type": "text", "text": "Describe what you see and hear."}]}]
        whole = client.chat.completions.create(model="omni_c", temperature=0, max_tokens=8, messages=mm)
        parts = list(client.chat.completions.create(model="omni_c", temperature=0, max_tokens=8, messages=mm,
                                                    stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in parts if c.choices) == \
            whole.choices[0].message.content, "streamed multimodal answer differs"
        assert parts[-1].choices[0].finish_reason in ("stop", "length"), parts[-1]

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
        deltas = realtime_checks(base, line.strip().split("listening on ")[1], a.omnid)
        print(f"sdk_check: ok (openai {openai.__version__}; text {len(text)} chars; speech {n} samples; "
              f"realtime {deltas} audio deltas)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def pcm24k_of(rel):
    """A 16-bit mono WAV fixture as base64 PCM16 at 24 kHz (linear interpolation)."""
    w = wave.open(os.path.join(FIX, rel))
    assert w.getsampwidth() == 2 and w.getnchannels() == 1, rel
    src = array.array("h", w.readframes(w.getnframes()))
    rate = w.getframerate()
    n = len(src) * 24000 // rate
    out = array.array("h")
    for i in range(n):
        x = i * rate / 24000
        j = min(int(x), len(src) - 2)
        f = x - j
        out.append(int(src[j] * (1 - f) + src[j + 1] * f))
    return base64.b64encode(out.tobytes()).decode()


def tone(ms, amplitude):
    """A 220 Hz tone as base64 PCM16 at 24 kHz (loud: speech to the VAD; 0: silence)."""
    n = 24 * ms
    out = array.array("h", (int(amplitude * math.sin(2 * math.pi * 220 * i / 24000)) for i in range(n)))
    return base64.b64encode(out.tobytes()).decode()


def until(conn, kind, seen):
    for event in conn:
        seen.append(event)
        if event.type == "error":
            raise AssertionError(f"error event: {event.error.message}")
        if event.type == kind:
            return event
    raise AssertionError(f"the connection closed before {kind}")


@contextlib.contextmanager
def long_answers_daemon(omnid):
    """`omnid serve` on the embedded default model: (http base, websocket base)."""
    proc = subprocess.Popen([omnid, "serve", "--bind", "127.0.0.1:0", "--api-key", "sdk-key",
                             "--jobs-dir", tempfile.mkdtemp(prefix="omnid-sdk-jobs-")],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("omnid: listening on http://"), line
        http_base = line.strip().split("listening on ")[1]
        yield http_base, "ws://" + http_base.split("://", 1)[1] + "/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def realtime_checks(base, http_base, omnid):
    ws_base = "ws://" + http_base.split("://", 1)[1] + "/v1"
    client = openai.OpenAI(base_url=base, api_key="sdk-key", websocket_base_url=ws_base)

    # A push-to-talk voice turn: speech in, speech and its transcript out.
    with client.realtime.connect(model="omni_c") as conn:
        seen = []
        until(conn, "session.created", seen)
        conn.session.update(session={"type": "realtime", "output_modalities": ["audio"], "max_output_tokens": 8,
                                     "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                                         "turn_detection": None},
                                               "output": {"voice": "serena"}}})
        until(conn, "session.updated", seen)
        conn.input_audio_buffer.append(audio=pcm24k_of("omni_a/inputs/aud_short.wav"))
        conn.input_audio_buffer.commit()
        until(conn, "input_audio_buffer.committed", seen)
        conn.response.create()
        done = until(conn, "response.done", seen)
        assert done.response.status == "completed", done
        deltas = [e for e in seen if e.type == "response.output_audio.delta"]
        pcm = b"".join(base64.b64decode(e.delta) for e in deltas)
        assert deltas and len(pcm) % 2 == 0, len(pcm)
        transcript = next(e for e in seen if e.type == "response.output_audio_transcript.done").transcript
        assert transcript, "an empty transcript"
        assert done.response.usage.output_tokens > 0, done.response.usage

    # Barge-in: with server VAD, speaking during the answer cancels it. On the embedded default,
    # whose answers run to max_output_tokens (omni_c's end within a few tokens, before the user
    # could speak over them).
    with long_answers_daemon(omnid) as (http_base2, ws_base2), \
            openai.OpenAI(base_url=http_base2 + "/v1", api_key="sdk-key", websocket_base_url=ws_base2).realtime.connect(
                model="omnid-embedded-tiny") as conn:
        seen = []
        until(conn, "session.created", seen)
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "max_output_tokens": 4000,
                                     "audio": {"input": {"turn_detection": {"type": "server_vad",
                                                                            "silence_duration_ms": 200}}}})
        until(conn, "session.updated", seen)
        for chunk in [tone(400, 12000), tone(300, 0)]:
            conn.input_audio_buffer.append(audio=chunk)
        until(conn, "response.created", seen)
        conn.input_audio_buffer.append(audio=tone(200, 12000))
        start = len(seen)
        done = until(conn, "response.done", seen)
        kinds = [e.type for e in seen[start:]]
        assert "input_audio_buffer.speech_started" in kinds, kinds
        assert done.response.status == "cancelled", done.response.status

    # Function calling: tools in the session; a call and its output continue the turn.
    with client.realtime.connect(model="omni_c") as conn:
        seen = []
        until(conn, "session.created", seen)
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "max_output_tokens": 4,
                                     "tools": [{"type": "function", "name": "get_weather",
                                                "description": "Weather of a city",
                                                "parameters": {"type": "object",
                                                               "properties": {"city": {"type": "string"}}}}]})
        updated = until(conn, "session.updated", seen)
        assert updated.session.tools[0].name == "get_weather", updated.session.tools
        conn.conversation.item.create(item={"type": "message", "role": "user",
                                            "content": [{"type": "input_text", "text": "Weather in Paris?"}]})
        until(conn, "conversation.item.done", seen)
        conn.conversation.item.create(item={"type": "function_call", "call_id": "call_1", "name": "get_weather",
                                            "arguments": "{\"city\": \"Paris\"}"})
        call = until(conn, "conversation.item.done", seen)
        assert call.item.type == "function_call" and call.item.call_id == "call_1", call
        conn.conversation.item.create(item={"type": "function_call_output", "call_id": "call_1",
                                            "output": "{\"temp\": 21}"})
        until(conn, "conversation.item.done", seen)
        conn.response.create()
        done = until(conn, "response.done", seen)
        assert done.response.status == "completed", done
    return len(deltas)


if __name__ == "__main__":
    sys.exit(main())
