"""The figures of the findings measured by sweeps of their own (`behavior.compress`,
`switch`, `format`, `instruction`), from the behaviour metrics (`results`: {model: metrics})
of the models each ran on.

    finding_compression   activation-steered compression: CoT length and accuracy against the
                          steering scale, at the chosen layer, with the random direction of the
                          same norm as the control (the timing is in report.json: wall-clock
                          numbers would make the figure differ on every run)
    finding_switch        the thought-switch penalty: switch rate, accuracy and CoT length
                          against its strength, every model it ran on
    finding_format        a task change's new output format on new problems: the new format,
                          the old one (the failure) and the right answer in the new format,
                          every model it ran on (SFT against DPO)
    finding_instruction   instruction following: each instruction (seen and held out) given
                          before the question, every model it ran on
"""

from __future__ import annotations

from experiments.figures.registry import figure
from experiments.figures.style import error_bars, interval, line, new_figure

SWEEP_OF = {"finding_compression": "compress", "finding_switch": "switch", "finding_format": "format",
            "finding_instruction": "instruction"}  # figure -> its behaviour key
SWEEP_FIGURES = tuple(SWEEP_OF)


def sweep_names(behavior) -> list[str]:
    """The figures a run with BehaviorConfig `behavior` draws: one per sweep it runs."""
    return [n for n in SWEEP_FIGURES if getattr(behavior, SWEEP_OF[n]).models]


def sweep_figures(results: dict[str, dict]) -> dict[str, dict]:
    from experiments.findings import BY_NAME

    out = {}
    comp = {v: r["compress"] for v, r in results.items() if r.get("compress")}
    skipped = {v: c["skipped"] for v, c in comp.items() if c.get("skipped")}
    comp = {v: c for v, c in comp.items() if v not in skipped}
    if skipped and not comp:  # the figure the config asked for, saying why there is nothing in it
        out["finding_compression"] = {"title": "Activation-steered compression: not measured",
                                      "skipped": {v: why for v, why in skipped.items()}}
    if comp:
        want = BY_NAME["compression_keeps_accuracy"].variant
        v = want if want in comp else next(iter(comp))
        c = comp[v]
        scales = sorted(c["by_scale"], key=float)
        pt = lambda key: [interval(c["by_scale"][s][key]) for s in scales]  # noqa: E731
        rand = c["random_direction"]
        out["finding_compression"] = {
            "title": f"Activation-steered compression of {v}'s CoT (layer {c['layer']}, {c['n_pairs']} pairs)",
            "model": v, "layer": c["layer"], "chosen_scale": c["scale"], "scales": [float(s) for s in scales],
            "cot_length": pt("cot_length"), "accuracy": pt("accuracy"),
            "random_direction": {"scale": c["scale"], "cot_length": interval(rand["cot_length"]),
                                 "accuracy": interval(rand["accuracy"])}}
    sw = {v: r["switch"] for v, r in results.items() if r.get("switch")}
    if sw:
        keys = ("switch_rate", "accuracy", "cot_length")
        out["finding_switch"] = {
            "title": "The thought-switch penalty against its strength (sampled at temperature "
                     f"{next(iter(sw.values()))['temperature']:g})",
            "models": list(sw),
            "strengths": {v: [float(s) for s in sorted(m["by_strength"], key=float)] for v, m in sw.items()},
            **{key: {v: [interval(m["by_strength"][s][key]) for s in sorted(m["by_strength"], key=float)]
                     for v, m in sw.items()} for key in keys}}
    fm = {v: r["format"] for v, r in results.items() if r.get("format")}
    if fm:
        out["finding_format"] = {
            "title": "A task change with a new output format, learned from few examples: SFT against DPO",
            "models": list(fm), "ylabel": "rate on new problems",
            "series": {label: {v: interval(m[key]) for v, m in fm.items()} for key, label in (
                ("new_format", "new format"), ("old_format", "old format (the failure)"),
                ("accuracy", "right, in the new format"))}}
    ins = {v: r["instruction"] for v, r in results.items() if r.get("instruction")}
    if ins:
        first = next(iter(ins.values()))
        out["finding_instruction"] = {
            "title": "Instruction following: each instruction before the question (held out: "
                     f"{first['held_out']})", "models": list(ins), "ylabel": "answer follows the instruction",
            "series": {f"instruction {op}" + (" (held out)" if op in first["held_out"] else ""):
                       {v: interval(m["follows"][op]) for v, m in ins.items()} for op in first["follows"]}
            | {"no instruction: its own chain": {v: interval(m["no_instruction"]) for v, m in ins.items()}}}
    return out


@figure("finding_compression")
def draw_compression(d: dict):
    if d.get("skipped"):
        fig, (ax,) = new_figure(1, 0.5)
        ax.axis("off")
        ax.text(0.5, 0.5, "\n".join(f"{v}: {why}" for v, why in d["skipped"].items()), ha="center", va="center",
                wrap=True, fontsize=8)
        fig.suptitle(d["title"])
        return fig
    fig, axes = new_figure(2, 1.0)
    xs = d["scales"]
    for ax, key, label in zip(axes, ("cot_length", "accuracy"), ("CoT tokens (mean)", "accuracy")):
        line(ax, xs, d[key], d["model"], [d["model"]], 0.0, label="the steering vector")
        if key in d["random_direction"]:
            r = d["random_direction"]
            ax.errorbar([r["scale"]], [r[key]["value"]], fmt="x", color="grey", ms=8,
                        label="random direction, same norm")
        ax.axvline(d["chosen_scale"], color="grey", ls=":", lw=1, label="chosen on other problems")
        ax.set(xlabel="steering scale (0: none)", ylabel=label)
        if key == "accuracy":
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.suptitle(d["title"])
    return fig


@figure("finding_switch")
def draw_switch(d: dict):
    fig, axes = new_figure(3, 1.0)
    for ax, key, label in zip(axes, ("switch_rate", "accuracy", "cot_length"),
                              ("rows that switch", "accuracy", "CoT tokens (mean)")):
        for v in d["models"]:
            line(ax, d["strengths"][v], d[key][v], v, d["models"], 0.05)
        ax.set(xlabel="penalty strength (logits; 0: none)", ylabel=label)
        if key != "cot_length":
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.suptitle(d["title"])
    return fig


def _grouped_bars(d: dict):
    fig, (ax,) = new_figure(1, 1.0)
    models, series = d["models"], list(d["series"].items())
    width = 0.8 / len(series)
    for i, (label, per) in enumerate(series):
        pts = [per[v] for v in models]
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(models))]
        ax.bar(xs, [p["value"] or 0.0 for p in pts], width, yerr=error_bars(pts), capsize=3, label=label)
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    ax.set(ylabel=d["ylabel"], ylim=(0, 1.05))
    ax.legend(fontsize=7)
    fig.suptitle(d["title"])
    return fig


figure("finding_format")(_grouped_bars)
figure("finding_instruction")(_grouped_bars)


PAIR_FIGURE_OF = {"compress": "finding_compression", "switch": "finding_switch", "format": "finding_format",
                  "instruction": "finding_instruction"}  # a pair run's findings part -> its figure


def pair_sweep_figures(findings: dict[str, dict]) -> dict[str, dict]:
    """The same four figures from a pair run's findings (`experiments.pairs.findings`), in the
    organisms' data shapes, so one drawer serves both studies."""
    out = {}
    c = findings.get("compress")
    if c:
        if c.get("skipped"):
            out["finding_compression"] = {"title": "Activation-steered compression: not measured",
                                          "skipped": {c["model"]: c["skipped"]}}
        else:
            scales = sorted(c["by_scale"], key=float)
            pt = lambda key: [interval(c["by_scale"][s][key]) for s in scales]  # noqa: E731
            rand = c["random_direction"]
            out["finding_compression"] = {
                "title": f"Activation-steered compression of {c['model']} (layer {c['layer']}, {c['n_pairs']} pairs)",
                "model": c["model"], "layer": c["layer"], "chosen_scale": float(c["scale"]),
                "scales": [float(s) for s in scales], "cot_length": pt("cot_length"), "accuracy": pt("accuracy"),
                "random_direction": {"scale": float(c["scale"]), "cot_length": interval(rand["cot_length"]),
                                     "accuracy": interval(rand["accuracy"])}}
    sw = findings.get("switch")
    if sw:
        runs = {m["model"]: m for m in (sw.get("model"), sw.get("control")) if m}
        out["finding_switch"] = {
            "title": f"The thought-switch penalty against its strength (sampled at temperature "
                     f"{sw['model']['temperature']:g})", "models": list(runs),
            "strengths": {v: [float(s) for s in sorted(m["by_strength"], key=float)] for v, m in runs.items()},
            **{key: {v: [interval(m["by_strength"][s][key]) for s in sorted(m["by_strength"], key=float)]
                     for v, m in runs.items()} for key in ("switch_rate", "accuracy", "cot_length")}}
    fm = findings.get("format")
    if fm:
        ms = {f"{r['model']} ({role})": r for role, r in fm["models"].items()}
        out["finding_format"] = {
            "title": "A new answer format learned from few examples: SFT against DPO (TRL)",
            "models": list(ms), "ylabel": "rate on new problems",
            "series": {label: {v: interval(m[key]) for v, m in ms.items()} for key, label in (
                ("new_format", "new format"), ("old_format", "old format (the failure)"),
                ("accuracy", "right, in the new format"))}}
    ins = findings.get("instruction")
    if ins:
        ms = {f"{r['model']} ({role})": r for role, r in ins["models"].items()}
        out["finding_instruction"] = {
            "title": "Fine-tunes on the correct, an empty and a wrong instruction", "models": list(ms),
            "ylabel": "rate on new problems",
            "series": {label: {v: interval(m[key]) for v, m in ms.items()} for key, label in (
                ("accuracy", "right, under its own instruction"),
                ("held_out_follows", "follows the held-out instruction"),
                ("held_out_accuracy", "right, under the held-out one"))}}
    return out
