"""The report's summaries of the sae, features and steer stages' outputs (the `sae` and
`elicitation` sections of report.json).

    sae_summary(eval) -> dict                       from saes/eval.json
    elicit_summary(features, steering, validation) -> dict
        from features/<model>.json, steering/<variant>.json and steering/base-validation.json
        (validation None where the run has none)
"""

from __future__ import annotations

import numpy as np

from features.stats import holm

RECON_KEYS = ("explained_variance", "mse", "cosine", "l0", "dead_fraction", "dense_fraction")
"""The reconstruction metrics the report keeps of each SAE."""


def _source(r: dict) -> dict:
    """A trained SAE's architecture and width; a loaded one's source (release/id or folder)."""
    if "train" in r:
        return {"architecture": r["train"]["architecture"], "d_sae": r["train"]["d_sae"]}
    return {"architecture": "pretrained", "d_sae": r["source"]["d_sae"], "pretrained": r["source"]["pretrained"]}


def sae_summary(ev: dict) -> dict:
    """What the report shows: per model its SAE's held-out and spliced metrics, the frontier,
    the transfer matrix (explained variance) and the crosscoders' latent counts."""
    def recon(r):
        return {k: r[k] for k in (*RECON_KEYS, "n")}

    return {"hook": ev["hook"],
            "saes": {m: {**_source(r), "heldout": recon(r["heldout"]), "spliced": r.get("spliced")}
                     for m, r in ev["saes"].items()},
            "frontier": {a: recon(r["heldout"]) for a, r in ev["frontier"].items()},
            "transfer": {s: {c: recon(v) for c, v in row.items()} for s, row in ev["transfer"].items()},
            "crosscoders": {v: {k: c[k] for k in ("counts", "train", "heldout", "warning") if k in c}
                            for v, c in ev["crosscoders"].items()}}


def elicit_summary(features: dict, steering: dict, validation: dict | None) -> dict:
    """The report's numbers: per steered variant, the best of each intervention (by held-out
    follow gap recovered) with its controls and the oracle, and the validation in the base."""
    out = {"variants": {}, "validation": None, "latents": {}}
    for m, f in features.items():
        vp, causal = f["value_probes"], f.get("causal", {})
        out["latents"][m] = {
            "reason_top": [t | {"explanation": _explanation(f, t["latent"])} for t in f["reason_score"]["top"][:5]],
            "value_top": vp["top"][:5],
            "sparse_probe": vp["sparse_probe"], "dense_probe": vp["dense_probe"], "value_positions": vp["n"],
            "causal": {site: c["exact"][:3] for site, c in causal.items()}}
        if "decoder_matching" in f:  # do the base's reasoning latents survive in this variant?
            cos = [t["cosine"] for t in f["decoder_matching"]["reason_latents_of_base"]]
            out["latents"][m]["survival"] = {
                "n": len(cos), "median_match_cosine": float(np.median(cos)),
                "median_cosine_all": f["decoder_matching"]["median_cosine"],
                "crosscoder": {k: f["crosscoder_reason_score"].get(k) for k in (
                    "classes_of_top", "median_r_of_top", "classes_of_all", "median_r_of_alive")}
                if "crosscoder_reason_score" in f else None}
    for v, s in steering.items():
        best = {}
        for name, entries in s["sweeps"].items():
            # the strength is chosen on the choice set (other held-out problems), then reported on
            # the evaluation sets, so the interval is not that of a maximum over strengths
            scored = [e for e in entries if e["gap_recovered"]["choose"]["follow"]["value"] is not None]
            if scored:
                e = max(scored, key=lambda e: e["gap_recovered"]["choose"]["follow"]["value"])
                best[name] = {"strength": e["strength"], "metrics": e["metrics"],
                              "gap_recovered": {k: v for k, v in e["gap_recovered"].items() if k != "choose"},
                              **({"null": e["null"]} if "null" in e else {})}
        best |= {name: {"strength": None, **x} for name, x in s["single"].items()}
        tried = s.get("tried", {})
        out["variants"][v] = {"reference": s["reference"], "best": best, "tried": tried,
                              "combinations_tried": sum(tried.values()), "null_draws": s.get("null_draws", 0)}
    out["multiplicity"] = multiplicity(out["variants"])
    if validation:
        out["validation"] = {"clean": validation["clean"], "rows": [
            {k: r[k] for k in ("n", "ablate_reason", "ablate_random", "ablate_causal") if k in r} for r in validation["rows"]]}
    return out


def multiplicity(variants: dict) -> dict:
    """The headline comparisons (each intervention at its chosen strength against its null,
    held-out follow) with Holm-adjusted p-values over all of them. With N null draws the
    smallest p-value is 1/(N + 1), so Holm over m comparisons can reach 0.05 only when
    N + 1 >= 20 m: below that every comparison is labelled exploratory, whatever it shows."""
    raw = {f"{v}/{name}": b["null"]["follow"]["p_value"] for v, r in variants.items()
           for name, b in r["best"].items() if "null" in b}
    adjusted = holm(raw)
    draws = max((r.get("null_draws", 0) for r in variants.values()), default=0)
    powered = bool(raw) and draws + 1 >= 20 * len(raw)
    return {"comparisons": len(raw), "combinations_tried": sum(r.get("combinations_tried", 0) for r in variants.values()),
            "p_values": raw, "holm": adjusted, "null_draws": draws,
            "label": "confirmatory (Holm)" if powered else "exploratory",
            "significant": sorted(k for k, p in adjusted.items() if p is not None and p < 0.05) if powered else []}


def _value(summary) -> float | None:
    return None if summary is None else summary.get("value")


def _chosen(r: dict, dictionary: dict) -> dict | None:
    """An intervention record at its chosen size (None if no size was eligible), its first
    latents explained from `dictionary`'s explanations."""
    gap = lambda e, st="heldout": e["metrics"][st]["follow"]["gap_recovered"]  # noqa: E731
    e = next((e for e in r["entries"] if e["n"] == r["chosen"]), None)
    return None if e is None else {
        "n": e["n"], "follow_gap": gap(e), "trained_follow_gap": gap(e, "trained") if "trained" in e["metrics"] else None,
        "accuracy": {st: e["metrics"][st]["accuracy"]["value"] for st in e["metrics"]},
        "follow": {st: e["metrics"][st]["follow"]["value"] for st in e["metrics"]},
        "null": r.get("null"), "explained": [_explained(dictionary, i) for i in e["latents"][:3]]}


def _explanation(record: dict, latent: int) -> str | None:
    """A latent's ground-truth explanation text in a record with `explanations` (None: the
    record has none; "too rare to explain" where the latent fired too rarely)."""
    ex = record.get("explanations")
    if not ex:
        return None
    return ex[latent]["text"] if latent < len(ex) and ex[latent] else "too rare to explain"


def _explained(site: dict, latent: int) -> str:
    """A latent with its ground-truth explanation (held-out precision and recall)."""
    return f"{latent}: {_explanation(site, latent) or 'not explained'}"


def elicit_sites_summary(records: dict[str, dict]) -> dict:
    """The report's ladder per elicited variant, from elicit/<variant>.json: per site the SAE
    quality, the oracle, the latent-patching ladder (held-out follow gap recovered against
    N), and each base-free intervention at its chosen size with its null; the headline."""
    from experiments.elicit.sites_stage import INTERVENTIONS

    out = {}
    for v, rec in records.items():
        sites = {}
        for site, s in rec["sites"].items():
            gap = lambda e, st="heldout": e["metrics"][st]["follow"]["gap_recovered"]  # noqa: E731
            oracle = _value(gap(s["oracle"]))
            ladder = [(e["n"], _value(gap(e))) for e in s["ladder"]]
            # how sparse the change is: the fewest latents whose patch reaches 80% of the oracle's recovery
            enough = [n for n, g in ladder if g is not None and oracle and g >= 0.8 * oracle]
            chosen = {name: _chosen(s[name], s) for name in INTERVENTIONS}
            sites[site] = {"quality": rec["quality"][site], "oracle": oracle, "ladder": ladder,
                           "n_for_80pct_of_oracle": enough[0] if enough else None,
                           "error_only": _value(gap(s["error_only"])),
                           "all_latents_and_error": _value(gap(s["all_latents_and_error"])),
                           "interventions": chosen}
        ref = rec["reference"]
        # the crosscoders' and transcoders' interventions, labelled by where they act
        others = [(f"crosscoder@{site}", "ablate_finetuned_latents", _chosen(c["ablate_finetuned_latents"], c))
                  for site, c in rec.get("crosscoders", {}).items()]
        others += [(k, "ablate_shortcut_latents", _chosen(t["ablate_shortcut_latents"], t))
                   for k, t in rec.get("transcoder_sites", {}).items()]
        crosscoders = {site: {"dead_fraction": c["dead_fraction"], "dead_at_answer_prefix": c["dead_at_answer_prefix"],
                              "l0": c["heldout"]["l0"], "counts": c["counts"], "rows": c["heldout"]["n"],
                              "explained_variance": {m: c["heldout"][f"explained_variance_{m}"] for m in ("base", v)},
                              "candidates": c["ablate_finetuned_latents"]["candidates"],
                              "finetuned_only": c["ablate_finetuned_latents"]["finetuned_only"]}
                       for site, c in rec.get("crosscoders", {}).items()}
        out[v] = {"tokens": rec["training_set"]["tokens"], "sites": sites, "headline": rec["headline"],
                  "transcoders": rec.get("transcoders", {}), "other_interventions": others, "crosscoders": crosscoders,
                  "reference": {m: {st: {k: ref[m][st][k]["value"] for k in ("follow", "accuracy")} for st in ref[m]}
                                for m in ref}}
    return out
