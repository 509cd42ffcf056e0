"""What every figure of a run shares: sizes, fonts, a colour per model (fixed by the run's
model order: base black, then matplotlib's tab10 cycle, the same in every figure), a marker
and small x offset per variant, error bars from summaries, and the figure and heatmap makers.

    interval(cell)          a summary {"value", "ci95", "n"} as a point {"value", "lo", "hi", "n"}
    error_bars(points)      matplotlib's asymmetric yerr from points (0 where undefined)
    model_colors(models)    model -> colour
    variant_styles(variants, spread)  variant -> {"color", "marker", "dx"}
    line(ax, xs, pts, v, variants, spread, label=None)  one variant's curve with error bars
    new_figure(panels, height)        (fig, axes): panels side by side
    new_grid(rows, panels, height)    (fig, rows of axes): one row of panels per variant
    annotated_heatmap(ax, m, xlabels, ylabels, ...)  a matrix with its values written in
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from features.fmt import fixed  # noqa: E402

STYLE = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 7, "figure.titlesize": 10,
         "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": 110}
"""Matplotlib rc settings every figure is drawn and saved with."""
PANEL = (5.5, 4.4)
"""Inches per panel (width, height)."""
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
MARKERS = "osD^vP*X"


def interval(cell: dict) -> dict:
    """A summary {"value", "ci95", "n"} as the point a figure stores: value, lo, hi, n."""
    lo, hi = cell["ci95"] or (None, None)
    return {"value": cell["value"], "lo": lo, "hi": hi, "n": cell["n"]}


def error_bars(points: list[dict]) -> list[list[float]]:
    """Matplotlib's asymmetric error bars from points with value/lo/hi (0 where undefined)."""
    lo = [max(0.0, p["value"] - p["lo"]) if p["lo"] is not None else 0.0 for p in points]
    hi = [max(0.0, p["hi"] - p["value"]) if p["hi"] is not None else 0.0 for p in points]
    return [lo, hi]


def model_colors(models: list[str]) -> dict[str, str]:
    """Colour per model: base black, the others in the run's order."""
    out, i = {}, 0
    for v in models:
        if v == "base":
            out[v] = "black"
        else:
            out[v] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def variant_styles(variants: list[str], spread: float) -> dict[str, dict]:
    """Colour, marker and a small x offset per variant, so overlapping curves stay visible."""
    colors = model_colors(variants)
    mid = (len(variants) - 1) / 2
    return {v: {"color": colors[v], "marker": MARKERS[i % len(MARKERS)], "dx": (i - mid) * spread}
            for i, v in enumerate(variants)}


def line(ax, xs, pts, v: str, variants: list[str], spread: float, label: str | None = None) -> None:
    """Variant `v`'s points `pts` at `xs` (shifted by its offset) with their error bars."""
    st = variant_styles(variants, spread)[v]
    ax.errorbar([x + st["dx"] for x in xs], [p["value"] for p in pts], yerr=error_bars(pts), marker=st["marker"],
                capsize=3, label=label or v, color=st["color"], alpha=0.9)


def new_figure(panels: int = 1, height: float = 1.0):
    """A figure of `panels` panels side by side in the shared style: (fig, list of axes)."""
    fig, axes = new_grid(1, panels, height)
    return fig, axes[0]


def new_grid(rows: int, panels: int, height: float = 1.0):
    """A figure of `rows` rows of `panels` panels, `height` panel heights per row:
    (fig, list of rows, each a list of axes). One row is exactly `new_figure`'s figure."""
    fig, axes = plt.subplots(rows, panels, figsize=(PANEL[0] * panels, PANEL[1] * height * rows), squeeze=False)
    return fig, [list(row) for row in axes]


def annotated_heatmap(ax, m, xlabels: list[str], ylabels: list[str], vmin: float = 0.0, vmax: float = 1.0,
                      fontsize: int = 7, **xtick) -> None:
    """A matrix with each cell's value written in it, and a colour bar."""
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xlabels)), xlabels, fontsize=8, **xtick)
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=7)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, fixed(m[i, j], 2), ha="center", va="center", fontsize=fontsize,
                    color="white" if m[i, j] < (vmin + vmax) / 2 else "black")
    plt.colorbar(im, ax=ax, fraction=0.046)
