"""The organisms stage: train (or reuse) every model into models/<name>/."""

from __future__ import annotations

from pathlib import Path

from experiments.rundir import RunDir


def organism_outputs(run: RunDir, cfg) -> list[Path]:
    """What a finished organisms stage leaves: weights and saelab.json of every model, and
    the fixed training set of variants trained on one."""
    files = run.organism_files("base")
    for v in cfg.organisms.parsed_variants():
        files += run.organism_files(v.name)
        if v.cfg.n_problems is not None:
            files.append(run.model(v.name) / "train_problems.json")
    return files


def run_organisms(run: RunDir, cfg, force: bool) -> None:
    from experiments.organisms.build import build_organisms

    # The run's config.yaml has been checked (or --overwrite given): rebuild what differs.
    build_organisms(cfg.organisms, cfg.task, cfg.seed, cfg.device, run.root, overwrite=True, retrain=force)
