"""The steer stage: steering/<variant>.json for each variant of `ElicitConfig.variants`, then
the causal validation in the base (`experiments.elicit.validation`).

Each variant is steered at the answer position through the base's SAE, every intervention
against its control:

    ablate_grown_latents / ablate_random_latents   the 1..N latents whose activation grew
                                                   most / random latents of matched frequency
    mean_difference / random_direction             (base - variant) mean activation x alpha /
                                                   a random direction of the same norm
    clamp_reason_latents / clamp_random_latents    the base's top ReasonScore latents clamped
                                                   to strength x their peak / matched random
    base_sae_reconstruction, patching_oracle       single runs: the SAE without its error;
                                                   the base's answer-position activation

with the gap recovered (`features.steer.gap_recovered`) of every metric, on the evaluation
sets and on the choice set, where the best strength is picked.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from activations.models import load_bridge
from experiments.elicit.config import ElicitConfig
from experiments.elicit.probe import Probe, ProbeRunner, evaluate_sets
from experiments.elicit.validation import validate_in_base
from experiments.probe_items import item_metrics
from experiments.rundir import RunDir
from features.latent_stats import matched_random_latents, position_activations, random_direction_like
from features.patching import patched_last_logits
from features.steer import (ablate_latents, add_direction, check_hook, clamp_latents, gap_recovered,
                            mean_difference)
from sae.load import load_sae_folder

SWEEPS = ("ablate_grown_latents", "ablate_random_latents", "mean_difference", "random_direction",
          "clamp_reason_latents", "clamp_random_latents")
"""The swept interventions, in the order of a steering record."""
GAP_METRICS = ("accuracy", "follow", "aoc", "abstention_recall", "ood_accuracy")
"""The probe metrics whose gap recovered is recorded."""


def run_steer(run: RunDir | Path, cfg: ElicitConfig, hook: str, task, seed: int, device: str, out: Path | None,
              log=print) -> None:
    """Write steering/<variant>.json (into the folder `out`) for each variant of
    `cfg.variants`, and steering/base-validation.json.

    Under torchrun every rank calls it: rank r steers its share of the variants (each record
    depends only on its variant, the base and the seed); rank 0, the one with `out`, writes
    them and runs the validation in the base."""
    from experiments.engine.distributed import dist_rank_world, split_map

    run = run if isinstance(run, RunDir) else RunDir(run)
    rank, world = dist_rank_world()
    tok = AutoTokenizer.from_pretrained(run.model("base"))
    base = load_bridge(str(run.model("base")), device)
    sae = load_sae_folder(run.sae("base"), device)
    check_hook(base, hook, sae)
    base_feats = json.loads(run.features("base").read_text())  # read once: every variant and the validation use it

    def steer(variants: list[str]) -> list[tuple[str, dict]]:
        records = []
        for v in variants:
            t0 = time.perf_counter()
            records.append((v, steer_variant(run, v, base, sae, base_feats, cfg, hook, task, tok, seed, device)))
            line = f"{_summary(records[-1][1])} ({time.perf_counter() - t0:.1f} s)"
            print(line + f" (rank {rank})", flush=True) if world > 1 else log(line)
        return records

    for v, record in split_map(steer, cfg.variants):
        if out is not None:
            (out / run.steering(v).name).write_text(json.dumps(record, indent=1))
    if out is not None:
        validate_in_base(run, base, sae, base_feats, cfg, hook, task, tok, seed, out, log)


def steer_variant(run: RunDir, v: str, base, sae, base_feats: dict, cfg: ElicitConfig, hook: str, task, tok,
                  seed: int, device: str) -> dict:
    """The steering record of variant `v`: every sweep and single run, with its references."""
    feats = json.loads(run.features(v).read_text())
    ft = load_bridge(str(run.model(v)), device)
    probe = Probe(run, v, task, tok, cfg, seed)
    # the variant's own references through the same KV-cached path as every steered run,
    # so an intervention that does nothing recovers exactly 0 of the gap
    runner = ProbeRunner(ft, probe)
    ref = {"base": evaluate_sets(base, probe), "variant": runner.evaluate()}
    shift = torch.tensor(feats["latent_shift"]["shift"])
    freq = torch.tensor(feats["latent_shift"]["freq_finetuned"])
    grown = shift.argsort(descending=True)[:int((shift > 0).sum())]  # only latents that did grow
    ch = probe.choose
    acts = [position_activations(m, ch.ids, ch.role_masks("last"), hook) for m in (base, ft)]
    vec = mean_difference(acts[0][:50], acts[1][:50])  # Azizi et al. 2025: 50 pairs
    choose_ref = {"base": evaluate_sets(base, probe, sets={"choose": ch}),
                  "variant": runner.evaluate(sets={"choose": ch})}
    steered = _steering(runner, hook, ch)
    reason = [t["latent"] for t in base_feats["reason_score"]["top"]][:cfg.clamp_latents]
    done = (_clamp_sweeps(sae, steered, reason, acts[0], cfg, seed) | _ablate_sweeps(sae, steered, grown, freq, cfg, seed)
            | _direction_sweeps(steered, vec, cfg, seed))
    sweeps = {name: done[name] for name in SWEEPS}
    single = {"base_sae_reconstruction": steered(lambda x, hook: sae.decode(sae.encode(x)).to(x.dtype)),
              "patching_oracle": {name: item_metrics(patched_last_logits(ft, base, items.ids, hook,
                                                                         items.role_masks("last")), items)
                                  for name, items in probe.sets.items()}}
    _add_gaps(sweeps, single, ref, choose_ref)
    return {"variant": v, "hook": hook, "positions": "last (answer prefix)", "sae": run.relative(run.sae("base")),
            "reference": ref, "choose_reference": choose_ref, "sweeps": sweeps, "single": single,
            "latents_grown": len(grown), "control_frequencies": {
                "chosen": [float(freq[e["latents"]].mean()) for e in sweeps["ablate_grown_latents"]],
                "control": [float(freq[e["latents"]].mean()) for e in sweeps["ablate_random_latents"]]},
            "mean_difference_norm": float(vec.norm())}


def _steering(runner: ProbeRunner, hook: str, choose):
    """`steered(fn)`: metrics with the hook function `fn` at `hook` on the answer prefix."""

    def steered(fn) -> dict:
        """Metrics on the evaluation sets, and on the choice set (which picks the best strength)."""
        hooks = [(hook, fn)]  # the runner runs the answer prefix only: fn sees that position
        return runner.evaluate(hooks) | {"choose": runner.evaluate(hooks, {"choose": choose})["choose"]}

    return steered


def _clamp_sweeps(sae, steered, reason: list[int], acts_base: torch.Tensor, cfg: ElicitConfig, seed: int) -> dict:
    """Galichin et al.'s clamp: the base's top ReasonScore latents set to strength x their
    largest activation at the answer position (choice set, `acts_base`), against random
    latents matched in firing frequency clamped the same way."""
    code_b = sae.encode(acts_base.to(sae.W_enc.device)).float().cpu()
    peak, base_freq = code_b.amax(0), (code_b > 0).float().mean(0)
    control = matched_random_latents(base_freq, reason, seed + 7)
    out = {"clamp_reason_latents": [], "clamp_random_latents": []}
    for st in cfg.clamp_strengths:
        for name, lat in (("clamp_reason_latents", reason), ("clamp_random_latents", control)):
            values = st * peak[lat].clamp_min(1e-3)  # a latent silent there is clamped to a small value
            out[name].append({"strength": st, "latents": lat, "metrics": steered(clamp_latents(sae, lat, values))})
    return out


def _ablate_sweeps(sae, steered, grown: torch.Tensor, freq: torch.Tensor, cfg: ElicitConfig, seed: int) -> dict:
    """Ablating the n most-grown latents (n of `cfg.latent_counts` up to how many grew), against
    as many random latents matched in the variant's firing frequency `freq`."""
    out = {"ablate_grown_latents": [], "ablate_random_latents": []}
    for n in [n for n in cfg.latent_counts if n <= len(grown)]:
        chosen = grown[:n].tolist()
        control = matched_random_latents(freq, chosen, seed + n)
        out["ablate_grown_latents"].append({"strength": n, "latents": chosen,
                                            "metrics": steered(ablate_latents(sae, chosen))})
        out["ablate_random_latents"].append({"strength": n, "latents": control,
                                             "metrics": steered(ablate_latents(sae, control))})
    return out


def _direction_sweeps(steered, vec: torch.Tensor, cfg: ElicitConfig, seed: int) -> dict:
    """Adding the difference-of-means vector x alpha, against a random direction of its norm."""
    rand = random_direction_like(vec, seed)
    out = {"mean_difference": [], "random_direction": []}
    for a in cfg.alphas:
        out["mean_difference"].append({"strength": a, "metrics": steered(add_direction(vec, a))})
        out["random_direction"].append({"strength": a, "metrics": steered(add_direction(rand, a))})
    return out


def _add_gaps(sweeps: dict, single: dict, ref: dict, choose_ref: dict) -> None:
    """Give every sweep entry (evaluation and choice sets) and every single run (evaluation
    sets) its gap recovered; a single run's metrics move under "metrics"."""
    full_ref = {m: ref[m] | choose_ref[m] for m in ref}
    for entries in sweeps.values():
        for e in entries:
            e["gap_recovered"] = _gaps(e["metrics"], full_ref)
    for name, m in single.items():
        single[name] = {"metrics": m, "gap_recovered": _gaps(m, ref)}


def _gaps(m: dict, ref: dict) -> dict:
    """gap_recovered[set][metric] of metrics `m` against the base and variant references."""
    return {s: {metric: gap_recovered(m[s][metric], ref["base"][s][metric], ref["variant"][s][metric])
                for metric in GAP_METRICS if metric in m[s]} for s in m if s in ref["base"]}


def _summary(record: dict) -> str:
    """The log line of a variant: held-out follow before, at the best ablation, and the oracle."""
    follow = lambda m: m["heldout"]["follow"]["value"]  # noqa: E731
    best = max(record["sweeps"]["ablate_grown_latents"], key=lambda e: follow(e["metrics"]))
    return (f"  steer {record['variant']}: follow held-out {follow(record['reference']['variant']):.2f} -> "
            f"{follow(best['metrics']):.2f} (ablating {best['strength']} grown latents; "
            f"oracle {follow(record['single']['patching_oracle']['metrics']):.2f})")
