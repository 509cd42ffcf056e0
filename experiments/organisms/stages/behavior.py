"""The behaviour stage: the arithmetic behavioural suite on every organism, into
behavior/<name>.json (accuracy, faithfulness tests, InfoGain, abstention)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from experiments.rundir import RunDir


def behavior_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.behavior(name) for name in cfg.model_names()]


def load_behavior(run: RunDir, cfg) -> dict[str, dict]:
    """{model: its behaviour metrics} of a finished behaviour stage."""
    return {name: json.loads(run.behavior(name).read_text())["metrics"] for name in cfg.model_names()}


def run_behavior(run: RunDir, cfg, force: bool) -> None:
    from activations.atomic import replace_dir, temp_dir
    from activations.progress import log
    from experiments.behavior.model_eval import evaluate_model
    from experiments.tasks import ArithmeticTask

    task = ArithmeticTask(cfg.task)
    ref = cfg.behavior.reference
    tmp = temp_dir(run.behaviors)
    for name in cfg.model_names():
        t0 = time.perf_counter()
        reference = None if name == ref else str(run.model(ref))
        metrics = evaluate_model(str(run.model(name)), task, cfg.behavior, cfg.seed, cfg.device,
                                 reference=reference, desc=f"behavior {name}")
        record = {"variant": name, "model": run.relative(run.model(name)),
                  "reference": None if name == ref else run.relative(run.model(ref)), "seed": cfg.seed,
                  "metrics": metrics}
        (tmp / run.behavior(name).name).write_text(json.dumps(record, indent=1))
        acc = metrics["accuracy"]
        log(f"  behavior {name}: {time.perf_counter() - t0:.1f} s, accuracy "
            + " ".join(f"k{k}={c['value']:.2f}" for k, c in acc.items()))
    replace_dir(tmp, run.behaviors)
