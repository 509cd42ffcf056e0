"""Greedy generation inside the TransformerBridge's hooks against plain HF `generate` on the
same batches, on a real model: tokens/s of each and their ratio, measured in one run.

    saelab get-model smollm2-135m-instruct --out models/smollm2-135m-instruct
    python benchmarks/bench_generate.py --model models/smollm2-135m-instruct

Conditions, interleaved, median of `--repeats`:
  hf            AutoModelForCausalLM.generate (SDPA attention, transformers' default)
  bridge        activations.generate.generate_text on the bridge, no hooks
  bridge+hook   the same with a no-op hook on one layer's residual stream (what steering adds)
Target: bridge+hook / hf >= 0.9. Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

TARGET = 0.9


def main() -> int:
    import torch
    from transformers import AutoModelForCausalLM

    from activations.generate import generate_text
    from activations.models import load_bridge, load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model folder (saelab get-model)")
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--new_tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tok = load_tokenizer(a.model)
    prompts = [f"Question: Ava has {3 + i} apples and buys {i + 2} more. How many apples does she have?\nAnswer:"
               for i in range(a.prompts)]
    hf = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    bridge = load_bridge(a.model)
    layer = bridge.cfg.n_layers // 2
    hook = [(f"blocks.{layer}.hook_resid_post", lambda x, hook: None)]
    runs = {"hf": lambda: generate_text(hf, tok, prompts, a.new_tokens),
            "bridge": lambda: generate_text(bridge, tok, prompts, a.new_tokens),
            "bridge+hook": lambda: generate_text(bridge, tok, prompts, a.new_tokens, fwd_hooks=hook)}
    texts = {k: f() for k, f in runs.items()}  # warm-up, and the texts must agree
    if len(set(map(tuple, texts.values()))) != 1:
        print("warning: the conditions generated different texts", file=sys.stderr)
    n_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts["hf"])
    times = {k: [] for k in runs}
    for _ in range(a.repeats):
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    speed = {k: n_tokens / statistics.median(v) for k, v in times.items()}
    for k, v in speed.items():
        print(f"{k:12s} {v:7.1f} new tokens/s  ({a.prompts} prompts x {a.new_tokens} tokens, median of {a.repeats})")
    ratio = speed["bridge+hook"] / speed["hf"]
    print(f"ratio bridge+hook / hf = {ratio:.2f} (target >= {TARGET}); bridge / hf = {speed['bridge'] / speed['hf']:.2f}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
