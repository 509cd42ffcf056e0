"""The features stage (`experiments.elicit.features_stage`): latent scores of every model's
SAE, latent shifts, activation patching, into features/<name>.json."""

from __future__ import annotations

from pathlib import Path

from experiments.rundir import RunDir


def feature_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.features(m) for m in cfg.model_names()]


def run_features(run: RunDir, cfg, force: bool) -> None:
    """Every rank runs it under torchrun (each scores its share of the models); rank 0 writes."""
    from activations.atomic import replace_dir, temp_dir
    from activations.progress import log
    from experiments.elicit.features_stage import run_features as features
    from experiments.engine.distributed import dist_rank_world
    from experiments.tasks import ArithmeticTask

    tmp = temp_dir(run.features_dir) if dist_rank_world()[0] == 0 else None
    features(run, cfg.model_names(), cfg.features, cfg.sae.hook, ArithmeticTask(cfg.task), cfg.seed, cfg.device,
             tmp, log=log)
    if tmp is not None:
        replace_dir(tmp, run.features_dir)
