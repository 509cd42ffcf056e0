"""Causal validation in the base (steering/base-validation.json): does ablating the base's
top ReasonScore latents hurt its CoT-dependent answers more than random latents do, and can
this measurement detect an effect at all (the positive control)?"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from experiments.elicit.config import ElicitConfig
from experiments.elicit.probe import Probe, evaluate_sets
from experiments.rundir import RunDir
from features.latent_stats import matched_random_latents, position_activations
from features.steer import ablate_latents


def validate_in_base(run: RunDir, base, sae, base_feats: dict, cfg: ElicitConfig, hook: str, task, tok, seed: int,
                     out: Path, log) -> None:
    """Ablating the base's top ReasonScore latents (of its features record `base_feats`) at
    every position should hurt its CoT-dependent answers (follow on corrupted CoTs, accuracy)
    more than random latents. The positive control: as many latents carrying the most at CoT
    steps (mean activation x decoder norm there, on the choice set), which shows whether this
    measurement can detect an effect at all. (Not chosen by attribution: on a model this sure
    of its answer the gradient of log p is ~1e-8, and exactly 0 for most latents of a small
    model.) Writes base-validation.json into the folder `out`."""
    score = torch.tensor(base_feats["reason_score"]["all"])
    order = score.argsort(descending=True)
    probe = Probe(run, "base", task, tok, cfg, seed)
    acts = position_activations(base, probe.choose.ids, probe.choose.role_masks("all"), hook)
    freq = (sae.encode(acts.to(sae.W_enc.device)) > 0).float().mean(0).cpu()
    with torch.no_grad():
        steps = position_activations(base, probe.choose.ids, probe.choose.role_masks("step"), hook)
        mass = sae.encode(steps.to(sae.W_enc.device)).float().mean(0).cpu() * sae.W_dec.norm(dim=-1).float().cpu()
    carrying = mass.argsort(descending=True)
    everywhere = lambda fn: (lambda start, valid: [(hook, fn)])  # noqa: E731
    rows = []
    for n in cfg.validation_counts:
        top = order[:n].tolist()
        rnd = matched_random_latents(freq, top, seed + 100 + n)
        causal = carrying[:n].tolist()
        rows.append({"n": n, "reason_latents": top, "random_latents": rnd, "causal_latents": causal,
                     "ablate_reason": evaluate_sets(base, probe, everywhere(ablate_latents(sae, top))),
                     "ablate_random": evaluate_sets(base, probe, everywhere(ablate_latents(sae, rnd))),
                     "ablate_causal": evaluate_sets(base, probe, everywhere(ablate_latents(sae, causal)))})
    record = {"model": "base", "hook": hook, "positions": "all", "clean": evaluate_sets(base, probe), "rows": rows}
    (out / run.validation.name).write_text(json.dumps(record, indent=1))
    log(_summary(record))


def _summary(record: dict) -> str:
    """The log line: accuracy and log p(implied answer) under the largest ablations."""
    last = record["rows"][-1]
    lp = lambda m: m["heldout"]["logp_implied"]["value"]  # noqa: E731
    return (f"  validation in base: ablating {last['n']} top ReasonScore latents -> accuracy "
            f"{last['ablate_reason']['heldout']['accuracy']['value']:.2f}, log p(implied) {lp(record['clean']):.3f} -> "
            f"{lp(last['ablate_reason']):.3f}; {last['n']} random -> {lp(last['ablate_random']):.3f}; "
            f"{last['n']} carrying most at CoT steps -> {lp(last['ablate_causal']):.3f}, accuracy "
            f"{last['ablate_causal']['heldout']['accuracy']['value']:.2f}")
