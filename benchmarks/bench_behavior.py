"""Time the behavioural suite on one model and the generation it rests on.

1. The whole suite (`saelab behavior`) on the base and on the main organism (with the base
   as reference) at the config's sample sizes; target on 2 CPU cores: <= 30 s per model.
2. Greedy generation throughput (new tokens/s): the HF model, the TransformerBridge
   without hooks, and the bridge with a no-op hook on every layer's residual stream;
   target: the hooks cost <= 10% over the same bridge without them (the bridge's own
   overhead over plain HF is printed too). Runs are interleaved and the median of `--repeats` taken.

    python benchmarks/bench_behavior.py --run runs/default --config default
    python benchmarks/bench_behavior.py --run runs/quick --config quick

The run directory must hold trained organisms (`make demo`, or
`saelab run --config quick --out runs/quick --until organisms`). Run nothing else heavy meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

BUDGET_S = 30.0
HOOK_BUDGET = 0.10


def time_suite(run: Path, config: str, variant: str) -> float:
    from experiments.behavior.model_eval import evaluate_model
    from experiments.runconfig import load_run_config
    from experiments.tasks import ArithmeticTask

    cfg, _ = load_run_config(config)
    ref = None if variant == cfg.behavior.reference else str(run / "models" / cfg.behavior.reference)
    t0 = time.perf_counter()
    evaluate_model(str(run / "models" / variant), ArithmeticTask(cfg.task), cfg.behavior, cfg.seed,
                   reference=ref, desc=f"bench {variant}")
    return time.perf_counter() - t0


def generation_throughput(run: Path, config: str, repeats: int) -> dict[str, float]:
    """Median new tokens/s of greedy CoT generation on held-out prompts, per path."""
    from activations.generate import generate_text
    from activations.models import load_bridge, load_hf
    from experiments.behavior.core import max_cot_tokens
    from experiments.runconfig import load_run_config
    from experiments.tasks import ArithmeticTask

    cfg, _ = load_run_config(config)
    task = ArithmeticTask(cfg.task)
    k = max(cfg.behavior.faithfulness_ks)
    prompts = [ex.prompt for ex in task.sample(1024, k, "eval", cfg.seed, unique=False)]
    path = str(run / "models" / "base")
    model, tok = load_hf(path)
    bridge = load_bridge(path)
    noop = [(f"blocks.{layer}.hook_resid_post", lambda x, hook: x) for layer in range(bridge.cfg.n_layers)]
    paths = {"hf": (model, ()), "bridge": (bridge, ()), "bridge + no-op hooks": (bridge, noop)}
    speeds: dict[str, list[float]] = {name: [] for name in paths}
    budget = max_cot_tokens(task, k)
    outputs = {}
    for _ in range(repeats):
        for name, (m, hooks) in paths.items():
            t0 = time.perf_counter()
            outs = generate_text(m, tok, prompts, budget, batch_size=cfg.behavior.batch_size, fwd_hooks=hooks)
            dt = time.perf_counter() - t0
            n_new = sum(len(tok(o, add_special_tokens=False)["input_ids"]) + 1 for o in outs)  # + EOS
            speeds[name].append(n_new / dt)
            outputs[name] = outs
    if len({tuple(o) for o in outputs.values()}) != 1:
        sys.exit("error: the three generation paths disagree; see tests/test_generate.py")
    return {name: statistics.median(v) for name, v in speeds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/default", help="run directory with trained organisms")
    ap.add_argument("--config", default="default", help="config the run was built with")
    ap.add_argument("--variant", default="sft-noisy-trace", help="the second model to time (besides base)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    run = Path(args.run)
    if not (run / "models" / "base" / "saelab.json").is_file():
        sys.exit(f"error: no trained organisms in {run}; run `make demo` or "
                 f"`saelab run --config {args.config} --out {run} --until organisms` first")
    import torch

    print(f"run {run}, config {args.config}, torch threads {torch.get_num_threads()}")
    for variant in ("base", args.variant):
        t = time_suite(run, args.config, variant)
        print(f"behaviour suite, {variant:<16} {t:6.1f} s; budget {BUDGET_S:.0f} s; ratio {t / BUDGET_S:.2f}")
    speeds = generation_throughput(run, args.config, args.repeats)
    for name, s in speeds.items():
        print(f"generation, {name:<22} {s:9.0f} new tokens/s")
    hook = speeds["bridge"] / speeds["bridge + no-op hooks"] - 1
    bridge = speeds["hf"] / speeds["bridge"] - 1
    print(f"no-op hooks cost {100 * hook:+.1f}% time per token over the same bridge without hooks "
          f"(target <= {100 * HOOK_BUDGET:.0f}%); ratio {hook / HOOK_BUDGET:.2f}")
    print(f"the bridge itself costs {100 * bridge:+.1f}% over plain HF generation (the suite uses plain HF "
          "when no hooks are given)")


if __name__ == "__main__":
    main()
