"""Throughput of the model-pair pipeline's heavy parts on a random-weight model of a real
size, and the tiny-architecture pipeline end to end: the GPU check of docs/gpu.md.

  1. pipeline   `saelab tiny-pair` + `saelab run --config pair-tiny` on --device (wall time)
  2. caching    tokens/s of `write_cache` (3 residual hooks) on a random-weight Llama
                (--layers x --d-model, vocab 32k), weights float32 vs bfloat16, measured
                in the same run: the bf16 / fp32 ratio is printed
  3. SAE        rows/s of SAELens' trainer (TopK, 16x, batch 4096) on that cache, without and
                with bf16 autocast: the autocast / fp32 ratio is printed
  Peak memory: torch.cuda.max_memory_allocated per part on GPU; peak RSS on CPU.

    python benchmarks/bench_gpu.py --device cuda                  # 12 layers, d 768: minutes on one GPU
    python benchmarks/bench_gpu.py --device cpu --layers 4 --d-model 256 --sequences 64 --sae-steps 20

Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_memory(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        gib = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
        return f"{gib:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process peak so far)"


def pipeline(device: str, tmp: Path) -> float:
    """Wall seconds of the tiny pair pipeline on `device` (a fresh process, as users run it)."""
    import yaml

    subprocess.run([sys.executable, "-m", "experiments.cli", "tiny-pair", "--out", str(tmp / "tiny")], check=True,
                   cwd=ROOT, capture_output=True)
    cfg = yaml.safe_load((ROOT / "experiments/configs/pair-tiny.yaml").read_text())
    cfg["device"] = device
    cfg["models"] = {"base": {"path": str(tmp / "tiny/base")}, "variants": {"perturbed": {"path": str(tmp / "tiny/perturbed")}}}
    (tmp / "pair.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "experiments.cli", "run", "--config", str(tmp / "pair.yaml"), "--out",
                           str(tmp / "pair-run")], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"pair pipeline failed on {device}:\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def random_llama(path: Path, layers: int, d_model: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from experiments.pairs.tiny import tiny_tokenizer

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=d_model, intermediate_size=4 * d_model, num_hidden_layers=layers,
                      num_attention_heads=max(1, d_model // 64), num_key_value_heads=max(1, d_model // 64),
                      max_position_embeddings=4096)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)  # unused: the benchmark feeds random token ids


def caching(path: Path, out: Path, dtype: str, device: str, ids, layers: int) -> tuple[float, str]:
    import numpy as np
    import torch

    from activations.cache import CacheWriteConfig, write_cache
    from activations.models import ModelSpec, load_bridge

    model = load_bridge(ModelSpec(str(path), dtype=dtype, device=device))
    hooks = [f"blocks.{l}.hook_resid_post" for l in sorted({layers // 4, layers // 2, layers - 1})]
    cfg = CacheWriteConfig(hooks=hooks, dtype="bfloat16", shard_sequences=64, batch_size=16)
    labels = {"role": [np.zeros(len(x), np.int16) for x in ids]}
    with torch.no_grad():  # warm-up (kernels, allocator) outside the timing
        model(torch.as_tensor(np.stack(ids[:4])).to(device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    write_cache(model, ids, labels, out, cfg, {"model": str(path)}, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    del model
    return sum(len(x) for x in ids) / seconds, peak_memory(device)


def sae_training(cache: Path, hook: str, device: str, steps: int, autocast: bool, out: Path) -> tuple[float, str]:
    import torch

    from sae.config import SAETrainConfig
    from sae.train import train_sae

    cfg = SAETrainConfig(architecture="topk", expansion=16, k=64, lr=3e-4, steps=steps, batch_size=4096,
                         buffer_rows=262_144, norm_batches=5, checkpoints=0, device=device, autocast=autocast)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_sae(cache, hook, dataclasses.replace(cfg, steps=2, norm_batches=1), out.with_name(out.name + "-warmup"))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_sae(cache, hook, cfg, out)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    # the timing includes the norm estimate, buffer fill and export, as a user's run does
    return steps * cfg.batch_size / (time.perf_counter() - t0), peak_memory(device)


def main() -> None:
    import numpy as np
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--sequences", type=int, default=512)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--sae-steps", type=int, default=200)
    ap.add_argument("--json", help="also write the results to this JSON file")
    a = ap.parse_args()
    card = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {card}; torch {torch.__version__}")
    result: dict = {"device": card, "args": vars(a)}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result["tiny_pipeline_s"] = pipeline(a.device, tmp)
        print(f"tiny pair pipeline (pair-tiny, qwen2): {result['tiny_pipeline_s']:.1f} s")
        random_llama(tmp / "llama", a.layers, a.d_model)
        g = np.random.default_rng(0)
        ids = [g.integers(0, 32000, a.seq_len) for _ in range(a.sequences)]
        n_params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(
            tmp / "llama").parameters())
        print(f"random Llama: {a.layers} layers, d_model {a.d_model}, {n_params / 1e6:.0f}M parameters; "
              f"{a.sequences} x {a.seq_len} tokens")
        for dtype in ("float32", "bfloat16"):
            tps, mem = caching(tmp / "llama", tmp / f"cache-{dtype}", dtype, a.device, ids, a.layers)
            result[f"cache_tokens_per_s_{dtype}"] = tps
            print(f"  caching, {dtype} weights, bf16 bits: {tps:,.0f} tokens/s; {mem}")
        print(f"  bf16 / fp32 caching speed: {result['cache_tokens_per_s_bfloat16'] / result['cache_tokens_per_s_float32']:.2f}x")
        hook = f"blocks.{a.layers // 2}.hook_resid_post"
        for autocast in (False, True):
            rps, mem = sae_training(tmp / "cache-bfloat16", hook, a.device, a.sae_steps, autocast, tmp / f"sae-{autocast}")
            result[f"sae_rows_per_s_autocast_{autocast}"] = rps
            print(f"  SAE training (TopK 16x, d_sae {16 * a.d_model}, batch 4096), autocast {autocast}: "
                  f"{rps:,.0f} rows/s; {mem}")
        print(f"  autocast / fp32 SAE speed: "
              f"{result['sae_rows_per_s_autocast_True'] / result['sae_rows_per_s_autocast_False']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
