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

with the gap recovered (`features.stats.gap_recovered`: base, variant and steered on one
resample of the problems) of every metric, on the evaluation sets and on the choice set,
where the best strength is picked.

Each control is also drawn `null_draws` times per strength (other random latents of matched
frequency, other random directions, seeded), on the held-out set only: every intervention
entry carries `null`, that distribution of the control's gap recovered (median, 95% band)
with the intervention's percentile and one-sided p-value in it. The per-problem data behind
the intervals is dropped before writing (`strip_problems`).
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
from features.stats import gap_recovered, null_summary
from features.steer import (ablate_latents, add_direction, check_hook, clamp_latents,
                            mean_difference)
from sae.load import load_sae_folder

SWEEPS = ("ablate_grown_latents", "ablate_random_latents", "mean_difference", "random_direction",
          "clamp_reason_latents", "clamp_random_latents")
"""The swept interventions, in the order of a steering record."""
GAP_METRICS = ("accuracy", "follow", "aoc", "abstention_recall", "ood_accuracy")
"""The probe metrics whose gap recovered is recorded."""
NULL_METRICS = ("follow", "accuracy")
"""The held-out metrics whose gap recovered each null distribution records."""
CONTROL_OF = {"ablate_grown_latents": "ablate_random_latents", "mean_difference": "random_direction",
              "clamp_reason_latents": "clamp_random_latents"}
"""Each swept intervention and the control whose draws make its null distribution."""


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
    null = _null_gaps(runner, hook, probe, ref)
    reason = [t["latent"] for t in base_feats["reason_score"]["top"]][:cfg.clamp_latents]
    done = (_clamp_sweeps(sae, steered, null, reason, acts[0], cfg, seed)
            | _ablate_sweeps(sae, steered, null, grown, freq, cfg, seed) | _direction_sweeps(steered, null, vec, cfg, seed))
    sweeps = {name: done[name] for name in SWEEPS}
    single = {"base_sae_reconstruction": steered(lambda x, hook: sae.decode(sae.encode(x)).to(x.dtype)),
              "patching_oracle": {name: item_metrics(patched_last_logits(ft, base, items.ids, hook,
                                                                         items.role_masks("last")), items)
                                  for name, items in probe.sets.items()}}
    _add_gaps(sweeps, single, ref, choose_ref)
    _add_nulls(sweeps)
    return strip_problems({"variant": v, "hook": hook, "positions": "last (answer prefix)", "sae": run.relative(run.sae("base")),
            "reference": ref, "choose_reference": choose_ref, "sweeps": sweeps, "single": single,
            "latents_grown": len(grown), "control_frequencies": {
                "chosen": [float(freq[e["latents"]].mean()) for e in sweeps["ablate_grown_latents"]],
                "control": [float(freq[e["latents"]].mean()) for e in sweeps["ablate_random_latents"]]},
            "mean_difference_norm": float(vec.norm()), "null_draws": cfg.null_draws,
            "tried": {name: len(sweeps[name]) for name in CONTROL_OF}})


def strip_problems(obj):
    """`obj` without the per-problem sums and counts of its summaries (`by_problem`): they
    served the paired intervals and would make a steering record hundreds of MB."""
    if isinstance(obj, dict):
        return {k: strip_problems(v) for k, v in obj.items() if k != "by_problem"}
    if isinstance(obj, list):
        return [strip_problems(x) for x in obj]
    return obj


def _null_gaps(runner: ProbeRunner, hook: str, probe: Probe, ref: dict):
    """`null(fns)`: the held-out gap recovered (NULL_METRICS) of each control hook function in
    `fns`, one draw each, against the references `ref`."""
    held = {"heldout": probe.sets["heldout"]}
    base, var = ref["base"]["heldout"], ref["variant"]["heldout"]

    def null(fns) -> list[dict]:
        out = []
        for fn in fns:
            m = runner.evaluate([(hook, fn)], held)["heldout"]
            out.append({k: gap_recovered(m[k], base[k], var[k])["value"] for k in NULL_METRICS})
        return out

    return null


def _add_nulls(sweeps: dict) -> None:
    """Each intervention entry's `null`: per metric, its held-out gap recovered read against
    the draws of its control at the same strength (`_draws`, removed from the entry)."""
    for main in CONTROL_OF:
        for e in sweeps[main]:
            draws = e.pop("_draws")
            e["null"] = {k: null_summary(e["gap_recovered"]["heldout"][k]["value"] if k in e["gap_recovered"]["heldout"]
                                         else None, [d[k] for d in draws]) for k in NULL_METRICS}


def _steering(runner: ProbeRunner, hook: str, choose):
    """`steered(fn)`: metrics with the hook function `fn` at `hook` on the answer prefix."""

    def steered(fn) -> dict:
        """Metrics on the evaluation sets, and on the choice set (which picks the best strength)."""
        hooks = [(hook, fn)]  # the runner runs the answer prefix only: fn sees that position
        return runner.evaluate(hooks) | {"choose": runner.evaluate(hooks, {"choose": choose})["choose"]}

    return steered


def _draw_seed(seed: int, d: int) -> int:
    """The seed of a control's d-th null draw (draw 0 is the control entry's own)."""
    return seed + 1000 * d


def _clamp_sweeps(sae, steered, null, reason: list[int], acts_base: torch.Tensor, cfg: ElicitConfig,
                  seed: int) -> dict:
    """Galichin et al.'s clamp: the base's top ReasonScore latents set to strength x their
    largest activation at the answer position (choice set, `acts_base`), against random
    latents matched in firing frequency clamped the same way (and `cfg.null_draws` more)."""
    code_b = sae.encode(acts_base.to(sae.W_enc.device)).float().cpu()
    peak, base_freq = code_b.amax(0), (code_b > 0).float().mean(0)
    controls = [matched_random_latents(base_freq, reason, _draw_seed(seed + 7, d), cfg.control_pool)
                for d in range(cfg.null_draws + 1)]
    clamp = lambda lat, st: clamp_latents(sae, lat, st * peak[lat].clamp_min(1e-3))  # noqa: E731  (silent: small)
    out = {"clamp_reason_latents": [], "clamp_random_latents": []}
    for st in cfg.clamp_strengths:
        out["clamp_reason_latents"].append({"strength": st, "latents": reason, "metrics": steered(clamp(reason, st)),
                                            "_draws": null([clamp(c, st) for c in controls[1:]])})
        out["clamp_random_latents"].append({"strength": st, "latents": controls[0],
                                            "metrics": steered(clamp(controls[0], st))})
    return out


def _ablate_sweeps(sae, steered, null, grown: torch.Tensor, freq: torch.Tensor, cfg: ElicitConfig,
                   seed: int) -> dict:
    """Ablating the n most-grown latents (n of `cfg.latent_counts` up to how many grew), against
    as many random latents matched in the variant's firing frequency `freq` (and
    `cfg.null_draws` more such draws)."""
    out = {"ablate_grown_latents": [], "ablate_random_latents": []}
    for n in [n for n in cfg.latent_counts if n <= len(grown)]:
        chosen = grown[:n].tolist()
        control = matched_random_latents(freq, chosen, seed + n, cfg.control_pool)
        draws = [matched_random_latents(freq, chosen, _draw_seed(seed + n, d), cfg.control_pool)
                 for d in range(1, cfg.null_draws + 1)]
        out["ablate_grown_latents"].append({"strength": n, "latents": chosen,
                                            "metrics": steered(ablate_latents(sae, chosen)),
                                            "_draws": null([ablate_latents(sae, c) for c in draws])})
        out["ablate_random_latents"].append({"strength": n, "latents": control,
                                             "metrics": steered(ablate_latents(sae, control))})
    return out


def _direction_sweeps(steered, null, vec: torch.Tensor, cfg: ElicitConfig, seed: int) -> dict:
    """Adding the difference-of-means vector x alpha, against a random direction of its norm
    (and `cfg.null_draws` more random directions)."""
    rand = random_direction_like(vec, seed)
    others = [random_direction_like(vec, _draw_seed(seed, d)) for d in range(1, cfg.null_draws + 1)]
    out = {"mean_difference": [], "random_direction": []}
    for a in cfg.alphas:
        out["mean_difference"].append({"strength": a, "metrics": steered(add_direction(vec, a)),
                                       "_draws": null([add_direction(r, a) for r in others])})
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
