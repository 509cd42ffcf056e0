"""The features stage (`experiments.elicit.features_stage`): latent scores of every model's
SAE, latent shifts, activation patching, into features/<name>.json."""

from __future__ import annotations

from pathlib import Path

from experiments.rundir import RunDir


def feature_outputs(run: RunDir, cfg) -> list[Path]:
    return [run.features(m) for m in cfg.model_names()]


def run_features(run: RunDir, cfg, force: bool) -> None:
    from activations.atomic import replace_dir, temp_dir
    from activations.progress import log
    from experiments.elicit.features_stage import run_features as features
    from experiments.tasks import ArithmeticTask

    tmp = temp_dir(run.features_dir)
    features(run, cfg.model_names(), cfg.features, cfg.sae.hook, ArithmeticTask(cfg.task), cfg.seed, cfg.device,
             tmp, log=log)
    replace_dir(tmp, run.features_dir)
