"""The behaviour stage: the arithmetic behavioural suite on every organism, into
behavior/<name>.json (accuracy, faithfulness tests, InfoGain, abstention)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from experiments.rundir import RunDir


def behavior_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.behavior(name) for name in cfg.model_names()]


def run_behavior(run: RunDir, cfg, force: bool) -> None:
    """Every rank runs it under torchrun: rank r evaluates its share of the models (each
    model's evaluation is seeded on its own, so the split changes no number); rank 0 writes."""
    from activations.atomic import replace_dir, temp_dir
    from experiments.engine.distributed import dist_rank_world, split_map
    from experiments.tasks import ArithmeticTask

    task = ArithmeticTask(cfg.task)
    ref = cfg.behavior.reference
    rank, world = dist_rank_world()

    def evaluate(names: list[str]) -> list[dict]:
        from experiments.behavior.model_eval import evaluate_model

        out = []
        for name in names:
            t0 = time.perf_counter()
            reference = None if name == ref else str(run.model(ref))
            metrics = evaluate_model(str(run.model(name)), task, cfg.behavior, cfg.seed, cfg.device,
                                     reference=reference, desc=f"behavior {name}", name=name)
            out.append({"variant": name, "model": run.relative(run.model(name)),
                        "reference": None if name == ref else run.relative(run.model(ref)), "seed": cfg.seed,
                        "metrics": metrics})
            # every rank says what it evaluated
            print(f"  behavior {name}: {time.perf_counter() - t0:.1f} s, accuracy "
                  + " ".join(f"k{k}={c['value']:.2f}" for k, c in metrics["accuracy"].items())
                  + (f" (rank {rank})" if world > 1 else ""), flush=True)
        return out

    records = split_map(evaluate, cfg.model_names())
    if rank == 0:
        tmp = temp_dir(run.behaviors)
        for record in records:
            (tmp / run.behavior(record["variant"]).name).write_text(json.dumps(record, indent=1))
        replace_dir(tmp, run.behaviors)
