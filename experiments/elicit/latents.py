"""The per-latent parts of a features/<model>.json record, each computed or formatted here:

    reason_score_record   ReasonScore of every latent (top ones with their group means)
    value_probe_record    latents that encode a step's value; sparse vs dense probe
    causal_record         attribution for every latent, exact ablation for the top ones
    shift_record          latent shift at the answer position, base -> variant
    matching_record       decoder matching of the base's reasoning latents in the variant
    crosscoder_reasoning  do the reasoning latents survive fine-tuning (crosscoder)?
    chosen_by_role        mean activation of chosen latents by token role
    ranked_table          every score per latent for the union of each score's top latents

Scores over all latents are stored to 6 significant digits (`sig`).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from activations.cache import open_cache
from experiments.elicit.config import ElicitConfig
from experiments.rundir import RunDir
from experiments.tasks import ROLES, SLOTS
from features.causal import ablation_effect, attribution
from features.latent_stats import group_means
from features.probes import value_probes
from features.reason_score import crosscoder_reason_scores
from sae.crosscoder import load_crosscoder
from sae.diff import CLASSES


def sig(x) -> float:
    """6 significant digits (not decimals: attributions are ~1e-8 and must keep their order)."""
    return float(f"{float(x):.6g}")


def top_latents(values: torch.Tensor, n: int, **extra) -> list[dict]:
    """The `n` latents of largest value, each with its value and the `extra` per-latent values."""
    order = values.argsort(descending=True)[:n]
    return [{"latent": int(i), "value": float(values[i]), **{k: float(v[i]) for k, v in extra.items()}} for i in order]


def reason_score_record(rs: dict, cfg: ElicitConfig) -> dict:
    """The record of `features.reason_score.reason_scores`' result `rs`."""
    return {"config": cfg.reason_score.__dict__, "groups": rs["groups"], "n_groups": rs["n_groups"],
            "n_reasoning": rs["n_reasoning"], "n_other": rs["n_other"], "n_ignored": rs["n_ignored"],
            "ignored_token_ids": rs["ignored_token_ids"],
            "top": top_latents(rs["score"], cfg.top, mu_reasoning=rs["mu_reasoning"], mu_other=rs["mu_other"]),
            "all": [sig(v) for v in rs["score"]]}


def value_probe_record(sae, run: RunDir, name: str, hook: str, cfg: ElicitConfig, seed: int) -> dict:
    """Latents that encode a step's value where the model must compute it (the `=` of each
    step, before the value is written), and sparse vs dense probe accuracy there."""
    with open_cache(run.cache(name)) as c:
        rows = (c.column("role") == ROLES.index("step")) & (c.column("slot") == SLOTS.index("eq")) & (
            c.column("value") >= 0)
        y = c.column("value")[rows]
        acts = c.activations(hook)[torch.from_numpy(rows)]
    with torch.no_grad():
        feats = sae.encode(acts.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
    vp = value_probes(feats, acts, y, cfg.probe_top, seed)
    return {"positions": "the '=' of every CoT step (value not yet written)", "n": int(rows.sum()),
            "auroc": [sig(a) for a in vp["auroc"]], "detects": vp["detects"].tolist(),
            "top": [{"latent": int(i), "auroc": float(vp["auroc"][i]), "value": int(vp["detects"][i])}
                    for i in vp["top"]],
            "sparse_probe": vp["sparse_probe"] | {"latents": cfg.probe_top}, "dense_probe": vp["dense_probe"]}


def causal_record(model, sae, hook: str, items, cfg: ElicitConfig) -> dict:
    """Per site (CoT-step positions; the answer-prefix position): attribution for every latent,
    exact ablation for the top candidates; target = the answer the CoT implies."""
    out = {}
    for site, role in (("steps", "step"), ("answer_position", "last")):
        masks = items.role_masks(role)
        attr = attribution(model, sae, hook, items.ids, masks, items.implied)
        cand = attr.argsort()[:cfg.causal_candidates].tolist()  # most negative: ablating hurts most
        exact = ablation_effect(model, sae, hook, items.ids, masks, items.implied, cand)
        out[site] = {"attribution": [sig(a) for a in attr],
                     "exact": [{"latent": i, "delta_logp": d, "attribution": float(attr[i])}
                               for i, d in sorted(exact.items(), key=lambda kv: kv[1])]}
    return out


def shift_record(sh: dict, n: int, read_by: str, cfg: ElicitConfig) -> dict:
    """The record of `features.latent_stats.latent_shift`'s result `sh` on `n` choice items,
    both models read by the SAE `read_by` (its folder in the run)."""
    means = {"mean_base": sh["mean_base"], "mean_finetuned": sh["mean_finetuned"]}
    return {"read_by": read_by, "positions": "last (answer prefix)", "n": n,
            "grown": top_latents(sh["shift"], cfg.top, **means),
            "shrunk": top_latents(-sh["shift"], cfg.top, **means),
            "shift": [sig(v) for v in sh["shift"]],
            "freq_finetuned": [sig(v) for v in sh["freq_finetuned"]]}


def matching_record(match: dict, base_score: torch.Tensor, cfg: ElicitConfig) -> dict:
    """The record of `features.latent_stats.decoder_matching`'s result `match`: the base's top
    ReasonScore latents (`base_score`) with their most similar variant latent."""
    return {"median_cosine": float(match["cosine"].median()),
            "same_index_median_cosine": float(match["same_index_cosine"].median()),
            "reason_latents_of_base": [{"latent": t["latent"], "match": int(match["match"][t["latent"]]),
                                        "cosine": float(match["cosine"][t["latent"]])}
                                       for t in top_latents(base_score, cfg.top)]}


def crosscoder_reasoning(run: RunDir, variant: str, hook: str, cfg: ElicitConfig, device: str) -> dict | None:
    """Do the reasoning latents survive fine-tuning? The crosscoder's top ReasonScore latents
    (scored on the base's tokens, reading both models) with their decoder norm difference
    Delta, class (Minder et al.'s, from Delta), relative decoder norm r and Latent Scaling ratios
    from the sae stage's diff.json; None without a crosscoder."""
    if not run.crosscoder_diff(variant).exists():
        return None
    cc = load_crosscoder(run.crosscoder(variant), device)
    rs = crosscoder_reason_scores(cc, run.cache("base"), run.cache(variant), hook, cfg.reason_score)
    table = json.loads(run.crosscoder_diff(variant).read_text())
    diff = {d["latent"]: d for d in table["latents"]}
    top = [t | {k: diff[t["latent"]][k] for k in ("delta", "r", "class", "rate", "nu_eps", "nu_rec")}
           for t in top_latents(rs["score"], cfg.top)]
    classes = [t["class"] for t in top]
    alive = [d for d in table["latents"] if d["class"] != "dead"]
    return {"crosscoder": run.relative(run.crosscoder(variant)), "top": top,
            "classes_of_top": {c: classes.count(c) for c in CLASSES},
            "median_delta_of_top": float(np.median([t["delta"] for t in top])),
            "median_r_of_top": float(np.median([t["r"] for t in top])),
            # the base rates the top latents are to be read against
            "classes_of_all": table["counts"],
            "median_delta_of_alive": float(np.median([d["delta"] for d in alive])),
            "median_r_of_alive": float(np.median([d["r"] for d in alive])),
            "all": [sig(v) for v in rs["score"]]}


def chosen_by_role(sae, run: RunDir, variant: str, hook: str, latents: list[int]) -> dict:
    """Mean activation of the chosen latents by token role in the base and in the variant,
    both read through the base's SAE, on the cached token set (same tokens for both)."""
    latents = list(dict.fromkeys(latents))
    out = {"latents": latents, "roles": list(ROLES[:3])}
    for key, model in (("base", "base"), ("variant", variant)):
        g = group_means(sae, run.cache(model), hook, "role", batch_size=8192)
        rows = {v: m for v, m in zip(g["values"], g["mean"])}
        out[key] = [[rows[k][i] for i in latents] for k in range(3)]  # (role, latent)
    return out


def _text(explanations: list | None, latent: int) -> str | None:
    """A latent's ground-truth explanation text (None: not explained, or too rare)."""
    e = explanations[latent] if explanations and latent < len(explanations) else None
    return e["text"] if e else None


def ranked_table(record: dict) -> dict:
    """Every score per latent for the union of each score's top latents, and the chosen
    reasoning latents (top ReasonScore), value latents (top AUROC) and causal latents (most
    harmful exact ablation on CoT steps)."""
    rs = record["reason_score"]["all"]
    au = record["value_probes"]["auroc"]
    causal = record.get("causal", {})
    exact = {site: {e["latent"]: e["delta_logp"] for e in c["exact"]} for site, c in causal.items()}
    chosen = {"reasoning": [t["latent"] for t in record["reason_score"]["top"]],
              "value": [t["latent"] for t in record["value_probes"]["top"]],
              "causal": [e["latent"] for e in causal.get("steps", {}).get("exact", []) if e["delta_logp"] < 0]}
    ids = sorted(set().union(*chosen.values()), key=lambda i: -rs[i])
    rows = [{"latent": i, "reason_score": rs[i], "value_auroc": au[i],
             "value": record["value_probes"]["detects"][i],
             **{f"attribution_{s}": c["attribution"][i] for s, c in causal.items()},
             **{f"ablation_{s}": e.get(i) for s, e in exact.items()},
             "explanation": _text(record.get("explanations"), i)} for i in ids]
    return {"chosen": chosen, "rows": rows}
