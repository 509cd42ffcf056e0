"""The SAE figures and the report's SAE summary, from `saes/eval.json` (the `sae` stage).
Like the behaviour figures, each writes NAME.png with NAME.json (the numbers drawn) beside it.

    sae_frontier    held-out L0 vs explained variance of the base model's SAE per architecture
    sae_transfer    explained variance of each model's SAE on each model's activations
    crosscoder_r    histogram of the relative decoder norm r per crosscoder
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.figures import annotated_heatmap, model_colors, new_figure, render_figure, save_figure

RECON_KEYS = ("explained_variance", "mse", "cosine", "l0", "dead_fraction", "dense_fraction")


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


def crosscoder_data(ev: dict) -> dict:
    bins = np.linspace(0, 1, 41)
    hist = {}
    for v, c in ev["crosscoders"].items():
        alive = [r for r, k in zip(c["r"], c["class"]) if k != "dead"]
        hist[v] = np.histogram(alive, bins)[0].tolist()
    return {"title": "Crosscoders base x variant: relative decoder norm r = |d_ft| / (|d_base| + |d_ft|)",
            "bins": bins.tolist(), "counts": hist,
            "classes": {v: c["counts"] for v, c in ev["crosscoders"].items()}}


def _draw_frontier(d: dict, ax) -> None:
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


def _draw_transfer(d: dict, ax) -> None:
    m = np.array(d["explained_variance"])
    annotated_heatmap(ax, m, d["activations"], d["saes"], vmin=min(0.0, float(m.min())), rotation=30, ha="right")
    ax.set_xlabel("activations of")
    ax.set_ylabel("SAE trained on")


def _draw_crosscoder(d: dict, ax) -> None:
    centres = (np.array(d["bins"][:-1]) + np.array(d["bins"][1:])) / 2
    width = d["bins"][1] - d["bins"][0]
    colors = model_colors(d["models"])
    for v, counts in d["counts"].items():
        c = d["classes"][v]
        ax.bar(centres, counts, width=width, alpha=0.6, color=colors.get(v),
               label=f"{v}: base-only {c['base_only']}, shared {c['shared']}, ft-only {c['finetuned_only']}")
    for x in (0.1, 0.9):
        ax.axvline(x, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("r (0: base only, 0.5: shared, 1: fine-tuned only)")
    ax.set_ylabel("latents (alive)")
    ax.legend()


SAE_FIGURES = {"sae_frontier": (frontier_data, _draw_frontier), "sae_transfer": (transfer_data, _draw_transfer),
               "crosscoder_r": (crosscoder_data, _draw_crosscoder)}


def sae_figure(name: str, data: dict):
    fig, axes = new_figure(1, height=1.05)
    SAE_FIGURES[name][1](data, axes[0])
    axes[0].set_title(data["title"])
    return fig


def draw_sae_figures(ev: dict, out: Path, models: list[str]) -> list[Path]:
    written = []
    for name, (data_fn, _) in SAE_FIGURES.items():
        data = data_fn(ev) | {"models": models}
        written += save_figure(render_figure(name, data), data, out, name)
    return written


def sae_summary(ev: dict) -> dict:
    """What the report shows: per model its SAE's held-out and spliced metrics, the frontier,
    the transfer matrix (explained variance) and the crosscoders' latent counts."""
    def recon(r):
        return {k: r[k] for k in (*RECON_KEYS, "n")}

    return {"hook": ev["hook"],
            "saes": {m: {"architecture": r["train"]["architecture"], "d_sae": r["train"]["d_sae"],
                         "heldout": recon(r["heldout"]), "spliced": r.get("spliced")} for m, r in ev["saes"].items()},
            "frontier": {a: recon(r["heldout"]) for a, r in ev["frontier"].items()},
            "transfer": {s: {c: recon(v) for c, v in row.items()} for s, row in ev["transfer"].items()},
            "crosscoders": {v: {k: c[k] for k in ("counts", "train", "heldout", "warning") if k in c}
                            for v, c in ev["crosscoders"].items()}}
