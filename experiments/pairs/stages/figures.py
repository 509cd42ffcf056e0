"""Which figures a pair run draws, and their data: behaviour and steering per model, and the
SAE figures the run has data for (transfer always; the frontier and the crosscoders' r when
the config asks for them), and one figure per literature finding its findings stage measured."""

from __future__ import annotations

import json

from experiments.rundir import RunDir


def figure_names(cfg) -> list[str]:
    from experiments.figures.pairs import PAIR

    from experiments.figures.sweeps import PAIR_FIGURE_OF

    sae = ["sae_frontier"] * bool(cfg.sae.frontier) + ["sae_transfer"] + ["crosscoder_r"] * bool(cfg.sae.crosscoder_variants)
    return [*PAIR, *sae, *(PAIR_FIGURE_OF[p] for p in cfg.findings.parts())]


def figure_data(run: RunDir, cfg) -> dict[str, dict]:
    from experiments.figures.pairs import pair_figures
    from experiments.figures.sae import sae_figures
    from experiments.pairs.stages.load import load_behavior

    behavior = {m: b["metrics"] for m, b in load_behavior(run, cfg).items()}
    steering = {v: json.loads(run.steering(v).read_text()) for v in cfg.models.variants}
    sae = sae_figures(json.loads(run.sae_eval.read_text()), cfg.model_names())
    names = figure_names(cfg)
    from experiments.figures.sweeps import pair_sweep_figures

    findings = {p: json.loads(run.finding(p).read_text()) for p in cfg.findings.parts()}
    return {**pair_figures(behavior, steering), **{n: d for n, d in sae.items() if n in names},
            **pair_sweep_figures(findings)}
