"""One figure per finding of the literature (`experiments.findings`), from the behaviour
metrics of every model (`results`: {model: metrics}, as in `report.json`'s `behavior`).

    finding_truncation   early-answering AOC of every model (the truncation recipe and its control marked)
    finding_filler       accuracy after filler and with no CoT, every model
    finding_paraphrase   same answer after the own CoT is paraphrased, every model
    finding_infogain     InfoGain per step under the fixed scorer, relative to the base, both
                         definitions, with the paper's -38.9%
    finding_abstention   abstention recall relative to the base, with the paper's -24%
    execution_cliff      accuracy against k with plain decoding and with the calculator, and
                         the per-step accuracies of the plain decoding's own steps
    finding_compression, finding_switch, finding_format, finding_instruction
                         the findings with sweeps of their own (`experiments.figures.sweeps`)

`findings_figures(results, trained_max) -> {name: data}`: the first model of `results` is the
reference (the relative changes are paired against it, `features.stats.difference`); the
cliff's figure is left out where no cliff was measured.
Every model is shown, so each recipe's fingerprint on the three CoT tests stays visible.
"""

from __future__ import annotations

from experiments.figures.sweeps import SWEEP_FIGURES, sweep_figures, sweep_names
from experiments.figures.registry import figure
from experiments.figures.style import error_bars, interval, line, model_colors, new_figure
from features.stats import difference

BARS = {  # figure -> (metric getters: label -> f(metrics) -> summary), its finding, y label
    "finding_truncation": ({"early-answering AOC": lambda r: r.get("early_answering_aoc")},
                           "truncation_invariance", "AOC (1: every cut changes the answer)"),
    "finding_filler": ({"accuracy after filler": lambda r: r.get("filler_accuracy"),
                        "accuracy with no CoT": lambda r: r.get("no_cot_accuracy")},
                       "filler_invariance", "accuracy"),
    "finding_paraphrase": ({"same answer, CoT paraphrased": lambda r: (r.get("paraphrase_accuracy") or {})
                            .get("same_answer")}, "paraphrase_invariance", "same answer as after its own CoT"),
}
RELATIVE = {  # figure -> (metric getters: label -> f(metrics) -> summary), its finding, the paper's number, y label
    "finding_infogain": ({"Wu et al.'s definition (perplexity)": lambda r: r.get("info_gain_ppl"),
                          "answer nats per step": lambda r: r.get("info_gain_per_step")},
                         "infogain_fixed_scorer_falls", -0.389, "InfoGain per step, base-scored: change vs base"),
    "finding_abstention": ({"abstention recall": lambda r: (r.get("abstention") or {}).get("recall")},
                           "abstention_lost_to_reasoning", -0.24, "abstention recall: change vs base"),
}
FINDING_FIGURES = (*BARS, *RELATIVE, "execution_cliff", *SWEEP_FIGURES)
TITLES = {"finding_truncation": "Truncation: the answer after a cut CoT, every model",
          "finding_filler": "Filler: the answer after filler of the CoT's length, every model",
          "finding_paraphrase": "Paraphrase: the answer after the CoT in the second notation, every model",
          "finding_infogain": "InfoGain per step under a fixed scorer, against the literature",
          "finding_abstention": "Abstention after fine-tuning, against the literature"}


def _marks(finding: str) -> dict:
    from experiments.findings import BY_NAME

    f = BY_NAME[finding]
    return {"variant": f.variant, "control": f.control, "control_role": f.control_role}


def _relative(new: dict | None, old: dict | None) -> dict:
    """The paired relative change of two summaries of the same problems, as a figure point."""
    if not new or not old or new.get("value") is None or old.get("value") is None or not old["value"]:
        return {"value": None, "lo": None, "hi": None, "n": None}
    try:
        d = difference(new, old, relative=True)
    except ValueError:  # a summary without per-problem data
        return {"value": None, "lo": None, "hi": None, "n": None}
    return interval(d | {"n": None})


def findings_figures(results: dict[str, dict], trained_max: int) -> dict[str, dict]:
    models = list(results)  # the reference first (the run's model order: base first)
    out = {}
    for name, (getters, finding, ylabel) in BARS.items():
        out[name] = {"title": TITLES[name], "models": models, "ylabel": ylabel, **_marks(finding),
                     "series": {label: {v: interval(get(r) or {"value": None, "ci95": None, "n": 0})
                                        for v, r in results.items()} for label, get in getters.items()}}
    ref = results[models[0]]
    for name, (keys, finding, paper, ylabel) in RELATIVE.items():
        series = {label: {v: _relative(get(results[v]), get(ref)) for v in models[1:]}
                  for label, get in keys.items()}
        out[name] = {"title": TITLES[name], "models": models, "ylabel": ylabel, "paper": paper, **_marks(finding),
                     "series": series}
    cliffs = {v: r["cliff"] for v, r in results.items() if r.get("cliff")}
    if cliffs:
        pts = lambda c, key: [{"k": int(k)} | interval(row[key]) for k, row in c.items()]  # noqa: E731
        out["execution_cliff"] = {
            "title": "Execution cliff: accuracy by chain length, with and without a calculator",
            "models": models, "trained_max": trained_max,
            "plain": {v: pts(c, "accuracy") for v, c in cliffs.items()},
            "tool": {v: pts(c, "tool_accuracy") for v, c in cliffs.items()},
            "step_value": {v: pts(c, "step_value_accuracy") for v, c in cliffs.items()},
            "step_choice": {v: pts(c, "step_choice_accuracy") for v, c in cliffs.items()}}
    return out | sweep_figures(results)


def finding_names(models: list[str], behavior) -> list[str]:
    """The findings figures a run of `models` with BehaviorConfig `behavior` draws: a
    finding's where its variant is among them, the cliff and the sweeps where
    they are measured."""
    from experiments.findings import BY_NAME

    marks = {name: spec[1] for name, spec in {**BARS, **RELATIVE}.items()}
    return ([n for n in marks if BY_NAME[marks[n]].variant in models]
            + ["execution_cliff"] * bool(behavior.cliff_ks) + sweep_names(behavior))


def _label(v: str, d: dict) -> str:
    return v + (" (shows it)" if v == d.get("variant") else f" ({d['control_role']})" if v == d.get("control") else "")


def _bars(ax, d: dict, models: list[str]) -> None:
    colors = model_colors(d["models"])
    series = list(d["series"].items())
    width = 0.8 / len(series)
    for i, (label, per) in enumerate(series):
        pts = [per[v] for v in models]
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(models))]
        ax.bar(xs, [p["value"] or 0.0 for p in pts], width, yerr=error_bars(pts), capsize=3,
               color=[colors[v] for v in models], alpha=1.0 - 0.5 * i, label=label)
    ax.set_xticks(range(len(models)), [_label(v, d) for v in models], rotation=35, ha="right")
    for tick, v in zip(ax.get_xticklabels(), models):
        if v in (d.get("variant"), d.get("control")):
            tick.set_fontweight("bold")
    ax.set(ylabel=d["ylabel"])


def _register(name: str, relative: bool):
    """Figure `name`: bars per model (relative: per variant, against the base, with the
    paper's number dashed)."""
    @figure(name)
    def draw(d: dict):
        fig, axes = new_figure(1, 1.1)
        ax = axes[0]
        _bars(ax, d, d["models"][1:] if relative else d["models"])
        if relative:
            ax.axhline(d["paper"], color="grey", ls="--", lw=1, label=f"paper {100 * d['paper']:+.1f}%")
            ax.axhline(0, color="grey", lw=0.8)
        else:
            ax.set_ylim(-0.02, 1.05)
        ax.legend()
        fig.suptitle(d["title"])
        return fig
    return draw


for _name in BARS:
    _register(_name, relative=False)
for _name in RELATIVE:
    _register(_name, relative=True)


@figure("execution_cliff")
def draw_cliff(d: dict):
    fig, (left, right) = new_figure(2, 1.1)
    models = [v for v in d["models"] if v in d["plain"]]
    colors = model_colors(d["models"])
    for v in models:
        line(left, [p["k"] for p in d["plain"][v]], d["plain"][v], v, models, 0.04)
        left.plot([p["k"] for p in d["tool"][v]], [p["value"] for p in d["tool"][v]], ls="--", color=colors[v],
                  alpha=0.8, label=f"{v}, calculator" if v == "base" else None)
    left.axvline(d["trained_max"] + 0.5, color="grey", ls=":", lw=1, label="longest trained chain")
    left.set(xlabel="chain length k", ylabel="answer accuracy (solid: plain, dashed: calculator)",
             ylim=(-0.02, 1.02))
    left.legend(fontsize=7)
    for key, ls in (("step_value", "-"), ("step_choice", "--")):
        for v in models:
            right.plot([p["k"] for p in d[key][v]], [p["value"] for p in d[key][v]], ls=ls, color=colors[v],
                       marker="o", ms=3, label=(f"{v}: " if v == "base" else "") + (
                           "value right given its operands" if key == "step_value" else "the step the algorithm calls for")
                       if v == "base" else None)
    right.axvline(d["trained_max"] + 0.5, color="grey", ls=":", lw=1)
    right.set(xlabel="chain length k", ylabel="the model's own steps (plain decoding)", ylim=(-0.02, 1.02),
              title="does it execute the steps, and choose them?")
    right.legend(fontsize=7)
    fig.suptitle(d["title"])
    return fig
