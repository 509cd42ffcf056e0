"""The steer stage (`experiments.elicit.steer_stage`): the steering sweep with its controls
for every steered variant, and the causal validation in the base, into steering/."""

from __future__ import annotations

from pathlib import Path

from experiments.rundir import RunDir


def steer_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.steering(v) for v in cfg.features.variants] + [run.validation]


def run_steer(run: RunDir, cfg, force: bool) -> None:
    from activations.atomic import replace_dir, temp_dir
    from activations.progress import log
    from experiments.elicit.steer_stage import run_steer as steer
    from experiments.tasks import ArithmeticTask

    from experiments.engine.distributed import dist_rank_world

    # every rank runs it under torchrun (each steers its share of the variants); rank 0 writes
    tmp = temp_dir(run.steering_dir) if dist_rank_world()[0] == 0 else None
    steer(run, cfg.features, cfg.sae.hook, ArithmeticTask(cfg.task), cfg.seed, cfg.device, tmp, log=log)
    if tmp is not None:
        replace_dir(tmp, run.steering_dir)
