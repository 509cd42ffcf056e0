"""Which figures an organisms run draws, and their data (behaviour, SAEs, features/steering)."""

from __future__ import annotations

import json

from experiments.rundir import RunDir


def elicit_names(cfg) -> list[str]:
    """The features/steer figures this run draws (patching and steering need a steered variant)."""
    from experiments.figures.elicit import ELICIT

    return [n for n in ELICIT if cfg.features.variants or n == "reason_latents"]


def figure_names(cfg) -> list[str]:
    from experiments.figures.behaviour import BEHAVIOUR
    from experiments.figures.sae import SAE

    return [*BEHAVIOUR, *SAE, *elicit_names(cfg)]


def figure_data(run: RunDir, cfg) -> dict[str, dict]:
    from experiments.figures.behaviour import behaviour_figures
    from experiments.figures.elicit import elicit_figures
    from experiments.figures.sae import sae_figures
    from experiments.organisms.stages.load import load_behavior, load_elicit

    features, steering, _ = load_elicit(run, cfg)
    return {**behaviour_figures(load_behavior(run, cfg), cfg.behavior.faithfulness_ks[0]),
            **sae_figures(json.loads(run.sae_eval.read_text()), cfg.model_names()),
            **elicit_figures(features, steering)}
