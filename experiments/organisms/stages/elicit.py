"""The elicit stage (`experiments.elicit.sites_stage`): training caches and SAEs at every
elicitation site, the latent-patching ladder and the base-free interventions, into elicit/."""

from __future__ import annotations

from pathlib import Path

from experiments.rundir import SAE_FILES, RunDir


def elicit_outputs(run: RunDir, cfg) -> list[Path]:
    from activations.cache.writer import expand_hooks

    e = cfg.elicit
    if not e.variants:
        return []
    hooks = expand_hooks(e.sites, cfg.organisms.model.n_layers)
    models = (["base"] if e.train_base else []) + list(e.variants)  # the base's only with train_base
    saes = [run.elicit_sae(m, h) / f for m in models for h in hooks for f in SAE_FILES]
    saes += [run.elicit_sae(m, f"transcoder-{layer}") / f for m in models for layer in e.transcoders
             for f in SAE_FILES]
    return [run.elicit(v) for v in e.variants] + saes


def run_elicit(run: RunDir, cfg, force: bool) -> None:
    from activations.progress import log
    from experiments.elicit.sites_stage import run_elicit as elicit

    if cfg.elicit.variants:
        elicit(run, cfg, log)
