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
    from experiments.figures.findings import finding_names
    from experiments.figures.sae import SAE

    findings = finding_names(cfg.model_names(), cfg.behavior)
    if cfg.study == "findings":  # behaviour alone: no SAE or steering figures
        return [*BEHAVIOUR, *findings]
    return [*BEHAVIOUR, *SAE, *elicit_names(cfg), *findings]


def findings_data(run: RunDir, cfg) -> dict[str, dict]:
    """The findings figures this run draws, and their data."""
    from experiments.figures.findings import findings_figures
    from experiments.organisms.stages.load import load_behavior

    names = set(figure_names(cfg))
    results = load_behavior(run, cfg)
    ref = cfg.behavior.reference  # first: the relative changes are against it
    data = findings_figures({ref: results[ref], **results}, max(cfg.organisms.base.ks))
    return {n: d for n, d in data.items() if n in names}


def figure_data(run: RunDir, cfg) -> dict[str, dict]:
    from experiments.figures.behaviour import behaviour_figures
    from experiments.figures.elicit import elicit_figures
    from experiments.figures.sae import sae_figures
    from experiments.organisms.stages.load import load_behavior, load_elicit

    behaviour = behaviour_figures(load_behavior(run, cfg), cfg.behavior.faithfulness_ks[0])
    if cfg.study == "findings":
        return {**behaviour, **findings_data(run, cfg)}
    features, steering, _ = load_elicit(run, cfg)
    return {**behaviour, **findings_data(run, cfg),
            **sae_figures(json.loads(run.sae_eval.read_text()), cfg.model_names()),
            **elicit_figures(features, steering)}
