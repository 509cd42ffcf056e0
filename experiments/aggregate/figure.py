"""The aggregate's figure: one panel per headline metric, each subject's mean over the seeds
with its between-seed 95% t interval, and every seed's own value beside it.

    figure_data(aggregate) -> dict   the numbers the figure draws (aggregate-figure.json)
    draw(data) -> Figure             the figure, from that data alone (so it redraws)
    save(data, png)                  draw and write the PNG atomically, in the shared style

Drawn with `experiments.figures.style` but not registered in the figure registry: it
belongs to a sweep folder, not to a run's figures/ (which `saelab figures RUN` redraws).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from experiments.figures.style import STYLE, error_bars, interval, model_colors, new_grid

COLUMNS = 3
"""Panels per row."""
SEED_SPREAD = 0.25
"""Width (in subjects) over which the seeds' dots are spread beside their mean."""


def figure_data(aggregate: dict) -> dict:
    """From `combine.aggregate_report`'s result (with the command's "runs" or without)."""
    panels: dict[str, dict] = {}
    for m in aggregate["metrics"].values():
        p = panels.setdefault(m["metric"], {"metric": m["metric"], "description": m["description"], "subjects": [],
                                            "mean": [], "seeds": {s: [] for s in aggregate["seeds"]}})
        p["subjects"].append(m["subject"])
        p["mean"].append(interval(m))
        for s in aggregate["seeds"]:
            p["seeds"][s].append(m["seeds"].get(s))
    models = list(dict.fromkeys(s.split(":")[0] for p in panels.values() for s in p["subjects"]))
    return {"title": f"{aggregate['study']}: seeds {', '.join(aggregate['seeds'])}", "seeds": aggregate["seeds"],
            "models": models, "panels": list(panels.values())}


def draw(d: dict):
    rows = max(1, math.ceil(len(d["panels"]) / COLUMNS))
    fig, grid = new_grid(rows, COLUMNS, 1.0)
    axes = [ax for row in grid for ax in row]
    colors = model_colors(d["models"])
    n_seeds = max(1, len(d["seeds"]))
    for ax, p in zip(axes, d["panels"]):
        xs = range(len(p["subjects"]))
        color = [colors[s.split(":")[0]] for s in p["subjects"]]
        for j, s in enumerate(d["seeds"]):  # each seed's dots a little to the right of its mean
            dx = SEED_SPREAD * (j + 1) / n_seeds
            pts = [(x + dx, v, c) for x, v, c in zip(xs, p["seeds"][s], color) if v is not None]
            if pts:
                ax.scatter([x for x, _, _ in pts], [v for _, v, _ in pts], s=10, facecolors="none",
                           edgecolors=[c for _, _, c in pts], linewidths=0.8, label=f"seed {s}" if j == 0 else None)
        for x, pt, c in zip(xs, p["mean"], color):
            if pt["value"] is None:  # no seed measured it: say so rather than draw a 0
                ax.text(x, 0.5, "n=0", transform=ax.get_xaxis_transform(), ha="center", fontsize=6, rotation=90)
                continue
            ax.errorbar([x], [pt["value"]], yerr=error_bars([pt]), fmt="o", color=c, capsize=3, markersize=4)
        ax.set_xticks(list(xs), [s.replace(":", " ") for s in p["subjects"]], rotation=40, ha="right", fontsize=6)
        ax.set_xlim(-0.5, len(p["subjects"]) - 0.5)
        ax.set_title(p["metric"])
    for ax in axes[len(d["panels"]):]:
        ax.set_visible(False)
    fig.suptitle(f"{d['title']} (mean, 95% t interval between seeds; open dots: each seed)")
    return fig


def save(data: dict, png: Path) -> None:
    """Draw `data` and write it to `png` through a temporary file and a rename. PNG metadata
    carries no date or version, so the same numbers give the same file."""
    import matplotlib.pyplot as plt

    from activations.atomic import naming

    tmp = png.with_name(f".{png.name}.tmp-{os.getpid()}")
    fig = None
    try:
        with plt.rc_context(STYLE), naming(png):
            fig = draw(data)
            fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the suptitle
            fig.savefig(tmp, format="png", metadata={"Software": None})
            os.replace(tmp, png)
    finally:
        if fig is not None:
            plt.close(fig)
        tmp.unlink(missing_ok=True)
