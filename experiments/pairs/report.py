"""The report of a model-pair run: every number with its n and interval, from the stages' JSON."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.report import _cell


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def build_report(run: Path, cfg) -> dict:
    names = cfg.model_names()
    behavior = {m: _load(run / "behavior" / f"{m}.json")["metrics"] for m in names}
    sae = _load(run / "saes" / "eval.json")
    features = {m: _load(run / "features" / f"{m}.json") for m in names}
    steering = {v: _load(run / "steering" / f"{v}.json") for v in cfg.models.variants}
    models = {m: _load(run / "models" / f"{m}.json") for m in names}
    return {
        "models": {m: {"path": r["spec"]["path"], "revision": r["spec"]["revision"], "model_type": r["model_type"],
                       "hub_commit": r["hub_commit"], "weights_hash": r["weights_hash"]} for m, r in models.items()},
        "seed": cfg.seed,
        "task": {"path": cfg.task.path, "problems": behavior["base"]["accuracy"]["n"],
                 "unanswerable": behavior["base"]["abstains_unanswerable"]["n"]},
        "behavior": behavior,
        "sae": {"hook": sae["hook"], "models": {m: {
            "source": s["source"] if isinstance(s["source"], str) else s["source"]["pretrained"],
            "l0": s["heldout"]["l0"], "explained_variance": s["heldout"]["explained_variance"],
            "ce_recovered": s["spliced"]["all"]["ce_recovered"]} for m, s in sae["saes"].items()},
            "transfer": sae["transfer"]},
        "features": {m: {k: f.get(k) for k in ("top", "n_reasoning_positions", "words_seen", "warning", "causal")}
                     for m, f in features.items()},
        "steering": steering,
    }


def _v(x, digits: int = 2) -> str:
    """A summary {"value", "n", "ci95"} as `0.50 [0.30, 0.70] n=20`; a plain number as itself."""
    if x is None:
        return "-"
    if isinstance(x, dict):  # the organisms' report's cell, saying n also where nothing was measured
        return f"- (n={x.get('n', 0)})" if x.get("value") is None else _cell(x, digits)
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_markdown(report: dict, title: str) -> str:
    names = list(report["behavior"])
    out = [f"# {title}", "", "Models: " + "; ".join(f"**{m}** `{r['path']}` ({r['model_type']})"
                                                    for m, r in report["models"].items()), "",
           f"Task: `{report['task']['path']}`, {report['task']['problems']} answerable and "
           f"{report['task']['unanswerable']} unanswerable problems; seed {report['seed']}.", "",
           "## Behaviour", "", "![behaviour](figures/pair_behavior.png)", "", "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    rows = [("accuracy", lambda b: b["accuracy"]), ("answered", lambda b: b["answered"]),
            ("abstains when unanswerable", lambda b: b["abstains_unanswerable"]),
            ("abstains when answerable", lambda b: b["abstains_answerable"]), ("CoT tokens", lambda b: b["cot_tokens"]),
            ("CoT steps", lambda b: b["cot_steps"]), ("InfoGain per step (nats)", lambda b: _v(b["info_gain_per_step"], 3)),
            ("early answer = final", lambda b: b["faithfulness"]["early_same"]),
            ("mistake changes answer", lambda b: b["faithfulness"]["mistake_changes"]),
            ("filler answer = final", lambda b: b["faithfulness"]["filler_same"]),
            ("no-CoT answer = final", lambda b: b["faithfulness"]["no_cot_same"]),
            ("paraphrase answer = final", lambda b: b["faithfulness"]["paraphrase_same"])]
    for label, get in rows:
        cells = [get(report["behavior"][m]) for m in names]
        out.append(f"| {label} | " + " | ".join(c if isinstance(c, str) else _v(c) for c in cells) + " |")
    out += ["", "Faithfulness rates are over the CoTs with steps and an answer ("
            + ", ".join(f"{m}: {report['behavior'][m]['faithfulness']['usable_cots']}" for m in names)
            + "); the answer is forced after each edited CoT and compared with the one forced after the unedited CoT "
            "(an edit whose forced answer, or whose unedited CoT's, cannot be read is left out and counted in "
            "report.json).",
            "", f"## SAEs at `{report['sae']['hook']}`", "",
            "| model | source | held-out L0 | explained variance | CE recovered |", "|---|---|---|---|---|"]
    for m, s in report["sae"]["models"].items():
        out.append(f"| {m} | {s['source']} | {s['l0']:.1f} | {s['explained_variance']:.3f} | {_v(s['ce_recovered'], 3)} |")
    out += ["", "SAEs train and are scored on every position but each sequence's first (whose massive activations "
            "in Llama- and Qwen-type models would dominate); CE recovered splices the SAE in at every position, the "
            "first included, so it is a lower bound.", "",
            "Transfer (explained variance of each model's SAE, rows, on each model's held-out activations, columns):",
            "", "| SAE | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m, row in report["sae"]["transfer"].items():
        out.append(f"| {m} | " + " | ".join(f"{row[c]:.3f}" for c in names) + " |")
    out += ["", "## Reasoning latents", ""]
    for m, f in report["features"].items():
        if f.get("warning"):
            out.append(f"- **{m}**: no ReasonScore ({f['warning']})")
            continue
        out.append(f"- **{m}**: top ReasonScore latents {f['top']} from {f['n_reasoning_positions']} reasoning positions "
                   f"(words seen: {', '.join(f['words_seen'])})")
        c = f.get("causal")
        if c:
            out.append(f"  - ablated in the base: log p(gold answer | gold CoT) {_v(c['plain'], 3)}; change with the top "
                       f"latents {_v(c.get('top'), 3)}, with as many frequency-matched random latents "
                       f"{_v(c.get('random'), 3)}")
    out += ["", "## Steering", "", "![steering](figures/pair_steering.png)", ""]
    for v, s in report["steering"].items():
        out.append(f"**{v}** (latents of the {s['steer_sae']} SAE: {s['latents']}; random control: {s['random_control']})")
        if "skipped" in s:
            out += ["", f"Skipped: {s['skipped']}", ""]
            continue
        out += ["", "Gap recovered = (steered - variant) / (base - variant): positive when steering moves the variant "
                "towards the base.", "",
                "| condition | accuracy after gold CoT | mistake changes answer | gap recovered (mistake) |",
                "|---|---|---|---|",
                f"| base | {_v(s['base']['accuracy'])} | {_v(s['base']['mistake_changes'])} | |",
                f"| {v} | {_v(s['variant_metrics']['accuracy'])} | {_v(s['variant_metrics']['mistake_changes'])} | |"]
        for r in s["steered"]:
            g = r["recovered"]["mistake_changes"]["value"]
            out.append(f"| {v} + clamp {r['latents']} x{r['strength']:g} | {_v(r['accuracy'])} | "
                       f"{_v(r['mistake_changes'])} | {'-' if g is None else f'{g:+.0%}'} |")
        out.append("")
    return "\n".join(out) + "\n"
