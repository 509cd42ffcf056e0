"""The SAE figures, from `saes/eval.json` (the sae stage).

    sae_frontier    held-out L0 vs explained variance of the base model's SAE per architecture
    sae_transfer    explained variance of each model's SAE on each model's activations
    crosscoder_r    histogram of the decoder norm difference Delta per crosscoder (Minder et al.'s classes)

`sae_figures(eval, models) -> {name: data}` gives every one's data (with "models", the run's
models in order), in the order of `SAE`.
"""

from __future__ import annotations

import numpy as np

from experiments.figures.registry import figure
from experiments.figures.style import annotated_heatmap, model_colors, new_figure

SAE = ("sae_frontier", "sae_transfer", "crosscoder_r")


def frontier_data(ev: dict) -> dict:
    pts = {a: {"architecture": r["train"]["architecture"], "l0": r["heldout"]["l0"],
               "explained_variance": r["heldout"]["explained_variance"], "n": r["heldout"]["n"]}
           for a, r in ev["frontier"].items()}
    return {"title": f"Base model SAEs at {ev['hook']}: sparsity vs fit (held-out tokens)", "points": pts}


def transfer_data(ev: dict) -> dict:
    saes = list(ev["transfer"])
    return {"title": f"SAE transfer at {ev['hook']}: explained variance (held-out tokens)",
            "saes": saes, "activations": list(ev["transfer"][saes[0]]),
            "explained_variance": [[ev["transfer"][s][c]["explained_variance"] for c in ev["transfer"][s]]
                                   for s in saes]}


def delta_of_r(r) -> np.ndarray:
    """Minder et al.'s Delta = ((|b| - |f|) / max(|b|, |f|) + 1) / 2 (`sae.diff.norm_difference`)
    from r = |f| / (|b| + |f|), which the sae stage's eval.json lists per latent: both are
    functions of the norm ratio |f| / |b| = r / (1 - r)."""
    r = np.asarray(r, dtype=float)
    return np.where(r >= 0.5, (1 - r) / (2 * np.maximum(r, 1e-12)), 1 - r / (2 * np.maximum(1 - r, 1e-12)))


def crosscoder_data(ev: dict) -> dict:
    bins = np.linspace(0, 1, 41)
    hist = {}
    for v, c in ev["crosscoders"].items():
        delta = c["delta"] if "delta" in c else delta_of_r(c["r"]).tolist()
        alive = [d for d, k in zip(delta, c["class"]) if k != "dead"]
        hist[v] = np.histogram(alive, bins)[0].tolist()
    return {"title": "Crosscoders base x variant: decoder norm difference "
                     "Delta = ((|d_base| - |d_ft|) / max + 1) / 2 (Minder et al. 2025)",
            "bins": bins.tolist(), "counts": hist,
            "classes": {v: c["counts"] for v, c in ev["crosscoders"].items()}}


def sae_figures(ev: dict, models: list[str]) -> dict[str, dict]:
    """{name: data} of every SAE figure, in the order of `SAE`."""
    return {"sae_frontier": frontier_data(ev) | {"models": models},
            "sae_transfer": transfer_data(ev) | {"models": models},
            "crosscoder_r": crosscoder_data(ev) | {"models": models}}


def _sae(name: str):
    """Register `draw(data, ax)` as figure `name`: one panel, titled."""
    def wrap(draw):
        @figure(name)
        def make(d: dict):
            fig, axes = new_figure(1, height=1.05)
            draw(d, axes[0])
            axes[0].set_title(d["title"])
            return fig
        return draw
    return wrap


@_sae("sae_frontier")
def draw_frontier(d: dict, ax) -> None:
    archs = sorted({p["architecture"] for p in d["points"].values()})
    for i, arch in enumerate(archs):  # one colour and line per architecture, points by L0
        pts = sorted(((p["l0"], p["explained_variance"], name) for name, p in d["points"].items()
                      if p["architecture"] == arch))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="os^vDPX*"[i % 8], label=arch)
        for x, y, name in pts:
            setting = name[len(arch):].strip(" -") or "default"
            ax.annotate(setting, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("L0 (active latents per token)")
    ax.set_ylabel("explained variance")


@_sae("sae_transfer")
def draw_transfer(d: dict, ax) -> None:
    m = np.array(d["explained_variance"])
    annotated_heatmap(ax, m, d["activations"], d["saes"], vmin=min(0.0, float(m.min())), rotation=30, ha="right")
    ax.set_xlabel("activations of")
    ax.set_ylabel("SAE trained on")


@_sae("crosscoder_r")
def draw_crosscoder(d: dict, ax) -> None:
    centres = (np.array(d["bins"][:-1]) + np.array(d["bins"][1:])) / 2
    width = d["bins"][1] - d["bins"][0]
    colors = model_colors(d["models"])
    for v, counts in d["counts"].items():
        c = d["classes"][v]
        ax.bar(centres, counts, width=width, alpha=0.6, color=colors.get(v),
               label=f"{v}: ft-only {c['finetuned_only']}, shared {c['shared']}, base-only {c['base_only']}, "
                     f"other {c.get('other', 0)}")
    for x in (0.1, 0.9):  # fine-tuned-only below 0.1, base-only above 0.9
        ax.axvline(x, color="grey", lw=0.8, ls="--")
    for x in (0.4, 0.6):  # shared: |Delta - 0.5| < 0.1
        ax.axvline(x, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("Delta (0: fine-tuned only, 0.5: shared, 1: base only)")
    ax.set_ylabel("latents (alive)")
    ax.legend()
