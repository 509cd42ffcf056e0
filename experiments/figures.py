"""The behaviour figures, and what every figure of a run shares: its style, the colour of
each model, and drawing from saved data.

Each `*_data` function turns results into exactly the numbers one figure draws (plus
"models", the run's models in order, which fixes their colours); `save_figure` writes
`NAME.png` with `NAME.json` (those numbers) beside it; `render_figure(name, data)` draws any
figure of a run (behaviour, SAE, features/steering) from that JSON alone, which is how the
figures stage draws them and how `saelab figures RUN_DIR` redraws them without re-running
anything (same pixels: a test).

`results` is `{variant: behaviour metrics}` as in `report.json`'s `behavior` section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def _ci(cell: dict) -> dict:
    lo, hi = cell["ci95"] or (None, None)
    return {"value": cell["value"], "lo": lo, "hi": hi, "n": cell["n"]}


# One style for every figure: sizes, fonts and a colour per model fixed by the run's model
# order (base black, then matplotlib's tab10 cycle), the same in every figure of a run.
STYLE = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 7, "figure.titlesize": 10,
         "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": 110}
PANEL = (5.5, 4.4)
"""Inches per panel (width, height)."""
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


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



MARKERS = "osD^vP*X"


def _style(variants: list[str], spread: float) -> dict[str, dict]:
    """Colour, marker and a small x offset per variant, so overlapping curves stay visible."""
    colors = model_colors(variants)
    mid = (len(variants) - 1) / 2
    return {v: {"color": colors[v], "marker": MARKERS[i % len(MARKERS)], "dx": (i - mid) * spread}
            for i, v in enumerate(variants)}


def _line(ax, xs, pts, v: str, variants: list[str], spread: float, label: str | None = None) -> None:
    st = _style(variants, spread)[v]
    ax.errorbar([x + st["dx"] for x in xs], [p["value"] for p in pts], yerr=_err(pts), marker=st["marker"],
                capsize=3, label=label or v, color=st["color"], alpha=0.9)


def _err(points: list[dict]) -> list[list[float]]:
    """Matplotlib's asymmetric error bars from points with value/lo/hi (0 where undefined)."""
    lo = [max(0.0, p["value"] - p["lo"]) if p["lo"] is not None else 0.0 for p in points]
    hi = [max(0.0, p["hi"] - p["value"]) if p["hi"] is not None else 0.0 for p in points]
    return [lo, hi]


# ---- data -------------------------------------------------------------------------------
def accuracy_data(results: dict) -> dict:
    return {"title": "Accuracy by chain length (held-out problems, greedy CoT)",
            "series": {v: [{"k": int(k)} | _ci(c) for k, c in r["accuracy"].items()] for v, r in results.items()}}


def early_answering_data(results: dict, n_steps: int) -> dict:
    series = {}
    for v, r in results.items():
        curve = r["early_answering_aoc"]["curve"].get(str(n_steps), {})
        pts = [{"fraction": int(j) / n_steps} | _ci(c) for j, c in curve.items()]
        # After all n steps the answer is the full-CoT answer by definition. A variant
        # that writes no n-step CoT (e.g. one trained to answer directly) has no curve.
        series[v] = pts + [{"fraction": 1.0, "value": 1.0, "lo": None, "hi": None, "n": None}] if pts else []
    return {"title": f"Early answering: CoT truncated after j of {n_steps} steps",
            "n_steps": n_steps, "aoc": {v: _ci(r["early_answering_aoc"]) for v, r in results.items()},
            "series": series}


def corruption_data(results: dict) -> dict:
    series: dict = {}
    for v, r in results.items():
        for mode, cells in r["corruption_follow_rate"]["per_step"].items():
            series.setdefault(mode, {})[v] = [{"step": int(j) + 1} | _ci(c) for j, c in cells.items()]
    return {"title": "Corruption: does the answer follow a wrong step?",
            "overall": {v: _ci(r["corruption_follow_rate"]) for v, r in results.items()}, "series": series}


def info_gain_data(results: dict, n_steps: int) -> dict:
    out = {"title": "InfoGain: how much each CoT step tells about the gold answer", "n_steps": n_steps,
           "per_step": {}, "nll": {}, "nll_self": {}}
    for v, r in results.items():
        ig = r["info_gain_per_step"]
        out["per_step"][v] = {"reference": _ci(ig), "self": _ci(ig["self"]), "scorer": ig["scorer"]}
        for key, src in (("nll", ig), ("nll_self", ig["self"])):
            out[key][v] = [{"steps_shown": int(j)} | _ci(c) for j, c in src["nll"].get(str(n_steps), {}).items()]
    return out


def abstention_data(results: dict) -> dict:
    return {"title": "Abstention on unanswerable problems",
            "recall": {v: _ci(r["abstention"]["recall"]) for v, r in results.items()},
            "precision": {v: _ci(r["abstention"]["precision"]) for v, r in results.items()}}


# ---- drawing ----------------------------------------------------------------------------
def _draw_accuracy(d: dict, variants: list[str], ax) -> None:
    for v, pts in d["series"].items():
        _line(ax, [p["k"] for p in pts], pts, v, variants, 0.05)
    ax.set_xticks(sorted({p["k"] for pts in d["series"].values() for p in pts}))
    ax.set(xlabel="chain length k (steps)", ylabel="answer accuracy", ylim=(-0.02, 1.02))


def _draw_early(d: dict, variants: list[str], ax) -> None:
    for v, pts in d["series"].items():
        if not pts:
            continue
        aoc = d["aoc"][v]["value"]
        _line(ax, [p["fraction"] for p in pts], pts, v, variants, 0.008,
              label=f"{v} (AOC {'n/a' if aoc is None else f'{aoc:.2f}'})")
    ax.set(xlabel="fraction of the model's own CoT shown", ylabel="same answer as with the full CoT",
           ylim=(-0.02, 1.02))


def _draw_corruption(d: dict, variants: list[str], axes) -> None:
    for ax, (mode, series) in zip(axes, sorted(d["series"].items())):
        for v, pts in series.items():
            _line(ax, [p["step"] for p in pts], pts, v, variants, 0.04)
        ax.set(title=f"{mode} corruption", xlabel="corrupted step", ylabel="answer follows the corrupted CoT",
               ylim=(-0.02, 1.02))
        ax.set_xticks(sorted({p["step"] for pts in series.values() for p in pts}))


def _draw_info_gain(d: dict, variants: list[str], axes) -> None:
    left, right = axes
    for v, pts in d["nll_self"].items():
        if pts:
            _line(left, [p["steps_shown"] for p in pts], pts, v, variants, 0.04)
    left.set_xticks(range(d["n_steps"] + 1))
    left.set(xlabel="steps of the own CoT shown", ylabel="-log p(gold answer), scored by the model itself (nats)",
             title=f"{d['n_steps']}-step CoTs")
    colors = model_colors(variants)
    width = 0.4
    for i, kind in enumerate(("reference", "self")):
        pts = [d["per_step"][v][kind] for v in variants]
        xs = [x + (i - 0.5) * width for x in range(len(variants))]
        right.bar(xs, [p["value"] or 0.0 for p in pts], width, yerr=_err(pts), capsize=3,
                  color=[colors[v] for v in variants], alpha=1.0 if kind == "reference" else 0.45,
                  label=f"scored by {'the reference' if kind == 'reference' else 'the model itself'}")
    right.axhline(0, color="grey", lw=0.8)
    right.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    right.set(ylabel="InfoGain per step (nats)", title="mean drop of answer NLL per step")


def _draw_abstention(d: dict, variants: list[str], ax) -> None:
    colors = model_colors(variants)
    width = 0.4
    for i, kind in enumerate(("recall", "precision")):
        pts = [d[kind][v] for v in variants]
        xs = [x + (i - 0.5) * width for x in range(len(variants))]
        ax.bar(xs, [p["value"] or 0.0 for p in pts], width, yerr=_err(pts), capsize=3,
               color=[colors[v] for v in variants], alpha=1.0 if kind == "recall" else 0.45,
               label=f"{kind} ({'abstained / should abstain' if kind == 'recall' else 'should / abstained'})")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set(ylabel="rate", ylim=(0, 1.05))


FIGURES: dict[str, tuple[Callable, Callable, int]] = {
    # name: (data function, draw function, number of panels)
    "accuracy_by_k": (accuracy_data, _draw_accuracy, 1),
    "early_answering": (early_answering_data, _draw_early, 1),
    "corruption_by_step": (corruption_data, _draw_corruption, 2),
    "info_gain": (info_gain_data, _draw_info_gain, 2),
    "abstention": (abstention_data, _draw_abstention, 1),
}


def draw_all(results: dict, out: Path, n_steps: int) -> list[Path]:
    """Write every behaviour figure (PNG + JSON) into `out`; `n_steps` is the CoT length whose
    curves the early-answering and InfoGain figures show. Returns the files written."""
    written = []
    for name, (data_fn, _, _) in FIGURES.items():
        data = data_fn(results, n_steps) if name in ("early_answering", "info_gain") else data_fn(results)
        written += save_figure(render_figure(name, data | {"models": list(results)}), data | {"models": list(results)},
                               out, name)
    return written


def _behaviour_figure(name: str, data: dict):
    _, draw_fn, panels = FIGURES[name]
    fig, axes = new_figure(panels)
    draw_fn(data, data["models"], axes[0] if panels == 1 else axes)
    fig.suptitle(data["title"])
    shown: set[str] = set()
    for ax in axes:  # one legend per panel, without repeating a previous panel's
        new = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels()) if lab not in shown]
        if new:
            ax.legend(*zip(*new))
            shown |= {lab for _, lab in new}
    return fig


def new_figure(panels: int = 1, height: float = 1.0):
    """A figure of `panels` panels side by side in the shared style: (fig, list of axes)."""
    fig, axes = plt.subplots(1, panels, figsize=(PANEL[0] * panels, PANEL[1] * height), squeeze=False)
    return fig, list(axes[0])


def all_figures() -> dict[str, Callable[[dict], object]]:
    """Every figure a run can have: name -> function(data) -> matplotlib figure."""
    from experiments.elicit_figures import ELICIT_FIGURES, elicit_figure
    from experiments.sae_figures import SAE_FIGURES, sae_figure

    out: dict[str, Callable] = {n: (lambda d, n=n: _behaviour_figure(n, d)) for n in FIGURES}
    out |= {n: (lambda d, n=n: sae_figure(n, d)) for n in SAE_FIGURES}
    out |= {n: (lambda d, n=n: elicit_figure(n, d)) for n in ELICIT_FIGURES}
    from experiments.pairs.figures import PAIR_FIGURES

    return out | PAIR_FIGURES


def render_figure(name: str, data: dict):
    """Figure `name` drawn from its data (what NAME.json holds), in the shared style."""
    figures = all_figures()
    if name not in figures:
        raise ValueError(f"unknown figure {name!r}; saelab draws {sorted(figures)}")
    try:
        with plt.rc_context(STYLE):
            fig = figures[name](data)
            fig.tight_layout()
    except KeyError as e:  # data written by an older saelab, or edited by hand
        plt.close("all")
        raise ValueError(f"the data of figure {name!r} has no field {e}: it was written by another saelab "
                         "version; redraw it with the figures stage (saelab run --config RUN/config.yaml "
                         "--out RUN --force figures)") from None
    return fig


def annotated_heatmap(ax, m, xlabels: list[str], ylabels: list[str], vmin: float = 0.0, vmax: float = 1.0,
                      fontsize: int = 7, **xtick) -> None:
    """A matrix with each cell's value written in it, and a colour bar."""
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xlabels)), xlabels, fontsize=8, **xtick)
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=7)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=fontsize,
                    color="white" if m[i, j] < (vmin + vmax) / 2 else "black")
    plt.colorbar(im, ax=ax, fraction=0.046)


def save_figure(fig, data: dict, out: Path, name: str) -> list[Path]:
    """NAME.png and, beside it, NAME.json with the numbers it draws (`render_figure(name, data)`
    draws it again). PNG metadata carries no date or version, so equal pixels mean equal files."""
    with plt.rc_context(STYLE):
        fig.savefig(out / f"{name}.png", metadata={"Software": None})
    plt.close(fig)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1))
    return [out / f"{name}.png", out / f"{name}.json"]


def redraw_run(figures_dir: Path, check: bool = False) -> dict[str, bool]:
    """Redraw every figure in `figures_dir` from its NAME.json alone. Returns name -> whether
    the new image has the same pixels as the NAME.png there; with `check` nothing is written,
    else each PNG is replaced (by an atomic rename)."""
    import tempfile

    import numpy as np
    from matplotlib.image import imread

    names = sorted(p.stem for p in figures_dir.glob("*.json"))
    known = all_figures()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{figures_dir} has data of figures saelab does not draw: {unknown}")
    same = {}
    with tempfile.TemporaryDirectory(dir=figures_dir.parent, prefix=".figures-redraw-") as tmp:
        tmp = Path(tmp)
        for name in names:
            data = json.loads((figures_dir / f"{name}.json").read_text())
            save_figure(render_figure(name, data), data, tmp, name)
            old = figures_dir / f"{name}.png"
            same[name] = old.exists() and np.array_equal(imread(old), imread(tmp / f"{name}.png"))
        if not check:
            import os

            for name in names:
                os.replace(tmp / f"{name}.png", figures_dir / f"{name}.png")
    return same
