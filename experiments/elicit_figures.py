"""The figures and report summary of the features and steer stages, from features/*.json and
steering/*.json; each figure NAME.png with NAME.json beside it.

    patching       base -> variant activation patching: follow rate and accuracy (held-out)
                   per patched site (component@layer) and position role
    steering       gap recovered vs strength per intervention, controls dashed, the patching
                   oracle as a line
    reason_latents the top ReasonScore latents of each model's SAE
    chosen_latents base vs variant mean activation of the chosen latents (the base's top
                   ReasonScore latents and the most-grown ones) by token role
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.figures import annotated_heatmap, model_colors, new_figure, render_figure, save_figure


def patching_data(features: dict[str, dict]) -> dict:
    out = {}
    for v, f in features.items():
        if "patching" not in f:
            continue
        t = f["patching"]["base_to_variant"]
        sites, roles = list(t), list(next(iter(t.values())))
        out[v] = {"sites": sites, "roles": roles,
                  "follow": [[t[s][r]["heldout"]["follow"]["value"] for r in roles] for s in sites],
                  "accuracy": [[t[s][r]["heldout"]["accuracy"]["value"] for r in roles] for s in sites],
                  "unpatched": {m: f["behaviour"][m]["heldout"] for m in ("base", "variant")}}
    return {"title": "Activation patching base -> variant (held-out): the variant run with the base's "
                     "activation at one site and position role", "variants": out}


def steering_data(steering: dict[str, dict]) -> dict:
    out = {}
    for v, s in steering.items():
        curves = {}
        for name, entries in s["sweeps"].items():
            if not entries:
                continue
            curves[name] = {"strength": [e["strength"] for e in entries],
                            **{f"{m}_{st}": [e["gap_recovered"][st][m]["value"] for e in entries]
                               for st in entries[0]["gap_recovered"] for m in ("follow", "accuracy")}}
        single = {name: {f"{m}_{st}": x["gap_recovered"][st][m]["value"] for st in x["gap_recovered"]
                         for m in ("follow", "accuracy")} for name, x in s["single"].items()}
        out[v] = {"curves": curves, "single": single}
    return {"title": "Steering the variant at the answer position: gap recovered "
                     "(m_steered - m_variant) / (m_base - m_variant), held-out", "variants": out}


def reason_latents_data(features: dict[str, dict]) -> dict:
    return {"title": "Top ReasonScore latents of each model's SAE",
            "models_top": {m: [(t["latent"], t["value"]) for t in f["reason_score"]["top"][:10]]
                           for m, f in features.items()}}


def chosen_latents_data(features: dict[str, dict]) -> dict:
    return {"title": "Chosen latents (base's top ReasonScore, then most grown at the answer position): mean "
                     "activation by token role, base vs variant, read through the base's SAE",
            "variants": {v: f["chosen_by_role"] for v, f in features.items() if "chosen_by_role" in f}}


def _draw_chosen(d: dict, axes) -> None:
    v, c = next(iter(d["variants"].items()))
    colors = model_colors(d["models"])
    x = np.arange(len(c["latents"]))
    for ax, (k, role) in zip(axes, enumerate(c["roles"])):
        ax.bar(x - 0.2, c["base"][k], 0.4, label="base", color=colors["base"])
        ax.bar(x + 0.2, c["variant"][k], 0.4, label=v, color=colors[v])
        ax.set_xticks(x, [f"#{i}" for i in c["latents"]], rotation=90, fontsize=6)
        ax.set_title(f"{role} tokens")
        ax.set_ylabel("mean activation")
        ax.legend()


def _draw_patching(d: dict, axes) -> None:
    v, p = next(iter(d["variants"].items()))
    for ax, key in zip(axes, ("follow", "accuracy")):
        annotated_heatmap(ax, np.array(p[key], dtype=float), p["roles"], p["sites"], fontsize=6)
        ax.set_title(f"{v}: {key} (unpatched {p['unpatched']['variant'][key]['value']:.2f}, "
                     f"base {p['unpatched']['base'][key]['value']:.2f})")


def _draw_steering(d: dict, axes) -> None:
    v, s = next(iter(d["variants"].items()))
    pairs = [("ablate_grown_latents", "ablate_random_latents", "latents ablated"),
             ("mean_difference", "random_direction", "alpha"),
             ("clamp_reason_latents", "clamp_random_latents", "clamp strength (x max activation)")]
    for ax, (main, control, xlabel) in zip(axes, pairs):
        for name, style in ((main, "-"), (control, "--")):
            if name not in s["curves"]:
                continue
            c = s["curves"][name]
            for metric, color in (("follow", "C0"), ("accuracy", "C1")):
                y = [np.nan if x is None else x for x in c[f"{metric}_heldout"]]
                ax.plot(c["strength"], y, style, marker="o", color=color, label=f"{name}: {metric}")
        oracle = s["single"]["patching_oracle"]["follow_heldout"]
        if oracle is not None:
            ax.axhline(oracle, color="grey", lw=0.8, ls=":", label="patching oracle (follow)")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("gap recovered")
        ax.legend(fontsize=6)


def _draw_reason(d: dict, axes) -> None:
    ax = axes[0]
    colors = model_colors(d["models"])
    for m, top in d["models_top"].items():
        ax.plot(range(1, len(top) + 1), [t[1] for t in top], marker="o", label=m, color=colors[m])
    ax.set_xlabel("rank")
    ax.set_ylabel("ReasonScore")
    ax.legend()


ELICIT_FIGURES = {"patching": (patching_data, _draw_patching, 2, "features"),
                  "steering": (steering_data, _draw_steering, 3, "steering"),
                  "reason_latents": (reason_latents_data, _draw_reason, 1, "features"),
                  "chosen_latents": (chosen_latents_data, _draw_chosen, 3, "features")}


def elicit_figure(name: str, data: dict):
    _, draw_fn, panels, _ = ELICIT_FIGURES[name]
    fig, axes = new_figure(panels, height=1.1)
    draw_fn(data, axes)
    fig.suptitle(data["title"])
    return fig


def draw_elicit_figures(features: dict, steering: dict, out: Path) -> list[Path]:
    written = []
    for name, (data_fn, _, _, source) in ELICIT_FIGURES.items():
        data = data_fn(features if source == "features" else steering) | {"models": list(features)}
        if not data.get("variants", data.get("models_top")):
            continue  # nothing patched or steered in this run
        written += save_figure(render_figure(name, data), data, out, name)
    return written


def elicit_summary(features: dict, steering: dict, validation: dict | None) -> dict:
    """The report's numbers: per steered variant, the best of each intervention (by held-out
    follow gap recovered) with its controls and the oracle, and the validation in the base."""
    out = {"variants": {}, "validation": None, "latents": {}}
    for m, f in features.items():
        vp, causal = f["value_probes"], f.get("causal", {})
        out["latents"][m] = {
            "reason_top": f["reason_score"]["top"][:5], "value_top": vp["top"][:5],
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
                              "gap_recovered": {k: v for k, v in e["gap_recovered"].items() if k != "choose"}}
        best |= {name: {"strength": None, **x} for name, x in s["single"].items()}
        out["variants"][v] = {"reference": s["reference"], "best": best}
    if validation:
        out["validation"] = {"clean": validation["clean"], "rows": [
            {k: r[k] for k in ("n", "ablate_reason", "ablate_random", "ablate_causal") if k in r} for r in validation["rows"]]}
    return out
