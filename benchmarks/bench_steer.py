"""Generation under a steering hook against generation without it, and batched against
one-by-one, measured side by side in one run on the default run's models.

    python benchmarks/bench_steer.py --run runs/default      # ~1 minute on 2 cores

Prints new tokens/s of greedy generation (the behaviour suite's CoT prompts, k=2) for:
  the bridge without hooks, with an SAE clamp hook (encode, clamp, decode, error kept) at
  every position, and with a vector-add hook; target: hooks <= 10% slower. And the same
  prompts generated one at a time vs in one batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/default", help="a run directory with models/ and saes/")
    ap.add_argument("--n", type=int, default=200, help="prompts")
    ap.add_argument("--reps", type=int, default=5, help="alternating repetitions")
    args = ap.parse_args()
    import torch
    from transformers import AutoTokenizer

    from activations.generate import generate_text
    from activations.models import load_bridge
    from experiments.behavior.core import max_cot_tokens
    from experiments.behavior.suite import distinct_problems
    from experiments.config import from_dict, load_yaml
    from experiments.runconfig import RunConfig
    from experiments.tasks import ArithmeticTask
    from features.steer import add_direction, clamp_latents
    from sae.load import load_sae_folder

    run = Path(args.run)
    cfg = from_dict(RunConfig, load_yaml(run / "config.yaml"), str(run / "config.yaml"))
    task = ArithmeticTask(cfg.task)
    tok = AutoTokenizer.from_pretrained(run / "models" / "base")
    model = load_bridge(str(run / "models" / "sft-noisy-trace"))
    sae = load_sae_folder(run / "saes" / "base")
    hook = cfg.sae.hook
    prompts = [ex.prompt for ex in distinct_problems(task, args.n, 2, 0)]
    budget = max_cot_tokens(task, 2)
    variants = {"no hook": [], "SAE clamp hook": [(hook, clamp_latents(sae, [0, 1, 2, 3], 1.0))],
                "vector-add hook": [(hook, add_direction(torch.ones(model.cfg.d_model), 0.1))]}
    rates = {name: [] for name in variants}
    for _ in range(args.reps):
        for name, hooks in variants.items():
            t = time.perf_counter()
            outs = generate_text(model, tok, prompts, budget, batch_size=256, fwd_hooks=hooks)
            rates[name].append(sum(len(tok(o, add_special_tokens=False)["input_ids"]) + 1 for o in outs)
                               / (time.perf_counter() - t))
    print(f"torch threads {torch.get_num_threads()}, {len(prompts)} prompts, budget {budget} tokens, "
          f"hook {hook}, {args.reps} alternating runs")
    base = statistics.median(rates["no hook"])
    for name, r in rates.items():
        print(f"  {name:16s} {statistics.median(r):8.0f} new tokens/s (runs {', '.join(f'{x:.0f}' for x in r)}); "
              f"time vs no hook {base / statistics.median(r):.3f}x (target <= 1.10)")
    one = prompts[:40]
    t = time.perf_counter()
    for p in one:
        generate_text(model, tok, [p], budget, fwd_hooks=variants["SAE clamp hook"])
    single = time.perf_counter() - t
    t = time.perf_counter()
    generate_text(model, tok, one, budget, fwd_hooks=variants["SAE clamp hook"])
    batched = time.perf_counter() - t
    print(f"  {len(one)} prompts with the clamp hook: one by one {single:.2f} s, one batch {batched:.2f} s "
          f"({single / batched:.1f}x faster batched)")


if __name__ == "__main__":
    main()
