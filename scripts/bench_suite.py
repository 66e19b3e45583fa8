#!/usr/bin/env python3
"""omnid's benchmark suite: every speed ratio of issue 9 in one run, on one machine, printed as one table
(and written as JSON). Each comparison runs both engines back to back on the same weights and thread count,
so the ratios hold on a noisy machine even where the absolute figures move.

    scripts/bench_suite.py --omnid target/release/omnid --work /tmp/omnid-bench \\
        --torch-python /work/pyref-fx/bin/python --llama-python /work/pyllama/bin/python [--gpu-omnid BIN]

| section | what | against |
|---|---|---|
| thinker | prefill/decode tokens/s of the Qwen3-Omni bench checkpoint | transformers 5.23 (scripts/bench_reference.py) |
| speech | first audio and real-time factor, whole omni pipeline | transformers `generate(return_audio=True)` |
| llama.cpp | prefill/decode on one shared GGUF, q8_0 and Q4_K_M | llama-cpp-python (scripts/bench_llama_cpp.py) |
| quantized | real-width model, q8_0 and q4_k against f32 | omnid itself |
| gpu | `gpu-selftest`, then real-width prefill/decode and first audio on cuda:0 | the CPU figures above |

Checkpoints are built once into --work with the reference implementation (make_bench_model.py,
make_bench_vl_model.py; torch + transformers). A section whose interpreter or binary is missing is skipped
with the reason, never silently. --quick runs one timed run per figure for a smoke test of the suite itself.
"""
import argparse, datetime, json, os, platform, shutil, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The Qwen3-Omni bench checkpoint: real widths, 2 thinker layers, with the talker and Code2Wav.
OMNI_ARGS = ["--layers", "2", "--speech"]


def run_json(cmd, env=None):
    """Runs a command that prints one JSON document; returns it, or raises with its stderr."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} … exited {p.returncode}: {p.stderr.strip()[-800:]}")
    out = p.stdout
    return json.loads(out[out.index("{"):])


def has_modules(python, modules):
    if not python or not os.path.exists(python):
        return False
    code = "import " + ", ".join(modules)
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), "date": datetime.date.today().isoformat()}


def ensure_checkpoint(path, script, args, python):
    if os.path.exists(os.path.join(path, "config.json")):
        return
    subprocess.run([python, os.path.join(HERE, script), "--out", path] + args, check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--omnid", required=True, help="omnid release binary (CPU build)")
    ap.add_argument("--work", required=True, help="folder for the benchmark checkpoints (reused across runs)")
    ap.add_argument("--torch-python", help="python with torch + transformers 5.23 (reference sections)")
    ap.add_argument("--llama-python", help="python with llama_cpp, gguf, numpy (llama.cpp section)")
    ap.add_argument("--gpu-omnid", help="omnid built with --features cuda (gpu section; needs a GPU)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="one timed run per figure (checks the suite, not speed)")
    ap.add_argument("--out", help="also write the report as JSON here")
    a = ap.parse_args()
    runs = "1" if a.quick else "3"
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    os.makedirs(a.work, exist_ok=True)
    omni, vl = os.path.join(a.work, "omni-bench"), os.path.join(a.work, "vl-bench")
    torch_ok = has_modules(a.torch_python, ["torch", "transformers"])
    report = {"machine": machine(), "threads": a.threads, "sections": {}, "skipped": {}}
    rows = []  # (section, figure, omnid, peer, ratio)

    def section(name, fn):
        try:
            fn()
        except Exception as e:  # a failed section is reported, the others still run
            report["skipped"][name] = f"failed: {e}"

    def thinker():
        if not torch_ok:
            raise RuntimeError("no --torch-python with torch and transformers")
        ensure_checkpoint(omni, "make_bench_model.py", OMNI_ARGS, a.torch_python)
        ours = run_json([a.omnid, "bench", "--model", omni, "--runs", runs, "--json"], env)
        path = os.path.join(a.work, "omnid-bench.json")
        json.dump(ours, open(path, "w"))
        ref = run_json([a.torch_python, os.path.join(HERE, "bench_reference.py"), "--model", omni, "--omnid", path,
                        "--threads", str(a.threads)])
        report["sections"]["thinker"] = ref
        rows.append(("thinker vs transformers", "prefill tok/s", ref["omnid_prefill_tokens_per_s"],
                     ref["reference_prefill_tokens_per_s"], ref["prefill_ratio_omnid_over_reference"]))
        rows.append(("thinker vs transformers", "decode tok/s", ref["omnid_decode_tokens_per_s"],
                     ref["reference_decode_tokens_per_s"], ref["decode_ratio_omnid_over_reference"]))

    def speech():
        if not torch_ok:
            raise RuntimeError("no --torch-python with torch and transformers")
        ensure_checkpoint(omni, "make_bench_model.py", OMNI_ARGS, a.torch_python)
        ours = run_json([a.omnid, "bench-speech", "--model", omni, "--runs", runs, "--json"], env)
        path = os.path.join(a.work, "omnid-speech.json")
        json.dump(ours, open(path, "w"))
        ref = run_json([a.torch_python, os.path.join(HERE, "bench_speech_reference.py"), "--model", omni,
                        "--omnid", path, "--runs", runs])
        report["sections"]["speech"] = ref
        rows.append(("omni pipeline vs transformers", "first audio ms (peer/omnid)", ref["omnid_first_audio_ms"],
                     ref["reference_first_audio_ms"], ref["first_audio_ratio"]))
        rows.append(("omni pipeline vs transformers", "real-time factor (peer/omnid)", ref["omnid_rtf"],
                     ref["reference_rtf"], ref["rtf_ratio"]))

    def llama():
        if not has_modules(a.llama_python, ["llama_cpp", "gguf", "numpy"]):
            raise RuntimeError("no --llama-python with llama_cpp, gguf and numpy")
        if not torch_ok:
            raise RuntimeError("the VL checkpoint is built with torch and transformers (--torch-python)")
        # The 4-layer checkpoint is 3 GB, its q8_0 GGUF 1.7 GB, and the Q4_K_M file is made from a 6.4 GB
        # f32 GGUF: running out of disk half-way would leave a truncated file behind.
        need = 2 if a.quick else 12
        free = shutil.disk_usage(a.work).free / 1e9
        if free < need and not os.path.exists(os.path.join(vl, "llama-q4_k_m")):
            raise RuntimeError(f"{free:.1f} GB free under --work, the llama.cpp section needs about {need} GB")
        layers = ["--layers", "2", "--experts", "16"] if a.quick else ["--layers", "4", "--experts", "64"]
        ensure_checkpoint(vl, "make_bench_vl_model.py", layers, a.torch_python)
        for quant in ["q8_0", "q4_k_m"]:
            r = run_json([a.llama_python, os.path.join(HERE, "bench_llama_cpp.py"), "--model", vl, "--omnid", a.omnid,
                          "--quant", quant, "--runs", runs, "--threads", str(a.threads)])
            report["sections"][f"llama_cpp_{quant}"] = r
            for phase in ["prefill", "decode"]:
                rows.append((f"llama.cpp {quant}, same GGUF", f"{phase} tok/s", r["omnid"][f"{phase}_tokens_per_s"],
                             r["llama_cpp"][f"{phase}_tokens_per_s"], r[f"ratio_{phase}"]))

    def quantized():
        base = [a.omnid, "bench", "--synthetic", "real-widths", "--thinker-layers", "2", "--thinker-experts", "32",
                "--talker-layers", "1", "--runs", runs, "--json"]
        dense = run_json(base, env)
        report["sections"]["quantized"] = {"f32": dense}
        for q in ["q8_0", "q4_k"]:
            r = run_json(base + ["--quant", q], env)
            report["sections"]["quantized"][q] = r
            for phase in ["prefill", "decode"]:
                key = f"{phase}_tokens_per_s"
                rows.append((f"{q} vs f32 (real widths)", f"{phase} tok/s", r[key], dense[key], r[key] / dense[key]))

    def gpu():
        if not a.gpu_omnid:
            raise RuntimeError("no --gpu-omnid (a build with --features cuda)")
        p = subprocess.run([a.gpu_omnid, "gpu-selftest"], capture_output=True, text=True)
        report["sections"]["gpu_selftest"] = p.stdout
        if p.returncode != 0:
            raise RuntimeError("gpu-selftest failed:\n" + p.stdout[-2000:])
        cpu_f = report["sections"].get("quantized", {}).get("f32")
        r = run_json([a.gpu_omnid, "bench", "--synthetic", "real-widths", "--thinker-layers", "48",
                      "--thinker-experts", "128", "--talker-layers", "20", "--device", "cuda", "--runs", runs, "--json"])
        report["sections"]["gpu_bench"] = r
        for phase in ["prefill", "decode"]:
            key = f"{phase}_tokens_per_s"
            rows.append(("GPU, real Instruct dims (bf16)", f"{phase} tok/s", r[key], cpu_f[key] if cpu_f else float("nan"),
                         r[key] / cpu_f[key] if cpu_f else float("nan")))
        s = run_json([a.gpu_omnid, "bench-speech", "--synthetic", "real-widths", "--thinker-layers", "48",
                      "--thinker-experts", "128", "--talker-layers", "20", "--device", "cuda", "--runs", runs, "--json"])
        report["sections"]["gpu_speech"] = s
        rows.append(("GPU first audio vs Qwen3-Omni report", "first audio ms (234/omnid)", s["median"]["first_audio_ms"],
                     234.0, 234.0 / s["median"]["first_audio_ms"]))
        rows.append(("GPU first audio vs vLLM-Omni", "first audio ms (523/omnid)", s["median"]["first_audio_ms"],
                     523.0, 523.0 / s["median"]["first_audio_ms"]))

    for name, fn in [("thinker", thinker), ("speech", speech), ("llama.cpp", llama), ("quantized", quantized),
                     ("gpu", gpu)]:
        print(f"== {name}", file=sys.stderr, flush=True)
        section(name, fn)

    m = report["machine"]
    print(f"omnid benchmark suite — {m['cpu']}, {m['cores']} cores, {a.threads} threads, {m['date']}"
          + (" (--quick: one run per figure)" if a.quick else ""))
    print(f"{'comparison':<40} {'figure':<30} {'omnid':>10} {'peer':>10} {'ratio':>7}")
    for sec, fig, ours, peer, ratio in rows:
        print(f"{sec:<40} {fig:<30} {ours:>10.2f} {peer:>10.2f} {ratio:>6.2f}×")
    for name, why in report["skipped"].items():
        print(f"skipped {name}: {why}")
    report["rows"] = [dict(zip(["comparison", "figure", "omnid", "peer", "ratio"], r)) for r in rows]
    if a.out:
        json.dump(report, open(a.out, "w"), indent=1)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
