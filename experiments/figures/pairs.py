"""The figures of a model-pair run, in the organisms' shared style and model colours.

    pair_behavior   accuracy, answered and the faithfulness rates per model, with 95% intervals
    pair_steering   per variant: accuracy after the gold CoT and how often a changed number
                    moves the answer, for base, variant, and the variant steered (reasoning
                    latents vs random latents at each strength)

`pair_figures(behavior, steering) -> {name: data}` gives both figures' data, in the order of
`PAIR`, from each model's behaviour metrics and each variant's steering record.
"""

from __future__ import annotations

from matplotlib.patches import Patch

from experiments.figures.registry import figure
from experiments.figures.style import error_bars, interval, model_colors, new_figure
from features.fmt import sig

PAIR = ("pair_behavior", "pair_steering")
BEHAVIOR_RATES = {"accuracy": "accuracy", "answered": "answered", "abstains_unanswerable": "abstains when unanswerable",
                  "early_same": "early answer = final",
                  "mistake_changes": "mistake moves answer", "filler_same": "filler answer = final",
                  "no_cot_same": "no-CoT answer = final"}


def _cell(c: dict | None) -> dict:
    """A summary as the organisms' figures store it; a test that was not run (None) as n = 0."""
    return interval(c or {"value": None, "n": 0, "ci95": None})


def behavior_data(behavior: dict[str, dict]) -> dict:
    """From each model's behaviour metrics."""
    def get(m: dict, key: str):
        return m[key] if key in m else m["faithfulness"][key]

    return {"title": "Behaviour on the text task", "models": list(behavior),
            "rates": {key: {name: _cell(get(m, key)) for name, m in behavior.items()} for key in BEHAVIOR_RATES}}


def steering_data(steering: dict[str, dict]) -> dict:
    """From each variant's steering record."""
    out = {}
    for v, s in steering.items():
        rows = [("base", s["base"]), (v, s["variant_metrics"])] + [
            (f"{r['latents']} x{sig(r['strength'])}", r) for r in s.get("steered", [])]
        out[v] = {"conditions": [name for name, _ in rows],
                  "accuracy": [_cell(r["accuracy"]) for _, r in rows],
                  "mistake_changes": [_cell(r["mistake_changes"]) for _, r in rows]}
    return {"title": "Steering the reasoning latents", "variants": out}


def pair_figures(behavior: dict[str, dict], steering: dict[str, dict]) -> dict[str, dict]:
    """{name: data} of both pair figures, in the order of `PAIR`."""
    return {"pair_behavior": behavior_data(behavior), "pair_steering": steering_data(steering)}


def _bars(ax, labels: list[str], cells: list[dict], colors: list[str], offset: float = 0.0, width: float = 0.8,
          label: str | None = None, hatch: str | None = None) -> None:
    xs = [i + offset for i in range(len(labels))]
    vals = [c["value"] if c["value"] is not None else 0.0 for c in cells]
    pts = [c if c["value"] is not None else {"value": 0.0, "lo": None, "hi": None} for c in cells]
    ax.bar(xs, vals, width, yerr=error_bars(pts), color=colors, capsize=2, edgecolor="black", linewidth=0.4,
           label=label, hatch=hatch)
    for x, c in zip(xs, cells):  # nothing measured is not a rate of 0
        if c["value"] is None:
            ax.text(x, 0.02, "n=0", ha="center", va="bottom", fontsize=6, rotation=90)


@figure("pair_behavior")
def draw_behavior(d: dict):
    fig, (ax,) = new_figure(1, 1.0)
    models, keys = d["models"], list(BEHAVIOR_RATES)
    colors = model_colors(models)
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        _bars(ax, keys, [d["rates"][k][m] for k in keys], [colors[m]] * len(keys),
              offset=(i - (len(models) - 1) / 2) * width, width=width, label=m)
    ax.set_xticks(range(len(keys)), [BEHAVIOR_RATES[k] for k in keys], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate (95% interval)")
    ax.legend()
    fig.suptitle(d["title"])
    return fig


@figure("pair_steering")
def draw_steering(d: dict):
    variants = d["variants"]
    fig, axes = new_figure(max(1, len(variants)), 1.0)
    for ax, (v, s) in zip(axes, variants.items()):
        n = len(s["conditions"])
        colors = ["black", "#1f77b4"] + ["#2ca02c" if c.startswith("reasoning") else "#7f7f7f" for c in s["conditions"][2:]]
        _bars(ax, s["conditions"], s["mistake_changes"], colors, offset=-0.2, width=0.4)
        _bars(ax, s["conditions"], s["accuracy"], colors, offset=0.2, width=0.4, hatch="//")
        ax.set_xticks(range(n), s["conditions"], rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(v)
        ax.set_ylabel("rate (95% interval)")
        # the bars' colours say the condition; the legend says which bar of a pair is which
        ax.legend(handles=[Patch(facecolor="white", edgecolor="black", label="mistake moves answer"),
                           Patch(facecolor="white", edgecolor="black", hatch="//", label="accuracy after gold CoT")])
    fig.suptitle(d["title"])
    return fig
