#!/usr/bin/env python3
"""PyTorch CPU peer for `deno task bench --only decode`.

Why: issue 10 asks plain decoding on the CPU adapter to beat the obvious CPU alternative, PyTorch
eager, measured on the same machine in the same sitting. This script is that alternative, written
by hand so it needs nothing beyond Debian's `python3-torch` (no transformers, no safetensors
package): it reads a LLaMA model directory (config.json + model.safetensors, f32/f16/bf16), runs a
plain LLaMA forward in PyTorch eager with a static (preallocated) KV cache, batch 1, greedy, and
prints prefill and decode tokens/s (medians).

Decode is measured like `benchmarks/decode_bench.ts`: an 8-token prompt, N new tokens with no early
stop, wall time of the whole generation (the prompt's forward included), median over repetitions.
Weights are converted to f32 (PyTorch's CPU f16 matmul is far slower than f32; our engine also
computes in f32, storing f16 only on adapters with shader-f16, which llvmpipe lacks).

Before timing, the forward is checked against the model's reference.json (PyTorch/transformers
greedy tokens) when the file exists, so the peer is known to be a correct LLaMA.

Usage: python3 benchmarks/pytorch_decode.py [--threads 2] [--decode-tokens 128] [--reps 3]
       [--prefill-tokens 128] [--json FILE] MODEL_DIR...
"""
import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

try:
    import torch
except ImportError:
    sys.exit("error: PyTorch is missing: apt-get install -y python3-torch (Debian) or pip install torch")

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def load_safetensors(path):
    """name -> f32 tensor, from one safetensors file (header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in DTYPES:
            sys.exit(f"error: {path}: tensor {name} has dtype {meta['dtype']}; expected F32, F16 or BF16")
        a, b = meta["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=DTYPES[meta["dtype"]]).reshape(meta["shape"])
        out[name] = t.to(torch.float32)
    return out


class Llama:
    """LLaMA decoder (RMSNorm, RoPE rotate-half, GQA attention, SwiGLU MLP) with a static KV cache."""

    def __init__(self, model_dir, max_seq):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.H = c["hidden_size"]
        self.nH = c["num_attention_heads"]
        self.nKV = c.get("num_key_value_heads", self.nH)
        self.hd = c.get("head_dim", self.H // self.nH)
        self.L = c["num_hidden_layers"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        theta = c.get("rope_theta", (c.get("rope_parameters") or {}).get("rope_theta", 10000.0))
        w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.embed = w["model.embed_tokens.weight"]
        self.lm_head = w.get("lm_head.weight", self.embed) if not c.get("tie_word_embeddings") else self.embed
        self.final_norm = w["model.norm.weight"]
        self.layers = []
        for i in range(self.L):
            p = f"model.layers.{i}."
            self.layers.append({
                "attn_norm": w[p + "input_layernorm.weight"],
                "qkv": torch.cat([w[p + f"self_attn.{n}_proj.weight"] for n in "qkv"]).t().contiguous(),
                "o": w[p + "self_attn.o_proj.weight"].t().contiguous(),
                "mlp_norm": w[p + "post_attention_layernorm.weight"],
                "gate_up": torch.cat([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]]).t().contiguous(),
                "down": w[p + "mlp.down_proj.weight"].t().contiguous(),
            })
        self.lm_head_t = self.lm_head.t().contiguous()
        inv = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))
        ang = torch.arange(max_seq, dtype=torch.float64)[:, None] * inv[None, :]  # (S, hd/2)
        self.cos = torch.cat([ang.cos(), ang.cos()], -1).float()  # (S, hd)
        self.sin = torch.cat([ang.sin(), ang.sin()], -1).float()
        self.k_cache = torch.zeros(self.L, self.nKV, max_seq, self.hd)
        self.v_cache = torch.zeros(self.L, self.nKV, max_seq, self.hd)
        self.max_seq = max_seq

    def _norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def _rope(self, x, pos0, T):  # x (heads, T, hd)
        h = self.hd // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * self.cos[pos0:pos0 + T] + rot * self.sin[pos0:pos0 + T]

    def forward(self, ids, pos0):
        """ids: list of T ints at positions pos0..; returns the last row's logits (V)."""
        T = len(ids)
        nH, nKV, hd = self.nH, self.nKV, self.hd
        x = self.embed[torch.tensor(ids)]  # (T, H)
        kv_len = pos0 + T
        mask = None
        if T > 1:
            mask = torch.full((T, kv_len), float("-inf")).triu(pos0 + 1)
        for li, w in enumerate(self.layers):
            qkv = self._norm(x, w["attn_norm"]) @ w["qkv"]  # (T, (nH + 2 nKV) hd)
            q = qkv[:, :nH * hd].view(T, nH, hd).transpose(0, 1)
            k = qkv[:, nH * hd:(nH + nKV) * hd].view(T, nKV, hd).transpose(0, 1)
            v = qkv[:, (nH + nKV) * hd:].view(T, nKV, hd).transpose(0, 1)
            self.k_cache[li, :, pos0:kv_len] = self._rope(k, pos0, T)
            self.v_cache[li, :, pos0:kv_len] = v
            q = self._rope(q, pos0, T).reshape(nKV, nH // nKV * T, hd)  # GQA: query groups share a KV head
            s = q @ self.k_cache[li, :, :kv_len].transpose(1, 2) / math.sqrt(hd)  # (nKV, g·T, kv)
            if mask is not None:
                s = s.view(nKV, nH // nKV, T, kv_len) + mask
                s = s.view(nKV, nH // nKV * T, kv_len)
            a = torch.softmax(s, -1) @ self.v_cache[li, :, :kv_len]  # (nKV, g·T, hd)
            a = a.view(nH, T, hd).transpose(0, 1).reshape(T, nH * hd)
            x = x + a @ w["o"]
            gu = self._norm(x, w["mlp_norm"]) @ w["gate_up"]
            g, u = gu.chunk(2, -1)
            x = x + (torch.nn.functional.silu(g) * u) @ w["down"]
        return self._norm(x[-1], self.final_norm) @ self.lm_head_t

    def generate(self, prompt, n):
        logits = self.forward(prompt, 0)
        out = []
        pos = len(prompt)
        for _ in range(n):
            t = int(torch.argmax(logits))
            out.append(t)
            if len(out) == n:
                break
            logits = self.forward([t], pos)
            pos += 1
        return out


def check_reference(model, model_dir):
    path = os.path.join(model_dir, "reference.json")
    if not os.path.exists(path):
        return "no reference.json"
    with open(path) as f:
        ref = json.load(f)
    ok = 0
    for case in ref["cases"]:
        want = case.get("greedy_48")
        if not want:
            continue
        got = model.generate(case["input_ids"], len(want))
        if got != want:
            first = next(i for i in range(len(want)) if got[i] != want[i])
            sys.exit(f"error: {model_dir}: greedy tokens differ from reference.json at step {first}")
        ok += 1
    return f"greedy_48 identical to reference.json on {ok} cases"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", metavar="MODEL_DIR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--prefill-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-check", action="store_true", help="skip the reference.json greedy check")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rows = []
    print(f"pytorch {torch.__version__} eager, CPU, {torch.get_num_threads()} threads, f32, batch 1, "
          "static KV cache, greedy")
    print("| model | prefill tok/s (P) | decode tok/s (N) | check |")
    print("|---|---|---|---|")
    for d in a.models:
        if not os.path.exists(os.path.join(d, "config.json")):
            sys.exit(f"error: {d}: no config.json (expected a model directory)")
        m = Llama(d, max(a.prefill_tokens, 16) + a.decode_tokens + 64)
        with torch.inference_mode():
            check = "skipped" if a.no_check else check_reference(m, d)
            V = m.embed.shape[0]
            prompt = [(i * 7919 + 13) % V for i in range(a.prefill_tokens)]
            m.forward(prompt, 0)  # warm-up
            pre, dec = [], []
            for _ in range(a.reps):
                t = time.perf_counter()
                m.forward(prompt, 0)
                pre.append(a.prefill_tokens / (time.perf_counter() - t))
            m.generate(prompt[:8], 8)  # warm-up
            for _ in range(a.reps):
                t = time.perf_counter()
                toks = m.generate(prompt[:8], a.decode_tokens)
                dec.append(len(toks) / (time.perf_counter() - t))
        row = {"model": os.path.basename(os.path.normpath(d)), "prefill_tokens": a.prefill_tokens,
               "prefill_tokens_per_second": statistics.median(pre), "decode_tokens": a.decode_tokens,
               "decode_tokens_per_second": statistics.median(dec), "threads": a.threads, "check": check}
        rows.append(row)
        print(f"| {row['model']} | {row['prefill_tokens_per_second']:.0f} ({a.prefill_tokens}) | "
              f"{row['decode_tokens_per_second']:.1f} ({a.decode_tokens}) | {check} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"pytorch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
