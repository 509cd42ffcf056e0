"""Shared fixtures: offline, seeded, and one quick organisms run per session."""

from __future__ import annotations

import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """`saelab run --config quick` once per session: (run dir, {model: behaviour metrics})."""
    from experiments.engine.runner import run_stages
    from experiments.organisms.stages.load import load_behavior
    from experiments.organisms.study import STAGES
    from experiments.rundir import RunDir
    from experiments.runconfig import load_run_config

    cfg, _ = load_run_config("quick")
    out = tmp_path_factory.mktemp("quick") / "run"
    run_stages(cfg, out, STAGES, log=lambda *a: None)
    return out, load_behavior(RunDir(out), cfg)
