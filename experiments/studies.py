"""The studies saelab runs, and which one a config or a run directory belongs to.

    organisms   `experiments.organisms.study`: tiny models trained here on arithmetic
    pairs       `experiments.pairs.study`: a real base model and fine-tuned variants on text
    findings    `experiments.organisms.findings_study`: the organisms' behavioural findings
                alone (a config with `study: findings`)

A study module declares CONFIG (its run config class) and STAGES (its stage list); the
engine (`experiments.engine.runner.run_stages`) runs any of them. A config with a `models`
section is a pair run's, one with `study: findings` a findings run's, any other an organisms
run's.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.rundir import RunDir

STUDIES = {"organisms": "experiments.organisms.study", "pairs": "experiments.pairs.study",
           "findings": "experiments.organisms.findings_study"}


@dataclass
class Study:
    name: str
    """organisms or pairs."""
    config: type
    """Its run config class."""
    stages: list
    """Its stages, in order."""


def study(name: str) -> Study:
    module = importlib.import_module(STUDIES[name])
    return Study(name, module.CONFIG, module.STAGES)


def study_of(data: dict) -> Study:
    """The study a config (as a mapping) belongs to."""
    if "models" in data:
        return study("pairs")
    return study("findings" if data.get("study") == "findings" else "organisms")


def load_any_config(name_or_path: str | Path, seed: int | None = None) -> tuple[Any, Path, Study]:
    """(config, its path, its study) of a built-in config name or a YAML file; `seed` overrides."""
    from experiments.config import from_dict, load_yaml, resolve_config_path

    path = resolve_config_path(str(name_or_path))
    data = load_yaml(path)
    if seed is not None:
        data["seed"] = seed
    s = study_of(data)
    return from_dict(s.config, data, str(path)), path, s


def open_run(path: str | Path) -> tuple[RunDir, Any, Study]:
    """(run directory, its config, its study) of a directory `saelab run` wrote; one error
    naming the command that makes one otherwise."""
    run = RunDir(path)
    if not run.config.is_file():
        raise FileNotFoundError(f"{run.root} is not a run directory (no {run.config.name}); create one with "
                                f"saelab run --config quick --out {run.root}")
    cfg, _, s = load_any_config(run.config)
    return run, cfg, s
