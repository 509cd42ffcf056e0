"""The features stage: features/<model>.json for every model of the run.

Every model: ReasonScore, value probes and ground-truth explanations (`explain_site`, on its
cache's labels) of its own SAE, and (base and each variant of
`ElicitConfig.variants`) causal scores on the choice set, with the ranked table. Each variant
also: the latent shift at the answer position and decoder matching against the base, the
crosscoder's reasoning latents (where the sae stage trained one), mean activation of the
chosen latents by role, the probe behaviour of both models and the patching table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from activations.models import load_bridge
from experiments.elicit.config import ElicitConfig
from experiments.elicit.latents import (causal_record, chosen_by_role, crosscoder_reasoning, matching_record,
                                        ranked_table, reason_score_record, shift_record, value_probe_record)
from experiments.elicit.patching import patching_table
from experiments.elicit.probe import Probe, evaluate_sets
from experiments.elicit.site_data import explain_site
from experiments.rundir import RunDir
from features.latent_stats import decoder_matching, latent_shift, position_activations
from features.reason_score import reason_scores
from sae.load import load_sae_folder


def run_features(run: RunDir | Path, models: list[str], cfg: ElicitConfig, hook: str, task, seed: int, device: str,
                 out: Path | None, log=print) -> None:
    """Write features/<model>.json (into the folder `out`) for every model (ReasonScore), and
    for each variant of `cfg.variants` the latent shift, decoder matching and patching tables.
    The base must come first in `models`: its scores are reused for every variant.

    Under torchrun every rank calls it: rank r scores its share of the models (each record
    depends only on its model, the base and the seed) and rank 0, the one with `out`, writes."""
    from experiments.engine.distributed import dist_rank_world, split_map

    run = run if isinstance(run, RunDir) else RunDir(run)
    rank, world = dist_rank_world()

    def score(names: list[str]) -> list[tuple[str, dict]]:
        if not names:
            return []
        tok = AutoTokenizer.from_pretrained(run.model("base"))
        base = load_bridge(str(run.model("base")), device)
        base_sae = load_sae_folder(run.sae("base"), device)
        base_score = None
        records = []
        for name in names:
            t0 = time.perf_counter()
            sae = load_sae_folder(run.sae(name), device)
            rs = reason_scores(sae, run.cache(name), hook, cfg.reason_score)
            if name == "base":  # the base's scores are reused for every variant's decoder matching
                base_score = rs["score"]
            elif base_score is None and name in cfg.variants:  # another rank scores the base itself
                base_score = reason_scores(base_sae, run.cache("base"), hook, cfg.reason_score)["score"]
            record = {"model": name, "hook": hook, "sae": run.relative(run.sae(name)),
                      "reason_score": reason_score_record(rs, cfg)}
            record["value_probes"] = value_probe_record(sae, run, name, hook, cfg, seed)
            # ground truth for every latent: the label predicate that best predicts where it fires
            record["explanations"] = explain_site(sae, run.cache(name), hook, tok)
            if name == "base" or name in cfg.variants:
                model = base if name == "base" else load_bridge(str(run.model(name)), device)
                probe = Probe(run, name, task, tok, cfg, seed)  # built once, reused below for variants
                record["causal"] = causal_record(model, sae, hook, probe.choose, cfg)
            record["table"] = ranked_table(record)
            if name in cfg.variants:  # its model loaded, and its probe items built, for the causal scores above
                record |= _variant_records(run, name, base, model, base_sae, sae, base_score, probe, cfg, hook, device)
            records.append((name, record))
            line = f"  features {name}: {time.perf_counter() - t0:.1f} s"
            print(line + f" (rank {rank})", flush=True) if world > 1 else log(line)
        return records

    for name, record in split_map(score, models):
        if out is not None:
            (out / run.features(name).name).write_text(json.dumps(record, indent=1))


def _variant_records(run: RunDir, name: str, base, ft, base_sae, sae, base_score: torch.Tensor, probe: Probe,
                     cfg: ElicitConfig, hook: str, device: str) -> dict:
    """What a variant's record has beyond a model's: how it differs from the base."""
    ch = probe.choose
    acts = [position_activations(m, ch.ids, ch.role_masks("last"), hook) for m in (base, ft)]
    sh = latent_shift(base_sae, *acts)
    match = decoder_matching(base_sae, sae)
    out = {"latent_shift": shift_record(sh, len(ch), run.relative(run.sae("base")), cfg),
           "decoder_matching": matching_record(match, base_score, cfg)}
    cc = crosscoder_reasoning(run, name, hook, cfg, device)
    if cc is not None:
        out["crosscoder_reason_score"] = cc
    out["chosen_by_role"] = chosen_by_role(
        base_sae, run, name, hook, [t["latent"] for t in out["decoder_matching"]["reason_latents_of_base"][:8]]
        + [t["latent"] for t in out["latent_shift"]["grown"][:8]])
    out["behaviour"] = {"base": evaluate_sets(base, probe), "variant": evaluate_sets(ft, probe)}
    out["patching"] = patching_table(base, ft, probe, base.cfg.n_layers, cfg.patch_roles)
    return out
