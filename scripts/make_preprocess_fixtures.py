#!/usr/bin/env python3
"""Golden fixtures for omnid's preprocessing tests (tests/preprocess.rs, codecs/tests/).

Run with the reference venv (transformers 5.23, torch 2.15, numpy, Pillow 13):

    /work/pyref/bin/python scripts/make_preprocess_fixtures.py

Everything is deterministic (fixed seeds). Inputs are stored as WAV/PNG, expected outputs as PNG (uint8 images),
little-endian f32 `.bin` files or JSON. Keep the total under 500 KB.

What each reference is:
* audio: `WhisperFeatureExtractor._np_extract_fbank_features` (the numpy float64 path). With torch installed,
  `WhisperFeatureExtractor.__call__` uses the torch float32 path instead, whose STFT is MKL's float32 FFT; that
  path is not reproducible bit-for-bit (it differs from the numpy path by ~3e-5), so it is stored for one case
  and checked with a looser bound.
* images: `Qwen2VLImageProcessorPil` (what `use_fast=False` selects) and `PIL.Image.resize`.
* video: transformers' own `smart_resize` / `sample_frames` / `patchify` / `_calculate_timestamps`; the resize
  step uses PIL bicubic (torchvision is not installed here) followed by the torch fused rescale+normalize that
  `TorchvisionBackend.rescale_and_normalize` performs.
"""

import copy
import json
import math
import os
import types
import wave

import numpy as np
import torch
from PIL import Image

from transformers import WhisperFeatureExtractor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as smart_resize_2d
from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize as smart_resize_3d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "preprocess")
CODECS_OUT = os.path.join(ROOT, "codecs", "tests", "fixtures")
SR = 16000


def write_f32(name, arr):
    arr = np.ascontiguousarray(arr, dtype="<f4")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(arr.tobytes())


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------------------------------------------- audio
def speechlike(n, seed=1234):
    """A voiced/unvoiced, speech-like test signal with a stretch of digital silence (int16)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.7 * t) + 25 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = np.zeros(n)
    for k in range(1, 40):
        fk = k * f0
        amp = (
            np.exp(-(((fk - 600) / 250) ** 2))
            + 0.6 * np.exp(-(((fk - 1500) / 300) ** 2))
            + 0.3 * np.exp(-(((fk - 2600) / 400) ** 2))
            + 0.05
        ) / k**0.5
        voiced += amp * (fk < 7800) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    envelope = np.clip(np.sin(2 * np.pi * 2.2 * t) ** 2 * 1.3 - 0.15, 0, 1)
    noise = rng.standard_normal(n)
    fricative = np.diff(noise, prepend=0.0) * np.clip(np.sin(2 * np.pi * 0.9 * t + 1.0), 0, 1) ** 8
    x = voiced * envelope + 0.35 * fricative + 0.002 * noise
    x[int(1.5 * SR) : int(1.8 * SR)] = 0.0  # digital silence exercises the 1e-10 clamp and the max-8 floor
    x = x / np.max(np.abs(x)) * 0.6
    return np.round(x * 32767).astype(np.int16)


def write_wav(path, pcm16):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm16.astype("<i2").tobytes())


def audio_fixtures():
    stored = speechlike(int(4.6 * SR))
    write_wav(os.path.join(OUT, "speech_16k.wav"), stored)
    # The 9.05 s case is the stored clip followed by itself reversed in time (no discontinuity at the joint),
    # so that a 290 KB WAV is not needed; the Rust test rebuilds it the same way.
    palindrome = np.concatenate([stored, stored[::-1]])
    fe = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=SR, hop_length=160, chunk_length=300, n_fft=400,
        padding_value=0.0, dither=0.0, return_attention_mask=True,
    )
    cases = []
    for name, source, offset, n in [
        ("0p3s", "wav", 33600, 4800),
        ("1s", "wav", 0, 16000),
        ("2p37s", "wav", 20000, 37920),
        ("9p05s", "palindrome", 0, 144800),
    ]:
        pcm = (stored if source == "wav" else palindrome)[offset : offset + n]
        x = pcm.astype(np.float32) / 32768.0
        ref = fe._np_extract_fbank_features(x[None], "cpu")[0]  # [128, L], float32
        called = fe(x, sampling_rate=SR, padding=True, truncation=False, return_attention_mask=True,
                    return_tensors="np")
        torch_path = called["input_features"][0]
        n_frames = int(called["attention_mask"].sum())
        assert ref.shape == (128, n // 160) == torch_path.shape and n_frames == n // 160
        # A subset of frames in full (first/last frames cover the reflect padding), plus every frame's sum.
        if ref.shape[1] <= 30:
            keep = list(range(ref.shape[1]))
        else:
            keep = sorted(set([0, 1, 2, ref.shape[1] - 3, ref.shape[1] - 2, ref.shape[1] - 1]
                              + list(np.linspace(3, ref.shape[1] - 4, 24).round().astype(int))))
        write_f32(f"mel_{name}.bin", ref[:, keep])
        write_f32(f"mel_{name}_frame_sums.bin", ref.astype(np.float64).sum(axis=0))
        case = {
            "name": name, "source": source, "offset": offset, "n_samples": n, "n_frames": int(ref.shape[1]),
            "n_mels": 128, "frames": [int(k) for k in keep], "mel_file": f"mel_{name}.bin",
            "frame_sums_file": f"mel_{name}_frame_sums.bin",
            "audio_tokens": int(_get_feat_extract_output_lengths(np.array(n_frames), 50)),
            "torch_path_vs_numpy_path_max_abs": float(np.abs(torch_path - ref).max()),
        }
        if name == "0p3s":
            write_f32("mel_0p3s_torch_path.bin", torch_path)
            case["torch_path_file"] = "mel_0p3s_torch_path.bin"
        cases.append(case)
        print(f"audio {name}: frames {ref.shape[1]} torch-vs-numpy {case['torch_path_vs_numpy_path_max_abs']:.3g}")
    token_table = []
    for n_samples in [0, 159, 160, 320, 1600, 4800, 8000, 15999, 16000, 16160, 17600, 37920, 144800, 160000,
                      960000, 12345, 99 * 160, 101 * 160, 108 * 160, 7 * 160, 8 * 160, 9 * 160]:
        frames = n_samples // 160
        token_table.append({"n_samples": n_samples, "n_frames": frames,
                            "tokens": int(_get_feat_extract_output_lengths(np.array(frames), 50))})
    write_json("audio_cases.json", {"wav": "speech_16k.wav", "cases": cases, "token_table": token_table})


# ---------------------------------------------------------------------------------------------------- images
def structured_image(w, h, seed, noise=True):
    """Blocks, gradients and (optionally) noise: sharp edges exercise the cubic overshoot and uint8 clipping."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3))
    img[..., 0] = 255 * xx / max(w - 1, 1)
    img[..., 1] = 255 * yy / max(h - 1, 1)
    img[..., 2] = 128 + 127 * np.sin(xx * 0.7 + yy * 0.3)
    for _ in range(6):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        bw, bh = rng.integers(2, max(3, w // 3)), rng.integers(2, max(3, h // 3))
        img[y0 : y0 + bh, x0 : x0 + bw] = rng.choice([0, 255], size=3)
    if noise:
        img += rng.normal(0, 24, img.shape) * (rng.random((h, w, 1)) < 0.1)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def noise_image(w, h, seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def resize_fixtures():
    filters = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS,
               "hamming": Image.HAMMING, "box": Image.BOX}
    cases = []
    specs = [  # name, input (w, h), kind, output (w, h), filter
        ("up_37x53_to_64x96", (37, 53), "noise", (64, 96), "bicubic"),
        ("down_200x130_to_96x64", (200, 130), "structured", (96, 64), "bicubic"),
        # Pillow 13 runs the vertical pass first when the height shrinks by more than twice the width's shrink.
        ("mixed_50x31_to_77x19", (50, 31), "noise", (77, 19), "bicubic"),
        ("down_vertical_first_37x53_to_30x20", (37, 53), "noise", (30, 20), "bicubic"),
        ("down_tie_horizontal_first_50x31_to_48x27", (50, 31), "noise", (48, 27), "bicubic"),
        ("down_13x7_to_5x3", (13, 7), "noise", (5, 3), "bicubic"),
        ("horizontal_only_40x30_to_57x30", (40, 30), "structured", (57, 30), "bicubic"),
        ("vertical_only_40x30_to_40x11", (40, 30), "structured", (40, 11), "bicubic"),
        ("bilinear_37x53_to_20x70", (37, 53), "noise", (20, 70), "bilinear"),
        ("lanczos_23x17_to_31x9", (23, 17), "noise", (31, 9), "lanczos"),
        ("hamming_23x17_to_11x29", (23, 17), "noise", (11, 29), "hamming"),
        ("box_23x17_to_10x40", (23, 17), "noise", (10, 40), "box"),
    ]
    inputs = {}
    for i, (name, (w, h), kind, (ow, oh), filt) in enumerate(specs):
        key = (w, h, kind)
        if key not in inputs:
            img = noise_image(w, h, 100 + i) if kind == "noise" else structured_image(w, h, 100 + i)
            fname = f"resize_in_{kind}_{w}x{h}.png"
            img.save(os.path.join(OUT, fname), optimize=True)
            inputs[key] = (fname, img)
        fname, img = inputs[key]
        out = img.resize((ow, oh), resample=filters[filt])
        out_name = f"resize_out_{name}.png"
        out.save(os.path.join(OUT, out_name), optimize=True)
        cases.append({"name": name, "input": fname, "output": out_name, "filter": filt,
                      "out_width": ow, "out_height": oh})
    write_json("resize_cases.json", {"cases": cases})


def smart_resize_fixtures():
    rng = np.random.default_rng(7)
    cases = []

    # Rows are [h, w, factor, min_pixels, max_pixels, out_h, out_w]; out_h = out_w = null when Python raises.
    def add2(h, w, factor, mn, mx):
        try:
            rh, rw = smart_resize_2d(h, w, factor=factor, min_pixels=mn, max_pixels=mx)
            cases.append([h, w, factor, mn, mx, rh, rw])
        except (ValueError, ZeroDivisionError):
            cases.append([h, w, factor, mn, mx, None, None])

    omni, vl = (3136, 12845056), (65536, 16777216)
    for factor in (28, 32):
        # ties at .5 (round half to even): 48/32 = 1.5 -> 2, 80/32 = 2.5 -> 2, 112/32 = 3.5 -> 4, 42/28 = 1.5 -> 2
        for h, w in [(48, 80), (80, 112), (112, 144), (42, 70), (70, 98), (16, 48), (144, 176), (176, 208)]:
            add2(h, w, factor, 16, 10**9)
            add2(h, w, factor, *omni)
        for h, w in [(1, 200), (1, 201), (200, 1), (201, 1), (3, 600), (10, 2001), (2000, 10), (5, 1000),
                     (1080, 1920), (1920, 1080), (4000, 3000), (10000, 10000), (12345, 6789), (32, 32),
                     (31, 33), (10, 10), (1, 1), (100, 20000), (640, 360), (45, 70), (47, 45), (23, 41)]:
            add2(h, w, factor, *omni)
            add2(h, w, factor, *vl)
            add2(h, w, factor, 56 * 56, 28 * 28 * 1280)
    for _ in range(150):
        h, w = int(rng.integers(1, 5000)), int(rng.integers(1, 5000))
        mn = int(rng.choice([3136, 65536, 256 * 256, 1024]))
        mx = int(rng.choice([12845056, 16777216, 1003520, 200000, 4096]))
        add2(h, w, int(rng.choice([28, 32])), mn, mx)

    cases3 = []

    # Rows are [frames, h, w, factor, min_pixels, max_pixels, out_h, out_w] (temporal factor 2).
    def add3(t, h, w, factor, mn, mx):
        try:
            rh, rw = smart_resize_3d(t, h, w, temporal_factor=2, factor=factor, min_pixels=mn, max_pixels=mx)
            cases3.append([t, h, w, factor, mn, mx, rh, rw])
        except (ValueError, ZeroDivisionError):
            cases3.append([t, h, w, factor, mn, mx, None, None])

    for t, h, w in [(1, 360, 640), (2, 360, 640), (3, 360, 640), (20, 360, 640), (768, 1080, 1920),
                    (4, 20, 640), (4, 640, 20), (4, 10, 5), (8, 31, 31), (5, 3, 700), (6, 1, 300),
                    (16, 1080, 1920), (40, 48, 80), (30, 720, 1280)]:
        for mn, mx in [(4096, 25165824), (128 * 32 * 32, 32 * 32 * 768), (256, 4096)]:
            add3(t, h, w, 32, mn, mx)
    for _ in range(100):
        t = int(rng.integers(1, 800))
        h, w = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
        add3(t, h, w, int(rng.choice([28, 32])), int(rng.choice([4096, 131072])),
             int(rng.choice([25165824, 786432, 20000000])))
    write_json("smart_resize.json", {"cases_2d": cases, "cases_3d": cases3})


def image_processor_fixtures():
    clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    cases = []
    specs = [
        # Omni-style keys (min_pixels / max_pixels at top level), CLIP mean/std, a downscale.
        ("omni_keys_down", (45, 47), {"min_pixels": 512, "max_pixels": 1024, "patch_size": 16,
                                      "temporal_patch_size": 2, "merge_size": 2, "image_mean": clip_mean,
                                      "image_std": clip_std, "image_processor_type": "Qwen2VLImageProcessor"}),
        # Qwen3-VL-style keys (size dict), mean = std = 0.5, an upscale.
        ("vl_keys_up", (41, 23), {"size": {"shortest_edge": 1024, "longest_edge": 4096}, "patch_size": 16,
                                  "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5],
                                  "image_std": [0.5, 0.5, 0.5], "image_processor_type": "Qwen2VLImageProcessorFast"}),
        # Patch 14 / factor 28, no normalisation (rescale only).
        ("p14_rescale_only", (30, 50), {"min_pixels": 784, "max_pixels": 784, "patch_size": 14,
                                        "merge_size": 2, "do_normalize": False}),
    ]
    for seed, (name, (w, h), cfg) in enumerate(specs):
        img = structured_image(w, h, 300 + seed)
        in_name = f"imgproc_in_{name}.png"
        img.save(os.path.join(OUT, in_name), optimize=True)
        # The processor edits a passed `size` dict in place, hence the deep copies.
        proc = Qwen2VLImageProcessorPil(**copy.deepcopy({k: v for k, v in cfg.items() if k != "image_processor_type"}))
        out = proc(images=[Image.open(os.path.join(OUT, in_name))], return_tensors="np")
        pv = out["pixel_values"]
        grid = [int(v) for v in out["image_grid_thw"][0]]
        assert pv.dtype == np.float32
        write_f32(f"imgproc_{name}_pixel_values.bin", pv)
        cases.append({"name": name, "input": in_name, "config": cfg, "grid_thw": grid,
                      "pixel_values_shape": list(pv.shape), "pixel_values_file": f"imgproc_{name}_pixel_values.bin"})
    # Which keys win: resolved values for configs without pixel data.
    resolved = []
    for cfg in [
        {},
        {"size": {"shortest_edge": 100, "longest_edge": 200}, "min_pixels": 3136, "max_pixels": 12845056},
        {"size": {"shortest_edge": 100, "longest_edge": 200}, "max_pixels": 5000},
        {"size": {"shortest_edge": 65536, "longest_edge": 16777216}, "patch_size": 16},
        {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 16, "rescale_factor": 0.5,
         "do_resize": False, "do_rescale": True, "do_normalize": False, "do_convert_rgb": True},
    ]:
        p = Qwen2VLImageProcessorPil(**copy.deepcopy(cfg))
        resolved.append({"config": cfg, "min_pixels": int(p.size["shortest_edge"]),
                         "max_pixels": int(p.size["longest_edge"]), "patch_size": p.patch_size,
                         "temporal_patch_size": p.temporal_patch_size, "merge_size": p.merge_size,
                         "image_mean": list(p.image_mean), "image_std": list(p.image_std),
                         "rescale_factor": p.rescale_factor, "do_resize": p.do_resize,
                         "do_rescale": p.do_rescale, "do_normalize": p.do_normalize})
    write_json("image_processor_cases.json", {"cases": cases, "resolved_configs": resolved})


# ---------------------------------------------------------------------------------------------------- video
def omni_nframes(total, video_fps, fps, min_frames, max_frames):
    """qwen-vl-utils / qwen-omni-utils `smart_nframes` (fps branch), FRAME_FACTOR = 2."""
    ceil2 = lambda v: math.ceil(v / 2) * 2
    floor2 = lambda v: math.floor(v / 2) * 2
    lo = ceil2(min_frames)
    hi = floor2(min(max_frames, total))
    n = total / video_fps * fps
    n = min(min(max(n, lo), hi), total)
    n = floor2(n)
    if not (2 <= n <= total):
        raise ValueError(n)
    return n


def video_fixtures():
    rng = np.random.default_rng(11)
    sampling = []
    specs = [(300, 30.0, 2.0, 4, 768), (10, 30.0, 2.0, 4, 768), (3, 30.0, 2.0, 4, 768), (2, 25.0, 2.0, 4, 768),
             (1, 25.0, 2.0, 4, 768), (5, 24.0, 2.0, 4, 768), (100000, 29.97, 2.0, 4, 40), (251, 25.0, 2.0, 4, 768),
             (1000, 60.0, 1.0, 4, 64), (7, 1.0, 2.0, 4, 768), (121, 30.0, 0.5, 3, 11), (90, 29.97, 2.0, 5, 768)]
    for _ in range(40):
        specs.append((int(rng.integers(1, 1200)), float(rng.choice([24.0, 25.0, 29.97, 30.0, 59.94, 60.0, 12.5])),
                      float(rng.choice([1.0, 2.0, 0.5, 3.0])), int(rng.choice([2, 4, 5])),
                      int(rng.choice([768, 64, 33]))))
    q3 = types.SimpleNamespace(fps=2, min_frames=4, max_frames=768)
    for total, vfps, fps, mn, mx in specs:
        entry = {"total": total, "native_fps": vfps, "target_fps": fps, "min_frames": mn, "max_frames": mx}
        try:
            n = omni_nframes(total, vfps, fps, mn, mx)
            idx = torch.linspace(0, total - 1, n).round().long().tolist()
            entry["omni"] = {"indices": idx, "sample_fps": n / max(total, 1e-6) * vfps}
        except ValueError:
            entry["omni"] = {"error": True}
        q3.min_frames, q3.max_frames = mn, mx
        meta = types.SimpleNamespace(total_num_frames=total, fps=vfps)
        idx3 = Qwen3VLVideoProcessor.sample_frames(q3, meta, fps=fps)
        entry["qwen3_vl"] = {"indices": [int(v) for v in idx3]}
        sampling.append(entry)

    # A small already-decoded clip: 3 frames (odd, so the last one is repeated), Qwen3-VL rules.
    frames = [structured_image(36, 20, 200 + k) for k in range(3)]
    names = []
    for k, fr in enumerate(frames):
        names.append(f"video_frame{k}.png")
        fr.save(os.path.join(OUT, names[-1]), optimize=True)
    patch, merge, tps, factor = 8, 2, 2, 16
    min_px, max_px = 256, 4096
    rh, rw = smart_resize_3d(3, 20, 36, temporal_factor=tps, factor=factor, min_pixels=min_px, max_pixels=max_px)
    resized = np.stack([np.array(f.resize((rw, rh), Image.BICUBIC)) for f in frames])  # T,H,W,C uint8
    videos = torch.from_numpy(resized).permute(0, 3, 1, 2)[None]  # B,T,C,H,W
    mean = torch.tensor([0.5, 0.5, 0.5]) * (1.0 / (1 / 255))
    std = torch.tensor([0.5, 0.5, 0.5]) * (1.0 / (1 / 255))
    normed = (videos.to(torch.float32) - mean.view(1, 1, 3, 1, 1)) / std.view(1, 1, 3, 1, 1)
    patches, gt, gh, gw = Qwen3VLVideoProcessor.patchify(None, normed, patch_size=patch, merge_size=merge,
                                                         temporal_patch_size=tps)
    pv = patches[0].numpy()
    write_f32("video_pixel_values.bin", pv)
    frame_indices = [0, 15, 30]
    native_fps = 30.0
    stamps = Qwen3VLProcessor._calculate_timestamps(None, list(frame_indices), native_fps, tps)
    clip = {"frames": names, "frame_indices": frame_indices, "native_fps": native_fps,
            "config": {"video_processor_type": "Qwen3VLVideoProcessor", "patch_size": patch, "merge_size": merge,
                       "temporal_patch_size": tps, "size": {"shortest_edge": min_px, "longest_edge": max_px},
                       "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
            "resized": [rh, rw], "grid_thw": [gt, gh, gw], "pixel_values_shape": list(pv.shape),
            "pixel_values_file": "video_pixel_values.bin", "grid_timestamps": stamps}
    write_json("video_cases.json", {"sampling": sampling, "clip": clip})


# ---------------------------------------------------------------------------------------------------- codecs
def codecs_fixtures():
    os.makedirs(CODECS_OUT, exist_ok=True)
    # 8 wide x 4 high: left half red, right half blue; EXIF orientation 6 means "rotate 90 degrees clockwise
    # to display", so the decoded, oriented image is 4 wide x 8 high with red on top.
    img = Image.new("RGB", (8, 4), (255, 0, 0))
    img.paste((0, 0, 255), (4, 0, 8, 4))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(os.path.join(CODECS_OUT, "exif_orientation_6.jpg"), quality=95, exif=exif.tobytes())
    # Alpha ramp over a colour, and what transformers' convert_to_rgb (alpha_composite onto white) makes of it.
    px = np.zeros((2, 16, 4), dtype=np.uint8)
    px[0, :, :3] = (200, 30, 90)
    px[1, :, :3] = (0, 255, 10)
    px[:, :, 3] = np.array([0, 1, 2, 17, 64, 100, 127, 128, 129, 180, 200, 230, 250, 253, 254, 255])
    rgba = Image.fromarray(px, "RGBA")
    rgba.save(os.path.join(CODECS_OUT, "alpha_ramp.png"))
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    Image.alpha_composite(white, rgba).convert("RGB").save(os.path.join(CODECS_OUT, "alpha_ramp_on_white.png"))


def main():
    os.makedirs(OUT, exist_ok=True)
    audio_fixtures()
    resize_fixtures()
    smart_resize_fixtures()
    image_processor_fixtures()
    video_fixtures()
    codecs_fixtures()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"tests/fixtures/preprocess: {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
