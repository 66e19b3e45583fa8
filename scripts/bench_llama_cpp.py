#!/usr/bin/env python3
"""The CPU decode/prefill comparison with llama.cpp on the same file, same machine, same run: omnid's text
decoder of a Qwen3-VL-30B-A3B-shaped checkpoint against llama.cpp (through llama-cpp-python), both reading
one q8_0 GGUF (omnid loads llama.cpp's files; the directory it reads also holds the checkpoint's json
files and an mmproj for the vision tower, which a text prompt does not run).

    python -m venv /tmp/pyllama && /tmp/pyllama/bin/pip install llama-cpp-python gguf numpy
    python scripts/make_bench_vl_model.py --out /tmp/vl-bench --layers 4 --experts 64   # torch + transformers
    /tmp/pyllama/bin/python scripts/bench_llama_cpp.py --model /tmp/vl-bench --omnid target/release/omnid

The GGUF is written by the `gguf` package (llama.cpp's own writer) in llama.cpp's `qwen3moe` layout:
token_embd / blk.N.attn_{q,k,v,output,q_norm,k_norm} / ffn_gate_inp / ffn_{gate,up,down}_exps / output.
Qwen3 uses NEOX-style rotary in both engines, so q/k need no permutation; a text prompt's M-RoPE positions
are plain 1-D positions, what llama.cpp's qwen3moe applies. The matrices are quantized to q8_0 by the gguf
package's reference quantizer (ggml's block layout, the one omnid's `--quant q8_0` makes); norms stay f32.
The router (`ffn_gate_inp`) is f32 in both. Both engines get the same prompt ids and decode the same
number of tokens with the same thread count; each side reports the median of its timed runs.
"""
import argparse, json, os, shutil, struct, subprocess, sys, time

import numpy as np
import gguf


def read_safetensors(path):
    """name → float32 array (bf16, f16, f32 checkpoints)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dt = info["dtype"]
            if dt == "BF16":
                arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dt == "F16":
                arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
            elif dt == "F32":
                arr = np.frombuffer(raw, dtype=np.float32)
            else:
                continue
            out[name] = arr.reshape(info["shape"])
    return out


def write_gguf(model_dir, out_path, quant):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    t = cfg["text_config"]
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    h, n_layers = t["hidden_size"], t["num_hidden_layers"]
    n_exp = t.get("num_experts", t.get("num_local_experts"))
    inter = t["moe_intermediate_size"]
    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "f32": gguf.GGMLQuantizationType.F32}[quant]
    wr = gguf.GGUFWriter(out_path, "qwen3moe")
    wr.add_block_count(n_layers)
    wr.add_context_length(t.get("max_position_embeddings", 32768))
    wr.add_embedding_length(h)
    wr.add_feed_forward_length(t.get("intermediate_size", inter))
    wr.add_head_count(t["num_attention_heads"])
    wr.add_head_count_kv(t["num_key_value_heads"])
    wr.add_key_length(t["head_dim"])
    wr.add_value_length(t["head_dim"])
    wr.add_rope_freq_base(float(t["rope_parameters"]["rope_theta"]))
    wr.add_layer_norm_rms_eps(t["rms_norm_eps"])
    wr.add_expert_count(n_exp)
    wr.add_expert_used_count(t["num_experts_per_tok"])
    wr.add_expert_feed_forward_length(inter)
    vocab = t["vocab_size"]
    # A placeholder vocabulary (the benchmark feeds token ids): byte-level BPE with one merge
    # (llama.cpp refuses a BPE vocabulary without merges).
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("default")
    wr.add_token_list([f"<t{i}>" for i in range(vocab)])
    wr.add_token_types([gguf.TokenType.NORMAL] * vocab)
    wr.add_token_merges(["<t0> <t1>"])
    wr.add_bos_token_id(0)
    wr.add_eos_token_id(1)

    def add(name, arr, quantize=True):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if quantize and qtype != gguf.GGMLQuantizationType.F32 and arr.ndim >= 2:
            wr.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
        else:
            wr.add_tensor(name, arr)

    p = "model.language_model."
    add("token_embd.weight", w[p + "embed_tokens.weight"])
    add("output_norm.weight", w[p + "norm.weight"], False)
    add("output.weight", w["lm_head.weight"])
    for i in range(n_layers):
        lp, bp = f"{p}layers.{i}.", f"blk.{i}."
        add(bp + "attn_norm.weight", w[lp + "input_layernorm.weight"], False)
        add(bp + "ffn_norm.weight", w[lp + "post_attention_layernorm.weight"], False)
        for ours, theirs in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output")):
            add(bp + theirs + ".weight", w[lp + f"self_attn.{ours}.weight"])
        add(bp + "attn_q_norm.weight", w[lp + "self_attn.q_norm.weight"], False)
        add(bp + "attn_k_norm.weight", w[lp + "self_attn.k_norm.weight"], False)
        add(bp + "ffn_gate_inp.weight", w[lp + "mlp.gate.weight"], False)
        gu = w[lp + "mlp.experts.gate_up_proj"]
        if gu.shape[1] != 2 * inter:  # hub orientation [E, H, 2I]
            gu = gu.transpose(0, 2, 1)
        dn = w[lp + "mlp.experts.down_proj"]
        if dn.shape[1] != h:  # hub orientation [E, I, H]
            dn = dn.transpose(0, 2, 1)
        add(bp + "ffn_gate_exps.weight", gu[:, :inter, :])
        add(bp + "ffn_up_exps.weight", gu[:, inter:, :])
        add(bp + "ffn_down_exps.weight", dn)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def quantize_with_llama_cpp(src, dst, threads):
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed ({rc})")


def bench_llama(path, ids, new_tokens, runs, threads):
    from llama_cpp import Llama

    # n_batch = n_ctx: llama-cpp-python keeps the last logits in a buffer of n_batch rows, indexed by
    # position; the prompt still runs as one micro-batch (n_ubatch).
    n_ctx = len(ids) + new_tokens + 16
    llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=len(ids),
                n_threads=threads, n_threads_batch=threads, verbose=False)
    prefill, decode = [], []
    for run in range(runs + 1):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t2 = time.perf_counter()
        for _ in range(new_tokens - 1):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t3 = time.perf_counter()
        if run > 0:
            prefill.append(len(ids) / (t1 - t0))
            decode.append((new_tokens - 1) / (t3 - t2))
    return float(np.median(prefill)), float(np.median(decode))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="Qwen3-VL-MoE checkpoint (make_bench_vl_model.py)")
    ap.add_argument("--omnid", required=True, help="the omnid binary (release build)")
    ap.add_argument("--quant", default="q8_0", choices=["q8_0", "q4_k_m", "f32"],
                    help="q8_0 and f32 are written by the gguf package; q4_k_m by llama.cpp's own quantizer "
                         "(from an f32 file), the mix llama.cpp users run")
    ap.add_argument("--gguf", default=None, help="directory for the GGUF files (default: <model>/llama-<quant>)")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    # One directory both engines read: the checkpoint's json files, the text GGUF, an mmproj.
    llama_dir = a.gguf or os.path.join(a.model, f"llama-{a.quant}")
    gguf_path = os.path.join(llama_dir, f"model-{a.quant}.gguf")
    if not os.path.exists(gguf_path):
        from make_llama_gguf_fixture import write_mmproj  # (it imports this file's reader)

        os.makedirs(llama_dir, exist_ok=True)
        for f in os.listdir(a.model):
            if f.endswith(".json") or f.endswith(".jinja"):
                shutil.copy(os.path.join(a.model, f), llama_dir)
        if a.quant == "q4_k_m":
            f32_path = os.path.join(llama_dir, "model-f32.gguf.tmp")
            try:  # the 6.4 GB f32 file never outlives this step, even when a write fails (disk full)
                write_gguf(a.model, f32_path, "f32")
                quantize_with_llama_cpp(f32_path, gguf_path, a.threads)
            finally:
                if os.path.exists(f32_path):
                    os.remove(f32_path)
        else:
            write_gguf(a.model, gguf_path, a.quant)
        cfg = json.load(open(os.path.join(a.model, "config.json")))
        qtype = gguf.GGMLQuantizationType.F32 if a.quant == "f32" else gguf.GGMLQuantizationType.Q8_0
        write_mmproj(cfg, read_safetensors(os.path.join(a.model, "model.safetensors")),
                     os.path.join(llama_dir, f"mmproj-{a.quant}.gguf"), qtype)
    cmd = [a.omnid, "bench", "--model", llama_dir, "--prompt-tokens", str(a.prompt_tokens),
           "--new-tokens", str(a.new_tokens), "--runs", str(a.runs), "--json"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
    ids = ours["prompt_ids"]
    lp, ld = bench_llama(gguf_path, ids, a.new_tokens, a.runs, a.threads)
    report = {
        "model": a.model, "gguf": gguf_path, "quant": a.quant, "threads": a.threads, "prompt_tokens": a.prompt_tokens,
        "new_tokens": a.new_tokens,
        "omnid": {"prefill_tokens_per_s": ours["prefill_tokens_per_s"], "decode_tokens_per_s": ours["decode_tokens_per_s"],
                  "peak_rss_bytes": ours["peak_rss_bytes"]},
        "llama_cpp": {"prefill_tokens_per_s": lp, "decode_tokens_per_s": ld},
        "ratio_prefill": ours["prefill_tokens_per_s"] / lp,
        "ratio_decode": ours["decode_tokens_per_s"] / ld,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
