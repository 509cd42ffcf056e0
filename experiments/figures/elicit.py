"""The figures of the features and steer stages, from features/*.json and steering/*.json.

    patching       base -> variant activation patching: follow rate and accuracy (held-out)
                   per patched site (component@layer) and position role; a row per variant
    steering       gap recovered vs strength per intervention, controls dashed, the patching
                   oracle as a line; a row per steered variant
    reason_latents the top ReasonScore latents of each model's SAE
    chosen_latents base vs variant mean activation of the chosen latents (the base's top
                   ReasonScore latents and the most-grown ones) by token role; a row per variant

`elicit_figures(features, steering) -> {name: data}` gives the data (with "models", the run's
models in order) of each one this run has data for (a run that patched or steered no
variant has only reason_latents), in the order of `ELICIT`. A figure of several variants is
one row of panels per variant, each row the size of a one-variant figure.
"""

from __future__ import annotations

import numpy as np

from experiments.figures.registry import figure
from experiments.figures.style import annotated_heatmap, model_colors, new_figure, new_grid
from features.fmt import fixed

ELICIT = ("patching", "steering", "reason_latents", "chosen_latents")
HEIGHT = 1.1
"""Panel heights per row."""


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
            if "null" in entries[0]:  # its control's draws: the 95% band of held-out follow gap recovered
                curves[name]["null_follow_band"] = [e["null"]["follow"]["band95"] for e in entries]
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


def elicit_figures(features: dict[str, dict], steering: dict[str, dict]) -> dict[str, dict]:
    """{name: data} of every features/steer figure this run has data for, in the order of
    `ELICIT` (none without variants or models to draw)."""
    models = {"models": list(features)}
    datas = {"patching": patching_data(features) | models, "steering": steering_data(steering) | models,
             "reason_latents": reason_latents_data(features) | models,
             "chosen_latents": chosen_latents_data(features) | models}
    return {name: d for name, d in datas.items() if d.get("variants", d.get("models_top"))}


def _per_variant(name: str, panels: int):
    """Register `draw(data, v, variant's data, row of axes, several)` as figure `name`: a row
    of `panels` panels per variant of data["variants"], the title above them all."""
    def wrap(draw):
        @figure(name)
        def make(d: dict):
            variants = d["variants"]
            fig, rows = new_grid(max(1, len(variants)), panels, height=HEIGHT)
            for axes, (v, x) in zip(rows, variants.items()):
                draw(d, v, x, axes, len(variants) > 1)
            fig.suptitle(d["title"])
            return fig
        return draw
    return wrap


@_per_variant("chosen_latents", 3)
def draw_chosen(d: dict, v: str, c: dict, axes, several: bool) -> None:
    colors = model_colors(d["models"])
    x = np.arange(len(c["latents"]))
    for ax, (k, role) in zip(axes, enumerate(c["roles"])):
        ax.bar(x - 0.2, c["base"][k], 0.4, label="base", color=colors["base"])
        ax.bar(x + 0.2, c["variant"][k], 0.4, label=v, color=colors[v])
        ax.set_xticks(x, [f"#{i}" for i in c["latents"]], rotation=90, fontsize=6)
        ax.set_title(f"{v}: {role} tokens" if several else f"{role} tokens")
        ax.set_ylabel("mean activation")
        ax.legend()


@_per_variant("patching", 2)
def draw_patching(d: dict, v: str, p: dict, axes, several: bool) -> None:
    for ax, key in zip(axes, ("follow", "accuracy")):
        annotated_heatmap(ax, np.array(p[key], dtype=float), p["roles"], p["sites"], fontsize=6)
        ax.set_title(f"{v}: {key} (unpatched {fixed(p['unpatched']['variant'][key]['value'], 2)}, "
                     f"base {fixed(p['unpatched']['base'][key]['value'], 2)})")


STEERING_PANELS = [("ablate_grown_latents", "ablate_random_latents", "latents ablated"),
                   ("mean_difference", "random_direction", "alpha"),
                   ("clamp_reason_latents", "clamp_random_latents", "clamp strength (x max activation)")]
"""Per panel: an intervention, its control (dashed), the x label."""


@_per_variant("steering", 3)
def draw_steering(d: dict, v: str, s: dict, axes, several: bool) -> None:
    for ax, (main, control, xlabel) in zip(axes, STEERING_PANELS):
        drawn = False
        for name, style in ((main, "-"), (control, "--")):
            if name not in s["curves"]:
                continue
            c = s["curves"][name]
            for metric, color in (("follow", "C0"), ("accuracy", "C1")):
                y = [np.nan if x is None else x for x in c[f"{metric}_heldout"]]
                drawn |= not np.isnan(y).all()
                ax.plot(c["strength"], y, style, marker="o", color=color, label=f"{name}: {metric}")
            band = c.get("null_follow_band")
            if band and any(b is not None for b in band):
                lo = [np.nan if b is None else b[0] for b in band]
                hi = [np.nan if b is None else b[1] for b in band]
                ax.fill_between(c["strength"], lo, hi, color="C0", alpha=0.15, lw=0,
                                label=f"null of {name} (95% of control draws, follow)")
        oracle = s["single"]["patching_oracle"]["follow_heldout"]
        if oracle is not None:
            ax.axhline(oracle, color="grey", lw=0.8, ls=":", label="patching oracle (follow)")
        ax.axhline(0, color="black", lw=0.5)
        if drawn:  # a variant with no gap to recover has no finite point: nothing to put on a log axis
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("gap recovered")
        if several:  # each row names its variant (one variant's figure has no panel titles)
            ax.set_title(v)
        ax.legend(fontsize=6)


@figure("reason_latents")
def draw_reason(d: dict):
    fig, (ax,) = new_figure(1, height=HEIGHT)
    colors = model_colors(d["models"])
    for m, top in d["models_top"].items():
        ax.plot(range(1, len(top) + 1), [t[1] for t in top], marker="o", label=m, color=colors[m])
    ax.set_xlabel("rank")
    ax.set_ylabel("ReasonScore")
    ax.legend()
    fig.suptitle(d["title"])
    return fig
