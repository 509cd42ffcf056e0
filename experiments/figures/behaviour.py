"""The behaviour figures, from each model's behaviour metrics (`results`: {model: metrics} as
in `report.json`'s `behavior` section).

    accuracy_by_k       accuracy by chain length, with 95% intervals
    early_answering     answer after a truncated own CoT = full-CoT answer, with each AOC
    corruption_by_step  how often the answer follows a corrupted step, per corruption mode
    info_gain           answer NLL as steps are shown, and InfoGain per step per scorer
    abstention          abstention recall and precision

`behaviour_figures(results, n_steps) -> {name: data}` gives every one's data (with "models",
the run's models in order, which fixes their colours), in the order of `BEHAVIOUR`; `n_steps`
is the CoT length whose curves early_answering and info_gain show.
"""

from __future__ import annotations

from experiments.figures.registry import figure
from experiments.figures.style import error_bars, interval, line, model_colors, new_figure
from features.fmt import fixed

BEHAVIOUR = ("accuracy_by_k", "early_answering", "corruption_by_step", "info_gain", "abstention")


# ---- data -------------------------------------------------------------------------------
def accuracy_data(results: dict) -> dict:
    return {"title": "Accuracy by chain length (held-out problems, greedy CoT)",
            "series": {v: [{"k": int(k)} | interval(c) for k, c in r["accuracy"].items()] for v, r in results.items()}}


def early_answering_data(results: dict, n_steps: int) -> dict:
    series = {}
    for v, r in results.items():
        curve = r["early_answering_aoc"]["curve"].get(str(n_steps), {})
        pts = [{"fraction": int(j) / n_steps} | interval(c) for j, c in curve.items()]
        # After all n steps the answer is the full-CoT answer by definition. A variant
        # that writes no n-step CoT (e.g. one trained to answer directly) has no curve.
        series[v] = pts + [{"fraction": 1.0, "value": 1.0, "lo": None, "hi": None, "n": None}] if pts else []
    return {"title": f"Early answering: CoT truncated after j of {n_steps} steps",
            "n_steps": n_steps, "aoc": {v: interval(r["early_answering_aoc"]) for v, r in results.items()},
            "series": series}


def corruption_data(results: dict) -> dict:
    series: dict = {}
    for v, r in results.items():
        for mode, cells in r["corruption_follow_rate"]["per_step"].items():
            series.setdefault(mode, {})[v] = [{"step": int(j) + 1} | interval(c) for j, c in cells.items()]
    return {"title": "Corruption: does the answer follow a wrong step?",
            "overall": {v: interval(r["corruption_follow_rate"]) for v, r in results.items()}, "series": series}


def info_gain_data(results: dict, n_steps: int) -> dict:
    out = {"title": "InfoGain: how much each CoT step tells about the gold answer", "n_steps": n_steps,
           "per_step": {}, "nll": {}, "nll_self": {}}
    for v, r in results.items():
        ig = r["info_gain_per_step"]
        out["per_step"][v] = {"reference": interval(ig), "self": interval(ig["self"]), "scorer": ig["scorer"]}
        for key, src in (("nll", ig), ("nll_self", ig["self"])):
            out[key][v] = [{"steps_shown": int(j)} | interval(c) for j, c in src["nll"].get(str(n_steps), {}).items()]
    return out


def abstention_data(results: dict) -> dict:
    return {"title": "Abstention on unanswerable problems",
            "recall": {v: interval(r["abstention"]["recall"]) for v, r in results.items()},
            "precision": {v: interval(r["abstention"]["precision"]) for v, r in results.items()}}


def behaviour_figures(results: dict[str, dict], n_steps: int) -> dict[str, dict]:
    """{name: data} of every behaviour figure, in the order of `BEHAVIOUR`."""
    models = {"models": list(results)}
    return {"accuracy_by_k": accuracy_data(results) | models,
            "early_answering": early_answering_data(results, n_steps) | models,
            "corruption_by_step": corruption_data(results) | models,
            "info_gain": info_gain_data(results, n_steps) | models,
            "abstention": abstention_data(results) | models}


# ---- drawing ----------------------------------------------------------------------------
def _behaviour(name: str, panels: int):
    """Register `draw(data, models, ax or axes)` as figure `name`: `panels` panels, the title
    above them, one legend per panel without repeating a previous panel's entries."""
    def wrap(draw):
        @figure(name)
        def make(d: dict):
            fig, axes = new_figure(panels)
            draw(d, d["models"], axes[0] if panels == 1 else axes)
            fig.suptitle(d["title"])
            shown: set[str] = set()
            for ax in axes:
                new = [(h, lab) for h, lab in zip(*ax.get_legend_handles_labels()) if lab not in shown]
                if new:
                    ax.legend(*zip(*new))
                    shown |= {lab for _, lab in new}
            return fig
        return draw
    return wrap


@_behaviour("accuracy_by_k", 1)
def draw_accuracy(d: dict, variants: list[str], ax) -> None:
    for v, pts in d["series"].items():
        line(ax, [p["k"] for p in pts], pts, v, variants, 0.05)
    ax.set_xticks(sorted({p["k"] for pts in d["series"].values() for p in pts}))
    ax.set(xlabel="chain length k (steps)", ylabel="answer accuracy", ylim=(-0.02, 1.02))


@_behaviour("early_answering", 1)
def draw_early(d: dict, variants: list[str], ax) -> None:
    for v, pts in d["series"].items():
        if not pts:
            continue
        aoc = d["aoc"][v]["value"]
        line(ax, [p["fraction"] for p in pts], pts, v, variants, 0.008,
             label=f"{v} (AOC {'n/a' if aoc is None else fixed(aoc, 2)})")
    ax.set(xlabel="fraction of the model's own CoT shown", ylabel="same answer as with the full CoT",
           ylim=(-0.02, 1.02))


@_behaviour("corruption_by_step", 2)
def draw_corruption(d: dict, variants: list[str], axes) -> None:
    for ax, (mode, series) in zip(axes, sorted(d["series"].items())):
        for v, pts in series.items():
            line(ax, [p["step"] for p in pts], pts, v, variants, 0.04)
        ax.set(title=f"{mode} corruption", xlabel="corrupted step", ylabel="answer follows the corrupted CoT",
               ylim=(-0.02, 1.02))
        ax.set_xticks(sorted({p["step"] for pts in series.values() for p in pts}))


@_behaviour("info_gain", 2)
def draw_info_gain(d: dict, variants: list[str], axes) -> None:
    left, right = axes
    for v, pts in d["nll_self"].items():
        if pts:
            line(left, [p["steps_shown"] for p in pts], pts, v, variants, 0.04)
    left.set_xticks(range(d["n_steps"] + 1))
    left.set(xlabel="steps of the own CoT shown", ylabel="-log p(gold answer), scored by the model itself (nats)",
             title=f"{d['n_steps']}-step CoTs")
    colors = model_colors(variants)
    width = 0.4
    for i, kind in enumerate(("reference", "self")):
        pts = [d["per_step"][v][kind] for v in variants]
        xs = [x + (i - 0.5) * width for x in range(len(variants))]
        right.bar(xs, [p["value"] or 0.0 for p in pts], width, yerr=error_bars(pts), capsize=3,
                  color=[colors[v] for v in variants], alpha=1.0 if kind == "reference" else 0.45,
                  label=f"scored by {'the reference' if kind == 'reference' else 'the model itself'}")
    right.axhline(0, color="grey", lw=0.8)
    right.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    right.set(ylabel="InfoGain per step (nats)", title="mean drop of answer NLL per step")


@_behaviour("abstention", 1)
def draw_abstention(d: dict, variants: list[str], ax) -> None:
    colors = model_colors(variants)
    width = 0.4
    for i, kind in enumerate(("recall", "precision")):
        pts = [d[kind][v] for v in variants]
        xs = [x + (i - 0.5) * width for x in range(len(variants))]
        ax.bar(xs, [p["value"] or 0.0 for p in pts], width, yerr=error_bars(pts), capsize=3,
               color=[colors[v] for v in variants], alpha=1.0 if kind == "recall" else 0.45,
               label=f"{kind} ({'abstained / should abstain' if kind == 'recall' else 'should / abstained'})")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set(ylabel="rate", ylim=(0, 1.05))
